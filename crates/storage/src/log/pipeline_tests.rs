//! The pipelined sync (`pipeline.rs`): the durable position moves only when the caller
//! hands a completed sync back, appends go on meanwhile, operations that write files
//! complete an outstanding sync first, and a failed sync fails the log.
//!
//! The first tests pin down the contract call by call: stale completions, failed ones
//! (current or stale), completions never started and a second start (caller bugs, so
//! panics), the one `sync_data` left to the caller. The crash tests then cut the power
//! at every disk operation of a pipelined history (`crash_everywhere_with` of the crash
//! tests): inside `start_sync` (within a segment, across rollovers, extending the
//! preallocated file), in the window while appends go on in memory, in the caller's run,
//! in the next start after a hand-back, and in a suffix truncation, a compaction or a
//! reset that completes an outstanding sync. A [`Promises`] tracker follows each call as
//! it returns: after the crash, every entry a finished sync (or a completed `sync`, or a
//! truncation) promised durable must be there, and beyond them at most a prefix of what
//! was written, never an entry that only lived in memory. Each scenario also asserts that
//! the crashes really kept, lost and tore unsynced writes, and that recovered logs landed
//! on both sides of the promises.

use super::crash_tests::{Outcomes, crash_everywhere_with, is_prefix};
use super::tests::{all_entries, append_entries, each_disk, tiny_segments};
use super::*;
use crate::disk::SimDisk;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::cell::{Cell, RefCell};

#[test]
fn the_durable_position_moves_when_the_sync_is_handed_back() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), LogOptions::default()).unwrap();
        let first = append_entries(&mut log, 1, 5);
        let pending = log.start_sync().unwrap().expect("entries pending");
        assert!(log.sync_outstanding());
        let second = append_entries(&mut log, 1, 3);
        assert_eq!(log.durable_position().index, LogIndex(0));
        assert_eq!(all_entries(&log), [first.clone(), second.clone()].concat());
        let durable = log.finish_sync(pending.run()).unwrap();
        assert_eq!(durable, LogPosition::new(1, 5));
        assert!(!log.sync_outstanding());
        let pending = log.start_sync().unwrap().expect("the second batch");
        assert_eq!(
            log.finish_sync(pending.run()).unwrap(),
            LogPosition::new(1, 8)
        );
        assert!(log.start_sync().unwrap().is_none(), "nothing pending");
        log.assert_segment_files_exact();
        drop(log);
        let log = Log::open(disk.clone(), LogOptions::default()).unwrap();
        assert_eq!(all_entries(&log), [first, second].concat());
    });
}

#[test]
fn a_sync_completed_by_another_operation_comes_back_stale() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), LogOptions::default()).unwrap();
        append_entries(&mut log, 1, 5);
        let pending = log.start_sync().unwrap().expect("entries pending");
        append_entries(&mut log, 1, 2);
        log.truncate_suffix(LogIndex(6)).unwrap();
        assert!(!log.sync_outstanding());
        assert_eq!(log.durable_position().index, LogIndex(5));
        assert_eq!(log.finish_sync(pending.run()).unwrap().index, LogIndex(5));
        assert_eq!(log.sync().unwrap().index, LogIndex(6));
        log.assert_segment_files_exact();
    });
}

#[test]
fn appends_while_a_sync_is_outstanding_may_begin_a_new_segment() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
        let mut appended = append_entries(&mut log, 1, 3);
        for _ in 0..6 {
            let pending = log.start_sync().unwrap().expect("entries pending");
            appended.extend(append_entries(&mut log, 1, 4));
            log.finish_sync(pending.run()).unwrap();
        }
        log.sync().unwrap();
        assert!(log.segments.len() > 2, "the batches rolled over");
        log.assert_segment_files_exact();
        drop(log);
        let log = Log::open(disk.clone(), tiny_segments()).unwrap();
        assert_eq!(all_entries(&log), appended);
    });
}

#[test]
fn a_failed_sync_fails_the_log_even_when_stale() {
    let mut log = Log::open(Disk::simulated(), LogOptions::default()).unwrap();
    append_entries(&mut log, 1, 2);
    let pending = log.start_sync().unwrap().expect("entries pending");
    let sequence = pending.sequence();
    log.sync().unwrap();
    let failed = CompletedSync {
        sequence,
        result: Err(std::io::Error::other("injected")),
    };
    let error = log.finish_sync(failed).unwrap_err();
    assert!(error.to_string().contains("injected"), "{error}");
    assert!(log.append(&[Entry::new(1, 3, b"x".to_vec())]).is_err());
}

#[test]
fn a_failed_sync_that_is_outstanding_fails_the_log_and_a_reopen_reads_what_it_wrote() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
        let written = append_entries(&mut log, 1, 3);
        let pending = log.start_sync().unwrap().expect("entries pending");
        append_entries(&mut log, 1, 2);
        let failed = CompletedSync {
            sequence: pending.sequence(),
            result: Err(std::io::Error::other("injected")),
        };
        let error = log.finish_sync(failed).unwrap_err();
        assert!(matches!(error, Error::Io(_)), "{error}");
        assert_eq!(log.durable_position().index, LogIndex(0));
        assert!(matches!(log.start_sync(), Err(Error::Io(_))));
        assert!(matches!(log.sync(), Err(Error::Io(_))));
        // The caller's own run, arriving late, is refused too, without a panic.
        assert!(log.finish_sync(pending.run()).is_err());
        drop(log);
        // No crash: the operating system kept the write, and nothing appended after it.
        let log = Log::open(disk.clone(), tiny_segments()).unwrap();
        assert_eq!(all_entries(&log), written);
    });
}

/// A stale completion that failed fails the log even while a newer sync is outstanding:
/// after a failed `fdatasync` nothing about the file's data can be trusted.
#[test]
fn a_stale_failed_sync_fails_the_log_while_a_newer_one_is_outstanding() {
    let mut log = Log::open(Disk::simulated(), LogOptions::default()).unwrap();
    append_entries(&mut log, 1, 2);
    let stale = log.start_sync().unwrap().expect("entries pending");
    log.sync().unwrap();
    append_entries(&mut log, 1, 2);
    let current = log.start_sync().unwrap().expect("entries pending");
    assert_ne!(stale.sequence(), current.sequence());
    let failed = CompletedSync {
        sequence: stale.sequence(),
        result: Err(std::io::Error::other("injected")),
    };
    assert!(log.finish_sync(failed).is_err());
    assert!(log.finish_sync(current.run()).is_err(), "the log failed");
    assert_eq!(log.durable_position().index, LogIndex(2));
}

/// A successful stale completion changes nothing, also when it arrives after the sync
/// that followed it was handed back.
#[test]
fn a_stale_completion_after_the_next_one_changes_nothing() {
    let mut log = Log::open(Disk::simulated(), tiny_segments()).unwrap();
    append_entries(&mut log, 1, 2);
    let stale = log.start_sync().unwrap().expect("entries pending");
    log.sync().unwrap();
    append_entries(&mut log, 1, 2);
    let current = log.start_sync().unwrap().expect("entries pending");
    append_entries(&mut log, 1, 1);
    assert_eq!(log.finish_sync(current.run()).unwrap().index, LogIndex(4));
    assert_eq!(log.finish_sync(stale.run()).unwrap().index, LogIndex(4));
    assert!(!log.sync_outstanding());
    assert_eq!(log.sync().unwrap().index, LogIndex(5));
}

#[test]
#[should_panic(expected = "never started")]
fn a_completion_numbered_zero_was_never_started() {
    let mut log = Log::open(Disk::simulated(), tiny_segments()).unwrap();
    append_entries(&mut log, 1, 2);
    let _pending = log.start_sync().unwrap().expect("entries pending");
    let _ = log.finish_sync(CompletedSync {
        sequence: 0,
        result: Ok(()),
    });
}

#[test]
#[should_panic(expected = "never started")]
fn a_completion_numbered_past_the_last_start_was_never_started() {
    let mut log = Log::open(Disk::simulated(), tiny_segments()).unwrap();
    append_entries(&mut log, 1, 2);
    let pending = log.start_sync().unwrap().expect("entries pending");
    let _ = log.finish_sync(CompletedSync {
        sequence: pending.sequence() + 1,
        result: Ok(()),
    });
}

#[test]
#[should_panic(expected = "already outstanding")]
fn starting_a_second_sync_before_the_first_is_handed_back_is_a_caller_bug() {
    let mut log = Log::open(Disk::simulated(), tiny_segments()).unwrap();
    append_entries(&mut log, 1, 2);
    let _first = log.start_sync().unwrap().expect("entries pending");
    append_entries(&mut log, 1, 2);
    let _ = log.start_sync();
}

/// Within one segment `start_sync` leaves the one `sync_data` to the caller; across a
/// rollover it syncs each earlier segment itself, and only the last one is left.
#[test]
fn start_sync_leaves_exactly_the_last_segments_sync_to_the_caller() {
    let sim = SimDisk::new();
    let mut log = Log::open(Disk::Simulated(sim.clone()), tiny_segments()).unwrap();
    // Entries 1..=4 fill the first segment; then [5..=7], [8..=11], [12..=14], [15..].
    for (count, earlier_segments) in [(2, 0), (1, 0), (10, 3)] {
        append_entries(&mut log, 1, count);
        let before = sim.sync_count();
        let pending = log.start_sync().unwrap().expect("entries pending");
        assert_eq!(sim.sync_count() - before, earlier_segments, "{count}");
        append_entries(&mut log, 1, 1);
        let completed = pending.run();
        assert_eq!(sim.sync_count() - before, earlier_segments + 1, "{count}");
        log.finish_sync(completed).unwrap();
        assert_eq!(sim.sync_count() - before, earlier_segments + 1, "{count}");
    }
}

/// A sync still held when the power fails reports an error when it runs, and the log
/// reopened after the crash starts numbering its syncs afresh.
#[test]
fn a_sync_run_after_a_power_failure_reports_an_error() {
    let sim = SimDisk::new();
    let disk = Disk::Simulated(sim.clone());
    let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
    append_entries(&mut log, 1, 3);
    let pending = log.start_sync().unwrap().expect("entries pending");
    sim.crash(&mut ChaCha8Rng::seed_from_u64(7));
    assert!(pending.run().result.is_err());
    drop(log);
    let mut log = Log::open(disk, tiny_segments()).unwrap();
    let recovered = all_entries(&log);
    assert!(recovered.len() <= 3);
    append_entries(&mut log, 2, 1);
    let pending = log.start_sync().unwrap().expect("entries pending");
    assert_eq!(pending.sequence(), 1);
}

/// What a crash scenario's log promised so far, updated as each call returns, so that a
/// power failure at any point can be judged against it: the entries the caller sees, how
/// many of them the log reported durable, and how many were written to disk at all.
/// Shared by a scenario's setup, operation and check (all run for every crash point).
#[derive(Default)]
struct Promises {
    /// The index of the first entry of `appended` (past a reset: after its position;
    /// past a compaction: its first entry kept).
    first: Cell<u64>,
    /// The highest first index a crash may leave: above `first` while a compaction runs.
    first_max: Cell<u64>,
    appended: RefCell<Vec<Entry>>,
    /// How many entries of `appended` a finished sync, a completed [`Log::sync`] or a
    /// truncation made durable.
    durable: Cell<usize>,
    /// How many entries of `appended` were written: the durable ones and those of the
    /// outstanding sync. Entries appended after it started live in memory only.
    written: Cell<usize>,
    /// The sync [`Log::start_sync`] handed out and not yet handed back.
    pending: RefCell<Option<PendingSync>>,
}

impl Promises {
    /// Starts a scenario afresh on a new, empty log.
    fn reset(&self) {
        self.first.set(1);
        self.first_max.set(1);
        self.appended.borrow_mut().clear();
        self.durable.set(0);
        self.written.set(0);
        self.pending.borrow_mut().take();
    }

    fn append(&self, log: &mut Log, term: u64, count: u64) {
        self.appended
            .borrow_mut()
            .extend(append_entries(log, term, count));
    }

    fn append_entries(&self, log: &mut Log, entries: &[Entry]) {
        log.append(entries).unwrap();
        self.appended.borrow_mut().extend_from_slice(entries);
    }

    /// The durable position as a count of `appended`.
    fn durable_count(&self, log: &Log) -> usize {
        let durable = log.durable_position().index.0 + 1 - self.first.get();
        usize::try_from(durable).expect("small")
    }

    /// A sync (or a start) may write every entry appended as soon as it is called.
    fn sync(&self, log: &mut Log) -> Result<()> {
        self.written.set(self.appended.borrow().len());
        log.sync()?;
        self.durable.set(self.appended.borrow().len());
        Ok(())
    }

    /// Starts a sync and holds it: what it wrote may survive a crash from the call on,
    /// and once it returns the segments before the last are durable.
    fn start(&self, log: &mut Log) -> Result<()> {
        self.written.set(self.appended.borrow().len());
        let pending = log.start_sync()?.expect("entries pending");
        self.durable.set(self.durable_count(log));
        assert!(self.durable.get() < self.written.get());
        *self.pending.borrow_mut() = Some(pending);
        Ok(())
    }

    /// Runs the held sync and hands it back: the outstanding one makes what it wrote
    /// durable, a stale one changes nothing.
    fn finish(&self, log: &mut Log) -> Result<()> {
        let pending = self.pending.borrow_mut().take().expect("a sync held");
        let durable = log.finish_sync(pending.run())?;
        assert!(!log.sync_outstanding());
        assert_eq!(durable, log.durable_position());
        self.durable.set(self.durable_count(log));
        assert!(self.durable.get() >= self.written.get().min(self.appended.borrow().len()));
        Ok(())
    }

    /// A suffix truncation: asking for it gives up the promise of the entries past
    /// `after` at once, but until it returns a crash may leave any of them that were
    /// written; once it returns, none.
    fn truncate_suffix(&self, log: &mut Log, after: u64) -> Result<()> {
        let kept = usize::try_from(after + 1 - self.first.get()).expect("small");
        self.durable.set(self.durable.get().min(kept));
        log.truncate_suffix(LogIndex(after))?;
        self.appended.borrow_mut().truncate(kept);
        self.written.set(self.written.get().min(kept));
        self.durable.set(self.durable_count(log));
        Ok(())
    }

    /// A compaction below `before`: until it returns a crash may leave any first index up
    /// to `before`, and no entry above the first is lost either way.
    fn truncate_prefix(&self, log: &mut Log, before: u64) -> Result<()> {
        self.first_max.set(before);
        log.truncate_prefix(LogIndex(before))?;
        let first = log.first_index().0;
        let dropped = usize::try_from(first - self.first.get()).expect("small");
        self.appended.borrow_mut().drain(..dropped);
        self.first.set(first);
        self.first_max.set(first);
        self.written.set(self.written.get() - dropped);
        self.durable.set(self.durable_count(log));
        Ok(())
    }

    /// A reset: asking for it gives up every promise (an interrupted reset may leave any
    /// prefix of the old log); once it returns the log is empty after `target`.
    fn reset_to(&self, log: &mut Log, target: LogPosition) -> Result<()> {
        self.durable.set(0);
        log.reset_to(target)?;
        self.first.set(target.index.0 + 1);
        self.appended.borrow_mut().clear();
        self.written.set(0);
        Ok(())
    }

    /// The recovered log holds every entry promised durable and at most a prefix of the
    /// entries written: never an entry that only lived in memory.
    fn check(&self, log: &Log) {
        let first = log.first_index().0;
        assert!(
            (self.first.get()..=self.first_max.get().max(self.first.get())).contains(&first),
            "first index {first}"
        );
        let recovered = all_entries(log);
        let compacted = usize::try_from(first - self.first.get()).expect("small");
        let appended = &self.appended.borrow()[compacted..];
        let (durable, written) = (
            self.durable.get() - compacted,
            self.written.get() - compacted,
        );
        assert!(
            is_prefix(&appended[..durable], &recovered),
            "entries promised durable lost: {durable} promised, {} recovered",
            recovered.len()
        );
        assert!(
            is_prefix(&recovered, &appended[..written]),
            "more than was written: {written} written, {} recovered",
            recovered.len()
        );
    }
}

/// Runs `operation` after `setup` with power failing at each of its disk operations and
/// after it ([`crash_everywhere_with`]), and checks every recovered log against the
/// promises. Returns the outcomes and how many recovered logs held entries past the
/// promised durable ones (unsynced writes that survived) and short of the written ones
/// (unsynced writes lost or torn).
fn crash_pipeline(
    options: &LogOptions,
    setup: impl Fn(&Promises, &mut Log),
    operation: impl Fn(&Promises, &mut Log) -> Result<()>,
) -> (Outcomes, u64, u64) {
    let promises = Promises::default();
    let (beyond_durable, short_of_written) = (Cell::new(0), Cell::new(0));
    let outcomes = crash_everywhere_with(
        options,
        |log| {
            promises.reset();
            setup(&promises, log);
        },
        |log| operation(&promises, log),
        |log, _| {
            promises.check(log);
            let recovered = all_entries(log).len();
            if recovered > promises.durable.get() {
                beyond_durable.set(beyond_durable.get() + 1);
            }
            if recovered < promises.written.get() {
                short_of_written.set(short_of_written.get() + 1);
            }
        },
    );
    (outcomes, beyond_durable.get(), short_of_written.get())
}

/// What every crash scenario must show: more than `distinct_logs_more_than` different
/// recovered logs, some holding unsynced entries that survived (`beyond` the promised
/// durable ones) and some missing written ones (`short`), and unsynced writes kept,
/// lost and torn.
fn assert_faults_seen(
    outcomes: &Outcomes,
    distinct_logs_more_than: usize,
    (beyond, short): (u64, u64),
    context: &str,
) {
    assert!(
        outcomes.distinct_logs.len() > distinct_logs_more_than,
        "{context}: {outcomes:?}"
    );
    assert!(beyond > 0 && short > 0, "{context}: {beyond} {short}");
    outcomes.assert_writes_kept_lost_and_torn();
}

/// Setup of most scenarios: entries 1..=8 synced (segments [1..=4], [5..=7], [8..]),
/// `count` more appended.
fn synced_and_appended(count: u64) -> impl Fn(&Promises, &mut Log) {
    move |promises, log| {
        promises.append(log, 1, 8);
        promises.sync(log).unwrap();
        promises.append(log, 2, count);
    }
}

/// Power fails inside `start_sync` of one segment's batch or in the window after it,
/// while appends go on in memory (crossing into a segment without a file): the batch is
/// lost, torn or kept, and nothing appended after it ever comes back.
#[test]
fn crash_in_and_after_start_sync_within_one_segment() {
    let (outcomes, beyond, short) =
        crash_pipeline(&tiny_segments(), synced_and_appended(2), |promises, log| {
            promises.start(log)?;
            promises.append(log, 2, 4);
            Ok(())
        });
    assert_eq!(outcomes.distinct_logs.len(), 3, "{outcomes:?}");
    assert!(beyond > 0 && short > 0, "{beyond} {short}");
    outcomes.assert_writes_kept_lost_and_torn();
}

/// Power fails inside a `start_sync` whose batch crosses segment rollovers (earlier
/// segments written and synced, new files created) or in the window after it.
#[test]
fn crash_in_and_after_start_sync_across_rollovers() {
    let (outcomes, beyond, short) = crash_pipeline(
        &tiny_segments(),
        synced_and_appended(10),
        |promises, log| {
            promises.start(log)?;
            promises.append(log, 3, 3);
            Ok(())
        },
    );
    // Segments [8..=11] and [12..=14] written and synced, [12..] and [15..] created
    // with their directory syncs, [15..] written.
    assert_eq!(outcomes.interrupted, 9, "{outcomes:?}");
    assert_faults_seen(&outcomes, 6, (beyond, short), "");
}

/// Power fails inside a `start_sync` whose batch outgrows the preallocated file, so it
/// writes zeros past the batch first, or in the window after it: the zeros and the batch
/// are each kept, lost or torn, and recovery still finds a prefix of the batch.
#[test]
fn crash_in_and_after_start_sync_extending_the_file() {
    let options = LogOptions::default();
    let batch: Vec<Entry> = (2..=25)
        .map(|index| Entry::new(1, index, vec![index as u8; 4000]))
        .collect();
    let (outcomes, beyond, short) = crash_pipeline(
        &options,
        |promises, log| {
            promises.append(log, 1, 1);
            promises.sync(log).unwrap();
            promises.append_entries(log, &batch);
        },
        |promises, log| {
            let before = log.segments[0].file_length_bytes;
            promises.start(log)?;
            assert!(before < 25 * 4000, "the batch outgrows the file");
            promises.append(log, 1, 2);
            Ok(())
        },
    );
    // The zeros, then the batch.
    assert_eq!(outcomes.interrupted, 2, "{outcomes:?}");
    assert_faults_seen(&outcomes, 3, (beyond, short), "");
}

/// Power fails anywhere in a whole pipelined round and the start of the next: start,
/// appends in the window (a new segment in memory), the caller's run, the hand-back, a
/// start that must first sync and cut the segment the first one wrote and create new
/// files, and its run and hand-back.
#[test]
fn crash_anywhere_in_two_pipelined_rounds() {
    let (outcomes, beyond, short) =
        crash_pipeline(&tiny_segments(), synced_and_appended(3), |promises, log| {
            promises.start(log)?;
            promises.append(log, 2, 4);
            promises.finish(log)?;
            promises.start(log)?;
            promises.append(log, 3, 2);
            promises.finish(log)?;
            promises.append(log, 3, 1);
            Ok(())
        });
    assert!(outcomes.interrupted >= 9, "{outcomes:?}");
    assert_faults_seen(&outcomes, 6, (beyond, short), "");
}

/// Power fails anywhere in a suffix truncation that completes an outstanding sync, and in
/// the appends, stale hand-back and next round after it. The cut falls below the
/// outstanding write (removing its segment), inside it, or among the entries appended
/// after it started.
#[test]
fn crash_anywhere_in_a_suffix_truncation_with_a_sync_outstanding() {
    for after in [5, 9, 12] {
        let (outcomes, beyond, short) = crash_pipeline(
            &tiny_segments(),
            |promises, log| {
                synced_and_appended(3)(promises, log);
                promises.start(log).unwrap();
                promises.append(log, 2, 3);
            },
            |promises, log| {
                promises.truncate_suffix(log, after)?;
                assert!(!log.sync_outstanding());
                promises.append(log, 4, 2);
                promises.finish(log)?;
                promises.start(log)?;
                promises.finish(log)
            },
        );
        let context = format!("after {after}");
        assert_faults_seen(&outcomes, 3, (beyond, short), &context);
        if after == 5 {
            assert!(outcomes.crashes.name_operations_lost > 0, "{outcomes:?}");
        }
    }
}

/// Power fails anywhere in a compaction that completes an outstanding sync, and in the
/// appends, stale hand-back and next round after it: a prefix of the segments below the
/// compaction point may remain, every entry above it is kept.
#[test]
fn crash_anywhere_in_a_compaction_with_a_sync_outstanding() {
    let (outcomes, beyond, short) = crash_pipeline(
        &tiny_segments(),
        |promises, log| {
            synced_and_appended(3)(promises, log);
            promises.start(log).unwrap();
            promises.append(log, 2, 3);
        },
        |promises, log| {
            promises.truncate_prefix(log, 8)?;
            assert_eq!(log.first_index(), LogIndex(8));
            assert!(!log.sync_outstanding());
            promises.append(log, 4, 2);
            promises.finish(log)?;
            promises.start(log)?;
            promises.finish(log)
        },
    );
    outcomes.assert_compaction_interrupted();
    assert!(beyond > 0 && short > 0, "{beyond} {short}");
    outcomes.assert_writes_kept_lost_and_torn();
    assert!(outcomes.crashes.name_operations_lost > 0, "{outcomes:?}");
}

/// Power fails anywhere in a reset that completes an outstanding sync, and in the stale
/// hand-back and the first round after it: a crash before the reset returns leaves a
/// prefix of the old log (or, once its record is stored, the empty log after the target),
/// after it only the new log.
#[test]
fn crash_anywhere_in_a_reset_with_a_sync_outstanding() {
    for target in [LogPosition::new(3, 40), LogPosition::new(3, 9)] {
        let promises_check = |promises: &Promises, log: &Log| {
            let reset_on_disk = log.first_index() == target.index.next();
            if reset_on_disk && promises.first.get() == 1 {
                // Stored before the call could return: the empty log after the target.
                assert!(all_entries(log).is_empty());
                assert_eq!(log.term_at(target.index), Some(target.term));
            } else {
                promises.check(log);
            }
        };
        let promises = Promises::default();
        let outcomes = crash_everywhere_with(
            &tiny_segments(),
            |log| {
                promises.reset();
                synced_and_appended(3)(&promises, log);
                promises.start(log).unwrap();
                promises.append(log, 2, 3);
            },
            |log| {
                promises.reset_to(log, target)?;
                promises.finish(log)?;
                promises.append(log, 4, 2);
                promises.start(log)?;
                promises.finish(log)
            },
            |log, _| promises_check(&promises, log),
        );
        assert!(outcomes.distinct_logs.len() > 3, "{target}: {outcomes:?}");
        assert!(outcomes.crashes.name_operations_lost > 0, "{outcomes:?}");
        outcomes.assert_writes_kept_lost_and_torn();
    }
}
