//! The leader's own state: per-follower progress, heartbeats, check-quorum, and what it
//! owes its clients.
//!
//! A new leader appends a no-op entry of its term at once: entries of earlier terms can
//! only be committed indirectly, by committing an entry of the current term after them
//! (Raft §5.4.2), and the no-op gives every new term such an entry without waiting for a
//! client. It is also the floor of every ReadIndex read and lease read (see `reads.rs`).
//!
//! Every heartbeat interval the leader sends each follower an append: the next entries if
//! its pipeline has room, else an empty one. If a follower made no progress since the
//! previous heartbeat while entries beyond its acknowledged index were sent, those appends
//! are presumed lost and its pipeline restarts from its last acknowledged index.
//!
//! Check-quorum: every maximum election timeout the leader counts the followers it heard
//! from since the previous check; without a majority it steps down. A leader cut off from
//! its cluster therefore stops serving within a bounded time, and its followers, who
//! refuse votes while they hear from their leader, are not disturbed by a peer that merely
//! lost touch.
//!
//! Confirmation rounds (the `read_sequence` of appends) serve ReadIndex and leases: the
//! leader remembers when each recent round started, and a round a majority confirmed
//! extends its lease (`reads.rs`). While lease reads keep arriving, each heartbeat starts
//! a fresh round, so the lease stays warm.
//!
//! A leader that steps down answers every pending proposal with
//! [`Error::Indeterminate`]: the entry may still be committed by the next leader. Pending
//! reads fail with [`Error::NotLeader`]: a read that was not served had no effect.

use super::leases::LeaseTimer;
use super::message::Command;
use super::node::{RaftNode, Role};
use replikv_core::error::{Error, Result};
use replikv_core::{Instant, Key, LogIndex, NodeId, Reply, RequestId};
use replikv_storage::log::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// What the leader knows of one follower.
#[derive(Clone, Debug)]
pub(super) struct Progress {
    /// The next index to send.
    pub next: LogIndex,
    /// The highest index known durable on the follower and matching the leader's log.
    pub matched: LogIndex,
    /// The last index of each append with entries sent and not yet acknowledged, oldest
    /// first; never longer than `inflight_appends_max`. An acknowledgement frees every
    /// append it covers, whatever order the answers arrive in (a counter freed one slot
    /// per raise of `matched` and leaked a slot per reordered answer).
    pub inflight: VecDeque<LogIndex>,
    /// Whether the follower acknowledged anything since the previous heartbeat.
    pub acked_since_heartbeat: bool,
    /// Whether the follower answered anything since the previous check-quorum.
    pub recently_active: bool,
    /// The highest ReadIndex round the follower confirmed.
    pub read_sequence: u64,
    /// When the leader last heard an answer from it in this term (replication lag;
    /// `semi-sync first k` prefers followers heard from recently).
    pub last_ack: Option<Instant>,
    /// The follower answered `SnapshotNeeded`: only a snapshot can repair its log.
    pub snapshot_needed: bool,
    /// Where a stalled pipeline restarts: the index after the follower's acknowledged
    /// one, or, until it acknowledged anything this term, the last probe it justified
    /// (this term's no-op, or a rejection's hint). Restarting a never-acknowledged
    /// follower from index 1 would take it for an empty one and send it a snapshot.
    pub resend_from: LogIndex,
}

/// A linearizable read waiting for its confirmation round and for the apply index.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    pub request_id: RequestId,
    pub key: super::reads::ReadKey,
    /// The store must have applied at least this index before the read is served.
    pub read_index: LogIndex,
    /// The confirmation round; `None` until the next flush starts one.
    pub sequence: Option<u64>,
}

/// The state a node holds only while it leads.
#[derive(Debug)]
pub(crate) struct LeaderState {
    pub(super) progress: BTreeMap<NodeId, Progress>,
    pub(super) heartbeat_deadline: Instant,
    pub(super) check_quorum_deadline: Instant,
    /// The index of this term's no-op entry.
    pub(super) noop_index: LogIndex,
    /// Client writes proposed in this term, by log index.
    pub(super) proposals: BTreeMap<LogIndex, RequestId>,
    /// The commit mode's acknowledgement point (see `commit.rs`): proposals at or below
    /// it are answered once applied. Never decreases within the term.
    pub(super) acknowledged: LogIndex,
    /// Outcomes of proposals applied but not yet acknowledged (`all` mode applies the
    /// majority-committed entries before every voter holds them), by log index, with how
    /// many answers each owes (a retry may have joined it).
    pub(super) unacknowledged_replies: BTreeMap<LogIndex, (RequestId, Reply, usize)>,
    /// The same proposals by request id, so that a retry arriving while its request is
    /// pending joins it instead of being proposed again.
    pub(super) proposed: BTreeMap<RequestId, LogIndex>,
    /// Retries that joined a pending proposal: how many extra answers each index owes.
    pub(super) joined: BTreeMap<LogIndex, usize>,
    /// This leader's clock for every held lease (see `leases.rs`).
    pub(super) lease_timers: BTreeMap<Key, LeaseTimer>,
    /// The latest ReadIndex confirmation round started.
    pub(super) read_sequence: u64,
    /// ReadIndex reads waiting, in arrival order. Ordered by read index (the commit index
    /// only grows within a term) and by round (a flush gives every read without one the
    /// newest round, and reads without a round are therefore the tail): so the reads
    /// ready to serve are always a prefix, and the reads needing a round a suffix.
    pub(super) reads: VecDeque<PendingRead>,
    /// New entries were appended since the last broadcast.
    pub(super) replicate_needed: bool,
    /// The snapshot transfers in progress, at most one per follower (see `snapshot.rs`).
    pub(super) snapshots: BTreeMap<NodeId, super::snapshot::SnapshotTransfer>,
    /// The lease (see `reads.rs`): lease reads are served locally before this instant.
    pub(super) lease_until: Option<Instant>,
    /// When recent confirmation rounds started, by sequence, oldest first; bounded.
    pub(super) round_started: VecDeque<(u64, Instant)>,
    /// Lease reads arrived since the last round started: renew with the next heartbeat.
    pub(super) lease_renewal_wanted: bool,
    /// The leadership transfer in progress, if any (see `transfer.rs`).
    pub(super) transfer: Option<super::transfer::Transfer>,
    /// This leader sent a TimeoutNow in its term: it holds no lease any more, and
    /// confirmed rounds do not extend it (the lease argument in `transfer.rs`).
    pub(super) lease_renounced: bool,
    /// Configuration changes waiting for their entry to commit (see `membership.rs`).
    pub(super) membership_replies: Vec<super::membership::MembershipReply>,
}

impl Progress {
    /// A follower the leader knows nothing of yet: probe it from `next`.
    pub(super) fn new(next: LogIndex) -> Progress {
        Progress {
            next,
            matched: LogIndex::ZERO,
            inflight: VecDeque::new(),
            acked_since_heartbeat: false,
            recently_active: true,
            read_sequence: 0,
            last_ack: None,
            snapshot_needed: false,
            resend_from: next,
        }
    }
}

impl LeaderState {
    /// Client requests this leader owes an answer: proposals, joined retries, reads.
    pub(super) fn pending_requests(&self) -> usize {
        let unacknowledged: usize = self.unacknowledged_replies.values().map(|r| r.2).sum();
        self.proposals.len()
            + self.joined.values().sum::<usize>()
            + self.reads.len()
            + unacknowledged
            + self.membership_replies.len()
    }

    /// When the leader next needs a tick.
    pub(super) fn next_deadline(&self) -> Instant {
        self.heartbeat_deadline.min(self.check_quorum_deadline)
    }
}

impl RaftNode {
    pub(super) fn become_leader(&mut self, now: Instant) -> Result<()> {
        assert!(matches!(self.role, Role::Candidate { .. }));
        assert_eq!(self.voted_for, Some(self.id));
        let last = self.log.last_position().index;
        let noop_index = last.next();
        let progress = self
            .replication_peers()
            .into_iter()
            .map(|peer| (peer, Progress::new(noop_index)))
            .collect();
        // The no-op goes into the log before the role changes: if the append fails, this
        // node never was a leader without its term's first entry.
        let entry = Entry {
            position: replikv_core::LogPosition {
                term: self.term,
                index: noop_index,
            },
            payload: Command::Noop.encode(),
        };
        self.log.append(&[entry])?;
        let check_quorum_ms = self.config.election_timeout_ms_max;
        self.role = Role::Leader(Box::new(LeaderState {
            progress,
            heartbeat_deadline: now + Duration::from_millis(self.config.heartbeat_interval_ms),
            check_quorum_deadline: now + Duration::from_millis(check_quorum_ms),
            noop_index,
            proposals: BTreeMap::new(),
            acknowledged: self.commit,
            unacknowledged_replies: BTreeMap::new(),
            proposed: BTreeMap::new(),
            joined: BTreeMap::new(),
            lease_timers: BTreeMap::new(),
            read_sequence: 0,
            reads: VecDeque::new(),
            replicate_needed: true,
            snapshots: BTreeMap::new(),
            lease_until: None,
            round_started: VecDeque::new(),
            lease_renewal_wanted: false,
            transfer: None,
            lease_renounced: false,
            membership_replies: Vec::new(),
        }));
        self.election_deadline = None;
        self.stats.leaderships_won += 1;
        // Leading, its own log is the history: nothing to repair any more.
        self.snapshot_needed = false;
        self.divergence_after = None;
        self.restart_lease_timers(now)?;
        for peer in self.replication_peers() {
            self.send_append(peer, true)?;
        }
        Ok(())
    }

    pub(super) fn leader_state(&mut self) -> &mut LeaderState {
        match &mut self.role {
            Role::Leader(state) => state,
            _ => panic!("not the leader"),
        }
    }

    /// Heartbeats and check-quorum.
    pub(super) fn leader_tick(&mut self, now: Instant) -> Result<()> {
        let heartbeat = Duration::from_millis(self.config.heartbeat_interval_ms);
        let check_quorum = Duration::from_millis(self.config.election_timeout_ms_max);
        self.step_down_if_removed(now)?;
        if !self.is_leader() {
            return Ok(());
        }
        let quorum = self.quorum();
        let active = self
            .per_voter(true, false, |p| p.recently_active)
            .into_iter()
            .filter(|active| *active)
            .count();
        let state = self.leader_state();
        if now >= state.check_quorum_deadline {
            if active < quorum {
                self.stats.check_quorum_step_downs += 1;
                let term = self.term;
                return self.become_follower(now, term, None);
            }
            for progress in state.progress.values_mut() {
                progress.recently_active = false;
            }
            state.check_quorum_deadline = now + check_quorum;
        }
        if now >= state.heartbeat_deadline {
            state.heartbeat_deadline = now + heartbeat;
            if std::mem::take(&mut state.lease_renewal_wanted) {
                state.start_round(now);
            }
            for progress in state.progress.values_mut() {
                // Entries sent beyond what the follower acknowledged, and no progress
                // for a whole interval: presume them lost (the in-flight queue can be
                // wrong after losses, the next index cannot).
                if !progress.acked_since_heartbeat && progress.next > progress.resend_from {
                    progress.next = progress.resend_from;
                    progress.inflight.clear();
                }
                progress.acked_since_heartbeat = false;
            }
            for peer in self.replication_peers() {
                self.send_append(peer, true)?;
            }
        }
        self.expire_leases(now)
    }

    /// End of a batch on the leader: its own entries may have become durable (commit),
    /// new entries go out, and pending reads get a confirmation round.
    pub(super) fn leader_flush(&mut self, now: Instant) -> Result<()> {
        if !matches!(self.role, Role::Leader(_)) {
            return Ok(());
        }
        self.expire_leases(now)?;
        self.advance_commit(now);
        self.step_down_if_removed(now)?;
        if !self.is_leader() {
            return Ok(());
        }
        let state = self.leader_state();
        // Reads without a round are the queue's tail (see `LeaderState::reads`).
        let needs_round = state
            .reads
            .back()
            .is_some_and(|read| read.sequence.is_none());
        if needs_round {
            let sequence = state.start_round(now);
            for read in state
                .reads
                .iter_mut()
                .rev()
                .take_while(|read| read.sequence.is_none())
            {
                read.sequence = Some(sequence);
            }
        }
        let replicate = std::mem::take(&mut state.replicate_needed);
        if replicate || needs_round {
            for peer in self.replication_peers() {
                self.send_append(peer, needs_round)?;
            }
        }
        Ok(())
    }

    /// Answers everything a deposed leader still owes its clients.
    pub(super) fn abandon_leadership(&mut self, mut state: LeaderState) {
        self.hand_off_transfer(state.transfer.take());
        let unacknowledged = state
            .unacknowledged_replies
            .into_iter()
            .map(|(index, (request_id, _, answers))| (index, request_id, answers - 1));
        let proposed = state.proposals.into_iter().map(|(index, request_id)| {
            let joined = state.joined.get(&index).copied().unwrap_or(0);
            (index, request_id, joined)
        });
        for (_, request_id, joined) in proposed.chain(unacknowledged) {
            for _ in 0..=joined {
                let error = Error::Indeterminate("leadership lost before commit".into());
                self.reply(request_id, Reply::Failed(error));
            }
        }
        for read in state.reads {
            let error = Error::NotLeader { leader: None };
            self.reply(read.request_id, Reply::Failed(error));
        }
        for change in state.membership_replies {
            let error = Error::Indeterminate("leadership lost before the change committed".into());
            self.reply(change.request_id, Reply::Failed(error));
        }
    }
}
