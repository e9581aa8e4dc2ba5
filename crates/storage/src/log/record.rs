//! The on-disk record: one log entry, framed so that recovery can tell what a crash left.
//!
//! A record is a fixed 32-byte header, the payload, and a 4-byte end marker, all integers
//! little-endian:
//!
//! ```text
//! offset  size  field
//!      0     4  header checksum: crc32c of bytes 4..32
//!      4     4  start marker "rkvR" (also the format version)
//!      8     4  payload length in bytes
//!     12     4  payload checksum: crc32c of the payload
//!     16     8  term
//!     24     8  index
//!     32     n  payload (opaque bytes)
//!   32+n     4  end marker "rkvE"
//! ```
//!
//! The header has its own checksum, and it covers the length: a torn or flipped length is
//! caught before it is used to find the payload or the next record, and once the header
//! checks out its length can be trusted. That matters for recovery: "the file ends inside
//! this record" is only meaningful if the record's length is known to be the one that was
//! written, and not a flipped bit that points past the end of the file.
//!
//! Both markers consist of bytes with at least two bits set, so no single bit flip can
//! turn either into zeros, and every record that was ever written in full begins and ends
//! with a non-zero byte. [`Damage::may_be_torn_write`] builds on that: a record that is
//! damaged *and* whose damage runs, as zeros, to the end of the file is what a crash leaves
//! on a file system that extended the file but never wrote the data (see the module
//! documentation of `log` for the whole argument), while a complete record with a bad
//! checksum followed by a non-zero end marker is decay, and decay is reported.
//!
//! Decoding never trusts the input: any byte string decodes to a record or to a
//! [`Damage`], never to a panic.

use replikv_core::limits::LOG_RECORD_SIZE_MAX_BYTES;
use replikv_core::{LogIndex, LogPosition, Term};
use std::fmt;

/// Bytes before the payload.
pub(crate) const HEADER_SIZE_BYTES: usize = 32;
/// Bytes after the payload.
pub(crate) const TRAILER_SIZE_BYTES: usize = 4;
/// Framing around each payload.
pub(crate) const FRAMING_SIZE_BYTES: usize = HEADER_SIZE_BYTES + TRAILER_SIZE_BYTES;
/// Largest payload of one record, so that the whole record stays within
/// [`LOG_RECORD_SIZE_MAX_BYTES`].
pub const PAYLOAD_SIZE_MAX_BYTES: usize = LOG_RECORD_SIZE_MAX_BYTES - FRAMING_SIZE_BYTES;

const START_MARKER: [u8; 4] = *b"rkvR";
const END_MARKER: [u8; 4] = *b"rkvE";

/// A record decoded from bytes that passed every check; borrows its payload.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub position: LogPosition,
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// Size of the whole encoded record in bytes.
    pub fn size_bytes(&self) -> usize {
        record_size_bytes(self.payload.len())
    }
}

/// Why the bytes at some offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Damage {
    /// Fewer bytes remain than a header needs.
    HeaderIncomplete,
    /// The header checksum does not match: nothing in the header can be trusted.
    HeaderChecksum,
    /// The header checks out but its start marker is not ours (another format version).
    UnknownFormat,
    /// The header checks out but declares a payload above the limit we ever write.
    PayloadTooLarge { payload_size_bytes: u64 },
    /// The header checks out and the file ends before the record does.
    RecordIncomplete { record_size_bytes: usize },
    /// The header checks out, the record is complete, its payload checksum does not match.
    PayloadChecksum { record_size_bytes: usize },
    /// The header and payload check out but the end marker is wrong.
    EndMarker { record_size_bytes: usize },
}

impl Damage {
    /// Whether this damage, found at the start of `tail` (the bytes from the damaged
    /// record to the end of the file), is something a crash during the write of the last
    /// batch can leave, as opposed to decay of bytes that were once written in full.
    ///
    /// A crash leaves either a file that ends inside the record (the write was cut short)
    /// or a record whose bytes, from somewhere inside it to the end of the file, read as
    /// zeros (the file was extended but the data never reached the disk). Since every
    /// complete record ends with a non-zero end marker, "the last byte of the part of the
    /// record we know about, and everything after it, is zero" is exactly the second case.
    pub fn may_be_torn_write(&self, tail: &[u8]) -> bool {
        let known_extent_bytes = match *self {
            Damage::HeaderIncomplete | Damage::RecordIncomplete { .. } => return true,
            Damage::UnknownFormat | Damage::PayloadTooLarge { .. } => return false,
            Damage::HeaderChecksum => HEADER_SIZE_BYTES,
            Damage::PayloadChecksum { record_size_bytes }
            | Damage::EndMarker { record_size_bytes } => record_size_bytes,
        };
        debug_assert!(known_extent_bytes <= tail.len());
        tail.get(known_extent_bytes - 1..)
            .is_some_and(|rest| rest.iter().all(|&byte| byte == 0))
    }
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::HeaderIncomplete => write!(f, "incomplete record header"),
            Damage::HeaderChecksum => write!(f, "record header checksum mismatch"),
            Damage::UnknownFormat => write!(f, "unknown record format (bad start marker)"),
            Damage::PayloadTooLarge { payload_size_bytes } => {
                write!(
                    f,
                    "record payload of {payload_size_bytes} bytes above limit"
                )
            }
            Damage::RecordIncomplete { record_size_bytes } => {
                write!(f, "incomplete record of {record_size_bytes} bytes")
            }
            Damage::PayloadChecksum { .. } => write!(f, "record payload checksum mismatch"),
            Damage::EndMarker { .. } => write!(f, "bad record end marker"),
        }
    }
}

/// Size of the encoded record of a payload of `payload_size_bytes`.
pub(crate) fn record_size_bytes(payload_size_bytes: usize) -> usize {
    FRAMING_SIZE_BYTES + payload_size_bytes
}

/// Appends the encoding of one record to `out`: the header is built on the stack, so
/// `out` grows once and receives three copies (header, payload, end marker).
pub(crate) fn encode(out: &mut Vec<u8>, position: LogPosition, payload: &[u8]) {
    assert!(
        payload.len() <= PAYLOAD_SIZE_MAX_BYTES,
        "payload size checked at append"
    );
    let payload_size = u32::try_from(payload.len()).expect("bounded by the record limit");
    let mut header = [0u8; HEADER_SIZE_BYTES];
    header[4..8].copy_from_slice(&START_MARKER);
    header[8..12].copy_from_slice(&payload_size.to_le_bytes());
    header[12..16].copy_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    header[16..24].copy_from_slice(&position.term.0.to_le_bytes());
    header[24..32].copy_from_slice(&position.index.0.to_le_bytes());
    let header_checksum = crc32c::crc32c(&header[4..]);
    header[..4].copy_from_slice(&header_checksum.to_le_bytes());
    let start = out.len();
    out.reserve(record_size_bytes(payload.len()));
    out.extend_from_slice(&header);
    out.extend_from_slice(payload);
    out.extend_from_slice(&END_MARKER);
    debug_assert_eq!(out.len() - start, record_size_bytes(payload.len()));
}

/// Decodes the record at the start of `bytes` (which may continue past it).
pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>, Damage> {
    let header = bytes
        .get(..HEADER_SIZE_BYTES)
        .ok_or(Damage::HeaderIncomplete)?;
    if read_u32(header, 0) != crc32c::crc32c(&header[4..]) {
        return Err(Damage::HeaderChecksum);
    }
    if header[4..8] != START_MARKER {
        return Err(Damage::UnknownFormat);
    }
    let payload_size_bytes = read_u32(header, 8);
    let payload_checksum = read_u32(header, 12);
    let position = LogPosition {
        term: Term(read_u64(header, 16)),
        index: LogIndex(read_u64(header, 24)),
    };
    let payload_size = usize::try_from(payload_size_bytes)
        .ok()
        .filter(|&size| size <= PAYLOAD_SIZE_MAX_BYTES)
        .ok_or(Damage::PayloadTooLarge {
            payload_size_bytes: u64::from(payload_size_bytes),
        })?;
    let record_size_bytes = record_size_bytes(payload_size);
    let record = bytes
        .get(..record_size_bytes)
        .ok_or(Damage::RecordIncomplete { record_size_bytes })?;
    let payload = &record[HEADER_SIZE_BYTES..HEADER_SIZE_BYTES + payload_size];
    if crc32c::crc32c(payload) != payload_checksum {
        return Err(Damage::PayloadChecksum { record_size_bytes });
    }
    if record[HEADER_SIZE_BYTES + payload_size..] != END_MARKER {
        return Err(Damage::EndMarker { record_size_bytes });
    }
    Ok(Record { position, payload })
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut buffer = [0; 4];
    buffer.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(buffer)
}

fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut buffer = [0; 8];
    buffer.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(term: u64, index: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, LogPosition::new(term, index), payload);
        out
    }

    #[test]
    fn round_trip_and_layout() {
        let bytes = encoded(3, 7, b"hello");
        assert_eq!(bytes.len(), FRAMING_SIZE_BYTES + 5);
        assert_eq!(&bytes[4..8], b"rkvR");
        assert_eq!(&bytes[bytes.len() - 4..], b"rkvE");
        let record = decode(&bytes).unwrap();
        assert_eq!(record.position, LogPosition::new(3, 7));
        assert_eq!(record.payload, b"hello");
        assert_eq!(record.size_bytes(), bytes.len());
        // Trailing bytes after a record do not disturb it.
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"more");
        assert_eq!(decode(&longer).unwrap().payload, b"hello");
    }

    #[test]
    fn markers_survive_any_single_bit_flip_as_non_zero() {
        for byte in START_MARKER.iter().chain(&END_MARKER) {
            assert!(byte.count_ones() >= 2, "{byte:#x}");
        }
    }

    /// Every prefix of a record is incomplete, never a different record, and may be torn.
    #[test]
    fn every_prefix_is_an_incomplete_record() {
        let bytes = encoded(1, 1, &[0xAB; 40]);
        for length in 0..bytes.len() {
            let damage = decode(&bytes[..length]).unwrap_err();
            assert!(
                matches!(
                    damage,
                    Damage::HeaderIncomplete | Damage::RecordIncomplete { .. }
                ),
                "length {length}: {damage:?}"
            );
            assert!(damage.may_be_torn_write(&bytes[..length]));
        }
    }

    /// A single bit flip anywhere is detected and is never mistaken for a torn write,
    /// whatever the payload holds (zeros included).
    #[test]
    fn every_bit_flip_is_decay_not_a_torn_write() {
        for payload in [vec![0u8; 40], vec![0xFF; 3], Vec::new()] {
            let bytes = encoded(2, 9, &payload);
            for bit in 0..bytes.len() * 8 {
                let mut flipped = bytes.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                let damage = decode(&flipped).unwrap_err();
                assert!(!damage.may_be_torn_write(&flipped), "bit {bit}: {damage:?}");
            }
        }
    }

    /// A zero-filled tail reaching into the record is a torn write, wherever it starts.
    #[test]
    fn zero_filled_tail_is_a_torn_write() {
        let bytes = encoded(2, 9, &[7u8; 20]);
        for zero_from in 0..bytes.len() {
            let mut torn = bytes.clone();
            torn[zero_from..].fill(0);
            torn.extend_from_slice(&[0; 100]);
            let damage = decode(&torn).unwrap_err();
            assert!(damage.may_be_torn_write(&torn), "zeros from {zero_from}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x1234_5678_u64;
        for length in 0..200 {
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1);
                    (state >> 56) as u8
                })
                .collect();
            assert!(decode(&bytes).is_err());
        }
    }

    #[test]
    fn oversized_length_in_a_valid_header_is_not_torn() {
        let mut bytes = encoded(1, 1, b"x");
        let huge = u32::try_from(PAYLOAD_SIZE_MAX_BYTES + 1).unwrap();
        bytes[8..12].copy_from_slice(&huge.to_le_bytes());
        let checksum = crc32c::crc32c(&bytes[4..HEADER_SIZE_BYTES]);
        bytes[0..4].copy_from_slice(&checksum.to_le_bytes());
        let damage = decode(&bytes).unwrap_err();
        assert!(matches!(damage, Damage::PayloadTooLarge { .. }));
        assert!(!damage.may_be_torn_write(&bytes));
    }
}
