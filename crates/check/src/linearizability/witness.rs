//! Shrinking a non-linearizable sub-history to a small witness.
//!
//! A violation found in a key with ten thousand operations is useless to a human until
//! it is cut down to the handful that cannot be ordered. The search already tells which
//! operations matter at most: those invoked before the furthest completion it reached
//! (no branch touched any later one, so dropping them keeps the search, and its failure,
//! identical). From there the shrinker removes operations greedily, one at a time,
//! keeping each removal that leaves the rest non-linearizable, and repeats until a pass
//! removes nothing: the result is 1-minimal (removing any single operation makes it
//! linearizable, or would leave a read with no write that explains it).
//!
//! That last rule keeps witnesses honest. A read of 1 with no write of 1 is trivially
//! non-linearizable, so a naive shrinker would happily delete the write of 1 from a
//! stale-read witness and report a read out of nowhere. Here a write is only removed if
//! nothing left in the witness observes its value, unless the witness still has another
//! write of that value. (Before shrinking, writes that explain the kept reads are added
//! back; adding operations invoked after the furthest completion cannot change the
//! search, as argued above.)
//!
//! Shrinking is bounded: a fixed number of re-checks, each with a step budget; when the
//! bound is hit the witness is the smallest found so far, still a true witness.

use super::model::{ABSENT, RegisterOp};
use super::search::{SearchOutcome, search};
use crate::budget::Meter;

/// The most sub-history checks one shrink may run.
const ATTEMPTS_MAX: usize = 2_000;

/// The most steps one of those checks may take.
const STEPS_PER_ATTEMPT_MAX: u64 = 200_000;

/// Returns indices into `ops` (sorted) of a small non-linearizable subset, starting
/// from `involved`, which must be non-linearizable itself.
pub(crate) fn shrink(ops: &[RegisterOp], involved: &[usize], meter: &Meter) -> Vec<usize> {
    let mut kept = with_explaining_writes(ops, involved);
    let mut attempts = 0;
    loop {
        let mut removed_any = false;
        let mut position = kept.len();
        while position > 0 {
            position -= 1;
            if attempts == ATTEMPTS_MAX || meter.check_deadline().is_err() {
                return kept;
            }
            if !removable(ops, &kept, position) {
                continue;
            }
            attempts += 1;
            let candidate: Vec<usize> = kept
                .iter()
                .enumerate()
                .filter(|&(at, _)| at != position)
                .map(|(_, &index)| index)
                .collect();
            if certainly_not_linearizable(ops, &candidate, meter) {
                kept = candidate;
                removed_any = true;
            }
        }
        if !removed_any {
            return kept;
        }
    }
}

/// Whether the subset `indices` of `ops` is non-linearizable (false when undecided).
pub(crate) fn certainly_not_linearizable(
    ops: &[RegisterOp],
    indices: &[usize],
    meter: &Meter,
) -> bool {
    let subset: Vec<RegisterOp> = indices.iter().map(|&index| ops[index]).collect();
    let mut child = meter.child(STEPS_PER_ATTEMPT_MAX);
    matches!(
        search(&subset, &mut child),
        SearchOutcome::NotLinearizable { .. }
    )
}

/// `involved` plus, for each value observed there and written nowhere there, the
/// earliest operation of `ops` that may write it.
fn with_explaining_writes(ops: &[RegisterOp], involved: &[usize]) -> Vec<usize> {
    let mut kept = involved.to_vec();
    for &index in involved {
        let Some(value) = ops[index].observed() else {
            continue;
        };
        if value == ABSENT || kept.iter().any(|&k| ops[k].written() == Some(value)) {
            continue;
        }
        if let Some(writer) = (0..ops.len()).find(|&k| ops[k].written() == Some(value)) {
            kept.push(writer);
        }
    }
    kept.sort_unstable();
    kept.dedup();
    kept
}

/// Whether removing `kept[position]` keeps every observed value explained.
fn removable(ops: &[RegisterOp], kept: &[usize], position: usize) -> bool {
    let Some(value) = ops[kept[position]].written() else {
        return true;
    };
    if value == ABSENT {
        return true;
    }
    let others = kept
        .iter()
        .enumerate()
        .filter(|&(at, _)| at != position)
        .map(|(_, &index)| &ops[index]);
    let mut observed = false;
    for op in others {
        if op.written() == Some(value) {
            return true;
        }
        observed |= op.observed() == Some(value);
    }
    !observed
}

#[cfg(test)]
mod tests {
    use super::super::model::Action;
    use super::*;
    use crate::budget::Budget;

    fn op(invoke: u64, complete: u64, action: Action) -> RegisterOp {
        RegisterOp {
            history_index: 0,
            invoke,
            complete: Some(complete),
            action,
        }
    }

    #[test]
    fn a_stale_read_shrinks_to_the_two_writes_and_the_read() {
        let ops = [
            op(0, 10, Action::Write(1)),
            op(5, 12, Action::Read(ABSENT)),
            op(20, 30, Action::Write(2)),
            op(22, 28, Action::Read(1)),
            op(40, 50, Action::Read(1)),
            op(41, 52, Action::Read(1)),
        ];
        let meter = Meter::new(Budget::unlimited());
        let all: Vec<usize> = (0..ops.len()).collect();
        assert_eq!(shrink(&ops, &all, &meter), vec![0, 2, 4]);
    }

    #[test]
    fn explaining_writes_are_added_back() {
        let ops = [
            op(0, 10, Action::Read(ABSENT)),
            op(20, 30, Action::Read(1)),
            op(25, 40, Action::Write(1)),
        ];
        assert_eq!(with_explaining_writes(&ops, &[0, 1]), vec![0, 1, 2]);
    }
}
