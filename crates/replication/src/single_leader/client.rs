//! Client requests: writes through the log, and applying committed entries to the store.
//! Reads of every consistency level are in `reads.rs`.
//!
//! **Writes** (put, delete, compare-and-set on value or on version, lease requests and
//! fenced writes) are proposed only by the leader: it appends a [`Command::Write`] entry
//! carrying its own id and the client's request id, and remembers which request owns that
//! index (and, by request id, which index a request owns: a retry of a request still
//! pending here joins it, and both are answered when it applies). When the entry is
//! applied, the store's [`WriteOutcome`](replikv_storage::store::WriteOutcome) is the
//! reply; the store answers a request id it already applied from the client's session,
//! so a retry that reached the log twice gets the first outcome. A follower answers
//! [`Error::NotLeader`] with its leader hint.
//!
//! **Reads** are dispatched to `reads.rs` by their consistency level (linearizable by
//! ReadIndex, lease, follower, session). A write's reply carries the position of its log
//! entry, the client's session token.
//!
//! **Applying.** Entries are applied in log order, in batches, up to the commit index but
//! never beyond what the local log holds durably: the store may keep a non-durable apply
//! across a crash, and it must never get ahead of the log it would be rebuilt from.
//!
//! Pending proposals, joined retries and reads together are bounded by
//! `pending_requests_max`; beyond that a request is refused with [`Error::Overloaded`]
//! (it was not attempted) — except a retry of a write already pending here, which joins
//! it whatever the load, since its first attempt may still commit; at most
//! [`RETRIES_JOINED_PER_ENTRY_MAX`] retries join one entry, later ones are answered
//! with an unknown outcome. Lease expiries are appended by the leader itself
//! (`leases.rs`) and answer nobody.

use super::command::INTERNAL_REQUEST;
use super::message::Command;
use super::node::{RaftNode, Role};
use super::planted::planted;
use super::reads::ReadKey;
use replikv_core::error::{Error, Result};
use replikv_core::{Instant, Key, LogIndex, LogPosition, Reply, Request, RequestId};
use replikv_storage::log::Entry;
use replikv_storage::store::{LoggedWrite, Membership, StoreWrite};

/// Most entries an apply batch reserves room for up front (the batch grows past it).
const APPLY_RESERVE_ENTRIES_MAX: usize = 1024;

/// Committed entries decoded for one call to the store.
struct CommittedBatch {
    /// The client and internal writes, in log order.
    writes: Vec<LoggedWrite>,
    /// The index of each write, in the same order: the proposals they may answer.
    owners: Vec<LogIndex>,
    /// The batch's last configuration entry, if it holds any.
    membership: Option<Membership>,
    /// The position of the batch's last entry.
    last: LogPosition,
}

/// Most retries that may join one pending entry (each is answered when it applies).
pub const RETRIES_JOINED_PER_ENTRY_MAX: usize = 16;

impl RaftNode {
    pub(super) fn handle_client_request(
        &mut self,
        now: Instant,
        request_id: RequestId,
        request: Request,
    ) -> Result<()> {
        if let Request::Get { key, consistency } = request {
            let key = ReadKey {
                key,
                with_expiry: false,
            };
            return self.handle_read(now, request_id, key, consistency);
        }
        if let Request::GetWithExpiry { key, consistency } = request {
            let key = ReadKey {
                key,
                with_expiry: true,
            };
            return self.handle_read(now, request_id, key, consistency);
        }
        if let Request::TransferLeadership { to } = request {
            return self.handle_transfer_request(now, request_id, to);
        }
        if !self.is_leader() {
            let leader = self.leader();
            self.reply(request_id, Reply::Failed(Error::NotLeader { leader }));
            return Ok(());
        }
        if self.join_pending_retry(request_id) {
            return Ok(());
        }
        let pending_max = self.config.pending_requests_max;
        let state = self.leader_state();
        if state.pending_requests() >= pending_max {
            self.stats.requests_refused += 1;
            let error = Error::Overloaded(format!("{pending_max} requests pending"));
            self.reply(request_id, Reply::Failed(error));
            return Ok(());
        }
        if let Request::ChangeMembership { change } = request {
            if self.refused_for_transfer(request_id) {
                return Ok(());
            }
            return self.handle_membership_change(request_id, change);
        }
        if let Some(write) = super::leases::lease_write(&request) {
            return match write {
                Ok(write) => self.propose(request_id, write),
                Err(error) => {
                    self.reply(request_id, Reply::Failed(error));
                    Ok(())
                }
            };
        }
        match request {
            Request::Get { .. } | Request::GetWithExpiry { .. } => {
                unreachable!("reads are handled in reads.rs")
            }
            Request::PutWithExpiry {
                key,
                value,
                expected_version,
                expiry,
            } => {
                let write = StoreWrite::PutWithExpiry {
                    key,
                    value,
                    expected_version,
                    expiry,
                };
                self.propose_checked(request_id, write, expiry)
            }
            Request::Expire {
                key,
                expiry,
                condition,
            } => {
                let write = StoreWrite::Expire {
                    key,
                    expiry,
                    condition,
                };
                self.propose_checked(request_id, write, expiry)
            }
            Request::Put { key, value } => self.propose(request_id, StoreWrite::Put { key, value }),
            Request::Delete { key } => self.propose(request_id, StoreWrite::Delete { key }),
            Request::CompareAndSet { key, expected, new } => {
                let write = StoreWrite::CompareAndSetValue { key, expected, new };
                self.propose(request_id, write)
            }
            Request::CompareAndSetVersion { key, expected, new } => {
                let write = StoreWrite::CompareAndSetVersion { key, expected, new };
                self.propose(request_id, write)
            }
            Request::AcquireLease { .. }
            | Request::RenewLease { .. }
            | Request::ReleaseLease { .. }
            | Request::PutFenced { .. }
            | Request::DeleteFenced { .. } => unreachable!("lease requests are proposed above"),
            Request::TransferLeadership { .. } | Request::ChangeMembership { .. } => {
                unreachable!("handled above")
            }
        }
    }

    /// While a leadership transfer runs, new writes and configuration changes wait for
    /// the new leader (see `transfer.rs`): refuses the request, retryably, and says so.
    fn refused_for_transfer(&mut self, request_id: RequestId) -> bool {
        let Some(target) = self.transfer_target() else {
            return false;
        };
        self.stats.requests_refused += 1;
        self.stats.transfer_writes_refused += 1;
        let error = Error::Unavailable(format!(
            "leadership transfer to {target} in progress: retry at the new leader"
        ));
        self.reply(request_id, Reply::Failed(error));
        true
    }

    /// [`RaftNode::propose`] after checking the write's expiry time.
    fn propose_checked(
        &mut self,
        request_id: RequestId,
        write: StoreWrite,
        expiry: replikv_core::Expiry,
    ) -> Result<()> {
        if let Err(error) = expiry.check() {
            self.reply(request_id, Reply::Failed(error));
            return Ok(());
        }
        self.propose(request_id, write)
    }

    /// Appends a client write to the leader's log, unless the same request is already
    /// pending here: then the retry joins it and is answered when it applies.
    fn propose(&mut self, request_id: RequestId, write: StoreWrite) -> Result<()> {
        if self.join_pending_retry(request_id) {
            return Ok(());
        }
        if self.refused_for_transfer(request_id) {
            return Ok(());
        }
        let command = Command::Write {
            origin: self.id,
            request_id,
            write,
            stamp_unix_ms: self.next_stamp_unix_ms(),
        };
        let Some(index) = self.append_for_request(request_id, &command)? else {
            return Ok(());
        };
        let state = self.leader_state();
        state.proposals.insert(index, request_id);
        state.proposed.insert(request_id, index);
        state.replicate_needed = true;
        Ok(())
    }

    /// A retry of a write this leader already proposed joins the pending entry and is
    /// answered when it applies. This comes before any refusal: the first attempt may
    /// still commit, so "overloaded" or "transfer in progress" (both meaning *certainly
    /// not applied*) would be false answers. A join allocates nothing beyond a counter
    /// per pending entry, so it may exceed `pending_requests_max`.
    fn join_pending_retry(&mut self, request_id: RequestId) -> bool {
        let state = self.leader_state();
        let Some(index) = state.proposed.get(&request_id).copied() else {
            return false;
        };
        let joined = state.joined.entry(index).or_insert(0);
        if *joined >= RETRIES_JOINED_PER_ENTRY_MAX {
            // Bounded: each join is one more reply when the entry applies. Beyond the
            // bound the truthful answer is "unknown": the first attempt may commit.
            self.stats.requests_refused += 1;
            let error = Error::Indeterminate(format!(
                "{RETRIES_JOINED_PER_ENTRY_MAX} retries already wait for this request's \
                 pending entry"
            ));
            self.reply(request_id, Reply::Failed(error));
            return true;
        }
        *joined += 1;
        self.stats.retries_joined += 1;
        true
    }

    /// Appends `command`, made for client request `request_id`, as the next entry of
    /// this leader's term, and returns its index; `None` when the log refused it (full, or
    /// too large): the request is then answered with that error.
    pub(super) fn append_for_request(
        &mut self,
        request_id: RequestId,
        command: &Command,
    ) -> Result<Option<LogIndex>> {
        match self.append_command(command) {
            Ok(index) => Ok(Some(index)),
            Err(error @ (Error::Overloaded(_) | Error::InvalidInput(_))) => {
                self.reply(request_id, Reply::Failed(error));
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Appends `command` as the next entry of this leader's term and returns its index,
    /// or the log's refusal as it is (full, too large, storage failure).
    pub(super) fn append_command(&mut self, command: &Command) -> Result<LogIndex> {
        let index = self.log.last_position().index.next();
        let entry = Entry {
            position: LogPosition {
                term: self.term,
                index,
            },
            payload: command.encode(),
        };
        self.log.append(&[entry])?;
        Ok(index)
    }

    /// Applies committed, locally durable entries to the store, in batches, and answers
    /// the proposals they complete.
    pub(super) fn apply_committed(&mut self) -> Result<()> {
        let target = self.apply_target();
        while self.store.applied_position().index < target {
            let from = self.store.applied_position().index.next();
            let count = usize::try_from(target.0 - from.0 + 1).unwrap_or(usize::MAX);
            let entries_max = count.min(self.config.apply_batch_entries_max);
            let batch = self.decode_committed(from, entries_max)?;
            let last = batch.last;
            assert!(last.index <= target);
            for write in &batch.writes {
                self.note_applied_stamp(write.stamp_unix_ms);
            }
            // The writes move into the store; the leases they name are kept aside (no
            // allocation when, as usual, there are none).
            let lease_writes: Vec<(usize, Key)> = batch
                .writes
                .iter()
                .enumerate()
                .filter(|(_, logged)| logged.write.is_lease())
                .map(|(position, logged)| (position, logged.write.key().clone()))
                .collect();
            let outcomes =
                self.store
                    .apply_logged_owned(batch.writes, last, batch.membership.as_ref())?;
            self.note_applied_memberships();
            self.note_applied_leases(&lease_writes, &outcomes)?;
            self.stats.entries_applied += last.index.0 - from.0 + 1;
            self.answer_proposals(&batch.owners, outcomes);
        }
        Ok(())
    }

    /// Reads and decodes up to `entries_max` committed entries from `from` on, borrowing
    /// each payload from the log (its tail cache, usually) rather than copying it.
    fn decode_committed(&self, from: LogIndex, entries_max: usize) -> Result<CommittedBatch> {
        let mut batch = CommittedBatch {
            writes: Vec::with_capacity(entries_max.min(APPLY_RESERVE_ENTRIES_MAX)),
            owners: Vec::with_capacity(entries_max.min(APPLY_RESERVE_ENTRIES_MAX)),
            membership: None,
            last: LogPosition::ZERO,
        };
        let bytes_max = self.config.append_size_max_bytes;
        self.log
            .visit_range(from, entries_max, bytes_max, |position, payload| {
                batch.last = position;
                match Command::decode(payload) {
                    Ok(Command::Noop) => {}
                    // The batch's last configuration entry: the store's configuration at
                    // the batch's last index.
                    Ok(Command::Membership { membership, .. }) => {
                        batch.membership = Some(membership);
                    }
                    Ok(Command::Write {
                        request_id,
                        write,
                        stamp_unix_ms,
                        ..
                    }) => {
                        // A leader's own writes (lease expiries) have no client session.
                        let request_id = Some(request_id).filter(|id| *id != INTERNAL_REQUEST);
                        batch.writes.push(LoggedWrite {
                            stamp_unix_ms,
                            index: position.index,
                            request_id,
                            write,
                        });
                        batch.owners.push(position.index);
                    }
                    Err(error) => {
                        return Err(Error::Corruption(format!(
                            "committed entry {position} does not decode: {error}"
                        )));
                    }
                }
                Ok(())
            })?;
        assert!(batch.last.index >= from, "committed entries exist");
        Ok(batch)
    }

    /// How far this node applies: the commit index, and on a leader the acknowledged
    /// index too (it runs ahead in a lossy mode: see `commit.rs`), never beyond the
    /// locally durable log.
    fn apply_target(&self) -> LogIndex {
        let acknowledged = match &self.role {
            Role::Leader(state) => state.acknowledged,
            _ => LogIndex::ZERO,
        };
        let target = self.commit.max(acknowledged);
        if planted!(self.config, AckBeforeFsync) && self.is_leader() {
            return target;
        }
        target.min(self.log.durable_position().index)
    }

    fn answer_proposals(
        &mut self,
        owners: &[LogIndex],
        outcomes: Vec<replikv_storage::store::WriteOutcome>,
    ) {
        let term = self.term;
        for (index, outcome) in owners.iter().zip(outcomes) {
            let Role::Leader(state) = &mut self.role else {
                return;
            };
            let Some(request_id) = state.proposals.remove(index) else {
                continue;
            };
            state.proposed.remove(&request_id);
            let answers = 1 + state.joined.remove(index).unwrap_or(0);
            // Proposals are this leader's, and a leader proposes in its own term.
            let position = LogPosition {
                term,
                index: *index,
            };
            let reply = outcome.into_reply(position);
            if *index <= state.acknowledged {
                for _ in 0..answers {
                    self.reply(request_id, reply.clone());
                }
            } else {
                state
                    .unacknowledged_replies
                    .insert(*index, (request_id, reply, answers));
            }
        }
        self.answer_acknowledged();
    }

    /// Answers the applied proposals the commit mode now acknowledges.
    pub(super) fn answer_acknowledged(&mut self) {
        let Role::Leader(state) = &mut self.role else {
            return;
        };
        let still_waiting = state
            .unacknowledged_replies
            .split_off(&state.acknowledged.next());
        let ready = std::mem::replace(&mut state.unacknowledged_replies, still_waiting);
        for (request_id, reply, answers) in ready.into_values() {
            for _ in 0..answers {
                self.reply(request_id, reply.clone());
            }
        }
    }
}
