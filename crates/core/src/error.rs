//! Errors classified by what they mean to the caller.
//!
//! What a client most needs to know about a failed request is whether it *may still have
//! happened*. A write rejected before it was proposed certainly did not happen; a write
//! that timed out after the leader accepted it may be applied later. [`Outcome`] carries
//! that distinction, and it maps one-to-one onto the history format's `fail` and `info`
//! operation types, so checkers treat each error exactly as its meaning requires.

use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Whether an operation that returned an error may have taken effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// The operation certainly did not take effect (history type `fail`).
    Failed,
    /// The operation may or may not have taken effect (history type `info`).
    Unknown,
}

/// An error a replica returns to a client, or a storage layer returns to a replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Error, Serialize, Deserialize)]
pub enum Error {
    /// This node cannot serve the request; `leader` is its best guess of who can.
    #[error("not the leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    /// Not enough replicas are reachable to serve the request now; it was not attempted.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request was accepted but its outcome is not known (timeout, leadership lost
    /// after proposing, connection lost).
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
    /// The request is malformed or violates a limit; it was not attempted.
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// A queue, batch or size limit was hit; the request was not attempted. Retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// Stored data failed a checksum or is otherwise unreadable. Never silently ignored.
    #[error("corruption: {0}")]
    Corruption(String),
    /// An I/O error from the operating system.
    #[error("i/o: {0}")]
    Io(String),
}

impl Error {
    /// Whether the failed operation may have taken effect.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        match self {
            Error::NotLeader { .. }
            | Error::Unavailable(_)
            | Error::InvalidInput(_)
            | Error::Overloaded(_) => Outcome::Failed,
            Error::Indeterminate(_) | Error::Corruption(_) | Error::Io(_) => Outcome::Unknown,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Error {
        Error::Io(error.to_string())
    }
}

/// Shorthand for results whose error is [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_after_acceptance_are_indeterminate() {
        assert_eq!(Error::NotLeader { leader: None }.outcome(), Outcome::Failed);
        assert_eq!(Error::Overloaded("q".into()).outcome(), Outcome::Failed);
        assert_eq!(
            Error::Indeterminate("timeout".into()).outcome(),
            Outcome::Unknown
        );
        assert_eq!(Error::Io("disk".into()).outcome(), Outcome::Unknown);
    }
}
