//! Snapshots: seeding a follower the log cannot catch up, and compacting the log.
//!
//! **Why.** Every node compacts its log below what its store holds durably: the store
//! *is* the snapshot, so the entries it applied are no longer needed locally. A follower
//! that is new, or fell so far behind that the leader compacted the entries it lacks,
//! cannot be repaired by appends; it is sent the leader's state store instead, then
//! catches up from the snapshot's position with ordinary appends. The same path repairs a
//! follower whose *committed* log conflicts with its leader's (lossy commit modes can
//! cause it; see `AppendResult::SnapshotNeeded`): truncation cannot undo an applied
//! store, a snapshot replaces it.
//!
//! **Leader.** A follower gets a snapshot when its next index lies below the log's first
//! index, or when it answered `SnapshotNeeded`. The leader opens a [`StoreSnapshot`] (a
//! redb read transaction: consistent at its applied position, and the store keeps
//! applying beside it) and streams it in chunks of at most
//! `snapshot_chunk_size_max_bytes`, one chunk in flight: each answer names the follower's
//! resume point (the key after which it wants the next chunk) and the leader sends that
//! chunk. So a lost chunk or answer costs one resend, which the heartbeat does when a
//! whole interval passed without progress, and a follower that crashed mid-transfer
//! resumes from what it made durable. For a follower that is merely behind, the leader's
//! applied position is always ahead of the follower's. One that answered
//! `SnapshotNeeded` may have applied more than the leader (entries the leader's history
//! lacks): it installs the snapshot as a *replacing* install
//! (`Store::install_begin_replacing`, recorded with the install so a crash keeps it),
//! accepted whatever its position. The leader does not wait to apply an entry of its own
//! term first: with the diverged node its only reachable follower, it never could. A new
//! leader starts a new transfer at its own position; the
//! follower abandons the old install when the first chunk of the new one arrives.
//!
//! **Follower.** A chunk goes to the store's install (`Store::install_chunk`: a staging
//! table, non-durable commits, synced at the next flush). Answers about progress claim
//! nothing durable: after a crash the follower reports the resume point it really has.
//! On the last chunk the install finishes (one durable transaction replacing the state
//! and setting the applied position), then the log is reset to the snapshot's position
//! (durable when it returns) unless it already holds that position and the node did not
//! diverge, in which case its later entries are kept. Commit and applied become the
//! snapshot's index, and only then does the follower answer `Installed`. A crash between
//! the store's switch and the log's reset is finished by `RaftNode::open`. A follower
//! that already holds the snapshot's position committed answers `Installed` at once
//! (held until the next flush, like an append acknowledgement).
//!
//! **Compaction.** At the end of each flush, every node drops the log segments whose
//! entries all lie at or below its store's durable applied position (taken before the
//! flush's own store sync, so an entry committed in this flush stays readable until a
//! later event). The leader also keeps what its followers still need (from their matched
//! index, or their snapshot's position during a transfer), except for a follower more
//! than `log_retained_entries_max` entries behind: it gets a snapshot, and the leader's
//! log stays bounded. Compaction removes whole segments only, so its work per flush is
//! bounded by the log retained.

use super::message::{Message, SnapshotResult, WireChunk};
use super::node::{Discard, RaftNode, Role};
use replikv_core::error::{Error, Result};
use replikv_core::{Instant, Key, LogPosition, NodeId};
use replikv_storage::store::{SnapshotChunk, StoreSnapshot};

/// A snapshot being streamed to one follower.
#[derive(Debug)]
pub(crate) struct SnapshotTransfer {
    snapshot: StoreSnapshot,
    position: LogPosition,
    /// The follower's last reported resume point: the next chunk starts after it.
    after: Option<Key>,
    /// An answer moved the resume point since the previous heartbeat (false at the
    /// start, so the first heartbeat resends the first chunk if nothing came back).
    progressed: bool,
}

impl RaftNode {
    /// Leader: whether `peer` can only be caught up by a snapshot.
    pub(super) fn snapshot_wanted(&mut self, peer: NodeId) -> bool {
        let first_index = self.log.first_index();
        let state = self.leader_state();
        let progress = &state.progress[&peer];
        progress.snapshot_needed || progress.next < first_index
    }

    /// Leader: starts a transfer to `peer`, or, on a heartbeat, resends the chunk it
    /// waits for if no answer moved it during the last interval.
    pub(super) fn send_snapshot(&mut self, peer: NodeId, heartbeat: bool) -> Result<()> {
        let applied = self.store.applied_position();
        let Role::Leader(state) = &mut self.role else {
            unreachable!("only a leader sends snapshots")
        };
        if let Some(transfer) = state.snapshots.get_mut(&peer) {
            if heartbeat && !std::mem::take(&mut transfer.progressed) {
                return self.send_chunk(peer);
            }
            return Ok(());
        }
        let snapshot = self.store.snapshot()?;
        assert_eq!(
            snapshot.position(),
            applied,
            "a snapshot at the applied position"
        );
        let transfer = SnapshotTransfer {
            snapshot,
            position: applied,
            after: None,
            progressed: false,
        };
        state.snapshots.insert(peer, transfer);
        self.stats.snapshots_started += 1;
        self.send_chunk(peer)
    }

    /// Leader: sends the chunk after the follower's resume point.
    fn send_chunk(&mut self, peer: NodeId) -> Result<()> {
        let (term, bytes_max) = (self.term, self.config.snapshot_chunk_size_max_bytes);
        let state = self.leader_state();
        let transfer = &state.snapshots[&peer];
        let chunk = transfer
            .snapshot
            .read_chunk(transfer.after.as_ref(), bytes_max)?;
        self.stats.snapshot_chunks_sent += 1;
        self.stats.snapshot_bytes_sent += chunk.size_bytes() as u64;
        let chunk = WireChunk(chunk);
        self.send(peer, Message::InstallSnapshot { term, chunk });
        Ok(())
    }

    /// Leader: a follower answered a chunk of the snapshot at `position`.
    pub(super) fn handle_install_snapshot_response(
        &mut self,
        now: Instant,
        from: NodeId,
        position: LogPosition,
        result: SnapshotResult,
    ) -> Result<()> {
        let Role::Leader(state) = &mut self.role else {
            return Ok(());
        };
        let Some(progress) = state.progress.get_mut(&from) else {
            // Not (or no longer) a member: nothing to track.
            self.stats.messages_dropped += 1;
            return Ok(());
        };
        progress.recently_active = true;
        let Some(transfer) = state
            .snapshots
            .get_mut(&from)
            .filter(|transfer| transfer.position == position)
        else {
            return Ok(()); // an answer about another (older) transfer
        };
        match result {
            SnapshotResult::Resume { after } => {
                if after == transfer.after {
                    return Ok(()); // a duplicate: the heartbeat resends if need be
                }
                transfer.after = after;
                transfer.progressed = true;
                self.send_chunk(from)
            }
            SnapshotResult::Installed => {
                state.snapshots.remove(&from);
                progress.snapshot_needed = false;
                progress.matched = progress.matched.max(position.index);
                progress.next = progress.matched.next();
                progress.resend_from = progress.next;
                progress.inflight.clear();
                progress.acked_since_heartbeat = true;
                self.stats.snapshots_sent += 1;
                self.advance_commit(now);
                self.send_append(from, false)
            }
        }
    }

    /// Leader: drops the transfer to `peer` once appends reach it again (an answer to an
    /// append sent before the transfer began can show that), releasing its read
    /// transaction and what it held back from compaction.
    pub(super) fn forget_snapshot_if_caught_up(&mut self, peer: NodeId) {
        if !self.snapshot_wanted(peer) {
            self.leader_state().snapshots.remove(&peer);
        }
    }

    /// Follower: a chunk of the leader's snapshot arrived.
    pub(super) fn handle_install_snapshot(
        &mut self,
        now: Instant,
        from: NodeId,
        chunk: SnapshotChunk,
    ) -> Result<()> {
        let position = chunk.position;
        if position.term > self.term || position.index.0 == 0 {
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        if !self.accept_leader(now, from)? {
            return Ok(());
        }
        let term = self.term;
        let answer = |result| Message::InstallSnapshotResponse {
            term,
            position,
            result,
        };
        let held_term = self.log.term_at(position.index);
        if !self.snapshot_needed
            && position.index <= self.commit
            && held_term.is_none_or(|held| held == position.term)
        {
            // Committed here already (compacted, or the same entry): nothing to install.
            // Were it not the same entry, the next append's check would find the
            // conflict and ask for a snapshot.
            self.hold(from, answer(SnapshotResult::Installed));
            return Ok(());
        }
        if position <= self.store.applied_position() && !self.snapshot_needed {
            self.stats.messages_dropped += 1; // older than what we applied: no use
            return Ok(());
        }
        if !self.install_chunk(&chunk)? {
            return Ok(());
        }
        let install = self
            .store
            .install_progress()
            .expect("an install in progress");
        let result = if install.is_complete() {
            self.finish_install(position)?;
            SnapshotResult::Installed
        } else {
            let after = install.resume_after().cloned();
            SnapshotResult::Resume { after }
        };
        self.send(from, answer(result));
        Ok(())
    }

    /// Follower: adds `chunk` to the install of its snapshot, beginning that install
    /// (abandoning another) if need be. Returns false (counted) for a malformed chunk.
    fn install_chunk(&mut self, chunk: &SnapshotChunk) -> Result<bool> {
        let position = chunk.position;
        let current = self
            .store
            .install_progress()
            .map(|install| install.position());
        if current != Some(position) {
            self.store.install_abort()?;
            if self.snapshot_needed {
                // Diverged: the leader's state replaces ours even if it applied less.
                self.store.install_begin_replacing(position)?;
            } else {
                self.store.install_begin(position)?;
            }
        }
        match self.store.install_chunk(chunk) {
            Ok(true) => {
                self.stats.snapshot_chunks_installed += 1;
                self.stats.snapshot_bytes_installed += chunk.size_bytes() as u64;
                Ok(true)
            }
            Ok(false) => Ok(true), // not the awaited chunk: answer with our resume point
            Err(Error::InvalidInput(_)) => {
                self.stats.messages_dropped += 1;
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    /// Follower: the last chunk is in; switches the store to the snapshot, then the log.
    ///
    /// A node that asked for the snapshot (`snapshot_needed`) knows exactly where its log
    /// parts from its leader's (`divergence_after`) and reports the writes it proposed
    /// beyond that point.
    /// A follower reset by a snapshot it did not ask for (it was too far behind) cannot
    /// tell which of its entries beyond its commit index the leader also holds, so it
    /// reports every write of its own there as discarded, marked uncertain: possibly
    /// too many, never too few. (Exact: persist each term's first index, as Kafka's
    /// leader epochs do, and compare with the leader's; not done yet.) It reports before the store changes, so a crash in between reports again.
    fn finish_install(&mut self, position: LogPosition) -> Result<()> {
        let keep_suffix =
            !self.snapshot_needed && self.log.term_at(position.index) == Some(position.term);
        let last = self.log.last_position().index;
        if !keep_suffix {
            let (first, certain) = match self.divergence_after {
                Some(after) if self.snapshot_needed => (after.next(), true),
                _ => (self.commit.next(), false),
            };
            let first = first.max(self.log.first_index());
            if first <= last {
                self.report_discarded_writes(first, last, certain)?;
            }
        }
        self.store.install_finish()?;
        if keep_suffix {
            self.commit = self.commit.max(position.index);
            self.note_applied_memberships();
        } else {
            self.discard_log_entries(Discard::ResetTo(position))?;
            // Acknowledgements held for entries the reset just removed must not go out.
            for held in [&mut self.held, &mut self.held_until_sync] {
                held.retain(|(_, message)| !matches!(message, Message::AppendResponse { .. }));
            }
            // Lowers the commit index only for a node that diverged (applied entries
            // its leader lacks); the snapshot replaced what it had applied.
            self.commit = position.index;
        }
        self.log.mark_committed(position.index);
        self.snapshot_needed = false;
        self.divergence_after = None;
        self.stats.snapshots_installed += 1;
        Ok(())
    }

    /// Drops the log prefix nobody needs any more; see the module documentation.
    pub(super) fn compact_log(&mut self) -> Result<()> {
        // Never past the commit index: a deposed leader of a lossy mode applied entries
        // a failover may take back, and must still read them to report them discarded.
        let mut floor = self.store.durable_applied_position().index.min(self.commit);
        if let Role::Leader(state) = &self.role {
            let last = self.log.last_position().index;
            for (peer, progress) in &state.progress {
                let needed = state
                    .snapshots
                    .get(peer)
                    .map_or(progress.matched, |transfer| transfer.position.index);
                if last.0.saturating_sub(needed.0) <= self.config.log_retained_entries_max {
                    floor = floor.min(needed);
                }
            }
        }
        let first_before = self.log.first_index();
        if floor < first_before {
            return Ok(());
        }
        self.log.truncate_prefix(floor.next())?;
        self.stats.entries_compacted += self.log.first_index().0 - first_before.0;
        Ok(())
    }
}
