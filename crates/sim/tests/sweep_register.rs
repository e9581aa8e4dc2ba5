//! The correct register must pass every seed under every fault preset: 1,000 seeds each
//! by default (`REPLIKV_SIM_SEEDS=N` for more, `REPLIKV_SEED=S` for one). A failure
//! prints the seed, the options and the replay commands.
//!
//! The register keeps its state on the real replication log, on node 1 only, and in the
//! presets a crash picks any of three nodes. The crash storm therefore runs the register
//! alone on one node with crashes ten times as dense and short downtimes: every crash,
//! and every armed crash striking inside a sync, a rollover or recovery, lands on the log.

#[path = "support/sweep.rs"]
mod sweep;

use replikv_sim::{DurationRange, FaultPreset, Model, SimulationOptions};

const SEEDS: u64 = 1_000;

/// Seeds of the crash storm: each run injects about thirty crashes.
const STORM_SEEDS: u64 = 300;

fn sweep_seeds(seeds: u64, options: impl Fn(u64) -> SimulationOptions) {
    let first_failure = sweep::seeds(seeds)
        .into_iter()
        .map(|seed| Model::Register.simulate(&options(seed)))
        .find(|report| !report.passed());
    if let Some(report) = first_failure {
        let text = report
            .failure_report(Model::Register.name(), Some("sweep_register"))
            .expect("a failed report has a failure");
        panic!("{text}");
    }
}

fn sweep_preset(preset: FaultPreset) {
    sweep_seeds(SEEDS, |seed| sweep::sweep_options(seed, preset));
}

/// One node, a crash every 20 to 300 ms, down for at most 50 ms.
fn crash_storm_options(seed: u64) -> SimulationOptions {
    let mut options = sweep::sweep_options(seed, FaultPreset::Crashes);
    options.nodes = 1;
    let mut crashes = options.faults.crashes.expect("the crashes preset crashes");
    crashes.interval = DurationRange::millis(20, 300);
    crashes.downtime = DurationRange::millis(1, 50);
    crashes.armed_operations_max = 12;
    options.faults.crashes = Some(crashes);
    options
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

#[test]
fn register_passes_a_crash_storm_on_its_log() {
    sweep_seeds(STORM_SEEDS, crash_storm_options);
    let report = Model::Register.simulate(&crash_storm_options(0));
    let stats = report.stats;
    assert!(
        stats.crashes >= 15 && stats.crashes_inside_calls >= 5,
        "the storm is too calm: {stats:?}"
    );
}
