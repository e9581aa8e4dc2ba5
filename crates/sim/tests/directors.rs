//! Directors do what they order, when they order it, and nothing after the fault phase.
//!
//! A scripted director drives the reference register (which needs no leader, so every
//! directive's effect is plain to see) through each [`Directive`]: it crashes node 2,
//! checks on the following events that the node is down, restarts it, isolates node 3,
//! heals, and orders one more crash after the fault phase, which must be ignored and
//! counted. The run must pass its checkers, replay identically, and the counts in its
//! stats must match the script.

use replikv_core::{Instant, NodeId};
use replikv_sim::reference::register::Register;
use replikv_sim::{Directive, Director, FaultPreset, Model, SimulationOptions, simulate_directed};
use std::time::Duration;

/// The script: at each time, one directive.
const SCRIPT: [(u64, Directive); 5] = [
    (1_000, Directive::Crash(NodeId(2))),
    (1_500, Directive::Restart(NodeId(2))),
    (2_000, Directive::Isolate(NodeId(3))),
    (2_500, Directive::Heal),
    // After the fault phase (3 s): ignored.
    (3_500, Directive::Crash(NodeId(1))),
];

#[derive(Debug, Default)]
struct Scripted {
    next: usize,
    /// Node 2's state seen between its crash and its restart, and after.
    down_seen: bool,
    up_again_seen: bool,
    finished_with: usize,
}

impl Director<Register> for Scripted {
    fn after_event(
        &mut self,
        now: Instant,
        nodes: &[Option<&Register>],
        directives: &mut Vec<Directive>,
    ) {
        let down = nodes[1].is_none();
        if self.next == 1 && down {
            self.down_seen = true;
        }
        if self.next >= 2 && !down && self.down_seen {
            self.up_again_seen = true;
        }
        if let Some((at_ms, directive)) = SCRIPT.get(self.next)
            && now >= Instant::ZERO + Duration::from_millis(*at_ms)
        {
            directives.push(*directive);
            self.next += 1;
        }
    }

    fn finish(&mut self, _now: Instant, nodes: &[Option<&Register>]) {
        self.finished_with = nodes.iter().flatten().count();
    }
}

fn directed_run(seed: u64) -> (replikv_sim::RunReport, Scripted) {
    let mut options = SimulationOptions::new(seed, FaultPreset::None);
    options.duration = Duration::from_secs(3);
    let mut director = Scripted::default();
    let properties = Model::Register.properties();
    let report = simulate_directed(&options, &properties, Register::open, &mut director);
    (report, director)
}

#[test]
fn directives_are_carried_out_during_the_fault_phase_only() {
    for seed in 0..5 {
        let (report, director) = directed_run(seed);
        assert!(report.passed(), "{}", report.summary());
        assert_eq!(director.next, SCRIPT.len(), "every directive was ordered");
        assert!(director.down_seen, "node 2 was seen down after its crash");
        assert!(
            director.up_again_seen,
            "node 2 was seen up after its restart"
        );
        assert_eq!(director.finished_with, 3, "every node runs at the end");
        let stats = report.stats;
        assert_eq!((stats.directives, stats.directives_ignored), (4, 1));
        assert_eq!((stats.crashes, stats.restarts), (1, 1));
        assert_eq!(stats.partitions_isolate_one, 1);
    }
}

#[test]
fn directed_runs_replay_identically() {
    let (first, _) = directed_run(9);
    let (second, _) = directed_run(9);
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.history, second.history);
}
