//! Power failures on the simulated disk: after any crash the store reopens at a position
//! no earlier than its last sync, holding exactly the state of the log up to that
//! position, and keeps working from there.
//!
//! A crash between two store calls finds little to damage: redb keeps the pages of
//! non-durable commits in memory (up to half its cache) and a durable commit writes and
//! syncs within one call. So the power failure strikes *inside* the calls. The simulated
//! disk counts its mutating operations ([`SimDisk::mutation_count`]: redb's writes,
//! length changes and syncs, and the store's creations, renames and directory syncs), and
//! a scheduled crash ([`SimDisk::schedule_crash`]) fails the power right before a chosen
//! one. Each test runs its workload once, uninterrupted, to count the operations, then
//! again on a fresh disk with the crash before one of them: in the middle of the store's
//! creation, of a commit, of a cache spill, of the recovery that follows an earlier
//! crash, or of a snapshot install, where redb's pages and header are half written. A
//! small cache and padded values make redb spill unsynced pages to the file early.

use super::*;
use crate::disk::CrashReport;

/// Seeds per crash test: each is a different history, sync pattern and crash point.
const CRASH_SEEDS: u64 = 150;

/// A crash point never reached: the run only counts, and crashes at its end.
pub(super) const NEVER: u64 = u64::MAX;

fn small_cache() -> StoreOptions {
    StoreOptions {
        cache_size_bytes: STORE_CACHE_SIZE_MIN_BYTES,
        ..StoreOptions::default()
    }
}

fn open_small(disk: &Disk) -> Result<Store> {
    Store::open_with(disk, STORE_NAME, &small_cache())
}

/// Ends a run with a crash scheduled on `disk` in exactly one power failure: returns
/// whether the scheduled crash struck during the run; if it did not, cancels it and fails
/// the power now, with the same seed.
pub(super) fn crash_unless_struck(disk: &Disk, seed: u64) -> bool {
    let sim = sim(disk);
    let struck = !sim.cancel_scheduled_crash();
    if !struck {
        sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    struck
}

/// Panics unless the store call that just failed was failed by the scheduled crash.
pub(super) fn assert_failed_by_crash(disk: &Disk, crashes_before: u64, error: &Error) {
    assert_eq!(
        sim(disk).crash_count(),
        crashes_before + 1,
        "a store call failed without a crash: {error}"
    );
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

    /// On a fresh disk, opens and applies the workload with power failing before mutating
    /// operation `crash_at`, or at the end of the workload if it has fewer. Returns the
    /// index of the last batch known durable.
    fn run(&self, disk: &Disk, crash_at: u64, seed: u64) -> usize {
        assert_eq!(sim(disk).mutation_count(), 0, "a fresh disk");
        sim(disk).schedule_crash(crash_at, seed);
        let mut synced = 0;
        let store = self.apply_until_failure(disk, &mut synced);
        if let Some(mut store) = store {
            // Reaching the end: fail the power between calls, before the store is dropped.
            // A crash may have struck inside the last calls only in a best-effort writeback
            // of the open, non-durable apply transaction, which redb does not report; the
            // commit that would need that write does.
            if crash_unless_struck(disk, seed) {
                assert!(store.sync().is_err(), "a call hid the crash");
            }
            drop(store);
        }
        synced
    }

    /// Applies the workload until the end (returning the open store) or until a call
    /// fails (which only the crash may cause), tracking the last durable batch.
    fn apply_until_failure(&self, disk: &Disk, synced: &mut usize) -> Option<Store> {
        let failed = |error: Error| assert_failed_by_crash(disk, 0, &error);
        let mut store = open_small(disk).map_err(failed).ok()?;
        for index in 1..=self.length() {
            let batch = &self.history.batches[index];
            let outcomes = store
                .apply(batch, position(index as u64))
                .map_err(failed)
                .ok()?;
            assert_eq!(outcomes, self.history.outcomes[index]);
            if self.sync_after[index] {
                store.sync().map_err(failed).ok()?;
                *synced = index;
            }
        }
        Some(store)
    }

    /// Opens the store after a crash and checks it holds the log's state at a position no
    /// earlier than `synced`; returns it and that position.
    fn check_recovered(&self, disk: &Disk, synced: usize, context: &str) -> (Store, usize) {
        let mut store = Store::open(disk, STORE_NAME)
            .unwrap_or_else(|error| panic!("{context}: reopen: {error}"));
        let recovered = store.applied_position().index.0 as usize;
        assert!(
            recovered >= synced,
            "{context}: recovered {recovered} before synced {synced}"
        );
        assert_eq!(
            full_state(&mut store),
            self.history.states[recovered].entries,
            "{context}: state differs from the log at {recovered}"
        );
        assert_eq!(store.durable_applied_position(), store.applied_position());
        (store, recovered)
    }

    /// Applies the rest of the log after `recovered` and checks the final state.
    fn catch_up(&self, store: &mut Store, recovered: usize, context: &str) -> FullState {
        let length = self.length();
        self.history.apply(store, recovered + 1, length + 1);
        let final_state = full_state(store);
        assert_eq!(
            final_state, self.history.states[length].entries,
            "{context}"
        );
        final_state
    }
}

/// The number of mutating disk operations `workload` performs, crash at the end excluded.
fn count_operations(workload: &Workload, seed: u64) -> u64 {
    let counting = Disk::simulated();
    workload.run(&counting, NEVER, seed);
    sim(&counting).mutation_count()
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

/// Runs the workload of `seed` once to count its disk operations, then again with a
/// crash before a random one of them (or after all), reopens, checks the recovered state
/// against the log, and re-applies the rest of the log from there.
fn crash_run(seed: u64) -> CrashRun {
    let mut random = ChaCha8Rng::seed_from_u64(seed);
    let workload = Workload::generate(&mut random);
    let operations = count_operations(&workload, seed);

    let disk = Disk::simulated();
    let crash_at = random.random_range(0..=operations);
    let synced = workload.run(&disk, crash_at, seed);
    let report = sim(&disk).last_crash().expect("the run crashed");
    assert_eq!(sim(&disk).crash_count(), 1);

    let context = format!("seed {seed}, crash before operation {crash_at} of {operations}");
    let (mut store, recovered) = workload.check_recovered(&disk, synced, &context);
    let final_state = workload.catch_up(&mut store, recovered, &context);
    CrashRun {
        operations,
        crash_at,
        report,
        synced,
        recovered,
        length: workload.length(),
        final_state,
    }
}

/// The disk operations of opening a fresh store with the small cache.
fn creation_operations() -> u64 {
    let disk = Disk::simulated();
    open_small(&disk).unwrap();
    sim(&disk).mutation_count()
}

#[test]
fn crashes_recover_the_state_of_the_log_at_the_recovered_position() {
    let creation = creation_operations();
    let mut totals = CrashReport::default();
    let mut runs_that_lost_applied_batches = 0;
    let mut runs_crashed_in_creation = 0;
    for seed in 0..CRASH_SEEDS {
        let run = crash_run(seed);
        totals.writes_kept += run.report.writes_kept;
        totals.writes_lost += run.report.writes_lost;
        totals.writes_torn += run.report.writes_torn;
        if run.recovered < run.length {
            runs_that_lost_applied_batches += 1;
        }
        if run.crash_at < creation {
            runs_crashed_in_creation += 1;
        }
    }
    // The crash model must really have damaged redb's files, or the test proves nothing.
    assert!(totals.writes_kept > CRASH_SEEDS, "{totals:?}");
    assert!(totals.writes_torn > CRASH_SEEDS, "{totals:?}");
    assert!(totals.writes_lost > CRASH_SEEDS, "{totals:?}");
    assert!(runs_that_lost_applied_batches > 0);
    assert!(runs_crashed_in_creation > 0, "creation never interrupted");
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
        let synced = workload.run(&disk, NEVER, seed);
        workload.check_recovered(&disk, synced, &format!("seed {seed}"));
    }
}

/// Power fails before each disk operation of a store's creation in turn, and right after
/// it: the store reopens empty at position zero, and the temporary file is gone.
#[test]
fn a_crash_anywhere_in_creation_leaves_no_store_or_an_empty_one() {
    let operations = creation_operations();
    let (mut store_missing, mut store_present) = (0, 0);
    for crash_at in 0..=operations {
        // More seeds after the creation, where the crash has the most unsynced to choose.
        let seeds = if crash_at == operations { 32 } else { 8 };
        for seed in 0..seeds {
            let context = format!("crash at {crash_at} of {operations}, seed {seed}");
            let disk = Disk::simulated();
            sim(&disk).schedule_crash(crash_at, seed);
            let opened = open_small(&disk);
            assert_eq!(
                crash_unless_struck(&disk, seed),
                opened.is_err(),
                "{context}: {:?}",
                opened.map(drop)
            );
            drop(opened);
            if disk.exists(STORE_NAME).unwrap() {
                store_present += 1;
            } else {
                store_missing += 1;
            }
            let mut store =
                Store::open(&disk, STORE_NAME).unwrap_or_else(|error| panic!("{context}: {error}"));
            assert_eq!(store.applied_position(), LogPosition::ZERO, "{context}");
            assert!(full_state(&mut store).is_empty(), "{context}");
            assert!(!disk.exists(&format!("{STORE_NAME}.creating")).unwrap());
        }
    }
    assert!(
        store_missing > 0 && store_present > 0,
        "{store_missing}, {store_present}"
    );
}

/// The recovery after a crash writes too (redb repairs its allocation state, the store
/// syncs on open). Power fails in the middle of it, and the next open still finds the
/// state of the log at a position no earlier than the last sync.
#[test]
fn a_crash_during_recovery_keeps_the_state_of_the_log() {
    let (mut recoveries_interrupted, mut recoveries_completed) = (0, 0);
    for seed in 0..24 {
        let mut random = ChaCha8Rng::seed_from_u64(7000 + seed);
        let workload = Workload::generate(&mut random);
        let operations = count_operations(&workload, seed);
        let first_crash_at = random.random_range(operations / 2..=operations);
        let crashed_disk = || {
            let disk = Disk::simulated();
            let synced = workload.run(&disk, first_crash_at, seed);
            (disk, synced)
        };
        let (disk, _) = crashed_disk();
        let before = sim(&disk).mutation_count();
        let store = Store::open(&disk, STORE_NAME).unwrap();
        let recovery_operations = sim(&disk).mutation_count() - before;
        drop(store);

        let (disk, synced) = crashed_disk();
        // Seed by seed, the crash point walks through the recovery and past its end.
        let crash_at = seed % (recovery_operations + 1);
        sim(&disk).schedule_crash(crash_at, seed + 1);
        let context = format!(
            "seed {seed}, crash at {first_crash_at} of {operations}, \
             then at {crash_at} of {recovery_operations} in recovery"
        );
        match Store::open(&disk, STORE_NAME) {
            Ok(store) => {
                assert!(!crash_unless_struck(&disk, seed + 1), "{context}: hidden");
                drop(store);
                recoveries_completed += 1;
            }
            Err(error) => {
                assert_failed_by_crash(&disk, 1, &error);
                recoveries_interrupted += 1;
            }
        }
        let (mut store, recovered) = workload.check_recovered(&disk, synced, &context);
        workload.catch_up(&mut store, recovered, &context);
    }
    assert!(
        recoveries_interrupted > 0 && recoveries_completed > 0,
        "{recoveries_interrupted} interrupted, {recoveries_completed} completed"
    );
}

/// A follower's side of a snapshot transfer: apply a few batches, sync, then install the
/// snapshot with syncs after the chunks `sync_after` says. Stops at the first error.
fn install_workload(
    disk: &Disk,
    history: &History,
    snapshot: &StoreSnapshot,
    sync_after: &[bool],
) -> Result<()> {
    let mut follower = open_small(disk)?;
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
        install_workload(&counting, &history, &snapshot, &sync_after).unwrap();
        let operations = sim(&counting).mutation_count();
        let disk = Disk::simulated();
        let crash_at = random.random_range(0..operations);
        sim(&disk).schedule_crash(crash_at, seed);
        // Ok if the crash hit the closing writes after a durable finish.
        let result = install_workload(&disk, &history, &snapshot, &sync_after);
        assert_eq!(
            sim(&disk).crash_count(),
            1,
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
            full_state(&mut follower),
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
            full_state(&mut follower),
            history.states[30].entries,
            "{context}"
        );
    }
    assert!(
        old_states > 0 && new_states > 0,
        "{old_states} old, {new_states} new"
    );
}
