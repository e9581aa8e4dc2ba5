//! The lossy commit modes (`async` with three nodes, `semi-sync any 1` with five) lose
//! acknowledged writes on failover, by design; what they must never do is lose them
//! silently. Every seed must pass convergence and the exact loss accounting of
//! `discards.rs` (every lost acknowledged write reported; every write reported as
//! certainly discarded really lost), and the sweep as a whole must show losses, or the
//! accounting proved nothing. `SEEDS` seeds per model and preset by default
//! (`REPLIKV_SIM_SEEDS=N` for more, `REPLIKV_SEED=S` for one).

#[path = "support/sweep.rs"]
mod sweep;

use replikv_sim::discards::acknowledged_discards;
use replikv_sim::{FaultPreset, Model};

const SEEDS: u64 = 150;

/// Runs the sweep and returns the acknowledged writes reported discarded over all seeds.
fn sweep_model(model: Model, preset: FaultPreset) -> usize {
    let mut discarded = 0;
    for seed in sweep::seeds(SEEDS) {
        let report = model.simulate(&sweep::sweep_options(seed, preset));
        if let Some(text) = report.failure_report(model.name(), Some("sweep_lossy_modes")) {
            panic!("{text}");
        }
        discarded += acknowledged_discards(&report.history, &report.discarded_writes);
    }
    discarded
}

fn sweep_faulty_presets(model: Model) {
    let mut discarded = 0;
    for preset in [
        FaultPreset::Network,
        FaultPreset::Crashes,
        FaultPreset::Everything,
    ] {
        discarded += sweep_model(model, preset);
    }
    if std::env::var_os("REPLIKV_SEED").is_none() {
        assert!(
            discarded > 0,
            "{model}: no acknowledged write was lost in the whole sweep: the accounting was never tested"
        );
    }
}

#[test]
fn raft_async_reports_every_lost_write() {
    sweep_faulty_presets(Model::RaftAsync);
}

#[test]
fn raft_semi_sync_of_five_reports_every_lost_write() {
    sweep_faulty_presets(Model::RaftSemiSyncLossy);
}

#[test]
fn raft_async_without_faults_loses_nothing() {
    assert_eq!(sweep_model(Model::RaftAsync, FaultPreset::None), 0);
}
