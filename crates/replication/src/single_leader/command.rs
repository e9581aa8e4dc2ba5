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
//! payload  = format: u8 (3) | tag: u8 | fields
//! Noop     tag 0: nothing
//! Put      tag 1: header | key | value
//! Delete   tag 2: header | key
//! CasValue tag 3: header | key | expected: (0 | 1 value) | new: value
//! CasVer   tag 4: header | key | expected version: u64 LE | new: value
//! PutFenced    tag 5: header | key | value | lease: key | token: u64 LE
//! DeleteFenced tag 6: header | key | lease: key | token: u64 LE
//! Acquire  tag 7: header | name: key | holder: u64 LE | ttl ms: u64 LE
//! Renew    tag 8: header | name: key | holder: u64 LE | token: u64 LE
//! Release  tag 9: header | name: key | holder: u64 LE | token: u64 LE
//! Expire   tag 10: header | name: key | token: u64 LE | renewed at: u64 LE
//! Config   tag 11: config header | voters: u32 LE count | u64 LE ids | learners: same
//! PutExp   tag 12: header | key | value | expected: (0 | 1 version u64 LE) | expiry
//! Expire   tag 13: header | key | expiry | condition: u8 (0 always, 1 NX, 2 XX, 3 GT, 4 LT)
//! Swept    tag 14: header | key | expires at: u64 LE
//! header   = config header | stamp, Unix ms: u64 LE
//! config header = origin node: u64 LE | client: u64 LE | sequence: u64 LE
//! expiry   = 0 clear | 1 keep | 2 after ms: u64 LE | 3 at Unix ms: u64 LE
//! key, value = length: u32 LE | bytes
//! ```
//!
//! **Stamps** (format 3). Every write carries the wall-clock time of the leader that
//! proposed it, in Unix milliseconds: the state machine decides the write at that time
//! (a relative expiry counts from it, a key expired by then is absent), so every replica
//! decides the same (see `replikv_core::expiry`). Format 2 is format 3 without the stamp
//! (and without tags 12 to 14): its payloads, still in the logs of upgraded nodes, decode
//! with stamp 0, which is exact, since nothing expired before stamps existed.
//!
//! Every client write carries a **header**: the node that proposed it (`origin`, the
//! leader of the entry's term) and the client's [`RequestId`]. The request id is what
//! makes retries idempotent: the state machine remembers, per client, the last request
//! it applied and its outcome, so a retry that reaches the log twice (say once through a
//! leader that lost its leadership before answering, once through its successor) is
//! applied once. The origin tells a node, when it applies an entry, whether the entry is
//! one it proposed itself, so that only the proposer answers the client. A lease expiry
//! is proposed by the leader itself, not by a client: its request id is
//! [`INTERNAL_REQUEST`] and it is never deduplicated (applying it twice is harmless).
//!
//! Format 1 (the same layout without the header) is refused, not guessed at: a write
//! without its request id cannot be deduplicated, and no store of format 1 outlives the
//! development builds that wrote it.
//!
//! A **configuration** entry (tag 11, see `membership.rs`) carries the whole
//! configuration it installs, not the change: a node that reads it needs nothing else to
//! know who votes from that index on. It is never deduplicated by request id (applying it
//! twice installs the same configuration twice); a retried change is recognised by the
//! leader instead, as a change already in effect. Adding the tag changed no existing
//! payload, so the format number stays 2.
//!
//! The format byte leaves room for a new encoding, the tag byte for new commands. A
//! payload comes from a peer's message or from disk, so decoding trusts nothing: every
//! length is checked against what remains and against the key and value limits, trailing
//! bytes are refused, and every failure is an [`Error::Corruption`], never a panic.
//! A follower checks every payload it receives with [`Command::validate`], which walks
//! the same layout without building the keys and values (no copies, no allocation); the
//! payload is decoded for real once, when it is applied.

use replikv_core::error::{Error, Result};
use replikv_core::limits::{KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use replikv_core::{
    ClientId, ExpireCondition, Expiry, Key, LogIndex, NodeId, RequestId, Value, Version,
};
use replikv_storage::store::{Membership, StoreWrite};

/// The encoding's format number, the payload's first byte.
pub const COMMAND_FORMAT: u8 = 3;

/// The previous format: no stamps, no expiry commands; still decoded (see above).
pub const COMMAND_FORMAT_UNSTAMPED: u8 = 2;

/// Bytes of a write's header: origin node, client, sequence, stamp.
pub const WRITE_HEADER_SIZE_BYTES: usize = 4 * 8;

/// Most bytes the encoding adds to the keys and values a command carries: the format and
/// tag bytes, the write header, three length prefixes, an option byte or a version, and
/// an expected version and an expiry (an option byte and eight bytes each).
pub const COMMAND_OVERHEAD_MAX_BYTES: usize = 2 + WRITE_HEADER_SIZE_BYTES + 3 * 4 + 8 + 18;

const TAG_NOOP: u8 = 0;
const TAG_PUT: u8 = 1;
const TAG_DELETE: u8 = 2;
const TAG_CAS_VALUE: u8 = 3;
const TAG_CAS_VERSION: u8 = 4;
const TAG_PUT_FENCED: u8 = 5;
const TAG_DELETE_FENCED: u8 = 6;
const TAG_ACQUIRE_LEASE: u8 = 7;
const TAG_RENEW_LEASE: u8 = 8;
const TAG_RELEASE_LEASE: u8 = 9;
const TAG_EXPIRE_LEASE: u8 = 10;
const TAG_MEMBERSHIP: u8 = 11;
const TAG_PUT_WITH_EXPIRY: u8 = 12;
const TAG_EXPIRE: u8 = 13;
const TAG_DELETE_EXPIRED: u8 = 14;

/// The request id of writes a leader proposes on its own (lease expiries): client 0.
pub const INTERNAL_REQUEST: RequestId = RequestId {
    client: ClientId(0),
    sequence: 0,
};

/// What one log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// The entry a new leader appends in its term, so that it can commit (Raft §5.4.2)
    /// and serve ReadIndex reads.
    Noop,
    /// A client write, with the leader that proposed it, the client's request id, and
    /// the leader's wall-clock time when it proposed it (the stamp the write is decided
    /// at).
    Write {
        origin: NodeId,
        request_id: RequestId,
        write: StoreWrite,
        stamp_unix_ms: u64,
    },
    /// A configuration change: from this entry's index on (as soon as it is in a log, not
    /// once committed), `membership` is the group's configuration. Proposed by the leader
    /// `origin` for the client request `request_id`.
    Membership {
        origin: NodeId,
        request_id: RequestId,
        membership: Membership,
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
                stamp_unix_ms,
            } => {
                bytes.push(write_tag(write));
                bytes.extend_from_slice(&origin.0.to_le_bytes());
                bytes.extend_from_slice(&request_id.client.0.to_le_bytes());
                bytes.extend_from_slice(&request_id.sequence.to_le_bytes());
                bytes.extend_from_slice(&stamp_unix_ms.to_le_bytes());
                encode_write(&mut bytes, write);
            }
            Command::Membership {
                origin,
                request_id,
                membership,
            } => {
                bytes.push(TAG_MEMBERSHIP);
                bytes.extend_from_slice(&origin.0.to_le_bytes());
                bytes.extend_from_slice(&request_id.client.0.to_le_bytes());
                bytes.extend_from_slice(&request_id.sequence.to_le_bytes());
                bytes.extend_from_slice(&membership.encode());
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
        if format != COMMAND_FORMAT && format != COMMAND_FORMAT_UNSTAMPED {
            return Err(corruption(&format!("unknown format {format}")));
        }
        let stamped = format == COMMAND_FORMAT;
        let command = match reader.byte("tag")? {
            TAG_NOOP => Command::Noop,
            tag @ (TAG_PUT..=TAG_EXPIRE_LEASE | TAG_PUT_WITH_EXPIRY..=TAG_DELETE_EXPIRED) => {
                if !stamped && tag >= TAG_PUT_WITH_EXPIRY {
                    return Err(corruption(&format!("tag {tag} in format {format}")));
                }
                let origin = NodeId(reader.u64("origin")?);
                let client = ClientId(reader.u64("client")?);
                let sequence = reader.u64("sequence")?;
                let stamp_unix_ms = if stamped { reader.u64("stamp")? } else { 0 };
                let write = decode_write(tag, &mut reader)?;
                let request_id = RequestId { client, sequence };
                Command::Write {
                    origin,
                    request_id,
                    write,
                    stamp_unix_ms,
                }
            }
            TAG_MEMBERSHIP => {
                let origin = NodeId(reader.u64("origin")?);
                let client = ClientId(reader.u64("client")?);
                let sequence = reader.u64("sequence")?;
                let membership = Membership::decode(reader.rest)
                    .map_err(|error| corruption(&format!("configuration: {error}")))?;
                reader.rest = &[];
                Command::Membership {
                    origin,
                    request_id: RequestId { client, sequence },
                    membership,
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

    /// Checks that `payload` decodes, without building the command: no key or value is
    /// copied. Accepts exactly the payloads [`Command::decode`] accepts (a property test
    /// holds the two to that), and is what a follower asks of every entry it receives;
    /// the entry is decoded for real once, when it is applied.
    pub fn validate(payload: &[u8]) -> Result<()> {
        let mut reader = Reader { rest: payload };
        let format = reader.byte("format")?;
        if format != COMMAND_FORMAT && format != COMMAND_FORMAT_UNSTAMPED {
            return Err(corruption(&format!("unknown format {format}")));
        }
        let stamped = format == COMMAND_FORMAT;
        match reader.byte("tag")? {
            TAG_NOOP => {}
            TAG_MEMBERSHIP => {
                reader.take(3 * 8, "header")?;
                Membership::decode(reader.rest)
                    .map_err(|error| corruption(&format!("configuration: {error}")))?;
                reader.rest = &[];
            }
            tag => {
                let fields = write_fields(tag)
                    .filter(|_| stamped || tag < TAG_PUT_WITH_EXPIRY)
                    .ok_or_else(|| corruption(&format!("tag {tag} in format {format}")))?;
                reader.take(if stamped { 4 * 8 } else { 3 * 8 }, "header")?;
                for field in fields {
                    reader.skip(*field)?;
                }
            }
        }
        if !reader.rest.is_empty() {
            let count = reader.rest.len();
            return Err(corruption(&format!("{count} trailing bytes")));
        }
        Ok(())
    }

    /// Bytes of keys and values the command carries.
    fn data_size_bytes(&self) -> usize {
        match self {
            Command::Noop => 0,
            Command::Write { write, .. } => write.size_bytes(),
            Command::Membership { membership, .. } => membership.encode().len(),
        }
    }

    /// Whether `payload` claims to be a configuration entry (its first two bytes only:
    /// cheap enough to ask of every appended entry).
    #[must_use]
    pub fn is_membership(payload: &[u8]) -> bool {
        matches!(
            payload,
            [
                COMMAND_FORMAT | COMMAND_FORMAT_UNSTAMPED,
                TAG_MEMBERSHIP,
                ..
            ]
        )
    }
}

/// One field of a write's encoding, as [`Command::validate`] walks it.
#[derive(Clone, Copy, Debug)]
enum Field {
    Key,
    Value,
    U64,
    /// `0`, or `1` and a value.
    OptionalValue,
    /// `0`, or `1` and a version.
    OptionalVersion,
    Expiry,
    Condition,
}

/// The fields of the write of kind `tag` after its header, in order (the layout
/// `encode_write` writes and `decode_write` reads); `None` for a tag that is no write.
fn write_fields(tag: u8) -> Option<&'static [Field]> {
    use Field::{Condition, Expiry, Key, OptionalValue, OptionalVersion, U64, Value};
    let fields: &'static [Field] = match tag {
        TAG_PUT => &[Key, Value],
        TAG_DELETE => &[Key],
        TAG_CAS_VALUE => &[Key, OptionalValue, Value],
        TAG_CAS_VERSION => &[Key, U64, Value],
        TAG_PUT_FENCED => &[Key, Value, Key, U64],
        TAG_DELETE_FENCED => &[Key, Key, U64],
        TAG_ACQUIRE_LEASE | TAG_RENEW_LEASE | TAG_RELEASE_LEASE | TAG_EXPIRE_LEASE => {
            &[Key, U64, U64]
        }
        TAG_PUT_WITH_EXPIRY => &[Key, Value, OptionalVersion, Expiry],
        TAG_EXPIRE => &[Key, Expiry, Condition],
        TAG_DELETE_EXPIRED => &[Key, U64],
        _ => return None,
    };
    Some(fields)
}

/// The tag of a write's command kind.
fn write_tag(write: &StoreWrite) -> u8 {
    match write {
        StoreWrite::Put { .. } => TAG_PUT,
        StoreWrite::Delete { .. } => TAG_DELETE,
        StoreWrite::CompareAndSetValue { .. } => TAG_CAS_VALUE,
        StoreWrite::CompareAndSetVersion { .. } => TAG_CAS_VERSION,
        StoreWrite::PutFenced { .. } => TAG_PUT_FENCED,
        StoreWrite::DeleteFenced { .. } => TAG_DELETE_FENCED,
        StoreWrite::AcquireLease { .. } => TAG_ACQUIRE_LEASE,
        StoreWrite::RenewLease { .. } => TAG_RENEW_LEASE,
        StoreWrite::ReleaseLease { .. } => TAG_RELEASE_LEASE,
        StoreWrite::ExpireLease { .. } => TAG_EXPIRE_LEASE,
        StoreWrite::PutWithExpiry { .. } => TAG_PUT_WITH_EXPIRY,
        StoreWrite::Expire { .. } => TAG_EXPIRE,
        StoreWrite::DeleteExpired { .. } => TAG_DELETE_EXPIRED,
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
        StoreWrite::PutFenced {
            key,
            value,
            lease,
            token,
        } => {
            put_prefixed(bytes, key.as_bytes());
            put_prefixed(bytes, value.as_bytes());
            put_prefixed(bytes, lease.as_bytes());
            bytes.extend_from_slice(&token.to_le_bytes());
        }
        StoreWrite::DeleteFenced { key, lease, token } => {
            put_prefixed(bytes, key.as_bytes());
            put_prefixed(bytes, lease.as_bytes());
            bytes.extend_from_slice(&token.to_le_bytes());
        }
        StoreWrite::AcquireLease {
            name,
            holder,
            ttl_ms: second,
        }
        | StoreWrite::RenewLease {
            name,
            holder,
            token: second,
        }
        | StoreWrite::ReleaseLease {
            name,
            holder,
            token: second,
        } => {
            put_prefixed(bytes, name.as_bytes());
            bytes.extend_from_slice(&holder.0.to_le_bytes());
            bytes.extend_from_slice(&second.to_le_bytes());
        }
        StoreWrite::ExpireLease {
            name,
            token,
            renewed_at,
        } => {
            put_prefixed(bytes, name.as_bytes());
            bytes.extend_from_slice(&token.to_le_bytes());
            bytes.extend_from_slice(&renewed_at.0.to_le_bytes());
        }
        StoreWrite::PutWithExpiry {
            key,
            value,
            expected_version,
            expiry,
        } => {
            put_prefixed(bytes, key.as_bytes());
            put_prefixed(bytes, value.as_bytes());
            match expected_version {
                None => bytes.push(0),
                Some(version) => {
                    bytes.push(1);
                    bytes.extend_from_slice(&version.0.to_le_bytes());
                }
            }
            encode_expiry(bytes, *expiry);
        }
        StoreWrite::Expire {
            key,
            expiry,
            condition,
        } => {
            put_prefixed(bytes, key.as_bytes());
            encode_expiry(bytes, *expiry);
            bytes.push(condition_byte(*condition));
        }
        StoreWrite::DeleteExpired {
            key,
            expires_at_unix_ms,
        } => {
            put_prefixed(bytes, key.as_bytes());
            bytes.extend_from_slice(&expires_at_unix_ms.to_le_bytes());
        }
    }
}

fn encode_expiry(bytes: &mut Vec<u8>, expiry: Expiry) {
    match expiry {
        Expiry::Clear => bytes.push(0),
        Expiry::Keep => bytes.push(1),
        Expiry::AfterMs(after) => {
            bytes.push(2);
            bytes.extend_from_slice(&after.to_le_bytes());
        }
        Expiry::AtUnixMs(at) => {
            bytes.push(3);
            bytes.extend_from_slice(&at.to_le_bytes());
        }
    }
}

const CONDITIONS: [ExpireCondition; 5] = [
    ExpireCondition::Always,
    ExpireCondition::IfNone,
    ExpireCondition::IfSome,
    ExpireCondition::IfLater,
    ExpireCondition::IfEarlier,
];

fn condition_byte(condition: ExpireCondition) -> u8 {
    let position = CONDITIONS.iter().position(|known| *known == condition);
    u8::try_from(position.expect("every condition is listed")).expect("five conditions")
}

/// The fields of the expiry writes, after their header.
fn decode_expiry_write(tag: u8, reader: &mut Reader<'_>) -> Result<StoreWrite> {
    let write = match tag {
        TAG_PUT_WITH_EXPIRY => StoreWrite::PutWithExpiry {
            key: reader.key()?,
            value: reader.value()?,
            expected_version: match reader.byte("expected")? {
                0 => None,
                1 => Some(Version(reader.u64("expected version")?)),
                other => return Err(corruption(&format!("option byte {other}"))),
            },
            expiry: reader.expiry()?,
        },
        TAG_EXPIRE => StoreWrite::Expire {
            key: reader.key()?,
            expiry: reader.expiry()?,
            condition: {
                let byte = reader.byte("condition")?;
                *CONDITIONS
                    .get(usize::from(byte))
                    .ok_or_else(|| corruption(&format!("condition byte {byte}")))?
            },
        },
        TAG_DELETE_EXPIRED => StoreWrite::DeleteExpired {
            key: reader.key()?,
            expires_at_unix_ms: reader.u64("expires at")?,
        },
        other => return Err(corruption(&format!("unknown write tag {other}"))),
    };
    Ok(write)
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
        TAG_PUT_WITH_EXPIRY..=TAG_DELETE_EXPIRED => return decode_expiry_write(tag, reader),
        other => return decode_lease_write(other, reader),
    };
    Ok(write)
}

/// The fields of the fenced and lease writes, after their header.
fn decode_lease_write(tag: u8, reader: &mut Reader<'_>) -> Result<StoreWrite> {
    let write = match tag {
        TAG_PUT_FENCED => StoreWrite::PutFenced {
            key: reader.key()?,
            value: reader.value()?,
            lease: reader.key()?,
            token: reader.u64("token")?,
        },
        TAG_DELETE_FENCED => StoreWrite::DeleteFenced {
            key: reader.key()?,
            lease: reader.key()?,
            token: reader.u64("token")?,
        },
        TAG_ACQUIRE_LEASE => StoreWrite::AcquireLease {
            name: reader.key()?,
            holder: ClientId(reader.u64("holder")?),
            ttl_ms: reader.u64("ttl")?,
        },
        TAG_RENEW_LEASE => StoreWrite::RenewLease {
            name: reader.key()?,
            holder: ClientId(reader.u64("holder")?),
            token: reader.u64("token")?,
        },
        TAG_RELEASE_LEASE => StoreWrite::ReleaseLease {
            name: reader.key()?,
            holder: ClientId(reader.u64("holder")?),
            token: reader.u64("token")?,
        },
        TAG_EXPIRE_LEASE => StoreWrite::ExpireLease {
            name: reader.key()?,
            token: reader.u64("token")?,
            renewed_at: LogIndex(reader.u64("renewed at")?),
        },
        other => return Err(corruption(&format!("unknown write tag {other}"))),
    };
    Ok(write)
}

/// A short name of the command kind a payload claims to be, read from its first two
/// bytes without decoding the rest: for traces.
#[must_use]
pub fn kind_name(payload: &[u8]) -> &'static str {
    match payload {
        [COMMAND_FORMAT | COMMAND_FORMAT_UNSTAMPED, tag, ..] => match *tag {
            TAG_NOOP => "noop",
            TAG_PUT => "put",
            TAG_DELETE => "delete",
            TAG_CAS_VALUE => "cas",
            TAG_CAS_VERSION => "casv",
            TAG_PUT_FENCED => "put-fenced",
            TAG_DELETE_FENCED => "delete-fenced",
            TAG_ACQUIRE_LEASE => "acquire",
            TAG_RENEW_LEASE => "renew",
            TAG_RELEASE_LEASE => "release",
            TAG_EXPIRE_LEASE => "expire",
            TAG_MEMBERSHIP => "config",
            TAG_PUT_WITH_EXPIRY => "put-expiring",
            TAG_EXPIRE => "set-expiry",
            TAG_DELETE_EXPIRED => "delete-expired",
            _ => "unknown",
        },
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
    #[inline]
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

    #[inline]
    fn byte(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    #[inline]
    fn u64(&mut self, what: &str) -> Result<u64> {
        let bytes = self.take(8, what)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    #[inline]
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

    fn expiry(&mut self) -> Result<Expiry> {
        let expiry = match self.byte("expiry")? {
            0 => Expiry::Clear,
            1 => Expiry::Keep,
            2 => Expiry::AfterMs(self.u64("expiry after")?),
            3 => Expiry::AtUnixMs(self.u64("expiry at")?),
            other => return Err(corruption(&format!("expiry byte {other}"))),
        };
        Ok(expiry)
    }

    fn value(&mut self) -> Result<Value> {
        let bytes = self.prefixed("value")?;
        Value::new(bytes).map_err(|error| corruption(&error.to_string()))
    }

    /// Reads past one field, checking it as decoding would, without building it.
    fn skip(&mut self, field: Field) -> Result<()> {
        match field {
            Field::Key => {
                let length = self.prefixed("key")?.len();
                if length == 0 || length > KEY_SIZE_MAX_BYTES {
                    return Err(corruption(&format!("key of {length} bytes")));
                }
            }
            Field::Value => {
                let length = self.prefixed("value")?.len();
                if length > VALUE_SIZE_MAX_BYTES {
                    return Err(corruption(&format!("value of {length} bytes")));
                }
            }
            Field::U64 => {
                self.take(8, "integer")?;
            }
            Field::OptionalValue | Field::OptionalVersion => match self.byte("option")? {
                0 => {}
                1 if matches!(field, Field::OptionalValue) => self.skip(Field::Value)?,
                1 => self.skip(Field::U64)?,
                other => return Err(corruption(&format!("option byte {other}"))),
            },
            Field::Expiry => {
                self.expiry()?;
            }
            Field::Condition => {
                let byte = self.byte("condition")?;
                if usize::from(byte) >= CONDITIONS.len() {
                    return Err(corruption(&format!("condition byte {byte}")));
                }
            }
        }
        Ok(())
    }
}
