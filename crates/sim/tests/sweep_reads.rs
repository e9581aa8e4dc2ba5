//! The read modes under the simulator, `SEEDS` seeds per fault preset each
//! (`REPLIKV_SIM_SEEDS=N` for more, `REPLIKV_SEED=S` for one; the search for a broken
//! lease always starts at seed 0):
//!
//! - `raft-lease` passes linearizability (and everything `raft-majority` passes) with its
//!   clocks kept within the lease's drift assumption;
//! - the assumption is real: the same lease reads under clocks that drift far beyond it
//!   are caught by the linearizability checker;
//! - `raft-session` passes read-your-writes, monotonic reads and consistent prefix (and
//!   the other session guarantees) with session reads at random nodes;
//! - `raft-follower-reads` is caught by the linearizability checker (follower reads are
//!   stale, and the checker sees it), while consistent prefix holds on every seed of the
//!   presets in which replicas do not restart.

#[path = "support/sweep.rs"]
mod sweep;

use replikv_check::consistent_prefix;
use replikv_replication::single_leader::RaftConfig;
use replikv_sim::models::{raft_lease_config, simulate_raft_lease};
use replikv_sim::options::ClockOptions;
use replikv_sim::{FaultPreset, Model};
use std::time::Duration;

/// Seeds per preset by default: a third of `sweep_raft`'s, as these models share its
/// replication code and differ only in reads (300 per preset were run when they landed).
const SEEDS: u64 = 100;

/// Seeds searched for a run that the checker catches.
const SEARCH_SEEDS: u64 = 1_000;

fn sweep_model(model: Model, preset: FaultPreset) {
    sweep::assert_every_seed_passes(model, preset, SEEDS, "sweep_reads");
}

#[test]
fn raft_lease_passes_every_preset() {
    for preset in FaultPreset::ALL {
        sweep_model(Model::RaftLease, preset);
    }
}

#[test]
fn raft_session_passes_every_preset() {
    for preset in FaultPreset::ALL {
        sweep_model(Model::RaftSession, preset);
    }
}

/// Follower reads must be caught by linearizability, and only by checkers of guarantees
/// they do not give: consistent prefix holds on every seed.
fn follower_reads_are_caught(preset: FaultPreset) {
    let mut caught = Vec::new();
    for seed in sweep::seeds(SEEDS) {
        let report = Model::RaftFollowerReads.simulate(&sweep::sweep_options(seed, preset));
        let verdict = |property: &str| {
            report
                .verdicts
                .iter()
                .find(|named| named.property == property)
                .map(|named| named.verdict.clone())
                .unwrap_or_else(|| panic!("seed {seed}: no {property} verdict: {report:?}"))
        };
        let prefix = verdict(consistent_prefix::PROPERTY);
        assert!(prefix.is_valid(), "seed {seed}: {prefix:?}");
        if verdict(replikv_check::linearizability::PROPERTY).is_invalid() {
            caught.push(seed);
        }
    }
    let first: Vec<u64> = caught.iter().copied().take(5).collect();
    println!(
        "raft-follower-reads under {preset}: linearizability caught on {} seeds, first {first:?}",
        caught.len()
    );
    assert!(!caught.is_empty(), "stale follower reads were never caught");
}

#[test]
fn follower_reads_are_not_linearizable_but_keep_a_consistent_prefix() {
    follower_reads_are_caught(FaultPreset::None);
    follower_reads_are_caught(FaultPreset::Network);
}

/// Clocks far beyond the lease's 10% assumption: offsets jump by up to 400 ms every
/// 100 ms, so a leader's clock can stand still while a follower's leaps ahead.
const WILD_CLOCKS: ClockOptions = ClockOptions {
    skew_max: Duration::from_millis(1_000),
    drift_step_max: Duration::from_millis(400),
    drift_interval: Duration::from_millis(100),
};

#[test]
fn lease_reads_under_clocks_beyond_the_assumption_are_caught() {
    let mut caught = Vec::new();
    for seed in sweep::seed_range(SEARCH_SEEDS) {
        let mut options = sweep::sweep_options(seed, FaultPreset::Network);
        options.faults.clocks = WILD_CLOCKS;
        let report = simulate_raft_lease(&options, raft_lease_config());
        let linearizable = report
            .verdicts
            .iter()
            .find(|named| named.property == replikv_check::linearizability::PROPERTY);
        if linearizable.is_some_and(|named| named.verdict.is_invalid()) {
            println!(
                "seed {seed}: {:?}",
                linearizable.map(|named| &named.verdict)
            );
            caught.push(seed);
            // The control: the same run with leases off (every lease read served by
            // ReadIndex) passes, so the lease broke it.
            let config = RaftConfig {
                lease_reads_enabled: false,
                ..raft_lease_config()
            };
            let control = simulate_raft_lease(&options, config);
            assert!(control.passed(), "{}", control.summary());
            break;
        }
    }
    println!("lease reads beyond the drift assumption: caught at {caught:?}");
    assert!(!caught.is_empty(), "no seed broke the lease");
}
