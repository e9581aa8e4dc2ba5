//! Convergence: replicas that have received the same writes hold the same state.
//!
//! Definition: eventual consistency's safety half — "strong convergence" in Shapiro,
//! Preguiça, Baquero & Zawirski, "Conflict-free Replicated Data Types" (SSS 2011):
//! correct replicas that have delivered the same updates have equivalent state. DDIA
//! (ch. 5) asks the same of every asynchronous scheme: if writes stop and you wait, the
//! replicas converge.
//!
//! This checker does not read a history. It is given the final visible state of each
//! replica, after the test stopped writing and let replication (anti-entropy, hinted
//! handoff, log catch-up) finish, and it checks that all states are equal key by key. A
//! key mapped to `null` counts as absent, as everywhere in the history format. The
//! violation names every key on which replicas differ and what each replica holds there.

use crate::verdict::{Verdict, Violation};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The property's name in verdicts.
pub const PROPERTY: &str = "convergence";

/// At most this many differing keys are described in a violation.
const KEYS_DESCRIBED_MAX: usize = 20;

/// The keys on which the replicas' states differ, in key order.
#[must_use]
pub fn differing_keys(replicas: &[(String, BTreeMap<String, Value>)]) -> Vec<String> {
    let keys: BTreeSet<&String> = replicas
        .iter()
        .flat_map(|(_, state)| state.keys())
        .collect();
    keys.into_iter()
        .filter(|key| {
            let mut values = replicas.iter().map(|(_, state)| visible(state, key));
            let first = values.next().flatten();
            values.any(|value| value != first)
        })
        .cloned()
        .collect()
}

/// Checks that all replicas hold the same state.
#[must_use]
pub fn check_convergence(replicas: &[(String, BTreeMap<String, Value>)]) -> Verdict {
    let differing = differing_keys(replicas);
    if differing.is_empty() {
        return Verdict::Valid;
    }
    let described: Vec<String> = differing
        .iter()
        .take(KEYS_DESCRIBED_MAX)
        .map(|key| {
            let holders: Vec<String> = replicas
                .iter()
                .map(|(name, state)| match visible(state, key) {
                    Some(value) => format!("{name}: {value}"),
                    None => format!("{name}: absent"),
                })
                .collect();
            format!("{key:?} ({})", holders.join(", "))
        })
        .collect();
    let more = differing.len() - described.len();
    let explanation = format!(
        "{} of the replicas' keys differ: {}{}",
        differing.len(),
        described.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    );
    Verdict::Invalid(Violation::new(PROPERTY, explanation, Vec::new()))
}

fn visible<'a>(state: &'a BTreeMap<String, Value>, key: &str) -> Option<&'a Value> {
    state.get(key).filter(|value| !value.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn replica(name: &str, pairs: &[(&str, Value)]) -> (String, BTreeMap<String, Value>) {
        let state = pairs
            .iter()
            .map(|(key, value)| ((*key).to_string(), value.clone()))
            .collect();
        (name.to_string(), state)
    }

    #[test]
    fn equal_states_converge_and_null_is_absent() {
        let replicas = [
            replica("a", &[("x", json!(1)), ("y", json!(null))]),
            replica("b", &[("x", json!(1))]),
        ];
        assert_eq!(check_convergence(&replicas), Verdict::Valid);
        assert_eq!(check_convergence(&[]), Verdict::Valid);
    }

    #[test]
    fn every_differing_key_is_named() {
        let replicas = [
            replica(
                "a",
                &[("x", json!(1)), ("y", json!([1, 2])), ("z", json!("same"))],
            ),
            replica("b", &[("x", json!(2)), ("z", json!("same"))]),
            replica(
                "c",
                &[("x", json!(1)), ("y", json!([1, 2])), ("z", json!("same"))],
            ),
        ];
        assert_eq!(
            differing_keys(&replicas),
            vec!["x".to_string(), "y".to_string()]
        );
        let verdict = check_convergence(&replicas);
        let violation = verdict.violation().unwrap();
        assert!(
            violation
                .explanation
                .contains("\"y\" (a: [1,2], b: absent, c: [1,2])"),
            "{}",
            violation.explanation
        );
        assert!(violation.operations.is_empty());
    }
}
