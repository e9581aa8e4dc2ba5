//! Fast proofs of the common linearizability violations, before any search.
//!
//! Proving a history linearizable is usually quick — the search finds an order and
//! stops — but proving it is *not* means exhausting every configuration the search can
//! reach before the bad operation, which on one key with many concurrent clients can take
//! minutes. Yet the violations real bugs produce are mostly of a few simple shapes that
//! can be recognised directly, in O(n log n), when the value a read returned identifies
//! the one write that wrote it (values written once per key, as the simulator and test
//! workloads make them):
//!
//! - *read of a value never written in time*: no operation wrote it before the read
//!   completed;
//! - *stale read*: the read returned `v`, but the write of `v` completed before another
//!   acknowledged write began, which itself completed before the read began — `v` was
//!   certainly overwritten before the read;
//! - *read going back in time*: one read completed before another began, the first saw a
//!   write that began after the write the second saw had completed;
//! - *absent after a write*: a read returned absent, although an acknowledged write
//!   completed before it began and every operation that may write absent (deletes)
//!   completed before that write began.
//!
//! Each finding is a proof, and its witness (two to four operations) is itself a
//! non-linearizable history. A history with none of these shapes still goes through the
//! full search, which finds any other violation. Successful cas operations count as both
//! a read of the value they expected and a write of their new value.

use super::model::{ABSENT, RegisterOp, ValueId};
use std::collections::HashMap;

/// A shape found: what it is and the witness (indices into the key's operations).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Anomaly {
    /// What the observer did wrong, completing "this read ...".
    pub(crate) shape: &'static str,
    /// The read (or cas) whose result is impossible.
    pub(crate) observer: usize,
    pub(crate) witness: Vec<usize>,
}

/// The first anomaly of `ops` (one key, in invocation order), if any.
pub(crate) fn find_anomaly(ops: &[RegisterOp]) -> Option<Anomaly> {
    let writers = writers_by_value(ops);
    never_written_in_time(ops, &writers)
        .or_else(|| stale_read(ops, &writers))
        .or_else(|| read_back_in_time(ops, &writers))
        .or_else(|| absent_after_a_write(ops, &writers))
}

fn writers_by_value(ops: &[RegisterOp]) -> HashMap<ValueId, Vec<usize>> {
    let mut writers: HashMap<ValueId, Vec<usize>> = HashMap::new();
    for (index, op) in ops.iter().enumerate() {
        if let Some(value) = op.written() {
            writers.entry(value).or_default().push(index);
        }
    }
    writers
}

/// The `ok` observers: (index, value observed, invoke, complete).
fn observers(ops: &[RegisterOp]) -> impl Iterator<Item = (usize, ValueId, u64, u64)> + '_ {
    ops.iter()
        .enumerate()
        .filter_map(|(index, op)| Some((index, op.observed()?, op.invoke, op.complete?)))
}

/// The one operation writing `value`, if exactly one does (never for absent, which is
/// also the initial state).
fn only_writer(writers: &HashMap<ValueId, Vec<usize>>, value: ValueId) -> Option<usize> {
    if value == ABSENT {
        return None;
    }
    match writers.get(&value).map(Vec::as_slice) {
        Some(&[writer]) => Some(writer),
        _ => None,
    }
}

fn never_written_in_time(
    ops: &[RegisterOp],
    writers: &HashMap<ValueId, Vec<usize>>,
) -> Option<Anomaly> {
    for (index, value, _, complete) in observers(ops) {
        if value == ABSENT {
            continue;
        }
        let value_writers = writers.get(&value).map(Vec::as_slice).unwrap_or_default();
        if value_writers
            .iter()
            .all(|&writer| ops[writer].invoke > complete)
        {
            let witness = [index]
                .into_iter()
                .chain(value_writers.iter().copied())
                .collect();
            return Some(Anomaly {
                shape: "returned a value no operation had begun to write before it completed",
                observer: index,
                witness,
            });
        }
    }
    None
}

/// `ok` writes sorted by invocation, with the suffix minimum of their completions, to
/// answer "is there a write invoked after `t` that completed before `u`".
struct AcknowledgedWrites {
    by_invoke: Vec<usize>,
    /// For each position: the write completing first among `by_invoke[position..]`.
    earliest_completion_from: Vec<usize>,
}

impl AcknowledgedWrites {
    fn new(ops: &[RegisterOp], include: impl Fn(&RegisterOp) -> bool) -> AcknowledgedWrites {
        let mut by_invoke: Vec<usize> = (0..ops.len())
            .filter(|&index| {
                ops[index].is_ok() && ops[index].written().is_some() && include(&ops[index])
            })
            .collect();
        by_invoke.sort_by_key(|&index| (ops[index].invoke, index));
        let complete = |index: usize| ops[index].complete.unwrap_or(u64::MAX);
        let mut earliest_completion_from = by_invoke.clone();
        for position in (0..by_invoke.len().saturating_sub(1)).rev() {
            let later = earliest_completion_from[position + 1];
            if complete(later) < complete(by_invoke[position]) {
                earliest_completion_from[position] = later;
            }
        }
        AcknowledgedWrites {
            by_invoke,
            earliest_completion_from,
        }
    }

    /// A write invoked after `after` that completed before `before`.
    fn between(&self, ops: &[RegisterOp], after: u64, before: u64) -> Option<usize> {
        let position = self
            .by_invoke
            .partition_point(|&index| ops[index].invoke <= after);
        let candidate = *self.earliest_completion_from.get(position)?;
        ops[candidate]
            .complete
            .filter(|&complete| complete < before)
            .map(|_| candidate)
    }
}

fn stale_read(ops: &[RegisterOp], writers: &HashMap<ValueId, Vec<usize>>) -> Option<Anomaly> {
    let acknowledged = AcknowledgedWrites::new(ops, |_| true);
    for (index, value, invoke, _) in observers(ops) {
        let Some(writer) = only_writer(writers, value) else {
            continue;
        };
        let Some(written) = ops[writer].complete else {
            continue;
        };
        if let Some(overwriter) = acknowledged.between(ops, written, invoke) {
            return Some(Anomaly {
                shape: "returned a value that an acknowledged write had certainly overwritten",
                observer: index,
                witness: vec![writer, overwriter, index],
            });
        }
    }
    None
}

fn read_back_in_time(
    ops: &[RegisterOp],
    writers: &HashMap<ValueId, Vec<usize>>,
) -> Option<Anomaly> {
    let mut by_completion: Vec<(u64, usize, usize)> = observers(ops)
        .filter_map(|(index, value, _, complete)| {
            Some((complete, index, only_writer(writers, value)?))
        })
        .collect();
    by_completion.sort_unstable();
    // For each prefix (by completion): the read whose write was invoked last.
    let mut newest_so_far: Vec<(usize, usize)> = Vec::with_capacity(by_completion.len());
    let mut newest: Option<(usize, usize)> = None;
    for &(_, index, writer) in &by_completion {
        if newest.is_none_or(|(_, previous)| ops[writer].invoke > ops[previous].invoke) {
            newest = Some((index, writer));
        }
        newest_so_far.extend(newest);
    }
    for (index, value, invoke, _) in observers(ops) {
        let Some(writer) = only_writer(writers, value) else {
            continue;
        };
        let Some(written) = ops[writer].complete else {
            continue;
        };
        let earlier = by_completion.partition_point(|&(complete, _, _)| complete < invoke);
        let Some(&(newer_read, newer_writer)) =
            earlier.checked_sub(1).map(|last| &newest_so_far[last])
        else {
            continue;
        };
        if ops[newer_writer].invoke > written {
            return Some(Anomaly {
                shape: "returned an older value than a read that had completed before it began",
                observer: index,
                witness: vec![writer, newer_writer, newer_read, index],
            });
        }
    }
    None
}

fn absent_after_a_write(
    ops: &[RegisterOp],
    writers: &HashMap<ValueId, Vec<usize>>,
) -> Option<Anomaly> {
    let absent_writers = writers.get(&ABSENT).map(Vec::as_slice).unwrap_or_default();
    // The operation that may write absent last; give up if one's outcome is unknown.
    let mut last_absent_writer: Option<usize> = None;
    for &writer in absent_writers {
        let complete = ops[writer].complete?;
        if last_absent_writer.is_none_or(|last| ops[last].complete < Some(complete)) {
            last_absent_writer = Some(writer);
        }
    }
    let acknowledged = AcknowledgedWrites::new(ops, |op| op.written() != Some(ABSENT));
    for (index, value, invoke, _) in observers(ops) {
        if value != ABSENT {
            continue;
        }
        let settled = last_absent_writer.and_then(|writer| ops[writer].complete);
        let overwriter = match settled {
            None => acknowledged.completed_before(ops, invoke),
            Some(settled) => acknowledged.between(ops, settled, invoke),
        };
        if let Some(overwriter) = overwriter {
            let witness = last_absent_writer
                .into_iter()
                .chain([overwriter, index])
                .collect();
            return Some(Anomaly {
                shape: "returned absent although an acknowledged write had certainly replaced every \
                        absent state",
                observer: index,
                witness,
            });
        }
    }
    None
}

impl AcknowledgedWrites {
    /// A write that completed before `before`, invoked at any time.
    fn completed_before(&self, ops: &[RegisterOp], before: u64) -> Option<usize> {
        let candidate = *self.earliest_completion_from.first()?;
        ops[candidate]
            .complete
            .filter(|&complete| complete < before)
            .map(|_| candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Action;
    use super::*;

    fn op(invoke: u64, complete: u64, action: Action) -> RegisterOp {
        RegisterOp::for_test(invoke, Some(complete), action)
    }

    #[test]
    fn finds_each_shape_with_its_witness() {
        let stale = [
            op(0, 10, Action::Write(1)),
            op(20, 30, Action::Write(2)),
            op(40, 50, Action::Read(1)),
        ];
        assert_eq!(
            find_anomaly(&stale).map(|anomaly| anomaly.witness),
            Some(vec![0, 1, 2])
        );
        let back_in_time = [
            op(0, 10, Action::Write(1)),
            op(20, 100, Action::Write(2)),
            op(30, 40, Action::Read(2)),
            op(50, 60, Action::Read(1)),
        ];
        assert_eq!(
            find_anomaly(&back_in_time).map(|anomaly| anomaly.witness),
            Some(vec![0, 1, 2, 3])
        );
        let absent = [
            op(0, 10, Action::Write(ABSENT)),
            op(20, 30, Action::Write(1)),
            op(40, 50, Action::Read(ABSENT)),
        ];
        assert_eq!(
            find_anomaly(&absent).map(|anomaly| anomaly.witness),
            Some(vec![0, 1, 2])
        );
        let never_deleted = [
            op(20, 30, Action::Write(1)),
            op(40, 50, Action::Read(ABSENT)),
        ];
        assert_eq!(
            find_anomaly(&never_deleted).map(|anomaly| anomaly.witness),
            Some(vec![0, 1])
        );
    }

    #[test]
    fn absent_is_never_taken_for_one_write() {
        let initial_then_delete = [
            op(0, 10, Action::Read(ABSENT)),
            op(20, 30, Action::Write(1)),
            op(25, 60, Action::Read(1)),
            op(100, 110, Action::Write(ABSENT)),
        ];
        assert_eq!(find_anomaly(&initial_then_delete), None);
    }

    #[test]
    fn concurrent_and_ambiguous_cases_are_left_to_the_search() {
        let concurrent = [
            op(0, 10, Action::Write(1)),
            op(20, 45, Action::Write(2)),
            op(40, 50, Action::Read(1)),
        ];
        assert_eq!(find_anomaly(&concurrent), None);
        let duplicate_value = [
            op(0, 10, Action::Write(1)),
            op(20, 30, Action::Write(2)),
            op(32, 35, Action::Write(1)),
            op(40, 50, Action::Read(1)),
        ];
        assert_eq!(find_anomaly(&duplicate_value), None);
        let deleted_late = [
            op(20, 30, Action::Write(1)),
            op(25, 45, Action::Write(ABSENT)),
            op(40, 50, Action::Read(ABSENT)),
        ];
        assert_eq!(find_anomaly(&deleted_late), None);
    }
}
