//! The fault schedule of Raft's Figure 8, as a [`Director`] for a 3-node cluster.
//!
//! Committing an entry of an older term by counting replicas is unsafe only in a precise
//! story, which random faults almost never tell (1,000 seeds of the `everything`
//! preset, on five nodes with one-entry appends, did not): two leaders in a row must
//! each be cut off with entries nobody else has, and the third leader must be stopped
//! right after it commits. The director tells the story, aimed at whichever nodes play
//! each part; it knows nothing of the bug:
//!
//! 1. once a leader A is established, isolate A: clients keep writing to it, so A's log
//!    gains entries of its term that nobody else holds; A steps down (check-quorum);
//! 2. as soon as another node B leads a newer term, isolate B instead (A rejoins): B's
//!    log ends with its no-op, which nobody else holds;
//! 3. A, whose log is the longest, wins the next term with the third node C's vote and
//!    repairs C's log. As soon as A's commit index moves in that term, crash A and heal
//!    B. B's last entry has a newer term than anything C holds, so B can win next.
//!
//! A correct A commits nothing before its own no-op reaches C, so when it crashes C
//! holds an entry of A's newest term and B cannot win with a lower last term: nothing
//! committed is lost, and the run passes. An A that commits the older entries it is
//! sending C as soon as C holds them (the Figure 8 mistake) crashes with those entries
//! committed; B wins and overwrites them, which the run-wide observer or the checkers
//! catch. One-entry appends (`append_entries_max = 1`) keep A from shipping its old
//! entries and its no-op in the same append, as a leader far behind on a follower would.

use replikv_core::replica::Replica;
use replikv_core::{Instant, LogIndex, NodeId, Term};
use replikv_replication::single_leader::RaftNode;
use replikv_sim::failover::established_leader;
use replikv_sim::{Directive, Director};
use std::time::Duration;

/// Where the story is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    WaitForLeader,
    FirstIsolated {
        first: NodeId,
        term: Term,
    },
    SecondIsolated {
        first: NodeId,
        second_term: Term,
        /// The first node's commit index when it started leading again.
        commit_at_leading: Option<LogIndex>,
    },
    Done,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Figure8 {
    start_after: Duration,
    step: Step,
}

impl Figure8 {
    pub fn new(start_after: Duration) -> Figure8 {
        Figure8 {
            start_after,
            step: Step::WaitForLeader,
        }
    }

    /// Whether the story reached its end (the last crash).
    pub fn told(&self) -> bool {
        self.step == Step::Done
    }
}

impl Director<RaftNode> for Figure8 {
    fn after_event(
        &mut self,
        now: Instant,
        nodes: &[Option<&RaftNode>],
        directives: &mut Vec<Directive>,
    ) {
        let leader_above = |term: Term| {
            nodes
                .iter()
                .flatten()
                .find(|node| node.is_leader() && node.term() > term)
        };
        self.step = match self.step {
            Step::WaitForLeader if now >= Instant::ZERO + self.start_after => {
                let Some((first, term)) = established_leader(nodes) else {
                    return;
                };
                directives.push(Directive::Isolate(first));
                Step::FirstIsolated { first, term }
            }
            Step::FirstIsolated { first, term } => {
                let Some(second) = leader_above(term).filter(|node| node.id() != first) else {
                    return;
                };
                directives.push(Directive::Isolate(second.id()));
                Step::SecondIsolated {
                    first,
                    second_term: second.term(),
                    commit_at_leading: None,
                }
            }
            Step::SecondIsolated {
                first,
                second_term,
                commit_at_leading,
            } => {
                let Some(node) = leader_above(second_term).filter(|node| node.id() == first) else {
                    return;
                };
                match commit_at_leading {
                    None => Step::SecondIsolated {
                        first,
                        second_term,
                        commit_at_leading: Some(node.commit_index()),
                    },
                    Some(commit) if node.commit_index() > commit => {
                        directives.push(Directive::Crash(first));
                        directives.push(Directive::Heal);
                        Step::Done
                    }
                    Some(_) => return,
                }
            }
            step => step,
        };
    }
}
