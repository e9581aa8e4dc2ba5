//! Key expiry in Raft: stamping entries with the leader's wall clock, judging reads by
//! the serving node's clock, and the leader's sweep of expired keys.
//!
//! **Stamps.** The driver tells the node the wall-clock time before each input
//! ([`Replica::set_wall_clock`](replikv_core::replica::Replica::set_wall_clock)); the
//! node never reads a clock. A leader writes its time into every write entry it proposes
//! (`Command::Write::stamp_unix_ms`), and the state machine decides the write at that
//! stamp: a relative expiry (`EX`, `EXPIRE`) counts from it, and a key expired at it is
//! absent for conditional writes. Applying reads only the stamps, never a clock, so every
//! replica computes the same expiry times and the same outcomes (the determinism rule
//! of `replikv_core::expiry`). Stamps do not go backwards along a leader's proposals:
//! a leader stamps `max(its clock, the last stamp it proposed, the highest stamp it has
//! applied)`, so a new leader whose clock is behind its predecessor's continues from
//! the predecessor's stamps (as far as it has applied them; an uncommitted tail it has
//! not applied may carry later stamps, which only makes those entries' times a little
//! later than their successors': the state machine does not need monotonic stamps, only
//! the same stamps on every replica).
//!
//! **Reads** judge expiry at `max(the node's clock, the highest stamp it has applied)`:
//! a key the log already treats as expired never reads as present. A linearizable read
//! is served by the leader, so it uses the leader's clock; a follower or session read
//! uses the follower's, and a follower whose clock is behind may show a key up to its
//! skew after its expiry (or hide it that much before, if ahead). TTL answers come from
//! the same clock.
//!
//! **The sweep.** Expired values stay stored, reading as absent, until the leader
//! deletes them: every [`SWEEP_INTERVAL_MS`] it asks the store's expiry index for up to
//! [`SWEEP_KEYS_MAX`] keys expired at its clock and proposes one `DeleteExpired` entry
//! per key, conditional on the key still having that expiry time (a key written again
//! meanwhile survives). It proposes the next round only once the last one applied, so
//! a key is never proposed twice in one term and the sweep never floods the log (a new
//! term forgets the last round: it may have been truncated away). While the leader
//! transfers its leadership it proposes no sweep round, as it takes no client write:
//! the target must catch up with a log that has stopped growing, and it sweeps itself
//! once it leads.

use super::command::INTERNAL_REQUEST;
use super::message::Command;
use super::node::{RaftNode, Role};
use replikv_core::error::{Error, Result};
use replikv_core::{Instant, LogIndex, Term};
use replikv_storage::store::StoreWrite;
use std::time::Duration;

/// How often a leader looks for expired keys to delete.
pub const SWEEP_INTERVAL_MS: u64 = 250;

/// Most keys one sweep round deletes (one log entry each).
pub const SWEEP_KEYS_MAX: usize = 128;

/// The node's view of calendar time; see the module documentation.
#[derive(Clone, Debug, Default)]
pub(super) struct ExpiryClock {
    /// The wall clock the driver last passed, in Unix milliseconds.
    pub(super) wall_unix_ms: u64,
    /// The highest stamp this node proposed as leader.
    pub(super) proposed_stamp_unix_ms: u64,
    /// The highest stamp of the entries this node applied (since it opened).
    pub(super) applied_stamp_unix_ms: u64,
    /// When the leader next sweeps.
    pub(super) sweep_at: Option<Instant>,
    /// The last index of the sweep round in flight: no new round before it applied.
    pub(super) sweep_last_index: LogIndex,
    /// The term `sweep_last_index` was proposed in: a round of an earlier leadership
    /// may have been truncated away, so a new term forgets it.
    pub(super) sweep_term: Term,
}

impl RaftNode {
    /// The stamp of an entry this leader proposes now (see the module documentation).
    pub(super) fn next_stamp_unix_ms(&mut self) -> u64 {
        let clock = &mut self.expiry;
        let stamp = clock
            .wall_unix_ms
            .max(clock.proposed_stamp_unix_ms)
            .max(clock.applied_stamp_unix_ms);
        clock.proposed_stamp_unix_ms = stamp;
        stamp
    }

    /// The time at which this node judges expiry for the reads it serves.
    pub(super) fn read_time_unix_ms(&self) -> u64 {
        self.expiry
            .wall_unix_ms
            .max(self.expiry.applied_stamp_unix_ms)
    }

    /// Notes the stamp of an applied entry.
    pub(super) fn note_applied_stamp(&mut self, stamp_unix_ms: u64) {
        let clock = &mut self.expiry;
        clock.applied_stamp_unix_ms = clock.applied_stamp_unix_ms.max(stamp_unix_ms);
    }

    /// On a leader's tick: one sweep round, when it is due and the last one applied.
    pub(super) fn expiry_sweep(&mut self, now: Instant) -> Result<()> {
        if !matches!(self.role, Role::Leader(_)) {
            self.expiry.sweep_at = None;
            return Ok(());
        }
        if self.expiry.sweep_at.is_some_and(|at| now < at) {
            return Ok(());
        }
        self.expiry.sweep_at = Some(now + Duration::from_millis(SWEEP_INTERVAL_MS));
        if self.expiry.sweep_term != self.term {
            self.expiry.sweep_term = self.term;
            self.expiry.sweep_last_index = LogIndex(0);
        }
        if self.store.applied_position().index < self.expiry.sweep_last_index {
            return Ok(());
        }
        if self.transfer_target().is_some() {
            // A transfer refuses client writes so that the target can catch up with a
            // log that stops growing; the sweep waits too (the new leader sweeps).
            return Ok(());
        }
        let expired = self
            .store
            .expired_keys(self.expiry.wall_unix_ms, SWEEP_KEYS_MAX)?;
        for (key, expires_at_unix_ms) in expired {
            let write = StoreWrite::DeleteExpired {
                key,
                expires_at_unix_ms,
            };
            match self.append_stamped_internal(write)? {
                Some(index) => self.expiry.sweep_last_index = index,
                None => break,
            }
            self.stats.expired_keys_proposed += 1;
        }
        Ok(())
    }

    /// Appends a write the leader proposes on its own behalf, stamped; nobody waits for
    /// it. Returns its index, or `None` if the log's buffer is full (tried again later).
    pub(super) fn append_stamped_internal(
        &mut self,
        write: StoreWrite,
    ) -> Result<Option<LogIndex>> {
        let command = Command::Write {
            origin: self.id,
            request_id: INTERNAL_REQUEST,
            write,
            stamp_unix_ms: self.next_stamp_unix_ms(),
        };
        match self.append_command(&command) {
            Err(Error::Overloaded(_)) => Ok(None),
            Err(error) => Err(error),
            Ok(index) => {
                self.leader_state().replicate_needed = true;
                Ok(Some(index))
            }
        }
    }
}
