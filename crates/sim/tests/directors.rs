//! Directors do what they order, when they order it, and nothing after the fault phase.
//!
//! A scripted director drives the reference register (which needs no leader, so every
//! directive's effect is plain to see) through each [`Directive`]: it crashes node 2,
//! checks on the following events that the node is down, restarts it, isolates node 3,
//! heals, and orders one more crash after the fault phase, which must be ignored and
//! counted. It also sends requests of its own: a read to node 1 (answered), one to node 2
//! while it is down (refused), and one after the fault phase (requests are not faults:
//! carried out). Their answers must come back to the director with their tags and stay
//! out of the history. The run must pass its checkers, replay identically, and the counts
//! in its stats must match the script.

use replikv_core::kv::ReadConsistency;
use replikv_core::{Error, Instant, Key, NodeId, Reply, Request};
use replikv_sim::reference::register::Register;
use replikv_sim::{
    DIRECTOR_CLIENT_ID, Directive, Director, DirectorReply, FaultPreset, Model, SimulationOptions,
    simulate_directed,
};
use std::time::Duration;

/// A read of key `k` with tag `tag` to `node`.
fn read(node: u64, tag: u64) -> Directive {
    Directive::Request {
        node: NodeId(node),
        tag,
        request: Request::Get {
            key: Key::new("director-key").expect("a valid key"),
            consistency: ReadConsistency::Linearizable,
        },
    }
}

/// The script: at each time, one directive.
fn script() -> Vec<(u64, Directive)> {
    vec![
        (800, read(1, 10)),
        (1_000, Directive::Crash(NodeId(2))),
        (1_200, read(2, 20)),
        (1_500, Directive::Restart(NodeId(2))),
        (2_000, Directive::Isolate(NodeId(3))),
        (2_500, Directive::Heal),
        // After the fault phase (3 s): the crash is ignored, the request carried out.
        (3_500, Directive::Crash(NodeId(1))),
        (3_600, read(1, 30)),
    ]
}

#[derive(Debug, Default)]
struct Scripted {
    next: usize,
    /// Node 2's state seen between its crash and its restart, and after.
    down_seen: bool,
    up_again_seen: bool,
    finished_with: usize,
    replies: Vec<DirectorReply>,
}

impl Director<Register> for Scripted {
    fn after_event(
        &mut self,
        now: Instant,
        nodes: &[Option<&Register>],
        directives: &mut Vec<Directive>,
    ) {
        let down = nodes[1].is_none();
        // Script entries 1 and 3 are the crash and the restart of node 2.
        if (2..=3).contains(&self.next) && down {
            self.down_seen = true;
        }
        if self.next >= 4 && !down && self.down_seen {
            self.up_again_seen = true;
        }
        if let Some((at_ms, directive)) = script().get(self.next)
            && now >= Instant::ZERO + Duration::from_millis(*at_ms)
        {
            directives.push(directive.clone());
            self.next += 1;
        }
    }

    fn on_reply(&mut self, _now: Instant, reply: DirectorReply) {
        self.replies.push(reply);
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
        assert_eq!(director.next, script().len(), "every directive was ordered");
        assert!(director.down_seen, "node 2 was seen down after its crash");
        assert!(
            director.up_again_seen,
            "node 2 was seen up after its restart"
        );
        assert_eq!(director.finished_with, 3, "every node runs at the end");
        let stats = report.stats;
        assert_eq!((stats.directives, stats.directives_ignored), (7, 1));
        assert_eq!((stats.crashes, stats.restarts), (1, 1));
        assert_eq!(stats.partitions_isolate_one, 1);
        assert_eq!(stats.director_replies, 3);
        let answers: Vec<(u64, NodeId, bool)> = director
            .replies
            .iter()
            .map(|r| (r.tag, r.node, matches!(r.reply, Reply::Read { .. })))
            .collect();
        assert_eq!(
            answers,
            [
                (10, NodeId(1), true),
                (20, NodeId(2), false),
                (30, NodeId(1), true)
            ]
        );
        assert!(matches!(
            director.replies[1].reply,
            Reply::Failed(Error::Unavailable(_))
        ));
        assert!(
            report.history.operations.iter().all(|operation| {
                operation.process != DIRECTOR_CLIENT_ID.0 && operation.key != "director-key"
            }),
            "the director's requests stay out of the history"
        );
    }
}

#[test]
fn directed_runs_replay_identically() {
    let (first, _) = directed_run(9);
    let (second, _) = directed_run(9);
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.history, second.history);
}
