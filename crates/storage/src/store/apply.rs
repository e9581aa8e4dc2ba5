//! Applying one batch of logged writes inside the open apply transaction: the limits a
//! batch is checked against, the per-write decision (deduplicated by request id through
//! the client sessions, fenced by leases), and the position record every commit carries.
//!
//! Data entries never reach redb here: they go to the write buffer (`buffer.rs`), which
//! the store flushes into the transaction before it commits. The tables a batch may need
//! (the data table for a key the buffer and its cache do not hold, the lease table for a
//! lease or fenced write) are opened on first use, because most batches need neither and
//! opening a table costs more than the writes of a small batch.

use super::buffer::WriteBuffer;
use super::encoding::{StoredEntry, encode_position, storage_error};
use super::lease::{self, LEASES};
use super::session::{self, SessionTable, Verdict};
use super::{
    APPLY_BATCH_SIZE_MAX_BYTES, APPLY_BATCH_WRITES_MAX, ClientSession, DATA, LoggedWrite, META,
    META_APPLIED, META_MEMBERSHIP, Membership, StoreWrite, WriteOutcome, read_entry, write,
};
use replikv_core::error::{Error, Result};
use replikv_core::{LogIndex, LogPosition};

/// Checks a batch against the limits and returns its size in bytes.
pub(super) fn check_batch<'a>(
    batch: impl Iterator<Item = &'a StoreWrite>,
    length: usize,
) -> Result<usize> {
    if length > APPLY_BATCH_WRITES_MAX {
        return Err(Error::InvalidInput(format!(
            "batch of {length} writes exceeds the limit of {APPLY_BATCH_WRITES_MAX}"
        )));
    }
    let size_bytes: usize = batch.map(StoreWrite::size_bytes).sum();
    if size_bytes > APPLY_BATCH_SIZE_MAX_BYTES {
        return Err(Error::InvalidInput(format!(
            "batch of {size_bytes} bytes exceeds the limit of {APPLY_BATCH_SIZE_MAX_BYTES}"
        )));
    }
    Ok(size_bytes)
}

/// Applies a batch of writes in `transaction`; one outcome per write, in order. The
/// sessions are read and recorded in `sessions` and the data entries written to
/// `buffer`, which the caller flushes into the transaction before it commits, with the
/// applied position ([`record_position`]).
pub(super) fn apply_in(
    transaction: &redb::WriteTransaction,
    batch: Vec<LoggedWrite>,
    (sessions, buffer): (&mut SessionTable, &mut WriteBuffer),
    sessions_max: usize,
) -> Result<Vec<WriteOutcome>> {
    let mut tables = ApplyTables {
        transaction,
        data: None,
        buffer,
        sessions,
        leases: None,
        sessions_max,
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    for logged in batch {
        outcomes.push(tables.apply_one(logged)?);
    }
    Ok(outcomes)
}

/// Records in `transaction` the applied position and, if it changed since the last
/// commit, the configuration in force there: what every commit of applied writes carries,
/// so that the state and its position always agree.
pub(super) fn record_position(
    transaction: &redb::WriteTransaction,
    applied: LogPosition,
    changed_membership: Option<&Membership>,
) -> Result<()> {
    let mut meta = transaction.open_table(META).map_err(storage_error)?;
    meta.insert(META_APPLIED, &encode_position(applied)[..])
        .map_err(storage_error)?;
    if let Some(membership) = changed_membership {
        meta.insert(META_MEMBERSHIP, membership.encode().as_slice())
            .map_err(storage_error)?;
    }
    Ok(())
}

/// The tables one apply transaction reads or writes, each opened on first use (most
/// batches need neither: their keys are in the write buffer or its read cache, and they
/// hold no lease write), and the sessions and the write buffer in memory. The data table
/// is only read: data entries go to the buffer.
struct ApplyTables<'t, 's> {
    transaction: &'t redb::WriteTransaction,
    data: Option<redb::Table<'t, &'static [u8], &'static [u8]>>,
    buffer: &'s mut WriteBuffer,
    sessions: &'s mut SessionTable,
    leases: Option<redb::Table<'t, &'static [u8], &'static [u8]>>,
    sessions_max: usize,
}

impl<'t> ApplyTables<'t, '_> {
    fn leases(&mut self) -> Result<&mut redb::Table<'t, &'static [u8], &'static [u8]>> {
        if self.leases.is_none() {
            let table = self.transaction.open_table(LEASES);
            self.leases = Some(table.map_err(storage_error)?);
        }
        Ok(self.leases.as_mut().expect("opened above"))
    }

    fn data(&mut self) -> Result<&redb::Table<'t, &'static [u8], &'static [u8]>> {
        if self.data.is_none() {
            let table = self.transaction.open_table(DATA);
            self.data = Some(table.map_err(storage_error)?);
        }
        Ok(self.data.as_ref().expect("opened above"))
    }
}

impl ApplyTables<'_, '_> {
    /// Applies one write, deduplicated by its request id if it has one.
    fn apply_one(&mut self, logged: LoggedWrite) -> Result<WriteOutcome> {
        let LoggedWrite {
            index,
            request_id,
            write,
            stamp_unix_ms,
        } = logged;
        if let Some(request_id) = request_id {
            let previous = self.sessions.get(request_id.client);
            if let Verdict::Answer(outcome) = session::verdict(previous, request_id) {
                return Ok(outcome);
            }
        }
        let outcome = self.decide_and_write(index, write, stamp_unix_ms)?;
        if let Some(request_id) = request_id {
            let recorded = ClientSession {
                client: request_id.client,
                sequence: request_id.sequence,
                index,
                outcome,
            };
            self.sessions.record(recorded, self.sessions_max);
        }
        Ok(outcome)
    }
}

impl ApplyTables<'_, '_> {
    /// Decides one write and stores what it changes: a lease write in the lease table, a
    /// data write (once its fencing token, if any, was accepted) in the write buffer.
    fn decide_and_write(
        &mut self,
        index: LogIndex,
        write: StoreWrite,
        stamp_unix_ms: u64,
    ) -> Result<WriteOutcome> {
        if write.is_lease() {
            return lease::apply(self.leases()?, index, &write);
        }
        let fenced = matches!(
            write,
            StoreWrite::PutFenced { .. } | StoreWrite::DeleteFenced { .. }
        );
        if fenced && let Some(refusal) = lease::fence(self.leases()?, &write)? {
            return Ok(refusal);
        }
        let has_expiry = |current: &StoredEntry| current.expires_at_unix_ms.is_some();
        let (replaced_expiry, (key, entry, outcome)) = match self.buffer.get(write.key()) {
            Some(current) => (
                has_expiry(current),
                write::decide(write, Some(current), stamp_unix_ms),
            ),
            None => {
                let current = read_entry(self.data()?, write.key().as_bytes())?;
                (
                    current.as_ref().is_some_and(has_expiry),
                    write::decide(write, current.as_ref(), stamp_unix_ms),
                )
            }
        };
        if let Some(entry) = entry {
            self.buffer.put(key, entry, replaced_expiry);
        }
        Ok(outcome)
    }
}
