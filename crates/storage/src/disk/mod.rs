//! A minimal file-system interface, real or simulated, under the log and the store.
//!
//! The log and the store never touch `std::fs` directly; they open [`File`]s through a
//! [`Disk`]. There are exactly two disks, so both are concrete enums rather than trait
//! objects:
//!
//! - [`Disk::os`] is a directory on the real file system. Reads and writes are positional
//!   (`pread`/`pwrite`), [`File::sync_data`] is `fdatasync`, [`Disk::sync_directory`] is an
//!   `fsync` of the directory, which is what makes a file's creation, removal or rename
//!   durable on Linux.
//! - [`Disk::simulated`] is an in-memory disk with a power-failure model (see [`sim`]):
//!   data written since the last `sync_data` and names changed since the last
//!   `sync_directory` may be lost, partly kept, or torn when [`SimDisk::crash`] is called.
//!
//! File names are relative paths with `/` separators (`log/00000000000000000001.seg`);
//! parent directories are created as needed.

pub mod os;
pub mod sim;

pub use os::{OsDisk, OsFile};
pub use sim::{CrashReport, SimDisk, SimFile};

use std::io;
use std::path::PathBuf;

/// Where files live: a real directory or a simulated disk. Cloning shares the same disk.
#[derive(Clone, Debug)]
pub enum Disk {
    Os(OsDisk),
    Simulated(SimDisk),
}

/// An open file on a [`Disk`]. All operations take `&self`, so one file can be shared by
/// readers while a single owner writes (redb needs this).
#[derive(Debug)]
pub enum File {
    Os(OsFile),
    Simulated(SimFile),
}

impl Disk {
    /// A disk rooted at `root` on the real file system; the directory is created if missing.
    pub fn os(root: impl Into<PathBuf>) -> io::Result<Disk> {
        OsDisk::new(root.into()).map(Disk::Os)
    }

    /// A fresh, empty simulated disk.
    #[must_use]
    pub fn simulated() -> Disk {
        Disk::Simulated(SimDisk::new())
    }

    /// Opens `name` for reading and writing, creating it (empty) if it does not exist.
    pub fn open(&self, name: &str) -> io::Result<File> {
        check_name(name)?;
        match self {
            Disk::Os(disk) => disk.open(name).map(File::Os),
            Disk::Simulated(disk) => disk.open(name).map(File::Simulated),
        }
    }

    /// Whether a file called `name` exists.
    pub fn exists(&self, name: &str) -> io::Result<bool> {
        check_name(name)?;
        match self {
            Disk::Os(disk) => disk.exists(name),
            Disk::Simulated(disk) => disk.exists(name),
        }
    }

    /// The names (relative to the disk root, sorted) of the files directly inside
    /// `directory` (`""` for the root). A missing directory lists as empty.
    pub fn list(&self, directory: &str) -> io::Result<Vec<String>> {
        match self {
            Disk::Os(disk) => disk.list(directory),
            Disk::Simulated(disk) => disk.list(directory),
        }
    }

    /// Removes `name`. Durable only after [`Disk::sync_directory`] of its directory.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        check_name(name)?;
        match self {
            Disk::Os(disk) => disk.remove(name),
            Disk::Simulated(disk) => disk.remove(name),
        }
    }

    /// Atomically renames `from` to `to`, replacing `to` if it exists. Durable only after
    /// [`Disk::sync_directory`].
    pub fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        check_name(from)?;
        check_name(to)?;
        match self {
            Disk::Os(disk) => disk.rename(from, to),
            Disk::Simulated(disk) => disk.rename(from, to),
        }
    }

    /// Makes creations, removals and renames inside `directory` durable.
    pub fn sync_directory(&self, directory: &str) -> io::Result<()> {
        match self {
            Disk::Os(disk) => disk.sync_directory(directory),
            Disk::Simulated(disk) => disk.sync_directory(directory),
        }
    }
}

impl File {
    /// The file's current length in bytes (including unsynced writes).
    pub fn len(&self) -> io::Result<u64> {
        match self {
            File::Os(file) => file.len(),
            File::Simulated(file) => file.len(),
        }
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `buffer` from `offset`; an error if the file is shorter.
    pub fn read_exact_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
        match self {
            File::Os(file) => file.read_exact_at(offset, buffer),
            File::Simulated(file) => file.read_exact_at(offset, buffer),
        }
    }

    /// Writes all of `data` at `offset`, extending the file if needed (a gap reads as
    /// zeros). Not durable until [`File::sync_data`].
    pub fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        match self {
            File::Os(file) => file.write_all_at(offset, data),
            File::Simulated(file) => file.write_all_at(offset, data),
        }
    }

    /// Truncates or zero-extends the file to `length` bytes.
    pub fn set_len(&self, length: u64) -> io::Result<()> {
        match self {
            File::Os(file) => file.set_len(length),
            File::Simulated(file) => file.set_len(length),
        }
    }

    /// A second handle to the same open file, for another thread (`dup`): the log hands
    /// one to the driver's sync thread (see "Pipelined sync" in the `log` module).
    pub fn try_clone(&self) -> io::Result<File> {
        match self {
            File::Os(file) => file.try_clone().map(File::Os),
            File::Simulated(file) => Ok(File::Simulated(file.clone_handle())),
        }
    }

    /// Makes every write and length change so far durable (`fdatasync`).
    pub fn sync_data(&self) -> io::Result<()> {
        match self {
            File::Os(file) => file.sync_data(),
            File::Simulated(file) => file.sync_data(),
        }
    }
}

/// Rejects names that could escape the disk root or are not plain relative paths.
fn check_name(name: &str) -> io::Result<()> {
    let valid = !name.is_empty()
        && !name.starts_with('/')
        && !name.ends_with('/')
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if valid {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid file name {name:?}"),
        ))
    }
}

/// The directory part of a file name (`""` for a file at the root).
pub(crate) fn parent_directory(name: &str) -> &str {
    name.rsplit_once('/').map_or("", |(directory, _)| directory)
}

#[cfg(test)]
mod tests;
