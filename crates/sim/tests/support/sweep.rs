//! Seed selection for the sweeps: `REPLIKV_SEED=S` runs only seed S, `REPLIKV_SIM_SEEDS=N`
//! runs N seeds instead of the default.

use replikv_sim::{FaultPreset, Model, SimulationOptions};
use std::time::Duration;

/// Virtual seconds of each sweep run (a flag value of `replikv sim`, so that printed
/// replay commands rebuild the same options).
pub const SWEEP_DURATION_SECONDS: u64 = 5;

/// The seeds to run: the single `REPLIKV_SEED`, or `REPLIKV_SIM_SEEDS` (else `default`)
/// seeds from 0.
pub fn seeds(default: u64) -> Vec<u64> {
    if let Some(seed) = env_number("REPLIKV_SEED") {
        return vec![seed];
    }
    seed_range(default)
}

/// `REPLIKV_SIM_SEEDS` (else `default`) seeds from 0, whatever `REPLIKV_SEED` says: for
/// searches that must look at many seeds.
pub fn seed_range(default: u64) -> Vec<u64> {
    let count = env_number("REPLIKV_SIM_SEEDS").unwrap_or(default);
    (0..count).collect()
}

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    Some(
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {text:?}")),
    )
}

/// The options of one sweep run.
pub fn sweep_options(seed: u64, preset: FaultPreset) -> SimulationOptions {
    let mut options = SimulationOptions::new(seed, preset);
    options.duration = Duration::from_secs(SWEEP_DURATION_SECONDS);
    options
}

/// Runs `model` over the sweep's seeds (`default` unless the environment says otherwise)
/// under `preset`, and panics with the first failing seed's report and replay commands
/// (`test` names the test file that replays it).
#[allow(dead_code)]
pub fn assert_every_seed_passes(model: Model, preset: FaultPreset, default: u64, test: &str) {
    let first_failure = seeds(default)
        .into_iter()
        .map(|seed| model.simulate(&sweep_options(seed, preset)))
        .find(|report| !report.passed());
    if let Some(report) = first_failure {
        let text = report
            .failure_report(model.name(), Some(test))
            .expect("a failed report has a failure");
        panic!("{text}");
    }
}
