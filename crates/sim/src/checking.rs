//! The seam between a finished run and the consistency checkers of `replikv_check`.
//!
//! A model declares the [`Properties`] it claims (a single-node register is linearizable,
//! keeps the session guarantees and loses no acknowledged write, but its idle nodes hold
//! nothing, so it does not claim convergence). After the run, [`check_run`] hands the
//! history and the final states to the checkers for exactly those properties and returns
//! their named verdicts. Any verdict other than valid fails the run: an "unknown" (a
//! checker ran out of budget, or could not judge the input) is not a pass.
//!
//! A model that claims durability must also let the checkers judge it: after the faults
//! heal, every key that saw an acknowledged write must be read successfully (the final
//! reads). Otherwise a cluster that never recovered would lose nothing *provably* and
//! pass; [`FINAL_READS_PROPERTY`] fails such a run.
//!
//! The search budget is a step count, never a deadline, so a verdict is a pure function
//! of the history and a failing seed replays to the same verdict on any machine.
//!
//! A model of a lossy commit mode claims less (not durable, not linearizable across
//! failovers) but must account for what it loses: [`DISCARDS_PROPERTY`] compares the
//! writes its replicas reported discarded with the acknowledged writes found lost.
//!
//! Final states are converted to the checkers' vocabulary here: keys as strings, values
//! as the history shows them (the workload's integers as JSON numbers).

use crate::clients::value_to_json;
use crate::discards::{DISCARDS_PROPERTY, check_discards};
use crate::report::NodeStates;
use replikv_check::{
    Budget, History, Model as CheckedModel, NamedVerdict, SESSION_PROPERTIES, Verdict, Violation,
    check_all, check_convergence, convergence, durability, linearizability,
};
use replikv_core::RequestId;
use replikv_core::replica::DiscardedWrite;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

/// Search steps the linearizability checker may take over one run's history.
pub const CHECK_STEPS_MAX: u64 = 20_000_000;

/// The name of the simulator's own check that durability could be judged: every
/// acknowledged write was followed by a successful final read of its key.
pub const FINAL_READS_PROPERTY: &str = "final-reads";

/// The consistency properties a model claims, and so the checks its runs must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Properties {
    /// Every key behaves as a linearizable register (read / write / cas / delete).
    pub linearizable: bool,
    /// Read-your-writes, monotonic reads, monotonic writes, writes-follow-reads and
    /// consistent prefix, per client process.
    pub session_guarantees: bool,
    /// No acknowledged write is lost.
    pub durable: bool,
    /// Once faults heal and the cluster is quiet, every replica exposes the same state.
    pub convergent: bool,
    /// The writes the replicas report discarded are exactly the acknowledged writes
    /// lost (see `discards.rs`); needs the fresh-key workload.
    pub discards_reported: bool,
}

impl Properties {
    /// Claims nothing; models spell out what they claim on top of it.
    pub const NONE: Properties = Properties {
        linearizable: false,
        session_guarantees: false,
        durable: false,
        convergent: false,
        discards_reported: false,
    };
}

/// Final states as the checkers read them: one (replica name, key → value) pair each.
pub type CheckerStates = Vec<(String, BTreeMap<String, Json>)>;

/// Converts replicas' visible states into the checkers' form.
#[must_use]
pub fn checker_states(final_states: &NodeStates) -> CheckerStates {
    final_states
        .iter()
        .map(|(node, state)| {
            let state = state
                .iter()
                .map(|(key, value)| (key.to_string(), value_to_json(value)))
                .collect();
            (node.to_string(), state)
        })
        .collect()
}

/// Runs the checkers for `properties` over a run's history and final states.
#[must_use]
pub fn check_run(
    history: &History,
    final_states: &CheckerStates,
    discarded: &[DiscardedWrite],
    retried: &BTreeSet<RequestId>,
    properties: &Properties,
) -> Vec<NamedVerdict> {
    let claimed = |property: &str| {
        if property == linearizability::PROPERTY {
            properties.linearizable
        } else if property == durability::PROPERTY {
            properties.durable
        } else if SESSION_PROPERTIES.contains(&property) {
            properties.session_guarantees
        } else {
            panic!(
                "the checkers report {property:?}, which the simulator does not know: \
                 decide which models claim it before enabling it"
            )
        }
    };
    let mut verdicts = Vec::new();
    if properties.linearizable || properties.session_guarantees || properties.durable {
        let budget = Budget::steps(CHECK_STEPS_MAX);
        let all = check_all(history, CheckedModel::Register, &budget);
        verdicts.extend(all.into_iter().filter(|named| claimed(named.property)));
    }
    if properties.durable {
        verdicts.push(NamedVerdict {
            property: FINAL_READS_PROPERTY,
            verdict: check_final_reads(history),
        });
    }
    if properties.convergent {
        verdicts.push(NamedVerdict {
            property: convergence::PROPERTY,
            verdict: check_convergence(final_states),
        });
    }
    if properties.discards_reported {
        verdicts.push(NamedVerdict {
            property: DISCARDS_PROPERTY,
            verdict: check_discards(history, discarded, retried),
        });
    }
    verdicts
}

/// Invalid when some acknowledged write was never followed by a successful read of its
/// key once every write to it had completed: durability could not be judged.
fn check_final_reads(history: &History) -> Verdict {
    match durability::lost_register_writes(history) {
        Err(reason) => Verdict::Unknown { reason },
        Ok(report) if report.unjudged_writes == 0 => Verdict::Valid,
        Ok(report) => Verdict::Invalid(Violation {
            property: FINAL_READS_PROPERTY,
            explanation: format!(
                "{} acknowledged writes could not be judged: no final read of their key \
                 succeeded after the faults healed (the cluster did not recover)",
                report.unjudged_writes
            ),
            operations: Vec::new(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replikv_check::{Function, Operation, OperationType};
    use replikv_core::{Key, NodeId, Value};

    #[test]
    fn final_states_convert_to_checker_form() {
        let mut state = BTreeMap::new();
        state.insert(Key::new("k1").unwrap(), Value::new("17").unwrap());
        state.insert(Key::new("k2").unwrap(), Value::new("x").unwrap());
        let converted = checker_states(&vec![(NodeId(3), state)]);
        assert_eq!(converted.len(), 1);
        assert_eq!(converted[0].0, "n3");
        assert_eq!(converted[0].1["k1"], Json::from(17));
        assert_eq!(converted[0].1["k2"], Json::from("x"));
    }

    fn operation(process: u64, f: Function, value: Json, invoke: u64, complete: u64) -> Operation {
        Operation {
            process,
            key: "k0".into(),
            f,
            value,
            ok: None,
            kind: OperationType::Ok,
            invoke,
            complete: Some(complete),
        }
    }

    #[test]
    fn only_claimed_properties_are_checked_and_a_stale_read_is_caught() {
        let stale = History {
            operations: vec![
                operation(0, Function::Write, Json::from(1), 0, 10),
                operation(1, Function::Read, Json::Null, 20, 30),
            ],
        };
        let everything = Properties {
            linearizable: true,
            session_guarantees: true,
            durable: true,
            convergent: true,
            discards_reported: false,
        };
        let states: CheckerStates = vec![
            ("n1".into(), BTreeMap::new()),
            ("n2".into(), BTreeMap::new()),
        ];
        let verdicts = check_run(&stale, &states, &[], &BTreeSet::new(), &everything);
        let names: Vec<&str> = verdicts.iter().map(|v| v.property).collect();
        assert_eq!(names.len(), 9, "{names:?}");
        let linearizable = verdicts
            .iter()
            .find(|v| v.property == linearizability::PROPERTY)
            .unwrap();
        assert!(linearizable.verdict.is_invalid());
        let convergent = verdicts
            .iter()
            .find(|v| v.property == convergence::PROPERTY)
            .unwrap();
        assert!(convergent.verdict.is_valid());
        let durable_only = Properties {
            durable: true,
            ..Properties::NONE
        };
        let verdicts = check_run(&stale, &states, &[], &BTreeSet::new(), &durable_only);
        let names: Vec<&str> = verdicts.iter().map(|v| v.property).collect();
        assert_eq!(names, [durability::PROPERTY, FINAL_READS_PROPERTY]);
        assert!(verdicts[1].verdict.is_valid(), "the read judged the write");
    }

    #[test]
    fn a_run_without_final_reads_cannot_pass_as_durable() {
        let unjudged = History {
            operations: vec![operation(0, Function::Write, Json::from(1), 0, 10)],
        };
        let durable_only = Properties {
            durable: true,
            ..Properties::NONE
        };
        let verdicts = check_run(&unjudged, &Vec::new(), &[], &BTreeSet::new(), &durable_only);
        let final_reads = verdicts
            .iter()
            .find(|v| v.property == FINAL_READS_PROPERTY)
            .unwrap();
        assert!(
            final_reads.verdict.is_invalid(),
            "{:?}",
            final_reads.verdict
        );
    }
}
