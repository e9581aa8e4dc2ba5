//! Consistent snapshots of the store, read in bounded, resumable chunks.
//!
//! A new follower, or one that fell behind a compacted log, catches up from a snapshot of
//! the leader's state plus the log after the snapshot's position. The snapshot must be
//! consistent (the state at exactly one position) and taking it must not stop the leader
//! from applying writes. A redb read transaction gives both: it pins the B-tree roots of
//! one commit, and the writer keeps committing new roots beside it.
//!
//! A snapshot can be far larger than a message, so it is streamed in chunks of at most
//! `bytes_max` bytes (capped by [`SNAPSHOT_CHUNK_SIZE_MAX_BYTES`]; a chunk always carries
//! at least one entry, so a single large entry still makes progress). Each chunk names the
//! key it starts after and ends with its last key: the receiver asks for the chunk after
//! the last key it installed, so a lost or duplicated message costs one resend, never a
//! restart. Chunks carry versions and tombstones, not only visible values, because a
//! follower's versions must continue exactly where the leader's are.
//!
//! The last chunk (`done`) also carries every client session and every lease of the
//! snapshot (see [`super::session`], [`super::lease`]): they are part of the state
//! machine, and a follower that installed the data without them would apply a retried
//! request a second time or forget a fencing token. They are few (at most
//! [`CLIENT_SESSIONS_LIMIT`](super::CLIENT_SESSIONS_LIMIT) sessions of a few dozen bytes
//! and [`LEASES_MAX`](super::LEASES_MAX) leases) and are not counted in the chunk's byte
//! budget, which bounds the entries.

use super::encoding::{StoredEntry, decode_key, decode_position, storage_error};
use super::lease::{self, LEASES, LeaseRecord};
use super::membership::Membership;
use super::session::ClientSession;
use super::session_log::{self, SESSION_CHUNKS, SESSION_DELTAS};
use super::{DATA, META, META_APPLIED, META_MEMBERSHIP, SNAPSHOT_CHUNK_SIZE_MAX_BYTES};
use redb::{ReadOnlyTable, ReadTransaction, ReadableTableMetadata};
use replikv_core::error::Result;
use replikv_core::{Key, LogPosition, Value, Version};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::Bound;

/// Bytes a chunk entry counts for besides its key and value (version, tags, lengths).
pub const SNAPSHOT_ENTRY_OVERHEAD_BYTES: usize = 24;

/// One key of a snapshot: its version and its value, or `None` for a tombstone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEntry {
    pub key: Key,
    pub version: Version,
    pub value: Option<Value>,
    /// The value's expiry time, in Unix milliseconds (absent in chunks of earlier
    /// versions, which had no expiry).
    #[serde(default)]
    pub expires_at_unix_ms: Option<u64>,
}

impl SnapshotEntry {
    /// What this entry counts for against a chunk's byte budget.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        self.key.as_bytes().len()
            + self
                .value
                .as_ref()
                .map_or(0, |value| value.as_bytes().len())
            + SNAPSHOT_ENTRY_OVERHEAD_BYTES
    }
}

/// A bounded piece of a snapshot: the entries with keys after `after`, in key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The log position the whole snapshot reflects.
    pub position: LogPosition,
    /// The key this chunk starts after (`None`: the beginning).
    pub after: Option<Key>,
    pub entries: Vec<SnapshotEntry>,
    /// Whether this is the last chunk.
    pub done: bool,
    /// The snapshot's client sessions, in client order: only in the last chunk.
    #[serde(default)]
    pub sessions: Vec<ClientSession>,
    /// The snapshot's leases, in name order: only in the last chunk.
    #[serde(default)]
    pub leases: Vec<LeaseRecord>,
    /// The configuration in force at the snapshot's position, if the store had one:
    /// only in the last chunk.
    #[serde(default)]
    pub membership: Option<Membership>,
}

impl SnapshotChunk {
    /// The key to ask the next chunk after: this chunk's last key, or `after` if it is
    /// empty.
    #[must_use]
    pub fn last_key(&self) -> Option<&Key> {
        self.entries
            .last()
            .map(|entry| &entry.key)
            .or(self.after.as_ref())
    }

    /// What this chunk's entries count for against the byte budget.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        self.entries.iter().map(SnapshotEntry::size_bytes).sum()
    }
}

/// A consistent, read-only view of a store at one applied position. Holding it does not
/// block writes (it only keeps redb from reusing the pages it sees).
pub struct StoreSnapshot {
    data: ReadOnlyTable<&'static [u8], &'static [u8]>,
    session_chunks: ReadOnlyTable<u64, &'static [u8]>,
    session_deltas: ReadOnlyTable<u64, &'static [u8]>,
    leases: ReadOnlyTable<&'static [u8], &'static [u8]>,
    position: LogPosition,
    membership: Option<Membership>,
}

impl StoreSnapshot {
    pub(super) fn new(transaction: &ReadTransaction) -> Result<StoreSnapshot> {
        let meta = transaction.open_table(META).map_err(storage_error)?;
        let position = match meta.get(META_APPLIED).map_err(storage_error)? {
            Some(applied) => decode_position(applied.value())?,
            None => LogPosition::ZERO,
        };
        let membership = meta
            .get(META_MEMBERSHIP)
            .map_err(storage_error)?
            .map(|record| Membership::decode(record.value()))
            .transpose()?;
        let data = transaction.open_table(DATA).map_err(storage_error)?;
        let session_chunks = transaction
            .open_table(SESSION_CHUNKS)
            .map_err(storage_error)?;
        let session_deltas = transaction
            .open_table(SESSION_DELTAS)
            .map_err(storage_error)?;
        let leases = transaction.open_table(LEASES).map_err(storage_error)?;
        Ok(StoreSnapshot {
            data,
            session_chunks,
            session_deltas,
            leases,
            position,
            membership,
        })
    }

    /// The log position this snapshot reflects.
    #[must_use]
    pub fn position(&self) -> LogPosition {
        self.position
    }

    /// The configuration in force at the snapshot's position, if the store had one.
    #[must_use]
    pub fn membership(&self) -> Option<&Membership> {
        self.membership.as_ref()
    }

    /// Number of keys in the snapshot, tombstones included.
    pub fn len(&self) -> Result<u64> {
        self.data.len().map_err(storage_error)
    }

    /// Whether the snapshot holds no key at all.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The entries after `after` (from the start if `None`), in key order, up to
    /// `bytes_max` bytes (capped at [`SNAPSHOT_CHUNK_SIZE_MAX_BYTES`]) but at least one.
    pub fn read_chunk(&self, after: Option<&Key>, bytes_max: usize) -> Result<SnapshotChunk> {
        let bytes_max = bytes_max.min(SNAPSHOT_CHUNK_SIZE_MAX_BYTES);
        let lower = after.map_or(Bound::Unbounded, |key| Bound::Excluded(key.as_bytes()));
        let range = self
            .data
            .range::<&[u8]>((lower, Bound::Unbounded))
            .map_err(storage_error)?;
        let mut chunk = SnapshotChunk {
            position: self.position,
            after: after.cloned(),
            entries: Vec::new(),
            done: true,
            sessions: Vec::new(),
            leases: Vec::new(),
            membership: None,
        };
        let mut size_bytes = 0;
        for item in range {
            let (key, entry) = item.map_err(storage_error)?;
            let StoredEntry {
                version,
                value,
                expires_at_unix_ms,
            } = StoredEntry::decode(entry.value())?;
            let entry = SnapshotEntry {
                key: decode_key(key.value())?,
                version,
                value,
                expires_at_unix_ms,
            };
            if !chunk.entries.is_empty() && size_bytes + entry.size_bytes() > bytes_max {
                chunk.done = false;
                break;
            }
            size_bytes += entry.size_bytes();
            chunk.entries.push(entry);
        }
        if chunk.done {
            chunk.sessions = self.client_sessions()?;
            chunk.leases = lease::all_leases(&self.leases)?;
            chunk.membership.clone_from(&self.membership);
        }
        Ok(chunk)
    }

    /// The snapshot's client sessions, in client order.
    pub fn client_sessions(&self) -> Result<Vec<ClientSession>> {
        let (sessions, _) = session_log::load(&self.session_chunks, &self.session_deltas)?;
        Ok(sessions)
    }
}

impl fmt::Debug for StoreSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreSnapshot")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}
