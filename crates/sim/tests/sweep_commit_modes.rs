//! Raft in the safe commit modes other than `majority` (`all`, `semi-sync any 1`,
//! `semi-sync first 1`, with the default three nodes) must pass every seed under every
//! fault preset, checked for linearizability, session guarantees, durability and
//! convergence: they claim exactly what `majority` claims. `SEEDS` seeds per mode and
//! preset by default (`REPLIKV_SIM_SEEDS=N` for more, `REPLIKV_SEED=S` for one).

#[path = "support/sweep.rs"]
mod sweep;

use replikv_sim::{FaultPreset, Model};

const SEEDS: u64 = 250;

fn sweep_model(model: Model, preset: FaultPreset) {
    sweep::assert_every_seed_passes(model, preset, SEEDS, "sweep_commit_modes");
}

fn sweep_every_preset(model: Model) {
    for preset in [
        FaultPreset::None,
        FaultPreset::Network,
        FaultPreset::Crashes,
        FaultPreset::Everything,
    ] {
        sweep_model(model, preset);
    }
}

#[test]
fn raft_all_passes_every_preset() {
    sweep_every_preset(Model::RaftAll);
}

#[test]
fn raft_semi_sync_any_passes_every_preset() {
    sweep_every_preset(Model::RaftSemiSyncAny);
}

#[test]
fn raft_semi_sync_first_passes_every_preset() {
    sweep_every_preset(Model::RaftSemiSyncFirst);
}
