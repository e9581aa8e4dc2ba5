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
//!
//! ## Writes, retries and leases
//!
//! Every client write travels in the log with a header: the leader that proposed it and
//! the client's request id (client, sequence). The state machine, not the leader, decides
//! what a write did, and it decides it the same way on every replica:
//!
//! - **put, delete, compare-and-set on value or on version.** Versions count every write
//!   to a key, deletes included (tombstones keep them), so a compare-and-set on version
//!   rejects a write based on a stale read even across a delete and a re-create.
//! - **Idempotent retries.** A client that heard nothing back retries under the same
//!   request id, possibly through another leader, so the log may hold the request twice.
//!   The store keeps, per client, the last applied request and its outcome, in the same
//!   transaction as the data: the second copy is answered from the first, never applied.
//!   A retry that reaches the *same* leader while the first copy is still pending joins
//!   it instead of being proposed again. Sessions are bounded (`client_sessions_max`, the
//!   least recently written client evicted, deterministically by log index): a retry
//!   that arrives after its client was evicted applies again. See
//!   `replikv_storage::store::session`.
//! - **Leases with fencing tokens.** Grants, renewals, releases and the check of fenced
//!   writes are state-machine decisions; a grant's token is its log index, so tokens
//!   only grow, and a fenced write with a stale token is refused. Expiry needs a clock,
//!   so it is a command the leader proposes when a lease's time ran out on its clock; a
//!   new leader restarts every lease's time from its election, so a leader change only
//!   ever delays an expiry. See `leases.rs`.
//!
//! ## Invariants (asserted in the code, and across nodes and over whole runs by [`RaftObserver`])
//!
//! - terms never decrease; a node votes at most once per term;
//! - at most one leader per term (election safety);
//! - two logs with an entry of the same index and term agree on every entry up to it
//!   (log matching); committed prefixes of any two nodes agree;
//! - a leader never truncates its own log; nobody truncates a committed entry;
//! - applied ≤ commit ≤ last index; the commit index never decreases.
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
//!
//! ## Seams for what comes later
//!
//! Other commit modes (`all`, semi-sync, async) change only the commit rule in
//! `replication.rs`; snapshots and compaction, learners, membership change, leadership
//! transfer and session reads are not implemented yet. (Client sessions and leases
//! already travel in store snapshots, so snapshot transfer carries them as it comes.)

mod client;
pub mod command;
mod election;
mod invariants;
mod leader;
mod leases;
pub mod message;
mod node;
mod replication;

#[cfg(test)]
mod tests;

pub use invariants::RaftObserver;
pub use leases::LEASE_TTL_MAX_MS;
pub use message::{AppendResult, Command, Message, WireEntry};
pub use node::{HARD_STATE_FILE_NAME, RaftNode, STORE_FILE_NAME, TERM_MAX};

use replikv_core::error::{Error, Result};
use replikv_core::limits::REPLICATION_BATCH_ENTRIES_MAX;
use replikv_storage::log::{LogOptions, PAYLOAD_SIZE_MAX_BYTES};
use replikv_storage::store::{
    APPLY_BATCH_SIZE_MAX_BYTES, APPLY_BATCH_WRITES_MAX, CLIENT_SESSIONS_DEFAULT,
    CLIENT_SESSIONS_LIMIT,
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
    /// Most client sessions the state machine remembers to apply retried writes once
    /// (`replikv_storage::store::session`). Part of the replicated state machine's rules:
    /// every node of a cluster must use the same number.
    pub client_sessions_max: usize,
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
            client_sessions_max: CLIENT_SESSIONS_DEFAULT,
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
        if self.inflight_appends_max > INFLIGHT_APPENDS_LIMIT {
            return invalid("inflight_appends_max above INFLIGHT_APPENDS_LIMIT");
        }
        if self.pending_requests_max > PENDING_REQUESTS_LIMIT {
            return invalid("pending_requests_max above PENDING_REQUESTS_LIMIT");
        }
        if self.apply_batch_entries_max > APPLY_BATCH_WRITES_MAX {
            return invalid("apply_batch_entries_max above the store's APPLY_BATCH_WRITES_MAX");
        }
        if !(1..=CLIENT_SESSIONS_LIMIT).contains(&self.client_sessions_max) {
            return invalid("client_sessions_max outside 1..=CLIENT_SESSIONS_LIMIT");
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
    pub entries_truncated: u64,
    pub entries_applied: u64,
    pub requests_refused: u64,
    /// Client writes that arrived while the same request id was already pending on this
    /// leader, and were answered with it instead of being proposed again.
    pub retries_joined: u64,
    /// Lease expiries this node proposed as leader.
    pub lease_expiries_proposed: u64,
}
