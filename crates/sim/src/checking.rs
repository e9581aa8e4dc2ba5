//! The seam between a finished run and the consistency checkers of `replikv_check`.
//!
//! A model declares the [`Properties`] it claims (a single-node register is linearizable
//! and durable, but its idle nodes hold nothing, so it does not claim convergence). After
//! the run, [`check_run`] hands the history and the final states to the checkers for
//! exactly those properties and returns one named verdict each. Any verdict other than
//! valid fails the run: an "unknown" (a checker ran out of budget) is not a pass.
//!
//! Final states are converted to the checkers' vocabulary here: keys as strings, values
//! as the history shows them (the workload's integers as JSON numbers).
//!
//! Status: the checkers are being written on the `check` branch. Until they land, this
//! seam runs none and returns no verdicts; run summaries say "no checkers wired" rather
//! than pretending anything was checked.

use crate::clients::value_to_json;
use crate::report::NodeStates;
use replikv_check::History;
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// The consistency properties a model claims, and so the checks its runs must pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Properties {
    /// Every key behaves as a linearizable register (read / write / cas / delete).
    pub linearizable: bool,
    /// No acknowledged write is lost.
    pub durable: bool,
    /// Once faults heal and the cluster is quiet, every replica exposes the same state.
    pub convergent: bool,
}

/// How a checker judged a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictStatus {
    Valid,
    Invalid,
    /// The checker could not decide within its budget: a failure, never a pass.
    Unknown,
}

impl VerdictStatus {
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            VerdictStatus::Valid => "valid",
            VerdictStatus::Invalid => "INVALID",
            VerdictStatus::Unknown => "UNKNOWN",
        }
    }
}

/// One property's verdict, with the checker's explanation when it is not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedVerdict {
    pub property: String,
    pub status: VerdictStatus,
    pub details: String,
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
    properties: &Properties,
) -> Vec<NamedVerdict> {
    // The checkers of replikv_check are not merged yet: nothing to run.
    let _ = (history, final_states, properties);
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
