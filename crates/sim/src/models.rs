//! The models the command line and the seed sweeps know by name.
//!
//! A model is a replica factory plus the properties it claims. The real replication
//! strategies join this table as they land: `raft-majority` (single-leader Raft in
//! `majority` commit mode), beside the reference models that prove the harness: the
//! correct `register` and the broken `local-only` and `ack-before-sync`. The Raft models
//! differ only in their commit mode (`raft-all`, `raft-semi-sync-any-1`,
//! `raft-semi-sync-first-1`: safe with the default three nodes, so they claim what
//! `raft-majority` claims), and the lossy `raft-async` and `raft-semi-sync-any-1-of-5`,
//! which claim only convergence and exact loss accounting.

use crate::checking::Properties;
use crate::node::NodeSetup;
use crate::options::SimulationOptions;
use crate::reference::broken::{LocalOnly, ack_before_sync};
use crate::reference::register::Register;
use crate::report::RunReport;
use crate::run::simulate;
use replikv_replication::single_leader::{CommitMode, RaftConfig, RaftNode, SyncChoice};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

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
    /// Single-leader Raft, `all` commit mode (fully synchronous).
    RaftAll,
    /// Single-leader Raft, `semi-sync any 1` (safe with 3 voters).
    RaftSemiSyncAny,
    /// Single-leader Raft, `semi-sync first 1` (safe with 3 voters).
    RaftSemiSyncFirst,
    /// Single-leader Raft, `async`: lossy. Three nodes, the fresh-key workload.
    RaftAsync,
    /// Single-leader Raft, `semi-sync any 1` with five voters: lossy (2 + 3 <= 5). The
    /// fresh-key workload.
    RaftSemiSyncLossy,
}

impl Model {
    pub const ALL: [Model; 9] = [
        Model::Register,
        Model::LocalOnly,
        Model::AckBeforeSync,
        Model::RaftMajority,
        Model::RaftAll,
        Model::RaftSemiSyncAny,
        Model::RaftSemiSyncFirst,
        Model::RaftAsync,
        Model::RaftSemiSyncLossy,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Model::Register => "register",
            Model::LocalOnly => "local-only",
            Model::AckBeforeSync => "ack-before-sync",
            Model::RaftMajority => "raft-majority",
            Model::RaftAll => "raft-all",
            Model::RaftSemiSyncAny => "raft-semi-sync-any-1",
            Model::RaftSemiSyncFirst => "raft-semi-sync-first-1",
            Model::RaftAsync => "raft-async",
            Model::RaftSemiSyncLossy => "raft-semi-sync-any-1-of-5",
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
                discards_reported: false,
            },
            Model::LocalOnly
            | Model::RaftMajority
            | Model::RaftAll
            | Model::RaftSemiSyncAny
            | Model::RaftSemiSyncFirst => Properties {
                linearizable: true,
                session_guarantees: true,
                durable: true,
                convergent: true,
                discards_reported: false,
            },
            // A lossy mode claims what survives a lossy failover: the replicas converge
            // (the new leader's history wins everywhere) and every acknowledged write
            // they lose, they report.
            Model::RaftAsync | Model::RaftSemiSyncLossy => Properties {
                convergent: true,
                discards_reported: true,
                ..Properties::NONE
            },
        }
    }

    /// The commit mode of a Raft model.
    #[must_use]
    pub fn commit_mode(self) -> Option<CommitMode> {
        match self {
            Model::Register | Model::LocalOnly | Model::AckBeforeSync => None,
            Model::RaftMajority => Some(CommitMode::Majority),
            Model::RaftAll => Some(CommitMode::All),
            Model::RaftSemiSyncAny | Model::RaftSemiSyncLossy => Some(semi_sync(SyncChoice::Any)),
            Model::RaftSemiSyncFirst => Some(semi_sync(SyncChoice::First)),
            Model::RaftAsync => Some(CommitMode::Async),
        }
    }

    /// The options a run of this model uses: the lossy models need the fresh-key
    /// workload for exact loss accounting, and the lossy semi-sync model five nodes.
    #[must_use]
    pub fn adjust_options(self, options: &SimulationOptions) -> SimulationOptions {
        let mut options = *options;
        if matches!(self, Model::RaftAsync | Model::RaftSemiSyncLossy) {
            options.workload.fresh_key_per_write = true;
            options.workload.keys = 1_000;
            options.workload.cas_weight = 0;
            options.workload.delete_weight = 0;
            // Time for the final reads of every written key, in the second half of the
            // quiet period: about as many as the writes of the run.
            let reads_time = options.duration.max(Duration::from_secs(4));
            options.quiet_period = options.quiet_period.max(reads_time * 2);
        }
        if self == Model::RaftSemiSyncLossy {
            options.nodes = 5;
        }
        options
    }

    /// Runs one simulation of this model and checks it.
    #[must_use]
    pub fn simulate(self, options: &SimulationOptions) -> RunReport {
        let properties = self.properties();
        let options = &self.adjust_options(options);
        match self {
            Model::Register => simulate(options, &properties, Register::open),
            Model::LocalOnly => simulate(options, &properties, LocalOnly::open),
            Model::AckBeforeSync => simulate(options, &properties, ack_before_sync),
            Model::RaftMajority
            | Model::RaftAll
            | Model::RaftSemiSyncAny
            | Model::RaftSemiSyncFirst
            | Model::RaftAsync
            | Model::RaftSemiSyncLossy => {
                let mode = self.commit_mode().expect("a Raft model has a commit mode");
                simulate(options, &properties, move |setup| raft(setup, mode))
            }
        }
    }
}

fn semi_sync(choice: SyncChoice) -> CommitMode {
    CommitMode::SemiSync {
        followers: 1,
        choice,
    }
}

/// Builds a Raft node in `commit_mode` with the default configuration otherwise.
fn raft(setup: NodeSetup, commit_mode: CommitMode) -> replikv_core::error::Result<RaftNode> {
    let config = RaftConfig {
        commit_mode,
        ..RaftConfig::default()
    };
    RaftNode::open(setup.id, setup.peers, setup.disk, setup.seed, config)
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
                format!(
                    "unknown model {name:?} (expected one of: {})",
                    Model::ALL.map(Model::name).join(", ")
                )
            })
    }
}
