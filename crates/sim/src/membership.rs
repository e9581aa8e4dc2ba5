//! The `raft-membership` model: Raft whose configuration keeps changing under faults.
//!
//! Five simulated nodes, of which three found the group ([`RaftNode::open`] with each
//! other as peers) and two are spares ([`RaftNode::open_joining`]: members of nothing,
//! they never campaign until a change adds them). While the random faults of the run's
//! preset strike, a [`Director`], the [`MembershipDirector`], asks the leader for one
//! change at a time through [`Directive::Request`], cycling through what an operator
//! does: add a learner, promote it once it caught up, remove a voter (any voter, the
//! leader included, so that a leader regularly removes itself and steps down), add a
//! learner again (often a node removed earlier, with its stale log), and sometimes add a
//! voter directly. Every answer is counted ([`ChangeCounts`]); a refusal (a change still
//! pending, a learner lagging, a leader that has not committed in its term yet, no
//! leader at all) is simply retried later, and a request that gets no answer (its node
//! crashed) is given up after [`REQUEST_TIMEOUT`].
//!
//! The group never has fewer than three voters: a voter is removed only when there are
//! four. Near the end of the fault phase ([`RESTORE_BEFORE_END`]) the director stops
//! cycling and adds every node that is not a member as a learner, so that at the end of
//! the run all five nodes are members and the simulator's convergence check, which
//! compares every node's state, is meaningful for all of them. (The alternative,
//! comparing members only, would let a removed node's stale state go unchecked, and it
//! would need the simulator to know what a member is.)
//!
//! The model claims what `raft-majority` claims: linearizability, the session
//! guarantees, durability and convergence, plus Raft's cross-node invariants
//! ([`RaftObserver`](replikv_replication::single_leader::RaftObserver)) after every
//! event. The director draws its own randomness from a generator seeded by the run's
//! seed, so a run stays a pure function of its options.

use crate::checking::Properties;
use crate::director::{Directive, Director, DirectorReply};
use crate::node::NodeSetup;
use crate::options::SimulationOptions;
use crate::report::RunReport;
use crate::run::simulate_directed;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_core::kv::MembershipChange;
use replikv_core::replica::Replica;
use replikv_core::{Instant, NodeId, Reply, Request};
use replikv_replication::single_leader::{RaftConfig, RaftNode};
use std::time::Duration;

/// The nodes that found the group; the others join later.
pub const FOUNDING_NODES: u64 = 3;

/// How many nodes the model runs.
pub const MEMBERSHIP_MODEL_NODES: usize = 5;

/// A request without an answer after this long is given up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// The director stops cycling and makes every node a member this long before the end of
/// the fault phase.
pub const RESTORE_BEFORE_END: Duration = Duration::from_millis(1_500);

/// What the director asked for and what it got, over one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    pub requested: u64,
    /// Answered with the new configuration.
    pub succeeded: u64,
    /// Answered with an error (refused, redirected, or unknown outcome).
    pub failed: u64,
    /// Given up without an answer.
    pub unanswered: u64,
    /// Successful changes by kind.
    pub learners_added: u64,
    pub learners_promoted: u64,
    pub voters_added: u64,
    pub removed: u64,
    /// Successful removals of the node that led when it was asked.
    pub leaders_removed: u64,
}

/// Drives the configuration changes of a `raft-membership` run; see the module
/// documentation.
#[derive(Debug)]
pub struct MembershipDirector {
    random: ChaCha8Rng,
    /// From then on, the director only makes every node a member.
    restore_from: Instant,
    /// No new request before this time.
    next_at: Instant,
    /// The request in flight: its tag, change, the node asked, and when it is given up.
    waiting: Option<(u64, MembershipChange, NodeId, Instant)>,
    next_tag: u64,
    pub counts: ChangeCounts,
    /// Every node is a member at the end of the run (checked in [`Director::finish`]).
    pub all_members_at_end: bool,
}

impl MembershipDirector {
    #[must_use]
    pub fn new(options: &SimulationOptions) -> MembershipDirector {
        let restore_from = Instant::ZERO + options.duration.saturating_sub(RESTORE_BEFORE_END);
        MembershipDirector {
            random: ChaCha8Rng::seed_from_u64(options.seed ^ 0x6d65_6d62_6572_7321),
            restore_from,
            next_at: Instant::ZERO,
            waiting: None,
            next_tag: 1,
            counts: ChangeCounts::default(),
            all_members_at_end: false,
        }
    }

    /// The next change to ask `leader` for, if any.
    fn choose(
        &mut self,
        now: Instant,
        leader: &RaftNode,
        node_count: u64,
    ) -> Option<MembershipChange> {
        let membership = leader.membership();
        let outsiders: Vec<NodeId> = (1..=node_count)
            .map(NodeId)
            .filter(|node| !membership.contains(*node))
            .collect();
        if now >= self.restore_from {
            return outsiders.first().copied().map(MembershipChange::AddLearner);
        }
        if !membership.learners.is_empty() {
            let learner =
                membership.learners[self.random.random_range(0..membership.learners.len())];
            return Some(MembershipChange::PromoteLearner(learner));
        }
        if membership.voters.len() > FOUNDING_NODES as usize {
            let voter = membership.voters[self.random.random_range(0..membership.voters.len())];
            return Some(MembershipChange::Remove(voter));
        }
        let outsider = *outsiders.get(self.random.random_range(0..outsiders.len().max(1)))?;
        if self.random.random_range(0..5) == 0 {
            Some(MembershipChange::AddVoter(outsider))
        } else {
            Some(MembershipChange::AddLearner(outsider))
        }
    }
}

/// The running leader of the highest term, if any.
fn current_leader<'a>(nodes: &[Option<&'a RaftNode>]) -> Option<&'a RaftNode> {
    nodes
        .iter()
        .flatten()
        .filter(|node| node.is_leader())
        .max_by_key(|node| node.term())
        .copied()
}

impl Director<RaftNode> for MembershipDirector {
    fn after_event(
        &mut self,
        now: Instant,
        nodes: &[Option<&RaftNode>],
        directives: &mut Vec<Directive>,
    ) {
        if let Some((_, _, _, give_up_at)) = self.waiting {
            if now < give_up_at {
                return;
            }
            self.waiting = None;
            self.counts.unanswered += 1;
        }
        if now < self.next_at {
            return;
        }
        let Some(leader) = current_leader(nodes) else {
            self.next_at = now + Duration::from_millis(50);
            return;
        };
        let Some(change) = self.choose(now, leader, nodes.len() as u64) else {
            self.next_at = now + Duration::from_millis(100);
            return;
        };
        let tag = self.next_tag;
        self.next_tag += 1;
        self.counts.requested += 1;
        self.waiting = Some((tag, change, leader.id(), now + REQUEST_TIMEOUT));
        directives.push(Directive::Request {
            node: leader.id(),
            tag,
            request: Request::ChangeMembership { change },
        });
    }

    fn on_reply(&mut self, now: Instant, reply: DirectorReply) {
        let Some((tag, change, asked, _)) = self.waiting else {
            return; // an answer after the request was given up
        };
        if reply.tag != tag {
            return;
        }
        self.waiting = None;
        let pause_ms = self.random.random_range(20..300);
        self.next_at = now + Duration::from_millis(pause_ms);
        if !matches!(reply.reply, Reply::Membership { .. }) {
            self.counts.failed += 1;
            return;
        }
        self.counts.succeeded += 1;
        match change {
            MembershipChange::AddLearner(_) => self.counts.learners_added += 1,
            MembershipChange::PromoteLearner(_) => self.counts.learners_promoted += 1,
            MembershipChange::AddVoter(_) => self.counts.voters_added += 1,
            MembershipChange::Remove(node) => {
                self.counts.removed += 1;
                if node == asked {
                    self.counts.leaders_removed += 1;
                }
            }
        }
    }

    fn finish(&mut self, _now: Instant, nodes: &[Option<&RaftNode>]) {
        let Some(leader) = current_leader(nodes) else {
            return;
        };
        let membership = leader.membership();
        self.all_members_at_end =
            (1..=nodes.len() as u64).all(|node| membership.contains(NodeId(node)));
    }
}

/// Builds a node of the model: the founding nodes know each other, the others join.
pub fn membership_factory(
    config: RaftConfig,
) -> impl Fn(NodeSetup) -> replikv_core::error::Result<RaftNode> {
    move |setup: NodeSetup| {
        if setup.id.0 <= FOUNDING_NODES {
            let founders = (1..=FOUNDING_NODES).map(NodeId).collect();
            RaftNode::open(setup.id, founders, setup.disk, setup.seed, config.clone())
        } else {
            RaftNode::open_joining(setup.id, setup.disk, setup.seed, config.clone())
        }
    }
}

/// Runs the `raft-membership` model on `options` (already adjusted to five nodes) and
/// checks `properties`; returns the report and the director with its counts.
#[must_use]
pub fn simulate_membership(
    options: &SimulationOptions,
    properties: &Properties,
) -> (RunReport, MembershipDirector) {
    let config = RaftConfig {
        store_sync_entries: crate::models::MODEL_STORE_SYNC_ENTRIES,
        store_sync_entries_max: crate::models::MODEL_STORE_SYNC_ENTRIES,
        ..RaftConfig::default()
    };
    simulate_membership_with(options, properties, config)
}

/// [`simulate_membership`] with another Raft configuration (a compacting one makes
/// learners catch up by snapshots, which carry the configuration).
#[must_use]
pub fn simulate_membership_with(
    options: &SimulationOptions,
    properties: &Properties,
    config: RaftConfig,
) -> (RunReport, MembershipDirector) {
    let mut director = MembershipDirector::new(options);
    let factory = membership_factory(config);
    let report = simulate_directed(options, properties, factory, &mut director);
    (report, director)
}
