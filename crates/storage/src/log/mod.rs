//! The replication log: an append-only, crash-safe sequence of entries.
//!
//! Every single-leader strategy of replikv is a replicated log. The leader appends client
//! writes as entries, each stamped with its [`LogPosition`] (the leader's term and the
//! entry's index), followers append the same entries in the same order, and an entry that
//! a quorum holds *durably* is committed. Everything the protocols promise therefore rests
//! on two properties of this module: an entry reported durable survives any crash
//! unchanged, and nothing that was not written in full is ever read back as an entry.
//!
//! ## Layout
//!
//! The log lives in the directory `log/` of a [`Disk`] (the real one or the simulated one:
//! the code is the same). Entries are stored in *segment* files named after their first
//! index, `log/00000000000000000001.seg`, each a sequence of records (see `record.rs`:
//! a header with its own crc32c, the payload, an end marker). A new segment begins once the
//! current one reaches [`LogOptions::segment_size_max_bytes`], so prefix truncation can
//! drop whole files. Beside the segments, `log/compacted.meta` (a [`MetadataFile`]) holds
//! the position of the last entry removed by compaction, or of the snapshot the log was
//! reset to ([`Log::reset_to`]). In memory the log keeps, per
//! segment, one byte offset per entry, and the list of term changes: enough to find any
//! entry with one read and to answer [`Log::term_at`] without touching the disk.
//!
//! ## Writing: group commit and the write discipline
//!
//! [`Log::append`] only encodes entries into memory. [`Log::sync`] is the group commit:
//! everything appended since the previous sync goes to disk as *one* write followed by
//! *one* `sync_data`, so a thousand appends cost one fsync. (A batch that crosses a
//! segment boundary costs one write and one sync per segment it touches.) The order of
//! disk operations obeys four rules, and recovery is sound because of them:
//!
//! 1. A batch is written with a single write at the end of the last segment's records
//!    (after a write of zeros past the batch when the file must grow, see below), and
//!    synced before any other byte of any log file is written. At any moment at most one
//!    batch is unsynced: its records, and perhaps zeros after them.
//! 2. A segment is complete, cut to its records and synced before the next one is
//!    created, and a new segment's name is made durable (`sync_directory("log")`) before
//!    any data goes into it.
//! 3. Truncations make their removals durable before they cut a file, and the cut durable
//!    before they return (see `truncate.rs`).
//! 4. After any I/O error the log refuses all further work until it is reopened: after a
//!    failed fsync the state of the written data is unknown, and retrying the fsync can
//!    report success for data that was dropped.
//!
//! ## Preallocation: syncing without a size change
//!
//! An `fdatasync` after a write that grows the file must also write the inode with the
//! new size: on the file system replikv is measured on (ext4 without a journal) that is
//! a second, dependent I/O in every group commit. Measured on that machine, 3 KB
//! `pwrite` plus `fdatasync`: 208 to 238 µs per sync into a growing file, 153 to 172 µs
//! for the same writes into a file already written with zeros; `perf` showed `fdatasync`
//! at 31 % of the node loop's CPU, `ext4_write_inode` inside it. So the last segment's
//! file is kept extended ahead of its records with zeros, and a sync overwrites bytes
//! the file already has. When a batch outgrows the file, zeros are written first, from
//! the end of the batch to the next multiple of [`SEGMENT_PREALLOCATION_STEP_BYTES`]
//! (1 MiB), then the batch, and the same `sync_data` makes both durable: one size change
//! per step instead of one per batch. A file shorter than a step
//! grows in powers of two from [`SEGMENT_PREALLOCATION_FIRST_STEP_BYTES`] (64 KiB): five
//! more size changes in a segment's first MiB, and a short log (a fresh node, a test, each
//! node of the simulator, which copies every byte written several times) does not write
//! a whole MiB of zeros. The zeros are real bytes written with
//! `pwrite`: neither `fallocate` nor `set_len`, which leave an unwritten extent or a
//! hole, and the first data written into either needs a metadata write, the very cost
//! avoided. The extension stops at [`LogOptions::segment_size_max_bytes`]: records that
//! reach it fill the segment and the next batch starts a new one, so zeros past it would
//! only be trimmed again. Each segment records its file's length beside its durable
//! length (`segment.rs`); the bytes between them are synced zeros.
//!
//! None of this changes what a crash can leave. The zeros and the batch are written to
//! disjoint ranges before the one sync, so a crash keeps, loses or tears each of the two
//! writes on its own, and every mix leaves the synced bytes, then a prefix of the batch's
//! records, then zeros: synced ones, written ones, or the gap a lost write leaves before
//! a kept one, which reads as zeros. That is records, perhaps one cut short, then zeros
//! to the end of the file: the torn tail recovery recognizes. Recovery keeps such a tail
//! when it is zeros from a record boundary on, and cuts anything else (`recovery.rs`).
//! Once synced, the zeros also spare the log a weakness of file systems without a
//! journal: a crash after a sync that grew the file can leave newly allocated blocks
//! holding stale bytes of some other file, while overwriting blocks already written can
//! only leave their old bytes or the new ones. The simulated disk sees the same writes,
//! so its crash model keeps, loses and tears the zeros like any data.
//!
//! A segment that is no longer the last must hold records only: recovery rightly calls
//! anything else in it corruption. With the extension capped at the segment size, a full
//! segment has no zeros left, but a file extended under a larger segment size (the
//! options may change between runs) still has them. So the sync that creates a segment's
//! file first cuts the segment before it to its records (`set_len`), with its last
//! pending records if it has any, under that segment's `sync_data`; with no pending
//! records the cut and its sync are done alone. A crash before that sync returns leaves
//! the old segment as the last one, holding its synced records, a prefix of the pending
//! ones, and zeros or nothing after them, which recovery accepts whether or not the cut
//! survived; the new file is only created after the sync, and then the old segment holds
//! exactly its records. A suffix truncation that cuts into the durable records cuts the
//! zeros with them (the next sync extends the file again); one that only drops pending
//! records leaves the file, zeros included, as it was (see `truncate.rs`).
//!
//! ## Pipelined sync
//!
//! [`Log::sync`] returns when the batch is durable, so its caller waits out every
//! `fdatasync`. [`Log::start_sync`] splits it: it does all the writing of [`Log::sync`]
//! and returns the last segment's `sync_data` as a [`PendingSync`] the caller runs on
//! another thread (on a second handle to the file) while it goes on appending;
//! [`Log::finish_sync`] takes the outcome back and only then moves the durable position.
//! Rule 1 is kept as it is: entries appended while the sync is outstanding stay in
//! memory, and the next batch is written only after [`Log::finish_sync`]; at most one sync
//! is outstanding. A batch that crosses a segment boundary syncs its earlier segments
//! before `start_sync` returns (rule 2 needs them complete before the next file exists),
//! so only the last segment's sync is ever left to the caller. Every other operation
//! that writes files ([`Log::sync`], the truncations and [`Log::reset_to`]) first completes
//! an outstanding sync itself with a `sync_data` of its own; the caller's, when it comes
//! back, is then stale and [`Log::finish_sync`] ignores it, unless it failed: a failed
//! sync fails the log (rule 4), stale or not.
//!
//! ## What a crash can leave, and how recovery tells a torn tail from corruption
//!
//! The simulated disk loses, keeps or tears (keeps a prefix of) each unsynced write
//! independently, and a later write may survive an earlier lost one. By rule 1 there is
//! never more than one unsynced write of records (the zeros written with it lie past it
//! and hold none), so none of those combinations can put a valid record after a gap: a
//! crash leaves the synced bytes plus a prefix of the last batch's write, that is, some
//! complete records of that batch and then, perhaps, a record cut short where the file
//! ends or the zeros begin. By rule 2 this can only happen in the last segment. A real
//! file system can also extend a file without writing its data, which reads as zeros.
//!
//! [`Log::open`] scans every segment and stops at the first record that fails to decode.
//! In a segment other than the last, that is corruption. In the last segment, it is a
//! *torn tail*, cut off (the file is truncated and synced), only if a crash can explain it:
//!
//! - the file ends inside the record: fewer bytes than a header, or a header whose
//!   checksum holds (so its length is the one written, not a flipped bit) announcing a
//!   record longer than what remains; or
//! - the record's bytes, from inside it to the end of the file, are all zeros: a file
//!   extended but never written. Every record that was written in full ends with a
//!   non-zero end marker that no single bit flip can zero, so this never describes a
//!   complete record that later decayed.
//!
//! Anything else is reported as [`Error::Corruption`] naming the segment and the byte
//! offset: a complete record with a bad checksum, a record followed by more records, a
//! record with a valid checksum but the wrong index or a decreasing term, a gap between
//! segments. In particular a bit flip in the *last* record of the log is corruption, not a
//! torn write: under the write discipline a crash cannot produce a complete record with a
//! bad checksum, so cutting it would be a guess, and the guess would silently drop an
//! entry that was synced and perhaps acknowledged. We prefer a node that refuses to start
//! (and is rebuilt from its peers) to one that forgets what it promised.
//!
//! The price of that choice: damage a real disk could leave that the rules above do not
//! explain (a hole in the middle of the last write followed by later bytes of the same
//! write, stale garbage from another file) is also reported, not repaired. Loud, never
//! silent. The one decay the rules cannot tell from a crash is a device that zeroes the
//! final synced bytes of the last segment, end marker included: that reads exactly like
//! a file extended but never written, and is cut.
//!
//! Recovery first syncs the log directory and the last segment: after a *process* crash
//! the operating system may still hold writes that never reached the disk, and the log
//! must not report as durable, or cut at, bytes that a power failure could still change.
//!
//! ## Reading
//!
//! [`Log::get`] and [`Log::read_range`] read durable and pending entries alike (a leader
//! may send an entry to followers before its own sync completes); [`Log::visit_range`]
//! lends the payloads instead of copying them. Reads of the most recent entries are
//! served from the *tail cache* (`tail_cache.rs`), the payloads of the last few thousand
//! entries appended, kept exact across truncation, compaction, reset and reopen. Every
//! other read goes to the segments and verifies the checksums again, so decay found after
//! startup is also reported as corruption.

pub mod metadata;
mod pipeline;
mod record;
mod recovery;
mod segment;
mod tail_cache;
mod truncate;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod pipeline_tests;
#[cfg(test)]
mod prealloc_tests;
#[cfg(test)]
mod tests;

pub use metadata::{METADATA_SIZE_MAX_BYTES, MetadataFile};
pub use record::PAYLOAD_SIZE_MAX_BYTES;
pub use tail_cache::{TAIL_CACHE_ENTRIES_MAX, TAIL_CACHE_SIZE_MAX_BYTES};

use crate::disk::Disk;
use pipeline::InFlightSync;
use replikv_core::error::Result;
use replikv_core::limits::LOG_RECORD_SIZE_MAX_BYTES;
pub use replikv_core::replica::{CompletedSync, PendingSync};
use replikv_core::{Error, LogIndex, LogPosition, Term};
use segment::{LOG_DIRECTORY, Segment};
use tail_cache::TailCache;

/// Largest configurable segment size: segment offsets are kept as `u32` in memory.
pub const SEGMENT_SIZE_MAX_BYTES_LIMIT: u64 = 1 << 30;

/// Largest configurable bound on appended but unsynced bytes.
pub const PENDING_SIZE_MAX_BYTES_LIMIT: u64 = 1 << 30;

/// How far the last segment's file is extended with zeros when its records outgrow it, in
/// bytes, once it holds a step or more: one size change per step instead of one per sync
/// (see "Preallocation" in the module documentation). The extension never goes past
/// [`LogOptions::segment_size_max_bytes`].
pub const SEGMENT_PREALLOCATION_STEP_BYTES: u64 = 1024 * 1024;

/// The smallest extension: a file shorter than a step is extended to the power of two at
/// or above its records, from this size on, so a short log does not pay for a whole step.
pub const SEGMENT_PREALLOCATION_FIRST_STEP_BYTES: u64 = 64 * 1024;

/// The zeros a file is extended with: one step, the most an extension adds past the
/// records (in the binary's zero-initialized data, so it costs no memory until read).
static PREALLOCATION_ZEROS: [u8; SEGMENT_PREALLOCATION_STEP_BYTES as usize] =
    [0; SEGMENT_PREALLOCATION_STEP_BYTES as usize];

/// The length the last segment's file should have once `data_end` bytes of records are
/// written, given its current length: unchanged while the records fit; else the power of
/// two at or above the records (at least [`SEGMENT_PREALLOCATION_FIRST_STEP_BYTES`]) up
/// to a step, then the next multiple of [`SEGMENT_PREALLOCATION_STEP_BYTES`]; but no
/// further than the segment size (past it the segment is full and a new one begins) and
/// never short of the records.
fn preallocated_length_bytes(data_end: u64, file_length_bytes: u64, segment_size_max: u64) -> u64 {
    if data_end <= file_length_bytes {
        return file_length_bytes;
    }
    let step = data_end.next_power_of_two().clamp(
        SEGMENT_PREALLOCATION_FIRST_STEP_BYTES,
        SEGMENT_PREALLOCATION_STEP_BYTES,
    );
    let stepped = data_end.div_ceil(step) * step;
    let length = stepped.min(segment_size_max).max(data_end);
    assert!(length <= recovery::SEGMENT_FILE_SIZE_MAX_BYTES);
    assert!(length - data_end < SEGMENT_PREALLOCATION_STEP_BYTES);
    length
}

/// One log entry: its position and the opaque bytes the replication strategy stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub position: LogPosition,
    pub payload: Vec<u8>,
}

impl Entry {
    #[must_use]
    pub fn new(term: u64, index: u64, payload: impl Into<Vec<u8>>) -> Entry {
        Entry {
            position: LogPosition::new(term, index),
            payload: payload.into(),
        }
    }
}

/// How a [`Log`] is configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// A new segment begins once the current one holds at least this many bytes.
    pub segment_size_max_bytes: u64,
    /// Bound on bytes appended but not yet synced; an append beyond it is refused with
    /// [`Error::Overloaded`] until the next sync. At least one maximal record.
    pub pending_size_max_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            segment_size_max_bytes: 64 * 1024 * 1024,
            pending_size_max_bytes: 64 * 1024 * 1024,
        }
    }
}

impl LogOptions {
    fn validate(&self) -> Result<()> {
        if !(1..=SEGMENT_SIZE_MAX_BYTES_LIMIT).contains(&self.segment_size_max_bytes) {
            return Err(Error::InvalidInput(format!(
                "segment_size_max_bytes {} outside 1..={SEGMENT_SIZE_MAX_BYTES_LIMIT}",
                self.segment_size_max_bytes
            )));
        }
        let pending_min = LOG_RECORD_SIZE_MAX_BYTES as u64;
        if !(pending_min..=PENDING_SIZE_MAX_BYTES_LIMIT).contains(&self.pending_size_max_bytes) {
            return Err(Error::InvalidInput(format!(
                "pending_size_max_bytes {} outside {pending_min}..={PENDING_SIZE_MAX_BYTES_LIMIT}",
                self.pending_size_max_bytes
            )));
        }
        Ok(())
    }
}

/// The replication log of one replica; see the module documentation.
#[derive(Debug)]
pub struct Log {
    disk: Disk,
    options: LogOptions,
    /// Segments in index order; the last one receives appends.
    segments: Vec<Segment>,
    /// `(first index, term)` of each run of entries with the same term, in index order.
    term_runs: Vec<(LogIndex, Term)>,
    /// The position of the last entry removed by compaction (zero if none).
    prefix: LogPosition,
    last: LogPosition,
    durable_index: LogIndex,
    committed_index: LogIndex,
    pending_size_bytes: u64,
    compaction: MetadataFile,
    /// Payloads of the last entries appended, ending at `last` (see `tail_cache.rs`).
    tail: TailCache,
    /// Set after an I/O error; the log then refuses all work (rule 4).
    failure: Option<String>,
    /// The sync [`Log::start_sync`] handed out and [`Log::finish_sync`] has not taken back.
    in_flight: Option<InFlightSync>,
    /// The number of the last sync handed out (see "Pipelined sync").
    sync_sequence: u64,
}

/// What one write of a segment's pending bytes did, applied once its sync returns.
#[derive(Clone, Copy, Debug)]
struct WrittenSegment {
    /// The segment's records end here once the sync returns.
    data_end: u64,
    file_length_bytes: u64,
    /// How many pending bytes, from the front, the write took.
    written_bytes: u64,
    /// The last entry the write covers, if it wrote records.
    covered_index: Option<LogIndex>,
}

impl Log {
    /// Opens the log on `disk`, recovering from whatever a crash left (see the module
    /// documentation). Fails with [`Error::Corruption`] if synced data is damaged.
    pub fn open(disk: Disk, options: LogOptions) -> Result<Log> {
        options.validate()?;
        let recovered = recovery::recover(&disk)?;
        let log = Log {
            disk,
            options,
            segments: recovered.segments,
            term_runs: recovered.term_runs,
            prefix: recovered.prefix,
            last: recovered.last,
            durable_index: recovered.last.index,
            committed_index: recovered.prefix.index,
            pending_size_bytes: 0,
            compaction: recovered.compaction,
            tail: TailCache::new(
                TAIL_CACHE_ENTRIES_MAX,
                TAIL_CACHE_SIZE_MAX_BYTES,
                recovered.last.index.next(),
            ),
            failure: None,
            in_flight: None,
            sync_sequence: 0,
        };
        log.check_invariants();
        Ok(log)
    }

    /// Buffers `entries` for the next [`Log::sync`]; they are readable at once. Each entry
    /// must continue the log: index `last + 1`, term not below the last term (asserted: a
    /// caller that breaks this has a bug). A payload above [`PAYLOAD_SIZE_MAX_BYTES`] is
    /// refused with [`Error::InvalidInput`], and a batch that would take the unsynced bytes
    /// above [`LogOptions::pending_size_max_bytes`] with [`Error::Overloaded`]; either way
    /// nothing of the batch is appended.
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        self.check_usable()?;
        let mut previous = self.last;
        let mut batch_size_bytes = 0u64;
        for entry in entries {
            if entry.payload.len() > PAYLOAD_SIZE_MAX_BYTES {
                return Err(Error::InvalidInput(format!(
                    "log entry {} has a payload of {} bytes, above {PAYLOAD_SIZE_MAX_BYTES}",
                    entry.position,
                    entry.payload.len()
                )));
            }
            assert_eq!(
                entry.position.index,
                previous.index.next(),
                "log entries must be contiguous"
            );
            assert!(
                entry.position.term >= previous.term,
                "log term decreases from {} to {}",
                previous,
                entry.position
            );
            previous = entry.position;
            batch_size_bytes += record::record_size_bytes(entry.payload.len()) as u64;
        }
        if self.pending_size_bytes + batch_size_bytes > self.options.pending_size_max_bytes {
            return Err(Error::Overloaded(format!(
                "log has {} unsynced bytes; a batch of {batch_size_bytes} more needs a sync first",
                self.pending_size_bytes
            )));
        }
        for entry in entries {
            self.append_one(entry);
        }
        self.pending_size_bytes += batch_size_bytes;
        Ok(())
    }

    fn append_one(&mut self, entry: &Entry) {
        let segment_full = |segment: &Segment| {
            !segment.is_empty() && segment.length_bytes() >= self.options.segment_size_max_bytes
        };
        if self.segments.last().is_none_or(segment_full) {
            self.segments
                .push(Segment::new_pending(entry.position.index));
        }
        let segment = self.segments.last_mut().expect("just ensured");
        segment.append_record(entry.position, &entry.payload);
        self.tail.push(entry.position, &entry.payload);
        if self
            .term_runs
            .last()
            .is_none_or(|&(_, term)| term != entry.position.term)
        {
            self.term_runs
                .push((entry.position.index, entry.position.term));
        }
        self.last = entry.position;
    }

    /// Group commit: writes everything appended since the last sync with one write and one
    /// `sync_data` per segment touched, and returns the durable position. Free when
    /// nothing is pending.
    pub fn sync(&mut self) -> Result<LogPosition> {
        self.check_usable()?;
        self.complete_in_flight()?;
        if self.durable_index < self.last.index {
            let result = self.write_pending();
            self.record_failure(result)?;
            debug_assert_eq!(self.pending_size_bytes, 0);
            self.check_invariants();
        }
        Ok(self.durable_position())
    }

    /// Writes and syncs every segment with pending bytes, in order, and trims the zeros off
    /// a segment that is no longer the last before the next one's file is created (rule 2;
    /// such a segment may have nothing pending).
    fn write_pending(&mut self) -> Result<()> {
        let last = self.segments.len().checked_sub(1).expect("entries pending");
        for position in 0..self.segments.len() {
            let segment = &self.segments[position];
            let trim = position < last && segment.file_length_bytes > segment.length_bytes();
            if !segment.pending.is_empty() || trim {
                self.flush_segment(position, position == last)?;
            }
        }
        Ok(())
    }

    /// Brings one segment's file up to date with one write of the pending records (after a
    /// write of zeros past them when the last segment outgrows its file) and one
    /// `sync_data`; a segment that is not the last is cut to its records instead, by the
    /// same sync. See "Preallocation" in the module documentation.
    fn flush_segment(&mut self, position: usize, is_last: bool) -> Result<()> {
        let written = self.write_segment(position, is_last)?;
        let segment = &self.segments[position];
        segment.file.as_ref().expect("written").sync_data()?;
        self.complete_segment(position, written);
        Ok(())
    }

    /// The writing half of [`Log::flush_segment`]: creates the file if needed, writes
    /// zeros and the pending records, cuts a segment that is no longer the last. Nothing
    /// it wrote counts as durable until [`Log::complete_segment`] after a `sync_data`.
    fn write_segment(&mut self, position: usize, is_last: bool) -> Result<WrittenSegment> {
        let Log {
            disk,
            options,
            segments,
            ..
        } = self;
        let segment = &mut segments[position];
        if segment.file.is_none() {
            let name = segment.name();
            assert!(!disk.exists(&name)?, "new segment {name} already exists");
            let file = disk.open(&name)?;
            disk.sync_directory(LOG_DIRECTORY)?;
            segment.file = Some(file);
        }
        let file = segment.file.as_ref().expect("created above");
        let data_end = segment.length_bytes();
        let file_length_bytes = if is_last {
            preallocated_length_bytes(
                data_end,
                segment.file_length_bytes,
                options.segment_size_max_bytes,
            )
        } else {
            data_end
        };
        let written_bytes = segment.pending.len() as u64;
        if file_length_bytes > segment.file_length_bytes && file_length_bytes > data_end {
            let zeros = usize::try_from(file_length_bytes - data_end).expect("below a step");
            file.write_all_at(data_end, &PREALLOCATION_ZEROS[..zeros])?;
        }
        if written_bytes > 0 {
            file.write_all_at(segment.durable_length_bytes, &segment.pending)?;
        }
        if file_length_bytes < segment.file_length_bytes {
            file.set_len(file_length_bytes)?;
        }
        let covered_index = (written_bytes > 0)
            .then(|| segment.next_index().previous().expect("segment not empty"));
        Ok(WrittenSegment {
            data_end,
            file_length_bytes,
            written_bytes,
            covered_index,
        })
    }

    /// The bookkeeping half of [`Log::flush_segment`], once the write's `sync_data`
    /// returned: the written bytes are durable.
    fn complete_segment(&mut self, position: usize, written: WrittenSegment) {
        let segment = &mut self.segments[position];
        assert_eq!(
            segment.durable_length_bytes + written.written_bytes,
            written.data_end,
            "the write continued the durable records"
        );
        let written_bytes = usize::try_from(written.written_bytes).expect("bounded");
        segment.pending.drain(..written_bytes);
        segment.durable_length_bytes = written.data_end;
        segment.file_length_bytes = written.file_length_bytes;
        self.pending_size_bytes -= written.written_bytes;
        if let Some(covered) = written.covered_index {
            assert!(covered > self.durable_index && covered <= self.last.index);
            self.durable_index = covered;
        }
    }

    /// The index of the first entry in the log (after compaction, the one after the last
    /// removed entry). Equals `last_position().index + 1` when the log is empty.
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.prefix.index.next()
    }

    /// The position of the last entry appended (durable or not), or of the last compacted
    /// entry if the log is empty.
    #[must_use]
    pub fn last_position(&self) -> LogPosition {
        self.last
    }

    /// The position of the last entry known to be on disk.
    #[must_use]
    pub fn durable_position(&self) -> LogPosition {
        let term = self
            .term_at(self.durable_index)
            .expect("durable index within the log");
        LogPosition {
            term,
            index: self.durable_index,
        }
    }

    /// The highest index marked committed (see [`Log::mark_committed`]).
    #[must_use]
    pub fn committed_index(&self) -> LogIndex {
        self.committed_index
    }

    /// The term of the entry at `index`, including the last compacted entry (as Raft's
    /// consistency check needs); `None` outside the log.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.prefix.index {
            return Some(self.prefix.term);
        }
        if index < self.first_index() || index > self.last.index {
            return None;
        }
        let run = self.term_runs.partition_point(|&(start, _)| start <= index);
        Some(self.term_runs[run - 1].1)
    }

    /// Records that entries up to `index` are committed: from now on
    /// [`Log::truncate_suffix`] asserts it never removes them, so a caller's bug becomes a
    /// crash instead of lost data. Never lowers the mark. The mark lives in memory: after
    /// a reopen it restarts at the last compacted entry.
    pub fn mark_committed(&mut self, index: LogIndex) {
        assert!(
            index <= self.last.index,
            "committing {index} beyond the last entry {}",
            self.last
        );
        self.committed_index = self.committed_index.max(index);
    }

    /// The entry at `index`, or `None` if it is not in the log (compacted or not yet
    /// appended).
    pub fn get(&self, index: LogIndex) -> Result<Option<Entry>> {
        if index < self.first_index() || index > self.last.index {
            return Ok(None);
        }
        Ok(self.read_range(index, 1, 0)?.pop())
    }

    /// Entries from `from` on, at most `entries_max` of them and no more payload bytes than
    /// `bytes_max`, except that the first entry is always returned if it exists. Empty if
    /// `from` is past the last entry; [`Error::InvalidInput`] if it was compacted away.
    pub fn read_range(
        &self,
        from: LogIndex,
        entries_max: usize,
        bytes_max: usize,
    ) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        self.visit_range(from, entries_max, bytes_max, |position, payload| {
            entries.push(Entry {
                position,
                payload: payload.to_vec(),
            });
            Ok(())
        })?;
        Ok(entries)
    }

    /// [`Log::read_range`] without the copies: calls `visit` with the position and a
    /// borrowed payload of each entry, in order, and returns how many it visited. An error
    /// from `visit` stops the walk and is returned as it is.
    pub fn visit_range<F>(
        &self,
        from: LogIndex,
        entries_max: usize,
        bytes_max: usize,
        mut visit: F,
    ) -> Result<usize>
    where
        F: FnMut(LogPosition, &[u8]) -> Result<()>,
    {
        self.check_usable()?;
        if from < self.first_index() {
            return Err(Error::InvalidInput(format!(
                "log entry {from} is compacted (first index {})",
                self.first_index()
            )));
        }
        if from > self.last.index {
            return Ok(0);
        }
        let entries_max = entries_max.max(1);
        if self.tail.covers(from) {
            #[cfg(debug_assertions)]
            self.cross_check_tail(from, entries_max, bytes_max);
            return self.visit_tail(from, entries_max, bytes_max, &mut visit);
        }
        self.visit_segments(from, entries_max, bytes_max, &mut visit)
    }

    /// Serves a read from the tail cache, which covers `from` and everything after it.
    fn visit_tail<F>(
        &self,
        from: LogIndex,
        entries_max: usize,
        bytes_max: usize,
        visit: &mut F,
    ) -> Result<usize>
    where
        F: FnMut(LogPosition, &[u8]) -> Result<()>,
    {
        let mut count = 0usize;
        let mut payload_bytes = 0u64;
        let mut index = from;
        while index <= self.last.index {
            let (term, payload) = self
                .tail
                .get(index)
                .expect("the cache ends at the last entry");
            let size = payload.len() as u64;
            if count > 0 && (count >= entries_max || payload_bytes + size > bytes_max as u64) {
                break;
            }
            visit(LogPosition { term, index }, payload)?;
            payload_bytes += size;
            count += 1;
            index = index.next();
        }
        Ok(count)
    }

    /// Debug builds compare a sample of the reads served from the tail cache with the same
    /// reads from the segments (when those succeed: a simulated fault may stop them).
    #[cfg(debug_assertions)]
    fn cross_check_tail(&self, from: LogIndex, entries_max: usize, bytes_max: usize) {
        const SAMPLE_EVERY_INDEXES: u64 = 8;
        if !from.0.is_multiple_of(SAMPLE_EVERY_INDEXES) {
            return;
        }
        self.assert_tail_matches_segments(from, entries_max, bytes_max);
    }

    /// Asserts that the tail cache and the segments answer the read alike.
    #[cfg(any(test, debug_assertions))]
    fn assert_tail_matches_segments(&self, from: LogIndex, entries_max: usize, bytes_max: usize) {
        let mut cached = Vec::new();
        let mut collect = |position, payload: &[u8]| {
            cached.push(Entry {
                position,
                payload: payload.to_vec(),
            });
            Ok(())
        };
        self.visit_tail(from, entries_max, bytes_max, &mut collect)
            .expect("collecting cannot fail");
        let mut stored = Vec::new();
        let mut collect = |position, payload: &[u8]| {
            stored.push(Entry {
                position,
                payload: payload.to_vec(),
            });
            Ok(())
        };
        if self
            .visit_segments(from, entries_max, bytes_max, &mut collect)
            .is_ok()
        {
            assert_eq!(cached, stored, "the tail cache differs from the segments");
        }
    }

    /// Tests: replaces the tail cache with an empty one of the given bounds.
    #[cfg(test)]
    pub(crate) fn set_tail_cache_bounds(&mut self, entries_max: usize, size_max_bytes: usize) {
        self.tail = TailCache::new(entries_max, size_max_bytes, self.last.index.next());
    }

    /// Tests: the range of indexes the tail cache holds, `first..next`.
    #[cfg(test)]
    pub(crate) fn tail_cache_range(&self) -> std::ops::Range<LogIndex> {
        self.tail.first_index()..self.tail.next_index()
    }

    /// Tests: compares everything the tail cache holds with the segments.
    #[cfg(test)]
    pub(crate) fn assert_tail_cache_exact(&self) {
        if self.tail.first_index() < self.tail.next_index() {
            self.assert_tail_matches_segments(self.tail.first_index(), usize::MAX, usize::MAX);
        }
    }

    /// Tests: checks every segment file against the bookkeeping: its length is the
    /// recorded one, and the bytes past its durable records are zeros.
    #[cfg(test)]
    pub(crate) fn assert_segment_files_exact(&self) {
        for segment in &self.segments {
            let Some(file) = &segment.file else { continue };
            assert_eq!(
                file.len().unwrap(),
                segment.file_length_bytes,
                "{}",
                segment.name()
            );
            let zeros = segment.file_length_bytes - segment.durable_length_bytes;
            let mut tail = vec![0xff; usize::try_from(zeros).unwrap()];
            file.read_exact_at(segment.durable_length_bytes, &mut tail)
                .unwrap();
            assert!(tail.iter().all(|&byte| byte == 0), "{}", segment.name());
        }
    }

    /// Serves a read from the segments, one read per segment touched.
    fn visit_segments<F>(
        &self,
        from: LogIndex,
        entries_max: usize,
        bytes_max: usize,
        visit: &mut F,
    ) -> Result<usize>
    where
        F: FnMut(LogPosition, &[u8]) -> Result<()>,
    {
        let mut count = 0usize;
        let mut payload_bytes = 0u64;
        let mut index = from;
        let mut segment_position = self.segment_position(from);
        loop {
            let segment = &self.segments[segment_position];
            let mut end = index;
            let mut limited = false;
            while end < segment.next_index() {
                let total = count + usize::try_from(end.0 - index.0).expect("bounded");
                let size = segment.payload_size_bytes(end);
                if total > 0 && (total >= entries_max || payload_bytes + size > bytes_max as u64) {
                    limited = true;
                    break;
                }
                payload_bytes += size;
                end = end.next();
            }
            self.read_segment_entries(segment, index, end, visit)?;
            count += usize::try_from(end.0 - index.0).expect("bounded");
            index = end;
            segment_position += 1;
            if limited || index > self.last.index {
                return Ok(count);
            }
        }
    }

    /// Position in `segments` of the segment holding `index` (which must be in the log).
    fn segment_position(&self, index: LogIndex) -> usize {
        let position = self
            .segments
            .partition_point(|segment| segment.first_index <= index);
        assert!(position > 0, "index {index} before the first segment");
        position - 1
    }

    /// Reads and verifies the entries `[from, end)` of `segment` with one read.
    fn read_segment_entries<F>(
        &self,
        segment: &Segment,
        from: LogIndex,
        end: LogIndex,
        visit: &mut F,
    ) -> Result<()>
    where
        F: FnMut(LogPosition, &[u8]) -> Result<()>,
    {
        let start_offset = segment.offset_of(from);
        let bytes = segment.read_bytes(start_offset, segment.offset_of(end))?;
        let mut at = 0usize;
        let mut index = from;
        while index < end {
            let corruption = |detail: String| {
                Error::Corruption(format!(
                    "log segment {} offset {}: {detail}",
                    segment.name(),
                    start_offset + at as u64
                ))
            };
            let record =
                record::decode(&bytes[at..]).map_err(|damage| corruption(damage.to_string()))?;
            let expected = LogPosition {
                term: self.term_at(index).expect("index within the log"),
                index,
            };
            if record.position != expected {
                return Err(corruption(format!(
                    "record holds entry {} where {expected} was written",
                    record.position
                )));
            }
            at += record.size_bytes();
            visit(record.position, record.payload)?;
            index = index.next();
        }
        debug_assert_eq!(at, bytes.len());
        Ok(())
    }

    fn check_usable(&self) -> Result<()> {
        match &self.failure {
            None => Ok(()),
            Some(failure) => Err(Error::Io(format!(
                "log unusable after an earlier failure ({failure}); reopen it"
            ))),
        }
    }

    fn record_failure<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(error) = &result {
            self.failure = Some(error.to_string());
        }
        result
    }

    /// Cross-checks the bookkeeping; cheap enough to run after every mutation in tests.
    fn check_invariants(&self) {
        let mut next = self.first_index();
        for (position, segment) in self.segments.iter().enumerate() {
            assert_eq!(segment.first_index, next, "segments are contiguous");
            next = segment.next_index();
            assert!(segment.durable_length_bytes <= segment.file_length_bytes);
            assert!(segment.file_length_bytes <= recovery::SEGMENT_FILE_SIZE_MAX_BYTES);
            if segment.file.is_none() {
                assert_eq!(segment.file_length_bytes, 0, "no file, no length");
            }
            let followed_by_file = self
                .segments
                .get(position + 1)
                .is_some_and(|next| next.file.is_some());
            if followed_by_file {
                assert!(
                    segment.pending.is_empty()
                        && segment.file_length_bytes == segment.durable_length_bytes,
                    "segment {} is followed by a file but has unsynced bytes or zeros",
                    segment.name()
                );
            }
        }
        assert_eq!(
            next,
            self.last.index.next(),
            "segments end at the last entry"
        );
        assert!(self.prefix.index <= self.durable_index && self.durable_index <= self.last.index);
        self.check_in_flight_invariants();
        assert!(self.committed_index <= self.last.index);
        if let Some(&(start, _)) = self.term_runs.first() {
            assert_eq!(
                start,
                self.first_index(),
                "term runs start at the first entry"
            );
        }
        assert_eq!(
            self.term_runs.is_empty(),
            self.last.index == self.prefix.index
        );
        assert_eq!(
            self.tail.next_index(),
            self.last.index.next(),
            "the tail cache ends at the last entry"
        );
        assert!(
            self.tail.first_index() >= self.first_index(),
            "the tail cache holds no compacted entry"
        );
        debug_assert_eq!(
            self.pending_size_bytes,
            self.segments
                .iter()
                .map(|segment| segment.pending.len() as u64)
                .sum::<u64>()
        );
    }
}
