//! Replication lag and positions, for the server's metrics and status page.
//!
//! An operator watching a single-leader group wants to know, per follower, how far behind
//! the leader it is — in entries (the leader's last index minus the highest index the
//! follower acknowledged as durable and matching) and in time (since the leader last heard
//! any answer from it: a follower that stopped answering shows a growing silence long
//! before its entry lag means anything). Only the leader knows this; every node knows its
//! own applied and commit positions. [`RaftNode::replication_status`] gathers both; the
//! leader's `now` is passed in, like every other time in this crate.
//!
//! The status also names the configuration in force on this node (voters, learners, a
//! change not yet committed) and whether the commit mode is lossy *with the current
//! voters*: lossiness depends on the number of voters, so a membership change can turn
//! a safe mode lossy or back. Learners appear among the leader's followers, flagged, with
//! their lag: that is how an operator sees when a learner is ready to be promoted.

use super::node::{RaftNode, Role};
use replikv_core::{Instant, LogIndex, LogPosition, NodeId, Term};
use std::time::Duration;

/// What the leader knows of one follower's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerLag {
    pub follower: NodeId,
    /// Whether the follower is a voter (else a learner) of the leader's configuration.
    pub voter: bool,
    /// The highest index known durable on the follower and matching the leader's log.
    pub matched: LogIndex,
    /// The leader's last index minus `matched`.
    pub lag_entries: u64,
    /// Time since the leader last heard an answer from it in this term; `None` if it has
    /// not answered since this node became leader.
    pub since_last_ack: Option<Duration>,
}

/// One node's replication positions, and on the leader its followers' lag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationStatus {
    pub term: Term,
    /// The last entry of the local log.
    pub last: LogPosition,
    /// The highest index known committed.
    pub commit: LogIndex,
    /// The last entry applied to the local store.
    pub applied: LogPosition,
    /// Per follower, in id order; `None` unless this node leads.
    pub followers: Option<Vec<FollowerLag>>,
    /// The configuration in force on this node.
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// The index of a configuration entry not yet known committed, if any.
    pub pending_membership_change: Option<LogIndex>,
    /// Whether the commit mode can lose acknowledged writes with the current voters.
    pub lossy: bool,
}

impl RaftNode {
    /// This node's positions and, on the leader, every follower's lag at `now`.
    #[must_use]
    pub fn replication_status(&self, now: Instant) -> ReplicationStatus {
        let last = self.log.last_position();
        let followers = match &self.role {
            Role::Leader(state) => Some(
                state
                    .progress
                    .iter()
                    .map(|(follower, progress)| FollowerLag {
                        follower: *follower,
                        voter: self.is_voter(*follower),
                        matched: progress.matched,
                        lag_entries: last.index.0.saturating_sub(progress.matched.0),
                        since_last_ack: progress
                            .last_ack
                            .map(|ack| now.saturating_duration_since(ack)),
                    })
                    .collect(),
            ),
            _ => None,
        };
        ReplicationStatus {
            term: self.term,
            last,
            commit: self.commit,
            applied: self.store.applied_position(),
            followers,
            voters: self.membership().voters.clone(),
            learners: self.membership().learners.clone(),
            pending_membership_change: self.pending_membership_change(),
            lossy: self.commit_mode_is_lossy(),
        }
    }
}
