//! The correct register must pass every seed under every fault preset: 1,000 seeds each
//! by default (`REPLIKV_SIM_SEEDS=N` for more, `REPLIKV_SEED=S` for one). A failure
//! prints the seed, the options and the replay commands.

#[path = "support/sweep.rs"]
mod sweep;

use replikv_sim::{FaultPreset, Model};

const SEEDS: u64 = 1_000;

fn sweep_preset(preset: FaultPreset) {
    let first_failure = sweep::seeds(SEEDS)
        .into_iter()
        .map(|seed| Model::Register.simulate(&sweep::sweep_options(seed, preset)))
        .find(|report| !report.passed());
    if let Some(report) = first_failure {
        let text = report
            .failure_report(Model::Register.name(), Some("sweep_register"))
            .expect("a failed report has a failure");
        panic!("{text}");
    }
}

#[test]
fn register_passes_without_faults() {
    sweep_preset(FaultPreset::None);
}

#[test]
fn register_passes_network_faults() {
    sweep_preset(FaultPreset::Network);
}

#[test]
fn register_passes_crashes() {
    sweep_preset(FaultPreset::Crashes);
}

#[test]
fn register_passes_everything() {
    sweep_preset(FaultPreset::Everything);
}
