//! The pipelined sync (`pipeline.rs`): the durable position moves only when the caller
//! hands a completed sync back, appends go on meanwhile, operations that write files
//! complete an outstanding sync first, and a failed sync fails the log.

use super::tests::{all_entries, append_entries, each_disk, tiny_segments};
use super::*;
use crate::disk::SimDisk;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

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
