//! Reads, chosen per request: linearizable, lease, follower and session.
//!
//! Every read is answered from the local store, with the store's applied position (the
//! [`Reply::Read`] `position`). What differs between the four levels is *when* a node may
//! read its store, and which node may.
//!
//! **Linearizable** (ReadIndex, the default). Only the leader serves: the read records
//! `read index = max(commit, this term's no-op index)` and waits for a confirmation round
//! (a heartbeat round started at the next flush and acknowledged by a majority: no newer
//! leader existed when it began) and for the store to apply the read index. Every write
//! acknowledged before the read arrived is at or below the read index.
//!
//! **Lease.** The leader serves at once, without a round trip, while it holds a lease.
//! When a confirmation round that the leader started at time `t` on its own clock is
//! acknowledged by a majority, the lease runs until `t + election_timeout_ms_min × (1 −
//! ρ)`, where ρ is `lease_clock_drift_max_ppm` / 10⁶. The argument: each follower that
//! acknowledged the round received its append after `t` and from then on refuses
//! (pre-)votes for `election_timeout_ms_min` on *its* clock (leader stickiness, see
//! `election.rs`), and does not campaign itself before its own election timeout, which
//! the append reset. A new leader needs a vote from one of them, so none exists before
//! that follower's clock advanced by `election_timeout_ms_min` since `t`. **The clock-drift
//! assumption**: whenever one node's clock advances by `d ≤ election_timeout_ms_min`,
//! every other node's clock advances by at least `d × (1 − ρ)`. Then when the leader's
//! clock reads the end of its lease, no follower of the round has yet finished its refusal
//! window: no other leader can exist, and no write the leader has not applied can have
//! been acknowledged. The read index floor still applies (the store must have applied
//! the commit index and this term's no-op; otherwise the read waits as a ReadIndex read).
//! A node that crashes forgets when it last heard from its leader, so with leases enabled
//! a node just opened refuses votes for `election_timeout_ms_min` as well. Leases are off
//! unless `lease_reads_enabled` (the operator vouches for the clocks); without a valid
//! lease a lease read falls back to ReadIndex — it is never served stale. While lease
//! reads keep arriving the leader starts a fresh round with each heartbeat, so the lease
//! stays warm under load. The simulator shows the assumption is real: its clocks, made to
//! drift beyond it, make the linearizability checker catch a lease model.
//!
//! **Follower.** Any node serves from its own store at once: possibly stale, but always a
//! state its history went through, in log order (consistent prefix).
//!
//! **Session.** The client sends a token: the highest log position it has seen in a reply
//! (a write's entry, or a read's applied position). Any node — the leader too — serves the
//! read once its store applied at least the token's index, which gives read-your-writes
//! and monotonic reads. Applied entries are committed, so if this node's log holds a
//! different term at the token's index, the token names a write this history does not
//! contain (possible only after a lossy failover): the read fails with a clear error,
//! never a stale answer. Otherwise the read waits, in a bounded queue, at most
//! `session_read_wait_ms_max`; then it is redirected (`NotLeader` with this node's leader
//! hint, none on the leader itself). A token below a compacted prefix cannot be checked
//! locally: a follower redirects it, the leader (whose history is authoritative) serves.

use super::leader::{LeaderState, PendingRead};
use super::node::{RaftNode, Role};
use super::planted::planted;
use replikv_core::error::{Error, Result};
use replikv_core::kv::ReadConsistency;
use replikv_core::{Instant, Key, LogPosition, Reply, RequestId};
use std::time::Duration;

/// Most confirmation rounds whose start the leader remembers for its lease. Forgetting an
/// old round only means its confirmation cannot extend the lease.
const ROUNDS_REMEMBERED_MAX: usize = 64;

/// The key a read asks for, and whether it asked for the key's expiry too
/// ([`replikv_core::Request::GetWithExpiry`]). Expiry is judged at the serving node's
/// read time (`expiry.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ReadKey {
    pub key: Key,
    pub with_expiry: bool,
}

/// A session read waiting for the store to apply its token.
#[derive(Clone, Debug)]
pub(super) struct SessionRead {
    pub request_id: RequestId,
    pub key: ReadKey,
    pub token: LogPosition,
    /// When it is redirected if still waiting (node time).
    pub deadline: Instant,
}

/// Whether this node's state includes a session token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenCheck {
    /// The store applied the token's entry.
    Ready,
    /// Not applied yet.
    Wait,
    /// The store applied a different entry at the token's index.
    Diverged,
    /// The token's index lies below the log's compacted prefix.
    Unknown,
}

impl LeaderState {
    /// Starts a confirmation round at `now` (leader time): appends sent from now on carry
    /// its sequence. Returns the sequence.
    pub(super) fn start_round(&mut self, now: Instant) -> u64 {
        self.read_sequence += 1;
        if self.round_started.len() == ROUNDS_REMEMBERED_MAX {
            self.round_started.pop_front();
        }
        self.round_started.push_back((self.read_sequence, now));
        self.read_sequence
    }
}

impl RaftNode {
    /// A client read, served according to its consistency level.
    pub(super) fn handle_read(
        &mut self,
        now: Instant,
        request_id: RequestId,
        key: ReadKey,
        consistency: ReadConsistency,
    ) -> Result<()> {
        if planted!(self.config, FollowerServesLinearizableReads) && !self.is_leader() {
            return self.serve_local(request_id, &key);
        }
        match consistency {
            ReadConsistency::Follower => self.serve_local(request_id, &key),
            ReadConsistency::Session { token } => {
                self.handle_session_read(now, request_id, key, token)
            }
            ReadConsistency::Linearizable => self.handle_leader_read(now, request_id, key, false),
            ReadConsistency::Lease => self.handle_leader_read(now, request_id, key, true),
        }
    }

    /// Answers a read from the local store, with the position it was read at.
    fn serve_local(&mut self, request_id: RequestId, key: &ReadKey) -> Result<()> {
        let now_unix_ms = self.read_time_unix_ms();
        let (value, version, expires_at_unix_ms) =
            self.store.read_with_expiry_at(&key.key, now_unix_ms)?;
        let position = self.store.applied_position();
        let reply = if key.with_expiry {
            Reply::ReadWithExpiry {
                value,
                version,
                expires_at_unix_ms,
                position,
            }
        } else {
            Reply::Read {
                value,
                version,
                position,
            }
        };
        self.reply(request_id, reply);
        Ok(())
    }

    /// The lease a confirmed round grants: `election_timeout_ms_min × (1 − ρ)`.
    fn lease_duration(&self) -> Duration {
        let drift_ppm = self.config.lease_clock_drift_max_ppm;
        debug_assert!(drift_ppm <= super::LEASE_CLOCK_DRIFT_LIMIT_PPM);
        // 1 ms × (10⁶ − ppm) / 10⁶ = (10⁶ − ppm) ns.
        Duration::from_nanos(self.config.election_timeout_ms_min * (1_000_000 - drift_ppm))
    }

    /// A linearizable or lease read: the leader serves it from its lease or queues it for
    /// ReadIndex; anyone else redirects.
    fn handle_leader_read(
        &mut self,
        now: Instant,
        request_id: RequestId,
        key: ReadKey,
        lease: bool,
    ) -> Result<()> {
        if !self.is_leader() {
            let leader = self.leader();
            self.reply(request_id, Reply::Failed(Error::NotLeader { leader }));
            return Ok(());
        }
        let pending_max = self.config.pending_requests_max;
        let lease_enabled = self.config.lease_reads_enabled;
        let applied = self.store.applied_position().index;
        let commit = self.commit;
        let state = self.leader_state();
        let read_index = commit.max(state.noop_index);
        if lease && lease_enabled {
            state.lease_renewal_wanted = true;
            let held = state.lease_until.is_some_and(|until| now < until);
            if held && read_index <= applied {
                self.stats.lease_reads_served += 1;
                return self.serve_local(request_id, &key);
            }
            self.stats.lease_reads_fallback += 1;
        }
        let state = self.leader_state();
        if state.proposals.len() + state.reads.len() >= pending_max {
            self.stats.requests_refused += 1;
            let error = Error::Overloaded(format!("{pending_max} requests pending"));
            self.reply(request_id, Reply::Failed(error));
            return Ok(());
        }
        assert!(
            state
                .reads
                .back()
                .is_none_or(|last| last.read_index <= read_index),
            "ReadIndex reads are queued in read index order"
        );
        state.reads.push_back(PendingRead {
            request_id,
            key,
            read_index,
            sequence: None,
        });
        Ok(())
    }

    /// A session read: served now, refused, or queued until its token is applied.
    fn handle_session_read(
        &mut self,
        now: Instant,
        request_id: RequestId,
        key: ReadKey,
        token: LogPosition,
    ) -> Result<()> {
        if self.check_token(token) != TokenCheck::Wait {
            return self.finish_session_read(request_id, &key, token);
        }
        let waiting_max = self.config.session_reads_waiting_max;
        if self.session_reads.len() >= waiting_max {
            self.stats.requests_refused += 1;
            let error = Error::Overloaded(format!("{waiting_max} session reads waiting"));
            self.reply(request_id, Reply::Failed(error));
            return Ok(());
        }
        let wait = Duration::from_millis(self.config.session_read_wait_ms_max);
        self.session_reads.push_back(SessionRead {
            request_id,
            key,
            token,
            deadline: now + wait,
        });
        Ok(())
    }

    fn check_token(&self, token: LogPosition) -> TokenCheck {
        let applied = self.store.applied_position();
        if token.index > applied.index {
            return TokenCheck::Wait;
        }
        match self.log.term_at(token.index) {
            Some(term) if term == token.term => TokenCheck::Ready,
            Some(_) => TokenCheck::Diverged,
            None => TokenCheck::Unknown,
        }
    }

    /// Answers a session read whose token check is no longer `Wait`.
    fn finish_session_read(
        &mut self,
        request_id: RequestId,
        key: &ReadKey,
        token: LogPosition,
    ) -> Result<()> {
        match self.check_token(token) {
            TokenCheck::Wait => unreachable!("only decided session reads finish"),
            TokenCheck::Ready => {}
            TokenCheck::Unknown if self.is_leader() => {}
            TokenCheck::Unknown => {
                self.stats.session_reads_redirected += 1;
                let leader = self.leader();
                self.reply(request_id, Reply::Failed(Error::NotLeader { leader }));
                return Ok(());
            }
            TokenCheck::Diverged => {
                self.stats.session_reads_diverged += 1;
                let applied = self.store.applied_position();
                let error = Error::InvalidInput(format!(
                    "session token {token} is not in this replica's history (it applied \
                     {applied}): the write it names was lost in a failover"
                ));
                self.reply(request_id, Reply::Failed(error));
                return Ok(());
            }
        }
        self.stats.session_reads_served += 1;
        self.serve_local(request_id, key)
    }

    /// Redirects the session reads that waited until their deadline.
    pub(super) fn expire_session_reads(&mut self, now: Instant) {
        if self
            .session_reads
            .front()
            .is_none_or(|read| read.deadline > now)
        {
            return;
        }
        let (expired, waiting): (Vec<SessionRead>, Vec<SessionRead>) =
            std::mem::take(&mut self.session_reads)
                .into_iter()
                .partition(|read| read.deadline <= now);
        self.session_reads = waiting.into();
        let leader = if self.is_leader() {
            None
        } else {
            self.leader()
        };
        for read in expired {
            self.stats.session_reads_redirected += 1;
            let error = Error::NotLeader { leader };
            self.reply(read.request_id, Reply::Failed(error));
        }
    }

    /// Serves what became servable: the lease grows with confirmed rounds, confirmed
    /// ReadIndex reads whose read index is applied are answered, and session reads whose
    /// token is applied (or refuted) are answered.
    pub(super) fn serve_reads(&mut self) -> Result<()> {
        self.extend_lease();
        self.serve_read_index_reads()?;
        let (decided, waiting): (Vec<SessionRead>, Vec<SessionRead>) =
            std::mem::take(&mut self.session_reads)
                .into_iter()
                .partition(|read| self.check_token(read.token) != TokenCheck::Wait);
        self.session_reads = waiting.into();
        for read in decided {
            self.finish_session_read(read.request_id, &read.key, read.token)?;
        }
        Ok(())
    }

    /// Extends the leader's lease to the latest round a majority (itself included)
    /// confirmed: `start + lease_duration`.
    fn extend_lease(&mut self) {
        if !self.config.lease_reads_enabled {
            return;
        }
        let duration = self.lease_duration();
        let own = match &self.role {
            Role::Leader(state) => state.read_sequence,
            _ => return,
        };
        let sequences = self.per_voter(own, 0, |p| p.read_sequence);
        let confirmed = self.quorum_value(sequences, 0);
        let Role::Leader(state) = &mut self.role else {
            return;
        };
        if state.lease_renounced {
            // A transfer's TimeoutNow went out in this term: see `transfer.rs`.
            debug_assert!(state.lease_until.is_none());
            return;
        }
        let mut latest = None;
        while let Some(&(sequence, started)) = state.round_started.front() {
            if sequence > confirmed {
                break;
            }
            latest = Some(started);
            state.round_started.pop_front();
        }
        if let Some(started) = latest {
            let until = started + duration;
            state.lease_until = Some(state.lease_until.map_or(until, |held| held.max(until)));
        }
    }

    /// Serves the pending linearizable reads whose round a majority confirmed and whose
    /// read index is applied.
    fn serve_read_index_reads(&mut self) -> Result<()> {
        let applied = self.store.applied_position().index;
        let own = match &self.role {
            Role::Leader(state) => state.read_sequence,
            _ => return Ok(()),
        };
        // The highest round a majority of the voters confirmed (this node's own rounds
        // count if it is a voter).
        let sequences = self.per_voter(own, 0, |p| p.read_sequence);
        let confirmed = self.quorum_value(sequences, 0);
        let Role::Leader(state) = &mut self.role else {
            return Ok(());
        };
        // The queue is ordered by round and by read index (see `LeaderState::reads`), so
        // the reads ready to serve are a prefix of it: serving costs what it serves, not
        // the whole queue on every input.
        let ready_count = state
            .reads
            .iter()
            .take_while(|read| {
                read.sequence.is_some_and(|sequence| sequence <= confirmed)
                    && read.read_index <= applied
            })
            .count();
        let ready: Vec<PendingRead> = state.reads.drain(..ready_count).collect();
        for read in ready {
            self.serve_local(read.request_id, &read.key)?;
        }
        Ok(())
    }
}
