//! Shrinking a non-linearizable sub-history to a small witness.
//!
//! A violation found in a key with ten thousand operations is useless to a human until
//! it is cut down to the handful that cannot be ordered. The search already tells which
//! operations matter at most: those invoked before the furthest completion it reached
//! (no branch touched any later one, so dropping them keeps the search, and its failure,
//! identical). From there the shrinker removes operations greedily, one at a time,
//! keeping each removal that leaves the rest non-linearizable — by chunks first, then one
//! at a time until a pass removes nothing: the result is 1-minimal (removing any single
//! operation makes it linearizable, or would leave a read with no write that explains
//! it).
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

use super::model::{ABSENT, RegisterOp, ValueId};
use super::search::{SearchOutcome, search};
use crate::budget::Meter;
use std::collections::HashSet;

/// The most sub-history checks one shrink may run.
const ATTEMPTS_MAX: usize = 1_000;

/// The most steps one of those checks may take.
const STEPS_PER_ATTEMPT_MAX: u64 = 100_000;

/// Returns indices into `ops` (sorted) of a small non-linearizable subset, starting
/// from `involved`, which must be non-linearizable itself.
///
/// Removal goes by chunks first (halves, quarters, ... of what is left, latest first, in
/// the manner of Zeller's delta debugging), so that a witness hidden in thousands of
/// operations costs a logarithmic number of checks to approach, then one operation at a
/// time until a pass removes nothing.
pub(crate) fn shrink(ops: &[RegisterOp], involved: &[usize], meter: &Meter) -> Vec<usize> {
    let mut kept = with_explaining_writes(ops, involved);
    let mut attempts = 0;
    let mut chunk = (kept.len() / 2).max(1);
    loop {
        let mut removed_any = false;
        let mut end = kept.len();
        while end > 0 {
            if attempts == ATTEMPTS_MAX || meter.check_deadline().is_err() {
                return kept;
            }
            let start = end.saturating_sub(chunk);
            let candidate: Vec<usize> = kept[..start].iter().chain(&kept[end..]).copied().collect();
            end = start;
            if !keeps_explanations(ops, &kept, &candidate) {
                continue;
            }
            attempts += 1;
            if certainly_not_linearizable(ops, &candidate, meter) {
                kept = candidate;
                removed_any = true;
            }
        }
        if chunk > 1 {
            chunk /= 2;
        } else if !removed_any {
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

/// Whether every value observed in `after` that some operation of `before` writes is
/// still written by an operation of `after`.
fn keeps_explanations(ops: &[RegisterOp], before: &[usize], after: &[usize]) -> bool {
    let written_after: HashSet<ValueId> = after
        .iter()
        .filter_map(|&index| ops[index].written())
        .collect();
    let written_before: HashSet<ValueId> = before
        .iter()
        .filter_map(|&index| ops[index].written())
        .collect();
    after
        .iter()
        .filter_map(|&index| ops[index].observed())
        .all(|value| {
            value == ABSENT || written_after.contains(&value) || !written_before.contains(&value)
        })
}

#[cfg(test)]
mod tests {
    use super::super::model::Action;
    use super::*;
    use crate::budget::Budget;

    fn op(invoke: u64, complete: u64, action: Action) -> RegisterOp {
        RegisterOp::for_test(invoke, Some(complete), action)
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
