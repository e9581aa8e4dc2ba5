//! Truncation at either end of the log, and its reset to a snapshot, each ordered so that a
//! crash part-way through leaves a log that recovery accepts and that is either the old
//! log or a state between the old and the new one that loses nothing the operation was
//! meant to keep.
//!
//! **Suffix** ([`Log::truncate_suffix`]): a follower whose uncommitted tail conflicts with
//! a new leader's log drops that tail. Later segments are removed newest first, the
//! removals are made durable, and only then is the segment holding the cut shortened
//! (`set_len`) and synced. A crash keeps a prefix of the removals, so the surviving
//! segments are always contiguous; and the cut happens after the removals are durable,
//! so a shortened segment is never followed by a segment that starts past its end (a gap
//! recovery would rightly call corruption). Until the call returns, a crash may leave any
//! prefix of the old log that still holds everything up to `after`; once it returns, the
//! truncation is durable, so entries appended next can never be followed, after a crash,
//! by stale entries of the old tail. The committed mark is asserted: cutting a committed
//! entry is a bug in the caller, and crashing beats losing acknowledged data.
//! Preallocation (see the `log` module documentation) changes none of this: the cut is
//! a `set_len` to the first removed record, which drops the zeros past the old records
//! with them, so every stale record is gone from the file, durably, before the call
//! returns, and the next sync extends the file again. Until the cut is synced the file
//! holds the old records, then zeros or nothing, exactly what it held before. A cut among
//! the pending records touches no file: the zeros past the durable records stay, and
//! the next append overwrites them as usual.
//!
//! **Prefix** ([`Log::truncate_prefix`]): after a snapshot, whole segments below the
//! snapshot's index are dropped. The position of the last dropped entry is stored first,
//! durably, in `log/compacted.meta`; then the segments are removed oldest first and the
//! directory synced. A crash in between leaves segments below the recorded point, which
//! recovery removes (finishing the compaction). The recorded position is what lets
//! [`Log::term_at`] answer for the entry just before the first one, as Raft's consistency
//! check needs. The last segment is never removed, and neither is one holding unsynced
//! entries, so a compaction never touches the write in flight.
//!
//! **Reset** ([`Log::reset_to`]): a follower that installed a snapshot discards its whole
//! log, whatever it held, and continues after the snapshot's position. Every segment is
//! removed, newest first, and the removals are made durable; only then is the snapshot's
//! position stored as the compaction record. A crash keeps a prefix of the removals, so
//! until the record is stored the disk holds a prefix of the old log (possibly empty)
//! after the old compaction point, which recovery accepts; once the record is stored the
//! log is empty after the new position. Storing the record first would be wrong: the old
//! segments need not lie below the new position (the follower may have diverged, or be
//! far behind), and recovery would rightly call a segment that does not start right after
//! the compaction point corruption. The caller's store, which holds the snapshot durably
//! before the reset begins, is what tells a node reopened in between to finish the reset
//! (see the single-leader node's `open`).
//!
//! Each operation also drops what it removes from the tail cache (`tail_cache.rs`): a
//! suffix cut and a reset before their first disk operation, a compaction together with
//! the in-memory segment list. The cache never holds an entry the log no longer has.

use super::recovery::encode_compaction_position;
use super::segment::LOG_DIRECTORY;
use super::{Log, LogIndex, LogPosition, Result};

impl Log {
    /// Removes every entry with an index above `after`; durable when it returns. Asserts
    /// that no committed entry (see [`Log::mark_committed`]) and no compacted position is
    /// cut.
    pub fn truncate_suffix(&mut self, after: LogIndex) -> Result<()> {
        self.check_usable()?;
        assert!(
            after >= self.committed_index,
            "truncating the log after {after} would remove committed entries up to {}",
            self.committed_index
        );
        assert!(
            after >= self.prefix.index,
            "truncating the log after {after} reaches below the compacted prefix {}",
            self.prefix
        );
        if after >= self.last.index {
            return Ok(());
        }
        self.complete_in_flight()?;
        let result = self.cut_after(after);
        self.record_failure(result)?;
        self.check_invariants();
        Ok(())
    }

    fn cut_after(&mut self, after: LogIndex) -> Result<()> {
        // Before any I/O: whatever happens below, the cache never outlives the entries.
        self.tail.truncate_after(after);
        let cut_index = after.next();
        let last_kept = LogPosition {
            term: self.term_at(after).expect("after is within the log"),
            index: after,
        };
        let kept_segments = self
            .segments
            .partition_point(|segment| segment.first_index <= cut_index);
        assert!(
            kept_segments > 0,
            "the first segment starts at or below the cut"
        );
        let dropped = self.segments.split_off(kept_segments);
        let mut removed_files = false;
        for segment in dropped
            .iter()
            .rev()
            .filter(|segment| segment.file.is_some())
        {
            self.disk.remove(&segment.name())?;
            removed_files = true;
        }
        if removed_files {
            self.disk.sync_directory(LOG_DIRECTORY)?;
        }
        let segment = self.segments.last_mut().expect("kept_segments > 0");
        let cut_offset = segment.offset_of(cut_index);
        if cut_offset < segment.durable_length_bytes {
            let file = segment.file.as_ref().expect("durable bytes live in a file");
            file.set_len(cut_offset)?;
            file.sync_data()?;
        }
        segment.forget_from(cut_index);
        if segment.file.is_none() && segment.is_empty() {
            self.segments.pop();
        }
        let runs_kept = self.term_runs.partition_point(|&(start, _)| start <= after);
        self.term_runs.truncate(runs_kept);
        self.last = last_kept;
        self.durable_index = self.durable_index.min(after);
        self.pending_size_bytes = self
            .segments
            .iter()
            .map(|segment| segment.pending.len() as u64)
            .sum();
        Ok(())
    }

    /// Removes the whole segments whose entries all lie below `before` (never the last
    /// segment, nor one holding unsynced entries); durable when it returns. Entries of a
    /// segment that also holds `before` or later stay readable. Afterwards
    /// [`Log::first_index`] is the first entry kept and [`Log::term_at`] still answers for
    /// the entry just before it.
    pub fn truncate_prefix(&mut self, before: LogIndex) -> Result<()> {
        self.check_usable()?;
        let removable = self.segments[..self.segments.len().saturating_sub(1)]
            .iter()
            .take_while(|segment| {
                segment.next_index() <= before
                    && segment.next_index() <= self.durable_index.next()
                    && segment.pending.is_empty()
            })
            .count();
        if removable == 0 {
            return Ok(());
        }
        // Not needed by the write discipline (the segments removed hold no unsynced
        // records), but a compaction is rare and a quiet log is simpler to reason about.
        self.complete_in_flight()?;
        let last_removed = self.segments[removable - 1]
            .next_index()
            .previous()
            .expect("a removable segment is not empty");
        let position = LogPosition {
            term: self.term_at(last_removed).expect("within the log"),
            index: last_removed,
        };
        let result = self.remove_first_segments(removable, position);
        self.record_failure(result)?;
        self.check_invariants();
        Ok(())
    }

    fn remove_first_segments(&mut self, count: usize, position: LogPosition) -> Result<()> {
        self.compaction
            .store(&encode_compaction_position(position))?;
        for segment in &self.segments[..count] {
            self.disk.remove(&segment.name())?;
        }
        self.disk.sync_directory(LOG_DIRECTORY)?;
        self.segments.drain(..count);
        self.prefix = position;
        let first = position.index.next();
        self.tail.drop_before(first);
        if self.last.index < first {
            self.term_runs.clear();
        } else {
            let containing_first = self.term_runs.partition_point(|&(start, _)| start <= first);
            self.term_runs.drain(..containing_first - 1);
            self.term_runs[0].0 = first;
        }
        self.committed_index = self.committed_index.max(position.index);
        Ok(())
    }

    /// Discards every entry, durable or pending, committed or not, and makes the log
    /// continue after `position`: afterwards the log is empty, [`Log::first_index`] is
    /// `position.index + 1`, [`Log::term_at`] answers `position.term` for
    /// `position.index`, and the next append must follow `position`. Durable when it
    /// returns; a crash before that leaves a prefix of the old log (see the module
    /// documentation). Meant for a follower that installed a snapshot at `position`.
    pub fn reset_to(&mut self, position: LogPosition) -> Result<()> {
        self.check_usable()?;
        self.complete_in_flight()?;
        let result = self.remove_all_segments(position);
        self.record_failure(result)?;
        self.check_invariants();
        Ok(())
    }

    fn remove_all_segments(&mut self, position: LogPosition) -> Result<()> {
        // Before any I/O: whatever happens below, the cache never outlives the entries.
        self.tail.clear(self.prefix.index.next());
        let mut removed_files = false;
        for segment in self
            .segments
            .iter()
            .rev()
            .filter(|segment| segment.file.is_some())
        {
            self.disk.remove(&segment.name())?;
            removed_files = true;
        }
        if removed_files {
            self.disk.sync_directory(LOG_DIRECTORY)?;
        }
        // The log is empty on disk from here on; forget it in memory before the record
        // is written, so that a failure below leaves no stale segment behind.
        self.segments.clear();
        self.term_runs.clear();
        self.pending_size_bytes = 0;
        self.last = self.prefix;
        self.durable_index = self.prefix.index;
        self.committed_index = self.prefix.index;
        self.compaction
            .store(&encode_compaction_position(position))?;
        self.prefix = position;
        self.last = position;
        self.durable_index = position.index;
        self.committed_index = position.index;
        self.tail.clear(position.index.next());
        Ok(())
    }
}
