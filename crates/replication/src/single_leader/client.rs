//! Client requests: writes through the log, reads by ReadIndex, and applying committed
//! entries to the store.
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
//! **Linearizable reads** use ReadIndex: the read records `read index = max(commit,
//! this term's no-op index)`, then waits for (1) a heartbeat round, started at the next
//! flush, that a majority acknowledged (so no newer leader existed when the round began)
//! and (2) the store to have applied the read index. Every write acknowledged before the
//! read arrived is at or below the read index (it was committed, so the leader holds it,
//! and the leader's log at election ended just before its no-op), so the read sees it.
//! **Local reads** read the local store at once, possibly stale.
//!
//! **Applying.** Entries are applied in log order, in batches, up to the commit index but
//! never beyond what the local log holds durably: the store may keep a non-durable apply
//! across a crash, and it must never get ahead of the log it would be rebuilt from.
//!
//! Pending proposals, joined retries and reads together are bounded by
//! `pending_requests_max`; beyond that a request is refused with [`Error::Overloaded`]
//! (it was not attempted). Lease expiries are appended by the leader itself
//! (`leases.rs`) and answer nobody.

use super::command::INTERNAL_REQUEST;
use super::leader::PendingRead;
use super::message::Command;
use super::node::{RaftNode, Role};
use replikv_core::error::{Error, Result};
use replikv_core::kv::ReadConsistency;
use replikv_core::{Instant, LogIndex, LogPosition, Reply, Request, RequestId};
use replikv_storage::log::Entry;
use replikv_storage::store::{LoggedWrite, StoreWrite};

impl RaftNode {
    pub(super) fn handle_client_request(
        &mut self,
        _now: Instant,
        request_id: RequestId,
        request: Request,
    ) -> Result<()> {
        if let Request::Get {
            key,
            consistency: ReadConsistency::Local,
        } = &request
        {
            let (value, version) = self.store.read(key)?;
            self.reply(request_id, Reply::Read { value, version });
            return Ok(());
        }
        if !self.is_leader() {
            let leader = self.leader();
            self.reply(request_id, Reply::Failed(Error::NotLeader { leader }));
            return Ok(());
        }
        let pending_max = self.config.pending_requests_max;
        let commit = self.commit;
        let state = self.leader_state();
        if state.pending_requests() >= pending_max {
            self.stats.requests_refused += 1;
            let error = Error::Overloaded(format!("{pending_max} requests pending"));
            self.reply(request_id, Reply::Failed(error));
            return Ok(());
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
            Request::Get { key, .. } => {
                let read_index = commit.max(state.noop_index);
                state.reads.push_back(PendingRead {
                    request_id,
                    key,
                    read_index,
                    sequence: None,
                });
                Ok(())
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
        }
    }

    /// Appends a client write to the leader's log, unless the same request is already
    /// pending here: then the retry joins it and is answered when it applies.
    fn propose(&mut self, request_id: RequestId, write: StoreWrite) -> Result<()> {
        let state = self.leader_state();
        if let Some(index) = state.proposed.get(&request_id).copied() {
            *state.joined.entry(index).or_insert(0) += 1;
            self.stats.retries_joined += 1;
            return Ok(());
        }
        let index = self.log.last_position().index.next();
        let entry = Entry {
            position: LogPosition {
                term: self.term,
                index,
            },
            payload: Command::Write {
                origin: self.id,
                request_id,
                write,
            }
            .encode(),
        };
        match self.log.append(&[entry]) {
            Ok(()) => {}
            Err(error @ (Error::Overloaded(_) | Error::InvalidInput(_))) => {
                self.reply(request_id, Reply::Failed(error));
                return Ok(());
            }
            Err(error) => return Err(error),
        }
        let state = self.leader_state();
        state.proposals.insert(index, request_id);
        state.proposed.insert(request_id, index);
        state.replicate_needed = true;
        Ok(())
    }

    /// Serves the pending linearizable reads whose round a majority confirmed and whose
    /// read index is applied.
    pub(super) fn serve_reads(&mut self) -> Result<()> {
        let quorum = self.quorum();
        let applied = self.store.applied_position().index;
        let Role::Leader(state) = &mut self.role else {
            return Ok(());
        };
        let confirmed_sequence = |sequence: u64| {
            let acks = state
                .progress
                .values()
                .filter(|progress| progress.read_sequence >= sequence)
                .count();
            acks + 1 >= quorum
        };
        let (ready, waiting): (Vec<PendingRead>, Vec<PendingRead>) =
            state.reads.drain(..).partition(|read| {
                read.sequence.is_some_and(&confirmed_sequence) && read.read_index <= applied
            });
        state.reads = waiting.into();
        for read in ready {
            let (value, version) = self.store.read(&read.key)?;
            self.reply(read.request_id, Reply::Read { value, version });
        }
        Ok(())
    }

    /// Applies committed, locally durable entries to the store, in batches, and answers
    /// the proposals they complete.
    pub(super) fn apply_committed(&mut self) -> Result<()> {
        let target = self.commit.min(self.log.durable_position().index);
        while self.store.applied_position().index < target {
            let from = self.store.applied_position().index.next();
            let count = usize::try_from(target.0 - from.0 + 1).unwrap_or(usize::MAX);
            let entries_max = count.min(self.config.apply_batch_entries_max);
            let entries =
                self.log
                    .read_range(from, entries_max, self.config.append_size_max_bytes)?;
            let last = entries.last().expect("committed entries exist").position;
            assert!(last.index <= target);
            let mut writes = Vec::new();
            let mut owners: Vec<LogIndex> = Vec::new();
            for entry in entries {
                match Command::decode(&entry.payload) {
                    Ok(Command::Noop) => {}
                    Ok(Command::Write {
                        request_id, write, ..
                    }) => {
                        // A leader's own writes (lease expiries) have no client session.
                        let request_id = Some(request_id).filter(|id| *id != INTERNAL_REQUEST);
                        writes.push(LoggedWrite {
                            index: entry.position.index,
                            request_id,
                            write,
                        });
                        owners.push(entry.position.index);
                    }
                    Err(error) => {
                        return Err(Error::Corruption(format!(
                            "committed entry {} does not decode: {error}",
                            entry.position
                        )));
                    }
                }
            }
            let outcomes = self.store.apply_logged(&writes, last)?;
            self.note_applied_leases(&writes, &outcomes)?;
            self.stats.entries_applied += last.index.0 - from.0 + 1;
            self.answer_proposals(&owners, outcomes);
        }
        Ok(())
    }

    fn answer_proposals(
        &mut self,
        owners: &[LogIndex],
        outcomes: Vec<replikv_storage::store::WriteOutcome>,
    ) {
        for (index, outcome) in owners.iter().zip(outcomes) {
            let Role::Leader(state) = &mut self.role else {
                return;
            };
            if let Some(request_id) = state.proposals.remove(index) {
                state.proposed.remove(&request_id);
                let answers = 1 + state.joined.remove(index).unwrap_or(0);
                for _ in 0..answers {
                    self.reply(request_id, outcome.into_reply());
                }
            }
        }
    }
}
