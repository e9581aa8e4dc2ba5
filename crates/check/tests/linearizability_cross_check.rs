//! Cross-checks the linearizability checker against an independent one.
//!
//! The reference is stateright's `LinearizabilityTester` (a plain Wing & Gong style
//! search over per-thread histories, no memo, no just-in-time pruning): slow, but simple
//! and written by other people. Both checkers see the same small random histories —
//! linearizable ones generated from a simulated register with overlapping operations,
//! `info` and `fail` outcomes, duplicate values, cas and delete, and the same histories
//! with one read or cas perturbed — and must agree on every one. Unperturbed histories
//! are linearizable by construction, which is a third opinion.
//!
//! How a history becomes stateright's input: every operation is its own "thread" (so a
//! process's operations, and everyone else's, are ordered purely by real time, which is
//! exactly what the tester's prerequisite tracking encodes); invocations and completions
//! are replayed in time order, invocations first at equal times; `fail` operations are
//! left out; `info` operations are invoked and never return, which the tester treats as
//! "may take effect at any later point, or not at all".

mod support;

use replikv_check::{Budget, Function, History, OperationType, Verdict, check_registers};
use serde_json::Value;
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use std::collections::BTreeMap;
use support::register_workload::{RegisterWorkload, perturb};

/// A register holding an integer or nothing, with cas and delete.
#[derive(Clone, Debug, Default, PartialEq)]
struct Register(Option<i64>);

#[derive(Clone, Debug, PartialEq)]
enum RegisterOperation {
    Read,
    Write(Option<i64>),
    Cas(Option<i64>, Option<i64>),
}

#[derive(Clone, Debug, PartialEq)]
enum RegisterReturn {
    Read(Option<i64>),
    Written,
    Cas(bool),
}

impl SequentialSpec for Register {
    type Op = RegisterOperation;
    type Ret = RegisterReturn;

    fn invoke(&mut self, operation: &RegisterOperation) -> RegisterReturn {
        match operation {
            RegisterOperation::Read => RegisterReturn::Read(self.0),
            RegisterOperation::Write(value) => {
                self.0 = *value;
                RegisterReturn::Written
            }
            RegisterOperation::Cas(expected, new) => {
                let swapped = self.0 == *expected;
                if swapped {
                    self.0 = *new;
                }
                RegisterReturn::Cas(swapped)
            }
        }
    }
}

fn integer(value: &Value) -> Option<i64> {
    value.as_i64()
}

/// Stateright's verdict on `history`, one tester per key.
fn reference_verdict(history: &History) -> bool {
    let mut events: Vec<(u64, u8, usize)> = Vec::new();
    for (index, operation) in history.operations.iter().enumerate() {
        if operation.kind == OperationType::Fail {
            continue;
        }
        events.push((operation.invoke, 0, index));
        if operation.kind == OperationType::Ok {
            events.push((operation.complete.unwrap(), 1, index));
        }
    }
    events.sort_unstable();
    let mut testers: BTreeMap<&str, LinearizabilityTester<usize, Register>> = BTreeMap::new();
    for (_, is_completion, index) in events {
        let operation = &history.operations[index];
        let tester = testers
            .entry(operation.key.as_str())
            .or_insert_with(|| LinearizabilityTester::new(Register(None)));
        if is_completion == 0 {
            let call = match operation.f {
                Function::Read => RegisterOperation::Read,
                Function::Write => RegisterOperation::Write(integer(&operation.value)),
                Function::Delete => RegisterOperation::Write(None),
                Function::Cas => {
                    let (expected, new) = operation.cas_values().unwrap();
                    RegisterOperation::Cas(integer(expected), integer(new))
                }
            };
            tester.on_invoke(index, call).unwrap();
        } else {
            let result = match operation.f {
                Function::Read => RegisterReturn::Read(integer(&operation.value)),
                Function::Write | Function::Delete => RegisterReturn::Written,
                Function::Cas => RegisterReturn::Cas(operation.ok.unwrap()),
            };
            tester.on_return(index, result).unwrap();
        }
    }
    testers.values().all(|tester| tester.is_consistent())
}

fn our_verdict(history: &History) -> bool {
    match check_registers(history, &Budget::unlimited()) {
        Verdict::Valid => true,
        Verdict::Invalid(violation) => {
            assert!(!violation.operations.is_empty());
            let witness = History {
                operations: violation.operations.clone(),
            };
            assert!(
                check_registers(&witness, &Budget::unlimited()).is_invalid(),
                "the witness must itself be non-linearizable: {witness:?}"
            );
            false
        }
        Verdict::Unknown { reason } => panic!("unlimited budget gave unknown: {reason}"),
    }
}

fn small_workload(seed: u64) -> RegisterWorkload {
    RegisterWorkload {
        processes: 1 + seed % 4,
        keys: if seed.is_multiple_of(5) { 2 } else { 1 },
        operations: 1 + usize::try_from(seed % 10).unwrap(),
        values: Some(3),
        info_probability: 0.1,
        fail_probability: 0.05,
        duration_max_ns: 30,
        pause_max_ns: 10,
    }
}

#[test]
fn agrees_with_stateright_on_generated_and_perturbed_histories() {
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..5_000 {
        let mut history = small_workload(seed).generate(seed);
        assert!(reference_verdict(&history), "seed {seed}: generator broken");
        assert!(our_verdict(&history), "seed {seed}: {history:?}");
        if perturb(&mut history, seed, 3) {
            let reference = reference_verdict(&history);
            assert_eq!(our_verdict(&history), reference, "seed {seed}: {history:?}");
            if reference {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
    }
    eprintln!("perturbed: {valid} valid, {invalid} invalid");
    assert!(
        valid > 500 && invalid > 2_000,
        "valid {valid}, invalid {invalid}"
    );
}

#[test]
fn agrees_on_histories_with_ties_and_long_operations() {
    for seed in 0..1_000 {
        let workload = RegisterWorkload {
            duration_max_ns: 5,
            pause_max_ns: 0,
            ..small_workload(seed)
        };
        let mut history = workload.generate(seed);
        perturb(&mut history, seed, 3);
        assert_eq!(
            our_verdict(&history),
            reference_verdict(&history),
            "seed {seed}: {history:?}"
        );
    }
}

#[test]
fn longer_generated_histories_are_linearizable_and_broken_ones_have_true_witnesses() {
    for seed in 0..40 {
        let workload = RegisterWorkload {
            processes: 6,
            keys: 3,
            operations: 400,
            values: Some(5),
            info_probability: 0.05,
            fail_probability: 0.05,
            duration_max_ns: 60,
            pause_max_ns: 10,
        };
        let mut history = workload.generate(seed);
        assert!(our_verdict(&history), "seed {seed}");
        perturb(&mut history, seed, 5);
        our_verdict(&history);
    }
}

#[test]
fn agrees_on_histories_full_of_timeouts() {
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..3_000 {
        let workload = RegisterWorkload {
            info_probability: 0.35,
            ..small_workload(seed)
        };
        let mut history = workload.generate(seed);
        assert!(our_verdict(&history), "seed {seed}: {history:?}");
        perturb(&mut history, seed, 3);
        let reference = reference_verdict(&history);
        assert_eq!(our_verdict(&history), reference, "seed {seed}: {history:?}");
        if reference {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 500 && invalid > 500,
        "valid {valid}, invalid {invalid}"
    );
}

#[test]
fn agrees_on_histories_with_unique_values() {
    let (mut valid, mut invalid) = (0, 0);
    for seed in 0..3_000 {
        let workload = RegisterWorkload {
            values: None,
            info_probability: 0.3,
            ..small_workload(seed)
        };
        let mut history = workload.generate(seed);
        assert!(our_verdict(&history), "seed {seed}: {history:?}");
        perturb(&mut history, seed, 4);
        let reference = reference_verdict(&history);
        assert_eq!(our_verdict(&history), reference, "seed {seed}: {history:?}");
        if reference {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(
        valid > 500 && invalid > 500,
        "valid {valid}, invalid {invalid}"
    );
}
