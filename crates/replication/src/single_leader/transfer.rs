//! Leadership transfer: the leader hands its leadership to a chosen voter, at once.
//!
//! ## Why
//!
//! An operator moving leadership off a node (to drain it, to upgrade it, to put the
//! leader near its clients) and a leader shutting down gracefully both want the same
//! thing: another node leading *now*, not after an election timeout of unavailability,
//! and nothing lost or applied twice on the way. Crashing the leader would cost a whole
//! election timeout (its followers must first notice the silence) and the pre-vote round;
//! a transfer costs about one round trip (Raft thesis §3.10).
//!
//! ## The steps
//!
//! 1. A client (the server's admin endpoint) sends [`Request::TransferLeadership`] `{ to
//!    }` through the ordinary [`Replica`] request path: a follower answers `NotLeader`
//!    with its leader hint, like a write, and the client retries there. `to: None` lets
//!    the leader pick the most caught-up voter (highest matched index, then the most
//!    recently heard from, then the lowest id). A transfer to the leader itself is
//!    answered at once with success (a retry that reaches the new leader must not fail);
//!    a target that is not a voter is refused (`InvalidInput`).
//! 2. The leader remembers the transfer (one at a time: a second request for the same
//!    target, or for any target, joins the first, bounded by
//!    [`TRANSFER_REQUESTS_MAX`]; one for another target is refused as `Unavailable`) and
//!    from now on **proposes no new client write**: each is refused at once with
//!    `Unavailable` ("leadership transfer in progress"), which certainly did not happen,
//!    so a client retries it, at the new leader. Refusing rather than holding keeps the
//!    leader's queues bounded and the writes' fate simple: the old leader cannot commit
//!    anything once the new term starts, so a held write could only fail later. Retries
//!    of writes already pending still join them, and reads are served as usual.
//! 3. The leader brings the target up to date by normal replication (a snapshot if the
//!    target is behind the compacted log: `send_append` decides that).
//! 4. Once the target's matched index reaches the leader's last entry, the leader sends
//!    it [`Message::TimeoutNow`] (again with every heartbeat while the transfer lasts, in
//!    case one is lost) and **gives up its lease** for the rest of its term (below).
//! 5. The target, on a `TimeoutNow` from its own leader in its own term whose `last`
//!    entry it holds, campaigns at once: no election timeout, no pre-vote, and its
//!    `Vote` carries `transfer: true`, which makes voters skip leader stickiness (they
//!    still hear from the old leader, and would otherwise ignore a vote of a higher
//!    term). The vote itself is unchanged: once per term, for an up-to-date log only. The
//!    old leader receives the vote too, steps down to the new term and votes.
//! 6. The old leader answers the request when it learns the new term's leader (the
//!    first append of the target): success if that is the target (or, for `to: None`,
//!    anyone else), an error if someone else won or it was re-elected itself.
//!
//! The transfer aborts if the target is not leading after `election_timeout_ms_max`:
//! the leader resumes accepting writes and answers `Unavailable` (TimeoutNow never sent:
//! certainly nothing happened) or `Indeterminate` (sent: the target may still win). A
//! deposed leader that never learns the new leader answers `Indeterminate` at the same
//! deadline. Every started transfer is counted once as completed or aborted (unless the
//! node crashes), in [`RaftStats`](super::RaftStats).
//!
//! ## What can go wrong
//!
//! - **The target is partitioned or down**: it never catches up (or never gets the
//!   TimeoutNow); the transfer aborts at its deadline, the old leader never stopped
//!   leading, and writes resume. Unavailability for writes is bounded by one maximum
//!   election timeout.
//! - **A lost TimeoutNow** is resent with the next heartbeat.
//! - **A stale TimeoutNow** (from an older term) is fenced like any message of an older
//!   term. One of the *current* term that arrives late, after the transfer was aborted,
//!   starts an election the leader did not want; this is only a disruption, never a
//!   safety problem (the election is an ordinary Raft election with ordinary votes), and
//!   the leader gave up its lease for the whole term when it first sent one (below). The
//!   target honours a TimeoutNow only from the leader it follows, in its term, only if
//!   its log holds the leader's `last` entry, and only if it knows nothing committed
//!   beyond it: a TimeoutNow from a deposed leader, one the target could not win with,
//!   and one overtaken by writes the leader resumed after an abort are ignored. (One
//!   that arrives after an abort but before anything new committed still starts an
//!   election: a disruption, never a safety problem.)
//! - **A forged or buggy transfer flag**: a `Vote` with `transfer: true` bypasses the
//!   stickiness that protects a leader from a disruptive node. Peers are trusted (crash
//!   faults, not Byzantine ones); only a node that received `TimeoutNow` from its leader
//!   sets it, and only for that one campaign (its later campaigns are ordinary ones,
//!   with a pre-vote).
//! - **Writes during the transfer** are refused, not lost: nothing new is appended, so
//!   the target's log is exactly the leader's when it campaigns, and the new leader
//!   holds every acknowledged write (it is also what the vote's log check requires).
//!
//! ## The lease argument
//!
//! A lease read is safe because every follower that confirmed the lease round refuses
//! votes for a minimum election timeout (leader stickiness, `reads.rs`): no rival can be
//! elected while the lease runs. A transfer vote bypasses exactly that refusal, so a new
//! leader may be elected, and commit writes, while the old leader's lease has not run
//! out. Therefore the leader gives up its lease the moment it first sends TimeoutNow,
//! and extends it no more in that term: every later lease read falls back to ReadIndex,
//! whose confirmation round no follower of the new term acknowledges.
//!
//! Why that suffices: a vote with the transfer flag for term `T + 1` exists only after
//! the leader of `T` sent TimeoutNow, from which moment that leader serves no lease read.
//! Such a vote reaches voters of `T` or of older terms. For a voter of `T` the
//! stickiness it skips protects the leader of `T`, which renounced. For a voter of an
//! older term `T'`, the leader of `T'` is not the current leader: a leader of `T > T'`
//! was elected, and (by induction over terms) its election either was ordinary — it
//! needed a vote from a confirmer of the `T'` lease, refused until that lease ran out —
//! or was itself a transfer, from a leader that renounced. So a transfer vote never
//! overrides a lease still in force, and the old leader never answers a lease read after
//! a newer leader may have committed. Before TimeoutNow is sent the lease is intact
//! (no transfer vote exists yet), so lease reads are served while the target catches up.
//! The script `transfer_lease.txt` shows the fallback.

use super::message::Message;
use super::node::{RaftNode, Role};
use replikv_core::error::{Error, Result};
use replikv_core::{Instant, LogIndex, LogPosition, NodeId, Reply, RequestId, Term};
use std::time::Duration;

/// Most client requests waiting for one transfer (the first and those that joined it).
pub const TRANSFER_REQUESTS_MAX: usize = 16;

#[cfg(test)]
thread_local! {
    /// A bug planted for `tests/transfer.rs`: when set, a leader keeps its lease when it
    /// sends TimeoutNow, which the test shows serves a stale lease read. Per thread.
    pub(super) static KEEP_LEASE_ON_TRANSFER: std::cell::Cell<bool> = const {
        std::cell::Cell::new(false)
    };
}

/// Whether the planted bug of the tests keeps the lease across a transfer.
fn keep_lease_on_transfer() -> bool {
    #[cfg(test)]
    return KEEP_LEASE_ON_TRANSFER.get();
    #[cfg(not(test))]
    false
}

/// A transfer in progress on the leader.
#[derive(Clone, Debug)]
pub(super) struct Transfer {
    /// The voter that should lead.
    pub target: NodeId,
    /// Whether the client named no target (then any new leader but this node succeeds).
    pub any_target: bool,
    /// The requests to answer, first one first; at most [`TRANSFER_REQUESTS_MAX`].
    pub requests: Vec<RequestId>,
    /// The transfer aborts at this instant if still running.
    pub deadline: Instant,
    /// When TimeoutNow was last sent (`None`: not yet; the target is catching up).
    pub timeout_now_sent: Option<Instant>,
    /// The term in which this node led and started the transfer. A leader that steps
    /// down keeps the transfer (`RaftNode::transfer_handoff`) and answers it once it
    /// learns the leader of a later term.
    pub term: Term,
}

impl RaftNode {
    /// A [`Request::TransferLeadership`](replikv_core::Request::TransferLeadership).
    pub(super) fn handle_transfer_request(
        &mut self,
        now: Instant,
        request_id: RequestId,
        to: Option<NodeId>,
    ) -> Result<()> {
        if !self.is_leader() {
            let leader = self.leader();
            self.reply(request_id, Reply::Failed(Error::NotLeader { leader }));
            return Ok(());
        }
        if self.leader_state().transfer.is_some() {
            self.join_transfer(request_id, to);
            return Ok(());
        }
        if to == Some(self.id) {
            let reply = Reply::LeadershipTransferred {
                leader: self.id,
                term: self.term,
            };
            self.reply(request_id, reply);
            return Ok(());
        }
        if let Some(target) = to.filter(|target| !self.is_voter(*target)) {
            let error = Error::InvalidInput(format!("{target} is not a voter of this group"));
            self.reply(request_id, Reply::Failed(error));
            return Ok(());
        }
        if let Some(index) = self.pending_membership_change() {
            // One change of the group at a time: the target must stay a voter until it
            // leads (see `membership.rs`).
            let error = Error::Unavailable(format!(
                "a membership change (log index {index}) is not committed yet"
            ));
            self.reply(request_id, Reply::Failed(error));
            return Ok(());
        }
        let Some(target) = to.or_else(|| self.most_caught_up_peer()) else {
            let error = Error::InvalidInput("no other voter to transfer leadership to".into());
            self.reply(request_id, Reply::Failed(error));
            return Ok(());
        };
        self.stats.transfers_started += 1;
        let deadline = now + Duration::from_millis(self.config.election_timeout_ms_max);
        self.leader_state().transfer = Some(Transfer {
            target,
            any_target: to.is_none(),
            requests: vec![request_id],
            deadline,
            timeout_now_sent: None,
            term: self.term,
        });
        self.send_append(target, false)?;
        self.advance_transfer(now);
        Ok(())
    }

    /// A transfer request while one runs: joins it if it wants the same target (or any),
    /// and there is room; otherwise (another target, this leader itself, a stranger)
    /// refused as `Unavailable`.
    fn join_transfer(&mut self, request_id: RequestId, to: Option<NodeId>) {
        let state = self.leader_state();
        let transfer = state.transfer.as_mut().expect("checked by the caller");
        let target = transfer.target;
        let same = to.is_none_or(|to| to == target);
        if same && transfer.requests.len() < TRANSFER_REQUESTS_MAX {
            transfer.requests.push(request_id);
            return;
        }
        self.stats.requests_refused += 1;
        let error = Error::Unavailable(format!("a leadership transfer to {target} is in progress"));
        self.reply(request_id, Reply::Failed(error));
    }

    /// The voter with the highest matched index; ties go to the most recently heard
    /// from, then to the lowest id.
    fn most_caught_up_peer(&mut self) -> Option<NodeId> {
        let voters = self.voter_peers();
        let state = self.leader_state();
        let mut best: Option<(LogIndex, Option<Instant>, NodeId)> = None;
        for (peer, progress) in state
            .progress
            .iter()
            .filter(|(peer, _)| voters.contains(peer))
        {
            let candidate = (progress.matched, progress.last_ack, *peer);
            let better = best.is_none_or(|(matched, last_ack, _)| {
                (candidate.0, candidate.1) > (matched, last_ack)
            });
            if better {
                best = Some(candidate);
            }
        }
        best.map(|(_, _, peer)| peer)
    }

    /// The target of the transfer this leader runs, if any: new writes are refused
    /// meanwhile (see `client.rs`).
    pub(super) fn transfer_target(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(state) => state.transfer.as_ref().map(|transfer| transfer.target),
            _ => None,
        }
    }

    /// After every input on a leader: once the target holds the whole log, tells it to
    /// campaign (and gives up the lease, see the module documentation).
    pub(super) fn advance_transfer(&mut self, now: Instant) {
        let term = self.term;
        let last = self.log.last_position();
        let Role::Leader(state) = &mut self.role else {
            return;
        };
        let Some(transfer) = state.transfer.as_mut() else {
            return;
        };
        if transfer.timeout_now_sent.is_some() {
            return;
        }
        let target = transfer.target;
        if state.progress[&target].matched < last.index {
            return;
        }
        transfer.timeout_now_sent = Some(now);
        if !keep_lease_on_transfer() {
            state.lease_renounced = true;
            state.lease_until = None;
        }
        self.send(target, Message::TimeoutNow { term, last });
    }

    /// Every tick: a leader resends TimeoutNow once per heartbeat interval, and aborts a
    /// transfer past its deadline; a deposed leader gives up waiting for the new leader
    /// at the same deadline.
    pub(super) fn transfer_tick(&mut self, now: Instant) {
        let heartbeat = Duration::from_millis(self.config.heartbeat_interval_ms);
        let (term, last) = (self.term, self.log.last_position());
        if let Role::Leader(state) = &mut self.role {
            let Some(transfer) = state.transfer.as_mut() else {
                return;
            };
            if now >= transfer.deadline {
                let transfer = state.transfer.take().expect("checked");
                self.abort_transfer(&transfer, "timed out; this node still leads");
                return;
            }
            let target = transfer.target;
            let caught_up = state.progress[&target].matched >= last.index;
            if let Some(sent) = transfer.timeout_now_sent
                && now >= sent + heartbeat
                && caught_up
            {
                transfer.timeout_now_sent = Some(now);
                self.send(target, Message::TimeoutNow { term, last });
            }
            return;
        }
        if self
            .transfer_handoff
            .as_ref()
            .is_some_and(|transfer| now >= transfer.deadline)
        {
            let transfer = self.transfer_handoff.take().expect("checked");
            self.abort_transfer(
                &transfer,
                "timed out; this node stepped down and knows no new leader",
            );
        }
    }

    /// When this node next needs a tick for a transfer.
    pub(super) fn transfer_deadline(&self) -> Option<Instant> {
        let heartbeat = Duration::from_millis(self.config.heartbeat_interval_ms);
        match &self.role {
            Role::Leader(state) => state.transfer.as_ref().map(|transfer| {
                let resend = transfer.timeout_now_sent.map(|sent| sent + heartbeat);
                resend.map_or(transfer.deadline, |resend| resend.min(transfer.deadline))
            }),
            _ => self
                .transfer_handoff
                .as_ref()
                .map(|transfer| transfer.deadline),
        }
    }

    /// Answers every request of a transfer that did not happen (or may yet happen: a
    /// TimeoutNow went out) and counts the abort.
    fn abort_transfer(&mut self, transfer: &Transfer, why: &str) {
        self.stats.transfers_aborted += 1;
        let target = transfer.target;
        for request_id in &transfer.requests {
            let text = format!("leadership transfer to {target}: {why}");
            let error = if transfer.timeout_now_sent.is_some() {
                Error::Indeterminate(text)
            } else {
                Error::Unavailable(text)
            };
            self.reply(*request_id, Reply::Failed(error));
        }
    }

    /// A leader stepping down keeps its transfer, to answer it as a follower.
    pub(super) fn hand_off_transfer(&mut self, transfer: Option<Transfer>) {
        debug_assert!(self.transfer_handoff.is_none(), "a leader has no handoff");
        self.transfer_handoff = transfer;
    }

    /// After every input on a deposed leader: answers its transfer once the leader of
    /// a later term is known.
    pub(super) fn settle_handoff(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let term = self.term;
        let Some(transfer) = self
            .transfer_handoff
            .take_if(|transfer| term > transfer.term)
        else {
            return;
        };
        let succeeded = leader == transfer.target || (transfer.any_target && leader != self.id);
        if !succeeded {
            let why = format!("{leader} leads {} instead", self.term);
            self.abort_transfer(&transfer, &why);
            return;
        }
        self.stats.transfers_completed += 1;
        for request_id in transfer.requests {
            self.reply(request_id, Reply::LeadershipTransferred { leader, term });
        }
    }

    /// The target's side: a TimeoutNow from the leader it follows, in its term, whose
    /// last entry it holds, makes it campaign at once (no pre-vote), with the transfer
    /// flag on its votes. Anything else is dropped and counted.
    pub(super) fn handle_timeout_now(
        &mut self,
        now: Instant,
        from: NodeId,
        last: LogPosition,
    ) -> Result<()> {
        let follows_sender =
            matches!(self.role, Role::Follower { leader: Some(leader) } if leader == from);
        let holds_last = self.log.term_at(last.index) == Some(last.term);
        // A leader in a transfer appends nothing new: a commit index beyond `last` means
        // the transfer this TimeoutNow belonged to was aborted and writes resumed.
        let current = self.commit <= last.index;
        if !follows_sender || !holds_last || !current || self.snapshot_needed {
            self.stats.timeout_now_ignored += 1;
            return Ok(());
        }
        self.stats.transfer_elections_started += 1;
        self.start_election(now, true)
    }

    /// A transfer belongs to its leader's term, a renounced lease is gone, and a node
    /// waits for at most one transfer's outcome, never while it leads.
    pub(super) fn assert_transfer_invariants(&self) {
        if let Role::Leader(state) = &self.role {
            assert!(
                self.transfer_handoff.is_none(),
                "a leader awaiting a handoff"
            );
            if let Some(transfer) = &state.transfer {
                assert_eq!(transfer.term, self.term, "a transfer of another term");
                assert!(transfer.target != self.id && self.is_voter(transfer.target));
                assert!(!transfer.requests.is_empty());
                assert!(transfer.requests.len() <= TRANSFER_REQUESTS_MAX);
                let renounced = state.lease_renounced || keep_lease_on_transfer();
                assert!(transfer.timeout_now_sent.is_none() || renounced);
            }
            assert!(!state.lease_renounced || state.lease_until.is_none());
        }
        if let Some(transfer) = &self.transfer_handoff {
            assert!(transfer.term <= self.term);
        }
        let ended = self.stats.transfers_completed + self.stats.transfers_aborted;
        assert!(
            ended <= self.stats.transfers_started,
            "a transfer ended twice"
        );
    }
}
