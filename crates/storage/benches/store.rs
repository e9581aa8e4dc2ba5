//! What the state store costs per write, and how long its durable commit pauses the node.
//!
//! A node applies committed writes to its store in small batches and commits the store
//! durably every `store_sync_entries` applied entries (4,096 by default); the node loop
//! answers nothing while that commit runs, so its length is the single node's p99 (see
//! the README's "Benchmarking"). Both depend on how many distinct B-tree pages the writes
//! touch, which the keyspace decides: over a small keyspace every page is rewritten by
//! many writes, over a large one each write dirties a page of its own.
//!
//! Each case prefills `keys` keys, then repeatedly applies 4,096 SETs of 100-byte values
//! to uniformly random keys (seeded) in batches of 22 (the batch a 64-client load forms)
//! and commits durably. Two figures per keyspace, from the same iterations:
//! `apply_4096_sets` (the applies, with the store's non-durable commits among them) and
//! `durable_commit_after_4096_sets` (the `Store::sync` alone: redb's page writes and its
//! fdatasync, the pause). Files live in a temporary directory under the build's target
//! directory (a real disk). Run with `cargo bench -p replikv-storage --bench store`.
//!
//! Measured on the 2-core VM (criterion's estimates, per 4,096 SETs; the disk's speed
//! moves from hour to hour, so compare runs of one sitting):
//!
//! | keys | apply, 19:25 UTC | apply, 21:15 UTC | durable commit (the pause), 19:25 / 21:15 |
//! |---:|---:|---:|---:|
//! | 1,000 | 2.9 ms | 1.2 ms | 1.4 / 1.2 ms |
//! | 10,000 | 4.2 ms | 2.2 ms | 9.9 / 8.9 ms |
//! | 100,000 | 9.6 ms | 5.6 ms | 47 / 42 ms |
//!
//! (2026-11-22; between the two runs the write buffer became a hash map and a batch
//! stopped opening tables it does not need.) So the pause grows with the keyspace (about
//! one 4 KiB page per distinct key written, up to the keyspace's own pages), and beyond a
//! few thousand keys it, not the apply, is most of what the store costs: the case for
//! taking the durable commit off the node loop, and for the replication node's longer
//! interval between durable commits while they stay small (`store_sync_entries_max`).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_core::{Key, LogPosition, Value};
use replikv_storage::disk::Disk;
use replikv_storage::store::{Store, StoreWrite};
use std::time::{Duration, Instant};

const KEYSPACES: [u64; 3] = [1_000, 10_000, 100_000];
const SETS_PER_DURABLE_COMMIT: u64 = 4_096;
const BATCH_SETS: u64 = 22;
const VALUE_SIZE_BYTES: usize = 100;

/// A store in a temporary directory with every key of the keyspace written once and
/// committed durably, and the log index to apply at next.
struct Prefilled {
    _directory: tempfile::TempDir,
    store: Store,
    next_index: u64,
    random: ChaCha8Rng,
    keys: u64,
}

impl Prefilled {
    fn new(keys: u64) -> Prefilled {
        let directory =
            tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temporary directory");
        let disk = Disk::os(directory.path()).expect("disk");
        let store = Store::open(&disk, "store.redb").expect("store");
        let mut prefilled = Prefilled {
            _directory: directory,
            store,
            next_index: 1,
            random: ChaCha8Rng::seed_from_u64(keys),
            keys,
        };
        for first in (0..keys).step_by(BATCH_SETS as usize) {
            let batch: Vec<StoreWrite> = (first..(first + BATCH_SETS).min(keys)).map(put).collect();
            prefilled.apply(&batch);
        }
        prefilled.store.sync().expect("sync");
        prefilled
    }

    fn apply(&mut self, batch: &[StoreWrite]) {
        let position = LogPosition::new(1, self.next_index);
        self.store.apply(batch, position).expect("apply");
        self.next_index += 1;
    }

    /// Applies 4,096 SETs to random keys and commits durably: the time of each part.
    fn round(&mut self) -> (Duration, Duration) {
        let started = Instant::now();
        for _ in 0..SETS_PER_DURABLE_COMMIT / BATCH_SETS {
            let batch: Vec<StoreWrite> = (0..BATCH_SETS)
                .map(|_| put(self.random.random_range(0..self.keys)))
                .collect();
            self.apply(&batch);
        }
        let applied = started.elapsed();
        let started = Instant::now();
        self.store.sync().expect("sync");
        (applied, started.elapsed())
    }
}

fn put(number: u64) -> StoreWrite {
    StoreWrite::Put {
        key: Key::new(format!("k{number}")).expect("key"),
        value: Value::new(vec![b'v'; VALUE_SIZE_BYTES]).expect("value"),
    }
}

fn bench_store(criterion: &mut Criterion) {
    for keys in KEYSPACES {
        let mut group = criterion.benchmark_group(format!("store_{keys}_keys"));
        group.throughput(Throughput::Elements(SETS_PER_DURABLE_COMMIT));
        let mut store = Prefilled::new(keys);
        group.bench_function("apply_4096_sets", |bencher| {
            bencher.iter_custom(|iterations| {
                (0..iterations).map(|_| store.round().0).sum::<Duration>()
            });
        });
        group.bench_function("durable_commit_after_4096_sets", |bencher| {
            bencher.iter_custom(|iterations| {
                (0..iterations).map(|_| store.round().1).sum::<Duration>()
            });
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(10);
    targets = bench_store
}
criterion_main!(benches);
