//! # Single-leader replication: Raft, `majority` commit mode
//!
//! One node, the leader, orders every write into a replicated log; the others copy the
//! log and apply it, in order, to their state store. Raft decides who leads and when an
//! entry is committed. This module is that backbone, written as a sans-IO state machine
//! ([`RaftNode`], a [`Replica`](replikv_core::replica::Replica)).
//!
//! ## The protocol as used here
//!
//! - **Terms** number leaderships. Every message carries its sender's term; a higher term
//!   makes the receiver a follower of it, a lower one marks a stale sender (fencing).
//! - **Elections** start after a randomized timeout without news from a leader. A
//!   pre-vote comes first (a node that could not win never bumps a term), then the real
//!   vote; a node votes once per term, for a candidate whose log is at least as up to
//!   date as its own. Followers ignore (pre-)votes while they hear from their leader, and
//!   a leader that does not hear from a majority within an election timeout steps down
//!   (check-quorum): together they keep a flaky node from deposing a healthy leader.
//! - **Replication**: AppendEntries with the (previous index, previous term) consistency
//!   check, fast backtracking by hints, bounded batches and a bounded pipeline per
//!   follower; empty appends are the heartbeats. A new leader appends a no-op entry.
//! - **Commit** (`majority` mode): an entry is committed once a majority holds it durably
//!   and it is of the leader's term (or precedes such an entry). Committed entries are
//!   applied in order to the store; the leader answers the client from the store's
//!   outcome.
//! - **Reads**: linearizable reads by ReadIndex, local reads from the local store.
//! - **Snapshots and compaction** (`snapshot.rs`): every node drops the log prefix its
//!   store holds durably; the leader also keeps what followers within
//!   `log_retained_entries_max` entries still need. A follower whose next entry was
//!   compacted away is sent the leader's store instead: a consistent redb snapshot,
//!   streamed in chunks of at most `snapshot_chunk_size_max_bytes`, one in flight,
//!   resumed from the follower's reported resume point after a loss, a crash or a new
//!   leader. The follower installs it, resets its log to the snapshot's position, and
//!   continues with appends. A follower whose *committed* entry conflicts with its
//!   leader's (lossy commit modes can cause it; truncation cannot undo an applied store)
//!   answers `SnapshotNeeded` and is repaired the same way.
//!
//! ## Invariants (asserted in the code, and across nodes and over whole runs by [`RaftObserver`])
//!
//! - terms never decrease; a node votes at most once per term;
//! - at most one leader per term (election safety);
//! - two logs with an entry of the same index and term agree on every entry up to it
//!   (log matching); committed prefixes of any two nodes agree;
//! - a leader never truncates its own log; nobody truncates a committed entry;
//! - applied ≤ commit ≤ last index; the commit index never decreases, except on a
//!   follower that diverged (`SnapshotNeeded`), when a snapshot replaces what it applied.
//!
//! ## What is durable when
//!
//! - The **hard state** (term, vote) is stored, with its own syncs, *before* the node acts
//!   on it: before a vote is answered, before a candidate asks for votes, before a
//!   message of a higher term is handled.
//! - **Log appends** are buffered; [`handle_flush`](replikv_core::replica::Replica::handle_flush)
//!   syncs them once for the whole batch (group commit) and only then releases the
//!   follower acknowledgements held meanwhile. The leader counts its own entries towards
//!   a majority once they are durable. Truncations are durable when they return.
//! - The **store** applies without syncing (the log is the source of truth) and is synced
//!   at the end of a flush once `store_sync_entries` entries were applied since its last
//!   sync; it never applies beyond the locally durable log, so after a crash it reopens
//!   at or behind the log and the node re-applies from `store.applied_position()`.
//! - **Compaction** removes only entries at or below the store's *durable* applied
//!   position (as of the flush's start), so the store never reopens behind the log's
//!   first entry; `open` reports that as corruption.
//! - **Snapshot installs**: chunks go to the store's staging table without a sync (the
//!   store is synced at every flush while an install is in progress); answers about
//!   progress claim nothing, since after a crash the follower reports the resume point
//!   it really has. The install's finish is one durable store transaction; the log's
//!   reset that follows is durable when it returns; only then does the follower answer
//!   `Installed`. A crash in between leaves the store ahead of the log, and `open`
//!   finishes the reset.
//!
//! ## Seams for what comes later
//!
//! Other commit modes (`all`, semi-sync, async) change only the commit rule in
//! `replication.rs`; every removal of log entries other than compaction goes through
//! `RaftNode::discard_log_entries` (counted in `RaftStats::entries_truncated`), the
//! place to account for discarded writes. Learners, membership change, leadership
//! transfer, leases, session reads and idempotent retries (a request id applied once)
//! are not implemented yet.

mod client;
pub mod command;
mod election;
mod invariants;
mod leader;
pub mod message;
mod node;
mod replication;
mod snapshot;

#[cfg(test)]
mod tests;

pub use invariants::RaftObserver;
pub use message::{AppendResult, Command, Message, SnapshotResult, WireChunk, WireEntry};
pub use node::{HARD_STATE_FILE_NAME, RaftNode, STORE_FILE_NAME, TERM_MAX};

use replikv_core::error::{Error, Result};
use replikv_core::limits::REPLICATION_BATCH_ENTRIES_MAX;
use replikv_storage::log::{LogOptions, PAYLOAD_SIZE_MAX_BYTES};
use replikv_storage::store::{
    APPLY_BATCH_SIZE_MAX_BYTES, APPLY_BATCH_WRITES_MAX, SNAPSHOT_CHUNK_SIZE_MAX_BYTES,
};

/// Most appends a leader may keep in flight per follower ([`RaftConfig::inflight_appends_max`]).
pub const INFLIGHT_APPENDS_LIMIT: usize = 256;

/// Most client requests a leader may hold unanswered ([`RaftConfig::pending_requests_max`]).
pub const PENDING_REQUESTS_LIMIT: usize = 1 << 20;

/// Bytes the store counts for one write beyond its key and values (see
/// `StoreWrite::size_bytes`); a write's encoded command is never smaller than its key and
/// values, so a write counts at most its payload plus this much towards the store's
/// batch limit. A unit test ties it to the store.
pub(crate) const STORE_WRITE_ALLOWANCE_BYTES: usize = 16;

/// How a [`RaftNode`] is tuned. The defaults suit a LAN and the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// Election timeouts are drawn uniformly from `min..=max` milliseconds.
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    /// A leader sends heartbeats this often.
    pub heartbeat_interval_ms: u64,
    /// Most entries in one append.
    pub append_entries_max: usize,
    /// Most payload bytes in one append (one entry always goes, whatever its size); also
    /// the byte limit of one apply batch.
    pub append_size_max_bytes: usize,
    /// Most appends with entries unacknowledged per follower.
    pub inflight_appends_max: usize,
    /// Most client requests (proposals and reads) a leader holds unanswered.
    pub pending_requests_max: usize,
    /// Most entries applied to the store in one batch.
    pub apply_batch_entries_max: usize,
    /// The store is synced at the end of a flush once this many entries were applied since
    /// its last sync (1: every flush that applied something). The log is the source of
    /// truth, so a lazier store only costs re-applying after a crash; it also bounds how
    /// much redb holds in non-durable commits.
    pub store_sync_entries: u64,
    /// The replication log's options.
    pub log_options: LogOptions,
    /// Most bytes of keys and values in one snapshot chunk (one entry always goes).
    pub snapshot_chunk_size_max_bytes: usize,
    /// The leader keeps log entries a follower still needs only while that follower lags
    /// at most this many entries behind the leader's last entry; a follower further
    /// behind no longer holds back compaction and is sent a snapshot instead. Bounds the
    /// log a slow follower can make the leader keep.
    pub log_retained_entries_max: u64,
}

impl Default for RaftConfig {
    fn default() -> RaftConfig {
        RaftConfig {
            election_timeout_ms_min: 150,
            election_timeout_ms_max: 300,
            heartbeat_interval_ms: 50,
            append_entries_max: 64,
            append_size_max_bytes: 1024 * 1024,
            inflight_appends_max: 4,
            pending_requests_max: 4096,
            apply_batch_entries_max: 256,
            store_sync_entries: 64,
            log_options: LogOptions::default(),
            snapshot_chunk_size_max_bytes: 1024 * 1024,
            log_retained_entries_max: 64 * 1024,
        }
    }
}

impl RaftConfig {
    /// Checks that the numbers make sense together.
    pub fn validate(&self) -> Result<()> {
        let invalid = |text: &str| Err(Error::InvalidInput(format!("raft config: {text}")));
        if self.election_timeout_ms_min == 0
            || self.election_timeout_ms_min > self.election_timeout_ms_max
        {
            return invalid("election timeouts need 0 < min <= max");
        }
        if self.heartbeat_interval_ms == 0
            || self.heartbeat_interval_ms >= self.election_timeout_ms_min
        {
            return invalid("heartbeats must be more frequent than elections");
        }
        if !(1..=REPLICATION_BATCH_ENTRIES_MAX).contains(&self.append_entries_max) {
            return invalid("append_entries_max outside 1..=REPLICATION_BATCH_ENTRIES_MAX");
        }
        if self.inflight_appends_max == 0
            || self.pending_requests_max == 0
            || self.apply_batch_entries_max == 0
            || self.store_sync_entries == 0
            || self.append_size_max_bytes == 0
        {
            return invalid("limits must be positive");
        }
        if !(1..=SNAPSHOT_CHUNK_SIZE_MAX_BYTES).contains(&self.snapshot_chunk_size_max_bytes) {
            return invalid(
                "snapshot_chunk_size_max_bytes outside 1..=SNAPSHOT_CHUNK_SIZE_MAX_BYTES",
            );
        }
        if self.log_retained_entries_max == 0 {
            return invalid("log_retained_entries_max must be positive");
        }
        if self.inflight_appends_max > INFLIGHT_APPENDS_LIMIT {
            return invalid("inflight_appends_max above INFLIGHT_APPENDS_LIMIT");
        }
        if self.pending_requests_max > PENDING_REQUESTS_LIMIT {
            return invalid("pending_requests_max above PENDING_REQUESTS_LIMIT");
        }
        if self.apply_batch_entries_max > APPLY_BATCH_WRITES_MAX {
            return invalid("apply_batch_entries_max above the store's APPLY_BATCH_WRITES_MAX");
        }
        if self.apply_batch_size_max_bytes() > APPLY_BATCH_SIZE_MAX_BYTES {
            return invalid("an apply batch could exceed the store's APPLY_BATCH_SIZE_MAX_BYTES");
        }
        Ok(())
    }

    /// The most bytes one apply batch can count in the store: entries are read with the
    /// append byte limit, except that a first entry is always read whatever its size, and
    /// each write counts a small allowance beyond its payload.
    #[must_use]
    pub fn apply_batch_size_max_bytes(&self) -> usize {
        let payload_bytes = self.append_size_max_bytes.max(PAYLOAD_SIZE_MAX_BYTES);
        let allowance_bytes = self
            .apply_batch_entries_max
            .saturating_mul(STORE_WRITE_ALLOWANCE_BYTES);
        payload_bytes.saturating_add(allowance_bytes)
    }
}

/// What a node counted: for tests, reports and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftStats {
    pub pre_votes_started: u64,
    pub elections_started: u64,
    pub leaderships_won: u64,
    pub check_quorum_step_downs: u64,
    /// Votes from a higher term ignored because a leader was recently heard.
    pub votes_ignored_in_lease: u64,
    /// Messages from an older term.
    pub stale_messages: u64,
    /// Messages dropped as malformed, from an unknown node, or impossible.
    pub messages_dropped: u64,
    /// Log entries removed other than by compaction: a conflicting suffix, or the
    /// entries above a snapshot's position when a snapshot replaced the log.
    pub entries_truncated: u64,
    pub entries_applied: u64,
    pub requests_refused: u64,
    /// Leader: snapshot transfers begun, completed (the follower installed it), and the
    /// chunks and chunk bytes sent (resends included).
    pub snapshots_started: u64,
    pub snapshots_sent: u64,
    pub snapshot_chunks_sent: u64,
    pub snapshot_bytes_sent: u64,
    /// Follower: snapshots installed, chunks and chunk bytes installed.
    pub snapshots_installed: u64,
    pub snapshot_chunks_installed: u64,
    pub snapshot_bytes_installed: u64,
    /// Follower: appends answered `SnapshotNeeded` (a conflict at or below its commit).
    pub snapshots_needed: u64,
    /// Log entries removed by compaction.
    pub entries_compacted: u64,
}
