//! Histories generated from a simulated linearizable register, for the checker's own
//! tests and benchmark.
//!
//! The generator plays the part of a correct database: every operation gets an
//! invocation, a completion, and a linearization point between them; the operations
//! are then applied to a per-key register in linearization-point order, which fixes what
//! each read returned and whether each cas swapped. The result is linearizable by
//! construction, with as much overlap between processes as the timing parameters give.
//! Some operations are turned into `info` (the client timed out: the operation took
//! effect or not, by a coin toss, and its completion is unknown) or `fail` (it certainly
//! did not take effect). `perturb` then breaks such a history in a targeted way (a read
//! returns another value, a cas reports the other outcome), which may or may not make it
//! non-linearizable: deciding that is the checkers' job.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_check::{Function, History, Operation, OperationType};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What to generate.
#[derive(Clone, Debug)]
pub struct RegisterWorkload {
    pub processes: u64,
    pub keys: u64,
    pub operations: usize,
    /// Written values are drawn from `0..values` (duplicates allowed) when set, and are
    /// unique per key otherwise.
    pub values: Option<u64>,
    pub info_probability: f64,
    pub fail_probability: f64,
    /// The longest operation, in ns; the shortest is 1 ns.
    pub duration_max_ns: u64,
    /// The longest pause of a process between two operations, in ns.
    pub pause_max_ns: u64,
}

struct Planned {
    operation: Operation,
    takes_effect: bool,
    linearization_point: u64,
}

impl RegisterWorkload {
    /// Generates a linearizable history from `seed`.
    pub fn generate(&self, seed: u64) -> History {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut clocks: Vec<u64> = (0..self.processes)
            .map(|_| rng.random_range(0..=self.pause_max_ns))
            .collect();
        let mut next_value = vec![0_u64; usize::try_from(self.keys).unwrap()];
        let mut planned = Vec::with_capacity(self.operations);
        for _ in 0..self.operations {
            let process = rng.random_range(0..self.processes);
            let clock = &mut clocks[usize::try_from(process).unwrap()];
            let invoke = *clock + rng.random_range(0..=self.pause_max_ns);
            let duration = rng.random_range(1..=self.duration_max_ns);
            let complete = invoke + duration;
            *clock = complete + 1;
            let key = rng.random_range(0..self.keys);
            let operation =
                self.operation(&mut rng, process, key, &mut next_value, invoke, complete);
            planned.push(Planned {
                operation,
                takes_effect: true,
                linearization_point: rng.random_range(invoke..=complete),
            });
        }
        for plan in &mut planned {
            let roll: f64 = rng.random();
            if roll < self.info_probability {
                plan.operation.kind = OperationType::Info;
                plan.operation.complete = None;
                plan.takes_effect = rng.random_bool(0.5);
            } else if roll < self.info_probability + self.fail_probability {
                plan.operation.kind = OperationType::Fail;
                plan.takes_effect = false;
            }
        }
        apply_in_linearization_order(&mut planned);
        History {
            operations: planned.into_iter().map(|plan| plan.operation).collect(),
        }
    }

    fn operation(
        &self,
        rng: &mut ChaCha8Rng,
        process: u64,
        key: u64,
        next_value: &mut [u64],
        invoke: u64,
        complete: u64,
    ) -> Operation {
        let counter = &mut next_value[usize::try_from(key).unwrap()];
        let latest = json!(*counter);
        let mut fresh_value = |rng: &mut ChaCha8Rng| match self.values {
            Some(values) => json!(rng.random_range(0..values)),
            None => {
                *counter += 1;
                json!(*counter)
            }
        };
        let (f, value) = match rng.random_range(0..10) {
            0..=3 => (Function::Read, Value::Null),
            4..=6 => (Function::Write, fresh_value(rng)),
            7 => (Function::Delete, Value::Null),
            _ => {
                let expected = match self.values {
                    Some(values) => random_value_or_null(rng, values),
                    None => latest,
                };
                (Function::Cas, json!([expected, fresh_value(rng)]))
            }
        };
        Operation {
            process,
            key: format!("k{key}"),
            f,
            value,
            ok: None,
            kind: OperationType::Ok,
            invoke,
            complete: Some(complete),
        }
    }
}

fn random_value_or_null(rng: &mut ChaCha8Rng, values: u64) -> Value {
    match rng.random_range(0..=values) {
        0 => Value::Null,
        value => json!(value - 1),
    }
}

/// Fills in reads' values and cas outcomes by applying the operations that take effect
/// to a register per key, in linearization-point order.
fn apply_in_linearization_order(planned: &mut [Planned]) {
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&index| (planned[index].linearization_point, index));
    let mut registers: BTreeMap<String, Value> = BTreeMap::new();
    for index in order {
        let plan = &mut planned[index];
        let operation = &mut plan.operation;
        let state = registers
            .entry(operation.key.clone())
            .or_insert(Value::Null);
        match operation.f {
            Function::Read => {
                operation.value = if plan.takes_effect {
                    state.clone()
                } else {
                    Value::Null
                };
            }
            Function::Write if plan.takes_effect => *state = operation.value.clone(),
            Function::Delete if plan.takes_effect => *state = Value::Null,
            Function::Cas => {
                let (expected, new) = operation.cas_values().unwrap();
                let swapped = plan.takes_effect && state == expected;
                if swapped {
                    *state = new.clone();
                }
                if operation.kind == OperationType::Ok {
                    operation.ok = Some(swapped);
                }
            }
            Function::Write | Function::Delete => {}
        }
    }
}

/// Breaks one `ok` read or cas of `history` at random: a read returns another value
/// from `0..values` or null, a cas reports the other outcome. Returns false if the
/// history has neither.
pub fn perturb(history: &mut History, seed: u64, values: u64) -> bool {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    let candidates: Vec<usize> = (0..history.operations.len())
        .filter(|&index| {
            let operation = &history.operations[index];
            operation.kind == OperationType::Ok
                && matches!(operation.f, Function::Read | Function::Cas)
        })
        .collect();
    if candidates.is_empty() {
        return false;
    }
    let operation = &mut history.operations[candidates[rng.random_range(0..candidates.len())]];
    if operation.f == Function::Cas {
        operation.ok = operation.ok.map(|swapped| !swapped);
        return true;
    }
    loop {
        let value = random_value_or_null(&mut rng, values);
        if value != operation.value {
            operation.value = value;
            return true;
        }
    }
}
