//! How the store's records are laid out as bytes inside redb, and how redb's errors become
//! replikv's.
//!
//! redb stores byte strings; the meaning of those bytes is ours. Every decoder here treats
//! its input as untrusted (a file may have been damaged after redb checked it, or written
//! by a different version): a short, long or malformed record is a
//! [`Error::Corruption`], never a panic. Integers are big-endian so that encoded
//! positions would also sort correctly as bytes.
//!
//! An entry of the data table is `version (8) | tag (1) | value bytes`, where tag 1 means a
//! live value and tag 0 a tombstone (a deleted key that keeps its version, so that the
//! version of a key increases across delete and re-create); tag 2 (format 4) is a live
//! value with an expiry time, `version (8) | 2 | expires at, Unix ms (8) | value bytes`.
//! Tags 0 and 1 mean what they meant in format 3, so a format 3 data table is a valid
//! format 4 one. A key of the expiry index is `expires at (8) | key bytes`, so that the
//! index iterates in expiry order. A log position is `term (8) | index (8)`.

use replikv_core::error::{Error, Result};
use replikv_core::limits::{KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use replikv_core::{Key, LogPosition, Value, Version};

const TAG_TOMBSTONE: u8 = 0;
const TAG_VALUE: u8 = 1;
const TAG_EXPIRING_VALUE: u8 = 2;

/// Encoded size of a [`LogPosition`].
pub(super) const POSITION_SIZE_BYTES: usize = 16;

/// Fixed bytes of an encoded entry besides its value.
pub(super) const ENTRY_HEADER_SIZE_BYTES: usize = 9;

/// What the store keeps for one key: its version and its value, or a tombstone, and the
/// value's expiry time (never set on a tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StoredEntry {
    pub version: Version,
    pub value: Option<Value>,
    pub expires_at_unix_ms: Option<u64>,
}

impl StoredEntry {
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.value.is_some() || self.expires_at_unix_ms.is_none());
        let value = self.value.as_ref().map_or(&[][..], Value::as_bytes);
        let mut bytes = Vec::with_capacity(ENTRY_HEADER_SIZE_BYTES + 8 + value.len());
        bytes.extend_from_slice(&self.version.0.to_be_bytes());
        match (&self.value, self.expires_at_unix_ms) {
            (None, _) => bytes.push(TAG_TOMBSTONE),
            (Some(_), None) => bytes.push(TAG_VALUE),
            (Some(_), Some(expires_at)) => {
                bytes.push(TAG_EXPIRING_VALUE);
                bytes.extend_from_slice(&expires_at.to_be_bytes());
            }
        }
        bytes.extend_from_slice(value);
        bytes
    }

    /// The entry as a read at `now_unix_ms` sees it: an expired value is a tombstone one
    /// version later — exactly what the sweep's delete will store — so a key reads the
    /// same whether or not its expired value was swept yet (see `write.rs`).
    pub fn as_of(&self, now_unix_ms: u64) -> StoredEntry {
        if !replikv_core::expiry::is_expired(self.expires_at_unix_ms, now_unix_ms) {
            return self.clone();
        }
        StoredEntry {
            version: Version(self.version.0.saturating_add(1)),
            value: None,
            expires_at_unix_ms: None,
        }
    }

    /// [`StoredEntry::as_of`] without copying the value: the version, the value (`None`
    /// for a tombstone) and the expiry time a read at `now_unix_ms` sees.
    pub fn view_as_of(&self, now_unix_ms: u64) -> (Version, Option<&Value>, Option<u64>) {
        if !replikv_core::expiry::is_expired(self.expires_at_unix_ms, now_unix_ms) {
            return (self.version, self.value.as_ref(), self.expires_at_unix_ms);
        }
        (Version(self.version.0.saturating_add(1)), None, None)
    }

    pub fn decode(bytes: &[u8]) -> Result<StoredEntry> {
        let Some((header, value)) = bytes.split_first_chunk::<ENTRY_HEADER_SIZE_BYTES>() else {
            return Err(corruption(format!("entry of {} bytes", bytes.len())));
        };
        let (version, tag) = header.split_at(8);
        let version = Version(u64::from_be_bytes(version.try_into().expect("8 bytes")));
        if version == Version(0) {
            return Err(corruption("entry with version 0".into()));
        }
        let mut expires_at_unix_ms = None;
        let value = match tag[0] {
            TAG_VALUE => Some(decode_value(value)?),
            TAG_EXPIRING_VALUE => {
                let Some((expires_at, value)) = value.split_first_chunk::<8>() else {
                    return Err(corruption("expiring entry without its time".into()));
                };
                expires_at_unix_ms = Some(u64::from_be_bytes(*expires_at));
                Some(decode_value(value)?)
            }
            TAG_TOMBSTONE if value.is_empty() => None,
            TAG_TOMBSTONE => return Err(corruption("tombstone with a value".into())),
            other => return Err(corruption(format!("entry tag {other}"))),
        };
        Ok(StoredEntry {
            version,
            value,
            expires_at_unix_ms,
        })
    }
}

/// The expiry index's key for `key` expiring at `expires_at_unix_ms`.
pub(super) fn expiry_index_key(expires_at_unix_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(8 + key.len());
    bytes.extend_from_slice(&expires_at_unix_ms.to_be_bytes());
    bytes.extend_from_slice(key);
    bytes
}

/// An expiry index key read back: the expiry time and the key.
pub(super) fn decode_expiry_index_key(bytes: &[u8]) -> Result<(u64, Key)> {
    let Some((expires_at, key)) = bytes.split_first_chunk::<8>() else {
        return Err(corruption(format!(
            "expiry index key of {} bytes",
            bytes.len()
        )));
    };
    Ok((u64::from_be_bytes(*expires_at), decode_key(key)?))
}

/// A key read back from the store.
pub(super) fn decode_key(bytes: &[u8]) -> Result<Key> {
    if bytes.is_empty() || bytes.len() > KEY_SIZE_MAX_BYTES {
        return Err(corruption(format!("stored key of {} bytes", bytes.len())));
    }
    Key::new(bytes).map_err(|error| corruption(error.to_string()))
}

fn decode_value(bytes: &[u8]) -> Result<Value> {
    if bytes.len() > VALUE_SIZE_MAX_BYTES {
        return Err(corruption(format!("stored value of {} bytes", bytes.len())));
    }
    Value::new(bytes).map_err(|error| corruption(error.to_string()))
}

pub(super) fn encode_position(position: LogPosition) -> [u8; POSITION_SIZE_BYTES] {
    let mut bytes = [0; POSITION_SIZE_BYTES];
    bytes[..8].copy_from_slice(&position.term.0.to_be_bytes());
    bytes[8..].copy_from_slice(&position.index.0.to_be_bytes());
    bytes
}

pub(super) fn decode_position(bytes: &[u8]) -> Result<LogPosition> {
    let bytes: &[u8; POSITION_SIZE_BYTES] = bytes
        .try_into()
        .map_err(|_| corruption(format!("log position of {} bytes", bytes.len())))?;
    let (term, index) = bytes.split_at(8);
    Ok(LogPosition::new(
        u64::from_be_bytes(term.try_into().expect("8 bytes")),
        u64::from_be_bytes(index.try_into().expect("8 bytes")),
    ))
}

pub(super) fn corruption(detail: String) -> Error {
    Error::Corruption(format!("state store: {detail}"))
}

/// Converts any redb error into replikv's: damaged data stays [`Error::Corruption`]
/// (never silently ignored), everything else is an I/O failure of the store.
pub(super) fn storage_error(error: impl Into<redb::Error>) -> Error {
    match error.into() {
        redb::Error::Corrupted(detail) => corruption(detail),
        redb::Error::Io(error) => Error::Io(format!("state store: {error}")),
        other => Error::Io(format!("state store: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        for entry in [
            StoredEntry {
                version: Version(1),
                value: Some(Value::new(b"v".to_vec()).unwrap()),
                expires_at_unix_ms: None,
            },
            StoredEntry {
                version: Version(u64::MAX),
                value: Some(Value::new(Vec::new()).unwrap()),
                expires_at_unix_ms: None,
            },
            StoredEntry {
                version: Version(7),
                value: None,
                expires_at_unix_ms: None,
            },
            StoredEntry {
                version: Version(3),
                value: Some(Value::new(b"ttl".to_vec()).unwrap()),
                expires_at_unix_ms: Some(1_700_000_000_000),
            },
        ] {
            assert_eq!(StoredEntry::decode(&entry.encode()).unwrap(), entry);
        }
    }

    #[test]
    fn malformed_entries_are_corruption_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"12345678",
            &[0, 0, 0, 0, 0, 0, 0, 1, 2],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0, b'x'],
            &[0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0],
        ];
        for bytes in cases {
            let result = StoredEntry::decode(bytes);
            assert!(
                matches!(result, Err(Error::Corruption(_))),
                "{bytes:?}: {result:?}"
            );
        }
        assert!(matches!(decode_key(b""), Err(Error::Corruption(_))));
        assert!(matches!(
            decode_position(&[0; 15]),
            Err(Error::Corruption(_))
        ));
    }

    #[test]
    fn expired_entries_read_as_the_tombstone_the_sweep_would_leave() {
        let entry = StoredEntry {
            version: Version(4),
            value: Some(Value::new(b"v".to_vec()).unwrap()),
            expires_at_unix_ms: Some(100),
        };
        assert_eq!(entry.as_of(99), entry);
        let expired = entry.as_of(100);
        assert_eq!((expired.version, expired.value), (Version(5), None));
        let (at, key) = decode_expiry_index_key(&expiry_index_key(100, b"k")).unwrap();
        assert_eq!((at, key.as_bytes()), (100, &b"k"[..]));
        assert!(decode_expiry_index_key(&[0; 8]).is_err());
    }

    #[test]
    fn positions_round_trip() {
        let position = LogPosition::new(3, u64::MAX - 1);
        assert_eq!(
            decode_position(&encode_position(position)).unwrap(),
            position
        );
    }
}
