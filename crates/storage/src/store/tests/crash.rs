//! Power failures on the simulated disk: after any crash the store reopens at a position
//! no earlier than its last sync, holding exactly the state of the log up to that
//! position, and keeps working from there.
//!
//! A crash between two store calls finds little to damage: redb keeps the pages of
//! non-durable commits in memory (up to half its cache) and a durable commit writes and
//! syncs within one call. So the power failure is injected *inside* redb's I/O as well: a
//! [`CrashingBackend`] counts the mutating backend operations (write, set_len, sync) and
//! crashes the simulated disk right before the chosen one, in the middle of a commit, a
//! cache spill or a recovery, where redb's pages and header are half written. A small
//! cache and padded values make redb spill unsynced pages to the file early.

use super::*;
use crate::disk::CrashReport;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Seeds per crash test: each is a different history, sync pattern and crash point.
const CRASH_SEEDS: u64 = 150;

/// When to crash, and what the crash did.
#[derive(Debug)]
struct CrashPlan {
    sim: SimDisk,
    operations: AtomicU64,
    /// Crash right before mutating operation number `crash_at` (0-based); `u64::MAX`:
    /// never (counting only).
    crash_at: u64,
    seed: u64,
    report: Mutex<Option<CrashReport>>,
}

impl CrashPlan {
    fn new(sim: &SimDisk, crash_at: u64, seed: u64) -> Arc<CrashPlan> {
        Arc::new(CrashPlan {
            sim: sim.clone(),
            operations: AtomicU64::new(0),
            crash_at,
            seed,
            report: Mutex::new(None),
        })
    }

    fn step(&self) {
        if self.operations.fetch_add(1, Ordering::Relaxed) == self.crash_at {
            let report = self.sim.crash(&mut ChaCha8Rng::seed_from_u64(self.seed));
            *self.report.lock().unwrap() = Some(report);
        }
    }

    fn report(&self) -> Option<CrashReport> {
        *self.report.lock().unwrap()
    }
}

/// A [`DiskBackend`] that executes a [`CrashPlan`].
#[derive(Debug)]
struct CrashingBackend {
    inner: DiskBackend,
    plan: Arc<CrashPlan>,
}

impl redb::StorageBackend for CrashingBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.plan.step();
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.plan.step();
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.plan.step();
        self.inner.write(offset, data)
    }
}

fn small_cache() -> StoreOptions {
    StoreOptions {
        cache_size_bytes: STORE_CACHE_SIZE_MIN_BYTES,
    }
}

fn open_crashing(disk: &Disk, plan: &Arc<CrashPlan>) -> Result<Store> {
    Store::open_with_backend(disk, STORE_NAME, &small_cache(), |file| CrashingBackend {
        inner: DiskBackend::new(file),
        plan: Arc::clone(plan),
    })
}

/// One workload: a history and, for each batch, whether to sync after it.
struct Workload {
    history: History,
    sync_after: Vec<bool>,
}

impl Workload {
    fn generate(random: &mut ChaCha8Rng) -> Workload {
        let length = random.random_range(10..40);
        let history = History::generate_padded(random, length, 3000);
        let sync_after = (0..=length).map(|_| random.random_bool(0.25)).collect();
        Workload {
            history,
            sync_after,
        }
    }

    fn length(&self) -> usize {
        self.history.batches.len() - 1
    }

    /// Opens and applies the workload until the end or the first error (the crash).
    /// Returns the index of the last batch known durable.
    fn run(&self, disk: &Disk, plan: &Arc<CrashPlan>) -> usize {
        let Ok(mut store) = open_crashing(disk, plan) else {
            return 0;
        };
        let mut synced = 0;
        for index in 1..=self.length() {
            let batch = &self.history.batches[index];
            let Ok(outcomes) = store.apply(batch, position(index as u64)) else {
                return synced;
            };
            assert_eq!(outcomes, self.history.outcomes[index]);
            if self.sync_after[index] {
                if store.sync().is_err() {
                    return synced;
                }
                synced = index;
            }
        }
        // Reaching the end without an injected crash: fail the power between calls.
        if plan.report().is_none() {
            *plan.report.lock().unwrap() =
                Some(plan.sim.crash(&mut ChaCha8Rng::seed_from_u64(plan.seed)));
        }
        drop(store);
        synced
    }
}

/// What one crash run observed, for determinism checks and coverage statistics.
#[derive(Debug, PartialEq, Eq)]
struct CrashRun {
    operations: u64,
    crash_at: u64,
    report: CrashReport,
    synced: usize,
    recovered: usize,
    length: usize,
    final_state: FullState,
}

/// Runs the workload of `seed` once to count its backend operations, then again with a
/// crash before a random one of them (or after all), reopens, checks the recovered state
/// against the log, and re-applies the rest of the log from there.
fn crash_run(seed: u64) -> CrashRun {
    let mut random = ChaCha8Rng::seed_from_u64(seed);
    let workload = Workload::generate(&mut random);
    let counting = Disk::simulated();
    let plan = CrashPlan::new(sim(&counting), u64::MAX, seed);
    workload.run(&counting, &plan);
    let operations = plan.operations.load(Ordering::Relaxed);

    let disk = Disk::simulated();
    let crash_at = random.random_range(0..=operations);
    let plan = CrashPlan::new(sim(&disk), crash_at, seed);
    let synced = workload.run(&disk, &plan);
    let report = plan.report().expect("the run crashed");

    let mut store = Store::open(&disk, STORE_NAME)
        .unwrap_or_else(|error| panic!("seed {seed}: reopen after crash at {crash_at}: {error}"));
    let recovered = store.applied_position().index.0 as usize;
    let context = format!("seed {seed}, crash before operation {crash_at} of {operations}");
    assert!(
        recovered >= synced,
        "{context}: recovered {recovered} before synced {synced}"
    );
    assert_eq!(
        full_state(&store),
        workload.history.states[recovered].entries,
        "{context}: state differs from the log at {recovered}"
    );
    assert_eq!(store.durable_applied_position(), store.applied_position());
    let length = workload.length();
    workload
        .history
        .apply(&mut store, recovered + 1, length + 1);
    let final_state = full_state(&store);
    assert_eq!(
        final_state, workload.history.states[length].entries,
        "{context}"
    );
    CrashRun {
        operations,
        crash_at,
        report,
        synced,
        recovered,
        length,
        final_state,
    }
}

#[test]
fn crashes_recover_the_state_of_the_log_at_the_recovered_position() {
    let mut totals = CrashReport::default();
    let mut runs_that_lost_applied_batches = 0;
    for seed in 0..CRASH_SEEDS {
        let run = crash_run(seed);
        totals.writes_kept += run.report.writes_kept;
        totals.writes_lost += run.report.writes_lost;
        totals.writes_torn += run.report.writes_torn;
        if run.recovered < run.length {
            runs_that_lost_applied_batches += 1;
        }
    }
    // The crash model must really have damaged redb's files, or the test proves nothing.
    assert!(totals.writes_torn > CRASH_SEEDS, "{totals:?}");
    assert!(totals.writes_lost > CRASH_SEEDS, "{totals:?}");
    assert!(runs_that_lost_applied_batches > 0);
}

#[test]
fn crash_runs_are_deterministic() {
    for seed in [7, 8] {
        assert_eq!(crash_run(seed), crash_run(seed), "seed {seed}");
    }
}

#[test]
fn a_crash_between_calls_loses_only_unsynced_batches() {
    for seed in 0..32 {
        let mut random = ChaCha8Rng::seed_from_u64(seed);
        let workload = Workload::generate(&mut random);
        let disk = Disk::simulated();
        let plan = CrashPlan::new(sim(&disk), u64::MAX, seed);
        let synced = workload.run(&disk, &plan);
        let store = Store::open(&disk, STORE_NAME).unwrap();
        let recovered = store.applied_position().index.0 as usize;
        assert!(recovered >= synced, "seed {seed}");
        assert_eq!(
            full_state(&store),
            workload.history.states[recovered].entries
        );
    }
}

#[test]
fn a_crash_right_after_creation_keeps_an_empty_store() {
    for seed in 0..32 {
        let disk = Disk::simulated();
        let store = Store::open(&disk, STORE_NAME).unwrap();
        sim(&disk).crash(&mut ChaCha8Rng::seed_from_u64(seed));
        drop(store);
        let store =
            Store::open(&disk, STORE_NAME).unwrap_or_else(|error| panic!("seed {seed}: {error}"));
        assert_eq!(store.applied_position(), LogPosition::ZERO);
        assert!(full_state(&store).is_empty());
        assert!(!disk.exists(&format!("{STORE_NAME}.creating")).unwrap());
    }
}

/// A follower's side of a snapshot transfer: apply a few batches, sync, then install the
/// snapshot with syncs after the chunks `sync_after` says. Stops at the first error.
fn install_workload(
    disk: &Disk,
    plan: &Arc<CrashPlan>,
    history: &History,
    snapshot: &StoreSnapshot,
    sync_after: &[bool],
) -> Result<()> {
    let mut follower = open_crashing(disk, plan)?;
    for index in 1..=5 {
        follower.apply(&history.batches[index], position(index as u64))?;
    }
    follower.sync()?;
    follower.install_begin(snapshot.position())?;
    for &sync in sync_after {
        let after = follower.install_progress().unwrap().resume_after().cloned();
        let chunk = snapshot.read_chunk(after.as_ref(), 2000).unwrap();
        assert!(follower.install_chunk(&chunk)?);
        if sync {
            follower.sync()?;
        }
        if chunk.done {
            break;
        }
    }
    follower.install_finish()?;
    drop(follower);
    Ok(())
}

#[test]
fn a_crash_anywhere_in_an_install_leaves_the_old_state_or_the_new() {
    let (mut old_states, mut new_states) = (0, 0);
    for seed in 0..40 {
        let mut random = ChaCha8Rng::seed_from_u64(5000 + seed);
        let history = History::generate_padded(&mut random, 30, 1000);
        let leader_disk = Disk::simulated();
        let mut leader = Store::open(&leader_disk, STORE_NAME).unwrap();
        history.apply(&mut leader, 1, 31);
        let snapshot = leader.snapshot().unwrap();
        let sync_after: Vec<bool> = (0..64).map(|_| random.random_bool(0.3)).collect();

        let counting = Disk::simulated();
        let plan = CrashPlan::new(sim(&counting), u64::MAX, seed);
        install_workload(&counting, &plan, &history, &snapshot, &sync_after).unwrap();
        let operations = plan.operations.load(Ordering::Relaxed);
        let disk = Disk::simulated();
        let crash_at = random.random_range(0..operations);
        let plan = CrashPlan::new(sim(&disk), crash_at, seed);
        // Ok if the crash hit the closing writes after a durable finish.
        let result = install_workload(&disk, &plan, &history, &snapshot, &sync_after);
        assert!(
            plan.report().is_some(),
            "seed {seed}: no crash ({result:?})"
        );

        let context = format!("seed {seed}, crash before operation {crash_at} of {operations}");
        let mut follower =
            Store::open(&disk, STORE_NAME).unwrap_or_else(|e| panic!("{context}: {e}"));
        let recovered = follower.applied_position().index.0 as usize;
        assert!(
            recovered <= 5 || recovered == 30,
            "{context}: at {recovered}"
        );
        assert_eq!(
            full_state(&follower),
            history.states[recovered].entries,
            "{context}"
        );
        if recovered == 30 {
            new_states += 1;
            assert!(follower.install_progress().is_none(), "{context}");
            continue;
        }
        old_states += 1;
        complete_install(&mut follower, &snapshot, 2000);
        assert_eq!(
            full_state(&follower),
            history.states[30].entries,
            "{context}"
        );
    }
    assert!(
        old_states > 0 && new_states > 0,
        "{old_states} old, {new_states} new"
    );
}
