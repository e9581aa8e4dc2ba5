//! What a checker concludes about a history.
//!
//! A checker answers one of three things, and the difference matters to whoever reads
//! the answer. `Valid` is a proof: the history could have come from a system with the
//! property. `Invalid` is a proof the other way, and it carries a [`Violation`]: the
//! smallest set of operations the checker found that shows the property broken, as
//! history lines, so a human (or a shrinker) can look at three operations instead of a
//! hundred thousand. `Unknown` is an honest "could not decide": the search budget ran
//! out, or the input breaks an assumption the checker needs (for example two writes of
//! the same value where the checker must tell writes apart by value). A checker never
//! turns "ran out of time" into `Valid`.

use crate::history::Operation;
use std::fmt;

/// The conclusion of one checker about one history.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The history has the property.
    Valid,
    /// The history certainly lacks the property; the violation shows why.
    Invalid(Violation),
    /// The checker could not decide (budget exhausted, or an input it cannot judge).
    Unknown { reason: String },
}

/// Proof that a history lacks a property.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The property's name, as in [`crate::PROPERTIES`].
    pub property: &'static str,
    /// What is wrong, in words, naming the operations involved.
    pub explanation: String,
    /// The smallest set of operations found that shows the violation, in invocation
    /// order, exactly as they appear in the history.
    pub operations: Vec<Operation>,
}

impl Verdict {
    #[must_use]
    pub fn is_valid(&self) -> bool {
        matches!(self, Verdict::Valid)
    }

    #[must_use]
    pub fn is_invalid(&self) -> bool {
        matches!(self, Verdict::Invalid(_))
    }

    #[must_use]
    pub fn is_unknown(&self) -> bool {
        matches!(self, Verdict::Unknown { .. })
    }

    /// The violation, if the verdict is `Invalid`.
    #[must_use]
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            Verdict::Invalid(violation) => Some(violation),
            _ => None,
        }
    }

    /// An `Unknown` verdict for an input the checker cannot judge.
    pub(crate) fn input_error(message: impl fmt::Display) -> Verdict {
        Verdict::Unknown {
            reason: format!("cannot judge this history: {message}"),
        }
    }
}

impl Violation {
    /// A violation whose operations are put in invocation order (ties: history order is
    /// kept, because the sort is stable) with duplicates removed.
    pub(crate) fn new(
        property: &'static str,
        explanation: String,
        mut operations: Vec<Operation>,
    ) -> Violation {
        operations.sort_by_key(|operation| operation.invoke);
        let mut unique: Vec<Operation> = Vec::with_capacity(operations.len());
        for operation in operations {
            if !unique.contains(&operation) {
                unique.push(operation);
            }
        }
        Violation {
            property,
            explanation,
            operations: unique,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Valid => write!(f, "valid"),
            Verdict::Invalid(violation) => write!(f, "INVALID: {}", violation.explanation),
            Verdict::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// A compact rendering of an operation for explanations: `process 3 write k1 = 5 (ok,
/// 10..20)`.
pub(crate) fn describe(operation: &Operation) -> String {
    let kind = match operation.kind {
        crate::OperationType::Ok => "ok",
        crate::OperationType::Fail => "fail",
        crate::OperationType::Info => "info",
    };
    let complete = operation
        .complete
        .map_or_else(|| "?".to_string(), |complete| complete.to_string());
    let function = match operation.f {
        crate::Function::Read => "read",
        crate::Function::Write => "write",
        crate::Function::Cas => "cas",
        crate::Function::Delete => "delete",
    };
    let result = match (operation.f, operation.ok) {
        (crate::Function::Cas, Some(true)) => " swapped",
        (crate::Function::Cas, Some(false)) => " not swapped",
        _ => "",
    };
    let value = if operation.f == crate::Function::Delete {
        String::new()
    } else {
        format!(" {}", operation.value)
    };
    format!(
        "process {} {function} {:?}{value}{result} ({kind}, {}..{complete})",
        operation.process, operation.key, operation.invoke
    )
}
