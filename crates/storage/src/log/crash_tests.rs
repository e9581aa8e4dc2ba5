//! Power failures and decay: the log keeps what it synced, never misreads what it did
//! not, and reports damage it cannot explain.
//!
//! Power failures come from the simulated disk's scheduled crash
//! ([`SimDisk::schedule_crash`]). A first, uninterrupted run of an operation counts its
//! mutating disk operations ([`SimDisk::mutation_count`]); then the operation runs again,
//! on a fresh disk, once with power failing before each of those operations in turn and
//! once after it returned, each under many seeds. So every point inside a sync, a
//! rollover, a truncation or a recovery is visited, and each unsynced write is kept, lost
//! or torn at many lengths. Decay is a flipped bit ([`SimDisk::corrupt_bit`]), direct
//! truncation of a file, zeros or garbage appended.

use super::record::{self, HEADER_SIZE_BYTES};
use super::tests::{
    all_entries, append_entries, crash_unless_struck, entry, last_segment, tiny_segments,
};
use super::*;
use crate::disk::{CrashReport, SimDisk};

const SEEDS: u64 = 24;

pub(super) fn is_prefix(shorter: &[Entry], longer: &[Entry]) -> bool {
    shorter.len() <= longer.len() && longer[..shorter.len()] == *shorter
}

/// What recovery must find after an interrupted sync of `appended` whose first entries,
/// `durable`, were synced before: the synced entries and a prefix of the rest, and all
/// of `appended` once the sync `completed`.
pub(super) fn assert_synced_and_a_prefix(
    log: &Log,
    durable: &[Entry],
    appended: &[Entry],
    completed: bool,
) {
    let recovered = all_entries(log);
    assert!(is_prefix(durable, &recovered), "synced entries lost");
    assert!(is_prefix(&recovered, appended), "unsynced bytes misread");
    if completed {
        assert_eq!(recovered, appended);
    }
}

/// What the crash outcomes of one scenario looked like, to prove faults really happened.
#[derive(Debug, Default)]
pub(super) struct Outcomes {
    /// Crash points after the operation returned (one) and inside it.
    completed: u64,
    pub(super) interrupted: u64,
    /// What the crashes did to unsynced writes, summed.
    pub(super) crashes: CrashReport,
    pub(super) distinct_logs: std::collections::BTreeSet<Vec<LogPosition>>,
}

impl Outcomes {
    fn add_crash(&mut self, report: CrashReport) {
        self.crashes.writes_kept += report.writes_kept;
        self.crashes.writes_lost += report.writes_lost;
        self.crashes.writes_torn += report.writes_torn;
        self.crashes.name_operations_kept += report.name_operations_kept;
        self.crashes.name_operations_lost += report.name_operations_lost;
    }

    /// Asserts that the recovered logs began at two first indexes or more: a power
    /// failure struck a compaction both before and after its record became durable.
    pub(super) fn assert_compaction_interrupted(&self) {
        let firsts: std::collections::BTreeSet<u64> = self
            .distinct_logs
            .iter()
            .map(|positions| positions[0].index.0)
            .collect();
        assert!(
            firsts.len() >= 2,
            "compaction never interrupted: {firsts:?}"
        );
    }

    /// Asserts that unsynced writes were kept, lost and torn, each at least once.
    pub(super) fn assert_writes_kept_lost_and_torn(&self) {
        let crashes = &self.crashes;
        assert!(
            crashes.writes_kept > 0 && crashes.writes_lost > 0 && crashes.writes_torn > 0,
            "{self:?}"
        );
    }
}

/// The number of mutating disk operations `operation` performs after `setup`.
fn count_operations(
    options: &LogOptions,
    setup: &impl Fn(&mut Log),
    operation: &impl Fn(&mut Log) -> Result<()>,
) -> u64 {
    let sim = SimDisk::new();
    let mut log = Log::open(Disk::Simulated(sim.clone()), options.clone()).unwrap();
    setup(&mut log);
    let before = sim.mutation_count();
    operation(&mut log).unwrap();
    sim.mutation_count() - before
}

/// Runs `setup`, then `operation` with power failing before each of its disk operations
/// in turn, and once after it, under `SEEDS` seeds; reopens and hands the log to `check`
/// (with whether the operation had completed). After each check the log must accept,
/// sync and keep new entries.
fn crash_everywhere(
    setup: impl Fn(&mut Log),
    operation: impl Fn(&mut Log) -> Result<()>,
    check: impl Fn(&Log, bool),
) -> Outcomes {
    crash_everywhere_with(&tiny_segments(), setup, operation, check)
}

/// [`crash_everywhere`] with the log opened with `options` (after the crash as well).
pub(super) fn crash_everywhere_with(
    options: &LogOptions,
    setup: impl Fn(&mut Log),
    operation: impl Fn(&mut Log) -> Result<()>,
    check: impl Fn(&Log, bool),
) -> Outcomes {
    let operations = count_operations(options, &setup, &operation);
    assert!(operations > 0, "the operation never touches the disk");
    let mut outcomes = Outcomes::default();
    for crash_at in 0..=operations {
        let interrupted = crash_at < operations;
        for seed in 0..SEEDS {
            let context = format!("crash at {crash_at} of {operations}, seed {seed}");
            let sim = SimDisk::new();
            let disk = Disk::Simulated(sim.clone());
            let mut log = Log::open(disk.clone(), options.clone()).unwrap();
            setup(&mut log);
            sim.schedule_crash(crash_at, seed);
            let completed = operation(&mut log).is_ok();
            drop(log);
            assert_eq!(crash_unless_struck(&sim, seed), interrupted, "{context}");
            assert_eq!(completed, !interrupted, "{context}: failure not reported");
            outcomes.add_crash(sim.last_crash().expect("one crash"));
            let mut log = Log::open(disk.clone(), options.clone())
                .unwrap_or_else(|error| panic!("{context}: {error}"));
            log.assert_segment_files_exact();
            check(&log, completed);
            let positions = all_entries(&log)
                .iter()
                .map(|entry| entry.position)
                .collect();
            outcomes.distinct_logs.insert(positions);
            check_appendable_with(options, &disk, &mut log);
        }
        if interrupted {
            outcomes.interrupted += 1;
        } else {
            outcomes.completed += 1;
        }
    }
    outcomes
}

/// The log accepts two more entries, syncs them, and still has them after a reopen.
fn check_appendable(disk: &Disk, log: &mut Log) {
    check_appendable_with(&tiny_segments(), disk, log);
}

/// [`check_appendable`] with the log reopened with `options`; also checks the segment
/// files against the log's bookkeeping before and after the reopen.
pub(super) fn check_appendable_with(options: &LogOptions, disk: &Disk, log: &mut Log) {
    let term = log.last_position().term.0.max(1);
    let before = all_entries(log);
    let added = append_entries(log, term, 2);
    log.sync().unwrap();
    log.assert_segment_files_exact();
    let reopened = Log::open(disk.clone(), options.clone()).unwrap();
    reopened.assert_segment_files_exact();
    assert_eq!(all_entries(&reopened), [before, added].concat());
}

pub(super) fn synced_log(count: u64) -> impl Fn(&mut Log) {
    move |log: &mut Log| {
        append_entries(log, 1, count);
        log.sync().unwrap();
    }
}

pub(super) fn expected_entries(count: u64, term: u64) -> Vec<Entry> {
    (1..=count).map(|index| entry(term, index)).collect()
}

/// A sync interrupted anywhere, with any crash outcome, leaves the synced entries plus a
/// prefix of the batch: never less, never anything else.
fn check_interrupted_sync(synced: u64, batch: u64) -> Outcomes {
    let durable: Vec<Entry> = expected_entries(synced, 1);
    let batch_entries: Vec<Entry> = (synced + 1..=synced + batch)
        .map(|index| entry(2, index))
        .collect();
    let appended = [durable.clone(), batch_entries.clone()].concat();
    crash_everywhere(
        |log| {
            synced_log(synced)(log);
            log.append(&batch_entries).unwrap();
        },
        |log| log.sync().map(|_| ()),
        |log, completed| {
            assert_synced_and_a_prefix(log, &durable, &appended, completed);
            assert_eq!(log.durable_position(), log.last_position());
        },
    )
}

#[test]
fn interrupted_sync_within_one_segment() {
    let outcomes = check_interrupted_sync(8, 2);
    // Lost, torn after the first record, kept whole: all three seen.
    assert_eq!(outcomes.distinct_logs.len(), 3, "{outcomes:?}");
    outcomes.assert_writes_kept_lost_and_torn();
}

#[test]
fn interrupted_sync_across_segment_rollovers() {
    let outcomes = check_interrupted_sync(8, 10);
    // Three segments touched: two writes and two syncs, two creations and their
    // directory syncs.
    assert_eq!(outcomes.interrupted, 10, "{outcomes:?}");
    assert_eq!(outcomes.completed, 1, "{outcomes:?}");
    assert!(outcomes.distinct_logs.len() > 6, "{outcomes:?}");
    outcomes.assert_writes_kept_lost_and_torn();
}

#[test]
fn interrupted_sync_after_a_suffix_truncation_never_resurrects_the_old_tail() {
    let old_tail_term = 1;
    let new_entries: Vec<Entry> = (7..=10).map(|index| entry(3, index)).collect();
    let kept = expected_entries(6, old_tail_term);
    let appended = [kept.clone(), new_entries.clone()].concat();
    let outcomes = crash_everywhere(
        |log| {
            synced_log(12)(log);
            log.truncate_suffix(LogIndex(6)).unwrap();
            log.append(&new_entries).unwrap();
        },
        |log| log.sync().map(|_| ()),
        |log, _| {
            let recovered = all_entries(log);
            assert!(is_prefix(&kept, &recovered) && is_prefix(&recovered, &appended));
        },
    );
    assert!(outcomes.distinct_logs.len() > 2, "{outcomes:?}");
    outcomes.assert_writes_kept_lost_and_torn();
}

/// Power fails anywhere in `truncate_suffix(after)` of a synced log of `count` entries
/// opened with `options`: recovery finds a prefix of the old log that still holds the
/// kept entries, and exactly them once the truncation returned.
pub(super) fn crash_everywhere_in_truncation(
    options: &LogOptions,
    count: u64,
    after: u64,
) -> Outcomes {
    let old = expected_entries(count, 1);
    crash_everywhere_with(
        options,
        synced_log(count),
        |log| log.truncate_suffix(LogIndex(after)),
        |log, completed| {
            let recovered = all_entries(log);
            assert!(is_prefix(&recovered, &old), "after {after}: not a prefix");
            assert!(
                recovered.len() as u64 >= after,
                "after {after}: cut too deep"
            );
            if completed {
                assert_eq!(recovered.len() as u64, after);
            }
        },
    )
}

#[test]
fn interrupted_suffix_truncation() {
    for (count, after) in [(12, 9), (18, 4), (18, 2), (18, 0)] {
        let outcomes = crash_everywhere_in_truncation(&tiny_segments(), count, after);
        assert!(
            outcomes.distinct_logs.len() >= 2,
            "after {after}: {outcomes:?}"
        );
        assert!(
            outcomes.crashes.name_operations_lost > 0,
            "after {after}: removals never lost: {outcomes:?}"
        );
    }
}

#[test]
fn interrupted_prefix_truncation() {
    let old = expected_entries(18, 1);
    let outcomes = crash_everywhere(
        synced_log(18),
        |log| log.truncate_prefix(LogIndex(13)),
        |log, completed| {
            let first = log.first_index().0;
            assert!((1..=12).contains(&first), "first index {first}");
            assert_eq!(all_entries(log), old[first as usize - 1..]);
            let term_before = if first == 1 { Term(0) } else { Term(1) };
            assert_eq!(log.term_at(LogIndex(first - 1)), Some(term_before));
            if completed {
                assert_eq!(first, 12);
            }
        },
    );
    outcomes.assert_compaction_interrupted();
    // The compaction record's writes and the segments' removals were all hit.
    outcomes.assert_writes_kept_lost_and_torn();
    assert!(outcomes.crashes.name_operations_lost > 0, "{outcomes:?}");
}

/// A reset interrupted anywhere leaves a prefix of the old log (after the old compaction
/// point) or the empty log after the new position, never a mix; once it returned, the
/// new one. Covers a position past the log, inside it with another term (a divergent
/// follower), and below a compacted prefix.
#[test]
fn interrupted_reset() {
    let targets = [
        (false, LogPosition::new(3, 40)),
        (false, LogPosition::new(2, 9)),
        (true, LogPosition::new(2, 4)),
    ];
    for (compacted_first, target) in targets {
        let setup = move |log: &mut Log| {
            synced_log(18)(log);
            if compacted_first {
                log.truncate_prefix(LogIndex(13)).unwrap();
            }
            append_entries(log, 1, 2); // pending entries are discarded too
        };
        let old = expected_entries(18, 1);
        let (reset_seen, old_seen) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        let outcomes = crash_everywhere(
            setup,
            |log| log.reset_to(target),
            |log, completed| {
                let recovered = all_entries(log);
                if log.first_index() == target.index.next() && recovered.is_empty() {
                    assert_eq!(log.term_at(target.index), Some(target.term));
                    assert_eq!(log.last_position(), target);
                    reset_seen.set(reset_seen.get() + 1);
                    return;
                }
                assert!(!completed, "{target}: a completed reset left the old log");
                let first = log.first_index().0 as usize;
                assert!(is_prefix(&recovered, &old[first - 1..]), "{target}");
                old_seen.set(old_seen.get() + 1);
            },
        );
        assert!(reset_seen.get() > SEEDS && old_seen.get() > 0, "{target}");
        assert!(
            outcomes.distinct_logs.len() >= 3,
            "{target}: reset never interrupted: {outcomes:?}"
        );
        assert!(outcomes.crashes.name_operations_lost > 0, "{outcomes:?}");
    }
}

/// Builds a synced log of `count` entries on a fresh simulated disk.
fn synced_disk(count: u64) -> (SimDisk, Disk) {
    let sim = SimDisk::new();
    let disk = Disk::Simulated(sim.clone());
    let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
    synced_log(count)(&mut log);
    (sim, disk)
}

pub(super) fn open_error(disk: &Disk) -> String {
    match Log::open(disk.clone(), tiny_segments()) {
        Err(Error::Corruption(message)) => message,
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(log) => panic!("expected corruption, got {:?}", log.last_position()),
    }
}

/// Encoded sizes of the records of entries `first..=last`.
fn record_ends(first: u64, last: u64) -> Vec<u64> {
    let mut end = 0;
    (first..=last)
        .map(|index| {
            end += record::record_size_bytes(entry(1, index).payload.len()) as u64;
            end
        })
        .collect()
}

/// Cutting the last segment at every byte offset loses exactly the records cut into.
#[test]
fn tail_truncated_at_every_byte() {
    // 11 entries: segments [1..=4], [5..=7], [8..=11]; the last one is cut.
    let ends = record_ends(8, 11);
    for cut in 0..=*ends.last().unwrap() {
        let (_, disk) = synced_disk(11);
        let (_, file) = last_segment(&disk);
        file.set_len(cut).unwrap();
        file.sync_data().unwrap();
        check_recovered_cut(&disk, &ends, cut);
    }
}

/// After the last segment (entries 8..=11, records ending at `ends`) was cut at `cut`,
/// the log holds exactly the records that were complete, and works again.
fn check_recovered_cut(disk: &Disk, ends: &[u64], cut: u64) {
    let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
    let complete = ends.iter().filter(|&&end| end <= cut).count() as u64;
    assert_eq!(
        all_entries(&log),
        expected_entries(7 + complete, 1),
        "cut {cut}"
    );
    check_appendable(disk, &mut log);
}

#[test]
fn truncated_middle_segment_is_corruption() {
    let ends = record_ends(5, 7);
    for cut in 0..*ends.last().unwrap() {
        let (_, disk) = synced_disk(11);
        let file = disk.open("log/00000000000000000005.seg").unwrap();
        file.set_len(cut).unwrap();
        let message = open_error(&disk);
        assert!(message.contains(".seg"), "{message}");
    }
}

/// A tail that reads as zeros from inside a record is torn and cut at the last complete
/// record; zeros from a record boundary on are the writer's preallocation and kept, and
/// appends overwrite them.
#[test]
fn zero_filled_tail_is_cut_or_kept() {
    let ends = record_ends(8, 11);
    let last_start = ends[2];
    let last_end = ends[3];
    // (offset from which the file reads as zeros, length of the file)
    let cases = [
        (last_end, last_end + 1),
        (last_end, last_end + 4096),
        (last_start, last_end),
        (last_start + 5, last_end + 100),
        (last_end - 1, last_end),
        (last_start + HEADER_SIZE_BYTES as u64, last_end),
    ];
    for (zero_from, length) in cases {
        let (_, disk) = synced_disk(11);
        let (_, file) = last_segment(&disk);
        file.set_len(zero_from).unwrap();
        file.set_len(length).unwrap();
        let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
        let expected = if zero_from >= last_end { 11 } else { 10 };
        assert_eq!(
            all_entries(&log),
            expected_entries(expected, 1),
            "zeros from {zero_from}"
        );
        let records_end = ends[expected as usize - 8];
        let kept = zero_from == records_end;
        let (_, file) = last_segment(&disk);
        let expected_length = if kept { length } else { records_end };
        assert_eq!(
            file.len().unwrap(),
            expected_length,
            "zeros from {zero_from}"
        );
        log.assert_segment_files_exact();
        check_appendable(&disk, &mut log);
    }
}

#[test]
fn zeros_inside_the_last_record_followed_by_data_are_corruption() {
    let ends = record_ends(8, 11);
    let (_, disk) = synced_disk(11);
    let (_, file) = last_segment(&disk);
    file.write_all_at(ends[2] + 10, &[0; 20]).unwrap();
    open_error(&disk);
}

#[test]
fn garbage_tail() {
    // Shorter than a header: an incomplete write. Longer: not explained by a crash.
    for (length, torn) in [
        (1, true),
        (HEADER_SIZE_BYTES - 1, true),
        (HEADER_SIZE_BYTES, false),
        (500, false),
    ] {
        let (_, disk) = synced_disk(11);
        let (_, file) = last_segment(&disk);
        let end = file.len().unwrap();
        let garbage: Vec<u8> = (0..length).map(|i| (i * 37 % 251 + 1) as u8).collect();
        file.write_all_at(end, &garbage).unwrap();
        if torn {
            let log = Log::open(disk.clone(), tiny_segments()).unwrap();
            assert_eq!(all_entries(&log), expected_entries(11, 1));
        } else {
            let message = open_error(&disk);
            assert!(message.contains(&format!("offset {end}")), "{message}");
        }
    }
}

/// A flipped bit anywhere in a synced record is reported with segment and offset: in the
/// middle of the last segment, in an earlier segment, and in the very last record.
#[test]
fn bit_flips_in_synced_records_are_corruption() {
    let ends = record_ends(8, 11);
    let segment_11 = "log/00000000000000000008.seg";
    let cases = [
        (segment_11, ends[0], ends[1]),
        ("log/00000000000000000005.seg", 0, record_ends(5, 5)[0]),
        (segment_11, ends[2], ends[3]),
    ];
    for (name, start, end) in cases {
        for offset in start..end {
            let (sim, disk) = synced_disk(11);
            sim.corrupt_bit(name, offset, (offset % 8) as u8).unwrap();
            let message = open_error(&disk);
            assert!(
                message.contains(name) && message.contains(&format!("offset {start}")),
                "{name} {offset}: {message}"
            );
        }
    }
}

#[test]
fn decay_after_open_is_reported_by_reads() {
    let (sim, disk) = synced_disk(11);
    let log = Log::open(disk.clone(), tiny_segments()).unwrap();
    sim.corrupt_bit("log/00000000000000000005.seg", 40, 1)
        .unwrap();
    assert!(matches!(log.get(LogIndex(5)), Err(Error::Corruption(_))));
    assert!(matches!(
        log.read_range(LogIndex(3), 10, usize::MAX),
        Err(Error::Corruption(_))
    ));
    assert_eq!(log.get(LogIndex(6)).unwrap(), Some(entry(1, 6)));
}

#[test]
fn structural_damage_is_corruption() {
    // A missing middle segment.
    let (_, disk) = synced_disk(11);
    disk.remove("log/00000000000000000005.seg").unwrap();
    assert!(open_error(&disk).contains("does not continue"));
    // A missing first segment without a compaction record.
    let (_, disk) = synced_disk(11);
    disk.remove("log/00000000000000000001.seg").unwrap();
    assert!(open_error(&disk).contains("compacted"));
    // A record with valid checksums but the wrong index.
    let (_, disk) = synced_disk(11);
    let (_, file) = last_segment(&disk);
    let mut stray = Vec::new();
    record::encode(&mut stray, LogPosition::new(1, 40), b"stray");
    file.write_all_at(file.len().unwrap(), &stray).unwrap();
    assert!(open_error(&disk).contains("cannot follow"));
    // A malformed segment name.
    let (_, disk) = synced_disk(3);
    disk.open("log/7.seg").unwrap();
    assert!(open_error(&disk).contains("malformed"));
}

/// Opens the log on the disk `prepare` returns with power failing before each disk
/// operation of recovery in turn, and once after the open, under several seeds; reopens
/// and hands the log to `check`, then makes sure it accepts new entries. Returns the
/// number of disk operations recovery performed.
fn crash_throughout_recovery(prepare: impl Fn() -> (SimDisk, Disk), check: impl Fn(&Log)) -> u64 {
    let (sim, disk) = prepare();
    let before = sim.mutation_count();
    check(&Log::open(disk, tiny_segments()).unwrap());
    let operations = sim.mutation_count() - before;
    for crash_at in 0..=operations {
        for seed in 0..8 {
            let context = format!("crash at {crash_at} of {operations}, seed {seed}");
            let (sim, disk) = prepare();
            sim.schedule_crash(crash_at, seed);
            let opened = Log::open(disk.clone(), tiny_segments());
            let struck = crash_unless_struck(&sim, seed);
            assert_eq!(opened.is_ok(), !struck, "{context}");
            drop(opened);
            let mut log = Log::open(disk.clone(), tiny_segments())
                .unwrap_or_else(|error| panic!("{context}: {error}"));
            check(&log);
            check_appendable(&disk, &mut log);
        }
    }
    operations
}

/// Recovery's own disk operations can be interrupted too: the syncs and the cut of a
/// torn tail.
#[test]
fn interrupted_recovery_of_a_torn_tail() {
    let ends = record_ends(8, 11);
    let operations = crash_throughout_recovery(
        || {
            let (sim, disk) = synced_disk(11);
            let (_, file) = last_segment(&disk);
            file.set_len(ends[3] - 3).unwrap();
            file.sync_data().unwrap();
            (sim, disk)
        },
        |log| {
            assert_eq!(all_entries(log), expected_entries(10, 1));
            let (_, file) = last_segment(&log.disk);
            assert_eq!(file.len().unwrap(), ends[2], "tail not cut");
        },
    );
    // Syncs of the metadata, the directory and the last segment; the cut and its sync.
    assert_eq!(operations, 5);
}

/// ... and the removals that finish a compaction cut short after its record was stored.
#[test]
fn interrupted_recovery_of_a_compaction() {
    let operations = crash_throughout_recovery(
        || {
            let (sim, disk) = synced_disk(18);
            let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
            // The compaction record takes two writes and two syncs; then power fails.
            sim.schedule_crash(4, 0);
            assert!(log.truncate_prefix(LogIndex(13)).is_err());
            assert_eq!(sim.crash_count(), 1);
            (sim, disk)
        },
        |log| {
            assert_eq!(log.first_index(), LogIndex(12));
            assert_eq!(log.term_at(LogIndex(11)), Some(Term(1)));
            assert_eq!(all_entries(log), expected_entries(18, 1)[11..]);
            let segments = log.disk.list(LOG_DIRECTORY).unwrap();
            assert!(!segments.contains(&segment::segment_name(LogIndex(1))));
        },
    );
    // Metadata and directory syncs, three removals, a directory sync, the last segment's
    // sync.
    assert_eq!(operations, 7);
}

/// The first open of a log creates its compaction record and syncs its directory: power
/// failing before any of those steps leaves a disk that opens as an empty log.
#[test]
fn interrupted_first_open() {
    let sim = SimDisk::new();
    Log::open(Disk::Simulated(sim.clone()), tiny_segments()).unwrap();
    let operations = sim.mutation_count();
    assert!(operations >= 3, "creation, directory sync and file sync");
    let mut names_lost = 0;
    for crash_at in 0..=operations {
        for seed in 0..SEEDS {
            let sim = SimDisk::new();
            let disk = Disk::Simulated(sim.clone());
            sim.schedule_crash(crash_at, seed);
            let opened = Log::open(disk.clone(), tiny_segments());
            let struck = crash_unless_struck(&sim, seed);
            assert_eq!(opened.is_ok(), !struck, "crash at {crash_at}, seed {seed}");
            drop(opened);
            names_lost += sim.last_crash().unwrap().name_operations_lost;
            let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
            assert_eq!(log.last_position(), LogPosition::ZERO);
            check_appendable(&disk, &mut log);
        }
    }
    assert!(names_lost > 0, "the creation was never lost");
}

/// The same recovery decisions on the real disk: a cut or zero-extended tail is repaired,
/// a flipped bit followed by more records is reported.
#[test]
fn os_disk_recovers_torn_tails_and_reports_decay() {
    let root = tempfile::tempdir().unwrap();
    let ends = record_ends(8, 11);
    let build = |name: &str| {
        let disk = Disk::os(root.path().join(name)).unwrap();
        let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
        synced_log(11)(&mut log);
        disk
    };
    for cut in (0..ends[3]).step_by(23) {
        let disk = build(&format!("cut{cut}"));
        let (_, file) = last_segment(&disk);
        file.set_len(cut).unwrap();
        file.set_len(cut + 700).unwrap();
        check_recovered_cut(&disk, &ends, cut);
    }
    let disk = build("flip");
    let (name, file) = last_segment(&disk);
    let mut byte = [0u8; 1];
    file.read_exact_at(ends[1] + 3, &mut byte).unwrap();
    file.write_all_at(ends[1] + 3, &[byte[0] ^ 0x10]).unwrap();
    let message = open_error(&disk);
    assert!(
        message.contains(&format!("{name} offset {}", ends[1])),
        "{message}"
    );
}
