//! Raft whose configuration keeps changing (`raft-membership`: five nodes, three
//! founding voters, a director cycling learner-add → promote → remove, the leader
//! included) must pass every seed under every fault preset, checked for
//! linearizability, session guarantees, durability, convergence of all five nodes and
//! Raft's cross-node invariants. The sweep also proves that the changes happened: it
//! sums the director's counts over the seeds and asserts floors (full sweeps only), and
//! every run must end with every node a member. `SEEDS` seeds per preset by default
//! (`REPLIKV_SIM_SEEDS=N` for more, `REPLIKV_SEED=S` for one). A last sweep runs the
//! same with `raft-compacting`'s aggressive compaction, so that learners and restarted
//! nodes are seeded by snapshots that carry the configuration.

#[path = "support/sweep.rs"]
mod sweep;

use replikv_replication::single_leader::RaftConfig;
use replikv_sim::membership::{ChangeCounts, simulate_membership_with};
use replikv_sim::models::raft_compacting_config;
use replikv_sim::{FaultPreset, Model};

const SEEDS: u64 = 150;

/// Runs the sweep of `preset`, panicking with the first failure's replay commands, and
/// returns the director's counts summed over the seeds.
fn sweep_preset(preset: FaultPreset) -> ChangeCounts {
    sweep_preset_with(preset, &RaftConfig::default(), SEEDS)
}

/// [`sweep_preset`] with `config` over `default` seeds.
fn sweep_preset_with(preset: FaultPreset, config: &RaftConfig, default: u64) -> ChangeCounts {
    let model = Model::RaftMembership;
    let properties = model.properties();
    let mut totals = ChangeCounts::default();
    for seed in sweep::seeds(default) {
        let options = model.adjust_options(&sweep::sweep_options(seed, preset));
        let (mut report, director) =
            simulate_membership_with(&options, &properties, config.clone());
        report.options = sweep::sweep_options(seed, preset);
        let failure = report.failure_report(model.name(), Some("sweep_raft_membership"));
        if let Some(text) = failure {
            panic!("config {config:?}\n{text}");
        }
        assert!(
            director.all_members_at_end,
            "seed {seed} {preset:?}: not every node is a member at the end: {:?}",
            director.counts
        );
        let counts = director.counts;
        totals.requested += counts.requested;
        totals.succeeded += counts.succeeded;
        totals.failed += counts.failed;
        totals.unanswered += counts.unanswered;
        totals.learners_added += counts.learners_added;
        totals.learners_promoted += counts.learners_promoted;
        totals.voters_added += counts.voters_added;
        totals.removed += counts.removed;
        totals.leaders_removed += counts.leaders_removed;
    }
    eprintln!("{preset:?}: {totals:?}");
    totals
}

/// The floors of a full sweep: every kind of change happened, many times.
fn assert_changes_happened(totals: &ChangeCounts) {
    if sweep::seeds(SEEDS).len() < SEEDS as usize {
        return;
    }
    assert!(totals.learners_added >= SEEDS, "{totals:?}");
    assert!(totals.learners_promoted >= SEEDS, "{totals:?}");
    assert!(totals.removed >= SEEDS, "{totals:?}");
    assert!(totals.voters_added > 0, "{totals:?}");
    assert!(totals.leaders_removed > 0, "{totals:?}");
}

#[test]
fn raft_membership_passes_without_faults() {
    assert_changes_happened(&sweep_preset(FaultPreset::None));
}

#[test]
fn raft_membership_passes_network_faults() {
    assert_changes_happened(&sweep_preset(FaultPreset::Network));
}

#[test]
fn raft_membership_passes_crashes() {
    assert_changes_happened(&sweep_preset(FaultPreset::Crashes));
}

#[test]
fn raft_membership_passes_everything() {
    assert_changes_happened(&sweep_preset(FaultPreset::Everything));
}

/// Compacting aggressively: new learners and restarted nodes catch up by snapshots.
#[test]
fn raft_membership_with_compaction_passes_everything() {
    let totals = sweep_preset_with(
        FaultPreset::Everything,
        &raft_compacting_config(),
        SEEDS / 3,
    );
    assert!(totals.succeeded > 0, "{totals:?}");
}
