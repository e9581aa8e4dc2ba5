//! Keyspaces: which replication group serves a key.
//!
//! DESIGN.md's cluster holds several keyspaces, each with its own replication model
//! (single-leader, leaderless, multi-leader) and its own partitions; a request is routed
//! by its key to the group that owns it. Today there is one keyspace, `default`, served
//! by one single-leader group that holds every key. The APIs already go through
//! [`Keyspaces::route`], so that adding keyspaces, partitions and other strategies
//! changes this file and the server's startup, not the RESP and HTTP layers.

use crate::node_loop::NodeHandle;
use replikv_core::Request;

/// The replication groups of this node, by keyspace. One group for now.
#[derive(Clone, Debug)]
pub struct Keyspaces {
    default: NodeHandle,
}

impl Keyspaces {
    #[must_use]
    pub fn new(default: NodeHandle) -> Keyspaces {
        Keyspaces { default }
    }

    /// The group that serves `request`: the one owning its key; an administrative
    /// request without a key (membership change, leadership transfer) goes to the
    /// default group, the only one today.
    #[must_use]
    pub fn route(&self, _request: &Request) -> &NodeHandle {
        &self.default
    }

    /// The group of the default keyspace (status and INFO).
    #[must_use]
    pub fn default_group(&self) -> &NodeHandle {
        &self.default
    }
}
