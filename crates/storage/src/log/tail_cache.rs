//! The tail cache: the payloads of the most recently appended entries, kept in memory so
//! that the readers that want them (the apply loop, replication to followers, the
//! simulator's observer) need not read back, re-checksum and decode what was just written.
//!
//! Almost every read of a healthy node is of the log's tail: a leader sends followers the
//! entries it appended a moment ago, and every node applies entries shortly after they
//! commit. Reading those from the segments costs a copy out of the file (or the pending
//! buffer), two crc32c checks and a record decode per entry, all to recover bytes the log
//! had in hand when it wrote them. The cache keeps them instead: one payload per entry,
//! with its term, for a contiguous run of entries that always *ends at the log's last
//! entry*. A read whose first index the cache covers is therefore served entirely from
//! memory; any other read (a follower far behind, the first reads after a reopen) falls
//! back to the segments, which stay the source of truth.
//!
//! **Exactness.** The cache may only ever hold what the log holds, byte for byte. It is
//! fed by [`Log::append`](super::Log::append) with the same entries that are encoded into
//! the segments, and every operation that removes entries from the log removes them
//! here first: a suffix truncation drops the cached entries past the cut, a compaction
//! those below the new first index, a reset everything. It starts empty when the log is
//! opened, so a crash or reopen can never leave it stale. The log asserts, after every
//! mutation, that the cache ends at its last entry and starts no lower than its first
//! one; in debug builds a sample of the reads it serves is compared against the segments.
//!
//! **Bounds.** At most [`TAIL_CACHE_ENTRIES_MAX`] entries and
//! [`TAIL_CACHE_SIZE_MAX_BYTES`] bytes of payload. Appending beyond either evicts the
//! oldest entries; an entry larger than the byte bound on its own empties the cache, which
//! then restarts after it. Evicted buffers are reused for the next append when their size
//! fits closely (at most twice the payload plus 64 bytes, so the memory held stays within
//! twice the byte bound plus 64 bytes per entry), so in the steady state an append costs
//! one copy of its payload and no allocation.
//!
//! Memory holds no checksums: bytes that never left it cannot decay the way bytes on a
//! disk can, and everything read from the segments is still verified.

use replikv_core::{LogIndex, LogPosition, Term};
use std::collections::VecDeque;

/// Most entries the tail cache holds.
pub const TAIL_CACHE_ENTRIES_MAX: usize = 4096;

/// Most bytes of payload buffers the tail cache holds.
pub const TAIL_CACHE_SIZE_MAX_BYTES: usize = 8 * 1024 * 1024;

/// A reused buffer may be at most this much larger than the payload it receives (plus a
/// small constant), so that the memory held stays close to the payload bytes counted.
const SPARE_SLACK_FACTOR: usize = 2;
const SPARE_SLACK_BYTES: usize = 64;

#[derive(Debug)]
struct CachedEntry {
    term: Term,
    payload: Vec<u8>,
}

/// Payloads of a contiguous run of entries at the end of the log; see the module
/// documentation.
#[derive(Debug)]
pub(crate) struct TailCache {
    entries_max: usize,
    size_max_bytes: usize,
    /// Index of `entries[0]`; the cache holds `first_index..first_index + entries.len()`.
    first_index: LogIndex,
    entries: VecDeque<CachedEntry>,
    /// Sum of the lengths of the cached payloads.
    size_bytes: usize,
    /// The buffer of the last evicted entry, kept for the next append.
    spare: Option<Vec<u8>>,
}

impl TailCache {
    /// An empty cache whose next entry is `next_index`.
    pub fn new(entries_max: usize, size_max_bytes: usize, next_index: LogIndex) -> TailCache {
        assert!(entries_max > 0, "the tail cache holds at least one entry");
        TailCache {
            entries_max,
            size_max_bytes,
            first_index: next_index,
            entries: VecDeque::new(),
            size_bytes: 0,
            spare: None,
        }
    }

    /// The first cached index (equal to `next_index()` when empty).
    pub fn first_index(&self) -> LogIndex {
        self.first_index
    }

    /// The index the next pushed entry must have: one past the last cached entry.
    pub fn next_index(&self) -> LogIndex {
        LogIndex(self.first_index.0 + self.entries.len() as u64)
    }

    /// Whether `index` is cached.
    pub fn covers(&self, index: LogIndex) -> bool {
        index >= self.first_index && index < self.next_index()
    }

    /// The term and payload of the entry at `index`, if cached.
    pub fn get(&self, index: LogIndex) -> Option<(Term, &[u8])> {
        if !self.covers(index) {
            return None;
        }
        let offset = usize::try_from(index.0 - self.first_index.0).expect("bounded");
        let entry = &self.entries[offset];
        Some((entry.term, &entry.payload))
    }

    /// Caches a copy of the entry at `position`, which must be the next index, evicting
    /// the oldest entries beyond the bounds.
    pub fn push(&mut self, position: LogPosition, payload: &[u8]) {
        assert_eq!(
            position.index,
            self.next_index(),
            "cached entries are contiguous"
        );
        let fits = |buffer: &Vec<u8>| {
            buffer.capacity() >= payload.len()
                && buffer.capacity() <= SPARE_SLACK_FACTOR * payload.len() + SPARE_SLACK_BYTES
        };
        let mut buffer = match self.spare.take().filter(fits) {
            Some(buffer) => buffer,
            None => Vec::with_capacity(payload.len()),
        };
        buffer.clear();
        buffer.extend_from_slice(payload);
        self.size_bytes += buffer.len();
        self.entries.push_back(CachedEntry {
            term: position.term,
            payload: buffer,
        });
        while self.entries.len() > self.entries_max || self.size_bytes > self.size_max_bytes {
            let evicted = self
                .entries
                .pop_front()
                .expect("over a bound, so not empty");
            self.size_bytes -= evicted.payload.len();
            self.first_index = self.first_index.next();
            self.spare = Some(evicted.payload);
        }
        self.check();
    }

    /// Forgets every entry above `after`. If `after` is below the first cached entry, the
    /// cache empties and restarts at `after + 1`.
    pub fn truncate_after(&mut self, after: LogIndex) {
        if after < self.first_index {
            self.clear(after.next());
            return;
        }
        let kept = usize::try_from(after.0 - self.first_index.0 + 1).unwrap_or(usize::MAX);
        while self.entries.len() > kept {
            let dropped = self.entries.pop_back().expect("longer than kept");
            self.size_bytes -= dropped.payload.len();
        }
        self.check();
    }

    /// Forgets every entry below `first` (the log's new first index after a compaction).
    pub fn drop_before(&mut self, first: LogIndex) {
        while self.first_index < first {
            let Some(dropped) = self.entries.pop_front() else {
                // Everything cached is below `first`: the log is empty up to it.
                self.first_index = first;
                break;
            };
            self.size_bytes -= dropped.payload.len();
            self.first_index = self.first_index.next();
        }
        self.check();
    }

    /// Forgets everything; the next entry pushed must be `next_index`.
    pub fn clear(&mut self, next_index: LogIndex) {
        self.entries.clear();
        self.size_bytes = 0;
        self.first_index = next_index;
    }

    fn check(&self) {
        debug_assert!(self.entries.len() <= self.entries_max);
        debug_assert!(self.size_bytes <= self.size_max_bytes);
        debug_assert_eq!(
            self.size_bytes,
            self.entries
                .iter()
                .map(|entry| entry.payload.len())
                .sum::<usize>()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position(index: u64) -> LogPosition {
        LogPosition::new(1 + index / 10, index)
    }

    fn filled(entries_max: usize, size_max_bytes: usize, count: u64) -> TailCache {
        let mut cache = TailCache::new(entries_max, size_max_bytes, LogIndex(1));
        for index in 1..=count {
            cache.push(position(index), &vec![index as u8; index as usize % 7]);
        }
        cache
    }

    #[test]
    fn keeps_the_last_entries_within_the_entry_bound() {
        let cache = filled(5, 1 << 20, 12);
        assert_eq!(cache.first_index(), LogIndex(8));
        assert_eq!(cache.next_index(), LogIndex(13));
        assert!(!cache.covers(LogIndex(7)) && !cache.covers(LogIndex(13)));
        for index in 8..=12u64 {
            let (term, payload) = cache.get(LogIndex(index)).unwrap();
            assert_eq!(term, position(index).term);
            assert_eq!(payload, vec![index as u8; index as usize % 7].as_slice());
        }
    }

    #[test]
    fn keeps_within_the_byte_bound_and_skips_oversized_entries() {
        let mut cache = TailCache::new(100, 64, LogIndex(1));
        for index in 1..=10 {
            cache.push(position(index), &[7; 20]);
        }
        assert!(cache.size_bytes <= 64);
        assert_eq!(cache.next_index(), LogIndex(11));
        assert!(cache.covers(LogIndex(10)));
        cache.push(position(11), &[1; 65]);
        assert_eq!(cache.first_index(), LogIndex(12));
        assert_eq!(cache.next_index(), LogIndex(12));
        cache.push(position(12), &[2; 3]);
        assert_eq!(cache.get(LogIndex(12)).unwrap().1, &[2, 2, 2]);
    }

    #[test]
    fn truncation_and_compaction_keep_it_a_contiguous_run() {
        let mut cache = filled(8, 1 << 20, 20);
        assert_eq!(cache.first_index(), LogIndex(13));
        cache.truncate_after(LogIndex(15));
        assert_eq!(cache.next_index(), LogIndex(16));
        cache.drop_before(LogIndex(14));
        assert_eq!(cache.first_index(), LogIndex(14));
        cache.truncate_after(LogIndex(9));
        assert_eq!(
            (cache.first_index(), cache.next_index()),
            (LogIndex(10), LogIndex(10))
        );
        cache.push(position(10), b"x");
        cache.drop_before(LogIndex(30));
        assert_eq!(
            (cache.first_index(), cache.next_index()),
            (LogIndex(30), LogIndex(30))
        );
        cache.clear(LogIndex(3));
        assert_eq!(cache.get(LogIndex(3)), None);
        cache.push(position(3), b"y");
        assert_eq!(cache.get(LogIndex(3)), Some((position(3).term, &b"y"[..])));
    }

    #[test]
    #[should_panic(expected = "contiguous")]
    fn refuses_a_gap() {
        let mut cache = filled(8, 1 << 20, 3);
        cache.push(position(5), b"gap");
    }
}
