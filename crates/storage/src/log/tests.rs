//! Table tests of the log's operations, run over the simulated disk and the real one.
//!
//! Each case is a script of operations and the state expected at its end. While a script
//! runs, a shadow model (the entries the log should hold, and how many of them are
//! durable) is compared with the log after every step: every entry readable with `get`
//! and `read_range`, every term answered by `term_at`. The helpers here are shared with
//! the crash tests, the model tests and the metadata tests.
//!
//! Scripts may also pipeline their syncs: `StartSync` holds the sync the log hands out,
//! `FinishSync` runs the oldest one held and hands it back. The model says exactly where
//! the durable position stands: `start_sync` makes every segment before the last durable
//! at once, the last one waits for the hand-back, and a sync, a truncation that writes or
//! a reset completes the outstanding sync itself, after which its hand-back changes
//! nothing. A reopen without a crash reads back everything written (the operating system
//! keeps it), so the outstanding sync's entries survive it and the entries appended after
//! it, only in memory, do not.

use super::*;
use crate::disk::{File, SimDisk};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Options with tiny segments, so that a few entries already span several segments.
pub(super) fn tiny_segments() -> LogOptions {
    LogOptions {
        segment_size_max_bytes: 200,
        ..LogOptions::default()
    }
}

/// Ends an operation run with a crash scheduled on `sim` ([`SimDisk::schedule_crash`])
/// in exactly one power failure: returns whether the scheduled crash struck inside the
/// operation; if it did not, cancels it and fails the power now, with the same seed.
pub(crate) fn crash_unless_struck(sim: &SimDisk, seed: u64) -> bool {
    let struck = !sim.cancel_scheduled_crash();
    if !struck {
        sim.crash(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    struck
}

/// A deterministic entry whose payload length varies with its index (0 to 60 bytes).
pub(super) fn entry(term: u64, index: u64) -> Entry {
    let payload: Vec<u8> = format!("t{term}i{index};")
        .bytes()
        .cycle()
        .take((index % 7 * 10) as usize)
        .collect();
    Entry::new(term, index, payload)
}

/// Appends `count` entries of `term` after the log's last entry.
pub(super) fn append_entries(log: &mut Log, term: u64, count: u64) -> Vec<Entry> {
    let next = log.last_position().index.0 + 1;
    let entries: Vec<Entry> = (next..next + count)
        .map(|index| entry(term, index))
        .collect();
    log.append(&entries).unwrap();
    entries
}

/// Every entry of the log, read in one range.
pub(super) fn all_entries(log: &Log) -> Vec<Entry> {
    log.read_range(log.first_index(), usize::MAX, usize::MAX)
        .unwrap()
}

/// The last segment file of the log on `disk` (by name order).
pub(super) fn last_segment(disk: &Disk) -> (String, File) {
    let name = disk
        .list(LOG_DIRECTORY)
        .unwrap()
        .into_iter()
        .rfind(|name| name.ends_with(".seg"))
        .expect("a segment exists");
    let file = disk.open(&name).unwrap();
    (name, file)
}

/// Checks that `log` holds exactly `expected` (from its first index on) and answers every
/// accessor consistently with it.
pub(super) fn assert_log_holds(log: &Log, expected: &[Entry]) {
    assert_eq!(all_entries(log), expected);
    let last = expected
        .last()
        .map_or(log.first_index().0 - 1, |entry| entry.position.index.0);
    assert_eq!(log.last_position().index, LogIndex(last));
    for entry in expected {
        assert_eq!(log.get(entry.position.index).unwrap().as_ref(), Some(entry));
        assert_eq!(log.term_at(entry.position.index), Some(entry.position.term));
    }
    assert_eq!(log.get(LogIndex(last + 1)).unwrap(), None);
    assert_eq!(log.term_at(LogIndex(last + 1)), None);
    assert!(log.term_at(log.first_index().previous().unwrap()).is_some());
}

pub(super) fn each_disk(test: impl Fn(&Disk)) {
    let directory = tempfile::tempdir().unwrap();
    test(&Disk::os(directory.path()).unwrap());
    test(&Disk::simulated());
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Append {
        term: u64,
        count: u64,
    },
    Sync,
    /// [`Log::start_sync`]; the runner holds the returned sync, if any.
    StartSync,
    /// Runs the oldest sync the runner holds and hands it back ([`Log::finish_sync`]):
    /// the outstanding one, or a stale one that another operation completed.
    FinishSync,
    Commit(u64),
    Suffix(u64),
    Prefix(u64),
    Reopen,
}

/// What the log must look like at the end of a script.
#[derive(Debug, PartialEq, Eq)]
struct Expected {
    first: u64,
    last: LogPosition,
    durable: LogPosition,
    segments: usize,
}

/// The shadow model: entries by index, how many are durable, and the outstanding sync.
#[derive(Default)]
struct Model {
    entries: Vec<Entry>,
    durable_count: usize,
    /// The sync the log has outstanding: its sequence, and how many entries its write
    /// covers (all of them when it started).
    in_flight: Option<(u64, usize)>,
}

impl Model {
    /// Another operation completed the outstanding sync: what it wrote is durable.
    fn complete_in_flight(&mut self) {
        if let Some((_, written)) = self.in_flight.take() {
            self.durable_count = self.durable_count.max(written);
        }
    }

    /// What a reopen without a crash reads back: everything written, which is the
    /// durable entries and those of the outstanding sync (the operating system keeps
    /// them), never the entries only appended in memory.
    fn reopen(&mut self) {
        self.complete_in_flight();
        self.entries.truncate(self.durable_count);
    }
}

/// Runs one script against a log and the model, holding the syncs handed out.
struct Runner<'a> {
    disk: &'a Disk,
    log: Log,
    model: Model,
    /// Syncs from [`Log::start_sync`] not yet handed back, oldest first.
    held: std::collections::VecDeque<PendingSync>,
}

impl Runner<'_> {
    fn apply(&mut self, op: Op) {
        let (log, model) = (&mut self.log, &mut self.model);
        match op {
            Op::Append { term, count } => model.entries.extend(append_entries(log, term, count)),
            Op::Sync => {
                let durable = log.sync().unwrap();
                assert_eq!(durable, log.last_position());
                model.in_flight = None;
                model.durable_count = model.entries.len();
            }
            Op::StartSync => self.start_sync(),
            Op::FinishSync => self.finish_sync(),
            Op::Commit(index) => log.mark_committed(LogIndex(index)),
            Op::Suffix(after) => {
                log.truncate_suffix(LogIndex(after)).unwrap();
                if after < model.entries.len() as u64 {
                    model.complete_in_flight();
                }
                model
                    .entries
                    .retain(|entry| entry.position.index.0 <= after);
                model.durable_count = model.durable_count.min(model.entries.len());
            }
            Op::Prefix(before) => {
                let first = log.first_index();
                log.truncate_prefix(LogIndex(before)).unwrap();
                // Only a compaction that removes something writes, and completes the
                // outstanding sync first.
                if log.first_index() != first {
                    model.complete_in_flight();
                }
            }
            Op::Reopen => {
                // Syncs of the old incarnation are never handed to the new one (its
                // numbers start again).
                self.held.clear();
                let log = Log::open(self.disk.clone(), tiny_segments()).unwrap();
                self.log = log;
                self.model.reopen();
            }
        }
    }

    /// Starts a sync: all earlier segments become durable at once (rule 2), the last
    /// one only when the sync is handed back.
    fn start_sync(&mut self) {
        let (log, model) = (&mut self.log, &mut self.model);
        let durable_before = log.durable_position().index.0;
        let Some(pending) = log.start_sync().unwrap() else {
            assert_eq!(model.durable_count, model.entries.len(), "nothing pending");
            return;
        };
        assert!(model.in_flight.is_none(), "two syncs outstanding");
        assert!(log.sync_outstanding());
        let last_segment_first = log.segments.last().expect("entries pending").first_index;
        let earlier = last_segment_first.0 - 1;
        model.durable_count = model.durable_count.max(earlier as usize);
        assert_eq!(
            log.durable_position().index.0,
            durable_before.max(earlier).max(log.first_index().0 - 1)
        );
        model.in_flight = Some((pending.sequence(), model.entries.len()));
        self.held.push_back(pending);
    }

    fn finish_sync(&mut self) {
        let Some(pending) = self.held.pop_front() else {
            return;
        };
        let sequence = pending.sequence();
        let durable = self.log.finish_sync(pending.run()).unwrap();
        let model = &mut self.model;
        if model
            .in_flight
            .is_some_and(|(current, _)| current == sequence)
        {
            model.complete_in_flight();
        }
        assert_eq!(durable, self.log.durable_position());
    }

    /// Compares the log with the model after a step.
    fn check(&self, op: Op) {
        let (log, model) = (&self.log, &self.model);
        let first = log.first_index().0;
        let kept: Vec<Entry> = model
            .entries
            .iter()
            .filter(|entry| entry.position.index.0 >= first)
            .cloned()
            .collect();
        assert_log_holds(log, &kept);
        let durable_index = model.durable_count as u64;
        assert_eq!(
            log.durable_position().index.0,
            durable_index.max(first - 1),
            "{op:?}"
        );
        assert_eq!(log.sync_outstanding(), model.in_flight.is_some(), "{op:?}");
        // An outstanding sync's records lie past the durable ones, where the check
        // expects zeros.
        if !log.sync_outstanding() {
            log.assert_segment_files_exact();
        }
    }
}

fn run(disk: &Disk, ops: &[Op]) -> (Log, Expected) {
    let mut runner = Runner {
        disk,
        log: Log::open(disk.clone(), tiny_segments()).unwrap(),
        model: Model::default(),
        held: std::collections::VecDeque::new(),
    };
    for op in ops {
        runner.apply(*op);
        runner.check(*op);
    }
    let log = runner.log;
    let expected = Expected {
        first: log.first_index().0,
        last: log.last_position(),
        durable: log.durable_position(),
        segments: disk
            .list(LOG_DIRECTORY)
            .unwrap()
            .iter()
            .filter(|name| name.ends_with(".seg"))
            .count(),
    };
    (log, expected)
}

fn expected(first: u64, last: (u64, u64), durable: (u64, u64), segments: usize) -> Expected {
    Expected {
        first,
        last: LogPosition::new(last.0, last.1),
        durable: LogPosition::new(durable.0, durable.1),
        segments,
    }
}

type Script = (&'static str, Vec<Op>, Expected);

// Entry i is 36 + (i % 7) * 10 bytes; a segment takes entries until it reaches 200
// bytes: [1..=4], [5..=7], [8..=11], [12..=14], [15..=18], ...
fn append_and_reopen_scripts() -> Vec<Script> {
    use Op::*;
    vec![
        ("empty log", vec![], expected(1, (0, 0), (0, 0), 0)),
        (
            "empty reopen",
            vec![Reopen, Sync],
            expected(1, (0, 0), (0, 0), 0),
        ),
        (
            "append without sync is readable, not durable",
            vec![Append { term: 1, count: 3 }],
            expected(1, (1, 3), (0, 0), 0),
        ),
        (
            "sync makes durable",
            vec![Append { term: 1, count: 3 }, Sync],
            expected(1, (1, 3), (1, 3), 1),
        ),
        (
            "reopen loses only the unsynced",
            vec![
                Append { term: 1, count: 3 },
                Sync,
                Append { term: 2, count: 2 },
                Reopen,
            ],
            expected(1, (1, 3), (1, 3), 1),
        ),
        (
            "rollover across several segments in one sync",
            vec![Append { term: 1, count: 12 }, Sync, Reopen],
            expected(1, (1, 12), (1, 12), 4),
        ),
        (
            "terms change inside and across segments",
            vec![
                Append { term: 1, count: 2 },
                Append { term: 3, count: 4 },
                Sync,
                Append { term: 4, count: 5 },
                Sync,
                Reopen,
            ],
            expected(1, (4, 11), (4, 11), 3),
        ),
    ]
}

fn truncation_scripts() -> Vec<Script> {
    use Op::*;
    vec![
        (
            "suffix truncation inside the pending part",
            vec![
                Append { term: 1, count: 3 },
                Sync,
                Append { term: 2, count: 3 },
                Suffix(4),
                Sync,
                Reopen,
            ],
            expected(1, (2, 4), (2, 4), 1),
        ),
        (
            "suffix truncation inside durable segments, then new term",
            vec![
                Append { term: 1, count: 12 },
                Sync,
                Suffix(5),
                Append { term: 2, count: 3 },
                Sync,
                Reopen,
            ],
            expected(1, (2, 8), (2, 8), 3),
        ),
        (
            "suffix truncation to a segment boundary keeps an empty segment",
            vec![
                Append { term: 1, count: 8 },
                Sync,
                Suffix(4),
                Reopen,
                Append { term: 2, count: 1 },
                Sync,
            ],
            expected(1, (2, 5), (2, 5), 2),
        ),
        (
            "suffix truncation to nothing",
            vec![Append { term: 1, count: 8 }, Sync, Suffix(0), Reopen],
            expected(1, (0, 0), (0, 0), 1),
        ),
        (
            "suffix truncation at or past the end does nothing",
            vec![Append { term: 1, count: 3 }, Sync, Suffix(3), Suffix(9)],
            expected(1, (1, 3), (1, 3), 1),
        ),
        (
            "prefix truncation drops whole segments only",
            vec![Append { term: 1, count: 12 }, Sync, Prefix(10), Reopen],
            expected(8, (1, 12), (1, 12), 2),
        ),
        (
            "prefix truncation never drops the last or an unsynced segment",
            vec![
                Append { term: 1, count: 7 },
                Sync,
                Append { term: 2, count: 5 },
                Prefix(100),
                Sync,
                Prefix(100),
                Reopen,
            ],
            expected(12, (2, 12), (2, 12), 1),
        ),
        (
            "compaction remembers the term before the first entry",
            vec![
                Append { term: 1, count: 3 },
                Append { term: 2, count: 4 },
                Sync,
                Append { term: 5, count: 4 },
                Sync,
                Prefix(8),
                Reopen,
                Suffix(7),
                Append { term: 6, count: 2 },
                Sync,
                Reopen,
            ],
            expected(8, (6, 9), (6, 9), 1),
        ),
        (
            "commit mark permits truncation above it",
            vec![
                Append { term: 1, count: 6 },
                Sync,
                Commit(4),
                Suffix(4),
                Reopen,
            ],
            expected(1, (1, 4), (1, 4), 2),
        ),
    ]
}

// The pipelined sync: the durable position moves at `FinishSync` (and at `StartSync` for
// the segments before the last), or when another operation completes the sync first.
fn pipelined_scripts() -> Vec<Script> {
    use Op::*;
    vec![
        (
            "nothing to start",
            vec![StartSync, Append { term: 1, count: 2 }, Sync, StartSync],
            expected(1, (1, 2), (1, 2), 1),
        ),
        (
            "appends while a sync is outstanding stay pending",
            vec![
                Append { term: 1, count: 3 },
                StartSync,
                Append { term: 2, count: 2 },
                FinishSync,
            ],
            expected(1, (2, 5), (1, 3), 1),
        ),
        (
            "the next sync starts after the first is handed back",
            vec![
                Append { term: 1, count: 3 },
                StartSync,
                Append { term: 2, count: 2 },
                FinishSync,
                StartSync,
                Append { term: 2, count: 1 },
                FinishSync,
                Reopen,
            ],
            expected(1, (2, 5), (2, 5), 2),
        ),
        (
            "a reopen keeps what the outstanding sync wrote, not what came after",
            vec![
                Append { term: 1, count: 3 },
                StartSync,
                Append { term: 2, count: 9 },
                Reopen,
                StartSync,
                Append { term: 3, count: 1 },
                Sync,
            ],
            expected(1, (3, 4), (3, 4), 1),
        ),
        (
            "a sync across rollovers leaves only the last segment outstanding",
            vec![Append { term: 1, count: 12 }, StartSync, Reopen],
            expected(1, (1, 12), (1, 12), 4),
        ),
        (
            "a rollover while a sync is outstanding",
            vec![
                Append { term: 1, count: 2 },
                StartSync,
                Append { term: 1, count: 9 },
                FinishSync,
                StartSync,
                Append { term: 2, count: 1 },
                FinishSync,
                Sync,
                Reopen,
            ],
            expected(1, (2, 12), (2, 12), 4),
        ),
        (
            "a sync completes the outstanding one, whose completion comes back stale",
            vec![
                Append { term: 1, count: 3 },
                StartSync,
                Append { term: 1, count: 2 },
                Sync,
                FinishSync,
            ],
            expected(1, (1, 5), (1, 5), 2),
        ),
        (
            "a stale completion arrives while the next sync is outstanding",
            vec![
                Append { term: 1, count: 3 },
                StartSync,
                Sync,
                Append { term: 2, count: 2 },
                StartSync,
                Append { term: 2, count: 1 },
                FinishSync,
                FinishSync,
            ],
            expected(1, (2, 6), (2, 5), 2),
        ),
    ]
}

// Truncations complete an outstanding sync when they write, and only then.
fn pipelined_truncation_scripts() -> Vec<Script> {
    use Op::*;
    vec![
        (
            "a suffix cut below the outstanding write",
            vec![
                Append { term: 1, count: 3 },
                Sync,
                Append { term: 1, count: 4 },
                StartSync,
                Append { term: 1, count: 2 },
                Suffix(2),
                FinishSync,
                Append { term: 3, count: 2 },
                Reopen,
            ],
            expected(1, (1, 2), (1, 2), 1),
        ),
        (
            "a suffix cut inside the outstanding write",
            vec![
                Append { term: 1, count: 2 },
                Sync,
                Append { term: 1, count: 4 },
                StartSync,
                Suffix(4),
                FinishSync,
                Append { term: 2, count: 1 },
                StartSync,
                Reopen,
            ],
            expected(1, (2, 5), (2, 5), 2),
        ),
        (
            "a suffix cut among the appends after the sync started",
            vec![
                Append { term: 1, count: 3 },
                StartSync,
                Append { term: 1, count: 5 },
                Suffix(6),
                FinishSync,
                Append { term: 2, count: 1 },
                Sync,
                Reopen,
            ],
            expected(1, (2, 7), (2, 7), 2),
        ),
        (
            "a suffix cut past the end completes nothing",
            vec![
                Append { term: 1, count: 3 },
                StartSync,
                Suffix(3),
                Suffix(7),
                FinishSync,
            ],
            expected(1, (1, 3), (1, 3), 1),
        ),
        (
            "a compaction completes the outstanding sync",
            vec![
                Append { term: 1, count: 12 },
                Sync,
                Append { term: 2, count: 2 },
                StartSync,
                Append { term: 2, count: 1 },
                Prefix(10),
                FinishSync,
                Reopen,
            ],
            expected(8, (2, 14), (2, 14), 2),
        ),
        (
            "a compaction with nothing to remove leaves the sync outstanding",
            vec![
                Append { term: 1, count: 3 },
                StartSync,
                Prefix(3),
                FinishSync,
            ],
            expected(1, (1, 3), (1, 3), 1),
        ),
    ]
}

#[test]
fn scripts() {
    let mut cases = append_and_reopen_scripts();
    cases.extend(truncation_scripts());
    cases.extend(pipelined_scripts());
    cases.extend(pipelined_truncation_scripts());
    each_disk(|disk_kind| {
        for (name, ops, want) in &cases {
            let disk = match disk_kind {
                Disk::Os(os) => Disk::os(os.root().join(name.replace(' ', "_"))).unwrap(),
                Disk::Simulated(_) => Disk::simulated(),
            };
            let (_log, got) = run(&disk, ops);
            assert_eq!(&got, want, "case {name:?} on {disk_kind:?}");
        }
    });
}

#[test]
fn compacted_position_answers_term_at() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
        append_entries(&mut log, 3, 12);
        log.sync().unwrap();
        log.truncate_prefix(LogIndex(12)).unwrap();
        let first = log.first_index();
        assert_eq!(first, LogIndex(12));
        assert_eq!(log.term_at(LogIndex(11)), Some(Term(3)));
        assert_eq!(log.term_at(LogIndex(10)), None);
        assert_eq!(log.get(LogIndex(10)).unwrap(), None);
        assert!(matches!(
            log.read_range(LogIndex(10), 1, 1),
            Err(Error::InvalidInput(_))
        ));
        assert!(log.committed_index() >= LogIndex(11));
        drop(log);
        let log = Log::open(disk.clone(), tiny_segments()).unwrap();
        assert_eq!(log.first_index(), first);
        assert_eq!(log.term_at(LogIndex(11)), Some(Term(3)));
    });
}

#[test]
fn read_range_limits() {
    let mut log = Log::open(Disk::simulated(), tiny_segments()).unwrap();
    append_entries(&mut log, 1, 14);
    log.sync().unwrap();
    append_entries(&mut log, 2, 3);
    let payload = |index: u64| entry(1, index).payload.len();
    // (from, entries_max, bytes_max) -> indexes returned
    let cases: Vec<((u64, usize, usize), Vec<u64>)> = vec![
        ((1, 3, usize::MAX), vec![1, 2, 3]),
        ((1, 0, 0), vec![1]),
        ((2, 100, 0), vec![2]),
        ((2, 100, payload(2) + payload(3)), vec![2, 3]),
        (
            (2, 100, payload(2) + payload(3) + payload(4) - 1),
            vec![2, 3],
        ),
        ((3, 5, usize::MAX), vec![3, 4, 5, 6, 7]),
        ((13, 100, usize::MAX), vec![13, 14, 15, 16, 17]),
        ((17, 100, usize::MAX), vec![17]),
        ((18, 100, usize::MAX), vec![]),
        ((7, 0, usize::MAX), vec![7]),
    ];
    for ((from, entries_max, bytes_max), want) in cases {
        let got: Vec<u64> = log
            .read_range(LogIndex(from), entries_max, bytes_max)
            .unwrap()
            .iter()
            .map(|entry| entry.position.index.0)
            .collect();
        assert_eq!(got, want, "read_range({from}, {entries_max}, {bytes_max})");
    }
    assert!(matches!(
        log.read_range(LogIndex(0), 1, 1),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn oversized_payload_and_overload_are_refused_whole() {
    let options = LogOptions {
        pending_size_max_bytes: LOG_RECORD_SIZE_MAX_BYTES as u64,
        ..LogOptions::default()
    };
    let mut log = Log::open(Disk::simulated(), options).unwrap();
    let too_big = Entry::new(1, 2, vec![0; PAYLOAD_SIZE_MAX_BYTES + 1]);
    let error = log.append(&[entry(1, 1), too_big]).unwrap_err();
    assert!(matches!(error, Error::InvalidInput(_)), "{error}");
    assert_eq!(log.last_position(), LogPosition::ZERO);
    let largest = Entry::new(1, 1, vec![7; PAYLOAD_SIZE_MAX_BYTES]);
    log.append(std::slice::from_ref(&largest)).unwrap();
    let error = log.append(&[entry(1, 2)]).unwrap_err();
    assert!(matches!(error, Error::Overloaded(_)), "{error}");
    log.sync().unwrap();
    log.append(&[entry(1, 2)]).unwrap();
    assert_eq!(log.get(LogIndex(1)).unwrap(), Some(largest));
}

#[test]
fn invalid_options_are_refused() {
    for options in [
        LogOptions {
            segment_size_max_bytes: 0,
            ..LogOptions::default()
        },
        LogOptions {
            segment_size_max_bytes: SEGMENT_SIZE_MAX_BYTES_LIMIT + 1,
            ..LogOptions::default()
        },
        LogOptions {
            pending_size_max_bytes: 10,
            ..LogOptions::default()
        },
    ] {
        let error = Log::open(Disk::simulated(), options).unwrap_err();
        assert!(matches!(error, Error::InvalidInput(_)), "{error}");
    }
}

#[test]
fn group_commit_costs_one_sync_per_batch() {
    let sim = crate::disk::SimDisk::new();
    let mut log = Log::open(Disk::Simulated(sim.clone()), LogOptions::default()).unwrap();
    append_entries(&mut log, 1, 1);
    log.sync().unwrap();
    let before = sim.sync_count();
    for _ in 0..10 {
        append_entries(&mut log, 1, 100);
        log.sync().unwrap();
    }
    assert_eq!(sim.sync_count() - before, 10);
    log.sync().unwrap();
    assert_eq!(
        sim.sync_count() - before,
        10,
        "an empty sync must not fsync"
    );
}

#[test]
#[should_panic(expected = "contiguous")]
fn gaps_are_a_caller_bug() {
    let mut log = Log::open(Disk::simulated(), tiny_segments()).unwrap();
    let _ = log.append(&[entry(1, 1), entry(1, 3)]);
}

#[test]
#[should_panic(expected = "term decreases")]
fn decreasing_terms_are_a_caller_bug() {
    let mut log = Log::open(Disk::simulated(), tiny_segments()).unwrap();
    let _ = log.append(&[entry(2, 1), entry(1, 2)]);
}

#[test]
#[should_panic(expected = "committed")]
fn cutting_committed_entries_is_a_caller_bug() {
    let mut log = Log::open(Disk::simulated(), tiny_segments()).unwrap();
    append_entries(&mut log, 1, 5);
    log.mark_committed(LogIndex(3));
    let _ = log.truncate_suffix(LogIndex(2));
}

/// Every operation of a log that failed is refused with an error that asks for a reopen.
fn assert_refuses_work(log: &mut Log) {
    let results = [
        log.sync().map(drop),
        log.append(&[]),
        log.get(LogIndex(1)).map(drop),
        log.read_range(LogIndex(1), 1, 1).map(drop),
        log.truncate_suffix(LogIndex(1)),
        log.truncate_prefix(LogIndex(5)),
    ];
    for (operation, result) in results.into_iter().enumerate() {
        match result {
            Err(Error::Io(message)) if message.contains("reopen") => {}
            other => panic!("operation {operation} of a failed log: {other:?}"),
        }
    }
}

/// Rule 4 after a power cut in the middle of a sync. The cut strikes as the sync creates
/// a new segment, so a retry would find the name free on the rebooted disk and could
/// write the batch through the crash: the log must refuse instead.
#[test]
fn a_crash_inside_a_sync_makes_the_log_refuse_work_until_reopened() {
    let sim = SimDisk::new();
    let disk = Disk::Simulated(sim.clone());
    let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
    // Entries 1..=4 fill the first segment; entry 5 begins the second.
    let synced = append_entries(&mut log, 1, 4);
    log.sync().unwrap();
    append_entries(&mut log, 1, 3);
    assert_eq!(log.segments.len(), 2);
    assert!(
        log.segments[1].file.is_none(),
        "second segment not created yet"
    );
    sim.schedule_crash(0, 5);
    assert!(matches!(log.sync(), Err(Error::Io(_))));
    assert_eq!(sim.crash_count(), 1);
    assert_refuses_work(&mut log);
    drop(log);
    let log = Log::open(disk, tiny_segments()).unwrap();
    assert_eq!(all_entries(&log), synced);
}

/// Rule 4 after an I/O error that leaves the disk running (a segment removed behind the
/// log's back makes a suffix truncation fail): the log refuses work it could still do.
#[test]
fn failed_io_makes_the_log_refuse_work_until_reopened() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
        let entries = append_entries(&mut log, 1, 11);
        log.sync().unwrap();
        disk.remove("log/00000000000000000008.seg").unwrap();
        let error = log.truncate_suffix(LogIndex(6)).unwrap_err();
        assert!(matches!(error, Error::Io(_)), "{error}");
        assert_refuses_work(&mut log);
        drop(log);
        let log = Log::open(disk.clone(), tiny_segments()).unwrap();
        assert_eq!(all_entries(&log), entries[..7]);
    });
}

/// The tail cache serves the last entries and the segments the rest, alike; it follows a
/// suffix truncation (a conflicting entry rewritten at the same index reads back new), a
/// compaction, and starts empty after a reopen, filling again with new appends.
#[test]
fn tail_cache_hits_and_misses_read_alike() {
    let disk = Disk::Simulated(SimDisk::new());
    let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
    log.set_tail_cache_bounds(4, 1 << 20);
    let mut expected = append_entries(&mut log, 1, 10);
    log.sync().unwrap();
    assert_eq!(log.tail_cache_range(), LogIndex(7)..LogIndex(11));
    // A miss that runs into the cached entries, and a hit.
    assert_eq!(all_entries(&log), expected);
    assert_eq!(
        log.read_range(LogIndex(8), 2, usize::MAX).unwrap(),
        expected[7..9]
    );
    log.assert_tail_cache_exact();
    // A conflicting suffix: entry 9 on is replaced by entries of term 2.
    log.truncate_suffix(LogIndex(8)).unwrap();
    assert_eq!(log.tail_cache_range(), LogIndex(7)..LogIndex(9));
    expected.truncate(8);
    expected.extend(append_entries(&mut log, 2, 2));
    assert_eq!(log.get(LogIndex(9)).unwrap().unwrap(), expected[8]);
    assert_eq!(all_entries(&log), expected);
    log.assert_tail_cache_exact();
    // A truncation below the cache empties it; the next appends refill it.
    log.truncate_suffix(LogIndex(3)).unwrap();
    assert_eq!(log.tail_cache_range(), LogIndex(4)..LogIndex(4));
    expected.truncate(3);
    expected.extend(append_entries(&mut log, 3, 5));
    log.sync().unwrap();
    log.truncate_prefix(LogIndex(7)).unwrap();
    let first = log.first_index();
    assert!(log.tail_cache_range().start >= first);
    assert_eq!(all_entries(&log), expected[first.0 as usize - 1..]);
    log.assert_tail_cache_exact();
    // Reopened: nothing cached, every read from the segments, then new appends cached.
    drop(log);
    let mut log = Log::open(disk, tiny_segments()).unwrap();
    assert!(log.tail_cache_range().is_empty());
    assert_eq!(all_entries(&log), expected[first.0 as usize - 1..]);
    expected.extend(append_entries(&mut log, 3, 2));
    assert_eq!(log.tail_cache_range(), LogIndex(9)..LogIndex(11));
    assert_eq!(all_entries(&log), expected[first.0 as usize - 1..]);
    log.reset_to(LogPosition::new(5, 20)).unwrap();
    assert_eq!(log.tail_cache_range(), LogIndex(21)..LogIndex(21));
    log.append(&[entry(5, 21)]).unwrap();
    assert_eq!(log.get(LogIndex(21)).unwrap().unwrap(), entry(5, 21));
}

/// With the default bounds, the cache holds the last [`TAIL_CACHE_ENTRIES_MAX`] entries.
#[test]
fn tail_cache_default_bound_in_entries() {
    let mut log = Log::open(Disk::Simulated(SimDisk::new()), LogOptions::default()).unwrap();
    let count = TAIL_CACHE_ENTRIES_MAX as u64 + 100;
    append_entries(&mut log, 1, count);
    let cached = log.tail_cache_range();
    assert_eq!(cached.end.0 - cached.start.0, TAIL_CACHE_ENTRIES_MAX as u64);
    assert_eq!(cached.end, LogIndex(count + 1));
    log.sync().unwrap();
    log.assert_tail_cache_exact();
}
