//! Recovery: rebuilding the log's index from its files after a clean stop or a crash.
//!
//! The steps, in order (the module documentation of `log` explains why each is sound):
//!
//! 1. Read the compaction record (`log/compacted.meta`): the position of the last entry
//!    removed by prefix truncation.
//! 2. Sync the log directory, then list the segments. A compaction interrupted by a crash
//!    may have left segments that lie wholly below the compaction point: finish removing
//!    them. The first remaining segment must start right after the compaction point.
//! 3. Scan each segment record by record, checking checksums, that indexes continue
//!    without a gap (also across segments, and from the segment's name) and that terms
//!    never decrease. The last segment is synced before it is read.
//! 4. At the first damaged record: in the last segment, if a crash explains it, cut the
//!    file there and sync; anywhere else, or if no crash explains it, fail with
//!    [`Error::Corruption`] naming the segment and offset.
//!
//! One torn tail is not cut: zeros, and nothing but zeros, from the end of the last
//! complete record to the end of the last segment. That is the preallocation the writer
//! keeps ahead of its records (see the `log` module documentation), whether the log
//! stopped cleanly or crashed between two syncs, and the writer wants it back: cutting it
//! would cost a truncation and a sync now and a size change at the next sync. The zeros
//! were just synced with the rest of the file and were read in full, so the segment is
//! opened exactly as the writer leaves it, records then zeros, and the next append
//! overwrites them. Checking them is all a multi-MiB tail costs: one read per scan window
//! (`SCAN_WINDOW_BYTES`, two maximal records, about 4 MiB), so a step of preallocation
//! costs one read and no write. A tail with any non-zero byte (a record cut short, and
//! perhaps zeros after it) is cut at the last complete record as before, and the next
//! sync extends the file again.
//!
//! Segments are read through a bounded window (a few maximal records), not whole, so
//! recovery's memory does not grow with the segment size.

use super::SEGMENT_SIZE_MAX_BYTES_LIMIT;
use super::metadata::MetadataFile;
use super::record;
use super::segment::{LOG_DIRECTORY, Segment, parse_segment_name, segment_name};
use crate::disk::{Disk, File};
use replikv_core::error::Result;
use replikv_core::limits::LOG_RECORD_SIZE_MAX_BYTES;
use replikv_core::{Error, LogIndex, LogPosition, Term};

/// The metadata file holding the position of the last compacted entry.
pub(crate) const COMPACTION_METADATA_NAME: &str = "log/compacted.meta";

/// Largest segment file recovery accepts: a full segment plus one record that started
/// just below the limit.
pub(crate) const SEGMENT_FILE_SIZE_MAX_BYTES: u64 =
    SEGMENT_SIZE_MAX_BYTES_LIMIT + LOG_RECORD_SIZE_MAX_BYTES as u64;

/// Bytes read at a time while scanning a segment: at least one maximal record.
const SCAN_WINDOW_BYTES: usize = 2 * LOG_RECORD_SIZE_MAX_BYTES;

/// The state of the log as found on disk.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub segments: Vec<Segment>,
    pub term_runs: Vec<(LogIndex, Term)>,
    pub prefix: LogPosition,
    pub last: LogPosition,
    pub compaction: MetadataFile,
}

pub(crate) fn recover(disk: &Disk) -> Result<Recovered> {
    let compaction = MetadataFile::open(disk, COMPACTION_METADATA_NAME)?;
    let prefix = match compaction.load() {
        None => LogPosition::ZERO,
        Some(bytes) => decode_compaction_position(&bytes)?,
    };
    disk.sync_directory(LOG_DIRECTORY)?;
    let mut first_indexes = list_segments(disk)?;
    finish_compaction(disk, &mut first_indexes, prefix)?;

    let mut recovered = Recovered {
        segments: Vec::with_capacity(first_indexes.len()),
        term_runs: Vec::new(),
        prefix,
        last: prefix,
        compaction,
    };
    for (position, &first_index) in first_indexes.iter().enumerate() {
        let is_last = position + 1 == first_indexes.len();
        let segment = recover_segment(disk, first_index, is_last, &mut recovered)?;
        recovered.segments.push(segment);
    }
    Ok(recovered)
}

pub(crate) fn encode_compaction_position(position: LogPosition) -> Vec<u8> {
    let mut bytes = position.term.0.to_le_bytes().to_vec();
    bytes.extend_from_slice(&position.index.0.to_le_bytes());
    bytes
}

fn decode_compaction_position(bytes: &[u8]) -> Result<LogPosition> {
    let fields: Option<[u8; 16]> = bytes.try_into().ok();
    let fields = fields.ok_or_else(|| {
        Error::Corruption(format!(
            "{COMPACTION_METADATA_NAME} holds {} bytes, not 16",
            bytes.len()
        ))
    })?;
    let (term, index) = fields.split_at(8);
    Ok(LogPosition {
        term: Term(u64::from_le_bytes(term.try_into().expect("8 bytes"))),
        index: LogIndex(u64::from_le_bytes(index.try_into().expect("8 bytes"))),
    })
}

/// First indexes of the segment files, in order.
fn list_segments(disk: &Disk) -> Result<Vec<LogIndex>> {
    let mut first_indexes = Vec::new();
    for name in disk.list(LOG_DIRECTORY)? {
        if let Some(first_index) = parse_segment_name(&name)? {
            first_indexes.push(first_index);
        }
    }
    first_indexes.sort();
    Ok(first_indexes)
}

/// Removes segments that lie wholly at or below the compaction point (left by a crash
/// during prefix truncation), and checks that the log starts right after that point.
fn finish_compaction(
    disk: &Disk,
    first_indexes: &mut Vec<LogIndex>,
    prefix: LogPosition,
) -> Result<()> {
    let below = first_indexes
        .windows(2)
        .take_while(|pair| pair[1] <= prefix.index.next())
        .count();
    for &first_index in &first_indexes[..below] {
        disk.remove(&segment_name(first_index))?;
    }
    if below > 0 {
        disk.sync_directory(LOG_DIRECTORY)?;
        first_indexes.drain(..below);
    }
    match first_indexes.first() {
        Some(&first) if first != prefix.index.next() => Err(Error::Corruption(format!(
            "log starts with segment {} but the last compacted entry is {prefix}",
            segment_name(first)
        ))),
        _ => Ok(()),
    }
}

/// Scans one segment, extending `recovered` with its entries; cuts a torn tail off the
/// last segment.
fn recover_segment(
    disk: &Disk,
    first_index: LogIndex,
    is_last: bool,
    recovered: &mut Recovered,
) -> Result<Segment> {
    let name = segment_name(first_index);
    if first_index != recovered.last.index.next() {
        return Err(Error::Corruption(format!(
            "log segment {name} does not continue the log, whose last entry is {}",
            recovered.last
        )));
    }
    let file = disk.open(&name)?;
    if is_last {
        file.sync_data()?;
    }
    let length_bytes = file.len()?;
    if length_bytes > SEGMENT_FILE_SIZE_MAX_BYTES {
        return Err(Error::Corruption(format!(
            "log segment {name} is {length_bytes} bytes, above {SEGMENT_FILE_SIZE_MAX_BYTES}"
        )));
    }
    let scanned = scan_records(&file, &name, length_bytes, is_last, recovered)?;
    let valid_length_bytes = scanned.valid_length_bytes;
    let file_length_bytes = if valid_length_bytes == length_bytes || scanned.zero_tail {
        length_bytes
    } else {
        cut_torn_tail(&file, valid_length_bytes)?;
        valid_length_bytes
    };
    Ok(Segment::recovered(
        first_index,
        file,
        scanned.record_offsets,
        valid_length_bytes,
        file_length_bytes,
    ))
}

/// What a scan found in one segment.
struct Scanned {
    record_offsets: Vec<u32>,
    /// Length of the valid records.
    valid_length_bytes: u64,
    /// Whether every byte past the valid records (at least one) is zero: the last
    /// segment's preallocation, kept.
    zero_tail: bool,
}

/// Decodes the records of one segment, extending `recovered`; returns their offsets, the
/// length of the valid part and whether the rest is zeros. Stops early only at a torn
/// tail of the last segment.
fn scan_records(
    file: &File,
    name: &str,
    length_bytes: u64,
    is_last: bool,
    recovered: &mut Recovered,
) -> Result<Scanned> {
    let mut window = Window::new(file, length_bytes);
    let mut record_offsets = Vec::new();
    let mut offset = 0u64;
    while offset < length_bytes {
        let bytes = window.at(offset)?;
        let damage = match record::decode(bytes) {
            Ok(record) => {
                check_sequence(name, offset, recovered.last, record.position)?;
                record_offsets.push(u32::try_from(offset).expect("segment size bounded"));
                recovered.last = record.position;
                let term = record.position.term;
                if recovered
                    .term_runs
                    .last()
                    .is_none_or(|&(_, run)| run != term)
                {
                    recovered.term_runs.push((record.position.index, term));
                }
                offset += record.size_bytes() as u64;
                continue;
            }
            Err(damage) => damage,
        };
        let window_zero = bytes.iter().all(|&byte| byte == 0);
        let torn =
            is_last && damage.may_be_torn_write(bytes) && window.zero_after_window(length_bytes)?;
        if torn {
            return Ok(Scanned {
                record_offsets,
                valid_length_bytes: offset,
                zero_tail: window_zero,
            });
        }
        let context = if is_last {
            ""
        } else {
            " (not the last segment)"
        };
        return Err(Error::Corruption(format!(
            "log segment {name} offset {offset}: {damage}{context}"
        )));
    }
    Ok(Scanned {
        record_offsets,
        valid_length_bytes: offset,
        zero_tail: false,
    })
}

fn check_sequence(
    name: &str,
    offset: u64,
    previous: LogPosition,
    position: LogPosition,
) -> Result<()> {
    if position.index != previous.index.next() || position.term < previous.term {
        return Err(Error::Corruption(format!(
            "log segment {name} offset {offset}: entry {position} cannot follow {previous}"
        )));
    }
    Ok(())
}

fn cut_torn_tail(file: &File, offset: u64) -> Result<()> {
    file.set_len(offset)?;
    file.sync_data()?;
    Ok(())
}

/// A bounded view of a segment file that always holds at least one maximal record (or
/// the rest of the file) from the offset asked for.
struct Window<'a> {
    file: &'a File,
    file_length_bytes: u64,
    start: u64,
    bytes: Vec<u8>,
}

impl<'a> Window<'a> {
    fn new(file: &'a File, file_length_bytes: u64) -> Window<'a> {
        Window {
            file,
            file_length_bytes,
            start: 0,
            bytes: Vec::new(),
        }
    }

    fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }

    /// The bytes from `offset` to the window's end, covering at least one maximal record
    /// or the rest of the file.
    fn at(&mut self, offset: u64) -> Result<&[u8]> {
        let needed_end = (offset + LOG_RECORD_SIZE_MAX_BYTES as u64).min(self.file_length_bytes);
        if offset < self.start || needed_end > self.end() {
            let end = (offset + SCAN_WINDOW_BYTES as u64).min(self.file_length_bytes);
            self.bytes
                .resize(usize::try_from(end - offset).expect("bounded window"), 0);
            self.file.read_exact_at(offset, &mut self.bytes)?;
            self.start = offset;
        }
        let from = usize::try_from(offset - self.start).expect("within window");
        Ok(&self.bytes[from..])
    }

    /// Whether every byte of the file past the window is zero.
    fn zero_after_window(&self, file_length_bytes: u64) -> Result<bool> {
        let mut offset = self.end();
        let mut chunk = vec![0u8; SCAN_WINDOW_BYTES];
        while offset < file_length_bytes {
            let length = usize::try_from((file_length_bytes - offset).min(chunk.len() as u64))
                .expect("bounded chunk");
            self.file.read_exact_at(offset, &mut chunk[..length])?;
            if chunk[..length].iter().any(|&byte| byte != 0) {
                return Ok(false);
            }
            offset += length as u64;
        }
        Ok(true)
    }
}
