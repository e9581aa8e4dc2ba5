//! How close group commit in the replication log comes to the disk's own limit.
//!
//! The cost of a durable log is dominated by `fdatasync`; everything else (encoding,
//! checksums, the in-memory index) should vanish next to it. So each case has a raw twin
//! in the same run, on the same file system: the same payload bytes appended to a file
//! with `std::fs`, one `write` plus one `sync_data` per batch, and nothing else (into a
//! file written with zeros beforehand, as the log preallocates its segments). The bars
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
use replikv_core::limits::LOG_RECORD_SIZE_MAX_BYTES;
use replikv_storage::disk::Disk;
use replikv_storage::log::{Entry, Log, LogOptions, PAYLOAD_SIZE_MAX_BYTES};
use std::cell::Cell;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes of framing the log adds to each payload (header and end marker).
const FRAMING_SIZE_BYTES: usize = LOG_RECORD_SIZE_MAX_BYTES - PAYLOAD_SIZE_MAX_BYTES;

const PAYLOAD_SIZE_BYTES: usize = 100;
const BATCH_SIZES: [u64; 3] = [1, 64, 1024];
/// The raw file's size: written with zeros at the start, then overwritten from its
/// beginning again whenever a batch would pass its end.
const RAW_FILE_SIZE_MAX_BYTES: u64 = 64 * 1024 * 1024;

fn scratch_directory() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory")
}

/// Appends `bytes` to a plain file, one write and one `fdatasync` per call. The file is
/// written full of zeros first and synced, as the log keeps its last segment extended
/// ahead of its records: a sync then never has to change the file's size (on a file
/// system without a journal that is a second write, the inode's), so the twin is the best
/// a plain file can do, and the log is measured against that.
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
        let zeros = vec![0u8; 1024 * 1024];
        let mut offset = 0;
        while offset < RAW_FILE_SIZE_MAX_BYTES {
            file.write_all_at(&zeros, offset).expect("raw zeros");
            offset += zeros.len() as u64;
        }
        file.sync_data().expect("raw zeros sync");
        RawAppender { file, offset: 0 }
    }

    fn append_and_sync(&mut self, bytes: &[u8]) {
        if self.offset + bytes.len() as u64 > RAW_FILE_SIZE_MAX_BYTES {
            // Start over at the beginning, overwriting: the size never changes.
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
            bencher.iter_batched_ref(
                || {
                    let first = next_index.get();
                    next_index.set(first + batch);
                    entries(first, batch)
                },
                |entries| {
                    log.append(entries).expect("append");
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

/// Median durations of one paired round: raw with the payload bytes, raw with as many
/// bytes as the log writes (payload plus framing), the log's append alone, the log's
/// append and sync.
#[derive(Default)]
struct PairedTimes {
    raw: Vec<Duration>,
    raw_framed: Vec<Duration>,
    log_append: Vec<Duration>,
    log: Vec<Duration>,
}

/// A/B comparison robust to a noisy shared disk: raw and log iterations alternate (in
/// rotating order), and the ratio of their medians is printed.
fn paired_comparison() {
    println!("\npaired comparison (raw and log iterations interleaved; medians, p10-p90):");
    for (batch, rounds) in [(1u64, 400usize), (64, 300), (1024, 150)] {
        let times = paired_rounds(batch, rounds);
        report_paired(batch, times);
    }
}

fn paired_rounds(batch: u64, rounds: usize) -> PairedTimes {
    let raw_directory = scratch_directory();
    let mut raw = RawAppender::new(raw_directory.path());
    let raw_framed_directory = scratch_directory();
    let mut raw_framed = RawAppender::new(raw_framed_directory.path());
    let bytes: Vec<u8> = (0..batch).flat_map(payload).collect();
    let framed_bytes = vec![7u8; bytes.len() + batch as usize * FRAMING_SIZE_BYTES];
    let log_directory = scratch_directory();
    let disk = Disk::os(log_directory.path()).expect("disk");
    let mut log = Log::open(disk, LogOptions::default()).expect("log");
    let mut times = PairedTimes::default();
    let warm_up_rounds = 20;
    for round in 0..rounds + warm_up_rounds {
        let batch_entries = entries(log.last_position().index.0 + 1, batch);
        let mut round_times = [Duration::ZERO; 4];
        for step in 0..3 {
            match (round + step) % 3 {
                0 => round_times[0] = time(|| raw.append_and_sync(&bytes)),
                1 => round_times[1] = time(|| raw_framed.append_and_sync(&framed_bytes)),
                _ => {
                    round_times[2] = time(|| log.append(&batch_entries).expect("append"));
                    round_times[3] = round_times[2]
                        + time(|| {
                            log.sync().expect("sync");
                        });
                }
            }
        }
        if round >= warm_up_rounds {
            times.raw.push(round_times[0]);
            times.raw_framed.push(round_times[1]);
            times.log_append.push(round_times[2]);
            times.log.push(round_times[3]);
        }
    }
    times
}

fn time(operation: impl FnOnce()) -> Duration {
    let start = Instant::now();
    operation();
    start.elapsed()
}

fn report_paired(batch: u64, mut times: PairedTimes) {
    let per_second = |duration: Duration| batch as f64 / duration.as_secs_f64();
    let line = |label: &str, durations: &mut [Duration]| {
        let [p10, median, p90] = percentiles(durations);
        println!(
            "batch {batch:>4} {label:<24} {median:>10.2?} {:>10.0} entries/s  ({p10:.2?}-{p90:.2?})",
            per_second(median)
        );
        median
    };
    let raw = line("raw write+fdatasync", &mut times.raw);
    let raw_framed = line("raw, log-sized bytes", &mut times.raw_framed);
    line("log append only (CPU)", &mut times.log_append);
    let log = line("log append+sync", &mut times.log);
    let ratio = |over: Duration| raw.as_secs_f64() / over.as_secs_f64();
    println!(
        "batch {batch:>4} log entries/s over raw {:.3} (time ratio {:.3}); raw log-sized over raw {:.3}",
        ratio(log),
        log.as_secs_f64() / raw.as_secs_f64(),
        ratio(raw_framed)
    );
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
