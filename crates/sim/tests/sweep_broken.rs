//! The broken models must be caught, and quickly: each within the first 1,000 seeds of a
//! preset that can expose it. The test prints the seeds that caught it; `replikv sim
//! --model ack-before-sync --faults crashes --duration-seconds 5 --seed S` replays one.
//! The search always starts at seed 0 (`REPLIKV_SIM_SEEDS=N` bounds it at N seeds), so
//! `REPLIKV_SEED`, meant for replaying a failure of a correct model, does not narrow it.
//!
//! As a control, `ack-before-sync` must pass when nothing crashes: it differs from the
//! correct register only in what a crash reveals, and a checker that flags it anyway
//! would be flagging something else.

#[path = "support/sweep.rs"]
mod sweep;

use replikv_sim::{FailureKind, FaultPreset, Model};

const SEEDS: u64 = 1_000;

/// How many catching seeds to collect before stopping.
const CATCHES_WANTED: usize = 3;

/// Runs `model` over the sweep's seeds until it has been caught a few times; returns the
/// catching seeds with the properties found invalid.
fn catches(model: Model, preset: FaultPreset) -> Vec<(u64, String)> {
    let mut caught = Vec::new();
    for seed in sweep::seed_range(SEEDS) {
        let report = model.simulate(&sweep::sweep_options(seed, preset));
        let Some(failure) = &report.failure else {
            continue;
        };
        assert_eq!(
            failure.kind,
            FailureKind::Checker,
            "{model} must be caught by a checker, not by {failure}"
        );
        caught.push((seed, failure.message.clone()));
        if caught.len() == CATCHES_WANTED {
            break;
        }
    }
    println!("{model} under {preset}: caught at {caught:?}");
    caught
}

#[test]
fn local_only_is_caught() {
    let caught = catches(Model::LocalOnly, FaultPreset::None);
    assert!(!caught.is_empty(), "local-only passed every seed");
    assert!(caught[0].1.contains("linearizability"), "{caught:?}");
}

#[test]
fn ack_before_sync_is_caught_by_crashes() {
    let caught = catches(Model::AckBeforeSync, FaultPreset::Crashes);
    assert!(!caught.is_empty(), "ack-before-sync passed every seed");
}

#[test]
fn ack_before_sync_passes_when_nothing_crashes() {
    for seed in sweep::seeds(20) {
        let report =
            Model::AckBeforeSync.simulate(&sweep::sweep_options(seed, FaultPreset::Network));
        assert!(report.passed(), "{}", report.summary());
    }
}
