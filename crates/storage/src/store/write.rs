//! The writes a replication strategy applies to the store, and what each one decides.
//!
//! A strategy turns committed log entries into [`StoreWrite`]s and hands them to
//! [`Store::apply`](super::Store::apply) in batches. Each write's outcome, a
//! [`WriteOutcome`], is exactly the data of the client's [`Reply`], so a strategy answers
//! a client straight from the store: the new version of a put or delete, or whether a
//! compare-and-set swapped and the key's version after it.
//!
//! The rules live in one pure function, `decide`, so that they can be tested as a table
//! without any storage at all:
//!
//! - every put and every delete is a write and increments the key's version, whether or
//!   not the key was present (a delete of an absent key leaves a tombstone one version
//!   higher: the version counts writes, the seeds' per-key version algorithm);
//! - a delete keeps a tombstone, so a re-created key continues from the tombstone's
//!   version and a compare-and-set on a version can never be fooled by a delete and a
//!   re-create (the ABA problem);
//! - compare-and-set on value compares with what a read would return (a tombstone reads as
//!   absent); compare-and-set on version compares with the key's version (0 if never
//!   written, the tombstone's version if deleted); a failed compare-and-set changes
//!   nothing and reports the current version.
//!
//! ## Expiry
//!
//! A value may carry an expiry time (see `replikv_core::expiry`). Every write is decided
//! at the **stamp** of its log entry, the leader's wall-clock time when it proposed it: a
//! value whose expiry time is at or before the stamp counts as a tombstone one version
//! later — exactly the tombstone that the leader's sweep (`DeleteExpired`) stores when
//! it removes the key for good — so a key behaves the same whether or not its expired
//! value was swept yet, and every replica, applying the same stamps, decides the same.
//! A plain put clears the key's expiry (Redis's `SET`); a compare-and-set keeps it, as
//! `INCR` and `APPEND` do in Redis; `PutWithExpiry` says what it does. `Expire` changes
//! the expiry time of a present value without a new version (a value is unchanged by
//! it), unless the new time is already past: then the key is deleted.

use super::encoding::StoredEntry;
use replikv_core::expiry::is_expired;
use replikv_core::{
    ClientId, Error, ExpireCondition, Expiry, Key, LogIndex, LogPosition, Reply, Value, Version,
};
use serde::{Deserialize, Serialize};

/// One write of a batch given to [`Store::apply`](super::Store::apply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoreWrite {
    /// Set the key's value.
    Put { key: Key, value: Value },
    /// Remove the key's value, keeping a tombstone with the next version.
    Delete { key: Key },
    /// Set `new` only if the key's current value is `expected` (`None`: absent).
    CompareAndSetValue {
        key: Key,
        expected: Option<Value>,
        new: Value,
    },
    /// Set `new` only if the key's current version is `expected` (0: never written).
    CompareAndSetVersion {
        key: Key,
        expected: Version,
        new: Value,
    },
    /// [`StoreWrite::Put`] if `token` is lease `lease`'s latest fencing token.
    PutFenced {
        key: Key,
        value: Value,
        lease: Key,
        token: u64,
    },
    /// [`StoreWrite::Delete`] if `token` is lease `lease`'s latest fencing token.
    DeleteFenced { key: Key, lease: Key, token: u64 },
    /// Grant lease `name` to `holder` unless someone else holds it (see [`super::lease`]).
    AcquireLease {
        name: Key,
        holder: ClientId,
        ttl_ms: u64,
    },
    /// Renew the lease, if `holder` holds it with `token`.
    RenewLease {
        name: Key,
        holder: ClientId,
        token: u64,
    },
    /// Release the lease, if `holder` holds it with `token`.
    ReleaseLease {
        name: Key,
        holder: ClientId,
        token: u64,
    },
    /// End the lease's grant `token` if it was last granted or renewed at `renewed_at`:
    /// proposed by a leader whose clock saw its time to live run out.
    ExpireLease {
        name: Key,
        token: u64,
        renewed_at: LogIndex,
    },
    /// Set the key's value and expiry (Redis's `SET` with its options), if its version is
    /// still `expected_version` when one is given.
    PutWithExpiry {
        key: Key,
        value: Value,
        expected_version: Option<Version>,
        expiry: Expiry,
    },
    /// Change a present key's expiry if `condition` allows it (`EXPIRE`, `PERSIST`).
    Expire {
        key: Key,
        expiry: Expiry,
        condition: ExpireCondition,
    },
    /// The sweep of expired keys, proposed by the leader: store the key's tombstone if its
    /// value still expires at `expires_at_unix_ms` and that time is at or before the
    /// entry's stamp (a key written again meanwhile survives).
    DeleteExpired { key: Key, expires_at_unix_ms: u64 },
}

impl StoreWrite {
    /// The key this write touches: a data key, or a lease's name for a lease write.
    #[must_use]
    pub fn key(&self) -> &Key {
        match self {
            StoreWrite::Put { key, .. }
            | StoreWrite::Delete { key }
            | StoreWrite::CompareAndSetValue { key, .. }
            | StoreWrite::CompareAndSetVersion { key, .. }
            | StoreWrite::PutFenced { key, .. }
            | StoreWrite::DeleteFenced { key, .. }
            | StoreWrite::PutWithExpiry { key, .. }
            | StoreWrite::Expire { key, .. }
            | StoreWrite::DeleteExpired { key, .. } => key,
            StoreWrite::AcquireLease { name, .. }
            | StoreWrite::RenewLease { name, .. }
            | StoreWrite::ReleaseLease { name, .. }
            | StoreWrite::ExpireLease { name, .. } => name,
        }
    }

    /// Whether this write is about a lease rather than a data key.
    #[must_use]
    pub fn is_lease(&self) -> bool {
        matches!(
            self,
            StoreWrite::AcquireLease { .. }
                | StoreWrite::RenewLease { .. }
                | StoreWrite::ReleaseLease { .. }
                | StoreWrite::ExpireLease { .. }
        )
    }

    /// Bytes this write adds to a batch (key, value, and a fixed allowance), used to bound
    /// batches.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        let value_bytes = match self {
            StoreWrite::Put { value, .. } | StoreWrite::PutWithExpiry { value, .. } => {
                value.as_bytes().len()
            }
            StoreWrite::Delete { .. }
            | StoreWrite::Expire { .. }
            | StoreWrite::DeleteExpired { .. } => 0,
            StoreWrite::CompareAndSetValue { expected, new, .. } => {
                new.as_bytes().len() + expected.as_ref().map_or(0, |value| value.as_bytes().len())
            }
            StoreWrite::CompareAndSetVersion { new, .. } => new.as_bytes().len(),
            StoreWrite::PutFenced { value, lease, .. } => {
                value.as_bytes().len() + lease.as_bytes().len()
            }
            StoreWrite::DeleteFenced { lease, .. } => lease.as_bytes().len(),
            StoreWrite::AcquireLease { .. }
            | StoreWrite::RenewLease { .. }
            | StoreWrite::ReleaseLease { .. }
            | StoreWrite::ExpireLease { .. } => 0,
        };
        self.key().as_bytes().len() + value_bytes + 16
    }
}

/// What one [`StoreWrite`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// A put or delete took effect; the key's new version.
    Written { version: Version },
    /// A compare-and-set was decided: swapped or not, and the key's version after it.
    CompareAndSet { swapped: bool, version: Version },
    /// Not applied: the client's session has applied a later request
    /// (`latest_sequence`) since, see [`super::session`]. Whether an earlier attempt of
    /// this request applied is no longer known.
    Superseded { latest_sequence: u64 },
    /// A lease request was decided: granted (or renewed, released) or not, and the
    /// lease's holder and latest token after it.
    Lease {
        granted: bool,
        holder: Option<ClientId>,
        token: u64,
    },
    /// A fenced write refused: its token is not the lease's latest (`latest_token`, 0 if
    /// the lease was never granted).
    Fenced { latest_token: u64 },
    /// A lease not known yet could not be granted: the store keeps
    /// [`LEASES_MAX`](super::lease::LEASES_MAX) leases at most.
    TooManyLeases,
}

impl WriteOutcome {
    /// The key's version after the write; `None` if it was not applied.
    #[must_use]
    pub fn version(self) -> Option<Version> {
        match self {
            WriteOutcome::Written { version } | WriteOutcome::CompareAndSet { version, .. } => {
                Some(version)
            }
            WriteOutcome::Superseded { .. }
            | WriteOutcome::Lease { .. }
            | WriteOutcome::Fenced { .. }
            | WriteOutcome::TooManyLeases => None,
        }
    }

    /// The reply a client gets for this write, made by the log entry at `position`.
    #[must_use]
    pub fn into_reply(self, position: LogPosition) -> Reply {
        match self {
            WriteOutcome::Written { version } => Reply::Written { version, position },
            WriteOutcome::CompareAndSet { swapped, version } => Reply::CompareAndSet {
                swapped,
                version,
                position,
            },
            WriteOutcome::Superseded { latest_sequence } => {
                Reply::Failed(Error::Indeterminate(format!(
                    "request superseded: its client has applied request {latest_sequence} \
                     since, and whether this one applied earlier is no longer known"
                )))
            }
            WriteOutcome::Lease {
                granted,
                holder,
                token,
            } => Reply::Lease {
                granted,
                holder,
                token,
                position,
            },
            WriteOutcome::Fenced { latest_token } => Reply::Failed(Error::InvalidInput(format!(
                "stale fencing token: the lease's latest token is {latest_token}"
            ))),
            WriteOutcome::TooManyLeases => Reply::Failed(Error::Overloaded(format!(
                "the store keeps at most {} leases",
                super::lease::LEASES_MAX
            ))),
        }
    }
}

/// Decides one data write against the key's current entry (`None`: never written), at
/// the stamp of its log entry (see the module documentation). Takes the write by value,
/// so the key and the new value move into what it returns rather than being copied:
/// the key, the entry to store if the write changes anything, and the outcome. A fenced
/// write reaches here only once its token was accepted; lease writes never do.
pub(super) fn decide(
    write: StoreWrite,
    current: Option<&StoredEntry>,
    stamp_unix_ms: u64,
) -> (Key, Option<StoredEntry>, WriteOutcome) {
    if let StoreWrite::DeleteExpired {
        key,
        expires_at_unix_ms,
    } = write
    {
        let (entry, outcome) = delete_expired(current, expires_at_unix_ms, stamp_unix_ms);
        return (key, entry, outcome);
    }
    if let StoreWrite::Expire {
        key,
        expiry,
        condition,
    } = write
    {
        let current = current.map(|entry| entry.as_of(stamp_unix_ms));
        let (entry, outcome) = expire(current.as_ref(), expiry, condition, stamp_unix_ms);
        return (key, entry, outcome);
    }
    let (version, value, expires_at) = current.map_or((Version(0), None, None), |entry| {
        entry.view_as_of(stamp_unix_ms)
    });
    let next = Version(
        version
            .0
            .checked_add(1)
            .expect("key version overflow: 2^64 writes to one key"),
    );
    let written = |value: Option<Value>, expires_at_unix_ms: Option<u64>| {
        let expires_at_unix_ms = expires_at_unix_ms.filter(|_| value.is_some());
        let entry = StoredEntry {
            version: next,
            value,
            expires_at_unix_ms,
        };
        (Some(entry), next)
    };
    match write {
        StoreWrite::Put { key, value } | StoreWrite::PutFenced { key, value, .. } => {
            let (entry, version) = written(Some(value), None);
            (key, entry, WriteOutcome::Written { version })
        }
        StoreWrite::Delete { key } | StoreWrite::DeleteFenced { key, .. } => {
            let (entry, version) = written(None, None);
            (key, entry, WriteOutcome::Written { version })
        }
        StoreWrite::CompareAndSetValue { key, expected, new } => {
            let keep = |value| written(value, expires_at);
            let (entry, outcome) = compare_and_set(expected.as_ref() == value, new, version, keep);
            (key, entry, outcome)
        }
        StoreWrite::CompareAndSetVersion { key, expected, new } => {
            let keep = |value| written(value, expires_at);
            let (entry, outcome) = compare_and_set(expected == version, new, version, keep);
            (key, entry, outcome)
        }
        StoreWrite::PutWithExpiry {
            key,
            value: new,
            expected_version,
            expiry,
        } => {
            let resolved = expiry.resolve(stamp_unix_ms, expires_at);
            let with_expiry = |value| written(value, resolved);
            let (entry, outcome) = match expected_version {
                None => {
                    let (entry, version) = with_expiry(Some(new));
                    (entry, WriteOutcome::Written { version })
                }
                Some(expected) => compare_and_set(expected == version, new, version, with_expiry),
            };
            (key, entry, outcome)
        }
        StoreWrite::Expire { .. } | StoreWrite::DeleteExpired { .. } => {
            unreachable!("decided above")
        }
        StoreWrite::AcquireLease { .. }
        | StoreWrite::RenewLease { .. }
        | StoreWrite::ReleaseLease { .. }
        | StoreWrite::ExpireLease { .. } => {
            unreachable!("lease writes are decided by the lease module")
        }
    }
}

/// The sweep's delete: the tombstone, if the value still expires at `expires_at` and
/// that time has passed at the stamp; otherwise nothing (`swapped: false`).
fn delete_expired(
    current: Option<&StoredEntry>,
    expires_at: u64,
    stamp_unix_ms: u64,
) -> (Option<StoredEntry>, WriteOutcome) {
    let version = current.map_or(Version(0), |entry| entry.version);
    match current {
        Some(entry)
            if entry.value.is_some()
                && entry.expires_at_unix_ms == Some(expires_at)
                && is_expired(Some(expires_at), stamp_unix_ms) =>
        {
            let tombstone = entry.as_of(stamp_unix_ms);
            let outcome = WriteOutcome::CompareAndSet {
                swapped: true,
                version: tombstone.version,
            };
            (Some(tombstone), outcome)
        }
        _ => (
            None,
            WriteOutcome::CompareAndSet {
                swapped: false,
                version,
            },
        ),
    }
}

/// `EXPIRE` and `PERSIST` on the key's entry as of the stamp: a new expiry time for a
/// present value, same version; or, if the new time has already passed, the tombstone.
fn expire(
    current: Option<&StoredEntry>,
    expiry: Expiry,
    condition: ExpireCondition,
    stamp_unix_ms: u64,
) -> (Option<StoredEntry>, WriteOutcome) {
    let version = current.map_or(Version(0), |entry| entry.version);
    let unchanged = WriteOutcome::CompareAndSet {
        swapped: false,
        version,
    };
    let Some(entry) = current.filter(|entry| entry.value.is_some()) else {
        return (None, unchanged);
    };
    let resolved = expiry.resolve(stamp_unix_ms, entry.expires_at_unix_ms);
    if !condition.allows(entry.expires_at_unix_ms, resolved) {
        return (None, unchanged);
    }
    let mut next = entry.clone();
    next.expires_at_unix_ms = resolved;
    let next = next.as_of(stamp_unix_ms);
    let outcome = WriteOutcome::CompareAndSet {
        swapped: true,
        version: next.version,
    };
    (Some(next), outcome)
}

fn compare_and_set(
    matches: bool,
    new: Value,
    version: Version,
    written: impl FnOnce(Option<Value>) -> (Option<StoredEntry>, Version),
) -> (Option<StoredEntry>, WriteOutcome) {
    if matches {
        let (entry, version) = written(Some(new));
        let outcome = WriteOutcome::CompareAndSet {
            swapped: true,
            version,
        };
        (entry, outcome)
    } else {
        let outcome = WriteOutcome::CompareAndSet {
            swapped: false,
            version,
        };
        (None, outcome)
    }
}
