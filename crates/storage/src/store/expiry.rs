//! The store's side of key expiry: finding expired keys for the leader's sweep, and
//! rebuilding the expiry index after a snapshot install.
//!
//! Every value with an expiry time has a record `expires at | key` in the expiry index
//! (`EXPIRY`), kept in step with the data table when the write buffer is flushed
//! (`buffer.rs`). The index orders keys by expiry time, so the sweep reads the earliest
//! expired keys directly, at most a bounded number per call, however large the store.
//! An install replaces the data table wholesale, so the index is rebuilt from it in the
//! install's final transaction (one pass, like the install itself). How writes and
//! reads treat expired values is in `write.rs` and `StoredEntry::as_of`.

use super::encoding::{StoredEntry, decode_expiry_index_key, expiry_index_key, storage_error};
use super::{DATA, EXPIRY, Store, flush_memory};
use redb::{ReadableDatabase, ReadableTable};
use replikv_core::Key;
use replikv_core::error::Result;

impl Store {
    /// Up to `limit` keys whose values expired at or before `now_unix_ms`, earliest
    /// first, each with its expiry time: what the leader's sweep deletes. Found through
    /// the expiry index, without scanning the data (the write buffer is written into the
    /// open transaction first if it changed an expiry time, so that the index is up to
    /// date; a write load without expiry times never pays for that flush).
    pub fn expired_keys(&mut self, now_unix_ms: u64, limit: usize) -> Result<Vec<(Key, u64)>> {
        if let Some(pending) = &self.pending
            && self.buffer.expiry_changed()
        {
            let flushed = flush_memory(
                &pending.transaction,
                (self.sessions.as_mut(), self.session_fold_limits),
                &mut self.buffer,
            );
            if let Err(error) = flushed {
                self.pending = None;
                self.revert_to_committed();
                return Err(error);
            }
        }
        let end = expiry_index_key(now_unix_ms.saturating_add(1), b"");
        read_table!(self, EXPIRY, |expiry| {
            let mut keys = Vec::new();
            for item in expiry
                .range::<&[u8]>(..end.as_slice())
                .map_err(storage_error)?
                .take(limit)
            {
                let (index_key, _) = item.map_err(storage_error)?;
                let (expires_at, key) = decode_expiry_index_key(index_key.value())?;
                keys.push((key, expires_at));
            }
            Ok(keys)
        })
    }
}

/// Rebuilds the expiry index from the data table (after a snapshot install replaced it):
/// one pass over the data, in the install's final transaction.
pub(super) fn rebuild_expiry_index(transaction: &redb::WriteTransaction) -> Result<()> {
    transaction.delete_table(EXPIRY).map_err(storage_error)?;
    let mut expiry = transaction.open_table(EXPIRY).map_err(storage_error)?;
    let data = transaction.open_table(DATA).map_err(storage_error)?;
    for item in data.iter().map_err(storage_error)? {
        let (key, entry) = item.map_err(storage_error)?;
        let entry = StoredEntry::decode(entry.value())?;
        if let (Some(expires_at), Some(_)) = (entry.expires_at_unix_ms, &entry.value) {
            expiry
                .insert(
                    expiry_index_key(expires_at, key.value()).as_slice(),
                    &[][..],
                )
                .map_err(storage_error)?;
        }
    }
    Ok(())
}
