//! Workloads: which operations clients send, and what their replies mean in the history.
//!
//! A workload is a pair of functions. [`Workload::next`] draws the next operation of a
//! client (seeded: the run's seed and the client's number) as an [`Invocation`]: the
//! RESP command to send and the history entry's key, function and argument.
//! [`interpret`] turns the server's reply into the history's result, or says the reply
//! makes no sense for the command (then the outcome is unknown, `info`: the client
//! cannot tell what happened).
//!
//! - `register`: GET / SET / `CAS key expected new` on `--keys` keys; every written value
//!   is unique in the run (a global counter), which the checkers need to tell writes
//!   apart. CAS's expected value is the last value this client saw for the key, so some
//!   swap and some do not. Checked as registers: linearizability, and durability by the
//!   final reads.
//! - `set`: each key is a grow-only set. An add is `APPEND key "element,"` (atomic on
//!   the server: a read and a compare-and-set on the key's version), recorded as a
//!   `write` of the element; a read is `GET key`, recorded as the array of elements.
//!   Checked for lost acknowledged adds, judged by the final reads.
//! - `session`: GET and SET with unique values on a connection with
//!   `READCONSISTENCY session`, pinned to one node (a follower of the first leader), so the
//!   session guarantees are exercised where they are hard: stale replicas.
//!   Linearizability is not promised to such reads and is reported but not judged.

use super::client::Outcome;
use crate::bench::resp::ReplyValue;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_check::Function;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most keys a workload spreads over.
pub const KEYS_MAX: usize = 1000;
/// Largest set read accepted (elements), so a history line stays bounded.
const SET_ELEMENTS_MAX: usize = 1_000_000;

/// The workloads `replikv test` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadKind {
    /// Read, write and compare-and-set registers: linearizability.
    Register,
    /// Unique adds to grow-only sets: no acknowledged add lost.
    Set,
    /// Session reads pinned to a node: read-your-writes, monotonic reads.
    Session,
}

impl WorkloadKind {
    /// The workload's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WorkloadKind::Register => "register",
            WorkloadKind::Set => "set",
            WorkloadKind::Session => "session",
        }
    }

    /// The model the checkers judge the history by.
    pub fn model(self) -> replikv_check::Model {
        match self {
            WorkloadKind::Register | WorkloadKind::Session => replikv_check::Model::Register,
            WorkloadKind::Set => replikv_check::Model::Set,
        }
    }

    /// The properties this workload's history is held to (the others are reported as
    /// information only).
    pub fn judges(self, property: &str) -> bool {
        match self {
            WorkloadKind::Register | WorkloadKind::Set => true,
            WorkloadKind::Session => property != replikv_check::linearizability::PROPERTY,
        }
    }

    /// The commands a fresh connection sends before any operation.
    pub fn connection_setup(self) -> Option<Vec<Vec<u8>>> {
        match self {
            WorkloadKind::Session => Some(vec![b"READCONSISTENCY".to_vec(), b"session".to_vec()]),
            WorkloadKind::Register | WorkloadKind::Set => None,
        }
    }
}

/// The keys a run works on: `{prefix}k0` .. `{prefix}k{count-1}`. A run against a
/// cluster it did not start (`--endpoints`) uses a prefix of its own, so that no value
/// left by an earlier run or another user is read back as one no write of this run made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySpace {
    pub prefix: String,
    pub count: usize,
}

impl KeySpace {
    /// The name of key `index`.
    pub fn name(&self, index: usize) -> String {
        assert!(index < self.count);
        format!("{}k{index}", self.prefix)
    }
}

/// One operation to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub key: String,
    pub f: Function,
    /// The history's argument: the written value, `[expected, new]`, or null for reads.
    pub value: Json,
    /// The RESP command.
    pub command: Vec<Vec<u8>>,
}

/// One client's operation generator.
#[derive(Debug)]
pub struct Workload {
    kind: WorkloadKind,
    keys: KeySpace,
    random: ChaCha8Rng,
    /// Unique values for the whole run.
    counter: Arc<AtomicU64>,
    /// The last value this client saw per key (for CAS's expected value).
    last_seen: HashMap<String, u64>,
}

impl Workload {
    pub fn new(
        kind: WorkloadKind,
        keys: KeySpace,
        seed: u64,
        client: u64,
        counter: Arc<AtomicU64>,
    ) -> Workload {
        assert!((1..=KEYS_MAX).contains(&keys.count));
        Workload {
            kind,
            keys,
            random: ChaCha8Rng::seed_from_u64(seed ^ client.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            counter,
            last_seen: HashMap::new(),
        }
    }

    fn unique(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// A read of `key`, as this workload reads.
    pub fn read(key: &str) -> Invocation {
        Invocation {
            key: key.to_string(),
            f: Function::Read,
            value: Json::Null,
            command: vec![b"GET".to_vec(), key.as_bytes().to_vec()],
        }
    }

    /// The next operation.
    pub fn next(&mut self) -> Invocation {
        let key = self.keys.name(self.random.random_range(0..self.keys.count));
        let roll = self.random.random_range(0..100u32);
        if roll < 50 {
            return Self::read(&key);
        }
        let value = self.unique();
        match self.kind {
            WorkloadKind::Set => Invocation {
                command: vec![
                    b"APPEND".to_vec(),
                    key.as_bytes().to_vec(),
                    format!("{value},").into_bytes(),
                ],
                key,
                f: Function::Write,
                value: Json::from(value),
            },
            WorkloadKind::Register if roll >= 80 => {
                let expected = match self.last_seen.get(&key) {
                    Some(seen) => *seen,
                    None => self.random.random_range(1..=value),
                };
                Invocation {
                    command: vec![
                        b"CAS".to_vec(),
                        key.as_bytes().to_vec(),
                        expected.to_string().into_bytes(),
                        value.to_string().into_bytes(),
                    ],
                    key,
                    f: Function::Cas,
                    value: Json::from(vec![expected, value]),
                }
            }
            WorkloadKind::Register | WorkloadKind::Session => Invocation {
                command: vec![
                    b"SET".to_vec(),
                    key.as_bytes().to_vec(),
                    value.to_string().into_bytes(),
                ],
                key,
                f: Function::Write,
                value: Json::from(value),
            },
        }
    }

    /// Remembers what an `ok` operation showed of its key.
    pub fn observe(&mut self, invocation: &Invocation, result: &Json) {
        let seen = match invocation.f {
            Function::Read => result.as_u64(),
            Function::Write => invocation.value.as_u64(),
            Function::Cas | Function::Delete => None,
        };
        if let Some(seen) = seen {
            self.last_seen.insert(invocation.key.clone(), seen);
        }
    }
}

/// What a reply means for `invocation` in `kind`: the history's result, or `info` when
/// the reply cannot be understood. Error replies are classified by the client.
pub fn interpret(kind: WorkloadKind, invocation: &Invocation, reply: &ReplyValue) -> Outcome {
    match (invocation.f, reply) {
        (Function::Read, ReplyValue::Bulk(bytes)) => match kind {
            WorkloadKind::Set => match parse_set(bytes.as_deref().unwrap_or_default()) {
                Ok(elements) => Outcome::Ok(elements, None),
                Err(error) => Outcome::Info(error),
            },
            WorkloadKind::Register | WorkloadKind::Session => {
                Outcome::Ok(bytes.as_deref().map_or(Json::Null, register_value), None)
            }
        },
        (Function::Write, ReplyValue::Simple(_)) if kind != WorkloadKind::Set => {
            Outcome::Ok(invocation.value.clone(), None)
        }
        (Function::Write, ReplyValue::Integer(_)) if kind == WorkloadKind::Set => {
            Outcome::Ok(invocation.value.clone(), None)
        }
        (Function::Cas, ReplyValue::Integer(swapped)) => {
            Outcome::Ok(invocation.value.clone(), Some(*swapped == 1))
        }
        (_, other) => Outcome::Info(format!("unexpected reply {other:?}")),
    }
}

/// A register's value as the history records it: the number written, or the raw text
/// (which no write wrote, so the checker will flag it) when it is not a number.
fn register_value(bytes: &[u8]) -> Json {
    let text = String::from_utf8_lossy(bytes);
    match text.parse::<u64>() {
        Ok(number) => Json::from(number),
        Err(_) => Json::from(text.into_owned()),
    }
}

/// A set's elements from its text, `"3,17,5,"`.
fn parse_set(bytes: &[u8]) -> Result<Json, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "a set read is not UTF-8".to_string())?;
    let mut elements = Vec::new();
    for element in text.split(',').filter(|element| !element.is_empty()) {
        if elements.len() >= SET_ELEMENTS_MAX {
            return Err(format!("a set read has over {SET_ELEMENTS_MAX} elements"));
        }
        let element = match element.parse::<u64>() {
            Ok(number) => Json::from(number),
            Err(_) => Json::from(element),
        };
        elements.push(element);
    }
    Ok(Json::Array(elements))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(kind: WorkloadKind) -> Workload {
        let keys = KeySpace {
            prefix: "p-".into(),
            count: 3,
        };
        Workload::new(kind, keys, 7, 1, Arc::new(AtomicU64::new(1)))
    }

    #[test]
    fn written_values_are_unique_and_commands_match() {
        let mut seen = std::collections::HashSet::new();
        for kind in [
            WorkloadKind::Register,
            WorkloadKind::Set,
            WorkloadKind::Session,
        ] {
            let mut generator = workload(kind);
            for _ in 0..200 {
                let invocation = generator.next();
                assert!(invocation.key.starts_with("p-k"), "{invocation:?}");
                let verb = invocation.command[0].as_slice();
                match invocation.f {
                    Function::Read => assert_eq!(verb, b"GET"),
                    Function::Write if kind == WorkloadKind::Set => assert_eq!(verb, b"APPEND"),
                    Function::Write => assert_eq!(verb, b"SET"),
                    Function::Cas => assert_eq!(kind, WorkloadKind::Register),
                    Function::Delete => panic!("no deletes"),
                }
                if invocation.f == Function::Write {
                    assert!(seen.insert((kind as u8, invocation.value.clone())));
                }
            }
        }
    }

    #[test]
    fn replies_become_history_results() {
        let set_read = Workload::read("k0");
        let cases = [
            (
                WorkloadKind::Set,
                ReplyValue::Bulk(Some(b"1,5,".to_vec())),
                "[1,5]",
            ),
            (WorkloadKind::Set, ReplyValue::Bulk(None), "[]"),
            (WorkloadKind::Register, ReplyValue::Bulk(None), "null"),
            (
                WorkloadKind::Register,
                ReplyValue::Bulk(Some(b"42".to_vec())),
                "42",
            ),
            (
                WorkloadKind::Register,
                ReplyValue::Bulk(Some(b"x".to_vec())),
                "\"x\"",
            ),
        ];
        for (kind, reply, expected) in cases {
            match interpret(kind, &set_read, &reply) {
                Outcome::Ok(value, None) => assert_eq!(value.to_string(), expected),
                other => panic!("{reply:?}: {other:?}"),
            }
        }
        let cas = Invocation {
            key: "k".into(),
            f: Function::Cas,
            value: Json::from(vec![1, 2]),
            command: Vec::new(),
        };
        let swapped = interpret(WorkloadKind::Register, &cas, &ReplyValue::Integer(1));
        assert!(matches!(swapped, Outcome::Ok(_, Some(true))));
        let absent = interpret(WorkloadKind::Register, &cas, &ReplyValue::Integer(-1));
        assert!(matches!(absent, Outcome::Ok(_, Some(false))));
        let nonsense = interpret(
            WorkloadKind::Register,
            &cas,
            &ReplyValue::Simple("OK".into()),
        );
        assert!(matches!(nonsense, Outcome::Info(_)));
    }
}
