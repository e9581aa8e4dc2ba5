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
//!
//! Three models run the same Raft with other read modes (the workload's [`ReadMode`]):
//! `raft-lease` (lease reads, checked for linearizability, under clocks kept within the
//! lease's drift assumption by [`lease_safe_clocks`]), `raft-session` (session reads at
//! random nodes, checked for the session guarantees but not linearizability, which they
//! do not promise) and `raft-follower-reads` (each client reads its own home replica;
//! the model claims linearizability and the session guarantees, to be refuted: the proof
//! that follower reads are stale and that the checker sees it, while consistent prefix
//! holds as long as the replica does not restart — a restarted replica re-applies from
//! its durable store, which may be behind what it served; session reads are the mode
//! that survives that). `raft-membership` (five nodes, three founding voters) changes
//! its configuration all run long while the faults strike: see [`crate::membership`]. A
//! model may derive its run's
//! options from the ones it is given (read mode, clocks); its report shows the options
//! as given, which is what replays it.

use crate::checking::Properties;
use crate::node::NodeSetup;
use crate::options::{ClockOptions, ReadMode, SimulationOptions};
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
    /// Raft with lease reads.
    RaftLease,
    /// Raft with session reads at random nodes.
    RaftSession,
    /// Raft with follower reads at random nodes: claims linearizability, to be refuted.
    RaftFollowerReads,
    /// Raft in `majority` mode, compacting aggressively: snapshots in most runs.
    RaftCompacting,
    /// Raft in `majority` mode whose configuration changes during the run (five nodes).
    RaftMembership,
}

impl Model {
    pub const ALL: [Model; 14] = [
        Model::Register,
        Model::LocalOnly,
        Model::AckBeforeSync,
        Model::RaftMajority,
        Model::RaftAll,
        Model::RaftSemiSyncAny,
        Model::RaftSemiSyncFirst,
        Model::RaftAsync,
        Model::RaftSemiSyncLossy,
        Model::RaftLease,
        Model::RaftSession,
        Model::RaftFollowerReads,
        Model::RaftCompacting,
        Model::RaftMembership,
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
            Model::RaftLease => "raft-lease",
            Model::RaftSession => "raft-session",
            Model::RaftFollowerReads => "raft-follower-reads",
            Model::RaftCompacting => "raft-compacting",
            Model::RaftMembership => "raft-membership",
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
            | Model::RaftSemiSyncFirst
            | Model::RaftLease
            | Model::RaftCompacting
            | Model::RaftMembership => Properties {
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
            // The durability checker judges a write lost when any read that began after
            // it completed misses it: true of linearizable reads only. Raft's durability
            // is judged by the models above.
            Model::RaftSession => Properties {
                session_guarantees: true,
                convergent: true,
                ..Properties::NONE
            },
            Model::RaftFollowerReads => Properties {
                linearizable: true,
                session_guarantees: true,
                convergent: true,
                ..Properties::NONE
            },
        }
    }

    /// The commit mode of a Raft model.
    #[must_use]
    pub fn commit_mode(self) -> Option<CommitMode> {
        match self {
            Model::Register | Model::LocalOnly | Model::AckBeforeSync => None,
            Model::RaftMajority
            | Model::RaftLease
            | Model::RaftSession
            | Model::RaftFollowerReads
            | Model::RaftCompacting
            | Model::RaftMembership => Some(CommitMode::Majority),
            Model::RaftAll => Some(CommitMode::All),
            Model::RaftSemiSyncAny | Model::RaftSemiSyncLossy => Some(semi_sync(SyncChoice::Any)),
            Model::RaftSemiSyncFirst => Some(semi_sync(SyncChoice::First)),
            Model::RaftAsync => Some(CommitMode::Async),
        }
    }

    /// Whether the model applies a client request id at most once, so that clients may
    /// retry a write with an unknown outcome under the same id
    /// ([`WorkloadOptions::unknown_retries_max`](crate::options::WorkloadOptions)). Every
    /// Raft model does; the reference models do not: a retry there could apply a write twice.
    #[must_use]
    pub fn deduplicates_retries(self) -> bool {
        self.commit_mode().is_some()
    }

    /// The options a run of this model uses: the lossy models need the fresh-key
    /// workload for exact loss accounting, and the lossy semi-sync model five nodes; the
    /// read-mode models set their read mode, and the lease model clocks within its
    /// drift assumption; a model that does not deduplicate retries gets none.
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
        if self == Model::RaftMembership {
            options.nodes = crate::membership::MEMBERSHIP_MODEL_NODES;
        }
        match self {
            Model::RaftLease => {
                options.workload.reads = ReadMode::Lease;
                options.faults.clocks =
                    lease_safe_clocks(options.faults.clocks, &raft_lease_config());
            }
            Model::RaftSession => options.workload.reads = ReadMode::Session,
            Model::RaftFollowerReads => options.workload.reads = ReadMode::Follower,
            _ => {}
        }
        if !self.deduplicates_retries() {
            options.workload.unknown_retries_max = 0;
        }
        options
    }

    /// Runs one simulation of this model and checks it. The report shows the options
    /// as given (what replays it), not as the model adjusted them.
    #[must_use]
    pub fn simulate(self, options: &SimulationOptions) -> RunReport {
        let properties = self.properties();
        let given = *options;
        let options = &self.adjust_options(options);
        let mut report = match self {
            Model::Register => simulate(options, &properties, Register::open),
            Model::LocalOnly => simulate(options, &properties, LocalOnly::open),
            Model::AckBeforeSync => simulate(options, &properties, ack_before_sync),
            Model::RaftLease => simulate_raft_lease(options, raft_lease_config()),
            Model::RaftCompacting => simulate(options, &properties, raft_compacting),
            Model::RaftMembership => crate::membership::simulate_membership(options, &properties).0,
            Model::RaftMajority
            | Model::RaftAll
            | Model::RaftSemiSyncAny
            | Model::RaftSemiSyncFirst
            | Model::RaftAsync
            | Model::RaftSemiSyncLossy
            | Model::RaftSession
            | Model::RaftFollowerReads => {
                let mode = self.commit_mode().expect("a Raft model has a commit mode");
                simulate(options, &properties, move |setup| raft(setup, mode))
            }
        };
        report.options = given;
        report
    }
}

fn semi_sync(choice: SyncChoice) -> CommitMode {
    CommitMode::SemiSync {
        followers: 1,
        choice,
    }
}

/// Applied entries between two durable store commits in the commit-mode models: fewer
/// than the default ([`STORE_SYNC_ENTRIES_DEFAULT`], 4,096), so that a model's run of a
/// few thousand entries still commits the store durably a few times and its crashes
/// reopen nodes whose store is part-way along the log (restart re-applies from there).
/// At the default most runs would never commit the store before the end. The models
/// also keep the interval from stretching (`store_sync_entries_max` equal to it), for the
/// same reason.
///
/// [`STORE_SYNC_ENTRIES_DEFAULT`]: replikv_replication::single_leader::STORE_SYNC_ENTRIES_DEFAULT
pub const MODEL_STORE_SYNC_ENTRIES: u64 = 1024;

/// Builds a Raft node in `commit_mode` with the default configuration otherwise (but
/// for [`MODEL_STORE_SYNC_ENTRIES`]).
fn raft(setup: NodeSetup, commit_mode: CommitMode) -> replikv_core::error::Result<RaftNode> {
    let config = RaftConfig {
        commit_mode,
        store_sync_entries: MODEL_STORE_SYNC_ENTRIES,
        store_sync_entries_max: MODEL_STORE_SYNC_ENTRIES,
        ..RaftConfig::default()
    };
    raft_factory(config)(setup)
}

/// A factory of Raft nodes with `config`, for [`simulate`] and its variants.
pub fn raft_factory(
    config: RaftConfig,
) -> impl Fn(NodeSetup) -> replikv_core::error::Result<RaftNode> {
    move |setup: NodeSetup| {
        RaftNode::open(
            setup.id,
            setup.peers,
            setup.disk,
            setup.seed,
            config.clone(),
        )
    }
}

/// The drift assumption of the `raft-lease` model: 10% (see [`lease_safe_clocks`]).
pub const LEASE_MODEL_DRIFT_PPM: u64 = 100_000;

/// The `raft-lease` model's Raft settings: the defaults with lease reads on and a drift
/// assumption of [`LEASE_MODEL_DRIFT_PPM`].
#[must_use]
pub fn raft_lease_config() -> RaftConfig {
    RaftConfig {
        lease_reads_enabled: true,
        lease_clock_drift_max_ppm: LEASE_MODEL_DRIFT_PPM,
        store_sync_entries: MODEL_STORE_SYNC_ENTRIES,
        store_sync_entries_max: MODEL_STORE_SYNC_ENTRIES,
        ..RaftConfig::default()
    }
}

/// Runs Raft with lease reads under `config` and `options` exactly as given (no clamping
/// of the clocks): the `raft-lease` model after [`lease_safe_clocks`], or, with clocks
/// beyond the assumption, the demonstration that the assumption is needed.
#[must_use]
pub fn simulate_raft_lease(options: &SimulationOptions, config: RaftConfig) -> RunReport {
    let properties = Model::RaftLease.properties();
    let mut derived = *options;
    derived.workload.reads = ReadMode::Lease;
    simulate(&derived, &properties, raft_factory(config))
}

/// `clocks` with the drift step lowered until the simulated clocks keep the drift
/// assumption of `config`'s lease.
///
/// A simulated clock runs at the rate of virtual time except that its offset jumps, by
/// at most `drift_step_max`, once per `drift_interval` (a backward jump freezes it
/// instead, since it never goes back). Over a window of length `w` a clock therefore
/// advances by `w ± k × step` with `k = w / drift_interval + 1` jumps at most. The lease
/// compares an interval on the leader's clock with one on a follower's, each about
/// `election_timeout_ms_min` (`m`) long; taking `w = 2m` to cover message delays, two
/// clocks in opposite directions differ by at most `2k × step`, which the assumption
/// allows when `2k × step ≤ ρ × m`. Skew (a fixed offset) does not matter: the lease
/// never compares two clocks' readings, only their rates.
#[must_use]
pub fn lease_safe_clocks(clocks: ClockOptions, config: &RaftConfig) -> ClockOptions {
    let minimum_nanos = u128::from(config.election_timeout_ms_min) * 1_000_000;
    let interval_nanos = clocks.drift_interval.as_nanos().max(1);
    let jumps = 2 * minimum_nanos / interval_nanos + 1;
    let allowed_nanos =
        minimum_nanos * u128::from(config.lease_clock_drift_max_ppm) / 1_000_000 / (2 * jumps);
    let allowed = std::time::Duration::from_nanos(u64::try_from(allowed_nanos).unwrap_or(u64::MAX));
    ClockOptions {
        drift_step_max: clocks.drift_step_max.min(allowed),
        ..clocks
    }
}

/// The configuration of `raft-compacting`: log segments of a few entries, a store synced
/// every few entries (its durable position bounds compaction), a leader that keeps at
/// most 16 entries for a lagging follower, and snapshot chunks of a few keys. A follower
/// that misses a few hundred milliseconds (a crash, a partition) is then seeded from a
/// snapshot.
#[must_use]
pub fn raft_compacting_config() -> RaftConfig {
    let mut config = RaftConfig {
        store_sync_entries: 4,
        store_sync_entries_max: 4,
        log_retained_entries_max: 16,
        snapshot_chunk_size_max_bytes: 64,
        ..RaftConfig::default()
    };
    config.log_options.segment_size_max_bytes = 512;
    config
}

/// Builds a Raft node in `majority` mode with [`raft_compacting_config`].
fn raft_compacting(setup: NodeSetup) -> replikv_core::error::Result<RaftNode> {
    raft_factory(raft_compacting_config())(setup)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::FaultPreset;
    use std::time::Duration;

    #[test]
    fn lease_safe_clocks_keep_the_drift_within_the_assumption() {
        let config = raft_lease_config();
        let everything = FaultPreset::Everything.options().clocks;
        let safe = lease_safe_clocks(everything, &config);
        // 150 ms × 10% / (2 × one jump per 300 ms window at a 500 ms interval).
        assert_eq!(safe.drift_step_max, Duration::from_micros(7_500));
        assert_eq!(safe.skew_max, everything.skew_max, "skew is irrelevant");
        let frequent = ClockOptions {
            drift_interval: Duration::from_millis(100),
            ..everything
        };
        // Four jumps fit in a 300 ms window at a 100 ms interval.
        let safe = lease_safe_clocks(frequent, &config);
        assert_eq!(safe.drift_step_max, Duration::from_micros(1_875));
        let still = FaultPreset::None.options().clocks;
        assert_eq!(lease_safe_clocks(still, &config), still);
    }

    #[test]
    fn every_model_round_trips_through_its_name() {
        for model in Model::ALL {
            assert_eq!(model.name().parse::<Model>(), Ok(model));
        }
        let error = "raft".parse::<Model>().unwrap_err();
        assert!(error.contains("raft-session"), "{error}");
    }
}
