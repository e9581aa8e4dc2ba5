//! Leases with fencing tokens, as replicated state.
//!
//! A lease lets one client at a time act as "the" holder of something (a lock, a
//! leadership of some job). Time makes leases treacherous (DDIA ch. 8, "The leader and
//! the lock"): a holder paused for longer than its lease believes it still holds it and
//! writes anyway. The cure is a **fencing token**: every grant carries a number larger
//! than every earlier grant of the same lease, the holder sends it with its writes, and
//! the storage refuses a write whose token is not the latest. The paused holder's writes
//! then fail instead of corrupting what the new holder does.
//!
//! Here the lease table lives in the state machine, beside the data, so the grant, the
//! token and the check of fenced writes are all decided in log order, identically on
//! every replica:
//!
//! - **acquire** (`holder`, `ttl_ms`): granted if the lease is free (never granted,
//!   released or expired), with token = the log index of the grant (larger than any
//!   earlier token: the log only grows); by its current holder, it counts as a renewal
//!   and keeps its token; otherwise refused, with the current holder and token;
//! - **renew** and **release**: only by the holder with the current token;
//! - **expire** (`token`, `renewed_at`): ends the grant `token` only if it was last
//!   granted or renewed at log index `renewed_at`, so an expiry decided before a renewal
//!   but ordered after it in the log does nothing;
//! - a **fenced write** (put or delete with lease and token) applies only if its token
//!   is the lease's latest; the latest token survives release and expiry, so an old
//!   holder stays fenced off after its lease ended.
//!
//! Time is not part of the state machine (it must be deterministic): a record keeps its
//! time to live, and the *leader* turns it into an expiry command when the time ran out
//! on its own clock (see the replication crate's `leases.rs`). The store is bounded to
//! [`LEASES_MAX`] leases; a released or expired lease keeps its record (its latest token
//! must keep fencing), so a new name beyond the bound is refused.
//!
//! A lease record is `holder (8) | token (8) | renewed at (8) | ttl ms (8) | active (1)`,
//! big-endian, under the lease's name in table `leases`.

use super::encoding::{corruption, decode_key, storage_error};
use super::write::{StoreWrite, WriteOutcome};
use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition};
use replikv_core::error::{Error, Result};
use replikv_core::{ClientId, Key, LogIndex};
use serde::{Deserialize, Serialize};

/// Lease name to lease record.
pub(super) const LEASES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("leases");
/// Where a snapshot install stages the leases before they replace `LEASES`.
pub(super) const STAGING_LEASES: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("staging_leases");

/// Most leases a store keeps (they travel in the last snapshot chunk).
pub const LEASES_MAX: usize = 1024;

const RECORD_SIZE_BYTES: usize = 33;

/// One lease as the state machine knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub name: Key,
    /// The holder of the latest grant (meaningful while `active`).
    pub holder: ClientId,
    /// The latest fencing token granted.
    pub token: u64,
    /// The log index of the latest grant or renewal.
    pub renewed_at: LogIndex,
    /// Time to live of the latest grant or renewal, on the leader's clock.
    pub ttl_ms: u64,
    /// Whether the latest grant is still held (not released or expired).
    pub active: bool,
}

impl LeaseRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(RECORD_SIZE_BYTES);
        bytes.extend_from_slice(&self.holder.0.to_be_bytes());
        bytes.extend_from_slice(&self.token.to_be_bytes());
        bytes.extend_from_slice(&self.renewed_at.0.to_be_bytes());
        bytes.extend_from_slice(&self.ttl_ms.to_be_bytes());
        bytes.push(u8::from(self.active));
        bytes
    }

    pub(super) fn decode(name: &[u8], bytes: &[u8]) -> Result<LeaseRecord> {
        let name = decode_key(name)?;
        let bytes: &[u8; RECORD_SIZE_BYTES] = bytes
            .try_into()
            .map_err(|_| corruption(format!("lease record of {} bytes", bytes.len())))?;
        let number = |at: usize| {
            u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes in a record"))
        };
        let active = match bytes[32] {
            0 => false,
            1 => true,
            other => return Err(corruption(format!("lease {name} active flag {other}"))),
        };
        if number(8) == 0 {
            return Err(corruption(format!("lease {name} with token 0")));
        }
        Ok(LeaseRecord {
            holder: ClientId(number(0)),
            token: number(8),
            renewed_at: LogIndex(number(16)),
            ttl_ms: number(24),
            active,
            name,
        })
    }

    /// The outcome that reports this record.
    fn outcome(&self, granted: bool) -> WriteOutcome {
        WriteOutcome::Lease {
            granted,
            holder: self.active.then_some(self.holder),
            token: self.token,
        }
    }
}

/// The record of lease `name`, if it was ever granted.
pub(super) fn read_lease(
    leases: &impl ReadableTable<&'static [u8], &'static [u8]>,
    name: &Key,
) -> Result<Option<LeaseRecord>> {
    leases
        .get(name.as_bytes())
        .map_err(storage_error)?
        .map(|guard| LeaseRecord::decode(name.as_bytes(), guard.value()))
        .transpose()
}

/// The refusal of a fenced write whose token is not the lease's latest, if it is not.
pub(super) fn fence(
    leases: &impl ReadableTable<&'static [u8], &'static [u8]>,
    write: &StoreWrite,
) -> Result<Option<WriteOutcome>> {
    let (StoreWrite::PutFenced { lease, token, .. }
    | StoreWrite::DeleteFenced { lease, token, .. }) = write
    else {
        return Ok(None);
    };
    let latest_token = read_lease(leases, lease)?.map_or(0, |record| record.token);
    Ok((*token != latest_token || latest_token == 0)
        .then_some(WriteOutcome::Fenced { latest_token }))
}

/// Applies a lease write at log index `index`.
pub(super) fn apply(
    leases: &mut Table<&'static [u8], &'static [u8]>,
    index: LogIndex,
    write: &StoreWrite,
) -> Result<WriteOutcome> {
    let current = read_lease(leases, write.key())?;
    let count = usize::try_from(leases.len().map_err(storage_error)?).unwrap_or(usize::MAX);
    let (record, outcome) = decide(write, current, index, count);
    if let Some(record) = record {
        leases
            .insert(record.name.as_bytes(), record.encode().as_slice())
            .map_err(storage_error)?;
    }
    Ok(outcome)
}

/// The lease rules, as a pure function: the record to store, if it changes, and the
/// outcome. `count` is the number of leases the store knows.
fn decide(
    write: &StoreWrite,
    current: Option<LeaseRecord>,
    index: LogIndex,
    count: usize,
) -> (Option<LeaseRecord>, WriteOutcome) {
    let held = current.as_ref().filter(|record| record.active);
    match write {
        StoreWrite::AcquireLease {
            name,
            holder,
            ttl_ms,
        } => match (held, current.as_ref()) {
            (Some(record), _) if record.holder == *holder => renewed(record, index, *ttl_ms),
            (Some(record), _) => (None, record.outcome(false)),
            (None, None) if count >= LEASES_MAX => (None, WriteOutcome::TooManyLeases),
            (None, previous) => {
                let previous_token = previous.map_or(0, |record| record.token);
                let record = LeaseRecord {
                    name: name.clone(),
                    holder: *holder,
                    token: index.0.max(previous_token + 1),
                    renewed_at: index,
                    ttl_ms: *ttl_ms,
                    active: true,
                };
                let outcome = record.outcome(true);
                (Some(record), outcome)
            }
        },
        StoreWrite::RenewLease { holder, token, .. } => match held {
            Some(record) if record.holder == *holder && record.token == *token => {
                renewed(record, index, record.ttl_ms)
            }
            _ => refused(current.as_ref()),
        },
        StoreWrite::ReleaseLease { holder, token, .. } => match held {
            Some(record) if record.holder == *holder && record.token == *token => ended(record),
            _ => refused(current.as_ref()),
        },
        StoreWrite::ExpireLease {
            token, renewed_at, ..
        } => match held {
            Some(record) if record.token == *token && record.renewed_at == *renewed_at => {
                ended(record)
            }
            _ => refused(current.as_ref()),
        },
        _ => unreachable!("only lease writes are decided here"),
    }
}

fn renewed(
    record: &LeaseRecord,
    index: LogIndex,
    ttl_ms: u64,
) -> (Option<LeaseRecord>, WriteOutcome) {
    let record = LeaseRecord {
        renewed_at: index,
        ttl_ms,
        ..record.clone()
    };
    let outcome = record.outcome(true);
    (Some(record), outcome)
}

fn ended(record: &LeaseRecord) -> (Option<LeaseRecord>, WriteOutcome) {
    let record = LeaseRecord {
        active: false,
        ..record.clone()
    };
    let outcome = record.outcome(true);
    (Some(record), outcome)
}

fn refused(current: Option<&LeaseRecord>) -> (Option<LeaseRecord>, WriteOutcome) {
    let outcome = current.map_or(
        WriteOutcome::Lease {
            granted: false,
            holder: None,
            token: 0,
        },
        |record| record.outcome(false),
    );
    (None, outcome)
}

/// Every lease of a leases table, in name order.
pub(super) fn all_leases(
    leases: &impl ReadableTable<&'static [u8], &'static [u8]>,
) -> Result<Vec<LeaseRecord>> {
    let mut all = Vec::new();
    for item in leases.iter().map_err(storage_error)? {
        let (name, record) = item.map_err(storage_error)?;
        all.push(LeaseRecord::decode(name.value(), record.value())?);
        if all.len() > LEASES_MAX {
            return Err(corruption(format!("more than {LEASES_MAX} leases")));
        }
    }
    Ok(all)
}

/// Checks leases received in a snapshot chunk: at most [`LEASES_MAX`], names strictly
/// increasing, tokens non-zero, nothing granted after the snapshot's `last_index`.
pub(super) fn check_leases(leases: &[LeaseRecord], last_index: LogIndex) -> Result<()> {
    let invalid = |detail: String| Err(Error::InvalidInput(format!("snapshot leases: {detail}")));
    if leases.len() > LEASES_MAX {
        return invalid(format!("{} leases", leases.len()));
    }
    for pair in leases.windows(2) {
        if pair[0].name >= pair[1].name {
            return invalid(format!("lease {} out of order", pair[1].name));
        }
    }
    for lease in leases {
        if lease.token == 0 || lease.renewed_at > last_index {
            return invalid(format!("lease {} token {}", lease.name, lease.token));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> Key {
        Key::new("lock").unwrap()
    }

    fn acquire(holder: u64, ttl_ms: u64) -> StoreWrite {
        StoreWrite::AcquireLease {
            name: name(),
            holder: ClientId(holder),
            ttl_ms,
        }
    }

    fn lease(granted: bool, holder: Option<u64>, token: u64) -> WriteOutcome {
        WriteOutcome::Lease {
            granted,
            holder: holder.map(ClientId),
            token,
        }
    }

    /// Applies `writes` in order from no record, at indexes 1, 2, ...; returns outcomes.
    fn run(writes: &[StoreWrite]) -> Vec<WriteOutcome> {
        let mut current = None;
        let mut outcomes = Vec::new();
        for (offset, write) in writes.iter().enumerate() {
            let index = LogIndex(offset as u64 + 1);
            let (record, outcome) = decide(write, current.clone(), index, 0);
            if record.is_some() {
                current = record;
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    #[test]
    fn the_lease_rules_as_a_table() {
        let renew = |holder: u64, token: u64| StoreWrite::RenewLease {
            name: name(),
            holder: ClientId(holder),
            token,
        };
        let release = |holder: u64, token: u64| StoreWrite::ReleaseLease {
            name: name(),
            holder: ClientId(holder),
            token,
        };
        let expire = |token: u64, renewed_at: u64| StoreWrite::ExpireLease {
            name: name(),
            token,
            renewed_at: LogIndex(renewed_at),
        };
        let outcomes = run(&[
            acquire(1, 100), // 1: granted, token 1
            acquire(2, 100), // 2: held by 1
            renew(2, 1),     // 3: not the holder
            renew(1, 9),     // 4: wrong token
            renew(1, 1),     // 5: renewed at 5
            expire(1, 1),    // 6: decided before the renewal: nothing
            acquire(1, 50),  // 7: the holder again: a renewal at 7, same token
            expire(1, 7),    // 8: expires
            release(1, 1),   // 9: no longer held
            acquire(2, 100), // 10: granted, token 10
            release(2, 10),  // 11: released
            acquire(1, 100), // 12: granted, token 12
        ]);
        assert_eq!(
            outcomes,
            [
                lease(true, Some(1), 1),
                lease(false, Some(1), 1),
                lease(false, Some(1), 1),
                lease(false, Some(1), 1),
                lease(true, Some(1), 1),
                lease(false, Some(1), 1),
                lease(true, Some(1), 1),
                lease(true, None, 1),
                lease(false, None, 1),
                lease(true, Some(2), 10),
                lease(true, None, 10),
                lease(true, Some(1), 12),
            ]
        );
    }

    #[test]
    fn a_new_lease_beyond_the_bound_is_refused() {
        let (record, outcome) = decide(&acquire(1, 10), None, LogIndex(3), LEASES_MAX);
        assert_eq!((record, outcome), (None, WriteOutcome::TooManyLeases));
    }

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        let record = LeaseRecord {
            name: name(),
            holder: ClientId(4),
            token: 17,
            renewed_at: LogIndex(20),
            ttl_ms: 1500,
            active: true,
        };
        let bytes = record.encode();
        assert_eq!(bytes.len(), RECORD_SIZE_BYTES);
        assert_eq!(LeaseRecord::decode(b"lock", &bytes).unwrap(), record);
        for length in 0..bytes.len() {
            assert!(LeaseRecord::decode(b"lock", &bytes[..length]).is_err());
        }
        let mut bad = bytes.clone();
        bad[32] = 2;
        assert!(matches!(
            LeaseRecord::decode(b"lock", &bad),
            Err(Error::Corruption(_))
        ));
        let mut zero = bytes;
        zero[8..16].copy_from_slice(&[0; 8]);
        assert!(matches!(
            LeaseRecord::decode(b"lock", &zero),
            Err(Error::Corruption(_))
        ));
        assert!(LeaseRecord::decode(b"", &record.encode()).is_err());
    }
}
