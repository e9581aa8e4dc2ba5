//! Raft in `majority` commit mode must pass every seed under every fault preset,
//! checked for linearizability, session guarantees, durability and convergence:
//! `SEEDS` seeds each by default (`REPLIKV_SIM_SEEDS=N` for more, `REPLIKV_SEED=S` for
//! one). A failure prints the seed, the options and the replay commands.

#[path = "support/sweep.rs"]
mod sweep;

use replikv_sim::{FaultPreset, Model};

const SEEDS: u64 = 300;

fn sweep_preset(preset: FaultPreset) {
    sweep::assert_every_seed_passes(Model::RaftMajority, preset, SEEDS, "sweep_raft");
}

#[test]
fn raft_majority_passes_without_faults() {
    sweep_preset(FaultPreset::None);
}

#[test]
fn raft_majority_passes_network_faults() {
    sweep_preset(FaultPreset::Network);
}

#[test]
fn raft_majority_passes_crashes() {
    sweep_preset(FaultPreset::Crashes);
}

#[test]
fn raft_majority_passes_everything() {
    sweep_preset(FaultPreset::Everything);
}

/// Runs one seed that once failed, whatever `REPLIKV_SEED` says.
fn regression(seed: u64, preset: FaultPreset) {
    let report = Model::RaftMajority.simulate(&sweep::sweep_options(seed, preset));
    if let Some(text) = report.failure_report(Model::RaftMajority.name(), Some("sweep_raft")) {
        panic!("{text}");
    }
}

/// A lost append after a pipeline restart left the in-flight count at zero with the next
/// index past the follower's log: nothing was ever resent. The restart rule now looks at
/// the next index, not the in-flight count.
#[test]
fn regression_seed_13_network_lost_append_after_pipeline_restart() {
    regression(13, FaultPreset::Network);
}
