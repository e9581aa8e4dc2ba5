//! Testing the tests: every planted bug of Raft must be caught by the simulator within
//! 1,000 seeds.
//!
//! Each case builds `raft-majority` nodes with one [`PlantedBug`] switched on (feature
//! `planted-bugs`; `cargo test -p replikv-sim --features planted-bugs --test planted`)
//! and sweeps seeds from 0 under the fault preset that gives the bug its chance, checking
//! everything `raft-majority` claims (linearizability, session guarantees, durability,
//! convergence) plus the run-wide observer and the simulator's own rules. The sweep stops
//! at the first seed whose run fails and prints it with the failure; none in 1,000 seeds
//! fails the test. As a control, the catching seed is run again without the bug and must
//! pass: the failure is the bug's, not the seed's.
//!
//! The first catching seeds (printed with `--nocapture`) are recorded in the cases' doc
//! comments; a change that makes a bug much harder to catch shows as a slower test long
//! before it shows as a failure. `REPLIKV_SIM_SEEDS=N` bounds the search at N seeds.
//!
//! Some bugs need a cluster shaped to expose them, and the cases say why: a Figure 8
//! commit needs a leader that sends an older term's entry in an append of its own,
//! without its no-op, which one-entry appends make likely.

#[path = "support/sweep.rs"]
#[allow(dead_code)]
mod sweep;

#[path = "support/figure8.rs"]
mod figure8;

use figure8::Figure8;
use replikv_replication::single_leader::{PlantedBug, RaftConfig};
use replikv_sim::models::raft_factory;
use replikv_sim::{
    DurationRange, FaultPreset, Model, NoDirector, RunReport, SimulationOptions, simulate_directed,
};
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;
use std::time::Instant as WallInstant;

/// Seeds searched per bug.
const SEEDS: u64 = 1_000;

/// How to expose one planted bug.
#[derive(Clone, Copy, Debug)]
struct Case {
    bug: PlantedBug,
    preset: FaultPreset,
    /// Cluster size.
    nodes: usize,
    /// Most entries per append (the default is 64).
    append_entries_max: usize,
    /// Changes to the preset's options.
    tune: fn(&mut SimulationOptions),
    /// Whether the run follows the Figure 8 story (see `support/figure8.rs`) besides
    /// the preset's random faults.
    figure8: bool,
    /// The model whose commit mode, options and claims the run takes (a Raft model).
    model: Model,
}

impl Case {
    const fn new(bug: PlantedBug, preset: FaultPreset) -> Case {
        Case {
            bug,
            preset,
            nodes: 3,
            append_entries_max: 64,
            tune: |_| {},
            figure8: false,
            model: Model::RaftMajority,
        }
    }

    fn options(&self, seed: u64) -> SimulationOptions {
        let mut options = self
            .model
            .adjust_options(&sweep::sweep_options(seed, self.preset));
        options.nodes = self.nodes;
        (self.tune)(&mut options);
        options
    }

    fn config(&self, bug: Option<PlantedBug>) -> RaftConfig {
        RaftConfig {
            append_entries_max: self.append_entries_max,
            commit_mode: self.model.commit_mode().expect("a Raft model"),
            planted_bug: bug,
            ..RaftConfig::default()
        }
    }

    /// One run; with the Figure 8 story, also whether it was told to its end.
    fn simulate(&self, seed: u64, bug: Option<PlantedBug>) -> (RunReport, bool) {
        let config = self.config(bug);
        let factory = raft_factory(config);
        let (options, properties) = (self.options(seed), self.model.properties());
        if self.figure8 {
            let mut director = Figure8::new(Duration::from_secs(1));
            let report = simulate_directed(&options, &properties, factory, &mut director);
            (report, director.told())
        } else {
            let report = simulate_directed(&options, &properties, factory, &mut NoDirector);
            (report, false)
        }
    }

    /// Sweeps seeds until a run fails; asserts one does, and that its seed passes
    /// without the bug.
    fn assert_caught(&self) {
        let started = WallInstant::now();
        let seeds = sweep::seed_range(SEEDS);
        let searched = seeds.len();
        // A run fails, or a replica's own invariant assertion stops it (crash rather than
        // diverge): either way the bug is caught.
        let caught = seeds.into_iter().find_map(|seed| {
            let run =
                panic::catch_unwind(AssertUnwindSafe(|| self.simulate(seed, Some(self.bug)).0));
            match run {
                Ok(report) if report.passed() => None,
                Ok(report) => {
                    let failure = report.failure.as_ref().expect("a failed run has a failure");
                    Some((seed, failure.to_string()))
                }
                Err(_) => Some((seed, "a replica's own assertion panicked".to_string())),
            }
        });
        let Some((seed, failure)) = caught else {
            panic!(
                "planted bug {} escaped {searched} seeds: {self:?}",
                self.bug.name()
            );
        };
        println!(
            "planted bug {} caught at seed {seed} under {} ({} nodes) after {:.1?}: {failure}",
            self.bug.name(),
            self.preset,
            self.nodes,
            started.elapsed(),
        );
        let (control, told) = self.simulate(seed, None);
        assert!(
            control.passed(),
            "seed {seed} fails without the planted bug too: {}",
            control.summary()
        );
        assert!(
            told || !self.figure8,
            "seed {seed}: the correct node passed, but the Figure 8 story did not reach its end"
        );
    }
}

/// Every planted bug has a case; `every_planted_bug_has_a_case` checks it. The first
/// catching seed and what caught it, as of this writing, are noted on each.
const CASES: [Case; 7] = [
    // Seed 13: the observer (an entry committed in t5 replaced in t6). Slow flushes make
    // the window between an acknowledgement and the leader's sync wide enough to crash in.
    Case {
        tune: slow_flushes_quick_restarts,
        ..Case::new(PlantedBug::AckBeforeFsync, FaultPreset::Crashes)
    },
    // Seed 0: linearizability and read-your-writes (a stale read from a follower).
    Case::new(
        PlantedBug::FollowerServesLinearizableReads,
        FaultPreset::None,
    ),
    // Seed 1: the observer (a committed entry overwritten by a leader that lacked it).
    Case::new(PlantedBug::VoteWithoutLogCheck, FaultPreset::Crashes),
    // Seed 1: the observer (the Figure 8 overwrite). 1,000 random seeds of `everything`
    // on five nodes with one-entry appends did not find it; the directed story does.
    Case {
        append_entries_max: 1,
        figure8: true,
        ..Case::new(PlantedBug::CommitOlderTermByCounting, FaultPreset::None)
    },
    // Seed 0: the observer (a vote changed within a term across a restart).
    Case::new(PlantedBug::ForgetVoteOnRestart, FaultPreset::Crashes),
    // Seed 2: convergence (the leader believes the crashed follower holds entries it lost,
    // never backs up below them, and the follower never catches up).
    Case::new(PlantedBug::FollowerAckBeforeDurable, FaultPreset::Crashes),
    // Async replication whose acknowledgements pass for commits: the observer sees a
    // committed entry replaced after a failover.
    Case {
        model: Model::RaftAsync,
        ..Case::new(
            PlantedBug::AsyncAckCountedAsSynchronous,
            FaultPreset::Crashes,
        )
    },
];

/// Group commits slower than a round trip (so a leader often hears acknowledgements
/// before its own log is synced), crashes three times as often, and crashed nodes back
/// within an election timeout or two (so they vote in the election that follows their
/// crash).
fn slow_flushes_quick_restarts(options: &mut SimulationOptions) {
    options.flush_latency = DurationRange::millis(1, 20);
    if let Some(crashes) = &mut options.faults.crashes {
        crashes.interval = DurationRange::millis(100, 1_000);
        crashes.downtime = DurationRange::millis(10, 300);
    }
}

fn case(bug: PlantedBug) -> Case {
    *CASES
        .iter()
        .find(|case| case.bug == bug)
        .unwrap_or_else(|| panic!("no case for {}", bug.name()))
}

#[test]
fn every_planted_bug_has_a_case() {
    for bug in PlantedBug::ALL {
        assert_eq!(case(bug).bug, bug);
    }
    assert_eq!(CASES.len(), PlantedBug::ALL.len());
}

#[test]
fn ack_before_fsync_is_caught() {
    case(PlantedBug::AckBeforeFsync).assert_caught();
}

#[test]
fn follower_serving_linearizable_reads_is_caught() {
    case(PlantedBug::FollowerServesLinearizableReads).assert_caught();
}

#[test]
fn vote_without_log_check_is_caught() {
    case(PlantedBug::VoteWithoutLogCheck).assert_caught();
}

#[test]
fn commit_of_an_older_term_by_counting_is_caught() {
    case(PlantedBug::CommitOlderTermByCounting).assert_caught();
}

#[test]
fn forgotten_vote_on_restart_is_caught() {
    case(PlantedBug::ForgetVoteOnRestart).assert_caught();
}

#[test]
fn follower_ack_before_durable_is_caught() {
    case(PlantedBug::FollowerAckBeforeDurable).assert_caught();
}

#[test]
fn async_ack_counted_as_synchronous_is_caught() {
    case(PlantedBug::AsyncAckCountedAsSynchronous).assert_caught();
}
