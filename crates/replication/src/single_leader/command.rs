//! What a log entry asks the state machine to do, and its compact binary encoding.
//!
//! Every entry of the replication log carries one [`Command`] as its payload. The payload
//! is what the leader stores, what it sends to its followers and what they store, byte
//! for byte, so its encoding is part of the on-disk format and must stay stable and
//! versioned.
//!
//! The encoding used to be JSON, where a byte string becomes an array of decimal numbers
//! (three to four bytes per byte): a compare-and-set carrying two values of the maximum
//! size no longer fit in a log record. It is now hand-rolled binary, at most a few dozen
//! bytes above the keys and values it carries:
//!
//! ```text
//! payload  = format: u8 (2) | tag: u8 | fields
//! Noop     tag 0: nothing
//! Put      tag 1: header | key | value
//! Delete   tag 2: header | key
//! CasValue tag 3: header | key | expected: (0 | 1 value) | new: value
//! CasVer   tag 4: header | key | expected version: u64 LE | new: value
//! header   = origin node: u64 LE | client: u64 LE | sequence: u64 LE
//! key, value = length: u32 LE | bytes
//! ```
//!
//! Every client write carries a **header**: the node that proposed it (`origin`, the
//! leader of the entry's term) and the client's [`RequestId`]. The request id is what
//! makes retries idempotent: the state machine remembers, per client, the last request
//! it applied and its outcome, so a retry that reaches the log twice (say once through a
//! leader that lost its leadership before answering, once through its successor) is
//! applied once. The origin tells a node, when it applies an entry, whether the entry is
//! one it proposed itself, so that only the proposer answers the client.
//!
//! Format 1 (the same layout without the header) is refused, not guessed at: a write
//! without its request id cannot be deduplicated, and no store of format 1 outlives the
//! development builds that wrote it.
//!
//! The format byte leaves room for a new encoding, the tag byte for new commands. A
//! payload comes from a peer's message or from disk, so decoding trusts nothing: every
//! length is checked against what remains and against the key and value limits, trailing
//! bytes are refused, and every failure is an [`Error::Corruption`], never a panic.

use replikv_core::error::{Error, Result};
use replikv_core::{ClientId, Key, NodeId, RequestId, Value, Version};
use replikv_storage::store::StoreWrite;

/// The encoding's format number, the payload's first byte.
pub const COMMAND_FORMAT: u8 = 2;

/// Bytes of a write's header: origin node, client, sequence.
pub const WRITE_HEADER_SIZE_BYTES: usize = 3 * 8;

/// Most bytes the encoding adds to the keys and values a command carries: the format and
/// tag bytes, the write header, three length prefixes, and an option byte or a version.
pub const COMMAND_OVERHEAD_MAX_BYTES: usize = 2 + WRITE_HEADER_SIZE_BYTES + 3 * 4 + 8;

const TAG_NOOP: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_CAS_VALUE: u8 = 3;
const TAG_CAS_VERSION: u8 = 4;

/// What one log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The entry a new leader appends in its term, so that it can commit (Raft §5.4.2)
    /// and serve ReadIndex reads.
    Noop,
    /// A client write, with the leader that proposed it and the client's request id.
    Write {
        origin: NodeId,
        request_id: RequestId,
        write: StoreWrite,
    },
}

impl Command {
    /// The payload bytes stored in the log.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(COMMAND_OVERHEAD_MAX_BYTES + self.data_size_bytes());
        bytes.push(COMMAND_FORMAT);
        match self {
            Command::Noop => bytes.push(TAG_NOOP),
            Command::Write {
                origin,
                request_id,
                write,
            } => {
                bytes.push(write_tag(write));
                bytes.extend_from_slice(&origin.0.to_le_bytes());
                bytes.extend_from_slice(&request_id.client.0.to_le_bytes());
                bytes.extend_from_slice(&request_id.sequence.to_le_bytes());
                encode_write(&mut bytes, write);
            }
        }
        debug_assert!(bytes.len() <= COMMAND_OVERHEAD_MAX_BYTES + self.data_size_bytes());
        bytes
    }
    /// Decodes a payload; [`Error::Corruption`] if the bytes are not a command (a peer's
    /// garbage, or a damaged record).
    pub fn decode(payload: &[u8]) -> Result<Command> {
        let mut reader = Reader { rest: payload };
        let format = reader.byte("format")?;
        if format != COMMAND_FORMAT {
            return Err(corruption(&format!("unknown format {format}")));
        }
        let command = match reader.byte("tag")? {
            TAG_NOOP => Command::Noop,
            tag @ (TAG_PUT | TAG_DELETE | TAG_CAS_VALUE | TAG_CAS_VERSION) => {
                let origin = NodeId(reader.u64("origin")?);
                let client = ClientId(reader.u64("client")?);
                let sequence = reader.u64("sequence")?;
                let write = decode_write(tag, &mut reader)?;
                let request_id = RequestId { client, sequence };
                Command::Write {
                    origin,
                    request_id,
                    write,
                }
            }
            tag => return Err(corruption(&format!("unknown tag {tag}"))),
        };
        if !reader.rest.is_empty() {
            let count = reader.rest.len();
            return Err(corruption(&format!("{count} trailing bytes")));
        }
        Ok(command)
    }

    /// Bytes of keys and values the command carries.
    fn data_size_bytes(&self) -> usize {
        match self {
            Command::Noop => 0,
            Command::Write { write, .. } => write.size_bytes(),
        }
    }
}

/// The tag of a write's command kind.
fn write_tag(write: &StoreWrite) -> u8 {
    match write {
        StoreWrite::Put { .. } => TAG_PUT,
        StoreWrite::Delete { .. } => TAG_DELETE,
        StoreWrite::CompareAndSetValue { .. } => TAG_CAS_VALUE,
        StoreWrite::CompareAndSetVersion { .. } => TAG_CAS_VERSION,
    }
}

/// A write's fields, after its tag and header.
fn encode_write(bytes: &mut Vec<u8>, write: &StoreWrite) {
    match write {
        StoreWrite::Put { key, value } => {
            put_prefixed(bytes, key.as_bytes());
            put_prefixed(bytes, value.as_bytes());
        }
        StoreWrite::Delete { key } => put_prefixed(bytes, key.as_bytes()),
        StoreWrite::CompareAndSetValue { key, expected, new } => {
            put_prefixed(bytes, key.as_bytes());
            match expected {
                None => bytes.push(0),
                Some(value) => {
                    bytes.push(1);
                    put_prefixed(bytes, value.as_bytes());
                }
            }
            put_prefixed(bytes, new.as_bytes());
        }
        StoreWrite::CompareAndSetVersion { key, expected, new } => {
            put_prefixed(bytes, key.as_bytes());
            bytes.extend_from_slice(&expected.0.to_le_bytes());
            put_prefixed(bytes, new.as_bytes());
        }
    }
}

/// The fields of the write of kind `tag`, after its header.
fn decode_write(tag: u8, reader: &mut Reader<'_>) -> Result<StoreWrite> {
    let write = match tag {
        TAG_PUT => {
            let key = reader.key()?;
            let value = reader.value()?;
            StoreWrite::Put { key, value }
        }
        TAG_DELETE => StoreWrite::Delete { key: reader.key()? },
        TAG_CAS_VALUE => {
            let key = reader.key()?;
            let expected = match reader.byte("option")? {
                0 => None,
                1 => Some(reader.value()?),
                other => return Err(corruption(&format!("option byte {other}"))),
            };
            let new = reader.value()?;
            StoreWrite::CompareAndSetValue { key, expected, new }
        }
        TAG_CAS_VERSION => {
            let key = reader.key()?;
            let expected = Version(reader.u64("version")?);
            let new = reader.value()?;
            StoreWrite::CompareAndSetVersion { key, expected, new }
        }
        other => return Err(corruption(&format!("unknown write tag {other}"))),
    };
    Ok(write)
}

/// A short name of the command kind a payload claims to be, read from its first two
/// bytes without decoding the rest: for traces.
#[must_use]
pub fn kind_name(payload: &[u8]) -> &'static str {
    match payload {
        [COMMAND_FORMAT, TAG_NOOP, ..] => "noop",
        [COMMAND_FORMAT, TAG_PUT, ..] => "put",
        [COMMAND_FORMAT, TAG_DELETE, ..] => "delete",
        [COMMAND_FORMAT, TAG_CAS_VALUE, ..] => "cas",
        [COMMAND_FORMAT, TAG_CAS_VERSION, ..] => "casv",
        _ => "unknown",
    }
}

fn corruption(text: &str) -> Error {
    Error::Corruption(format!("command payload: {text}"))
}

fn put_prefixed(bytes: &mut Vec<u8>, data: &[u8]) {
    let length = u32::try_from(data.len()).expect("keys and values are far below 4 GiB");
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(data);
}

/// A cursor over untrusted bytes: every read checks what remains.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize, what: &str) -> Result<&'a [u8]> {
        if self.rest.len() < count {
            let left = self.rest.len();
            return Err(corruption(&format!(
                "{what}: {count} bytes needed, {left} left"
            )));
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }

    fn byte(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        let bytes = self.take(8, what)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn prefixed(&mut self, what: &str) -> Result<&'a [u8]> {
        let length = self.take(4, what)?;
        let length = u32::from_le_bytes(length.try_into().expect("4 bytes"));
        let length = usize::try_from(length).map_err(|_| corruption("length overflows"))?;
        self.take(length, what)
    }

    fn key(&mut self) -> Result<Key> {
        let bytes = self.prefixed("key")?;
        Key::new(bytes).map_err(|error| corruption(&error.to_string()))
    }

    fn value(&mut self) -> Result<Value> {
        let bytes = self.prefixed("value")?;
        Value::new(bytes).map_err(|error| corruption(&error.to_string()))
    }
}
