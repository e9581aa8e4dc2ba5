//! Tiny single-key register histories aimed at the corners of the linearizability
//! search's pruning rules, for the brute-force oracle test.
//!
//! The search's rules are about operations of unknown outcome (`info`): when they are
//! tried, which of them are interchangeable, which operation may follow one, and how a
//! cas that did not swap gets the state it needs. A generator that reaches those corners
//! must therefore make many `info` writes, cas and deletes — including ones that take
//! effect long after their client gave up, after later operations of every process —
//! plus cas operations that fail, values nobody reads (the search merges them), deletes
//! and absent reads, and values from a small pool so reads and cas expectations hit.
//!
//! Each history starts as a run of a correct register: operations of 2–4 processes get
//! random overlapping intervals (ties included: touching intervals are concurrent) and a
//! linearization point, inside the interval for completed operations and anywhere after
//! the invocation for `info` ones that take effect; applying them in that order fixes
//! what reads return and whether cas swapped, so the history is linearizable by
//! construction. A share of histories is then perturbed (a read returns another value,
//! a cas reports the other outcome, an `info` operation claims to have completed, an
//! interval moves, a failed operation claims success), which may or may not break it,
//! and a smaller share gets fully random results. Deciding is the oracle's job.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_check::{Function, History, Operation, OperationType};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The most operations in one generated history.
pub const OPERATIONS_MAX: usize = 12;

/// How a history was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A run of a correct register: linearizable.
    Correct,
    /// A correct run with one or two results or intervals changed.
    Perturbed,
    /// A correct run's operations with random results.
    Random,
}

/// The placeholder expectation of a cas that expects what its process last saw.
const LAST_SEEN: Value = Value::Bool(false);

struct Planned {
    operation: Operation,
    takes_effect: bool,
    /// A cas that expects what its process last saw (like a client's read-modify-write);
    /// its expectation is filled in when it is applied.
    expects_last_seen: bool,
    linearization_point: u64,
}

/// Generates the history of `seed` and says how it was made.
pub fn generate(seed: u64) -> (History, Origin) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut planned = plan(&mut rng);
    apply_in_linearization_order(&mut planned);
    let mut history = History {
        operations: planned.into_iter().map(|plan| plan.operation).collect(),
    };
    let origin = match rng.random_range(0..20) {
        0..=6 => Origin::Correct,
        7..=16 => Origin::Perturbed,
        _ => Origin::Random,
    };
    match origin {
        Origin::Correct => {}
        Origin::Perturbed => {
            for _ in 0..rng.random_range(1..=2) {
                perturb(&mut rng, &mut history);
            }
        }
        Origin::Random => randomize_results(&mut rng, &mut history),
    }
    make_distinct(&mut history);
    history
        .validate()
        .expect("the generator makes valid histories");
    (history, origin)
}

/// The values a history writes: a small pool, so reads and cas expectations hit, and
/// now and then a value nobody else writes (the search merges such values).
struct Palette {
    pool: u64,
    unique_probability: f64,
    unique_count: u64,
}

impl Palette {
    fn random(rng: &mut ChaCha8Rng) -> Palette {
        Palette {
            pool: rng.random_range(2..=3),
            unique_probability: [0.1, 0.25, 0.4][rng.random_range(0..3)],
            unique_count: 0,
        }
    }

    /// A value to write.
    fn written(&mut self, rng: &mut ChaCha8Rng) -> Value {
        if rng.random_bool(self.unique_probability) {
            self.unique_count += 1;
            json!(100 + self.unique_count)
        } else {
            json!(rng.random_range(1..=self.pool))
        }
    }
}

/// A value from the pool `1..=3` or absent, for reads and cas expectations.
fn pool_value_or_absent(rng: &mut ChaCha8Rng) -> Value {
    match rng.random_range(0..4) {
        0 => Value::Null,
        value => json!(value),
    }
}

/// Random operations with intervals and outcomes; results are filled in later.
fn plan(rng: &mut ChaCha8Rng) -> Vec<Planned> {
    let processes = rng.random_range(2..=4_usize);
    let count = rng.random_range(3..=OPERATIONS_MAX);
    let info_probability = [0.2, 0.4, 0.6][rng.random_range(0..3)];
    let duration_max_ns = rng.random_range(1..=12);
    let mut clocks = vec![0_u64; processes];
    let mut palette = Palette::random(rng);
    let mut recently_written = [Value::Null, Value::Null];
    let mut planned: Vec<Planned> = Vec::with_capacity(count);
    for _ in 0..count {
        let process = rng.random_range(0..processes);
        let invoke = clocks[process] + rng.random_range(0..=4);
        let complete = invoke + rng.random_range(0..=duration_max_ns);
        clocks[process] = complete + rng.random_range(0..=1);
        let (f, value) = match rng.random_range(0..10) {
            0..=2 => (Function::Read, Value::Null),
            3..=4 => (Function::Write, palette.written(rng)),
            5 => (Function::Delete, Value::Null),
            _ => {
                // Expecting the latest or the one before (a client that lost a race),
                // or, filled in later, what the client last saw.
                let expected = match rng.random_range(0..10) {
                    0..=1 => recently_written[1].clone(),
                    2..=3 => recently_written[0].clone(),
                    4..=6 => LAST_SEEN,
                    7 => Value::Null,
                    _ => pool_value_or_absent(rng),
                };
                (Function::Cas, json!([expected, palette.written(rng)]))
            }
        };
        if let Some(written) = written_value(f, &value) {
            recently_written = [recently_written[1].clone(), written];
        }
        let roll: f64 = rng.random();
        let kind = if roll < info_probability {
            OperationType::Info
        } else if roll < info_probability + 0.08 {
            OperationType::Fail
        } else {
            OperationType::Ok
        };
        let operation = Operation {
            process: u64::try_from(process).unwrap(),
            key: "k".into(),
            f,
            value,
            ok: None,
            kind,
            invoke,
            complete: (kind != OperationType::Info || rng.random_bool(0.5)).then_some(complete),
        };
        planned.push(Planned {
            expects_last_seen: f == Function::Cas && operation.value[0] == LAST_SEEN,
            takes_effect: kind == OperationType::Ok
                || (kind == OperationType::Info && rng.random_bool(0.6)),
            linearization_point: rng.random_range(invoke..=complete),
            operation,
        });
    }
    let horizon = clocks.iter().max().copied().unwrap_or(0) + 2;
    for plan in &mut planned {
        if plan.operation.kind == OperationType::Info && rng.random_bool(0.6) {
            plan.linearization_point = rng.random_range(plan.operation.invoke..=horizon);
        }
    }
    planned
}

fn written_value(f: Function, value: &Value) -> Option<Value> {
    match f {
        Function::Write => Some(value.clone()),
        Function::Delete => Some(Value::Null),
        Function::Cas => value.get(1).cloned(),
        Function::Read => None,
    }
}

/// Fills in what reads returned and whether cas swapped, applying the operations that
/// take effect to one register in linearization-point order. A cas that expects what
/// its process last saw gets the value of that process's latest `ok` read or write.
fn apply_in_linearization_order(planned: &mut [Planned]) {
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|&index| (planned[index].linearization_point, index));
    let mut state = Value::Null;
    let mut last_seen: BTreeMap<u64, Value> = BTreeMap::new();
    for index in order {
        let plan = &mut planned[index];
        let operation = &mut plan.operation;
        if plan.expects_last_seen {
            operation.value[0] = last_seen
                .get(&operation.process)
                .cloned()
                .unwrap_or_default();
        }
        match operation.f {
            Function::Read => operation.value = state.clone(),
            Function::Write | Function::Delete if plan.takes_effect => {
                state = written_value(operation.f, &operation.value).unwrap();
            }
            Function::Cas => {
                let (expected, new) = operation.cas_values().unwrap();
                let swapped = plan.takes_effect && state == *expected;
                if swapped {
                    state = new.clone();
                }
                if operation.kind == OperationType::Ok {
                    operation.ok = Some(swapped);
                }
            }
            Function::Write | Function::Delete => {}
        }
        if operation.kind == OperationType::Ok {
            let seen = match operation.f {
                Function::Read => Some(state.clone()),
                Function::Cas if operation.ok == Some(false) => None,
                f => written_value(f, &operation.value),
            };
            if let Some(seen) = seen {
                last_seen.insert(operation.process, seen);
            }
        }
    }
}

/// Changes one result, outcome or interval of `history` at random.
fn perturb(rng: &mut ChaCha8Rng, history: &mut History) {
    let count = history.operations.len();
    let operation = &mut history.operations[rng.random_range(0..count)];
    match (operation.kind, operation.f) {
        (OperationType::Ok, Function::Read) => operation.value = pool_value_or_absent(rng),
        (OperationType::Ok, Function::Cas) if rng.random_bool(0.7) => {
            operation.ok = operation.ok.map(|swapped| !swapped);
        }
        (OperationType::Info | OperationType::Fail, _) if rng.random_bool(0.7) => {
            let complete = operation.invoke + rng.random_range(0..=8);
            operation.kind = OperationType::Ok;
            operation.complete = Some(complete);
            if operation.f == Function::Cas {
                operation.ok = Some(rng.random_bool(0.5));
            }
        }
        _ => {
            let shift = rng.random_range(0..=6);
            let duration = operation.complete.map(|c| c - operation.invoke);
            operation.invoke = if rng.random_bool(0.5) {
                operation.invoke.saturating_sub(shift)
            } else {
                operation.invoke + shift
            };
            operation.complete = duration.map(|d| operation.invoke + d);
        }
    }
}

/// Gives a copy of an earlier operation (a moved interval can make one) a process of
/// its own: a client never issues one operation twice at one instant, and a verdict's
/// witness lists equal operations once.
fn make_distinct(history: &mut History) {
    for index in 1..history.operations.len() {
        if history.operations[..index].contains(&history.operations[index]) {
            history.operations[index].process = 1_000 + u64::try_from(index).unwrap();
        }
    }
}

/// Gives every `ok` read a random value and every `ok` cas a random outcome.
fn randomize_results(rng: &mut ChaCha8Rng, history: &mut History) {
    for operation in &mut history.operations {
        match (operation.kind, operation.f) {
            (OperationType::Ok, Function::Read) => operation.value = pool_value_or_absent(rng),
            (OperationType::Ok, Function::Cas) => operation.ok = Some(rng.random_bool(0.5)),
            _ => {}
        }
    }
}
