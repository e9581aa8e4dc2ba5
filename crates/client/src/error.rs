//! What can go wrong with a request, classified by what the caller may assume.
//!
//! The one question a caller of a replicated database must be able to answer after a
//! failure is *did my write happen?* Each [`ClientError`] therefore says it:
//! [`ClientError::Invalid`] and [`ClientError::Unavailable`] mean the operation
//! certainly did not take effect (the server refused it, or no attempt reached a
//! server); [`ClientError::OutcomeUnknown`] means an attempt may have been applied and
//! the client could not learn whether, within its bounded retries. Because every retry
//! of a write reuses its request id, the write is applied at most once whatever
//! happened; "unknown" is about whether it was applied zero times or once.
//! [`ClientError::outcome_unknown`] is the test callers branch on.

use thiserror::Error;

/// A failed client operation; see the module documentation.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ClientError {
    /// Refused as invalid (a bad key, an oversized value, HTTP 400): not applied, and
    /// retrying will not help.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// No attempt could have been applied: every node was unreachable, overloaded or
    /// without a leader, for all the attempts the options allow.
    #[error("unavailable after {attempts} attempts: {last}")]
    Unavailable { attempts: u32, last: String },
    /// An attempt may have been applied (a timeout, a lost connection, HTTP 504), and
    /// no later attempt settled it.
    #[error("unknown outcome after {attempts} attempts: {last}")]
    OutcomeUnknown { attempts: u32, last: String },
    /// The server answered something this client does not understand (a missing
    /// header, an oversized body); for a write, it may have been applied.
    #[error("unexpected answer from {endpoint}: {detail}")]
    Protocol { endpoint: String, detail: String },
    /// The client was built wrong (no endpoints, an unparsable address).
    #[error("client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// Whether the operation may have taken effect (a write may have been applied).
    #[must_use]
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            ClientError::OutcomeUnknown { .. } | ClientError::Protocol { .. }
        )
    }
}

/// A client operation's result.
pub type Result<T> = std::result::Result<T, ClientError>;
