//! Installing a snapshot on a follower: begin, install chunks, finish.
//!
//! A follower that receives a snapshot must end up with exactly the leader's state at the
//! snapshot's position, and a crash at any moment must leave it with something it can
//! work from. So the chunks never touch the live data: [`Store::install_begin`] creates an
//! empty staging table and an install record in the store's meta table,
//! [`Store::install_chunk`] adds entries to the staging table and advances the record's
//! last installed key in the same transaction, and [`Store::install_finish`] replaces the
//! data table by the staging table and sets the applied position, in one durable
//! transaction. Until that commit, reads and the applied position are the old state's.
//!
//! Like applying, beginning and installing chunks use non-durable commits, made durable by
//! [`Store::sync`]. After a crash the store therefore holds either the old state with no
//! install (the begin was lost) or the old state with an install in progress up to the
//! last chunk that was synced; [`Store::install_progress`] reports it on reopening, and the
//! transfer resumes by asking the leader for the chunk after
//! [`SnapshotInstall::resume_after`] (or starts over with a new begin, which discards it).
//!
//! The last chunk's client sessions and leases go to staging tables in the same way, and
//! replace the live ones in the finishing transaction.
//!
//! Chunks come from a peer, so they are checked before anything is written: keys strictly
//! increasing and after the resume key, sizes within limits, versions non-zero. A chunk
//! that is well-formed but does not continue the install (a duplicate, a late resend, a
//! chunk of another snapshot) is ignored and reported as such, so a resent message is
//! harmless.

use super::encoding::{
    POSITION_SIZE_BYTES, StoredEntry, corruption, decode_key, decode_position, encode_position,
    storage_error,
};
use super::lease::{self, LEASES, STAGING_LEASES};
use super::membership::Membership;
use super::session::{self, STAGING_SESSIONS};
use super::session_log;
use super::snapshot::{SnapshotChunk, SnapshotEntry};
use super::{
    DATA, META, META_APPLIED, META_INSTALL, META_MEMBERSHIP, META_STAGED_MEMBERSHIP,
    SNAPSHOT_CHUNK_SIZE_MAX_BYTES, STAGING, Store,
};
use redb::Durability;
use replikv_core::error::{Error, Result};
use replikv_core::limits::{KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use replikv_core::{Key, LogPosition, Version};

/// The progress of a snapshot install, as recorded in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInstall {
    position: LogPosition,
    last_key: Option<Key>,
    done: bool,
    /// Begun by [`Store::install_begin_replacing`]: accepted whatever the applied
    /// position.
    replacing: bool,
    entries_installed: u64,
}

impl SnapshotInstall {
    /// The position of the snapshot being installed.
    #[must_use]
    pub fn position(&self) -> LogPosition {
        self.position
    }

    /// The key to ask the next chunk after (`None`: from the beginning).
    #[must_use]
    pub fn resume_after(&self) -> Option<&Key> {
        self.last_key.as_ref()
    }

    /// Whether the last chunk has been installed, so that the install can finish.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.done
    }

    /// Whether the install replaces a diverged state ([`Store::install_begin_replacing`]).
    #[must_use]
    pub fn is_replacing(&self) -> bool {
        self.replacing
    }

    /// Number of entries (tombstones included) installed so far.
    #[must_use]
    pub fn entries_installed(&self) -> u64 {
        self.entries_installed
    }

    /// `position (16) | flags (1: bit 0 done, bit 1 replacing) | entries installed (8) |
    /// last key (rest, empty: none)`.
    fn encode(&self) -> Vec<u8> {
        let last_key = self.last_key.as_ref().map_or(&[][..], Key::as_bytes);
        let mut bytes = Vec::with_capacity(POSITION_SIZE_BYTES + 9 + last_key.len());
        bytes.extend_from_slice(&encode_position(self.position));
        bytes.push(u8::from(self.done) | (u8::from(self.replacing) << 1));
        bytes.extend_from_slice(&self.entries_installed.to_be_bytes());
        bytes.extend_from_slice(last_key);
        bytes
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<SnapshotInstall> {
        const FIXED: usize = POSITION_SIZE_BYTES + 9;
        if bytes.len() < FIXED {
            return Err(corruption(format!(
                "install record of {} bytes",
                bytes.len()
            )));
        }
        let (fixed, last_key) = bytes.split_at(FIXED);
        let flags = fixed[POSITION_SIZE_BYTES];
        if flags > 0b11 {
            return Err(corruption(format!("install record flags {flags:#x}")));
        }
        let (done, replacing) = (flags & 1 == 1, flags & 2 == 2);
        let entries = &fixed[POSITION_SIZE_BYTES + 1..];
        Ok(SnapshotInstall {
            position: decode_position(&fixed[..POSITION_SIZE_BYTES])?,
            last_key: (!last_key.is_empty())
                .then(|| decode_key(last_key))
                .transpose()?,
            done,
            replacing,
            entries_installed: u64::from_be_bytes(entries.try_into().expect("8 bytes")),
        })
    }
}

impl Store {
    /// Starts installing the snapshot taken at `position`, discarding any install in
    /// progress. A snapshot not after the applied position is stale and refused with
    /// [`Error::InvalidInput`].
    pub fn install_begin(&mut self, position: LogPosition) -> Result<()> {
        if position <= self.applied {
            return Err(Error::InvalidInput(format!(
                "snapshot at {position} is not after the applied position {}",
                self.applied
            )));
        }
        self.begin_install(position, false)
    }

    /// Starts installing the snapshot taken at `position` whatever the applied position:
    /// for a replica whose applied state diverged from its leader's history (a deposed
    /// leader of a lossy commit mode), which the leader's state must replace even when
    /// the leader has applied less. The choice is recorded with the install, so a
    /// resumed install after a crash keeps it.
    pub fn install_begin_replacing(&mut self, position: LogPosition) -> Result<()> {
        self.begin_install(position, true)
    }

    fn begin_install(&mut self, position: LogPosition, replacing: bool) -> Result<()> {
        let install = SnapshotInstall {
            position,
            last_key: None,
            done: false,
            replacing,
            entries_installed: 0,
        };
        let transaction = self.begin_write(Durability::None)?;
        transaction.delete_table(STAGING).map_err(storage_error)?;
        transaction.open_table(STAGING).map_err(storage_error)?;
        transaction
            .delete_table(STAGING_SESSIONS)
            .map_err(storage_error)?;
        transaction
            .open_table(STAGING_SESSIONS)
            .map_err(storage_error)?;
        transaction
            .delete_table(STAGING_LEASES)
            .map_err(storage_error)?;
        transaction
            .open_table(STAGING_LEASES)
            .map_err(storage_error)?;
        {
            let mut meta = transaction.open_table(META).map_err(storage_error)?;
            meta.insert(META_INSTALL, install.encode().as_slice())
                .map_err(storage_error)?;
            meta.remove(META_STAGED_MEMBERSHIP).map_err(storage_error)?;
        }
        self.commit(transaction)?;
        self.install = Some(install);
        Ok(())
    }

    /// The install in progress, if any (also after reopening a crashed store).
    #[must_use]
    pub fn install_progress(&self) -> Option<&SnapshotInstall> {
        self.install.as_ref()
    }

    /// Adds `chunk` to the install in progress. Returns whether it was installed: `false`
    /// if it does not continue the install (another snapshot, a duplicate, or no install
    /// in progress), which changes nothing. A malformed chunk is refused with
    /// [`Error::InvalidInput`] and changes nothing.
    pub fn install_chunk(&mut self, chunk: &SnapshotChunk) -> Result<bool> {
        let Some(install) = &self.install else {
            return Ok(false);
        };
        if chunk.position != install.position || chunk.after != install.last_key || install.done {
            return Ok(false);
        }
        check_chunk(chunk)?;
        if let Some(membership) = &chunk.membership {
            membership.check().map_err(|text| {
                Error::InvalidInput(format!("snapshot chunk membership: {text}"))
            })?;
        }
        session::check_sessions(&chunk.sessions, install.position.index)?;
        lease::check_leases(&chunk.leases, install.position.index)?;
        let mut next = install.clone();
        next.last_key = chunk.last_key().cloned();
        next.done = chunk.done;
        next.entries_installed += chunk.entries.len() as u64;
        let transaction = self.begin_write(Durability::None)?;
        {
            let mut staging = transaction.open_table(STAGING).map_err(storage_error)?;
            for SnapshotEntry {
                key,
                version,
                value,
                expires_at_unix_ms,
            } in &chunk.entries
            {
                let entry = StoredEntry {
                    version: *version,
                    value: value.clone(),
                    expires_at_unix_ms: expires_at_unix_ms.filter(|_| value.is_some()),
                };
                staging
                    .insert(key.as_bytes(), entry.encode().as_slice())
                    .map_err(storage_error)?;
            }
            let mut staged_sessions = transaction
                .open_table(STAGING_SESSIONS)
                .map_err(storage_error)?;
            for session in &chunk.sessions {
                staged_sessions
                    .insert(session.client.0, session.encode().as_slice())
                    .map_err(storage_error)?;
            }
            let mut staged_leases = transaction
                .open_table(STAGING_LEASES)
                .map_err(storage_error)?;
            for record in &chunk.leases {
                staged_leases
                    .insert(record.name.as_bytes(), record.encode().as_slice())
                    .map_err(storage_error)?;
            }
            let mut meta = transaction.open_table(META).map_err(storage_error)?;
            meta.insert(META_INSTALL, next.encode().as_slice())
                .map_err(storage_error)?;
            if let Some(membership) = &chunk.membership {
                meta.insert(META_STAGED_MEMBERSHIP, membership.encode().as_slice())
                    .map_err(storage_error)?;
            }
        }
        self.commit(transaction)?;
        self.install = Some(next);
        Ok(true)
    }

    /// Replaces the whole state by the installed snapshot and sets the applied position to
    /// the snapshot's, atomically and durably. Refused with [`Error::InvalidInput`] if no
    /// complete install is in progress, or if the store has meanwhile applied up to or
    /// past the snapshot's position (the install then stays, for the caller to abort).
    pub fn install_finish(&mut self) -> Result<()> {
        let Some(install) = &self.install else {
            return Err(Error::InvalidInput(
                "no snapshot install in progress".into(),
            ));
        };
        if !install.done {
            return Err(Error::InvalidInput(format!(
                "snapshot install at {} is incomplete",
                install.position
            )));
        }
        if install.position <= self.applied && !install.replacing {
            return Err(Error::InvalidInput(format!(
                "snapshot at {} is not after the applied position {}",
                install.position, self.applied
            )));
        }
        let position = install.position;
        let transaction = self.begin_write(Durability::Immediate)?;
        // The data table is replaced: nothing cached from it holds any longer (and
        // nothing is buffered: `begin_write` committed the open transaction).
        self.buffer.clear();
        transaction.delete_table(DATA).map_err(storage_error)?;
        transaction
            .rename_table(STAGING, DATA)
            .map_err(storage_error)?;
        super::expiry::rebuild_expiry_index(&transaction)?;
        replace_sessions(&transaction)?;
        transaction.delete_table(LEASES).map_err(storage_error)?;
        transaction
            .rename_table(STAGING_LEASES, LEASES)
            .map_err(storage_error)?;
        let membership = {
            let mut meta = transaction.open_table(META).map_err(storage_error)?;
            meta.insert(META_APPLIED, &encode_position(position)[..])
                .map_err(storage_error)?;
            meta.remove(META_INSTALL).map_err(storage_error)?;
            let staged = meta
                .remove(META_STAGED_MEMBERSHIP)
                .map_err(storage_error)?
                .map(|record| Membership::decode(record.value()))
                .transpose()?;
            match &staged {
                Some(membership) => meta.insert(META_MEMBERSHIP, membership.encode().as_slice()),
                None => meta.remove(META_MEMBERSHIP),
            }
            .map_err(storage_error)?;
            staged
        };
        transaction.commit().map_err(storage_error)?;
        self.committed_membership.clone_from(&membership);
        self.membership = membership;
        self.unsynced_commits = 0;
        self.applied = position;
        self.committed_applied = position;
        self.durable_applied = position;
        self.install = None;
        // The sessions are the snapshot's now: reloaded from the table before their next use.
        self.sessions = None;
        Ok(())
    }

    /// Discards the install in progress, if any; the state is unchanged.
    pub fn install_abort(&mut self) -> Result<()> {
        if self.install.is_none() {
            return Ok(());
        }
        let transaction = self.begin_write(Durability::None)?;
        transaction.delete_table(STAGING).map_err(storage_error)?;
        transaction
            .delete_table(STAGING_SESSIONS)
            .map_err(storage_error)?;
        transaction
            .delete_table(STAGING_LEASES)
            .map_err(storage_error)?;
        transaction
            .open_table(META)
            .map_err(storage_error)?
            .remove(META_INSTALL)
            .map_err(storage_error)?;
        self.commit(transaction)?;
        self.install = None;
        Ok(())
    }
}

/// Replaces the live sessions by the staged ones (checked when their chunk arrived: one
/// session per log index; the store rebuilds their eviction order in memory): a new base
/// of session chunks, and no delta ([`session_log`]).
fn replace_sessions(transaction: &redb::WriteTransaction) -> Result<()> {
    let staged = {
        let staging = transaction
            .open_table(STAGING_SESSIONS)
            .map_err(storage_error)?;
        session::all_sessions(&staging)?
    };
    transaction
        .delete_table(STAGING_SESSIONS)
        .map_err(storage_error)?;
    session_log::rewrite_in(transaction, &staged)?;
    Ok(())
}

/// Checks what a peer could get wrong in a chunk: ordering, sizes and versions.
fn check_chunk(chunk: &SnapshotChunk) -> Result<()> {
    let invalid = |detail: String| Err(Error::InvalidInput(format!("snapshot chunk: {detail}")));
    if chunk.entries.is_empty() && !chunk.done {
        return invalid("no entries and not the last chunk".into());
    }
    if (!chunk.sessions.is_empty() || !chunk.leases.is_empty()) && !chunk.done {
        return invalid("sessions or leases in a chunk that is not the last".into());
    }
    if chunk.entries.len() > 1 && chunk.size_bytes() > SNAPSHOT_CHUNK_SIZE_MAX_BYTES {
        return invalid(format!("{} bytes", chunk.size_bytes()));
    }
    let mut previous = chunk.after.as_ref();
    for entry in &chunk.entries {
        let key_bytes = entry.key.as_bytes().len();
        if key_bytes == 0 || key_bytes > KEY_SIZE_MAX_BYTES {
            return invalid(format!("key of {key_bytes} bytes"));
        }
        let value_bytes = entry
            .value
            .as_ref()
            .map_or(0, |value| value.as_bytes().len());
        if value_bytes > VALUE_SIZE_MAX_BYTES {
            return invalid(format!("value of {value_bytes} bytes"));
        }
        if entry.version == Version(0) {
            return invalid(format!("key {} with version 0", entry.key));
        }
        if previous.is_some_and(|previous| entry.key <= *previous) {
            return invalid(format!("key {} out of order", entry.key));
        }
        previous = Some(&entry.key);
    }
    Ok(())
}
