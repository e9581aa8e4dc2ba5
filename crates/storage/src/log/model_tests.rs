//! A property test: random histories of appends, syncs (pipelined or not), truncations,
//! commits, crashes and interrupted syncs, checked against a model of what must be durable.
//!
//! The model is the list of entries appended (from index 1, compacted ones included, so
//! that comparisons need no offsets) and how many of them are durable. After each step the
//! log must hold exactly the model's entries from its first index on. After a crash it
//! must hold the durable ones, and at most the appended ones beyond them when a sync was
//! interrupted part-way (a torn batch keeps a prefix of itself); the model then adopts
//! what the log kept. Crashes use the simulated disk's seeded crash model, and an
//! interrupted sync is a crash the disk strikes in the middle of the sync
//! ([`SimDisk::schedule_crash`]), so every failing case is replayable from the proptest
//! seed.
//!
//! Syncs are also pipelined: `StartSync` holds the sync the log hands out, `RunSync` runs
//! it as the caller's thread would, `FinishSync` hands it back and `FailSync` hands it
//! back failed (the log then refuses work and is reopened, without a crash). The model
//! knows where the durable position stands (segments before the last at `start_sync`, the
//! rest at the hand-back of the outstanding sync, or when a sync, a truncation that
//! writes or a reset completes it first) and bounds what a crash may leave: at least what
//! was synced, the caller's run of the outstanding sync included, and at most a prefix of
//! what was written, never an entry appended after the outstanding sync started. A sync
//! still held when the power fails must report an error when run. `InterruptedStartSync`
//! cuts the power inside a `start_sync` or the caller's run of the syncs it holds.
//!
//! Each reopen after a crash picks tiny segments or segments three times larger (from the
//! crash's seed), so that files preallocated under one size roll over under the other;
//! after every step each segment file must have the length the log records and zeros
//! past its records.
//!
//! The log runs with a tiny tail cache (a few entries, a few hundred bytes), so that
//! reads both hit it and miss it; after every step the whole cache is compared with the
//! segments, and bounded reads from random points are compared with the model.

use super::tests::{all_entries, crash_unless_struck, tiny_segments};
use super::*;
use crate::disk::SimDisk;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug)]
enum Op {
    Append {
        term_increase: u64,
        payload_sizes: Vec<usize>,
    },
    Sync,
    /// Cut `back` entries off the end (clamped above the committed mark).
    TruncateSuffix {
        back: u64,
    },
    /// Compact below `ahead` entries past the first index.
    TruncatePrefix {
        ahead: u64,
    },
    /// Mark `ahead` more entries committed (clamped to the durable ones).
    Commit {
        ahead: u64,
    },
    Crash {
        seed: u64,
    },
    /// Reset the log to a position `shift - 8` entries from the last one (at least 1),
    /// `term_increase` terms above the last term: behind, inside or past the log.
    Reset {
        shift: u64,
        term_increase: u64,
    },
    /// A sync with power failing just before its disk operation number `crash_at`
    /// (counted from 0), or right after it if it has fewer.
    InterruptedSync {
        crash_at: u64,
        seed: u64,
    },
    /// A bounded read starting `back` entries before the last one (clamped to the first).
    Read {
        back: u64,
        entries_max: usize,
        bytes_max: usize,
    },
    /// [`Log::start_sync`], unless a sync is outstanding; the runner holds the sync.
    StartSync,
    /// Runs the oldest sync held and not yet run, as the caller's thread would, without
    /// handing it back.
    RunSync,
    /// Hands the oldest sync held back to [`Log::finish_sync`] (running it first if it
    /// has not run): the outstanding one, or a stale one.
    FinishSync,
    /// Hands the oldest sync held back as failed, then reopens the log (without a crash)
    /// as its owner must.
    FailSync,
    /// A [`Log::start_sync`] (unless one is outstanding) and the caller's run of every
    /// sync held, with power failing just before their disk operation number `crash_at`,
    /// or right after them if they have fewer.
    InterruptedStartSync {
        crash_at: u64,
        seed: u64,
    },
    /// Drops the log and opens it again without a crash (segment size from `seed`).
    Reopen {
        seed: u64,
    },
}

/// A sync the runner holds: handed out by [`Log::start_sync`], perhaps already run.
#[derive(Debug)]
enum Held {
    Pending(PendingSync),
    Completed(CompletedSync),
}

impl Held {
    fn sequence(&self) -> u64 {
        match self {
            Held::Pending(pending) => pending.sequence(),
            Held::Completed(completed) => completed.sequence,
        }
    }
}

/// Bounds of the tail cache in these tests: small enough that reads miss it often.
const CACHE_ENTRIES_MAX: usize = 6;
const CACHE_SIZE_MAX_BYTES: usize = 300;

/// Opens the log with tiny segments, or (`seed` odd) with segments a few times larger,
/// so that a segment preallocated under one size rolls over under the other and is cut
/// to its records.
fn open(disk: Disk, seed: u64) -> Log {
    let mut options = tiny_segments();
    if seed % 2 == 1 {
        options.segment_size_max_bytes *= 3;
    }
    let mut log = Log::open(disk, options).unwrap();
    log.set_tail_cache_bounds(CACHE_ENTRIES_MAX, CACHE_SIZE_MAX_BYTES);
    log
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2u64, prop::collection::vec(0..90usize, 1..8)).prop_map(|(term_increase, payload_sizes)| Op::Append {
            term_increase,
            payload_sizes
        }),
        3 => Just(Op::Sync),
        1 => (0..8u64).prop_map(|back| Op::TruncateSuffix { back }),
        1 => (0..12u64).prop_map(|ahead| Op::TruncatePrefix { ahead }),
        1 => (0..6u64).prop_map(|ahead| Op::Commit { ahead }),
        1 => any::<u64>().prop_map(|seed| Op::Crash { seed }),
        1 => (0..16u64, 0..3u64).prop_map(|(shift, term_increase)| Op::Reset { shift, term_increase }),
        1 => (0..8u64, any::<u64>()).prop_map(|(crash_at, seed)| Op::InterruptedSync { crash_at, seed }),
        2 => (0..12u64, 0..5usize, 0..200usize).prop_map(|(back, entries_max, bytes_max)| Op::Read { back, entries_max, bytes_max }),
        3 => Just(Op::StartSync),
        1 => Just(Op::RunSync),
        3 => Just(Op::FinishSync),
        1 => Just(Op::FailSync),
        1 => (0..10u64, any::<u64>()).prop_map(|(crash_at, seed)| Op::InterruptedStartSync { crash_at, seed }),
        1 => any::<u64>().prop_map(|seed| Op::Reopen { seed }),
    ]
}

#[derive(Debug, Default)]
struct Model {
    entries: Vec<Entry>,
    /// How many entries the log reports durable.
    durable_count: usize,
    committed: u64,
    /// The sync the log has outstanding: its sequence, and how many entries its write
    /// covers (all of them when it started).
    in_flight: Option<(u64, usize)>,
    /// How many entries the caller's run of the outstanding sync made durable before the
    /// log learnt of it: a crash keeps them too.
    synced_count: usize,
    /// Syncs handed out and not yet handed back, oldest first; at most one is the
    /// outstanding one, the others are stale.
    held: std::collections::VecDeque<Held>,
}

impl Model {
    fn last(&self) -> LogPosition {
        self.entries
            .last()
            .map_or(LogPosition::ZERO, |entry| entry.position)
    }

    /// How many entries are on disk for sure: reported durable, or synced by the caller.
    fn synced(&self) -> usize {
        self.durable_count.max(self.synced_count)
    }

    /// How many entries were written to disk at all: the durable ones and those of the
    /// outstanding sync. Entries appended after it started live only in memory.
    fn written(&self) -> usize {
        self.in_flight
            .map_or(self.durable_count, |(_, written)| written)
            .max(self.durable_count)
    }

    /// Another operation completed the outstanding sync: what it wrote is durable.
    fn complete_in_flight(&mut self) {
        if let Some((_, written)) = self.in_flight.take() {
            self.durable_count = self.durable_count.max(written);
        }
    }

    /// After a crash or a reopen, adopts what the log kept, checking it is allowed: the
    /// synced entries, plus at most a prefix of the first `written` ones (entries never
    /// written cannot come back). Syncs held from before belong to the old log.
    fn adopt_after_reopen(&mut self, log: &Log, written: usize) {
        let first = log.first_index().0 as usize;
        let kept = all_entries(log);
        let durable = &self.entries[first - 1..self.synced().max(first - 1)];
        assert!(
            kept.len() >= durable.len() && kept[..durable.len()] == *durable,
            "durable entries lost"
        );
        let appended = &self.entries[first - 1..written.max(first - 1)];
        assert!(
            kept.len() <= appended.len() && appended[..kept.len()] == *kept,
            "log holds entries never written"
        );
        self.entries.truncate(first - 1 + kept.len());
        self.durable_count = self.entries.len();
        self.synced_count = 0;
        self.in_flight = None;
        self.held.clear();
        self.committed = first as u64 - 1;
    }
}

impl Model {
    /// The log after a reset: entries up to `target` stand for the snapshot (never read
    /// again, only the last one's position matters), all of them durable and committed.
    fn reset_to(&mut self, target: LogPosition) {
        let count = usize::try_from(target.index.0).expect("small");
        self.entries.truncate(count);
        while self.entries.len() < count {
            let index = self.entries.len() as u64 + 1;
            self.entries
                .push(Entry::new(target.term.0, index, Vec::new()));
        }
        self.entries[count - 1].position = target;
        self.durable_count = count;
        self.synced_count = 0;
        self.in_flight = None;
        self.committed = target.index.0;
    }
}

fn payload(index: u64, size: usize) -> Vec<u8> {
    (0..size).map(|i| (index as usize * 31 + i) as u8).collect()
}

fn apply(op: &Op, sim: &SimDisk, log: &mut Log, model: &mut Model) {
    let disk = Disk::Simulated(sim.clone());
    match op {
        Op::Append {
            term_increase,
            payload_sizes,
        } => {
            let last = model.last();
            let term = last.term.0.max(1) + term_increase;
            let entries: Vec<Entry> = payload_sizes
                .iter()
                .enumerate()
                .map(|(offset, &size)| {
                    let index = last.index.0 + 1 + offset as u64;
                    Entry::new(term, index, payload(index, size))
                })
                .collect();
            log.append(&entries).unwrap();
            model.entries.extend(entries);
        }
        Op::Sync => {
            assert_eq!(log.sync().unwrap(), model.last());
            model.in_flight = None;
            model.durable_count = model.entries.len();
        }
        Op::TruncateSuffix { back } => truncate_suffix(log, model, *back),
        Op::TruncatePrefix { ahead } => truncate_prefix(log, model, *ahead),
        Op::Commit { ahead } => {
            let index = (model.committed + ahead).min(model.durable_count as u64);
            log.mark_committed(LogIndex(index));
            model.committed = model.committed.max(index);
        }
        Op::Reset {
            shift,
            term_increase,
        } => reset(log, model, *shift, *term_increase),
        Op::Crash { seed } => {
            sim.crash(&mut ChaCha8Rng::seed_from_u64(*seed));
            assert_held_syncs_fail(model);
            *log = open(disk, *seed);
            let written = model.written();
            model.adopt_after_reopen(log, written);
        }
        Op::InterruptedSync { crash_at, seed } => {
            sim.schedule_crash(*crash_at, *seed);
            let synced = log.sync().is_ok();
            assert_eq!(
                crash_unless_struck(sim, *seed),
                !synced,
                "failure not reported"
            );
            assert_held_syncs_fail(model);
            *log = open(disk, *seed);
            let written = model.entries.len();
            model.adopt_after_reopen(log, written);
        }
        Op::Read {
            back,
            entries_max,
            bytes_max,
        } => read(log, model, *back, *entries_max, *bytes_max),
        Op::StartSync => start_sync(log, model),
        Op::RunSync => {
            let succeeded = run_oldest_pending(model);
            assert_ne!(succeeded, Some(false), "a run without a crash failed");
        }
        Op::FinishSync => finish_sync(log, model),
        Op::FailSync => fail_sync(sim, log, model),
        Op::InterruptedStartSync { crash_at, seed } => {
            interrupted_start_sync(sim, log, model, *crash_at, *seed);
        }
        Op::Reopen { seed } => reopen(sim, log, model, *seed),
    }
}

/// A reopen without a crash reads back exactly what was written: the durable entries and
/// those of an outstanding sync (the disk keeps them), none appended after it started.
/// Syncs held belong to the old log and are never handed to the new one.
fn reopen(sim: &SimDisk, log: &mut Log, model: &mut Model, seed: u64) {
    let written = model.written();
    *log = open(Disk::Simulated(sim.clone()), seed);
    model.adopt_after_reopen(log, written);
    assert_eq!(
        model.entries.len(),
        written,
        "a reopen without a crash lost writes"
    );
}

/// Cuts `back` entries off the end, never a committed or compacted one. A cut that
/// removes something writes, so it completes the outstanding sync first.
fn truncate_suffix(log: &mut Log, model: &mut Model, back: u64) {
    let floor = model.committed.max(log.first_index().0 - 1);
    let after = model.last().index.0.saturating_sub(back).max(floor);
    log.truncate_suffix(LogIndex(after)).unwrap();
    if after < model.last().index.0 {
        model.complete_in_flight();
    }
    model.entries.truncate(after as usize);
    model.durable_count = model.durable_count.min(model.entries.len());
    model.synced_count = model.synced_count.min(model.entries.len());
}

/// Compacts below `ahead` entries past the first: whole durable segments only, and the
/// term of the last one removed is remembered.
fn truncate_prefix(log: &mut Log, model: &mut Model, ahead: u64) {
    let first_before = log.first_index();
    let before = LogIndex(first_before.0 + ahead);
    log.truncate_prefix(before).unwrap();
    let first = log.first_index();
    if first != first_before {
        // A compaction that removes something completes the outstanding sync.
        model.complete_in_flight();
    }
    assert!(first >= first_before && (first <= before || first == first_before));
    assert!(
        first.0 as usize - 1 <= model.durable_count,
        "compacted unsynced entries"
    );
    let last_removed = first.0 - 1;
    if last_removed > 0 {
        let expected = model.entries[last_removed as usize - 1].position.term;
        assert_eq!(log.term_at(LogIndex(last_removed)), Some(expected));
    }
    model.committed = model.committed.max(last_removed);
}

/// Runs the oldest held sync that has not run, as the caller's thread would, and keeps
/// its outcome for the hand-back. Returns whether it succeeded, `None` if every held
/// sync has run.
fn run_oldest_pending(model: &mut Model) -> Option<bool> {
    let position = model
        .held
        .iter()
        .position(|held| matches!(held, Held::Pending(_)))?;
    let held = model.held.remove(position).expect("found");
    let completed = run_held(model, held);
    let succeeded = completed.result.is_ok();
    model.held.insert(position, Held::Completed(completed));
    Some(succeeded)
}

/// Starts a sync unless one is outstanding: every segment before the last becomes
/// durable at once (rule 2), the last one only when the sync is handed back.
fn start_sync(log: &mut Log, model: &mut Model) {
    if log.sync_outstanding() {
        return;
    }
    let started = log.start_sync().unwrap();
    adopt_started(log, model, started);
}

/// What `start_sync` returned: every segment before the last is durable, the sync of the
/// last one is held.
fn adopt_started(log: &Log, model: &mut Model, started: Option<PendingSync>) {
    let Some(pending) = started else {
        assert_eq!(model.durable_count, model.entries.len(), "nothing pending");
        return;
    };
    let last_segment_first = log.segments.last().expect("entries pending").first_index;
    let earlier = usize::try_from(last_segment_first.0 - 1).expect("small");
    model.durable_count = model.durable_count.max(earlier);
    assert!(model.durable_count < model.entries.len());
    model.in_flight = Some((pending.sequence(), model.entries.len()));
    model.held.push_back(Held::Pending(pending));
}

/// Runs a held sync if it has not run; a successful run of the outstanding one makes
/// what it wrote durable on disk, though not yet in the log's eyes.
fn run_held(model: &mut Model, held: Held) -> CompletedSync {
    let completed = match held {
        Held::Pending(pending) => pending.run(),
        Held::Completed(completed) => return completed,
    };
    if let Some((sequence, written)) = model.in_flight
        && sequence == completed.sequence
        && completed.result.is_ok()
    {
        model.synced_count = model.synced_count.max(written);
    }
    completed
}

/// Hands the oldest held sync back: the outstanding one moves the durable position, a
/// stale one changes nothing.
fn finish_sync(log: &mut Log, model: &mut Model) {
    let Some(held) = model.held.pop_front() else {
        return;
    };
    let completed = run_held(model, held);
    assert!(completed.result.is_ok(), "{completed:?}");
    let current = model
        .in_flight
        .is_some_and(|(sequence, _)| sequence == completed.sequence);
    let durable = log.finish_sync(completed).unwrap();
    if current {
        model.complete_in_flight();
    }
    assert_eq!(durable, log.durable_position());
}

/// Hands the oldest held sync back as failed: the log refuses work, stale sync or not,
/// and reopened (no crash: the operating system kept every write) it holds everything
/// that was written, nothing appended after.
fn fail_sync(sim: &SimDisk, log: &mut Log, model: &mut Model) {
    let Some(held) = model.held.pop_front() else {
        return;
    };
    let failed = CompletedSync {
        sequence: held.sequence(),
        result: Err(std::io::Error::other("injected")),
    };
    let error = log.finish_sync(failed).unwrap_err();
    assert!(error.to_string().contains("injected"), "{error}");
    assert!(matches!(log.sync(), Err(Error::Io(_))));
    reopen(sim, log, model, 0);
}

/// A start and the caller's runs with power failing part-way: the failure is reported,
/// and the reopened log keeps what was synced (the runs that returned included) and at
/// most a prefix of what was written (by the start, if it was called, or before it).
fn interrupted_start_sync(
    sim: &SimDisk,
    log: &mut Log,
    model: &mut Model,
    crash_at: u64,
    seed: u64,
) {
    sim.schedule_crash(crash_at, seed);
    let mut written = model.written();
    let mut failed = false;
    if !log.sync_outstanding() {
        written = model.entries.len();
        match log.start_sync() {
            Ok(started) => adopt_started(log, model, started),
            Err(_) => failed = true,
        }
    }
    while !failed {
        let Some(succeeded) = run_oldest_pending(model) else {
            break;
        };
        failed = !succeeded;
    }
    assert_eq!(
        crash_unless_struck(sim, seed),
        failed,
        "failure not reported"
    );
    assert_held_syncs_fail(model);
    *log = open(Disk::Simulated(sim.clone()), seed);
    model.adopt_after_reopen(log, written);
}

/// After a power failure, a sync the caller still holds reports an error when run: its
/// handle died with the crash.
fn assert_held_syncs_fail(model: &mut Model) {
    for held in model.held.drain(..) {
        if let Held::Pending(pending) = held {
            assert!(pending.run().result.is_err(), "a sync ran through a crash");
        }
    }
}

/// A bounded read, checked against the model: the first entry always, then entries while
/// both bounds allow; through [`Log::read_range`] and [`Log::visit_range`] alike.
fn read(log: &Log, model: &Model, back: u64, entries_max: usize, bytes_max: usize) {
    let last = model.last().index.0;
    let from = last.saturating_sub(back).max(log.first_index().0);
    let read = log
        .read_range(LogIndex(from), entries_max, bytes_max)
        .unwrap();
    let mut expected: Vec<Entry> = Vec::new();
    let mut size = 0;
    for entry in model.entries.iter().skip(from as usize - 1) {
        let over = expected.len() >= entries_max.max(1) || size + entry.payload.len() > bytes_max;
        if !expected.is_empty() && over {
            break;
        }
        size += entry.payload.len();
        expected.push(entry.clone());
    }
    assert_eq!(read, expected);
    let mut visited = Vec::new();
    let count = log
        .visit_range(
            LogIndex(from),
            entries_max,
            bytes_max,
            |position, payload| {
                visited.push(Entry {
                    position,
                    payload: payload.to_vec(),
                });
                Ok(())
            },
        )
        .unwrap();
    assert_eq!((count, visited), (expected.len(), expected));
}

fn reset(log: &mut Log, model: &mut Model, shift: u64, term_increase: u64) {
    let last = model.last();
    let index = (last.index.0 + shift).saturating_sub(8).max(1);
    let target = LogPosition::new(last.term.0 + term_increase, index);
    log.reset_to(target).unwrap();
    model.reset_to(target);
    assert_eq!(log.first_index(), target.index.next());
    assert_eq!(log.term_at(target.index), Some(target.term));
}

fn check_matches(log: &Log, model: &Model) {
    let first = log.first_index().0 as usize;
    assert_eq!(all_entries(log), model.entries[first - 1..]);
    // The model keeps compacted entries, so its last entry is the log's last position
    // even when the log is empty after compaction.
    assert_eq!(log.last_position(), model.last());
    assert_eq!(
        log.durable_position().index.0,
        (model.durable_count as u64).max(first as u64 - 1)
    );
    assert!(log.committed_index().0 >= model.committed.min(log.last_position().index.0));
    assert_eq!(log.sync_outstanding(), model.in_flight.is_some());
    log.assert_tail_cache_exact();
    // An outstanding sync's records lie past the durable ones, where the check expects
    // zeros.
    if !log.sync_outstanding() {
        log.assert_segment_files_exact();
    }
    let cached = log.tail_cache_range();
    assert_eq!(cached.end, log.last_position().index.next());
    assert!(cached.start >= log.first_index());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_through_crashes(ops in prop::collection::vec(op_strategy(), 1..96)) {
        let sim = SimDisk::new();
        let mut log = open(Disk::Simulated(sim.clone()), 0);
        let mut model = Model::default();
        for op in &ops {
            apply(op, &sim, &mut log, &mut model);
            check_matches(&log, &model);
        }
        // Whatever happened, a final sync and reopen keeps everything.
        log.sync().unwrap();
        drop(log);
        let log = open(Disk::Simulated(sim.clone()), 0);
        model.durable_count = model.entries.len();
        model.in_flight = None;
        model.committed = log.first_index().0 - 1;
        check_matches(&log, &model);
    }
}
