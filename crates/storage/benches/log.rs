//! How close group commit in the replication log comes to the disk's own limit.
//!
//! The cost of a durable log is dominated by `fdatasync`; everything else (encoding,
//! checksums, the in-memory index) should vanish next to it. So each case has a raw twin
//! in the same run, on the same file system: the same payload bytes appended to a file
//! with `std::fs`, one `write` plus one `sync_data` per batch, and nothing else. The bars
//! this measures, as ratios of the two:
//!
//! - `batch_64` and `batch_1024`: 100-byte entries appended in batches and synced once
//!   per batch; the log must reach at least half the raw entries per second;
//! - `batch_1`: a single append and sync must cost at most 1.3 times one raw write plus
//!   `fdatasync`.
//!
//! The disk is shared with other processes, so fsync times drift by several times over a
//! run. Criterion measures raw and log back to back per batch size; after it, a paired
//! comparison alternates single raw and log iterations and prints the ratio of their
//! medians, which is the figure least disturbed by that drift.
//!
//! Files live in a temporary directory under the build's target directory (a real disk,
//! not a tmpfs). Run with `cargo bench -p replikv-storage --bench log`.

use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use replikv_core::LogPosition;
use replikv_storage::disk::Disk;
use replikv_storage::log::{Entry, Log, LogOptions};
use std::cell::Cell;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

const PAYLOAD_SIZE_BYTES: usize = 100;
const BATCH_SIZES: [u64; 3] = [1, 64, 1024];
/// The raw file starts over past this size, as the log starts a new segment.
const RAW_FILE_SIZE_MAX_BYTES: u64 = 64 * 1024 * 1024;

fn scratch_directory() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory")
}

/// Appends `bytes` to a plain file, one write and one `fdatasync` per call.
struct RawAppender {
    file: fs::File,
    offset: u64,
}

impl RawAppender {
    fn new(directory: &Path) -> RawAppender {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(directory.join("raw"))
            .expect("raw file");
        RawAppender { file, offset: 0 }
    }

    fn append_and_sync(&mut self, bytes: &[u8]) {
        if self.offset >= RAW_FILE_SIZE_MAX_BYTES {
            self.file.set_len(0).expect("truncate raw file");
            self.offset = 0;
        }
        self.file
            .write_all_at(bytes, self.offset)
            .expect("raw write");
        self.file.sync_data().expect("raw sync");
        self.offset += bytes.len() as u64;
    }
}

fn payload(index: u64) -> Vec<u8> {
    (0..PAYLOAD_SIZE_BYTES)
        .map(|offset| (index as usize + offset) as u8)
        .collect()
}

fn entries(first: u64, batch: u64) -> Vec<Entry> {
    (first..first + batch)
        .map(|index| Entry {
            position: LogPosition::new(1, index),
            payload: payload(index),
        })
        .collect()
}

/// Raw and log cases of one batch size, measured back to back so that the disk's mood
/// (other processes share it) is as similar as possible for both.
fn bench_group_commit(criterion: &mut Criterion) {
    for batch in BATCH_SIZES {
        let mut group = criterion.benchmark_group(format!("batch_{batch}"));
        group.throughput(Throughput::Elements(batch));
        let raw_directory = scratch_directory();
        let mut raw = RawAppender::new(raw_directory.path());
        let bytes: Vec<u8> = (0..batch).flat_map(payload).collect();
        group.bench_function("raw_write_fdatasync", |bencher| {
            bencher.iter(|| raw.append_and_sync(&bytes));
        });
        let log_directory = scratch_directory();
        let disk = Disk::os(log_directory.path()).expect("disk");
        let mut log = Log::open(disk, LogOptions::default()).expect("log");
        let next_index = Cell::new(1u64);
        group.bench_function("log_append_sync", |bencher| {
            bencher.iter_batched(
                || {
                    let first = next_index.get();
                    next_index.set(first + batch);
                    entries(first, batch)
                },
                |entries| {
                    log.append(&entries).expect("append");
                    log.sync().expect("sync")
                },
                BatchSize::SmallInput,
            );
        });
        group.finish();
    }
}

/// The 10th, 50th and 90th percentiles.
fn percentiles(durations: &mut [Duration]) -> [Duration; 3] {
    durations.sort();
    let at = |fraction: f64| durations[((durations.len() - 1) as f64 * fraction) as usize];
    [at(0.1), at(0.5), at(0.9)]
}

/// A/B comparison robust to a noisy shared disk: raw and log iterations alternate (in
/// alternating order), and the ratio of their medians is printed.
fn paired_comparison() {
    println!("\npaired comparison (alternating raw and log iterations, medians):");
    for (batch, rounds) in [(1u64, 400usize), (64, 300), (1024, 150)] {
        let raw_directory = scratch_directory();
        let mut raw = RawAppender::new(raw_directory.path());
        let bytes: Vec<u8> = (0..batch).flat_map(payload).collect();
        let log_directory = scratch_directory();
        let mut log = Log::open(
            Disk::os(log_directory.path()).expect("disk"),
            LogOptions::default(),
        )
        .expect("log");
        let mut next_index = 1;
        let mut raw_times = Vec::with_capacity(rounds);
        let mut log_times = Vec::with_capacity(rounds);
        for round in 0..rounds + 20 {
            let batch_entries = entries(next_index, batch);
            next_index += batch;
            let mut time_raw = || {
                let start = Instant::now();
                raw.append_and_sync(&bytes);
                start.elapsed()
            };
            let raw_time;
            let log_time;
            if round % 2 == 0 {
                raw_time = time_raw();
                log_time = time_log(&mut log, &batch_entries);
            } else {
                log_time = time_log(&mut log, &batch_entries);
                raw_time = time_raw();
            }
            if round >= 20 {
                raw_times.push(raw_time);
                log_times.push(log_time);
            }
        }
        let [raw_p10, raw_median, raw_p90] = percentiles(&mut raw_times);
        let [log_p10, log_median, log_p90] = percentiles(&mut log_times);
        let per_second = |duration: Duration| batch as f64 / duration.as_secs_f64();
        println!(
            "batch {batch:>4}: raw median {raw_median:>9.2?} ({:>7.0} entries/s, p10 {raw_p10:.2?}, p90 {raw_p90:.2?})",
            per_second(raw_median)
        );
        println!(
            "            log median {log_median:>9.2?} ({:>7.0} entries/s, p10 {log_p10:.2?}, p90 {log_p90:.2?})",
            per_second(log_median)
        );
        println!(
            "            log/raw median time {:.3}, log/raw entries/s {:.3}",
            log_median.as_secs_f64() / raw_median.as_secs_f64(),
            raw_median.as_secs_f64() / log_median.as_secs_f64()
        );
    }
}

fn time_log(log: &mut Log, batch_entries: &[Entry]) -> Duration {
    let start = Instant::now();
    log.append(batch_entries).expect("append");
    log.sync().expect("sync");
    start.elapsed()
}

fn main() {
    benches();
    if std::env::args().any(|argument| argument == "--bench") {
        paired_comparison();
    }
    Criterion::default().configure_from_args().final_summary();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    targets = bench_group_commit
}
