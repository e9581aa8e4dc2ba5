//! The write buffer: applied data entries held in memory until the store commits.
//!
//! Applying a write to the data table costs a redb B-tree lookup (the key's current
//! version, which the write's rules need) and an insert, and between two commits the same
//! key is often written again: a hot counter, a lock, a small working set. So the store
//! applies data writes into this buffer, a hash map from key to the entry it now has,
//! in front of the open apply transaction's data table; and when that
//! transaction commits — at a sync (the durable commit), before a snapshot, an install or
//! any other write transaction, when it would outgrow its limits, or when the
//! store is dropped — [`WriteBuffer::flush`] writes every buffered entry into the data
//! table in one pass, sorted by key, the last entry of each key only, in the same
//! transaction as the applied position and the sessions.
//!
//! Nothing about durability changes: the buffer holds exactly what the open transaction
//! would have held, and is lost exactly when it would have been (a crash, a failed apply
//! or commit), after which the store is back at its last commit and its owner re-applies
//! the log from there. Every read looks in the buffer first, then in the read cache of
//! written entries (below), then in the data table, so an applied write is visible at
//! once, as before.
//!
//! **Bounded.** The buffer holds at most the writes of the open transaction, which the
//! store commits before it would exceed its bound (at most
//! [`OPEN_TRANSACTION_WRITES_MAX`](super::OPEN_TRANSACTION_WRITES_MAX)) writes or [`APPLY_BATCH_SIZE_MAX_BYTES`](super::APPLY_BATCH_SIZE_MAX_BYTES) bytes; and
//! once an apply leaves it above
//! [`WRITE_BUFFER_SIZE_MAX_BYTES`](super::WRITE_BUFFER_SIZE_MAX_BYTES) of keys and values,
//! the store flushes it into the open transaction without committing (redb's own write
//! cache then holds those pages, as it did before the buffer existed).
//!
//! **Written entries stay as a read cache.** A flush moves each entry it wrote into a
//! cache of entries the data table holds (`WrittenCache`), which reads and applies
//! consult before the table: with a working set that fits, applying a write no longer
//! walks redb's B-tree for the key's current version (that lookup was 11 to 12 % of the
//! node loop's CPU in a 64-client SET load over 10,000 keys; perf, 2026-11-22). A load
//! that writes each key once gains nothing and pays a map insert per flushed entry. The cache holds exactly what the data table
//! holds, as the open transaction sees it, because every entry reaches the table through
//! a flush, and the two ways the table can change otherwise empty it: a lost
//! transaction (a failed apply or commit, [`WriteBuffer::clear`]) and a snapshot install
//! (which replaces the table). It is bounded by two generations of
//! [`WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES`] each: when the young one is full it
//! becomes the old one and the old one is dropped, so recently written keys stay cached
//! and a key falls back to the table at worst two generations after its last write.

use super::encoding::{StoredEntry, expiry_index_key, storage_error};
use foldhash::HashMap;
use redb::Table;
use replikv_core::error::Result;
use replikv_core::{Key, Value};
use std::collections::BTreeMap;

/// Bytes (keys, values and an allowance of 96 bytes per entry for the map's slot and the
/// allocations' bookkeeping) of written entries one generation of the read cache holds;
/// see the module documentation. The heap in use is somewhat more: a map reserves spare
/// slots, and grows by doubling.
pub const WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES: usize = 8 * 1024 * 1024;

/// What one cached entry costs besides its key and value: the map slot (about 73 bytes
/// at the map's load factor) and the two allocations' bookkeeping, so that many tiny
/// entries are bounded too.
const WRITTEN_CACHE_ENTRY_OVERHEAD_BYTES: usize = 96;

/// Applied data entries not yet written to the data table, and a read cache of those
/// written; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct WriteBuffer {
    /// Key to the entry it has now (a value or a tombstone, with its version). A hash
    /// map: every applied write looks its key up and inserts it, and a sorted map's
    /// key comparisons were most of that cost; the flush sorts the keys once instead.
    /// foldhash, seeded per process: far cheaper than std's SipHash for short keys, and
    /// less resistant to deliberately colliding keys (a client can choose them); a flood
    /// of collisions could slow these lookups, never grow them, as both maps are bounded.
    entries: HashMap<Key, StoredEntry>,
    /// Bytes of the keys and values in `entries`.
    size_bytes: usize,
    /// Whether a buffered write set, replaced or removed an expiry time: only then does
    /// the expiry index need a flush before it is read (`expiry.rs`).
    expiry_changed: bool,
    /// Entries the data table holds, written by earlier flushes.
    written: WrittenCache,
}

/// Entries exactly as the data table holds them; see the module documentation.
#[derive(Default)]
struct WrittenCache {
    young: HashMap<Key, StoredEntry>,
    /// Bytes of `young`, counted as [`WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES`] says.
    young_size_bytes: usize,
    /// The previous generation: consulted after `young`, which shadows it.
    old: HashMap<Key, StoredEntry>,
}

impl std::fmt::Debug for WrittenCache {
    /// Sizes only: a store's debug output must not list up to two generations of entries.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("WrittenCache")
            .field("young_entries", &self.young.len())
            .field("young_size_bytes", &self.young_size_bytes)
            .field("old_entries", &self.old.len())
            .finish()
    }
}

impl WrittenCache {
    fn get(&self, key: &Key) -> Option<&StoredEntry> {
        self.young.get(key).or_else(|| self.old.get(key))
    }

    /// Records that the data table now holds `entry` for `key`.
    fn insert(&mut self, key: Key, entry: StoredEntry) {
        let size_bytes = cached_size_bytes(&key, &entry);
        if self.young_size_bytes + size_bytes > WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES {
            self.old = std::mem::take(&mut self.young);
            self.young_size_bytes = 0;
        }
        self.young_size_bytes += size_bytes;
        let key_size_bytes = key.as_bytes().len();
        if let Some(previous) = self.young.insert(key, entry) {
            self.young_size_bytes -=
                key_size_bytes + value_size_bytes(&previous) + WRITTEN_CACHE_ENTRY_OVERHEAD_BYTES;
        }
        assert!(self.young_size_bytes <= WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES.max(size_bytes));
    }

    fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
        self.young_size_bytes = 0;
    }
}

impl WriteBuffer {
    /// The entry `key` has, if it was written since the last flush or is still cached
    /// from an earlier one; `None`: look in the data table.
    pub(super) fn get(&self, key: &Key) -> Option<&StoredEntry> {
        self.entries.get(key).or_else(|| self.written.get(key))
    }

    /// Records that `key` now has `entry`, replacing what the buffer held for it. Both
    /// move in: the key is kept if the buffer did not hold it yet. `replaced_expiry`:
    /// whether the entry it replaces (wherever it was read) had an expiry time.
    pub(super) fn put(&mut self, key: Key, entry: StoredEntry, replaced_expiry: bool) {
        self.expiry_changed |= replaced_expiry || entry.expires_at_unix_ms.is_some();
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

    /// Whether the expiry index may miss a change that a flush would write (see
    /// `expiry_changed`; it errs on the side of yes, e.g. for any write over an expiring
    /// entry).
    pub(super) fn expiry_changed(&self) -> bool {
        self.expiry_changed
    }

    /// Forgets everything buffered and cached: the open transaction it belonged to is
    /// lost, or the data table is replaced (an install).
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.size_bytes = 0;
        self.expiry_changed = false;
        self.written.clear();
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
    /// empties the buffer into the read cache of written entries. On an error the caller
    /// drops the transaction and clears the buffer.
    pub(super) fn flush(
        &mut self,
        data: &mut Table<&'static [u8], &'static [u8]>,
        expiry: &mut Table<&'static [u8], &'static [u8]>,
    ) -> Result<()> {
        self.size_bytes = 0;
        self.expiry_changed = false;
        let mut entries: Vec<(Key, StoredEntry)> = self.entries.drain().collect();
        // In key order: redb's B-tree inserts then walk neighbouring pages.
        entries.sort_unstable_by(|left, right| left.0.cmp(&right.0));
        for (key, entry) in entries {
            write_entry(data, expiry, &key, &entry)?;
            self.written.insert(key, entry);
        }
        Ok(())
    }
}

/// Writes `entry` of `key` into `data`, and keeps the expiry index in step.
fn write_entry(
    data: &mut Table<&'static [u8], &'static [u8]>,
    expiry: &mut Table<&'static [u8], &'static [u8]>,
    key: &Key,
    entry: &StoredEntry,
) -> Result<()> {
    let previous = data
        .insert(key.as_bytes(), entry.encode().as_slice())
        .map_err(storage_error)?
        .map(|guard| StoredEntry::decode(guard.value()))
        .transpose()?
        .and_then(|previous| previous.expires_at_unix_ms);
    if previous == entry.expires_at_unix_ms {
        return Ok(());
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
    Ok(())
}

/// What an entry costs the read cache: its key, its value and the per-entry allowance.
fn cached_size_bytes(key: &Key, entry: &StoredEntry) -> usize {
    key.as_bytes().len() + value_size_bytes(entry) + WRITTEN_CACHE_ENTRY_OVERHEAD_BYTES
}

/// Bytes of an entry's value (none for a tombstone).
fn value_size_bytes(entry: &StoredEntry) -> usize {
    entry
        .value
        .as_ref()
        .map_or(0, |value| value.as_bytes().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use replikv_core::Version;

    fn key(name: &str) -> Key {
        Key::new(name.as_bytes().to_vec()).unwrap()
    }

    fn entry(version: u64, value_size_bytes: usize) -> StoredEntry {
        StoredEntry {
            version: Version(version),
            value: Some(Value::new(vec![b'v'; value_size_bytes]).unwrap()),
            expires_at_unix_ms: None,
        }
    }

    /// The young generation shadows the old one, and replacing an entry counts its size
    /// once.
    #[test]
    fn the_written_cache_returns_the_latest_entry_of_a_key() {
        let mut cache = WrittenCache::default();
        cache.insert(key("a"), entry(1, 10));
        cache.insert(key("a"), entry(2, 30));
        assert_eq!(cache.get(&key("a")).unwrap().version, Version(2));
        assert_eq!(
            cache.young_size_bytes,
            1 + 30 + WRITTEN_CACHE_ENTRY_OVERHEAD_BYTES
        );
        assert_eq!(cache.get(&key("b")), None);
        cache.old.insert(key("b"), entry(7, 1));
        cache.old.insert(key("a"), entry(1, 1));
        assert_eq!(cache.get(&key("b")).unwrap().version, Version(7));
        assert_eq!(cache.get(&key("a")).unwrap().version, Version(2));
    }

    /// Past a generation's bytes the young generation becomes the old one: memory stays
    /// within two generations, and the most recent generation's keys stay cached.
    #[test]
    fn the_written_cache_is_bounded_by_two_generations() {
        let mut cache = WrittenCache::default();
        let value_size_bytes = 1_000;
        let per_entry = cached_size_bytes(&key("k000000"), &entry(1, value_size_bytes));
        let per_generation = WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES / per_entry;
        let inserted = per_generation * 5 / 2;
        for number in 0..inserted {
            cache.insert(key(&format!("k{number:06}")), entry(1, value_size_bytes));
            assert!(cache.young_size_bytes <= WRITTEN_CACHE_GENERATION_SIZE_MAX_BYTES);
            assert!(cache.young.len() + cache.old.len() <= 2 * per_generation);
        }
        assert_eq!(cache.young.len(), inserted - 2 * per_generation);
        assert_eq!(cache.old.len(), per_generation);
        let last = format!("k{:06}", inserted - 1);
        assert!(cache.get(&key(&last)).is_some());
        assert!(
            cache.get(&key("k000000")).is_none(),
            "dropped with its generation"
        );
    }

    /// Clearing forgets buffered and written entries alike (a lost transaction or an
    /// install: the table may no longer hold them), and the expiry flag with them.
    #[test]
    fn clearing_forgets_the_written_entries_too() {
        let mut buffer = WriteBuffer::default();
        buffer.put(key("a"), entry(1, 5), false);
        buffer.written.insert(key("b"), entry(3, 5));
        let expiring = StoredEntry {
            expires_at_unix_ms: Some(1_000),
            ..entry(2, 5)
        };
        buffer.put(key("c"), expiring, false);
        assert!(buffer.expiry_changed());
        assert!(buffer.get(&key("a")).is_some() && buffer.get(&key("b")).is_some());
        buffer.clear();
        assert_eq!(buffer.get(&key("a")), None);
        assert_eq!(buffer.get(&key("b")), None);
        assert!(!buffer.expiry_changed());
        assert_eq!((buffer.len(), buffer.size_bytes()), (0, 0));
    }

    /// Only writes that set, replace or remove an expiry time make the expiry index stale.
    #[test]
    fn the_expiry_flag_follows_expiry_times_only() {
        let mut buffer = WriteBuffer::default();
        buffer.put(key("a"), entry(1, 5), false);
        assert!(!buffer.expiry_changed(), "a plain write");
        buffer.put(key("a"), entry(2, 5), true);
        assert!(
            buffer.expiry_changed(),
            "a write replacing an expiring value"
        );
    }
}
