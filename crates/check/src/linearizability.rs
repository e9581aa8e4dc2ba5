//! Linearizability of a history of per-key registers.
//!
//! Definition (Herlihy & Wing, "Linearizability: A Correctness Condition for Concurrent
//! Objects", TOPLAS 1990): a history is linearizable if its completed operations, plus
//! some of its pending ones, can be put in one sequential order that (1) is legal for the
//! object's sequential specification and (2) respects real time: when an operation
//! completes before another is invoked, it comes first. Each operation appears to take
//! effect at one instant between its invocation and its completion.
//!
//! How this checker reads a history:
//! - Each key is its own register (read, write, cas, delete; `null` is absent and every
//!   key starts absent; values compare as JSON values). Linearizability is *local*
//!   (Herlihy & Wing, Theorem 1): a history is linearizable iff each object's
//!   sub-history is, so each key is searched on its own — what Porcupine calls
//!   P-compositionality. Small keys are decided first, so a violation in a small key is
//!   found even if a huge key would exhaust the budget.
//! - Operation `a` real-time precedes `b` iff `a.complete < b.invoke`; operations that
//!   touch at one instant are concurrent.
//! - `fail` operations never happened and are dropped. An `info` write, cas or delete
//!   may take effect at any instant after its invocation, or never: its completion is
//!   +infinity and it need not be linearized. An `info` read constrains nothing and is
//!   dropped.
//!
//! The search per key (search.rs) is Wing & Gong's backtracking with Lowe's just-in-time
//! linearization and Porcupine's memo of visited configurations (cache.rs), plus a rule
//! that keeps operations of unknown outcome from multiplying the work (an `info` write is
//! only tried where an operation that needs its value is waiting); it is
//! metered by a [`Budget`], and an exhausted budget gives `Unknown`, never `Valid`.
//! Before any search, the common violations (a read of a value never written in time, a
//! stale read, a read going back in time, absent after a write) are recognised directly
//! in O(n log n) (anomalies.rs): proving a history non-linearizable by search means
//! exhausting every configuration before the bad operation, which on a busy key can take
//! minutes. A violation found by search is shrunk to a small witness (witness.rs).

mod anomalies;
mod cache;
mod events;
mod groups;
mod model;
mod search;
mod witness;

use crate::budget::{Budget, Meter};
use crate::history::History;
use crate::verdict::{Verdict, Violation, describe};
use model::{RegisterOp, merge_unseen_values, split_by_key, without_useless_info};
use search::{SearchOutcome, search};

/// The property's name in verdicts.
pub const PROPERTY: &str = "linearizability";

/// Checks that `history`, read as one register per key, is linearizable.
pub fn check_registers(history: &History, budget: &Budget) -> Verdict {
    if let Err(error) = history.validate() {
        return Verdict::input_error(error);
    }
    let mut keys: Vec<(&str, Vec<RegisterOp>)> = split_by_key(history)
        .into_iter()
        .map(|(key, mut ops)| {
            merge_unseen_values(&mut ops);
            (key, without_useless_info(ops))
        })
        .collect();
    keys.sort_by_key(|(key, ops)| (ops.len(), *key));
    let mut meter = Meter::new(*budget);
    for (decided, (key, ops)) in keys.iter().enumerate() {
        if let Some(anomaly) = anomalies::find_anomaly(ops) {
            let explanation = format!(
                "key {key:?}: {} {}",
                describe(&history.operations[ops[anomaly.observer].history_index]),
                anomaly.shape
            );
            return invalid(history, ops, &anomaly.witness, explanation);
        }
        match search(ops, &mut meter) {
            SearchOutcome::Linearizable => {}
            SearchOutcome::NotLinearizable { involved, .. } => {
                let witness = witness::shrink(ops, &involved, &meter);
                let explanation = explain(history, key, ops, &witness, &meter);
                return invalid(history, ops, &witness, explanation);
            }
            SearchOutcome::Exhausted(exhausted) => {
                return Verdict::Unknown {
                    reason: format!(
                        "{} after {} steps, while searching key {key:?} ({} operations); \
                         {decided} of {} keys were linearizable before it",
                        exhausted.describe(),
                        meter.steps,
                        ops.len(),
                        keys.len()
                    ),
                };
            }
        }
    }
    Verdict::Valid
}

fn invalid(
    history: &History,
    ops: &[RegisterOp],
    witness: &[usize],
    explanation: String,
) -> Verdict {
    let operations = witness
        .iter()
        .map(|&index| history.operations[ops[index].history_index].clone())
        .collect();
    Verdict::Invalid(Violation::new(PROPERTY, explanation, operations))
}

/// Words for a shrunk witness: which operation the search could not place.
fn explain(
    history: &History,
    key: &str,
    ops: &[RegisterOp],
    witness: &[usize],
    meter: &Meter,
) -> String {
    let subset: Vec<RegisterOp> = witness.iter().map(|&index| ops[index]).collect();
    let mut child = meter.child(1_000_000);
    let stuck = match search(&subset, &mut child) {
        SearchOutcome::NotLinearizable { stuck, .. } => {
            format!(
                "; no order lets {} take effect before it completes",
                describe(&history.operations[subset[stuck].history_index])
            )
        }
        _ => String::new(),
    };
    format!(
        "key {key:?}: these {} operations have no linearization (no order that respects \
         real time in which every read returns the latest write){stuck}",
        witness.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Operation;

    fn history(lines: &str) -> History {
        History::read_jsonl(lines.as_bytes()).unwrap()
    }

    #[test]
    fn keys_are_independent() {
        let valid = history(
            r#"{"process":0,"key":"a","f":"write","value":1,"type":"ok","invoke":0,"complete":10}
{"process":1,"key":"b","f":"read","value":null,"type":"ok","invoke":20,"complete":30}
{"process":1,"key":"a","f":"read","value":1,"type":"ok","invoke":40,"complete":50}"#,
        );
        assert_eq!(
            check_registers(&valid, &Budget::unlimited()),
            Verdict::Valid
        );
    }

    #[test]
    fn a_phantom_read_is_reported_alone() {
        let phantom = history(
            r#"{"process":0,"key":"a","f":"write","value":1,"type":"ok","invoke":0,"complete":10}
{"process":1,"key":"a","f":"read","value":7,"type":"ok","invoke":20,"complete":30}"#,
        );
        let verdict = check_registers(&phantom, &Budget::unlimited());
        let violation = verdict.violation().unwrap();
        assert_eq!(violation.operations, vec![phantom.operations[1].clone()]);
    }

    #[test]
    fn an_exhausted_budget_is_unknown_not_valid() {
        let mut operations: Vec<Operation> = (0..40)
            .map(|i| Operation {
                process: i,
                key: "k".into(),
                f: crate::Function::Write,
                value: serde_json::json!(i),
                ok: None,
                kind: crate::OperationType::Ok,
                invoke: i,
                complete: Some(1000 + i),
            })
            .collect();
        operations.push(Operation {
            process: 99,
            key: "k".into(),
            f: crate::Function::Read,
            value: serde_json::json!(39),
            ok: None,
            kind: crate::OperationType::Ok,
            invoke: 2000,
            complete: Some(2001),
        });
        operations.push(Operation {
            value: serde_json::json!(3),
            invoke: 3000,
            complete: Some(3001),
            ..operations[40].clone()
        });
        let hard = History { operations };
        let verdict = check_registers(&hard, &Budget::steps(1000));
        assert!(verdict.is_unknown(), "{verdict:?}");
    }
}
