//! Pre-vote and check-quorum at work: a member cut off from a healthy cluster rejoins
//! without forcing an election, and the same story without pre-vote does force one.
//!
//! A directed run ([`Director`]) waits until a leader of `raft-majority` is established,
//! isolates one follower (both directions, nothing else goes wrong: the `none` preset)
//! for several election timeouts, heals, and lets the cluster run on. It watches every
//! node after every event and reads every node's [`RaftStats`] at the end:
//!
//! - with the default configuration, the healthy majority never leaves the term it had
//!   when the member was cut off and its leader never changes, and the isolated member
//!   starts no election, neither while cut off (it runs pre-votes, which it loses, and
//!   the test checks that it did try) nor after rejoining;
//! - with `pre_vote: false`, the isolated member bumps its term at every timeout, and
//!   when it rejoins its higher term deposes the leader: the control, which shows the
//!   scenario is able to disturb a cluster and the first half is not vacuous.
//!
//! Every run also passes the usual checkers (linearizability, session guarantees,
//! durability, convergence) and the run-wide observer.

#[path = "support/sweep.rs"]
#[allow(dead_code)]
mod sweep;

use replikv_core::replica::Replica;
use replikv_core::{Instant, NodeId, Term};
use replikv_replication::single_leader::{RaftConfig, RaftNode, RaftStats};
use replikv_sim::models::raft_factory;
use replikv_sim::{
    Directive, Director, FaultPreset, Model, RunReport, SimulationOptions, simulate_directed,
};
use std::time::Duration;

/// Seeds per variant.
const SEEDS: u64 = 10;

/// When the director starts looking for an established leader to isolate a follower of.
const ISOLATE_AFTER: Duration = Duration::from_secs(1);

/// How long the member stays cut off: many election timeouts (150..=300 ms).
const ISOLATION: Duration = Duration::from_secs(2);

/// What the director saw when it cut a member off.
#[derive(Clone, Debug)]
struct Isolation {
    member: NodeId,
    leader: NodeId,
    term: Term,
    at: Instant,
    /// The member's counters when it was cut off and when it was healed.
    member_stats_at_isolation: RaftStats,
    member_stats_at_heal: Option<RaftStats>,
}

/// Isolates one follower of an established leader, heals it, and records every change
/// of term or leader among the other nodes.
#[derive(Debug, Default)]
struct IsolateOneFollower {
    isolation: Option<Isolation>,
    /// Changes seen in the healthy majority after the isolation (first few).
    disruptions: Vec<String>,
    /// Every node's term, leader and counters at the end of the run.
    final_nodes: Vec<(NodeId, Term, Option<NodeId>, RaftStats)>,
}

impl IsolateOneFollower {
    /// A leader every running node follows in the leader's term, if there is one.
    fn established_leader(nodes: &[Option<&RaftNode>]) -> Option<(NodeId, Term)> {
        let leader = nodes.iter().flatten().find(|node| node.is_leader())?;
        let (id, term) = (leader.leader()?, leader.term());
        let all_follow = nodes
            .iter()
            .all(|node| node.is_some_and(|node| node.term() == term && node.leader() == Some(id)));
        all_follow.then_some((id, term))
    }

    fn record_disruptions(&mut self, now: Instant, nodes: &[Option<&RaftNode>]) {
        let Some(isolation) = &self.isolation else {
            return;
        };
        for node in nodes.iter().flatten() {
            let id = node.id();
            if id == isolation.member || self.disruptions.len() >= 10 {
                continue;
            }
            let deposed = node.is_leader() && id != isolation.leader;
            if node.term() != isolation.term || deposed {
                self.disruptions.push(format!(
                    "at {now}: {id} is {} in {}, was {} led by {}",
                    node.role_name(),
                    node.term(),
                    isolation.term,
                    isolation.leader
                ));
            }
        }
    }
}

impl Director<RaftNode> for IsolateOneFollower {
    fn after_event(
        &mut self,
        now: Instant,
        nodes: &[Option<&RaftNode>],
        directives: &mut Vec<Directive>,
    ) {
        match &mut self.isolation {
            None if now >= Instant::ZERO + ISOLATE_AFTER => {
                let Some((leader, term)) = Self::established_leader(nodes) else {
                    return;
                };
                let member = nodes
                    .iter()
                    .flatten()
                    .find(|node| !node.is_leader())
                    .expect("three nodes, one leader");
                self.isolation = Some(Isolation {
                    member: member.id(),
                    leader,
                    term,
                    at: now,
                    member_stats_at_isolation: member.stats().clone(),
                    member_stats_at_heal: None,
                });
                directives.push(Directive::Isolate(member.id()));
            }
            Some(isolation)
                if isolation.member_stats_at_heal.is_none() && now >= isolation.at + ISOLATION =>
            {
                let member = nodes[node_index(isolation.member)].expect("nothing crashes");
                isolation.member_stats_at_heal = Some(member.stats().clone());
                directives.push(Directive::Heal);
            }
            _ => {}
        }
        self.record_disruptions(now, nodes);
    }

    fn finish(&mut self, _now: Instant, nodes: &[Option<&RaftNode>]) {
        self.final_nodes = nodes
            .iter()
            .flatten()
            .map(|node| {
                let id = node.id();
                (id, node.term(), node.leader(), node.stats().clone())
            })
            .collect();
    }
}

fn node_index(id: NodeId) -> usize {
    usize::try_from(id.0).expect("small ids") - 1
}

/// One directed run; panics unless it passed every checker and did isolate and heal.
fn run(seed: u64, pre_vote: bool) -> (RunReport, IsolateOneFollower) {
    let mut options = SimulationOptions::new(seed, FaultPreset::None);
    options.duration = Duration::from_secs(6);
    let config = RaftConfig {
        pre_vote,
        ..RaftConfig::default()
    };
    let factory = raft_factory(config);
    let mut director = IsolateOneFollower::default();
    let properties = Model::RaftMajority.properties();
    let report = simulate_directed(&options, &properties, factory, &mut director);
    assert!(report.passed(), "{}", report.summary());
    assert_eq!(report.stats.directives, 2, "isolate, then heal");
    assert!(
        director
            .isolation
            .as_ref()
            .is_some_and(|i| i.member_stats_at_heal.is_some())
    );
    (report, director)
}

#[test]
fn a_rejoining_member_does_not_disturb_a_healthy_leader() {
    for seed in sweep::seeds(SEEDS) {
        let (_, director) = run(seed, true);
        let isolation = director.isolation.expect("checked by run");
        let at_isolation = &isolation.member_stats_at_isolation;
        let at_heal = isolation.member_stats_at_heal.as_ref().expect("checked");
        assert!(
            at_heal.pre_votes_started > at_isolation.pre_votes_started,
            "seed {seed}: the isolated member never even tried: {isolation:?}"
        );
        assert!(
            director.disruptions.is_empty(),
            "seed {seed}: the healthy majority was disturbed: {:#?}",
            director.disruptions
        );
        for (id, term, leader, stats) in &director.final_nodes {
            assert_eq!(*term, isolation.term, "seed {seed}: {id} changed term");
            assert_eq!(
                *leader,
                Some(isolation.leader),
                "seed {seed}: {id}'s leader"
            );
            if *id == isolation.member {
                assert_eq!(
                    stats.elections_started, at_isolation.elections_started,
                    "seed {seed}: the isolated member started an election"
                );
            }
        }
        println!(
            "seed {seed}: {} isolated in {} under leader {}, {} pre-votes lost, no election",
            isolation.member,
            isolation.term,
            isolation.leader,
            at_heal.pre_votes_started - at_isolation.pre_votes_started
        );
    }
}

#[test]
fn without_pre_vote_a_rejoining_member_forces_an_election() {
    for seed in sweep::seeds(SEEDS) {
        let (_, director) = run(seed, false);
        let isolation = director.isolation.expect("checked by run");
        let at_heal = isolation.member_stats_at_heal.as_ref().expect("checked");
        assert!(
            at_heal.elections_started > isolation.member_stats_at_isolation.elections_started,
            "seed {seed}: without pre-vote the isolated member must campaign"
        );
        assert!(
            !director.disruptions.is_empty(),
            "seed {seed}: without pre-vote the rejoining member must depose the leader"
        );
        let elections: u64 = director
            .final_nodes
            .iter()
            .map(|(_, _, _, stats)| stats.elections_started)
            .sum();
        println!(
            "seed {seed}: {} elections in all; first disruption {}",
            elections, director.disruptions[0]
        );
    }
}
