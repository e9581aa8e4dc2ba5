//! The pipelined sync (`pipeline.rs`): the durable position moves only when the caller
//! hands a completed sync back, appends go on meanwhile, operations that write files
//! complete an outstanding sync first, and a failed sync fails the log.

use super::tests::{all_entries, append_entries, each_disk, tiny_segments};
use super::*;

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
