//! Power failures and client sessions: the sessions live in memory and reach redb only
//! when the store commits, in the transaction that records the applied position. So a
//! crash at any point must reopen a store whose sessions are exactly those of its applied
//! position, and re-applying the log from there must give every write the outcome it had
//! in an uninterrupted run: a retry answered from its session, a superseded request
//! refused, an evicted client's retry applied again.
//!
//! Each run draws a log of small batches of client writes from a handful of clients
//! (retries, superseded requests, and more clients than the store remembers, so that
//! eviction happens), applies it to a reference store without a crash, recording the
//! sessions and data after each batch, then applies it again with a power failure before
//! a random disk operation (as in [`super::crash`]), reopens, compares with the reference
//! at the recovered position, and catches up. The crashing runs fold the sessions' deltas
//! into their base every one to four commits (`session_log.rs`), so crashes strike
//! before, inside and after folds.

use super::crash::{NEVER, assert_failed_by_crash, crash_unless_struck};
use super::*;
use crate::store::session_log;
use replikv_core::{ClientId, RequestId};

/// Seeds of the crash test.
const SEEDS: u64 = 60;

/// Sessions the stores remember: fewer than the workload's clients.
const SESSIONS_MAX: usize = 3;

fn options() -> StoreOptions {
    StoreOptions {
        cache_size_bytes: STORE_CACHE_SIZE_MIN_BYTES,
        client_sessions_max: SESSIONS_MAX,
    }
}

/// Opens the store with fold limits drawn from `seed`, low enough that commits fold the
/// sessions' deltas every one to four commits ([`crate::store::session_log`]).
fn open_folding(disk: &Disk, seed: u64) -> Result<Store> {
    let mut store = Store::open_with(disk, STORE_NAME, &options())?;
    store.session_fold_limits = session_log::FoldLimits {
        deltas_max: 1 + seed % 4,
        floor_bytes: 0,
    };
    Ok(store)
}

/// A log of client writes in batches, with a sync decision after each batch.
struct SessionLog {
    /// Batch `b` (from 1; batch 0 is the empty start) and whether to sync after it.
    batches: Vec<(Vec<LoggedWrite>, bool)>,
}

/// What a store holds at one applied position.
type Observed = (Vec<ClientSession>, BTreeMap<Key, Value>);

impl SessionLog {
    fn generate(random: &mut ChaCha8Rng) -> SessionLog {
        let mut sequences = [0u64; 5];
        let mut index = 0;
        let mut batches = vec![(Vec::new(), false)];
        for _ in 0..random.random_range(5..25) {
            let mut batch = Vec::new();
            for _ in 0..random.random_range(1..4) {
                let client = random.random_range(0..sequences.len());
                let latest = sequences[client];
                let sequence = match random.random_range(0..4u8) {
                    0 if latest > 0 => latest,
                    1 if latest > 1 => latest - 1,
                    _ => latest + 1,
                };
                sequences[client] = sequences[client].max(sequence);
                index += 1;
                batch.push(LoggedWrite {
                    stamp_unix_ms: 0,
                    index: LogIndex(index),
                    request_id: Some(RequestId {
                        client: ClientId(client as u64),
                        sequence,
                    }),
                    write: StoreWrite::Put {
                        key: key(&format!("k{}", random.random_range(0..3u8))),
                        value: value(&format!("{client}.{sequence}")),
                    },
                });
            }
            batches.push((batch, random.random_bool(0.3)));
        }
        SessionLog { batches }
    }

    /// The applied position after batch `batch`.
    fn position_after(&self, batch: usize) -> LogPosition {
        let last = self.batches[..=batch]
            .iter()
            .rev()
            .find_map(|(writes, _)| writes.last());
        last.map_or(LogPosition::ZERO, |write| position(write.index.0))
    }

    /// Applies batches from `from` on, until the end or a failed call; returns the
    /// outcomes of each applied batch, the last batch synced and whether a call failed.
    fn apply(
        &self,
        store: &mut Store,
        from: usize,
        on_error: impl Fn(Error),
    ) -> (Vec<Vec<WriteOutcome>>, usize, bool) {
        let mut outcomes = Vec::new();
        let mut synced = 0;
        for batch in from..self.batches.len() {
            let (writes, sync) = &self.batches[batch];
            match store.apply_logged(writes, self.position_after(batch)) {
                Ok(batch_outcomes) => outcomes.push(batch_outcomes),
                Err(error) => {
                    on_error(error);
                    return (outcomes, synced, true);
                }
            }
            if *sync {
                if let Err(error) = store.sync() {
                    on_error(error);
                    return (outcomes, synced, true);
                }
                synced = batch;
            }
        }
        (outcomes, synced, false)
    }
}

fn observe(store: &Store) -> Observed {
    (
        store.client_sessions().unwrap(),
        store.visible_state().unwrap(),
    )
}

/// The reference: the outcomes of every batch and what the store holds after each.
fn reference(log: &SessionLog) -> (Vec<Vec<WriteOutcome>>, Vec<Observed>) {
    let disk = Disk::simulated();
    let mut store = Store::open_with(&disk, STORE_NAME, &options()).unwrap();
    let mut outcomes = vec![Vec::new()];
    let mut observed = vec![observe(&store)];
    for batch in 1..log.batches.len() {
        let (writes, _) = &log.batches[batch];
        outcomes.push(
            store
                .apply_logged(writes, log.position_after(batch))
                .unwrap(),
        );
        observed.push(observe(&store));
    }
    (outcomes, observed)
}

/// Applies the log on `disk` with a crash scheduled before operation `crash_at`; returns
/// the last batch synced.
fn crashing_run(log: &SessionLog, disk: &Disk, crash_at: u64, seed: u64) -> usize {
    sim(disk).schedule_crash(crash_at, seed);
    let failed = |error: Error| assert_failed_by_crash(disk, 0, &error);
    let Ok(mut store) = open_folding(disk, seed).map_err(failed) else {
        return 0;
    };
    let (_, synced, stopped) = log.apply(&mut store, 1, failed);
    if !stopped && crash_unless_struck(disk, seed) {
        assert!(store.sync().is_err(), "a call hid the crash");
    }
    drop(store);
    synced
}

#[test]
fn a_crash_anywhere_reopens_with_the_sessions_of_the_applied_position() {
    let mut recovered_with_sessions = 0;
    for seed in 0..SEEDS {
        let mut random = ChaCha8Rng::seed_from_u64(seed);
        let log = SessionLog::generate(&mut random);
        let (outcomes, observed) = reference(&log);
        let counting = Disk::simulated();
        crashing_run(&log, &counting, NEVER, seed);
        let operations = sim(&counting).mutation_count();

        let disk = Disk::simulated();
        let crash_at = random.random_range(0..=operations);
        let synced = crashing_run(&log, &disk, crash_at, seed);
        let context = format!("seed {seed}, crash before operation {crash_at} of {operations}");
        let mut store =
            open_folding(&disk, seed).unwrap_or_else(|error| panic!("{context}: reopen: {error}"));
        let applied = store.applied_position();
        let recovered = (0..log.batches.len())
            .find(|&batch| log.position_after(batch) == applied)
            .unwrap_or_else(|| panic!("{context}: recovered {applied} is no batch's end"));
        assert!(recovered >= synced, "{context}: lost synced batch {synced}");
        assert_eq!(observe(&store), observed[recovered], "{context}");
        recovered_with_sessions += usize::from(!observed[recovered].0.is_empty());

        let (caught_up, _, stopped) = log.apply(&mut store, recovered + 1, |error| {
            panic!("{context}: {error}")
        });
        assert!(!stopped);
        assert_eq!(caught_up, outcomes[recovered + 1..], "{context}: outcomes");
        assert_eq!(
            observe(&store),
            observed[log.batches.len() - 1],
            "{context}"
        );
    }
    assert!(
        recovered_with_sessions > SEEDS as usize / 4,
        "too few crashes kept sessions: {recovered_with_sessions}"
    );
}
