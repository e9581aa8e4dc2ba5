//! redb's storage backend over our [`Disk`](crate::disk::Disk) files.
//!
//! redb does all of its I/O through the [`redb::StorageBackend`] trait: positional reads
//! and writes, a length, `set_len` and `sync_data`. That is exactly what a
//! [`File`] offers, so the adapter is a thin forwarding layer, and it is the only path:
//! the same store code runs over the real disk in production and over the simulated disk,
//! with its power-failure model, in the simulator. Whatever redb writes between two syncs
//! is therefore subject to the simulated crash (lost, kept or torn writes), which is how
//! the crash tests put redb's own recovery to work.
//!
//! Locking is left unsupported (redb's documented level 3): a store is owned by exactly
//! one replica in one process, redb then runs in its default exclusive-writer mode, and
//! excluding a second process from the same data directory is the node's job, not the
//! store's.

use crate::disk::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A [`redb::StorageBackend`] that stores the database in one [`File`] of a disk.
#[derive(Debug)]
pub struct DiskBackend {
    file: File,
    /// Bytes redb has written through this backend, shared with the store, which reads it
    /// to learn what a durable commit cost.
    bytes_written: Arc<AtomicU64>,
}

impl DiskBackend {
    /// Wraps an open file; the file's current content is what redb will read.
    #[must_use]
    pub fn new(file: File) -> DiskBackend {
        DiskBackend {
            file,
            bytes_written: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The count of bytes written, which keeps counting after the backend moved into redb.
    #[must_use]
    pub fn bytes_written(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.bytes_written)
    }
}

impl redb::StorageBackend for DiskBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read_exact_at(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.file.write_all_at(offset, data)?;
        self.bytes_written
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
