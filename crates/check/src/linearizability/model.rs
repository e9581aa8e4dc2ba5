//! The sequential specification the linearizability search checks against: one register
//! per key, holding a JSON value or nothing.
//!
//! Herlihy & Wing define linearizability relative to a sequential specification: the
//! legal sequences of operations on the object. Ours is a register with read, write,
//! compare-and-set and delete. `null` means absent, and every key starts absent, so a
//! delete is a write of absent and a cas may expect absent.
//!
//! The search compares states millions of times, so values are interned once into small
//! integers ([`ValueId`]); two values get the same id exactly when they are equal as
//! JSON values (their canonical compact rendering is equal: `1` and `1.0` differ, as they
//! do for `serde_json::Value`'s own equality).
//!
//! `step` is the whole specification. An operation whose outcome is unknown (`info`)
//! has no recorded result to check: if it takes effect, it does what the register would
//! do. A cas of unknown outcome whose expectation does not hold would change nothing, so
//! `step` refuses it: taking effect as a no-op and never taking effect are
//! indistinguishable, and refusing saves the search a useless branch.

use crate::history::{Function, History, Operation, OperationType};
use std::collections::{BTreeMap, HashMap};

/// An interned JSON value; [`ABSENT`] is `null`, the state of a key never written.
pub(crate) type ValueId = u32;

/// The id of `null`, the absent value.
pub(crate) const ABSENT: ValueId = 0;

/// The id that stands for every written value no operation ever compares the state
/// with (see [`merge_unseen_values`]).
pub(crate) const UNSEEN: ValueId = ValueId::MAX;

/// Interns JSON values into [`ValueId`]s.
#[derive(Debug, Default)]
pub(crate) struct Values {
    ids: HashMap<String, ValueId>,
}

impl Values {
    pub(crate) fn id(&mut self, value: &serde_json::Value) -> ValueId {
        if value.is_null() {
            return ABSENT;
        }
        let next = ValueId::try_from(self.ids.len() + 1).expect("fewer than 2^32 values");
        *self.ids.entry(value.to_string()).or_insert(next)
    }
}

/// What an operation does to (and says about) the register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// A read that returned this value.
    Read(ValueId),
    /// A write (a delete writes [`ABSENT`]).
    Write(ValueId),
    /// Compare-and-set; `swapped` is the recorded outcome, `None` when unknown.
    Cas {
        expected: ValueId,
        new: ValueId,
        swapped: Option<bool>,
    },
}

/// One operation of a key's sub-history, ready for the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RegisterOp {
    /// Index of the operation in [`History::operations`].
    pub(crate) history_index: usize,
    pub(crate) invoke: u64,
    /// `None` for an operation of unknown outcome: it may take effect at any time after
    /// its invocation, or never.
    pub(crate) complete: Option<u64>,
    pub(crate) action: Action,
}

impl RegisterOp {
    /// Whether the operation certainly happened (and must be linearized).
    pub(crate) fn is_ok(&self) -> bool {
        self.complete.is_some()
    }

    /// The value this operation may write, if any.
    pub(crate) fn written(&self) -> Option<ValueId> {
        match self.action {
            Action::Write(value) => Some(value),
            Action::Cas {
                new,
                swapped: Some(true) | None,
                ..
            } => Some(new),
            Action::Read(_) | Action::Cas { .. } => None,
        }
    }

    /// The value this operation proves the register held when it took effect, if any.
    pub(crate) fn observed(&self) -> Option<ValueId> {
        match self.action {
            Action::Read(value) => Some(value),
            Action::Cas {
                expected,
                swapped: Some(true),
                ..
            } => Some(expected),
            Action::Write(_) | Action::Cas { .. } => None,
        }
    }
}

impl RegisterOp {
    /// The state this operation needs to take effect, if it needs one: the value a read
    /// returned, or the value a cas expects (for a cas of unknown outcome too, since it
    /// only matters if it swaps).
    pub(crate) fn needs_state(&self) -> Option<ValueId> {
        match self.action {
            Action::Read(value) => Some(value),
            Action::Cas {
                expected,
                swapped: Some(true) | None,
                ..
            } => Some(expected),
            Action::Write(_) | Action::Cas { .. } => None,
        }
    }

    /// The expectation of a cas that certainly did not swap (it needs the state to
    /// differ from it).
    pub(crate) fn failed_cas_expected(&self) -> Option<ValueId> {
        match self.action {
            Action::Cas {
                expected,
                swapped: Some(false),
                ..
            } => Some(expected),
            _ => None,
        }
    }

    pub(crate) fn is_failed_cas(&self) -> bool {
        self.failed_cas_expected().is_some()
    }
}

/// Replaces every written value that no operation compares the state with (no read
/// returned it, no cas expected it) by [`UNSEEN`]. Such values are indistinguishable to
/// the specification, so this changes no verdict; it lets the memo see that two
/// configurations differing only in such a value have the same future, and makes
/// operations of unknown outcome that wrote them interchangeable.
pub(crate) fn merge_unseen_values(ops: &mut [RegisterOp]) {
    let compared: std::collections::HashSet<ValueId> = ops
        .iter()
        .filter_map(|op| match op.action {
            Action::Read(value) => Some(value),
            Action::Cas { expected, .. } => Some(expected),
            Action::Write(_) => None,
        })
        .collect();
    let merge = |value: ValueId| {
        if compared.contains(&value) {
            value
        } else {
            UNSEEN
        }
    };
    for op in ops {
        op.action = match op.action {
            Action::Write(value) => Action::Write(merge(value)),
            Action::Cas {
                expected,
                new,
                swapped,
            } => Action::Cas {
                expected,
                new: merge(new),
                swapped,
            },
            read @ Action::Read(_) => read,
        };
    }
}

/// Drops the operations of unknown outcome that can never matter: an `info` write (or
/// cas) whose value no operation of the key needs. Were it linearized, the next
/// operation to see its value would have to be a write (which replaces it anyway) or a
/// cas that did not swap — so, when the key has no cas that did not swap, leaving it out
/// changes no verdict. Histories with many timeouts would otherwise make the search try
/// every subset of these operations.
pub(crate) fn without_useless_info(ops: Vec<RegisterOp>) -> Vec<RegisterOp> {
    if ops.iter().any(RegisterOp::is_failed_cas) {
        return ops;
    }
    let needed: std::collections::HashSet<ValueId> =
        ops.iter().filter_map(RegisterOp::needs_state).collect();
    ops.into_iter()
        .filter(|op| op.is_ok() || op.written().is_some_and(|value| needed.contains(&value)))
        .collect()
}

/// The register's state after `action` takes effect in `state`, or `None` if the
/// action cannot take effect there with its recorded result.
pub(crate) fn step(state: ValueId, action: Action) -> Option<ValueId> {
    match action {
        Action::Read(value) => (state == value).then_some(state),
        Action::Write(value) => Some(value),
        Action::Cas {
            expected,
            new,
            swapped: Some(true) | None,
        } => (state == expected).then_some(new),
        Action::Cas {
            expected,
            swapped: Some(false),
            ..
        } => (state != expected).then_some(state),
    }
}

/// Splits a history into per-key sub-histories of the operations that matter: `fail`
/// operations never happened and an `info` read constrains nothing, so both are left
/// out. Each sub-history is in invocation order (ties in history order).
pub(crate) fn split_by_key(history: &History) -> BTreeMap<&str, Vec<RegisterOp>> {
    let mut values = Values::default();
    let mut keys: BTreeMap<&str, Vec<RegisterOp>> = BTreeMap::new();
    for (history_index, operation) in history.operations.iter().enumerate() {
        if let Some(op) = prepare(history_index, operation, &mut values) {
            keys.entry(operation.key.as_str()).or_default().push(op);
        }
    }
    for ops in keys.values_mut() {
        ops.sort_by_key(|op| (op.invoke, op.history_index));
    }
    keys
}

fn prepare(history_index: usize, operation: &Operation, values: &mut Values) -> Option<RegisterOp> {
    let complete = match operation.kind {
        OperationType::Fail => return None,
        OperationType::Info if operation.f == Function::Read => return None,
        OperationType::Info => None,
        OperationType::Ok => Some(operation.complete?),
    };
    let action = match operation.f {
        Function::Read => Action::Read(values.id(&operation.value)),
        Function::Write => Action::Write(values.id(&operation.value)),
        Function::Delete => Action::Write(ABSENT),
        Function::Cas => {
            let (expected, new) = operation.cas_values()?;
            Action::Cas {
                expected: values.id(expected),
                new: values.id(new),
                swapped: complete.and(operation.ok),
            }
        }
    };
    Some(RegisterOp {
        history_index,
        invoke: operation.invoke,
        complete,
        action,
    })
}

#[cfg(test)]
impl RegisterOp {
    /// An operation for unit tests of the search and its helpers.
    pub(crate) fn for_test(invoke: u64, complete: Option<u64>, action: Action) -> RegisterOp {
        RegisterOp {
            history_index: 0,
            invoke,
            complete,
            action,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_json_values_share_an_id_and_null_is_absent() {
        let mut values = Values::default();
        assert_eq!(values.id(&json!(null)), ABSENT);
        let a = values.id(&json!({"x": [1, 2]}));
        assert_ne!(a, ABSENT);
        assert_eq!(values.id(&json!({"x": [1, 2]})), a);
        assert_ne!(values.id(&json!(1)), values.id(&json!(1.0)));
    }

    #[test]
    fn info_writes_nobody_needs_are_dropped_unless_a_cas_failed() {
        let op = |complete: Option<u64>, action| RegisterOp {
            history_index: 0,
            invoke: 0,
            complete,
            action,
        };
        let ops = vec![
            op(None, Action::Write(1)),
            op(None, Action::Write(2)),
            op(Some(5), Action::Read(2)),
            op(None, Action::Write(ABSENT)),
        ];
        let kept = without_useless_info(ops.clone());
        assert_eq!(kept, vec![ops[1], ops[2]]);
        let failed_cas = op(
            Some(9),
            Action::Cas {
                expected: 3,
                new: 4,
                swapped: Some(false),
            },
        );
        let with_failed_cas: Vec<RegisterOp> = ops.iter().copied().chain([failed_cas]).collect();
        assert_eq!(
            without_useless_info(with_failed_cas.clone()),
            with_failed_cas
        );
    }

    #[test]
    fn values_nobody_compares_with_are_merged() {
        let op = |action| RegisterOp {
            history_index: 0,
            invoke: 0,
            complete: Some(1),
            action,
        };
        let mut ops = vec![
            op(Action::Write(1)),
            op(Action::Write(2)),
            op(Action::Read(2)),
            op(Action::Cas {
                expected: 3,
                new: 4,
                swapped: Some(false),
            }),
            op(Action::Write(3)),
        ];
        merge_unseen_values(&mut ops);
        let actions: Vec<Action> = ops.iter().map(|op| op.action).collect();
        assert_eq!(
            actions,
            vec![
                Action::Write(UNSEEN),
                Action::Write(2),
                Action::Read(2),
                Action::Cas {
                    expected: 3,
                    new: UNSEEN,
                    swapped: Some(false)
                },
                Action::Write(3),
            ]
        );
    }

    #[test]
    fn step_follows_register_semantics() {
        let cas = |expected, new, swapped| Action::Cas {
            expected,
            new,
            swapped,
        };
        assert_eq!(step(1, Action::Read(1)), Some(1));
        assert_eq!(step(1, Action::Read(2)), None);
        assert_eq!(step(1, Action::Write(2)), Some(2));
        assert_eq!(step(1, cas(1, 3, Some(true))), Some(3));
        assert_eq!(step(2, cas(1, 3, Some(true))), None);
        assert_eq!(step(2, cas(1, 3, Some(false))), Some(2));
        assert_eq!(step(1, cas(1, 3, Some(false))), None);
        assert_eq!(step(1, cas(1, 3, None)), Some(3));
        assert_eq!(step(2, cas(1, 3, None)), None);
    }
}
