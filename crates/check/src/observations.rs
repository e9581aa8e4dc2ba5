//! What the session-guarantee and durability checkers know about a history.
//!
//! These checkers tell writes apart by the value they wrote, so every write to a key
//! must write a value no other write to that key writes (the simulator and the test
//! workloads guarantee it). A duplicate is an input error, reported as such, never
//! silently passed. `null` is not a value here but absence: deletes (and writes or cas
//! of `null`) all write it, and a read of `null` saw the initial state or one of them.
//!
//! The history does not contain the order in which the database applied a key's writes
//! (its *version order*). What a client history can prove about it, and all these
//! checkers use, is the relation "write `a` is known to come before write `b`" (same
//! key), which holds when
//! 1. real time: `a` was acknowledged (`ok`) before `b` was invoked (`a.complete <
//!    b.invoke`); a database that acknowledged `a` and then let an older state overwrite
//!    a newer one would show that as a violation, which is the point; or
//! 2. causality: `a` is in `b`'s causal past — `b`'s process had, before invoking `b`,
//!    issued `a` itself earlier in its session (only `ok` writes count, an `info` write
//!    may still be in flight), or read a value whose write had `a` in its own causal past
//!    (transitively, tracked with vector clocks over processes).
//!
//! and the initial (absent) state comes before every write. A read's observation is
//! "known older than" write `w` when the write it returned is known to come before `w`,
//! or, for a read of absent, when every delete of the key is known to come before `w`.
//!
//! What stays invisible: the order of writes that overlap in time and are causally
//! unrelated (a database may apply them in either order), reads of values no write
//! produced (the linearizability checker reports those), what a cas observed when it
//! did not swap, and any effect of operations whose outcome is unknown beyond the reads
//! that returned their values.
//!
//! Session order: a process's operations in invocation order (ties in history order);
//! an operation "precedes" another of its process when it completed before the other was
//! invoked, which for a sequential client is every earlier one.

use crate::history::{Function, History, Operation, OperationType};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

/// Index into [`Observations::writes`].
pub(crate) type WriteId = usize;

/// Index into [`Observations::reads`].
pub(crate) type ReadId = usize;

/// The most vector-clock entries (writes × processes) tracked, 128 MiB.
const CAUSAL_ENTRIES_MAX: usize = 32 << 20;

/// How many earlier distinct observations a read of absent is compared with.
pub(crate) const ABSENT_COMPARISONS_MAX: usize = 1024;

/// An operation that may have written: ok or info write, delete, cas that swapped (or
/// may have).
#[derive(Clone, Debug)]
pub(crate) struct Write {
    pub(crate) op: usize,
    pub(crate) key: usize,
    pub(crate) process: usize,
    pub(crate) invoke: u64,
    /// The completion of an `ok` write; `None` when the outcome is unknown.
    pub(crate) complete: Option<u64>,
    /// Writes absent (a delete).
    pub(crate) deletes: bool,
    /// How many `ok` writes its process issued before it in its session.
    pub(crate) ok_writes_before: u32,
    /// For an `ok` swapped cas: the write whose value it expected.
    pub(crate) cas_observed: Option<WriteId>,
}

/// What a read returned, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Observation {
    Write(WriteId),
    Absent,
    /// A value no write (ok or info) of the key wrote.
    Unknown,
}

/// An `ok` read.
#[derive(Clone, Debug)]
pub(crate) struct Read {
    pub(crate) op: usize,
    pub(crate) key: usize,
    pub(crate) process: usize,
    pub(crate) invoke: u64,
    pub(crate) complete: u64,
    pub(crate) observation: Observation,
}

/// One entry of a session, in invocation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionEntry {
    Read(ReadId),
    Write(WriteId),
}

/// How a write is known to come before another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Evidence {
    RealTime,
    Causality,
}

/// Proof that an observation is older than a write; cheap to make, explained on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Older {
    /// The read returned `observed`, which is known to precede `than`.
    Write {
        observed: WriteId,
        than: WriteId,
        evidence: Evidence,
    },
    /// The read returned absent and every delete of the key precedes `than`.
    Absent {
        than: WriteId,
        latest_delete: Option<WriteId>,
    },
}

/// The most hops a causal chain in a witness may have.
const CHAIN_HOPS_MAX: usize = 64;

/// The resolved history.
#[derive(Debug)]
pub(crate) struct Observations<'h> {
    pub(crate) history: &'h History,
    pub(crate) keys: Vec<&'h str>,
    pub(crate) process_ids: Vec<u64>,
    pub(crate) writes: Vec<Write>,
    pub(crate) reads: Vec<Read>,
    /// Per process: its session, in invocation order.
    pub(crate) sessions: Vec<Vec<SessionEntry>>,
    /// Per key: its deletes (ok and info).
    pub(crate) deletes: Vec<Deletes>,
    /// Per (process, key): the process's `ok` writes of the key, in session order.
    ok_writes_by_process_key: HashMap<(usize, usize), Vec<WriteId>>,
    /// `writes.len() × process_ids.len()`: each write's causal past (not itself), as the
    /// number of each process's `ok` writes in it.
    causal_past: Vec<u32>,
}

impl<'h> Observations<'h> {
    /// Resolves `history`; fails on an invalid operation, a duplicate written value, or
    /// a history too large to track causality in.
    pub(crate) fn new(history: &'h History) -> Result<Observations<'h>, String> {
        history.validate().map_err(|error| error.to_string())?;
        let mut builder = Builder::default();
        for (index, operation) in history.operations.iter().enumerate() {
            builder.add_write(index, operation)?;
        }
        for (index, operation) in history.operations.iter().enumerate() {
            builder.add_read(index, operation);
        }
        builder.finish(history)
    }

    pub(crate) fn operation(&self, index: usize) -> &'h Operation {
        &self.history.operations[index]
    }

    /// The causal past of `write`, per process.
    pub(crate) fn past(&self, write: WriteId) -> &[u32] {
        let width = self.process_ids.len();
        &self.causal_past[write * width..(write + 1) * width]
    }

    /// How `a` is known to come before `b` (same key), if it is.
    pub(crate) fn precedes(&self, a: WriteId, b: WriteId) -> Option<Evidence> {
        let (first, second) = (&self.writes[a], &self.writes[b]);
        debug_assert_eq!(first.key, second.key);
        if a == b {
            return None;
        }
        if first
            .complete
            .is_some_and(|complete| complete < second.invoke)
        {
            return Some(Evidence::RealTime);
        }
        let in_past =
            first.complete.is_some() && self.past(b)[first.process] > first.ok_writes_before;
        in_past.then_some(Evidence::Causality)
    }

    /// Whether `observation` is known to be older than `write`, with the proof.
    pub(crate) fn older(&self, observation: Observation, write: WriteId) -> Option<Older> {
        match observation {
            Observation::Unknown => None,
            Observation::Write(observed) => {
                let evidence = self.precedes(observed, write)?;
                Some(Older::Write {
                    observed,
                    than: write,
                    evidence,
                })
            }
            Observation::Absent => {
                let deletes = &self.deletes[self.writes[write].key];
                let all_precede =
                    deletes.all_before(&self.writes, self.writes[write].invoke, |delete| {
                        self.precedes(delete, write).is_some()
                    });
                all_precede.then_some(Older::Absent {
                    than: write,
                    latest_delete: deletes.latest,
                })
            }
        }
    }

    /// Words completing "the read returned ...".
    pub(crate) fn explain_older(&self, older: Older) -> String {
        match older {
            Older::Write {
                observed,
                than,
                evidence,
            } => {
                let than = describe_write(self, than);
                let how = match evidence {
                    Evidence::RealTime => format!("was acknowledged before {than} was invoked"),
                    Evidence::Causality => format!("is in the causal past of {than}"),
                };
                format!("{}, whose write {how}", self.written_value(observed))
            }
            Older::Absent {
                latest_delete: None,
                ..
            } => "absent, although the key was never deleted".into(),
            Older::Absent { than, .. } => format!(
                "absent, although every delete of the key precedes {}",
                describe_write(self, than)
            ),
        }
    }

    /// History indices of the operations that prove `older`, besides the read and the
    /// write it is older than: the write the read returned (or the key's latest delete)
    /// and, for causal evidence, the chain of reads that carried it.
    pub(crate) fn older_operations(&self, older: Older) -> Vec<usize> {
        let (earlier, than) = match older {
            Older::Write { observed, than, .. } => (observed, than),
            Older::Absent {
                latest_delete: None,
                ..
            } => return Vec::new(),
            Older::Absent {
                latest_delete: Some(delete),
                than,
            } => (delete, than),
        };
        let mut operations = vec![self.writes[earlier].op];
        if self.precedes(earlier, than) == Some(Evidence::Causality) {
            operations.extend(self.causal_chain(earlier, than));
        }
        operations
    }

    /// Whether `a` is in `b`'s causal past.
    fn in_causal_past(&self, a: WriteId, b: WriteId) -> bool {
        let first = &self.writes[a];
        first.complete.is_some() && self.past(b)[first.process] > first.ok_writes_before
    }

    /// The operations through which `a` entered `b`'s causal past: for each hop, the read
    /// (or cas) by which a process learned of a write, and that write. Empty when `a` is
    /// an earlier write of `b`'s own session.
    pub(crate) fn causal_chain(&self, a: WriteId, b: WriteId) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut target = b;
        for _ in 0..CHAIN_HOPS_MAX {
            if self.writes[a].process == self.writes[target].process {
                break;
            }
            let Some((learned_by, learned)) = self.learned_from(target, a) else {
                break;
            };
            chain.push(learned_by);
            if learned == a {
                break;
            }
            chain.push(self.writes[learned].op);
            target = learned;
        }
        chain
    }

    /// The read (or cas) of `target`'s session, before `target`, that returned `a` or a
    /// write with `a` in its causal past: (its history index, the write it returned).
    fn learned_from(&self, target: WriteId, a: WriteId) -> Option<(usize, WriteId)> {
        let record = &self.writes[target];
        let carries = |write: WriteId| write == a || self.in_causal_past(a, write);
        for &entry in self.sessions[record.process].iter().rev() {
            match entry {
                SessionEntry::Read(read) => {
                    let read = &self.reads[read];
                    if let Observation::Write(write) = read.observation
                        && read.complete <= record.invoke
                        && carries(write)
                    {
                        return Some((read.op, write));
                    }
                }
                SessionEntry::Write(cas) => {
                    let write = &self.writes[cas];
                    if let Some(expected) = write.cas_observed
                        && write.invoke <= record.invoke
                        && carries(expected)
                    {
                        return Some((write.op, expected));
                    }
                }
            }
        }
        None
    }

    /// The latest `ok` write of `key` by `process` among its first `ok_writes` ok writes.
    pub(crate) fn latest_ok_write(
        &self,
        process: usize,
        key: usize,
        ok_writes: u32,
    ) -> Option<WriteId> {
        let writes = self.ok_writes_by_process_key.get(&(process, key))?;
        let count =
            writes.partition_point(|&write| self.writes[write].ok_writes_before < ok_writes);
        count.checked_sub(1).map(|last| writes[last])
    }

    /// The causal past of `write` as (process, ok writes) pairs, non-zero entries only.
    pub(crate) fn causal_past_of(&self, write: WriteId) -> impl Iterator<Item = (usize, u32)> + '_ {
        self.past(write)
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(process, &count)| (process, count))
    }

    /// The value `write` wrote (`null` for a delete).
    pub(crate) fn written_value(&self, write: WriteId) -> &'h serde_json::Value {
        let operation = self.operation(self.writes[write].op);
        match (operation.f, operation.cas_values()) {
            (Function::Delete, _) => &serde_json::Value::Null,
            (_, Some((_, new))) => new,
            _ => &operation.value,
        }
    }

    /// What a read returned, in words.
    pub(crate) fn read_value(&self, read: ReadId) -> String {
        match self.reads[read].observation {
            Observation::Absent => "absent".into(),
            _ => self.operation(self.reads[read].op).value.to_string(),
        }
    }

    /// When a session entry was invoked.
    pub(crate) fn invoke_of(&self, entry: SessionEntry) -> u64 {
        match entry {
            SessionEntry::Read(read) => self.reads[read].invoke,
            SessionEntry::Write(write) => self.writes[write].invoke,
        }
    }
}

/// Items that a session may rely on once they have completed: pushed with their
/// completion time, popped once the session's clock reaches it.
#[derive(Debug)]
pub(crate) struct Completions<T: Ord + Copy> {
    pending: BinaryHeap<Reverse<(u64, T)>>,
}

impl<T: Ord + Copy> Completions<T> {
    pub(crate) fn new() -> Completions<T> {
        Completions {
            pending: BinaryHeap::new(),
        }
    }

    pub(crate) fn push(&mut self, complete: u64, item: T) {
        self.pending.push(Reverse((complete, item)));
    }

    /// The next item that completed at or before `time`, if any.
    pub(crate) fn pop_until(&mut self, time: u64) -> Option<T> {
        let &Reverse((complete, item)) = self.pending.peek()?;
        if complete > time {
            return None;
        }
        self.pending.pop();
        Some(item)
    }
}

/// `write of 5 by process 2 (completed at 40)`.
pub(crate) fn describe_write(observations: &Observations<'_>, write: WriteId) -> String {
    let record = &observations.writes[write];
    let operation = observations.operation(record.op);
    let what = if record.deletes {
        "the delete".to_string()
    } else {
        match operation.cas_values() {
            Some((_, new)) => format!("the cas to {new}"),
            None => format!("the write of {}", operation.value),
        }
    };
    format!("{what} by process {}", operation.process)
}

/// A key's deletes, indexed so that "does every delete precede this write" is cheap:
/// a read of absent is known older than a write only if so.
#[derive(Debug, Default)]
pub(crate) struct Deletes {
    /// The deletes, in invocation order (writes are added in history order, then sorted).
    by_invocation: Vec<WriteId>,
    /// Whether one has an unknown outcome (it can never be known to precede anything).
    any_unknown: bool,
    /// The longest `ok` delete, in ns.
    duration_max: u64,
    /// The one completing last (an unknown outcome counts as never completing).
    pub(crate) latest: Option<WriteId>,
}

impl Deletes {
    fn add(&mut self, writes: &[Write], delete: WriteId) {
        let record = &writes[delete];
        match record.complete {
            Some(complete) => self.duration_max = self.duration_max.max(complete - record.invoke),
            None => self.any_unknown = true,
        }
        let completes_last = |id: WriteId| writes[id].complete.unwrap_or(u64::MAX);
        if self
            .latest
            .is_none_or(|latest| completes_last(delete) >= completes_last(latest))
        {
            self.latest = Some(delete);
        }
        let at = self
            .by_invocation
            .partition_point(|&other| writes[other].invoke <= record.invoke);
        self.by_invocation.insert(at, delete);
    }

    /// Whether `precedes` holds for every delete not certainly acknowledged before
    /// `invoke` (the others completed before it). A delete invoked after `invoke`, or of
    /// unknown outcome, is passed to `precedes` alone: the caller's answer for it decides.
    pub(crate) fn all_before(
        &self,
        writes: &[Write],
        invoke: u64,
        precedes: impl Fn(WriteId) -> bool,
    ) -> bool {
        let Some(&last) = self.by_invocation.last() else {
            return true;
        };
        if self.any_unknown || writes[last].invoke > invoke {
            let unknown = self
                .by_invocation
                .iter()
                .copied()
                .find(|&id| writes[id].complete.is_none());
            return precedes(unknown.unwrap_or(last));
        }
        let horizon = invoke.saturating_sub(self.duration_max);
        let start = self
            .by_invocation
            .partition_point(|&id| writes[id].invoke < horizon);
        self.by_invocation[start..]
            .iter()
            .copied()
            .filter(|&id| {
                writes[id]
                    .complete
                    .is_none_or(|complete| complete >= invoke)
            })
            .all(precedes)
    }
}

/// Collects writes and reads, then computes sessions and causality.
#[derive(Debug, Default)]
struct Builder<'h> {
    key_ids: BTreeMap<&'h str, usize>,
    keys: Vec<&'h str>,
    process_dense: BTreeMap<u64, usize>,
    writes: Vec<Write>,
    reads: Vec<Read>,
    values: HashMap<(usize, String), WriteId>,
    write_of_operation: HashMap<usize, WriteId>,
}

impl<'h> Builder<'h> {
    fn key(&mut self, key: &'h str) -> usize {
        let next = self.keys.len();
        *self.key_ids.entry(key).or_insert_with(|| {
            self.keys.push(key);
            next
        })
    }

    fn process(&mut self, process: u64) -> usize {
        let next = self.process_dense.len();
        *self.process_dense.entry(process).or_insert(next)
    }

    fn add_write(&mut self, index: usize, operation: &'h Operation) -> Result<(), String> {
        let written = match (operation.f, operation.kind, operation.ok) {
            (_, OperationType::Fail, _) | (Function::Read, _, _) => return Ok(()),
            (Function::Cas, OperationType::Ok, Some(false)) => return Ok(()),
            (Function::Write, _, _) => &operation.value,
            (Function::Delete, _, _) => &serde_json::Value::Null,
            (Function::Cas, _, _) => operation
                .cas_values()
                .map_or(&serde_json::Value::Null, |(_, new)| new),
        };
        let key = self.key(&operation.key);
        let process = self.process(operation.process);
        let id = self.writes.len();
        if !written.is_null()
            && let Some(&earlier) = self.values.get(&(key, written.to_string()))
        {
            return Err(format!(
                "key {:?}: value {written} is written by two operations (operations {} and {}); \
                 these checkers need every written value to be unique per key",
                operation.key,
                self.writes[earlier].op + 1,
                index + 1
            ));
        }
        if !written.is_null() {
            self.values.insert((key, written.to_string()), id);
        }
        self.write_of_operation.insert(index, id);
        let ok = operation.kind == OperationType::Ok;
        self.writes.push(Write {
            op: index,
            key,
            process,
            invoke: operation.invoke,
            complete: if ok { operation.complete } else { None },
            deletes: written.is_null(),
            ok_writes_before: 0,
            cas_observed: None,
        });
        Ok(())
    }

    fn resolve(&self, key: usize, value: &serde_json::Value) -> Observation {
        if value.is_null() {
            return Observation::Absent;
        }
        self.values
            .get(&(key, value.to_string()))
            .map_or(Observation::Unknown, |&write| Observation::Write(write))
    }

    fn add_read(&mut self, index: usize, operation: &'h Operation) {
        if operation.kind != OperationType::Ok {
            return;
        }
        let key = self.key(&operation.key);
        let process = self.process(operation.process);
        match operation.f {
            Function::Read => {
                let observation = self.resolve(key, &operation.value);
                self.reads.push(Read {
                    op: index,
                    key,
                    process,
                    invoke: operation.invoke,
                    complete: operation.complete.unwrap_or(operation.invoke),
                    observation,
                });
            }
            Function::Cas if operation.ok == Some(true) => {
                let expected = operation.cas_values().map(|(expected, _)| expected.clone());
                let observed = expected.map(|value| self.resolve(key, &value));
                if let (Some(Observation::Write(observed)), Some(&writer)) =
                    (observed, self.write_of_operation.get(&index))
                {
                    self.writes[writer].cas_observed = Some(observed);
                }
            }
            _ => {}
        }
    }

    fn finish(mut self, history: &'h History) -> Result<Observations<'h>, String> {
        let processes = self.process_dense.len();
        let mut process_ids = vec![0; processes];
        for (&id, &dense) in &self.process_dense {
            process_ids[dense] = id;
        }
        let sessions = sessions(&self.writes, &self.reads, processes);
        let mut ok_writes_by_process_key: HashMap<(usize, usize), Vec<WriteId>> = HashMap::new();
        for session in &sessions {
            let mut ok_writes = 0;
            for entry in session {
                if let SessionEntry::Write(write) = *entry {
                    let record = &mut self.writes[write];
                    record.ok_writes_before = ok_writes;
                    if record.complete.is_some() {
                        ok_writes += 1;
                        ok_writes_by_process_key
                            .entry((record.process, record.key))
                            .or_default()
                            .push(write);
                    }
                }
            }
        }
        let mut deletes: Vec<Deletes> = (0..self.keys.len()).map(|_| Deletes::default()).collect();
        for (id, write) in self.writes.iter().enumerate() {
            if write.deletes {
                deletes[write.key].add(&self.writes, id);
            }
        }
        if self.writes.len().saturating_mul(processes) > CAUSAL_ENTRIES_MAX {
            return Err(format!(
                "{} writes from {processes} processes are too many to track causality \
                 (at most {CAUSAL_ENTRIES_MAX} vector-clock entries)",
                self.writes.len()
            ));
        }
        let causal_past = causal_past(&self.writes, &self.reads, &sessions, processes);
        Ok(Observations {
            history,
            keys: self.keys,
            process_ids,
            writes: self.writes,
            reads: self.reads,
            sessions,
            deletes,
            ok_writes_by_process_key,
            causal_past,
        })
    }
}

/// Each process's reads and writes in invocation order (ties: history order).
fn sessions(writes: &[Write], reads: &[Read], processes: usize) -> Vec<Vec<SessionEntry>> {
    let mut keyed: Vec<Vec<(u64, usize, SessionEntry)>> = vec![Vec::new(); processes];
    for (id, write) in writes.iter().enumerate() {
        keyed[write.process].push((write.invoke, write.op, SessionEntry::Write(id)));
    }
    for (id, read) in reads.iter().enumerate() {
        keyed[read.process].push((read.invoke, read.op, SessionEntry::Read(id)));
    }
    keyed
        .into_iter()
        .map(|mut session| {
            session.sort_unstable_by_key(|&(invoke, op, _)| (invoke, op));
            session.into_iter().map(|(_, _, entry)| entry).collect()
        })
        .collect()
}

/// Vector clocks: replays every process's session, merging at each read the causal past
/// of the write it returned (plus that write, if `ok`). A process's events are replayed
/// in its order (a write at its invocation, a read at its completion, reads first at
/// equal times); processes are interleaved by event time, writes before reads at equal
/// times so a read can see a write invoked at the instant it returned. A write not yet
/// replayed when a read returns it (a read from the future) contributes nothing.
fn causal_past(
    writes: &[Write],
    reads: &[Read],
    sessions: &[Vec<SessionEntry>],
    processes: usize,
) -> Vec<u32> {
    let event = |entry: SessionEntry| match entry {
        SessionEntry::Write(write) => (writes[write].invoke, 1_u8, writes[write].op),
        SessionEntry::Read(read) => (reads[read].complete, 0_u8, reads[read].op),
    };
    let queues: Vec<Vec<SessionEntry>> = sessions
        .iter()
        .map(|session| {
            let mut queue = session.clone();
            queue.sort_by_key(|&entry| event(entry));
            queue
        })
        .collect();
    let mut past = vec![0_u32; writes.len() * processes];
    let mut replayed = vec![false; writes.len()];
    let mut clocks = vec![vec![0_u32; processes]; processes];
    let mut heads = vec![0_usize; processes];
    let mut ready: BinaryHeap<Reverse<(u64, u8, usize)>> = BinaryHeap::new();
    let global = |entry: SessionEntry, process: usize| {
        let (time, class, _) = event(entry);
        Reverse((time, 1 - class, process))
    };
    for (process, queue) in queues.iter().enumerate() {
        if let Some(&first) = queue.first() {
            ready.push(global(first, process));
        }
    }
    while let Some(Reverse((_, _, process))) = ready.pop() {
        let entry = queues[process][heads[process]];
        heads[process] += 1;
        if let Some(&next) = queues[process].get(heads[process]) {
            ready.push(global(next, process));
        }
        let merged = match entry {
            SessionEntry::Write(write) => writes[write].cas_observed,
            SessionEntry::Read(read) => match reads[read].observation {
                Observation::Write(observed) => Some(observed),
                _ => None,
            },
        };
        if let Some(observed) = merged.filter(|&observed| replayed[observed]) {
            let record = &writes[observed];
            let (clock, source) = (
                &mut clocks[process],
                &past[observed * processes..(observed + 1) * processes],
            );
            for (entry, &known) in clock.iter_mut().zip(source) {
                *entry = (*entry).max(known);
            }
            if record.complete.is_some() {
                clock[record.process] = clock[record.process].max(record.ok_writes_before + 1);
            }
        }
        if let SessionEntry::Write(write) = entry {
            past[write * processes..(write + 1) * processes].copy_from_slice(&clocks[process]);
            replayed[write] = true;
            if writes[write].complete.is_some() {
                let own = &mut clocks[process][process];
                *own = (*own).max(writes[write].ok_writes_before + 1);
            }
        }
    }
    past
}
