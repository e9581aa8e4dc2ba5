//! A brute-force linearizability oracle for one register key, as plain as it can be.
//!
//! The checker under test (`check_registers`) is fast because it is clever: it
//! linearizes agreeing observers eagerly, tries operations of unknown outcome only where
//! a waiting operation needs them, treats interchangeable ones as one, merges values
//! nobody reads, and recognises common violations before searching. Each of those rules
//! is an argument that some branches need not be explored, and each argument can be
//! subtly wrong. A cross-check against another clever checker shares the risk; this
//! oracle shares none of the reasoning. It tries *every* order, with one memo only: a
//! configuration — the set of operations already placed and the register's value — that
//! failed once fails again, because what may follow depends on nothing else.
//!
//! The definition it implements, straight from the history format (history.rs):
//! - `fail` operations never happened and `info` reads constrain nothing: both are left
//!   out;
//! - every `ok` operation is placed, within its interval: it can only come after every
//!   operation that completed before it was invoked (`a.complete < b.invoke`, touching
//!   intervals are concurrent);
//! - an `info` write, cas or delete may be placed at any point after its invocation, or
//!   never: it has no completion, so it never has to come before anything;
//! - the register starts absent (`null`); a read must return the current value; a cas
//!   with `ok: true` needs the value to equal its expectation, one with `ok: false`
//!   needs it to differ (and changes nothing); an `info` cas, if placed, needs its
//!   expectation to hold (placing it where it would not swap is the same as never
//!   placing it).
//!
//! The history is linearizable when some order places every `ok` operation. With at
//! most [`OPERATIONS_MAX`] operations, the configurations number at most 2^n times the
//! distinct values, so the search is instant for the tiny histories it is meant for.

use replikv_check::{Function, History, Operation, OperationType};
use serde_json::Value;
use std::collections::HashSet;

/// The most operations (after dropping the ones that never matter) the oracle accepts.
pub const OPERATIONS_MAX: usize = 20;

/// Whether `history`, all of whose operations touch one key, is linearizable.
pub fn is_linearizable(history: &History) -> bool {
    let ops: Vec<&Operation> = history
        .operations
        .iter()
        .filter(|op| match op.kind {
            OperationType::Ok => true,
            OperationType::Fail => false,
            OperationType::Info => op.f != Function::Read,
        })
        .collect();
    assert!(
        ops.len() <= OPERATIONS_MAX,
        "the oracle is for tiny histories"
    );
    assert!(
        ops.windows(2).all(|pair| pair[0].key == pair[1].key),
        "the oracle checks one key"
    );
    let mut failed = HashSet::new();
    extends(&ops, 0, &Value::Null, &mut failed)
}

/// Whether the configuration (`placed` operations, register holding `state`) extends
/// to a linearization.
fn extends(
    ops: &[&Operation],
    placed: u32,
    state: &Value,
    failed: &mut HashSet<(u32, String)>,
) -> bool {
    let is_placed = |index: usize| placed & (1 << index) != 0;
    let all_ok_placed = (0..ops.len()).all(|i| is_placed(i) || ops[i].kind != OperationType::Ok);
    if all_ok_placed {
        return true;
    }
    if !failed.insert((placed, state.to_string())) {
        return false;
    }
    for next in (0..ops.len()).filter(|&i| !is_placed(i)) {
        let nothing_must_come_first = (0..ops.len()).all(|other| {
            other == next
                || is_placed(other)
                || ops[other].kind == OperationType::Info
                || ops[other].complete.expect("an ok operation completes") >= ops[next].invoke
        });
        if !nothing_must_come_first {
            continue;
        }
        if let Some(state_after) = apply(state, ops[next])
            && extends(ops, placed | (1 << next), &state_after, failed)
        {
            return true;
        }
    }
    false
}

/// The register's value after `op` takes effect on `state`, or `None` if it cannot
/// take effect there with its recorded result.
fn apply(state: &Value, op: &Operation) -> Option<Value> {
    match op.f {
        Function::Read => (*state == op.value).then(|| state.clone()),
        Function::Write => Some(op.value.clone()),
        Function::Delete => Some(Value::Null),
        Function::Cas => {
            let (expected, new) = op.cas_values().expect("a cas has [expected, new]");
            let swapped = match op.kind {
                OperationType::Ok => op.ok.expect("an ok cas says whether it swapped"),
                _ => true,
            };
            match (swapped, state == expected) {
                (true, true) => Some(new.clone()),
                (false, false) => Some(state.clone()),
                _ => None,
            }
        }
    }
}
