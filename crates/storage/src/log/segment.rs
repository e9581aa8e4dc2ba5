//! One segment file of the log, and the in-memory index of the records in it.
//!
//! A segment holds a contiguous run of entries, starting with the index in its name
//! (`log/00000000000000000042.seg` starts at entry 42, zero-padded to 20 digits so that
//! names sort like numbers). Its bytes come in two parts: a durable prefix that is on
//! disk and synced (`durable_length_bytes`), and a pending suffix of encoded records that
//! were appended but not yet written (`pending`). Readers see both, so an entry can be
//! read (and, say, sent to a follower) before it is durable. A segment whose file has not
//! been created yet (a rollover during a batch that is not yet synced) has no file and
//! only pending bytes.
//!
//! The file may be longer than the durable records: the log keeps the last segment's file
//! extended with zeros ahead of its records (`file_length_bytes`, see the preallocation
//! section of the `log` module documentation), so that a sync overwrites bytes the file
//! already has instead of growing it. The bytes between `durable_length_bytes` and
//! `file_length_bytes` are zeros on disk, synced; every segment but the last has none.
//!
//! The index of a segment is one `u32` byte offset per entry: a record's extent is from
//! its offset to the next record's offset, or to the end of the segment. Segments are
//! bounded (see `SEGMENT_SIZE_MAX_BYTES_LIMIT` in the parent module), so offsets fit.

use super::record;
use crate::disk::File;
use replikv_core::error::Result;
use replikv_core::{Error, LogIndex, LogPosition};

/// The directory of the log on its disk.
pub(crate) const LOG_DIRECTORY: &str = "log";
const SEGMENT_SUFFIX: &str = ".seg";
const SEGMENT_NAME_DIGITS: usize = 20;

/// A segment's file name for its first index.
pub(crate) fn segment_name(first_index: LogIndex) -> String {
    format!("{LOG_DIRECTORY}/{:020}{SEGMENT_SUFFIX}", first_index.0)
}

/// Parses a name listed in the log directory. `Ok(None)` for files that are not segments
/// (the log keeps its metadata beside them); an error for a malformed segment name.
pub(crate) fn parse_segment_name(name: &str) -> Result<Option<LogIndex>> {
    let Some(file_name) = name
        .strip_prefix(LOG_DIRECTORY)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return Ok(None);
    };
    let Some(digits) = file_name.strip_suffix(SEGMENT_SUFFIX) else {
        return Ok(None);
    };
    let well_formed =
        digits.len() == SEGMENT_NAME_DIGITS && digits.bytes().all(|byte| byte.is_ascii_digit());
    match digits.parse::<u64>() {
        Ok(index) if well_formed && index > 0 => Ok(Some(LogIndex(index))),
        _ => Err(Error::Corruption(format!(
            "malformed log segment name {name:?}"
        ))),
    }
}

/// A segment's file (if created), its record offsets, and its unwritten records.
#[derive(Debug)]
pub(crate) struct Segment {
    pub first_index: LogIndex,
    pub file: Option<File>,
    record_offsets: Vec<u32>,
    pub durable_length_bytes: u64,
    /// Length of the file on disk: the durable records, then zeros (0 without a file).
    pub file_length_bytes: u64,
    pub pending: Vec<u8>,
}

impl Segment {
    /// A segment that exists only in memory until the next sync creates its file.
    pub fn new_pending(first_index: LogIndex) -> Segment {
        Segment {
            first_index,
            file: None,
            record_offsets: Vec::new(),
            durable_length_bytes: 0,
            file_length_bytes: 0,
            pending: Vec::new(),
        }
    }

    /// A segment read back by recovery: `length_bytes` of valid records on disk, in a file
    /// of `file_length_bytes` whose bytes past the records are zeros.
    pub fn recovered(
        first_index: LogIndex,
        file: File,
        record_offsets: Vec<u32>,
        length_bytes: u64,
        file_length_bytes: u64,
    ) -> Segment {
        debug_assert!(
            record_offsets
                .last()
                .is_none_or(|&last| u64::from(last) < length_bytes)
        );
        assert!(length_bytes <= file_length_bytes);
        Segment {
            first_index,
            file: Some(file),
            record_offsets,
            durable_length_bytes: length_bytes,
            file_length_bytes,
            pending: Vec::new(),
        }
    }

    pub fn name(&self) -> String {
        segment_name(self.first_index)
    }

    pub fn entry_count(&self) -> u64 {
        self.record_offsets.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.record_offsets.is_empty()
    }

    /// The index the next record appended to this segment would have.
    pub fn next_index(&self) -> LogIndex {
        LogIndex(self.first_index.0 + self.entry_count())
    }

    /// Durable plus pending bytes.
    pub fn length_bytes(&self) -> u64 {
        self.durable_length_bytes + self.pending.len() as u64
    }

    /// Encodes one record at the end of the pending bytes.
    pub fn append_record(&mut self, position: LogPosition, payload: &[u8]) {
        assert_eq!(position.index, self.next_index(), "records are contiguous");
        let offset = u32::try_from(self.length_bytes()).expect("segment size is bounded");
        self.record_offsets.push(offset);
        record::encode(&mut self.pending, position, payload);
    }

    /// Byte offset where the record of `index` starts; `index` may be `next_index()`, which
    /// gives the end of the segment.
    pub fn offset_of(&self, index: LogIndex) -> u64 {
        assert!(index >= self.first_index && index <= self.next_index());
        let position = usize::try_from(index.0 - self.first_index.0).expect("bounded");
        self.record_offsets
            .get(position)
            .map_or(self.length_bytes(), |&offset| u64::from(offset))
    }

    /// Reads the bytes `[start, end)` of the segment, from the file and the pending part.
    pub fn read_bytes(&self, start: u64, end: u64) -> Result<Vec<u8>> {
        assert!(start <= end && end <= self.length_bytes());
        let mut bytes = vec![0; usize::try_from(end - start).expect("bounded read")];
        let durable_end = end.min(self.durable_length_bytes);
        if start < durable_end {
            let file = self.file.as_ref().expect("durable bytes live in a file");
            let durable_part = usize::try_from(durable_end - start).expect("bounded read");
            file.read_exact_at(start, &mut bytes[..durable_part])?;
        }
        if end > self.durable_length_bytes {
            let pending_start = start.max(self.durable_length_bytes);
            let from = usize::try_from(pending_start - self.durable_length_bytes).expect("bounded");
            let to = usize::try_from(end - self.durable_length_bytes).expect("bounded");
            let at = usize::try_from(pending_start - start).expect("bounded");
            bytes[at..].copy_from_slice(&self.pending[from..to]);
        }
        Ok(bytes)
    }

    /// Forgets every record from `index` on, in memory only: drops pending bytes past the
    /// cut and lowers the durable length if the cut is inside it (the caller has already
    /// cut the file there, zeros past the records included). Returns the new length in
    /// bytes.
    pub fn forget_from(&mut self, index: LogIndex) -> u64 {
        let cut = self.offset_of(index);
        let kept = usize::try_from(index.0 - self.first_index.0).expect("bounded");
        self.record_offsets.truncate(kept);
        if cut >= self.durable_length_bytes {
            let pending_kept = usize::try_from(cut - self.durable_length_bytes).expect("bounded");
            self.pending.truncate(pending_kept);
        } else {
            self.pending.clear();
            self.durable_length_bytes = cut;
            self.file_length_bytes = cut;
        }
        cut
    }

    /// Size in bytes of the payload of the record of `index`.
    pub fn payload_size_bytes(&self, index: LogIndex) -> u64 {
        let record_size = self.offset_of(index.next()) - self.offset_of(index);
        record_size - record::FRAMING_SIZE_BYTES as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort_numerically() {
        assert_eq!(segment_name(LogIndex(42)), "log/00000000000000000042.seg");
        assert_eq!(
            parse_segment_name(&segment_name(LogIndex(u64::MAX))).unwrap(),
            Some(LogIndex(u64::MAX))
        );
        assert!(segment_name(LogIndex(9)) < segment_name(LogIndex(10)));
        assert_eq!(parse_segment_name("log/compacted.meta").unwrap(), None);
        assert_eq!(parse_segment_name("other/1.seg").unwrap(), None);
        for bad in [
            "log/42.seg",
            "log/0000000000000000004x.seg",
            "log/00000000000000000000.seg",
            "log/+0000000000000000042.seg",
        ] {
            assert!(parse_segment_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pending_records_are_indexed_and_readable() {
        let mut segment = Segment::new_pending(LogIndex(5));
        let mut first = Vec::new();
        record::encode(&mut first, LogPosition::new(1, 5), b"abc");
        segment.append_record(LogPosition::new(1, 5), b"abc");
        segment.append_record(LogPosition::new(1, 6), b"abc");
        assert_eq!(segment.next_index(), LogIndex(7));
        assert_eq!(segment.offset_of(LogIndex(6)), first.len() as u64);
        assert_eq!(segment.payload_size_bytes(LogIndex(6)), 3);
        assert_eq!(segment.read_bytes(0, first.len() as u64).unwrap(), first);
        assert_eq!(segment.forget_from(LogIndex(6)), first.len() as u64);
        assert_eq!(segment.next_index(), LogIndex(6));
        assert_eq!(segment.length_bytes(), first.len() as u64);
    }
}
