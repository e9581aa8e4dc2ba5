//! AppendEntries on both sides, and the commit rule.
//!
//! **Leader side.** Each follower has a [`Progress`](super::leader::Progress): the next
//! index to send and the highest index it acknowledged durably. The leader sends batches
//! of at most `append_entries_max` entries and keeps at most `inflight_appends_max` of
//! them unacknowledged per follower (pipelining, bounded). A rejection carries a hint (the
//! follower's last index + 1, or the first index of its conflicting term), so a divergent
//! follower is repaired in a few round trips instead of one per entry.
//!
//! **Follower side.** An append passes the consistency check if the follower holds an
//! entry at `previous` with the same term (log matching: then the logs agree on
//! everything up to it). Entries already present with the same term are skipped (a
//! duplicated or reordered append must not truncate anything); the first conflicting
//! entry and everything after it are removed, and the rest appended. The
//! acknowledgement claims durability, so it is held until the next flush. A conflict
//! that reaches the follower's commit index (at the consistency check or among the
//! entries) cannot be repaired by truncation: the follower may have applied the entry.
//! It answers `SnapshotNeeded` and accepts nothing until a snapshot replaced its store
//! and log (see `snapshot.rs`). A correct leader in `majority` mode never causes it.
//!
//! **Commit.** The leader's commit index is the highest index held durably by a majority
//! (its own entries count once its log synced them) whose entry is of the current term
//! (Raft §5.4.2: an entry of an earlier term is committed only through a later one).

use super::command::INTERNAL_REQUEST;
use super::commit::{CommitMode, SyncChoice};
use super::leader::Progress;
use super::message::{AppendResult, Command, Message, WireEntry};
use super::node::{Discard, RaftNode, Role};
use super::planted::planted;
use replikv_core::error::{Error, Result};
use replikv_core::limits::REPLICATION_BATCH_ENTRIES_MAX;
use replikv_core::replica::{DISCARD_REPORT_WRITES_MAX, DiscardedWrite, Output};
use replikv_core::{Instant, LogIndex, LogPosition, NodeId};
use replikv_core::{Key, RequestId, Value};
use replikv_storage::log::{Entry, PAYLOAD_SIZE_MAX_BYTES};
use replikv_storage::store::StoreWrite;
use std::time::Duration;

/// What [`RaftNode::append_missing`] did with an append's entries.
enum Appended {
    Done,
    /// The log's pending buffer is full: nothing appended.
    Overloaded,
    /// The conflict reaches a committed entry: nothing changed.
    BelowCommit,
}

/// Most acknowledgements a follower holds until the next flush.
const HELD_MESSAGES_MAX: usize = 4096;

/// How many discarded writes a node remembers for [`RaftNode::recent_discards`].
pub const RECENT_DISCARDS_MAX: usize = 1024;

/// How far back a follower scans its log for the start of a conflicting term.
const CONFLICT_SCAN_MAX: u64 = 1024;

impl RaftNode {
    /// Sends `peer` the next entries while its pipeline has room; if nothing was sent and
    /// `heartbeat` is set, sends an empty append (a heartbeat).
    pub(super) fn send_append(&mut self, peer: NodeId, heartbeat: bool) -> Result<()> {
        if self.snapshot_wanted(peer) {
            return self.send_snapshot(peer, heartbeat);
        }
        let last = self.log.last_position().index;
        let (entries_max, bytes_max) = (
            self.config.append_entries_max,
            self.config.append_size_max_bytes,
        );
        let inflight_max = self.config.inflight_appends_max;
        let (term, commit) = (self.term, self.commit);
        let state = self.leader_state();
        let read_sequence = state.read_sequence;
        let mut progress = state.progress[&peer].clone();
        let mut messages = Vec::new();
        while progress.inflight.len() < inflight_max && progress.next <= last {
            let previous_index = progress.next.previous().expect("next is at least 1");
            let previous = self.position_at(previous_index);
            let entries: Vec<WireEntry> = self
                .log
                .read_range(progress.next, entries_max, bytes_max)?
                .into_iter()
                .map(|entry| WireEntry {
                    position: entry.position,
                    payload: entry.payload,
                })
                .collect();
            let sent_last = entries.last().expect("next <= last").position.index;
            progress.next = sent_last.next();
            progress.inflight.push_back(sent_last);
            messages.push(Message::Append {
                term,
                previous,
                entries,
                commit,
                read_sequence,
            });
        }
        debug_assert!(progress.inflight.len() <= inflight_max);
        debug_assert!(
            progress
                .inflight
                .iter()
                .zip(progress.inflight.iter().skip(1))
                .all(|(a, b)| a < b)
        );
        if messages.is_empty() && heartbeat {
            // With nothing in flight, the heartbeat checks the entry before `next`: the
            // follower's own last entry when its rejection hinted so. Checking only the
            // acknowledged entry livelocked a follower that had compacted it (it holds
            // entries from another leader, cannot check the old one, hints its last
            // index, and never gets a check there). The entry may be compacted here; the
            // last compacted one still has a known term.
            let checked = match progress.inflight.is_empty() {
                true => progress.next.previous().expect("next >= 1").min(last),
                false => progress.matched,
            };
            let floor = self.log.first_index().previous().expect("first index >= 1");
            let previous = self.position_at(checked.max(floor));
            messages.push(Message::Append {
                term,
                previous,
                entries: Vec::new(),
                commit,
                read_sequence,
            });
        }
        self.leader_state().progress.insert(peer, progress);
        for message in messages {
            self.send(peer, message);
        }
        Ok(())
    }

    /// The position of the entry at `index`, which the leader's log holds.
    fn position_at(&self, index: LogIndex) -> LogPosition {
        let term = self
            .log
            .term_at(index)
            .expect("the leader's log holds every index it sends from");
        LogPosition { term, index }
    }

    /// Checks an append's entries: contiguous after `previous`, terms non-decreasing and
    /// not above the current term, payloads that decode, a bounded count.
    fn valid_entries(&self, previous: LogPosition, entries: &[WireEntry]) -> bool {
        let span = entries.len() as u64 + 1;
        if entries.len() > REPLICATION_BATCH_ENTRIES_MAX
            || previous.index.0.checked_add(span).is_none()
        {
            return false;
        }
        let mut expected = previous;
        for entry in entries {
            let position = entry.position;
            if position.index != expected.index.next()
                || position.term < expected.term
                || position.term > self.term
                || entry.payload.len() > PAYLOAD_SIZE_MAX_BYTES
                || Command::validate(&entry.payload).is_err()
            {
                return false;
            }
            expected = position;
        }
        previous.term <= self.term
    }

    pub(super) fn handle_append(
        &mut self,
        now: Instant,
        from: NodeId,
        previous: LogPosition,
        entries: Vec<WireEntry>,
        commit: LogIndex,
        read_sequence: u64,
    ) -> Result<()> {
        // A malformed append proves nothing about a live leader: it must not refresh the
        // leader's contact nor delay an election.
        if !self.valid_entries(previous, &entries) {
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        if !self.accept_leader(now, from)? {
            return Ok(());
        }
        if self.snapshot_needed {
            return self.answer_snapshot_needed(from, read_sequence);
        }
        let term = self.term;
        let held_term = self.log.term_at(previous.index);
        if held_term.is_some() && previous.index <= self.commit && held_term != Some(previous.term)
        {
            // Our committed entry differs from the leader's: see `AppendResult::SnapshotNeeded`.
            return self.answer_snapshot_needed(from, read_sequence);
        }
        if held_term != Some(previous.term) {
            let next = self.conflict_hint(previous.index);
            let result = AppendResult::Rejected { next };
            let response = Message::AppendResponse {
                term,
                result,
                read_sequence,
            };
            self.send(from, response);
            return Ok(());
        }
        let matched = LogIndex(previous.index.0 + entries.len() as u64);
        match self.append_missing(entries)? {
            Appended::Done => {}
            Appended::Overloaded => {
                self.stats.messages_dropped += 1;
                return Ok(());
            }
            Appended::BelowCommit => return self.answer_snapshot_needed(from, read_sequence),
        }
        let commit = commit.min(matched);
        if commit > self.commit {
            self.commit = commit;
            self.log.mark_committed(commit);
        }
        let result = AppendResult::Accepted { matched };
        let response = Message::AppendResponse {
            term,
            result,
            read_sequence,
        };
        self.hold(from, response);
        Ok(())
    }

    /// Holds a message that claims durability until the next flush.
    pub(super) fn hold(&mut self, to: NodeId, message: Message) {
        if planted!(self.config, FollowerAckBeforeDurable) {
            self.send(to, message);
        } else if self.held.len() + self.held_until_sync.len() < HELD_MESSAGES_MAX {
            self.held.push((to, message));
        } else {
            // Acknowledgements are cumulative: the leader's next heartbeat recovers.
            self.stats.messages_dropped += 1;
        }
    }

    /// Checks that `from` may lead this node in the current term (the message passed
    /// term fencing) and records the contact; returns false (and counts a drop) if not.
    pub(super) fn accept_leader(&mut self, now: Instant, from: NodeId) -> Result<bool> {
        match &self.role {
            Role::Leader(_) => {
                // Two leaders in one term cannot happen with correct peers.
                self.stats.messages_dropped += 1;
                return Ok(false);
            }
            Role::Follower {
                leader: Some(leader),
            } if *leader != from => {
                self.stats.messages_dropped += 1;
                return Ok(false);
            }
            Role::Follower { .. } => self.role = Role::Follower { leader: Some(from) },
            Role::PreCandidate { .. } | Role::Candidate { .. } => {
                self.become_follower(now, self.term, Some(from))?;
            }
        }
        self.leader_contact = Some(now);
        self.reset_election_deadline(now);
        Ok(true)
    }

    /// Answers an append whose conflict reaches this node's commit index: from now on
    /// every append is answered so, until a snapshot replaces the store and the log.
    fn answer_snapshot_needed(&mut self, from: NodeId, read_sequence: u64) -> Result<()> {
        self.snapshot_needed = true;
        self.stats.snapshots_needed += 1;
        let response = Message::AppendResponse {
            term: self.term,
            result: AppendResult::SnapshotNeeded,
            read_sequence,
        };
        self.send(from, response);
        Ok(())
    }

    /// Where the leader should resume after a failed consistency check at `index`.
    fn conflict_hint(&self, index: LogIndex) -> LogIndex {
        let last = self.log.last_position().index;
        let Some(conflict_term) = self.log.term_at(index).filter(|_| index <= last) else {
            return last.next();
        };
        let floor = self.commit.next();
        let mut hint = index;
        let mut steps = 0;
        while hint > floor && steps < CONFLICT_SCAN_MAX {
            let before = hint.previous().expect("hint above floor >= 1");
            if self.log.term_at(before) != Some(conflict_term) {
                break;
            }
            hint = before;
            steps += 1;
        }
        hint.max(LogIndex(1))
    }

    /// Appends the entries the log lacks, truncating a conflicting uncommitted suffix
    /// first. Changes nothing if the conflict reaches a committed entry; appends nothing
    /// if the log's pending buffer is full (after the truncation, which is safe: it
    /// removes only uncommitted entries the leader does not have).
    fn append_missing(&mut self, entries: Vec<WireEntry>) -> Result<Appended> {
        let last = self.log.last_position().index;
        let mut first_new = entries.len();
        for (offset, entry) in entries.iter().enumerate() {
            let index = entry.position.index;
            if index > last || self.log.term_at(index) != Some(entry.position.term) {
                first_new = offset;
                break;
            }
        }
        let Some(first) = entries.get(first_new) else {
            return Ok(Appended::Done);
        };
        let after = first.position.index.previous().expect("entries start at 1");
        if after < last {
            // Neither a committed entry nor one the store applied (a deposed leader of a
            // lossy mode applied beyond the commit index) can be truncated away: a
            // snapshot replaces store and log. The divergence point is remembered, so
            // that the install reports exactly the writes it discards.
            let applied = self.store.applied_position().index;
            if after < self.commit.max(applied) {
                let known = self.divergence_after.unwrap_or(after);
                self.divergence_after = Some(known.min(after));
                return Ok(Appended::BelowCommit);
            }
            self.discard_log_entries(Discard::After(after))?;
        }
        let new: Vec<Entry> = entries
            .into_iter()
            .skip(first_new)
            .map(|entry| Entry {
                position: entry.position,
                payload: entry.payload,
            })
            .collect();
        match self.log.append(&new) {
            Ok(()) => {
                self.note_appended_memberships(&new)?;
                Ok(Appended::Done)
            }
            // The pending buffer is full until the next flush: drop the append unanswered
            // (the leader resends it); a peer's message must never stop this node.
            Err(Error::Overloaded(_)) => Ok(Appended::Overloaded),
            Err(error) => Err(error),
        }
    }

    /// Emits [`Output::Discarded`] for the writes this node proposed in `from..=to`.
    pub(super) fn report_discarded_writes(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        certain: bool,
    ) -> Result<()> {
        let mut next = from;
        let mut writes = Vec::new();
        while next <= to {
            let count = usize::try_from(to.0 - next.0 + 1).unwrap_or(usize::MAX);
            let entries = self.log.read_range(
                next,
                count.min(REPLICATION_BATCH_ENTRIES_MAX),
                self.config.append_size_max_bytes,
            )?;
            let read_last = entries.last().expect("the log holds from..=to").position;
            for entry in entries {
                let Ok(Command::Write {
                    origin,
                    request_id,
                    write,
                    ..
                }) = Command::decode(&entry.payload)
                else {
                    continue;
                };
                // Only client writes this node proposed: its own internal writes (a
                // lease expiry) answer no client.
                if origin != self.id || request_id == INTERNAL_REQUEST {
                    continue;
                }
                writes.push(discarded_write(entry.position, request_id, write, certain));
                if writes.len() == DISCARD_REPORT_WRITES_MAX {
                    self.emit_discarded(std::mem::take(&mut writes));
                }
            }
            next = read_last.index.next();
        }
        if !writes.is_empty() {
            self.emit_discarded(writes);
        }
        Ok(())
    }

    fn emit_discarded(&mut self, writes: Vec<DiscardedWrite>) {
        self.stats.writes_discarded += writes.len() as u64;
        for write in &writes {
            if self.recent_discards.len() == RECENT_DISCARDS_MAX {
                self.recent_discards.pop_front();
            }
            self.recent_discards.push_back(write.clone());
        }
        self.outputs.push_back(Output::Discarded { writes });
    }

    pub(super) fn handle_append_response(
        &mut self,
        now: Instant,
        from: NodeId,
        result: AppendResult,
        read_sequence: u64,
    ) -> Result<()> {
        if !matches!(self.role, Role::Leader(_)) {
            return Ok(());
        }
        let last = self.log.last_position().index;
        let state = self.leader_state();
        if read_sequence > state.read_sequence {
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        let Some(progress) = state.progress.get_mut(&from) else {
            // Not (or no longer) a member: nothing to track.
            self.stats.messages_dropped += 1;
            return Ok(());
        };
        progress.recently_active = true;
        progress.last_ack = Some(now);
        progress.read_sequence = progress.read_sequence.max(read_sequence);
        match result {
            AppendResult::Accepted { matched } => {
                if matched > last {
                    self.stats.messages_dropped += 1;
                    return Ok(());
                }
                // Only progress counts as an acknowledgement of the pipeline: answers
                // to heartbeats (and duplicates) must not keep a pipeline of lost
                // appends looking alive.
                if matched > progress.matched {
                    progress.acked_since_heartbeat = true;
                    progress.matched = matched;
                }
                let acknowledged = progress.matched;
                while progress
                    .inflight
                    .front()
                    .is_some_and(|sent| *sent <= acknowledged)
                {
                    progress.inflight.pop_front();
                }
                progress.next = progress.next.max(matched.next());
                progress.resend_from = progress.matched.next();
                self.advance_commit(now);
                self.step_down_if_removed(now)?;
                if !self.is_leader() {
                    return Ok(());
                }
                self.forget_snapshot_if_caught_up(from);
            }
            AppendResult::SnapshotNeeded => {
                progress.snapshot_needed = true;
                progress.inflight.clear();
            }
            AppendResult::Rejected { next } => {
                if next <= progress.matched {
                    return Ok(()); // stale
                }
                progress.acked_since_heartbeat = true;
                progress.inflight.clear();
                progress.next = next.min(last.next()).max(progress.matched.next());
                progress.resend_from = progress.next;
            }
        }
        self.send_append(from, false)
    }

    /// Raises the commit index (Raft's rule: durable on a majority, through an entry of
    /// the current term; widened to the acknowledgement point in a safe mode) and the
    /// acknowledged index (the commit mode's rule, same term restriction). See
    /// `commit.rs`.
    pub(super) fn advance_commit(&mut self, now: Instant) {
        let mut own = self.log.durable_position().index;
        if planted!(self.config, AckBeforeFsync) {
            own = self.log.last_position().index;
        }
        let majority = self.majority_durable_index(own);
        let acknowledgeable = self.acknowledgeable_index(now, own);
        let lossy = self.commit_mode_is_lossy();
        let safe = if lossy && !planted!(self.config, AsyncAckCountedAsSynchronous) {
            majority
        } else {
            majority.max(acknowledgeable)
        };
        let term = self.term;
        let of_this_term =
            |log: &replikv_storage::log::Log, index: LogIndex| log.term_at(index) == Some(term);
        let counting_older_terms = planted!(self.config, CommitOlderTermByCounting);
        if safe > self.commit && (of_this_term(&self.log, safe) || counting_older_terms) {
            self.commit = safe;
            self.log.mark_committed(safe);
        }
        let commit = self.commit;
        let acknowledged_ok = of_this_term(&self.log, acknowledgeable);
        let state = self.leader_state();
        if acknowledged_ok && acknowledgeable > state.acknowledged {
            state.acknowledged = acknowledgeable;
        }
        if !lossy {
            // A safe mode never acknowledges beyond what survives every failover.
            assert!(
                state.acknowledged <= commit,
                "acknowledged {} beyond commit {commit} in a safe mode",
                state.acknowledged
            );
        }
    }

    /// The highest index durable on a majority of the current configuration's voters
    /// (this node's entries count once durable, `own`, if it is a voter).
    fn majority_durable_index(&mut self, own: LogIndex) -> LogIndex {
        let matched = self.per_voter(own, LogIndex::ZERO, |p| p.matched);
        self.quorum_value(matched, LogIndex::ZERO)
    }

    /// The highest index the commit mode would acknowledge, before the term rule.
    fn acknowledgeable_index(&mut self, now: Instant, own: LogIndex) -> LogIndex {
        let mode = self.config.commit_mode;
        if mode == CommitMode::Majority {
            return self.majority_durable_index(own);
        }
        if !self.is_voter(self.id) {
            // A leader removing itself does not count its own copy: until it steps
            // down, wait for every voter (the strictest reading of any mode).
            let matched = self.per_voter(own, LogIndex::ZERO, |p| p.matched);
            return matched.into_iter().min().unwrap_or(LogIndex::ZERO).min(own);
        }
        let reachable_ms = self.config.election_timeout_ms_max;
        let voters = self.voter_peers();
        let state = self.leader_state();
        let voter_progress = || {
            state
                .progress
                .iter()
                .filter(|(peer, _)| voters.binary_search(peer).is_ok())
                .map(|(_, progress)| progress)
        };
        let followers = || voter_progress().map(|p| p.matched);
        let index = match mode {
            CommitMode::Majority => unreachable!("handled above"),
            CommitMode::Async => own,
            CommitMode::All => followers().min().unwrap_or(own),
            CommitMode::SemiSync {
                followers: count,
                choice: SyncChoice::Any,
            } => {
                let mut matched: Vec<LogIndex> = followers().collect();
                matched.sort_unstable_by(|a, b| b.cmp(a));
                matched.get(count - 1).copied().unwrap_or(LogIndex::ZERO)
            }
            CommitMode::SemiSync {
                followers: count,
                choice: SyncChoice::First,
            } => {
                let reachable = |progress: &Progress| {
                    progress.last_ack.is_some_and(|at| {
                        now.saturating_duration_since(at) <= Duration::from_millis(reachable_ms)
                    })
                };
                // Priority is id order (the map's order): reachable followers first,
                // then the unreachable ones, each group by priority.
                let (mut chosen, others): (Vec<&Progress>, Vec<&Progress>) =
                    voter_progress().partition(|p| reachable(p));
                chosen.extend(others);
                if chosen.len() < count {
                    LogIndex::ZERO
                } else {
                    chosen
                        .iter()
                        .take(count)
                        .map(|progress| progress.matched)
                        .min()
                        .expect("count >= 1 followers")
                }
            }
        };
        index.min(own)
    }

    /// Whether this group's commit mode can lose acknowledged writes on failover.
    pub(super) fn commit_mode_is_lossy(&self) -> bool {
        self.config.commit_mode.is_lossy(self.voters())
    }
}

/// What a discarded client write reports: its key and the value it would have left.
fn discarded_write(
    position: LogPosition,
    request_id: RequestId,
    write: StoreWrite,
    certain: bool,
) -> DiscardedWrite {
    let (key, value): (Key, Option<Value>) = match write {
        StoreWrite::Put { key, value } => (key, Some(value)),
        StoreWrite::Delete { key } => (key, None),
        StoreWrite::CompareAndSetValue { key, new, .. }
        | StoreWrite::CompareAndSetVersion { key, new, .. } => (key, Some(new)),
        StoreWrite::PutFenced { key, value, .. } | StoreWrite::PutWithExpiry { key, value, .. } => {
            (key, Some(value))
        }
        StoreWrite::DeleteFenced { key, .. } | StoreWrite::DeleteExpired { key, .. } => (key, None),
        // An expiry change carries no value (the value it leaves is the key's).
        StoreWrite::Expire { key, .. } => (key, None),
        // A lease's grant, renewal or release: the lease's name, no value.
        StoreWrite::AcquireLease { name, .. }
        | StoreWrite::RenewLease { name, .. }
        | StoreWrite::ReleaseLease { name, .. }
        | StoreWrite::ExpireLease { name, .. } => (name, None),
    };
    DiscardedWrite {
        request_id,
        position,
        key,
        value,
        certain,
    }
}
