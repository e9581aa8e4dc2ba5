//! # Single-leader replication: Raft, with every commit mode
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
//!   pre-vote comes first (a node that could not win never bumps a term; the
//!   `pre_vote` option turns it off, for comparison only), then the real vote; a node
//!   votes once per term, for a candidate whose log is at least as up to date as its
//!   own. Followers ignore (pre-)votes while they hear from their leader, and
//!   a leader that does not hear from a majority within an election timeout steps down
//!   (check-quorum): together they keep a flaky node from deposing a healthy leader.
//! - **Replication**: AppendEntries with the (previous index, previous term) consistency
//!   check, fast backtracking by hints, bounded batches and a bounded pipeline per
//!   follower; empty appends are the heartbeats. A new leader appends a no-op entry.
//! - **Commit**: an entry is committed once a majority holds it durably and it is of the
//!   leader's term (or precedes such an entry). Committed entries are applied in order
//!   to the store; the leader answers the client from the store's outcome once the
//!   group's **commit mode** acknowledges the entry (below).
//! - **Reads**, chosen per request (`reads.rs`): `linearizable` by ReadIndex (a
//!   majority-confirmed heartbeat round, then the read index applied); `lease`, served by
//!   the leader alone while it holds a lease; `follower`, any node's local store,
//!   possibly stale; `session`, any node once it applied the client's token (the highest
//!   log position the client saw in a reply: read-your-writes and monotonic reads),
//!   waiting a bounded time, else redirecting. Consistent prefix holds for every mode
//!   because every replica applies the one log in order; the simulator checks it.
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
//! ## Commit modes, and loss that is never silent
//!
//! A group's [`CommitMode`] (`commit.rs`) decides when a write is acknowledged:
//! `majority` (Raft), `all` (every voter), `semi-sync any k` / `semi-sync first k` (the
//! leader and k followers, PostgreSQL's `ANY`/`FIRST`), `async` (the leader alone).
//! Acknowledging copies + election quorum > voters means no failover can lose an
//! acknowledged write; otherwise the mode is **lossy**, accepted but flagged
//! ([`CommitMode::is_lossy`], [`CommitMode::describe`]). The commit index stays Raft's
//! (widened to the acknowledgement point in a safe mode), so followers only ever apply
//! what survives; in a lossy mode the leader alone applies ahead, to what it
//! acknowledged.
//!
//! When a deposed lossy leader rejoins, the new leader's log contradicts what it applied:
//! it asks for a snapshot (`AppendResult::SnapshotNeeded`), remembering where the two logs
//! part, and when the snapshot replaces its store and log it reports every client write
//! it proposed beyond that point as [`Output::Discarded`](replikv_core::replica::Output)
//! (request id, position, key, value), counts them (`RaftStats::writes_discarded`) and
//! keeps the latest ([`RaftNode::recent_discards`]). Every removal of log entries other
//! than compaction goes through one method (`discard_log_entries`), which reports first
//! and removes second. The simulator compares the reports write for write with the
//! acknowledged writes its durability checker finds lost (`replikv_sim::discards`).
//!
//! ## The clock-drift assumption of lease reads
//!
//! Leases are the one place where this crate trusts clocks, and only their *rates*,
//! never their readings. A leader whose confirmation round started at `t` (its clock)
//! and was acknowledged by a majority holds a lease until `t + election_timeout_ms_min ×
//! (1 − ρ)`, ρ = `lease_clock_drift_max_ppm` / 10⁶. Every follower of that majority
//! refuses votes for `election_timeout_ms_min` (its clock) after the round's append
//! reached it, and does not campaign before its own timeout, so no new leader can be
//! elected before one of their clocks advanced that much. **Assumption**: whenever one
//! node's clock advances by `d ≤ election_timeout_ms_min`, every other node's advances
//! by at least `d × (1 − ρ)`. Under it the lease ends before any rival leader exists.
//! Leases are off unless `lease_reads_enabled` (the operator vouches for the clocks),
//! a node just opened then refuses votes for one minimum timeout (it may have confirmed a
//! round before crashing), and a lease read without a valid lease is served by
//! ReadIndex. The simulator keeps its clocks within the assumption for the `raft-lease`
//! model and shows that clocks beyond it make the linearizability checker fail.
//!
//! ## Learners and membership change
//!
//! The group's configuration (voters and learners) changes one node at a time through
//! configuration entries in the log, which take effect as soon as they are in a log;
//! every quorum is a quorum of the current voters; learners receive the log and never
//! count; a leader may remove itself and steps down once that is committed. The rules,
//! and why single-server changes are safe with Ongaro's 2015 fix, are in
//! `membership.rs`; requests are [`Request::ChangeMembership`](replikv_core::Request),
//! answered by [`Reply::Membership`](replikv_core::Reply).
//!
//! ## Replication lag
//!
//! [`RaftNode::replication_status`] (`lag.rs`): every node's last, commit and applied
//! positions, and on the leader each follower's matched index, lag in entries and time
//! since its last answer, for the server's metrics and status.
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
//! - applied ≤ commit ≤ last index (in a lossy mode a leader, and a deposed leader
//!   until its snapshot, may have applied beyond the commit index: applied ≤ durable);
//!   the commit index never decreases, except on a deposed lossy leader whose snapshot
//!   replaces what it applied (the writes it loses are reported);
//! - in a safe mode the acknowledged index never exceeds the commit index.
//!
//! ## What is durable when
//!
//! - The **hard state** (term, vote) is stored, with its own syncs, *before* the node acts
//!   on it: before a vote is answered, before a candidate asks for votes, before a
//!   message of a higher term is handled.
//! - **Log appends** are buffered; a flush syncs them once for the whole batch (group
//!   commit) and only then releases the follower acknowledgements held meanwhile:
//!   [`handle_flush`](replikv_core::replica::Replica::handle_flush) at once, or
//!   [`start_flush`](replikv_core::replica::Replica::start_flush) writing the batch and
//!   `handle_sync_completed` releasing what that sync covered (see `node.rs`). The leader counts its own entries towards
//!   a majority once they are durable. Truncations are durable when they return.
//! - The **store** applies without syncing (the log is the source of truth) and is synced
//!   at the end of a flush once `store_sync_entries` entries were applied since its last
//!   sync (an interval that doubles, up to `store_sync_entries_max`, while each durable
//!   commit writes few pages, and returns when one writes many); it never applies beyond the locally durable log, so after a crash it reopens
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
//! ## Planted bugs
//!
//! Under the cargo feature `planted-bugs` (off by default), `RaftConfig::planted_bug`
//! switches on one of a few deliberate mistakes (ack before fsync, a vote without the
//! log check, ...), which the simulator must catch; `planted.rs` is the switchboard.
//!
//! ## Leadership transfer
//!
//! `Request::TransferLeadership` hands leadership to a chosen (or the most caught-up)
//! voter in about one round trip: the leader stops proposing writes, catches the target
//! up, sends it `TimeoutNow`, and gives up its lease; the target campaigns at once with
//! a vote that voters do not refuse for stickiness. `transfer.rs` has the steps, what can
//! go wrong, and why lease reads stay safe.
//!
//! ## Seams for what comes later
//!
//! A session token whose index lies below a compacted prefix
//! cannot be checked locally (`reads.rs` says what happens then).

mod client;
pub mod command;
pub mod commit;
mod election;
mod expiry;
mod invariants;
mod lag;
mod leader;
mod leases;
pub mod membership;
pub mod message;
mod node;
mod planted;
mod reads;
mod replication;
mod snapshot;
mod transfer;

#[cfg(test)]
mod tests;

pub use commit::{CommitMode, SyncChoice};
pub use invariants::RaftObserver;
pub use lag::{FollowerLag, ReplicationStatus};
pub use leases::LEASE_TTL_MAX_MS;
pub use message::{AppendResult, Command, Message, SnapshotResult, WireChunk, WireEntry};
pub use node::{HARD_STATE_FILE_NAME, RaftNode, STORE_FILE_NAME, TERM_MAX};
#[cfg(feature = "planted-bugs")]
pub use planted::PlantedBug;
pub use transfer::TRANSFER_REQUESTS_MAX;

use replikv_core::error::{Error, Result};
use replikv_core::limits::REPLICATION_BATCH_ENTRIES_MAX;
use replikv_storage::log::{LogOptions, PAYLOAD_SIZE_MAX_BYTES};
use replikv_storage::store::{
    APPLY_BATCH_SIZE_MAX_BYTES, APPLY_BATCH_WRITES_MAX, CLIENT_SESSIONS_DEFAULT,
    CLIENT_SESSIONS_LIMIT, SNAPSHOT_CHUNK_SIZE_MAX_BYTES,
};

/// Applied entries between two durable commits of the store, by default
/// ([`RaftConfig::store_sync_entries`]). The store is never the source of truth (the log
/// is synced before anything is acknowledged, and a restart re-applies the log from the
/// store's durable position), so a longer interval trades nothing but re-apply work
/// after a crash and log entries held back from compaction. What it buys is large: every
/// durable store commit writes each B-tree page changed since the last one, and with
/// writes spread over many keys that is about one page write per applied entry at 64;
/// at 1,024 most pages take many writes between two commits. Measured with
/// `scripts/bench-cost` (server, 1 node, `async`, 64 clients, 10,000 keys): at 64 the
/// server spent 55 CPU-ms and 2,300 write syscalls per 1,000 SETs, at 1,024 33 CPU-ms
/// and 1,500; in the simulator's throughput bench (callgrind, 2026-11-22) 1,024 instead
/// of 64 saves 4.8 % of all instructions. Once the rest of the apply path got cheaper,
/// the durable commit still took 27 % of the node loop's CPU at 1,024 (perf, 2026-11-22,
/// redb's commit and the write buffer's flush into the B-tree); at 4,096 the node loop
/// spends ~15 % less CPU per SET (six paired runs: 12.0–15.3 vs 10.4–13.6 CPU-ms per
/// 1,000 SETs). A fixed 8,192 or 16,384 bought nothing more then and lengthens the
/// pause over large keyspaces; the interval stretches only while durable commits stay
/// small ([`STORE_SYNC_ENTRIES_MAX_DEFAULT`]). 4,096 is also the store's own batch limit
/// (`APPLY_BATCH_WRITES_MAX`).
pub const STORE_SYNC_ENTRIES_DEFAULT: u64 = 4096;

/// How far the interval between two durable store commits stretches by default while they
/// stay cheap ([`RaftConfig::store_sync_entries_max`]): the store's open transaction
/// bound, 16,384. Over a small keyspace a durable commit rewrites about the same pages
/// (the whole table: about 520 at 10,000 keys) whether it covers 4,096 or 16,384 SETs,
/// so stretching saves three commits in four and most of the flushes' B-tree inserts;
/// over a large one each commit writes about a page per distinct key, and a longer
/// interval would only make its pause longer (a fixed 16,384 made it 70-176 ms instead
/// of 50 at 100,000 and 1,000,000 keys). Measured on the 2-core VM (2026-11-22, 20:50
/// UTC, 1 node, `async`, 64 clients, 9 pairs over 10,000 keys against a fixed 4,096):
/// node loop CPU per 1,000 SETs 7.0-8.5 ms against 7.7-9.5, p99 3.4-5.3 ms against
/// 6.4-9.1, p999 15.8-19.9 ms against 11.6-15.1 (one pause of a longer interval instead
/// of four short ones), throughput -7 to +21 % (mean about +4 %); at 100,000 and
/// 1,000,000 keys the same as 4,096 (2 pairs each), the interval staying there.
pub const STORE_SYNC_ENTRIES_MAX_DEFAULT: u64 =
    replikv_storage::store::OPEN_TRANSACTION_WRITES_MAX as u64;

/// Applied bytes of keys and values between two durable commits of the store at most, by
/// default ([`RaftConfig::store_sync_size_max_bytes`]): 64 MiB, the store's own batch
/// limit. Small writes reach [`STORE_SYNC_ENTRIES_DEFAULT`] first (4,096 SETs of 100
/// bytes are 400 KiB); this bound is for large values.
pub const STORE_SYNC_SIZE_MAX_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// Most appends a leader may keep in flight per follower ([`RaftConfig::inflight_appends_max`]).
pub const INFLIGHT_APPENDS_LIMIT: usize = 256;

/// Most client requests a leader may hold unanswered ([`RaftConfig::pending_requests_max`]).
pub const PENDING_REQUESTS_LIMIT: usize = 1 << 20;

/// Largest accepted clock-drift assumption of lease reads (50%): beyond it a lease would
/// be shorter than half an election timeout, and clocks that bad should not be trusted.
pub const LEASE_CLOCK_DRIFT_LIMIT_PPM: u64 = 500_000;

/// Longest accepted [`RaftConfig::session_read_wait_ms_max`].
pub const SESSION_READ_WAIT_LIMIT_MS: u64 = 60_000;

/// Bytes the store counts for one write beyond its key and values (see
/// `StoreWrite::size_bytes`); a write's encoded command is never smaller than its key and
/// values, so a write counts at most its payload plus this much towards the store's
/// batch limit. A unit test ties it to the store.
pub(crate) const STORE_WRITE_ALLOWANCE_BYTES: usize = 16;

/// How a [`RaftNode`] is tuned. The defaults suit a LAN and the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftConfig {
    /// When the leader acknowledges a write (see `commit.rs`); checked against the
    /// number of voters when the node opens.
    pub commit_mode: CommitMode,
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
    /// How far the interval between two durable store commits may stretch (at least
    /// `store_sync_entries`): doubled after each commit that wrote at most one page per
    /// four entries of `store_sync_entries` (a small working set: 1,024 pages, 4 MiB, at
    /// the default), back to `store_sync_entries` after one that wrote more. The default,
    /// [`STORE_SYNC_ENTRIES_MAX_DEFAULT`], is the store's largest open transaction; the
    /// transaction's bound follows the interval, so that a stretched interval is not cut
    /// into non-durable commits of 4,096 writes. Equal to `store_sync_entries` (or below
    /// it), the interval never stretches. Only syncs due to the entry count judge the
    /// interval: an install's syncs and one forced by `store_sync_size_max_bytes` set
    /// it back to `store_sync_entries`.
    pub store_sync_entries_max: u64,
    /// The store is also synced at the end of a flush once this many bytes of keys and
    /// values were applied since its last sync, however few the entries: with values of
    /// up to a mebibyte, `store_sync_entries` alone would let gigabytes wait for one
    /// durable commit (its pause, and the re-apply after a crash, grow with them).
    pub store_sync_size_max_bytes: u64,
    /// The replication log's options.
    pub log_options: LogOptions,
    /// Most bytes of keys and values in one snapshot chunk (one entry always goes).
    pub snapshot_chunk_size_max_bytes: usize,
    /// The leader keeps log entries a follower still needs only while that follower lags
    /// at most this many entries behind the leader's last entry; a follower further
    /// behind no longer holds back compaction and is sent a snapshot instead. Bounds the
    /// log a slow follower can make the leader keep.
    pub log_retained_entries_max: u64,
    /// Whether a node that times out runs a pre-vote before it campaigns (on by
    /// default). Without it, a node cut off from the majority bumps its term at every
    /// timeout, and when it comes back its higher term deposes a healthy leader: turn it
    /// off only to reproduce that (the simulator's `elections` test does, as a control).
    pub pre_vote: bool,
    /// A deliberate mistake to plant (feature `planted-bugs` only); see `planted.rs`.
    #[cfg(feature = "planted-bugs")]
    pub planted_bug: Option<PlantedBug>,
    /// Whether `lease` reads may be served from the leader's lease (see `reads.rs`). Off
    /// by default: turning it on is the operator's statement that the clock-drift
    /// assumption below holds. Off, a lease read is served as a linearizable one.
    pub lease_reads_enabled: bool,
    /// The clock-drift assumption of lease reads, in parts per million: whenever one
    /// node's clock advances by `d` (up to `election_timeout_ms_min`), every other node's
    /// clock advances by at least `d × (1 − lease_clock_drift_max_ppm / 10⁶)`. A lease
    /// lasts `election_timeout_ms_min × (1 − lease_clock_drift_max_ppm / 10⁶)`.
    pub lease_clock_drift_max_ppm: u64,
    /// Longest a session read waits for this node to apply its token before it is
    /// redirected (`NotLeader`).
    pub session_read_wait_ms_max: u64,
    /// Most session reads waiting at once on one node; beyond, `Overloaded`.
    pub session_reads_waiting_max: usize,
    /// Most client sessions the state machine remembers to apply retried writes once
    /// (`replikv_storage::store::session`). Part of the replicated state machine's rules:
    /// every node of a cluster must use the same number.
    pub client_sessions_max: usize,
    /// A learner is promoted to voter only if it lags at most this many entries behind
    /// the leader's last entry (see `membership.rs`); else the promotion is refused as
    /// `Unavailable`, to be retried once it caught up.
    pub promotion_lag_entries_max: u64,
}

impl Default for RaftConfig {
    fn default() -> RaftConfig {
        RaftConfig {
            commit_mode: CommitMode::Majority,
            election_timeout_ms_min: 150,
            election_timeout_ms_max: 300,
            heartbeat_interval_ms: 50,
            append_entries_max: 64,
            append_size_max_bytes: 1024 * 1024,
            inflight_appends_max: 4,
            pending_requests_max: 4096,
            apply_batch_entries_max: 256,
            store_sync_entries: STORE_SYNC_ENTRIES_DEFAULT,
            store_sync_entries_max: STORE_SYNC_ENTRIES_MAX_DEFAULT,
            store_sync_size_max_bytes: STORE_SYNC_SIZE_MAX_BYTES_DEFAULT,
            log_options: LogOptions::default(),
            snapshot_chunk_size_max_bytes: 1024 * 1024,
            log_retained_entries_max: 64 * 1024,
            pre_vote: true,
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
            lease_reads_enabled: false,
            lease_clock_drift_max_ppm: 10_000,
            session_read_wait_ms_max: 100,
            session_reads_waiting_max: 1024,
            client_sessions_max: CLIENT_SESSIONS_DEFAULT,
            promotion_lag_entries_max: 64,
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
            || self.store_sync_size_max_bytes == 0
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
        if !(1..=CLIENT_SESSIONS_LIMIT).contains(&self.client_sessions_max) {
            return invalid("client_sessions_max outside 1..=CLIENT_SESSIONS_LIMIT");
        }
        if self.apply_batch_size_max_bytes() > APPLY_BATCH_SIZE_MAX_BYTES {
            return invalid("an apply batch could exceed the store's APPLY_BATCH_SIZE_MAX_BYTES");
        }
        self.validate_reads()
    }

    /// The read settings: a drift bound below [`LEASE_CLOCK_DRIFT_LIMIT_PPM`] (a lease
    /// must keep a useful length), a positive, bounded session wait and queue.
    fn validate_reads(&self) -> Result<()> {
        let invalid = |text: &str| Err(Error::InvalidInput(format!("raft config: {text}")));
        if self.lease_clock_drift_max_ppm > LEASE_CLOCK_DRIFT_LIMIT_PPM {
            return invalid("lease_clock_drift_max_ppm above LEASE_CLOCK_DRIFT_LIMIT_PPM");
        }
        if self.session_read_wait_ms_max == 0
            || self.session_read_wait_ms_max > SESSION_READ_WAIT_LIMIT_MS
        {
            return invalid("session_read_wait_ms_max outside 1..=SESSION_READ_WAIT_LIMIT_MS");
        }
        if self.session_reads_waiting_max == 0
            || self.session_reads_waiting_max > PENDING_REQUESTS_LIMIT
        {
            return invalid("session_reads_waiting_max outside 1..=PENDING_REQUESTS_LIMIT");
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
    /// Client writes this node proposed, then discarded (see `recent_discards`).
    pub writes_discarded: u64,
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
    /// Lease reads served from a valid lease, and those that fell back to ReadIndex.
    pub lease_reads_served: u64,
    pub lease_reads_fallback: u64,
    /// Session reads served, redirected after waiting too long, and refused because
    /// their token is not in this node's history.
    pub session_reads_served: u64,
    pub session_reads_redirected: u64,
    pub session_reads_diverged: u64,
    /// Client writes that arrived while the same request id was already pending on this
    /// leader, and were answered with it instead of being proposed again.
    pub retries_joined: u64,
    /// Lease expiries this node proposed as leader.
    pub lease_expiries_proposed: u64,
    /// Deletes of expired keys this node proposed as leader (`expiry.rs`).
    pub expired_keys_proposed: u64,
    /// Leader: leadership transfers started, completed (the target, or for `to: None`
    /// another node, leads a later term; counted when this node learns it) and aborted
    /// (timed out, or another node won). See `transfer.rs`.
    pub transfers_started: u64,
    pub transfers_completed: u64,
    pub transfers_aborted: u64,
    /// Client writes and configuration changes refused because a transfer was in
    /// progress.
    pub transfer_writes_refused: u64,
    /// Target: elections started at once on a leader's `TimeoutNow`, and TimeoutNow
    /// messages ignored (not from the leader it follows, or naming an entry it lacks).
    pub transfer_elections_started: u64,
    pub timeout_now_ignored: u64,
    /// Configuration changes proposed as leader, and refused (see `membership.rs`).
    pub membership_changes_proposed: u64,
    pub membership_changes_refused: u64,
    /// Times the configuration in force changed on this node (an entry appended, or
    /// taken back), and configuration entries taken back by a truncation.
    pub memberships_changed: u64,
    pub memberships_reverted: u64,
    /// Election timeouts that started nothing because this node is not a voter.
    pub elections_skipped_not_voter: u64,
    /// Times this node stepped down as leader once its own removal was committed.
    pub removed_leader_step_downs: u64,
}
