//! Learners and membership change: who votes, who only listens, and how that changes.
//!
//! ## The configuration
//!
//! A group's configuration ([`Membership`]) is its **voters** (their votes elect leaders,
//! their durable copies commit entries) and its **learners** (they receive the log and
//! snapshots like any follower, serve follower and session reads, and never vote, never
//! campaign, never count). Every quorum in this crate is a quorum of the current
//! configuration's voters: elections and pre-votes, the commit index, the commit mode's
//! acknowledgement point, ReadIndex rounds, leases and check-quorum. A node that is not
//! a voter of its own current configuration (a learner, a node removed, a node not yet
//! added) never campaigns.
//!
//! ## Single-server changes
//!
//! The configuration changes one node at a time, through the log (Ongaro's thesis,
//! §4.1). A change is a [`Command::Membership`] entry carrying the *whole* new
//! configuration, and it takes effect on a node as soon as the entry is in that node's
//! log, committed or not: the leader starts counting the new voter (or stops counting
//! the removed one) the moment it appends the entry. Adding or removing one voter at a
//! time is what makes that safe without joint consensus: any majority of the old voters
//! and any majority of the new ones share at least one node, so two leaders of one term
//! can never be elected by disjoint majorities, whichever configuration each believes in.
//!
//! Two rules keep it one change at a time:
//!
//! - a leader refuses a change while an earlier configuration entry is not committed
//!   (`Unavailable`: retry later);
//! - a leader refuses any change until it has committed an entry of its own term (its
//!   no-op). That is the fix Ongaro published in 2015 for a bug of single-server changes
//!   as first described: a leader of a new term could append a change on top of a
//!   configuration that an *earlier* leader had appended but not committed, and the two
//!   uncommitted changes, each one node away from the committed configuration but two
//!   nodes away from each other, could commit conflicting entries with disjoint
//!   majorities. Once the new leader commits its no-op, every earlier configuration in
//!   its log is committed too, and the changes form one chain again.
//!
//! Because a configuration takes effect uncommitted, it can also be taken back: a
//! follower whose log suffix is truncated (it held entries of a deposed leader) falls
//! back to the configuration of the latest configuration entry that remains. The node
//! keeps the configuration entries of its log that its store has not applied yet (at
//! most a few: one uncommitted, plus committed ones awaiting apply), and below them the
//! store's configuration ([`Store::membership`](replikv_storage::store::Store::membership)),
//! which the store records with its applied position in one transaction and which a
//! snapshot carries. So the current configuration is: the latest configuration entry in
//! the log, else the store's, else the bootstrap configuration given to
//! [`RaftNode::open`] (a node of the founding group) or none at all
//! ([`RaftNode::open_joining`]: a node that waits to be added, and never bootstraps a
//! group of its own). Truncation can only remove entries above the store's applied
//! position, so the fallback is always at hand. (The brief suggested caching the latest
//! configuration and the one before; the list of unapplied entries is the same idea
//! made exact, with no case where a second truncation finds the cache empty.)
//!
//! ## Learners first
//!
//! A new voter that starts empty counts at once: in a group of three, adding a fourth
//! that holds nothing makes the commit quorum three of four, and one slow node then
//! stalls every write until the newcomer caught up. So the normal way to add a voter is
//! [`MembershipChange::AddLearner`], which costs the quorum nothing while the learner
//! catches up by appends or by a snapshot, then [`MembershipChange::PromoteLearner`],
//! which the leader refuses (`Unavailable`, retryable) while the learner lags by more
//! than `RaftConfig::promotion_lag_entries_max` entries. [`MembershipChange::AddVoter`]
//! exists for tests and for an operator who knows the node is current: it is safe, only
//! not kind to availability.
//!
//! A change is also refused when the new number of voters would make the group's commit
//! mode invalid (`semi-sync k` needs more than `k` voters), and when it would remove the
//! last voter. A change already in effect (a retry) succeeds at once without an entry,
//! which makes retries of a request whose answer was lost harmless. Successful changes
//! are answered with [`Reply::Membership`] once their entry is committed.
//!
//! ## Removing the leader
//!
//! A leader may remove itself (§4.2.2). From the moment its removal entry is in its log
//! it manages a group it is not part of: it keeps replicating and committing, but does
//! not count itself in any quorum. Once the entry is committed it steps down; not being
//! a member, it never campaigns again, and the remaining voters elect a leader when
//! their election timeouts expire. A removed node that never learned of its removal keeps
//! timing out and campaigning; the voters ignore it while they hear from their leader
//! (leader stickiness), its pre-vote never gets a majority, and so it cannot disrupt the
//! group (the script tests and the simulator check it).

use super::command::Command;
use super::leader::Progress;
use super::node::{RaftNode, Role};
use replikv_core::error::{Error, Result};
use replikv_core::kv::MembershipChange;
use replikv_core::{Instant, LogIndex, LogPosition, NodeId, Reply, RequestId};
use replikv_storage::log::Entry;
use replikv_storage::store::{MEMBERS_MAX, Membership};

/// A change request waiting for its configuration entry to commit.
#[derive(Clone, Debug)]
pub(super) struct MembershipReply {
    pub index: LogIndex,
    pub request_id: RequestId,
    pub membership: Membership,
}

impl RaftNode {
    /// The configuration in force on this node: see the module documentation. Empty
    /// (no voters) on a node that joins and has not been added yet.
    #[must_use]
    pub fn membership(&self) -> &Membership {
        self.log_memberships
            .back()
            .map(|(_, membership)| membership)
            .or(self.store.membership())
            .unwrap_or(&self.bootstrap)
    }

    /// The index of a configuration entry in this node's log that is not yet known to be
    /// committed, if any: a change in progress.
    #[must_use]
    pub fn pending_membership_change(&self) -> Option<LogIndex> {
        self.log_memberships
            .back()
            .map(|(index, _)| *index)
            .filter(|index| *index > self.commit)
    }

    /// Whether `node` is a voter of the current configuration.
    pub(super) fn is_voter(&self, node: NodeId) -> bool {
        self.membership().is_voter(node)
    }

    /// The voters other than this node, in id order.
    pub(super) fn voter_peers(&self) -> Vec<NodeId> {
        let id = self.id;
        self.membership()
            .voters
            .iter()
            .copied()
            .filter(|voter| *voter != id)
            .collect()
    }

    /// Every member other than this node (voters and learners): whom a leader replicates to.
    pub(super) fn replication_peers(&self) -> Vec<NodeId> {
        let id = self.id;
        self.membership()
            .members()
            .filter(|member| *member != id)
            .collect()
    }

    /// The leader's per-voter view: for each voter of the current configuration, `own`
    /// for this node and `value(progress)` for the others (`missing` if the leader has no
    /// progress for it, which its own bookkeeping never allows). Empty unless leading.
    pub(super) fn per_voter<T: Copy>(
        &self,
        own: T,
        missing: T,
        value: impl Fn(&Progress) -> T,
    ) -> Vec<T> {
        let Role::Leader(state) = &self.role else {
            return Vec::new();
        };
        self.membership()
            .voters
            .iter()
            .map(|voter| {
                if *voter == self.id {
                    own
                } else {
                    state.progress.get(voter).map_or(missing, &value)
                }
            })
            .collect()
    }

    /// The `quorum`-th highest of `values` (a value a majority of voters reached), or
    /// `floor` if there are fewer voters than a quorum.
    pub(super) fn quorum_value<T: Ord + Copy>(&self, mut values: Vec<T>, floor: T) -> T {
        values.sort_unstable_by(|a, b| b.cmp(a));
        values.get(self.quorum() - 1).copied().unwrap_or(floor)
    }

    /// At open: the configuration entries of the log above the store's applied position.
    pub(super) fn load_log_memberships(&mut self) -> Result<()> {
        self.log_memberships.clear();
        let last = self.log.last_position().index;
        let mut next = self.store.applied_position().index.next();
        while next <= last {
            let batch = self
                .log
                .read_range(next, 256, self.config.append_size_max_bytes)?;
            let Some(end) = batch.last().map(|entry| entry.position.index) else {
                break;
            };
            self.note_appended_memberships(&batch)?;
            next = end.next();
        }
        Ok(())
    }

    /// Entries were appended to the log: the configuration entries among them take
    /// effect now (and on a leader, its followers' progress follows).
    pub(super) fn note_appended_memberships(&mut self, entries: &[Entry]) -> Result<()> {
        if !entries
            .iter()
            .any(|entry| Command::is_membership(&entry.payload))
        {
            return Ok(());
        }
        for entry in entries {
            if !Command::is_membership(&entry.payload) {
                continue;
            }
            let Command::Membership { membership, .. } = Command::decode(&entry.payload)? else {
                unreachable!("the tag says configuration");
            };
            self.note_appended_membership(entry.position.index, membership);
        }
        Ok(())
    }

    /// The configuration entry at `index` was appended to this node's log: it is in
    /// force from now on (single-server changes take effect when appended).
    fn note_appended_membership(&mut self, index: LogIndex, membership: Membership) {
        assert!(
            self.log_memberships
                .back()
                .is_none_or(|(last, _)| *last < index),
            "configuration entries in log order"
        );
        let changed = *self.membership() != membership;
        self.log_memberships.push_back((index, membership));
        if changed {
            self.membership_changed();
        }
    }

    /// The log lost every entry after `after`: configurations they made are taken back.
    pub(super) fn note_truncated_memberships(&mut self, after: LogIndex) {
        let before = self.membership().clone();
        while self
            .log_memberships
            .back()
            .is_some_and(|(index, _)| *index > after)
        {
            self.log_memberships.pop_back();
            self.stats.memberships_reverted += 1;
        }
        if *self.membership() != before {
            self.membership_changed();
        }
    }

    /// The store applied entries or installed a snapshot: configuration entries at or
    /// below its applied position are the store's now (a snapshot reset with nothing
    /// after it leaves none).
    pub(super) fn note_applied_memberships(&mut self) {
        let applied = self.store.applied_position().index;
        while self
            .log_memberships
            .front()
            .is_some_and(|(index, _)| *index <= applied)
        {
            self.log_memberships.pop_front();
        }
    }

    /// The configuration in force changed: a leader adjusts whom it replicates to.
    fn membership_changed(&mut self) {
        self.stats.memberships_changed += 1;
        let peers = self.replication_peers();
        // A new member is probed with the last entry (the configuration entry that added
        // it, on a leader): at once, not at the next heartbeat.
        let next = self.log.last_position().index.max(LogIndex(1));
        let Role::Leader(state) = &mut self.role else {
            return;
        };
        state
            .progress
            .retain(|peer, _| peers.binary_search(peer).is_ok());
        state
            .snapshots
            .retain(|peer, _| peers.binary_search(peer).is_ok());
        for peer in peers {
            state
                .progress
                .entry(peer)
                .or_insert_with(|| Progress::new(next));
        }
        state.replicate_needed = true;
    }

    /// A client asked for a configuration change (only the leader gets here).
    pub(super) fn handle_membership_change(
        &mut self,
        request_id: RequestId,
        change: MembershipChange,
    ) -> Result<()> {
        let next = match self.check_membership_change(change) {
            Ok(Some(next)) => next,
            Ok(None) => {
                // Already in effect: a retry, or a change nobody needs.
                let membership = self.membership().clone();
                let position = self
                    .store
                    .applied_position()
                    .max(self.membership_position());
                self.reply(request_id, membership_reply(membership, position));
                return Ok(());
            }
            Err(error) => {
                self.stats.membership_changes_refused += 1;
                self.reply(request_id, Reply::Failed(error));
                return Ok(());
            }
        };
        let command = Command::Membership {
            origin: self.id,
            request_id,
            membership: next.clone(),
        };
        let Some(index) = self.append_for_request(request_id, &command)? else {
            return Ok(());
        };
        self.stats.membership_changes_proposed += 1;
        self.note_appended_membership(index, next.clone());
        let state = self.leader_state();
        state.membership_replies.push(MembershipReply {
            index,
            request_id,
            membership: next,
        });
        state.replicate_needed = true;
        Ok(())
    }

    /// The position of the latest configuration entry this node knows of (zero if the
    /// configuration is the bootstrap one or came with the store).
    fn membership_position(&self) -> LogPosition {
        self.log_memberships
            .back()
            .and_then(|(index, _)| {
                let term = self.log.term_at(*index)?;
                Some(LogPosition {
                    term,
                    index: *index,
                })
            })
            .unwrap_or(LogPosition::ZERO)
    }

    /// The configuration `change` leads to; `None` if it is already in effect; an error
    /// (retryable `Unavailable`, or `InvalidInput`) if the leader refuses it now.
    fn check_membership_change(&mut self, change: MembershipChange) -> Result<Option<Membership>> {
        let noop_index = self.leader_state().noop_index;
        if self.commit < noop_index {
            return Err(Error::Unavailable(
                "the leader has not committed an entry of its term yet".into(),
            ));
        }
        if let Some(index) = self.pending_membership_change() {
            return Err(Error::Unavailable(format!(
                "the configuration change at {index} is not committed yet"
            )));
        }
        let node = change.node();
        if node == NodeId::NONE {
            return Err(Error::InvalidInput("node id 0 is reserved".into()));
        }
        let current = self.membership().clone();
        let mut voters = current.voters.clone();
        let mut learners = current.learners.clone();
        match change {
            MembershipChange::AddLearner(_) if current.is_learner(node) => return Ok(None),
            MembershipChange::AddLearner(_) if current.is_voter(node) => {
                return Err(Error::InvalidInput(format!(
                    "{node} is a voter; remove it first to make it a learner"
                )));
            }
            MembershipChange::AddLearner(_) => learners.push(node),
            MembershipChange::AddVoter(_) | MembershipChange::PromoteLearner(_)
                if current.is_voter(node) =>
            {
                return Ok(None);
            }
            MembershipChange::PromoteLearner(_) if !current.is_learner(node) => {
                return Err(Error::InvalidInput(format!("{node} is not a learner")));
            }
            MembershipChange::PromoteLearner(_) => {
                self.check_caught_up(node)?;
                learners.retain(|learner| *learner != node);
                voters.push(node);
            }
            MembershipChange::AddVoter(_) => {
                learners.retain(|learner| *learner != node);
                voters.push(node);
            }
            MembershipChange::Remove(_) if !current.contains(node) => return Ok(None),
            MembershipChange::Remove(_) => {
                voters.retain(|voter| *voter != node);
                learners.retain(|learner| *learner != node);
            }
        }
        if voters.len() + learners.len() > MEMBERS_MAX {
            return Err(Error::InvalidInput(format!(
                "a group has at most {MEMBERS_MAX} members"
            )));
        }
        if voters.is_empty() {
            return Err(Error::InvalidInput("cannot remove the last voter".into()));
        }
        self.config
            .commit_mode
            .validate(voters.len())
            .map_err(|error| {
                let reason = match error {
                    Error::InvalidInput(text) => text,
                    other => other.to_string(),
                };
                Error::InvalidInput(format!("change {change} refused: {reason}"))
            })?;
        Membership::new(voters, learners).map(Some)
    }

    /// Refuses (retryably) to promote a learner that lags too far behind.
    fn check_caught_up(&mut self, learner: NodeId) -> Result<()> {
        let last = self.log.last_position().index;
        let lag_max = self.config.promotion_lag_entries_max;
        let matched = self
            .leader_state()
            .progress
            .get(&learner)
            .map_or(LogIndex::ZERO, |progress| progress.matched);
        let lag = last.0.saturating_sub(matched.0);
        if lag > lag_max {
            return Err(Error::Unavailable(format!(
                "learner {learner} lags {lag} entries behind (at most {lag_max} to be promoted)"
            )));
        }
        Ok(())
    }

    /// Leader: answers the change requests whose entries are committed and applied.
    pub(super) fn answer_membership_changes(&mut self) {
        let done = self.commit.min(self.store.applied_position().index);
        let term = self.term;
        let Role::Leader(state) = &mut self.role else {
            return;
        };
        let (ready, waiting): (Vec<MembershipReply>, Vec<MembershipReply>) = state
            .membership_replies
            .drain(..)
            .partition(|reply| reply.index <= done);
        state.membership_replies = waiting;
        for reply in ready {
            let position = LogPosition {
                term,
                index: reply.index,
            };
            self.reply(
                reply.request_id,
                membership_reply(reply.membership, position),
            );
        }
    }

    /// Leader: once the entry that removed this node is committed, it steps down (it
    /// kept leading meanwhile without counting itself).
    pub(super) fn step_down_if_removed(&mut self, now: Instant) -> Result<()> {
        if !self.is_leader() || self.is_voter(self.id) {
            return Ok(());
        }
        let removal_committed = self
            .log_memberships
            .back()
            .is_none_or(|(index, _)| *index <= self.commit);
        if removal_committed {
            // Answer the change (and everything else committed) before stepping down,
            // and tell the voters the commit index once more.
            self.apply_committed()?;
            self.answer_acknowledged();
            self.answer_membership_changes();
            for peer in self.replication_peers() {
                self.send_append(peer, true)?;
            }
            self.stats.removed_leader_step_downs += 1;
            let term = self.term;
            self.become_follower(now, term, None)?;
        }
        Ok(())
    }
}

/// The answer to a configuration request: `membership`, made by the entry at `position`.
fn membership_reply(membership: Membership, position: LogPosition) -> Reply {
    Reply::Membership {
        voters: membership.voters,
        learners: membership.learners,
        position,
    }
}
