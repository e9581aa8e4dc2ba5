//! Laws that relate the checkers to each other, on generated histories.
//!
//! A linearizable history has every session guarantee and loses no acknowledged write
//! (each "known older" fact the session checkers use — real-time order, causal order —
//! also orders the linearization), so on histories generated from a linearizable
//! register (unique values, overlapping operations, `info` and `fail` outcomes, cas and
//! delete) every checker must say `Valid`. Conversely, whenever a session checker or the
//! durability checker reports a violation, the history cannot be linearizable. Both laws
//! are checked on thousands of histories, the second on broken ones.

mod support;

use replikv_check::{Budget, History, Model, PROPERTIES, check_all, check_registers};
use std::collections::BTreeMap;
use support::register_workload::{RegisterWorkload, perturb};

fn workload(seed: u64) -> RegisterWorkload {
    RegisterWorkload {
        processes: 2 + seed % 5,
        keys: 1 + seed % 3,
        operations: 5 + usize::try_from(seed % 40).unwrap(),
        values: None,
        info_probability: 0.1,
        fail_probability: 0.05,
        duration_max_ns: 40,
        pause_max_ns: 20,
    }
}

fn summary(history: &History) -> String {
    let mut text = Vec::new();
    history.write_jsonl(&mut text).unwrap();
    String::from_utf8(text).unwrap()
}

#[test]
fn linearizable_histories_pass_every_checker() {
    for seed in 0..2_000 {
        let history = workload(seed).generate(seed);
        for named in check_all(&history, Model::Register, &Budget::unlimited()) {
            assert!(
                named.verdict.is_valid(),
                "seed {seed}: {} says {}\n{}",
                named.property,
                named.verdict,
                summary(&history)
            );
        }
    }
}

#[test]
fn any_reported_violation_implies_non_linearizable() {
    let mut violations: BTreeMap<&str, usize> = BTreeMap::new();
    for seed in 0..2_000 {
        let mut history = workload(seed).generate(seed);
        let values = 1 + u64::try_from(history.operations.len()).unwrap() / 4;
        if !perturb(&mut history, seed, values) {
            continue;
        }
        let linearizable = check_registers(&history, &Budget::unlimited()).is_valid();
        for named in check_all(&history, Model::Register, &Budget::unlimited()) {
            if named.verdict.is_invalid() {
                *violations.entry(named.property).or_default() += 1;
                assert!(
                    !linearizable,
                    "seed {seed}: {} says {} on a linearizable history\n{}",
                    named.property,
                    named.verdict,
                    summary(&history)
                );
            }
        }
    }
    eprintln!("violations by property: {violations:?}");
    for property in PROPERTIES.iter().take(7) {
        let count = violations.get(property).copied().unwrap_or(0);
        assert!(
            count >= 5,
            "too few {property} violations to be a test: {violations:?}"
        );
    }
}
