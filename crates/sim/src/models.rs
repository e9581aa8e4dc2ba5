//! The models the command line and the seed sweeps know by name.
//!
//! A model is a replica factory plus the properties it claims. The real replication
//! strategies join this table as they land: `raft-majority` (single-leader Raft in
//! `majority` commit mode), beside the reference models that prove the harness: the
//! correct `register` and the broken `local-only` and `ack-before-sync`.

use crate::checking::Properties;
use crate::node::NodeSetup;
use crate::options::SimulationOptions;
use crate::reference::broken::{LocalOnly, ack_before_sync};
use crate::reference::register::Register;
use crate::report::RunReport;
use crate::run::simulate;
use replikv_replication::single_leader::{RaftConfig, RaftNode};
use std::fmt;
use std::str::FromStr;

/// A model the simulator can run by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    /// The correct single-node durable register.
    Register,
    /// Broken: every node serves from its own memory.
    LocalOnly,
    /// Broken: the register, acknowledging before it syncs.
    AckBeforeSync,
    /// Single-leader Raft, `majority` commit mode.
    RaftMajority,
}

impl Model {
    pub const ALL: [Model; 4] = [
        Model::Register,
        Model::LocalOnly,
        Model::AckBeforeSync,
        Model::RaftMajority,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Model::Register => "register",
            Model::LocalOnly => "local-only",
            Model::AckBeforeSync => "ack-before-sync",
            Model::RaftMajority => "raft-majority",
        }
    }

    /// What the model claims, and so what its runs are checked for. The broken models
    /// claim what they imitate: that is what the checkers must refute.
    #[must_use]
    pub fn properties(self) -> Properties {
        match self {
            Model::Register | Model::AckBeforeSync => Properties {
                linearizable: true,
                session_guarantees: true,
                durable: true,
                convergent: false,
            },
            Model::LocalOnly | Model::RaftMajority => Properties {
                linearizable: true,
                session_guarantees: true,
                durable: true,
                convergent: true,
            },
        }
    }

    /// Whether the model applies a client request id at most once, so that clients may
    /// retry a write with an unknown outcome under the same id
    /// ([`WorkloadOptions::unknown_retries_max`](crate::options::WorkloadOptions)). The
    /// reference models do not: a retry there could apply a write twice.
    #[must_use]
    pub fn deduplicates_retries(self) -> bool {
        matches!(self, Model::RaftMajority)
    }

    /// Runs one simulation of this model and checks it.
    #[must_use]
    pub fn simulate(self, options: &SimulationOptions) -> RunReport {
        let properties = self.properties();
        let mut options = *options;
        if !self.deduplicates_retries() {
            options.workload.unknown_retries_max = 0;
        }
        let options = &options;
        match self {
            Model::Register => simulate(options, &properties, Register::open),
            Model::LocalOnly => simulate(options, &properties, LocalOnly::open),
            Model::AckBeforeSync => simulate(options, &properties, ack_before_sync),
            Model::RaftMajority => simulate(options, &properties, raft_majority),
        }
    }
}

/// Builds a Raft node in `majority` mode with the default configuration.
fn raft_majority(setup: NodeSetup) -> replikv_core::error::Result<RaftNode> {
    RaftNode::open(
        setup.id,
        setup.peers,
        setup.disk,
        setup.seed,
        RaftConfig::default(),
    )
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = String;
    fn from_str(name: &str) -> Result<Model, String> {
        Model::ALL
            .into_iter()
            .find(|model| model.name() == name)
            .ok_or_else(|| {
                format!("unknown model {name:?} (expected register, local-only, ack-before-sync or raft-majority)")
            })
    }
}
