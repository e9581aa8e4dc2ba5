//! One seed, run twice, must produce the same run: the same events in the same order (the
//! trace hash covers every event's description), the same history, the same final states
//! and the same counts. Different seeds must produce different runs.

mod support;

use replikv_sim::{FaultPreset, Model, RunReport, SimulationOptions, run};
use std::collections::BTreeSet;
use std::time::Duration;
use support::Pinger;

fn options(seed: u64, preset: FaultPreset) -> SimulationOptions {
    let mut options = SimulationOptions::new(seed, preset);
    options.duration = Duration::from_secs(4);
    options
}

fn assert_identical(first: &RunReport, second: &RunReport, what: &str) {
    assert_eq!(first.trace_hash, second.trace_hash, "{what}: traces differ");
    assert_eq!(first.history, second.history, "{what}: histories differ");
    assert_eq!(
        first.final_states, second.final_states,
        "{what}: final states differ"
    );
    assert_eq!(first.stats, second.stats, "{what}: counts differ");
    assert_eq!(first.failure, second.failure, "{what}: outcomes differ");
}

#[test]
fn every_model_replays_bit_for_bit_under_every_preset() {
    for model in Model::ALL {
        for preset in FaultPreset::ALL {
            let first = model.simulate(&options(77, preset));
            let second = model.simulate(&options(77, preset));
            assert!(!first.history.operations.is_empty());
            assert_identical(&first, &second, &format!("{model} {preset}"));
        }
    }
}

#[test]
fn message_passing_replicas_replay_bit_for_bit() {
    let mut options = options(5, FaultPreset::Everything);
    options.nodes = 5;
    let first = run(&options, Pinger::open);
    let second = run(&options, Pinger::open);
    assert!(first.stats.messages_delivered > 1_000);
    assert_identical(&first, &second, "pingers");
}

#[test]
fn different_seeds_give_different_runs() {
    let hashes: BTreeSet<u64> = (0..20)
        .map(|seed| {
            Model::Register
                .simulate(&options(seed, FaultPreset::Everything))
                .trace_hash
        })
        .collect();
    assert_eq!(hashes.len(), 20);
}
