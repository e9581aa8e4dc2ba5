//! The write buffer: applied data entries held in memory until the store commits.
//!
//! Applying a write to the data table costs a redb B-tree lookup (the key's current
//! version, which the write's rules need) and an insert, and between two commits the same
//! key is often written again: a hot counter, a lock, a small working set. So the store
//! applies data writes into this buffer, a map from key to the entry it now has, sorted
//! by key, in front of the open apply transaction's data table; and when that
//! transaction commits — at a sync (the durable commit), before a snapshot, an install or
//! any other write transaction, when it would outgrow one batch's limits, or when the
//! store is dropped — [`WriteBuffer::flush`] writes every buffered entry into the data
//! table in one pass in key order, the last entry of each key only, in the same
//! transaction as the applied position and the sessions.
//!
//! Nothing about durability changes: the buffer holds exactly what the open transaction
//! would have held, and is lost exactly when it would have been (a crash, a failed apply
//! or commit), after which the store is back at its last commit and its owner re-applies
//! the log from there. Every read looks in the buffer first, then in the data table, so
//! an applied write is visible at once, as before.
//!
//! **Bounded.** The buffer holds at most the writes of the open transaction, which the
//! store commits before it would exceed [`APPLY_BATCH_WRITES_MAX`](super::APPLY_BATCH_WRITES_MAX)
//! writes or [`APPLY_BATCH_SIZE_MAX_BYTES`](super::APPLY_BATCH_SIZE_MAX_BYTES) bytes; and
//! once an apply leaves it above
//! [`WRITE_BUFFER_SIZE_MAX_BYTES`](super::WRITE_BUFFER_SIZE_MAX_BYTES) of keys and values,
//! the store flushes it into the open transaction without committing (redb's own write
//! cache then holds those pages, as it did before the buffer existed).

use super::encoding::{StoredEntry, expiry_index_key, storage_error};
use redb::Table;
use replikv_core::error::Result;
use replikv_core::{Key, Value};
use std::collections::BTreeMap;

/// Applied data entries not yet written to the data table; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct WriteBuffer {
    /// Key to the entry it has now (a value or a tombstone, with its version).
    entries: BTreeMap<Key, StoredEntry>,
    /// Bytes of the keys and values in `entries`.
    size_bytes: usize,
}

impl WriteBuffer {
    /// The entry `key` has in the buffer, if it was written since the last flush.
    pub(super) fn get(&self, key: &Key) -> Option<&StoredEntry> {
        self.entries.get(key)
    }

    /// Records that `key` now has `entry`, replacing what the buffer held for it. Both
    /// move in: the key is kept if the buffer did not hold it yet.
    pub(super) fn put(&mut self, key: Key, entry: StoredEntry) {
        self.size_bytes += value_size_bytes(&entry);
        if let Some(previous) = self.entries.get_mut(&key) {
            // An expiry change keeps the version; everything else increases it.
            debug_assert!(previous.version <= entry.version, "versions never decrease");
            self.size_bytes -= value_size_bytes(previous);
            *previous = entry;
        } else {
            self.size_bytes += key.as_bytes().len();
            self.entries.insert(key, entry);
        }
    }

    /// Bytes of the keys and values buffered.
    pub(super) fn size_bytes(&self) -> usize {
        self.size_bytes
    }

    /// Number of keys buffered.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets everything buffered (the open transaction it belonged to is lost).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.size_bytes = 0;
    }

    /// Applies the buffered entries to `state`, a visible state read from the data
    /// table: live values replace, tombstones remove.
    pub(super) fn overlay(&self, state: &mut BTreeMap<Key, Value>) {
        for (key, entry) in &self.entries {
            match &entry.value {
                Some(value) => state.insert(key.clone(), value.clone()),
                None => state.remove(key),
            };
        }
    }

    /// Writes every buffered entry into `data`, in key order, keeps the expiry index
    /// `expiry` in step (the entry replaced tells which index record to remove), and
    /// empties the buffer.
    pub(super) fn flush(
        &mut self,
        data: &mut Table<&'static [u8], &'static [u8]>,
        expiry: &mut Table<&'static [u8], &'static [u8]>,
    ) -> Result<()> {
        self.size_bytes = 0;
        for (key, entry) in std::mem::take(&mut self.entries) {
            let previous = data
                .insert(key.as_bytes(), entry.encode().as_slice())
                .map_err(storage_error)?
                .map(|guard| StoredEntry::decode(guard.value()))
                .transpose()?
                .and_then(|previous| previous.expires_at_unix_ms);
            if previous == entry.expires_at_unix_ms {
                continue;
            }
            if let Some(expires_at) = previous {
                expiry
                    .remove(expiry_index_key(expires_at, key.as_bytes()).as_slice())
                    .map_err(storage_error)?;
            }
            if let Some(expires_at) = entry.expires_at_unix_ms {
                expiry
                    .insert(
                        expiry_index_key(expires_at, key.as_bytes()).as_slice(),
                        &[][..],
                    )
                    .map_err(storage_error)?;
            }
        }
        Ok(())
    }
}

/// Bytes of an entry's value (none for a tombstone).
fn value_size_bytes(entry: &StoredEntry) -> usize {
    entry
        .value
        .as_ref()
        .map_or(0, |value| value.as_bytes().len())
}
