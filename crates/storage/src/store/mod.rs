//! The state store: the applied key-value state of one replica, kept in redb.
//!
//! A replication strategy owns a log and a state machine. The log says what happened, in
//! order; the state store holds what you get by applying that log, entry by entry, up to
//! some position. This module is that state machine's storage: every key maps to a per-key
//! [`Version`] and a value or a tombstone, and the store remembers the [`LogPosition`] of
//! the last log entry it applied.
//!
//! ## Why redb
//!
//! The engine is redb, an embedded, crash-safe, copy-on-write B-tree with MVCC. Two of its
//! properties decided the choice over fjall (an LSM tree). First, redb accepts a custom
//! [`redb::StorageBackend`], so the very same store code runs over the real disk and over
//! the simulated disk with its power-failure model ([`backend::DiskBackend`]); the crash
//! tests of this module, and every simulator run, put redb's own recovery through torn and
//! lost writes. Second, a redb read transaction is a consistent snapshot that never blocks
//! the single writer, which is exactly what a leader needs to stream a snapshot to a new
//! follower while it keeps applying writes.
//!
//! ## Versions and tombstones
//!
//! A key's version counts its writes. A delete does not erase the key: it stores a
//! tombstone with the next version, so a deleted-and-re-created key keeps counting up and a
//! compare-and-set on a version cannot be fooled by a delete in between. Reads see
//! tombstones as absent. The rules are in [`mod@write`], as one pure function.
//!
//! ## Client sessions and leases
//!
//! Besides the data, the state machine keeps two small tables that are applied, synced,
//! snapshotted and installed with it: per-client sessions ([`session`]: the last request
//! applied and its outcome, so that a retried request id is applied once; writes come
//! with their request ids through [`Store::apply_logged`]; kept in memory and written
//! into redb when the open apply transaction commits, as one delta record per commit over
//! a base of large chunks: [`session_log`]) and leases ([`lease`]: grants
//! with fencing tokens, and the check that refuses a fenced write with a stale token).
//!
//! ## Expiry
//!
//! A value may carry an expiry time (`replikv_core::expiry`). Writes are decided at the
//! stamp of their log entry, which every [`LoggedWrite`] carries (see [`mod@write`]); a
//! read is judged at the time its caller passes ([`Store::read_at`]): the serving node's
//! clock. Expired values stay stored until the leader's sweep deletes them: an expiry
//! index (`expiry at | key`, ordered by time, kept in step when the write buffer is
//! flushed and rebuilt when a snapshot is installed) lets [`Store::expired_keys`] find
//! the next ones without scanning the data.
//!
//! ## Applying, and what is durable when
//!
//! [`Store::apply`] applies a batch of [`StoreWrite`]s atomically, in a redb write
//! transaction; every commit of that transaction also records the log position of the
//! last batch it holds (`Store::write_memory`). The state and its position therefore
//! always agree, after any crash. Applying does not fsync: the
//! replication log is the source of truth, so the store may lag durably behind what it
//! applied, and [`Store::sync`] makes everything applied so far durable with one durable
//! commit. After a crash the store reopens at the position of its last sync (or later),
//! and the strategy re-applies its log from [`Store::applied_position`].
//!
//! A redb commit costs far more than the inserts of a small batch, even a non-durable
//! one, so the store does not commit after every batch: it keeps its write transaction
//! open across `apply` calls and commits it (non-durably) only when it would outgrow its
//! bound (its owner's, [`Store::set_open_transaction_writes_max`]: by default one batch's
//! [`APPLY_BATCH_WRITES_MAX`]), or when another transaction needs it — a sync (which makes it the
//! durable commit), a snapshot, an install — or when the store is dropped. Reads go
//! through the open transaction, so every applied write is visible at once. Within it,
//! the data writes and the client sessions are held in memory (the write buffer of
//! `buffer.rs`, and [`session`]) and written into the transaction, one redb operation per
//! changed key or session, just before it commits. If an apply fails in the middle, the
//! open transaction is lost with everything it held, and the store reports the applied
//! position of its last commit, from which its owner re-applies, as it would after a
//! crash.
//!
//! That gives the contract with log compaction: **the log must never be compacted past
//! [`Store::durable_applied_position`]**, or a crash would leave the store behind a log
//! that no longer holds the entries to catch up with.
//!
//! Non-durable commits live in redb's write buffer (at most half of the page cache, see
//! [`StoreOptions`]), spilling to the file, unsynced, beyond that; and the pages they
//! replace are only reclaimed by the next durable commit. So a strategy syncs regularly
//! (once per [`handle_flush`](replikv_core::replica::Replica::handle_flush) is the
//! intended rhythm); `sync` costs nothing when nothing was applied since the last one.
//!
//! A store file is created under a temporary name, made durable, then renamed into place,
//! so a crash during creation never leaves a half-written store under the real name.
//!
//! ## Snapshots
//!
//! [`Store::snapshot`] opens a redb read transaction and returns a [`StoreSnapshot`] that
//! carries the position it reflects. It is read in bounded chunks
//! ([`StoreSnapshot::read_chunk`]), each of which names the key it starts after, so a lost
//! chunk is simply asked for again. A follower installs the chunks with
//! [`Store::install_begin`], [`Store::install_chunk`] and [`Store::install_finish`] (see
//! [`install`]): chunks go to a staging table and the switch to the new state is one
//! atomic transaction, so a crash leaves either the old state or an install that
//! [`Store::install_progress`] reports after reopening and that resumes after its last
//! installed key. A snapshot must not outlive its store (reads then fail with an error).
//!
//! ## Limits
//!
//! Keys and values are bounded by [`replikv_core::limits`]; a batch by
//! [`APPLY_BATCH_WRITES_MAX`] and [`APPLY_BATCH_SIZE_MAX_BYTES`]; the open apply
//! transaction by the bound its owner sets, at most [`OPEN_TRANSACTION_WRITES_MAX`], and
//! the same bytes; the write buffer by [`WRITE_BUFFER_SIZE_MAX_BYTES`] between applies
//! (plus one batch within one) and its read cache by two generations of
//! [`WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES`]; a snapshot chunk by
//! [`SNAPSHOT_CHUNK_SIZE_MAX_BYTES`]; redb's page cache by [`StoreOptions`].
//! A stored record that does not decode is reported as [`Error::Corruption`], and redb
//! checks every page checksum when it opens a store.

mod apply;
pub mod backend;
mod buffer;
mod encoding;
pub mod install;
pub mod lease;
pub mod membership;
pub mod session;
pub mod session_log;
pub mod snapshot;
mod upgrade;
pub mod write;

#[cfg(test)]
mod tests;

pub use backend::DiskBackend;
pub use install::SnapshotInstall;
pub use lease::{LEASES_MAX, LeaseRecord};
pub use membership::{MEMBERS_MAX, Membership};
pub use session::{CLIENT_SESSIONS_DEFAULT, CLIENT_SESSIONS_LIMIT, ClientSession};
pub use session_log::{
    SESSION_CHUNK_SESSIONS_MAX, SESSION_DELTA_ENTRIES_MAX, SESSION_DELTAS_MAX,
    SESSION_FOLD_FLOOR_BYTES,
};
pub use snapshot::{SnapshotChunk, SnapshotEntry, StoreSnapshot};
pub use write::{StoreWrite, WriteOutcome};

use crate::disk::{Disk, parent_directory};
use apply::{apply_in, check_batch, record_position};
pub use buffer::WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES;
use buffer::WriteBuffer;
use encoding::{StoredEntry, decode_key, decode_position, encode_position, storage_error};
use lease::LEASES;
use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use replikv_core::error::{Error, Result};
use replikv_core::{Key, LogIndex, LogPosition, RequestId, Value, Version};
use session::SessionTable;
use session_log::{FoldLimits, SESSION_CHUNKS, SESSION_DELTAS};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use upgrade::FORMAT_VERSION;

/// Most writes in one [`Store::apply`] batch.
pub const APPLY_BATCH_WRITES_MAX: usize = 4 * 1024;

/// Most bytes (keys, values, per-write allowance) in one [`Store::apply`] batch.
pub const APPLY_BATCH_SIZE_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Most writes the open apply transaction may be allowed to hold (several batches) before
/// the store commits it, not durably ([`Store::set_open_transaction_writes_max`]; by
/// default it holds [`APPLY_BATCH_WRITES_MAX`]). Its bytes stay bounded by
/// [`APPLY_BATCH_SIZE_MAX_BYTES`].
pub const OPEN_TRANSACTION_WRITES_MAX: usize = 4 * APPLY_BATCH_WRITES_MAX;

/// Most bytes (keys and values) the write buffer holds before it is written into the open
/// apply transaction, which then stays open (`buffer.rs`).
pub const WRITE_BUFFER_SIZE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Largest snapshot chunk, in bytes, except that a chunk always carries at least one entry.
pub const SNAPSHOT_CHUNK_SIZE_MAX_BYTES: usize = 4 * 1024 * 1024;

/// Memory redb may use to cache pages of one store, by default.
pub const STORE_CACHE_SIZE_BYTES: usize = 32 * 1024 * 1024;

/// Smallest page cache a store may be given.
pub const STORE_CACHE_SIZE_MIN_BYTES: usize = 64 * 1024;

/// Largest page cache a store may be given (4 GiB).
pub const STORE_CACHE_SIZE_MAX_BYTES: usize = u32::MAX as usize;

/// Key to applied entry (`encoding::StoredEntry`).
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
/// Where a snapshot install builds the next state before it replaces `DATA`.
const STAGING: TableDefinition<&[u8], &[u8]> = TableDefinition::new("staging");
/// The expiry index: `expires at (8, big-endian) | key` for every value with an expiry
/// time, to an empty value ([`encoding`]).
const EXPIRY: TableDefinition<&[u8], &[u8]> = TableDefinition::new("expiry");
/// Small records about the store itself.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

const META_FORMAT: &str = "format";
const META_APPLIED: &str = "applied";
const META_INSTALL: &str = "install";
/// The configuration in force at the applied position ([`membership`]), if any was applied.
const META_MEMBERSHIP: &str = "membership";
/// The configuration of the snapshot being installed, staged until the install finishes.
const META_STAGED_MEMBERSHIP: &str = "staged_membership";

/// Runs `$body` with `$table` opened on the open apply transaction if there is one (so
/// that reads see every applied write), else on a new read transaction.
macro_rules! read_table {
    ($store:expr, $definition:expr, |$table:ident| $body:expr) => {
        match &$store.pending {
            Some(pending) => {
                let $table = pending
                    .transaction
                    .open_table($definition)
                    .map_err(storage_error)?;
                $body
            }
            None => {
                let transaction = $store.database.begin_read().map_err(storage_error)?;
                let $table = transaction.open_table($definition).map_err(storage_error)?;
                $body
            }
        }
    };
}

// After `read_table!`, which it uses.
mod expiry;

/// The applied key-value state of one replica; see the module documentation.
#[derive(Debug)]
pub struct Store {
    /// The open apply transaction, if any. Declared before `database` so that it is
    /// dropped (aborted) first.
    pending: Option<PendingApply>,
    database: redb::Database,
    name: String,
    applied: LogPosition,
    /// The applied position the last committed transaction recorded: what reopening
    /// (without a crash) finds, and where a failed apply leaves the store.
    committed_applied: LogPosition,
    durable_applied: LogPosition,
    /// Commits since the last durable one: `sync` has work to do.
    unsynced_commits: u64,
    /// Bytes of keys and values applied since the last durable commit
    /// ([`Store::unsynced_size_bytes`]).
    unsynced_size_bytes: u64,
    /// Bytes redb has written to the store's file, counted by its backend, and the count
    /// when the last durable commit ended ([`Store::last_durable_commit_size_bytes`]).
    backend_bytes_written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Most writes the open apply transaction holds before a non-durable commit
    /// ([`Store::set_open_transaction_writes_max`]).
    open_transaction_writes_max: usize,
    bytes_written_at_last_sync: u64,
    last_durable_commit_size_bytes: u64,
    install: Option<SnapshotInstall>,
    /// Most client sessions remembered ([`StoreOptions::client_sessions_max`]).
    client_sessions_max: usize,
    /// The client sessions as applied, ahead of the `sessions` table, which receives
    /// those that changed when the open apply transaction commits ([`session`]). `None`
    /// after a failed apply or commit or an install: reloaded from the committed table
    /// before its next use. Never `None` while the open transaction holds applied writes.
    sessions: Option<SessionTable>,
    /// When a commit folds the sessions' deltas into their base ([`session_log`]).
    session_fold_limits: FoldLimits,
    /// Data entries applied in the open apply transaction and not yet written to its data
    /// table, none whenever no transaction is open; and a read cache of entries written
    /// (`buffer.rs`).
    buffer: WriteBuffer,
    /// The configuration in force at the applied position ([`membership`]).
    membership: Option<Membership>,
    /// The configuration the last committed transaction recorded (like
    /// `committed_applied`).
    committed_membership: Option<Membership>,
}

/// The write transaction that [`Store::apply`] keeps open across batches, and what it
/// holds so far (bounded by [`OPEN_TRANSACTION_WRITES_MAX`] and
/// [`APPLY_BATCH_SIZE_MAX_BYTES`]).
struct PendingApply {
    transaction: redb::WriteTransaction,
    writes: usize,
    size_bytes: usize,
}

impl std::fmt::Debug for PendingApply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingApply")
            .field("writes", &self.writes)
            .field("size_bytes", &self.size_bytes)
            .finish_non_exhaustive()
    }
}

/// A write as it comes from the log: the index of its entry and, for a client's write,
/// its request id, by which retries are deduplicated (see [`session`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedWrite {
    pub index: LogIndex,
    pub request_id: Option<RequestId>,
    pub write: StoreWrite,
    /// The stamp of its entry: the proposing leader's wall-clock time, in Unix
    /// milliseconds, at which the write is decided (see [`mod@write`]; 0 for entries of
    /// a log format without stamps, written before keys could expire).
    pub stamp_unix_ms: u64,
}

impl Store {
    /// Opens the store kept in file `name` of `disk` with default options, creating an
    /// empty one (applied position zero) if there is none. Whatever the store holds on
    /// return is durable.
    pub fn open(disk: &Disk, name: &str) -> Result<Store> {
        Store::open_with(disk, name, &StoreOptions::default())
    }

    /// [`Store::open`] with explicit options.
    pub fn open_with(disk: &Disk, name: &str, options: &StoreOptions) -> Result<Store> {
        options.check()?;
        let creating = format!("{name}.creating");
        if disk.exists(&creating)? {
            // A creation that crashed before its rename: never visible, so garbage.
            disk.remove(&creating)?;
        }
        if !disk.exists(name)? {
            create(options, DiskBackend::new(disk.open(&creating)?))?;
            disk.rename(&creating, name)?;
            disk.sync_directory(parent_directory(name))?;
        }
        let file = disk.open(name)?;
        if file.is_empty()? {
            return Err(encoding::corruption(format!(
                "store file {name:?} is empty"
            )));
        }
        let backend = DiskBackend::new(file);
        let backend_bytes_written = backend.bytes_written();
        let database = options
            .builder()
            .create_with_backend(backend)
            .map_err(storage_error)?;
        let mut store = Store {
            pending: None,
            database,
            name: name.to_owned(),
            applied: LogPosition::ZERO,
            committed_applied: LogPosition::ZERO,
            durable_applied: LogPosition::ZERO,
            unsynced_commits: 1,
            unsynced_size_bytes: 0,
            backend_bytes_written,
            open_transaction_writes_max: APPLY_BATCH_WRITES_MAX,
            bytes_written_at_last_sync: 0,
            last_durable_commit_size_bytes: 0,
            install: None,
            client_sessions_max: options.client_sessions_max,
            sessions: None,
            session_fold_limits: FoldLimits::default(),
            buffer: WriteBuffer::default(),
            membership: None,
            committed_membership: None,
        };
        let format = store.load_meta()?;
        if format != FORMAT_VERSION {
            store.upgrade(format)?;
        }
        store.sessions = Some(store.load_committed_sessions()?);
        // Whatever redb serves after opening may still sit in unsynced writes of a previous
        // handle that was dropped without a crash: make it durable before promising so.
        store.sync()?;
        Ok(store)
    }

    /// Loads the meta records; returns the store's format version.
    fn load_meta(&mut self) -> Result<u64> {
        read_table!(self, META, |meta| {
            let record = meta.get(META_FORMAT).map_err(storage_error)?;
            let record = record.as_ref().map(|guard| guard.value());
            let format = upgrade::FORMATS_READ
                .into_iter()
                .find(|format| record == Some(&format.to_be_bytes()[..]))
                .ok_or_else(|| {
                    encoding::corruption(format!(
                        "{:?} has format {record:?}, expected {FORMAT_VERSION}",
                        self.name
                    ))
                })?;
            if let Some(applied) = meta.get(META_APPLIED).map_err(storage_error)? {
                self.applied = decode_position(applied.value())?;
                self.committed_applied = self.applied;
            }
            if let Some(install) = meta.get(META_INSTALL).map_err(storage_error)? {
                self.install = Some(SnapshotInstall::decode(install.value())?);
            }
            if let Some(record) = meta.get(META_MEMBERSHIP).map_err(storage_error)? {
                self.membership = Some(Membership::decode(record.value())?);
                self.committed_membership = self.membership.clone();
            }
            Ok(format)
        })
    }

    /// The configuration in force at the applied position: the last one applied with
    /// [`Store::apply_logged_with_membership`] or installed with a snapshot; `None` if
    /// none ever was.
    #[must_use]
    pub fn membership(&self) -> Option<&Membership> {
        self.membership.as_ref()
    }

    /// The file name this store lives in.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The position of the last log entry applied (visible to reads, maybe not durable).
    #[must_use]
    pub fn applied_position(&self) -> LogPosition {
        self.applied
    }

    /// The position up to which the applied state survives a crash. The log must not be
    /// compacted past it.
    #[must_use]
    pub fn durable_applied_position(&self) -> LogPosition {
        self.durable_applied
    }

    /// Applies `batch` atomically and records `applied` as the position it comes from.
    /// Returns one outcome per write, in order. Not durable until [`Store::sync`]. The
    /// writes carry no request id: nothing is deduplicated (see [`Store::apply_logged`]).
    ///
    /// Panics if `applied` is not after the current applied position: applying an entry
    /// twice would be a bug of the caller. A batch over [`APPLY_BATCH_WRITES_MAX`] or
    /// [`APPLY_BATCH_SIZE_MAX_BYTES`] is refused with [`Error::InvalidInput`] and applies
    /// nothing.
    pub fn apply(
        &mut self,
        batch: &[StoreWrite],
        applied: LogPosition,
    ) -> Result<Vec<WriteOutcome>> {
        let writes = batch
            .iter()
            .map(|write| LoggedWrite {
                index: applied.index,
                request_id: None,
                write: write.clone(),
                stamp_unix_ms: 0,
            })
            .collect();
        self.apply_writes(writes, applied, None)
    }

    /// [`Store::apply`] for writes that come from log entries: a write with a request id
    /// is applied at most once per request (see [`session`]); a retry gets the first
    /// attempt's outcome. Indexes must increase through the batch and not pass `applied`.
    pub fn apply_logged(
        &mut self,
        batch: &[LoggedWrite],
        applied: LogPosition,
    ) -> Result<Vec<WriteOutcome>> {
        self.apply_logged_with_membership(batch, applied, None)
    }

    /// [`Store::apply_logged`], and, if `membership` is given, records it as the
    /// configuration in force at `applied`, in the same transaction (the batch's entries
    /// included the configuration entry that made it). Copies the batch: see
    /// [`Store::apply_logged_owned`] for the one that moves it in.
    pub fn apply_logged_with_membership(
        &mut self,
        batch: &[LoggedWrite],
        applied: LogPosition,
        membership: Option<&Membership>,
    ) -> Result<Vec<WriteOutcome>> {
        self.apply_logged_owned(batch.to_vec(), applied, membership)
    }

    /// [`Store::apply_logged_with_membership`] taking the batch by value: each write's
    /// key and value move into the store's write buffer rather than being copied, so a
    /// replica that decodes its committed entries into owned writes allocates each key
    /// and value once per apply. Whether it succeeds or fails, the batch is consumed (a
    /// failed apply is re-applied from the log, as ever).
    pub fn apply_logged_owned(
        &mut self,
        batch: Vec<LoggedWrite>,
        applied: LogPosition,
        membership: Option<&Membership>,
    ) -> Result<Vec<WriteOutcome>> {
        if let Some(membership) = membership {
            membership.check().map_err(Error::InvalidInput)?;
        }
        for pair in batch.windows(2) {
            assert!(pair[0].index < pair[1].index, "logged writes in log order");
        }
        if let Some(last) = batch.last() {
            assert!(last.index <= applied.index && batch[0].index > self.applied.index);
        }
        self.apply_writes(batch, applied, membership)
    }

    fn apply_writes(
        &mut self,
        batch: Vec<LoggedWrite>,
        applied: LogPosition,
        membership: Option<&Membership>,
    ) -> Result<Vec<WriteOutcome>> {
        assert!(
            applied > self.applied,
            "applied position must increase: {applied} after {}",
            self.applied
        );
        let length = batch.len();
        let size_bytes = check_batch(batch.iter().map(|logged| &logged.write), length)?;
        self.unsynced_size_bytes = self.unsynced_size_bytes.saturating_add(size_bytes as u64);
        let mut pending = self.pending_for(length, size_bytes)?;
        let sessions = match self.sessions.take() {
            Some(sessions) => Ok(sessions),
            None => SessionTable::load_from(&pending.transaction),
        };
        let applying = sessions.and_then(|mut sessions| {
            let outcomes = apply_in(
                &pending.transaction,
                batch,
                (&mut sessions, &mut self.buffer),
                self.client_sessions_max,
            )?;
            if self.buffer.size_bytes() > WRITE_BUFFER_SIZE_MAX_BYTES {
                // Into the open transaction, which stays open: the buffer stays small.
                let sessions = (Some(&mut sessions), self.session_fold_limits);
                flush_memory(&pending.transaction, sessions, &mut self.buffer)?;
            }
            self.sessions = Some(sessions);
            Ok(outcomes)
        });
        match applying {
            Ok(outcomes) => {
                pending.writes += length;
                pending.size_bytes += size_bytes;
                self.pending = Some(pending);
                self.applied = applied;
                if let Some(membership) = membership {
                    self.membership = Some(membership.clone());
                }
                Ok(outcomes)
            }
            Err(error) => {
                // Everything the open transaction held is lost with it: the store is back
                // at its last commit, and the caller re-applies from there.
                drop(pending);
                self.revert_to_committed();
                Err(error)
            }
        }
    }

    /// The open apply transaction, with room for `writes` more writes of `size_bytes`:
    /// the one kept open, committed first if it would outgrow its limits,
    /// or a new one.
    fn pending_for(&mut self, writes: usize, size_bytes: usize) -> Result<PendingApply> {
        if let Some(pending) = self.pending.take() {
            let full = pending.writes + writes > self.open_transaction_writes_max
                || pending.size_bytes + size_bytes > APPLY_BATCH_SIZE_MAX_BYTES;
            if !full {
                return Ok(pending);
            }
            self.commit_pending(pending, Durability::None)?;
        }
        Ok(PendingApply {
            transaction: self.begin_write(Durability::None)?,
            writes: 0,
            size_bytes: 0,
        })
    }

    /// Commits the open apply transaction with `durability`, so that a read transaction or
    /// another write transaction sees it. What the store holds in memory for it goes into
    /// it first, beside the applied position: the sessions that changed and the write
    /// buffer.
    fn commit_pending(&mut self, pending: PendingApply, durability: Durability) -> Result<()> {
        let mut transaction = pending.transaction;
        let flushed = self.write_memory(&transaction);
        let committed = match flushed.and_then(|()| {
            transaction
                .set_durability(durability)
                .map_err(|error| Error::Io(format!("state store: {error}")))
        }) {
            Ok(()) => self.commit(transaction),
            Err(error) => Err(error),
        };
        if let Err(error) = committed {
            self.revert_to_committed();
            return Err(error);
        }
        self.committed_applied = self.applied;
        self.committed_membership.clone_from(&self.membership);
        Ok(())
    }

    /// Writes everything the store holds in memory for the open apply transaction into
    /// it before it commits: the sessions that changed, the write buffer, and the
    /// applied position with the configuration if it changed.
    fn write_memory(&mut self, transaction: &redb::WriteTransaction) -> Result<()> {
        let sessions = (self.sessions.as_mut(), self.session_fold_limits);
        flush_memory(transaction, sessions, &mut self.buffer)?;
        let changed_membership = self
            .membership
            .as_ref()
            .filter(|membership| self.committed_membership.as_ref() != Some(*membership));
        record_position(transaction, self.applied, changed_membership)
    }

    /// After a failed apply or commit: the store is what its last commit left.
    fn revert_to_committed(&mut self) {
        self.applied = self.committed_applied;
        self.membership.clone_from(&self.committed_membership);
        self.sessions = None;
        self.buffer.clear();
    }

    /// Commits the open apply transaction, if any.
    fn flush_pending(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(pending) => self.commit_pending(pending, Durability::None),
            None => Ok(()),
        }
    }

    /// The client sessions of the last commit, or of the open apply transaction (which
    /// holds them as of its last flush).
    fn load_committed_sessions(&self) -> Result<SessionTable> {
        let table = match &self.pending {
            Some(pending) => SessionTable::load_from(&pending.transaction)?,
            None => {
                let transaction = self.database.begin_read().map_err(storage_error)?;
                let chunks = transaction
                    .open_table(SESSION_CHUNKS)
                    .map_err(storage_error)?;
                let deltas = transaction
                    .open_table(SESSION_DELTAS)
                    .map_err(storage_error)?;
                SessionTable::load(&chunks, &deltas)?
            }
        };
        // Sessions are committed with the applied position: one past it is damage, and
        // applying the next write would trip the sessions' ordering assertion.
        table.check_indexes_at_most(self.applied.index)?;
        Ok(table)
    }

    /// The session the store keeps for `client`, if it is remembered.
    pub fn client_session(&self, client: replikv_core::ClientId) -> Result<Option<ClientSession>> {
        if let Some(sessions) = &self.sessions {
            return Ok(sessions.get(client).copied());
        }
        Ok(self.load_committed_sessions()?.get(client).copied())
    }

    /// The record of lease `name`, if it was ever granted.
    pub fn lease(&self, name: &Key) -> Result<Option<LeaseRecord>> {
        read_table!(self, LEASES, |leases| lease::read_lease(&leases, name))
    }

    /// Every lease the store knows (held or not), in name order.
    pub fn leases(&self) -> Result<Vec<LeaseRecord>> {
        read_table!(self, LEASES, |leases| lease::all_leases(&leases))
    }

    /// Every client session the store keeps, in client order.
    pub fn client_sessions(&self) -> Result<Vec<ClientSession>> {
        if let Some(sessions) = &self.sessions {
            return Ok(sessions.all());
        }
        Ok(self.load_committed_sessions()?.all())
    }

    /// Makes everything applied (and any install progress) durable: one redb durable
    /// commit, skipped when nothing changed since the last one.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(pending) = self.pending.take() {
            // The open apply transaction becomes the durable commit.
            self.commit_pending(pending, Durability::Immediate)?;
        } else if self.unsynced_commits > 0 {
            let transaction = self.begin_write(Durability::Immediate)?;
            self.commit(transaction)?;
        }
        self.unsynced_commits = 0;
        self.unsynced_size_bytes = 0;
        self.durable_applied = self.applied;
        let bytes_written = self.backend_bytes_written.load(Ordering::Relaxed);
        self.last_durable_commit_size_bytes = bytes_written - self.bytes_written_at_last_sync;
        self.bytes_written_at_last_sync = bytes_written;
        Ok(())
    }

    /// Lets the open apply transaction hold up to `writes` writes (within
    /// [`APPLY_BATCH_WRITES_MAX`]..=[`OPEN_TRANSACTION_WRITES_MAX`]; the default is the
    /// lower end) before it commits non-durably. The replication node passes its interval
    /// between durable commits, so that a longer interval is not cut into non-durable
    /// commits of one batch's size, each rewriting the same pages. The transaction still
    /// commits non-durably when the batch that crosses the bound comes before the sync
    /// that the same entries trigger (the sync is decided at the end of a flush): two
    /// pauses, usually in different iterations of the node loop, rather than one longer
    /// one (measured to be the better p99 of the two in session 10). The bound follows
    /// the interval rather than staying at its maximum because a larger transaction also
    /// makes its commit's pause longer.
    pub fn set_open_transaction_writes_max(&mut self, writes: usize) {
        self.open_transaction_writes_max =
            writes.clamp(APPLY_BATCH_WRITES_MAX, OPEN_TRANSACTION_WRITES_MAX);
    }

    /// Bytes redb wrote to the store's file from the end of the durable commit before the
    /// last one to the end of the last one: mostly the B-tree pages that the applied
    /// writes in between changed, each written once however often it changed. Few bytes
    /// per applied entry mean a small working set, whose durable commits cost little more
    /// when they come less often (the replication layer stretches its interval then).
    #[must_use]
    pub fn last_durable_commit_size_bytes(&self) -> u64 {
        self.last_durable_commit_size_bytes
    }

    /// Bytes of keys and values applied since the last [`Store::sync`]: with the count
    /// of entries, what tells the owner when to sync (a few large values weigh as much as
    /// many small ones in the work a durable commit and a restart's re-apply must do).
    #[must_use]
    pub fn unsynced_size_bytes(&self) -> u64 {
        self.unsynced_size_bytes
    }

    /// The key's value (absent if never written or deleted) and its version, ignoring
    /// expiry: the value as last written, expired or not. Servers read with
    /// [`Store::read_at`].
    pub fn read(&self, key: &Key) -> Result<(Option<Value>, Version)> {
        let (value, version, _) = self.read_with_expiry_at(key, 0)?;
        Ok((value, version))
    }

    /// The key's value and version as a read at `now_unix_ms` sees them: a value expired
    /// by then is absent, with the version its tombstone will have (see [`mod@write`]).
    pub fn read_at(&self, key: &Key, now_unix_ms: u64) -> Result<(Option<Value>, Version)> {
        let (value, version, _) = self.read_with_expiry_at(key, now_unix_ms)?;
        Ok((value, version))
    }

    /// [`Store::read_at`] and the value's expiry time (`None`: none, or absent).
    pub fn read_with_expiry_at(
        &self,
        key: &Key,
        now_unix_ms: u64,
    ) -> Result<(Option<Value>, Version, Option<u64>)> {
        let entry = match self.buffer.get(key) {
            Some(entry) => Some(entry.clone()),
            None => read_table!(self, DATA, |data| read_entry(&data, key.as_bytes()))?,
        };
        Ok(entry.map_or((None, Version(0), None), |entry| {
            let entry = entry.as_of(now_unix_ms);
            (entry.value, entry.version, entry.expires_at_unix_ms)
        }))
    }

    /// The key's value and version, or `None` if it is absent (never written or deleted).
    pub fn get(&self, key: &Key) -> Result<Option<(Value, Version)>> {
        let (value, version) = self.read(key)?;
        Ok(value.map(|value| (value, version)))
    }

    /// The key's version: 0 if never written, the tombstone's version if deleted.
    pub fn version(&self, key: &Key) -> Result<Version> {
        Ok(self.read(key)?.1)
    }

    /// Every present key and its value (tombstones left out). Reads the whole state into
    /// memory: for convergence checks in tests and debugging, not for serving requests.
    pub fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        read_table!(self, DATA, |data| {
            let mut state = BTreeMap::new();
            for item in data.iter().map_err(storage_error)? {
                let (key, entry) = item.map_err(storage_error)?;
                if let Some(value) = StoredEntry::decode(entry.value())?.value {
                    state.insert(decode_key(key.value())?, value);
                }
            }
            self.buffer.overlay(&mut state);
            Ok(state)
        })
    }

    /// A consistent snapshot of the applied state and its position, backed by a redb read
    /// transaction: applying continues while it is held.
    pub fn snapshot(&mut self) -> Result<StoreSnapshot> {
        self.flush_pending()?;
        let transaction = self.database.begin_read().map_err(storage_error)?;
        StoreSnapshot::new(&transaction)
    }

    /// A new write transaction, after committing the open apply transaction (redb has
    /// one writer at a time).
    fn begin_write(&mut self, durability: Durability) -> Result<redb::WriteTransaction> {
        self.flush_pending()?;
        let mut transaction = self.database.begin_write().map_err(storage_error)?;
        transaction
            .set_durability(durability)
            .map_err(|error| Error::Io(format!("state store: {error}")))?;
        Ok(transaction)
    }

    fn commit(&mut self, transaction: redb::WriteTransaction) -> Result<()> {
        transaction.commit().map_err(storage_error)?;
        self.unsynced_commits += 1;
        Ok(())
    }
}

impl Drop for Store {
    /// Commits the open apply transaction (not durably), as redb keeps its earlier
    /// non-durable commits when a database is closed without a crash: a store that is
    /// closed and reopened finds everything it applied. Nothing is promised: a failure
    /// (a crashed disk) leaves the store at an earlier position, from which its owner
    /// re-applies the log, exactly as after a crash.
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            // Best effort by design: see above. The sessions and the data go with the
            // applied position, or the transaction does not commit.
            let flushed = self.write_memory(&pending.transaction);
            if flushed.is_ok() {
                let _ignored = pending.transaction.commit();
            }
        }
    }
}

/// How a store is opened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// Memory redb may use to cache pages, between [`STORE_CACHE_SIZE_MIN_BYTES`] and
    /// [`STORE_CACHE_SIZE_MAX_BYTES`]. Half of it at most holds the pages of applied but
    /// unsynced writes; beyond that redb writes them to the file early (still unsynced).
    pub cache_size_bytes: usize,
    /// Most client sessions remembered for deduplicating retries, 1 to
    /// [`CLIENT_SESSIONS_LIMIT`]; see [`session`]. Eviction is part of the replicated
    /// state machine: every replica of a cluster must use the same number.
    pub client_sessions_max: usize,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            cache_size_bytes: STORE_CACHE_SIZE_BYTES,
            client_sessions_max: CLIENT_SESSIONS_DEFAULT,
        }
    }
}

impl StoreOptions {
    fn check(&self) -> Result<()> {
        let range = STORE_CACHE_SIZE_MIN_BYTES..=STORE_CACHE_SIZE_MAX_BYTES;
        if !range.contains(&self.cache_size_bytes) {
            return Err(Error::InvalidInput(format!(
                "store cache of {} bytes is outside {range:?}",
                self.cache_size_bytes
            )));
        }
        if !(1..=CLIENT_SESSIONS_LIMIT).contains(&self.client_sessions_max) {
            return Err(Error::InvalidInput(format!(
                "client_sessions_max {} is outside 1..={CLIENT_SESSIONS_LIMIT}",
                self.client_sessions_max
            )));
        }
        Ok(())
    }

    fn builder(&self) -> redb::Builder {
        let mut builder = redb::Builder::new();
        builder
            .set_cache_size(self.cache_size_bytes)
            .set_check_integrity_on_open(true);
        builder
    }
}

/// Creates an empty store in `backend` and makes it durable, so that a crash after the
/// caller renames its file into place can only find a complete store. The database is
/// closed explicitly: dropping it would ignore an I/O error of its closing writes, and the
/// caller would then go on to rename a file whose state it does not know.
fn create(options: &StoreOptions, backend: DiskBackend) -> Result<()> {
    let database = options
        .builder()
        .create_with_backend(backend)
        .map_err(storage_error)?;
    let transaction = database.begin_write().map_err(storage_error)?;
    {
        transaction.open_table(DATA).map_err(storage_error)?;
        transaction
            .open_table(SESSION_CHUNKS)
            .map_err(storage_error)?;
        transaction
            .open_table(SESSION_DELTAS)
            .map_err(storage_error)?;
        transaction.open_table(LEASES).map_err(storage_error)?;
        transaction.open_table(EXPIRY).map_err(storage_error)?;
        let mut meta = transaction.open_table(META).map_err(storage_error)?;
        meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes()[..])
            .map_err(storage_error)?;
        meta.insert(META_APPLIED, &encode_position(LogPosition::ZERO)[..])
            .map_err(storage_error)?;
    }
    transaction.commit().map_err(storage_error)?;
    database.close().map_err(storage_error)
}

/// Writes what the store holds in memory for the open apply transaction into it: the
/// sessions that changed and the write buffer.
fn flush_memory(
    transaction: &redb::WriteTransaction,
    (sessions, fold_limits): (Option<&mut SessionTable>, FoldLimits),
    buffer: &mut WriteBuffer,
) -> Result<()> {
    if let Some(sessions) = sessions.filter(|sessions| sessions.is_dirty()) {
        sessions.flush(transaction, fold_limits)?;
    }
    if buffer.len() > 0 {
        let mut data = transaction.open_table(DATA).map_err(storage_error)?;
        let mut expiry = transaction.open_table(EXPIRY).map_err(storage_error)?;
        buffer.flush(&mut data, &mut expiry)?;
    }
    Ok(())
}

/// The stored entry of `key` in a data (or staging) table, if any.
fn read_entry(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    key: &[u8],
) -> Result<Option<StoredEntry>> {
    table
        .get(key)
        .map_err(storage_error)?
        .map(|guard| StoredEntry::decode(guard.value()))
        .transpose()
}
