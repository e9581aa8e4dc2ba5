//! Identifiers: who is talking (a node, a client) and which request is meant.
//!
//! Node ids are small integers chosen by the operator and fixed for a node's lifetime;
//! they order replicas deterministically (tie-breaks in clocks and elections). A
//! [`RequestId`] names one logical client operation across retries, so a state machine
//! can apply a retried request exactly once.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A replica's identity within a cluster. Zero is reserved as "no node".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The "nobody" id, used where a field has no node (for example no known leader).
    pub const NONE: NodeId = NodeId(0);
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A client session's identity (a connection, a client library instance, a simulated
/// process). Appears as `process` in recorded histories.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// One logical client operation: the client and its own increasing sequence number.
/// A retry of the same operation reuses the same id; a new operation uses a higher
/// `sequence`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub client: ClientId,
    pub sequence: u64,
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.client, self.sequence)
    }
}
