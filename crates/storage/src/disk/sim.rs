//! The simulated disk and its power-failure model.
//!
//! Every file (an inode) holds two images: `current`, what reads see, and `durable`, what
//! would survive a power failure. Writes and length changes go to `current` and are also
//! queued as pending operations; syncing a file replays the queue onto `durable`.
//! Names work the same way: creations, removals and renames change the current name table
//! at once, and reach the durable name table only through a directory sync.
//!
//! [`SimDisk::crash`] is a power failure. For every file it starts from the durable image
//! and replays the pending operations in order, deciding for each one, with the caller's
//! seeded random generator, whether it survived whole, was lost, or was torn (only a
//! prefix of the bytes reached the platter). For the names it keeps a random prefix of the
//! pending name operations, so a rename is either visible or not, never half done. This
//! covers the failures a log must survive: a lost tail, a torn last record, and a later
//! write that reached the disk while an earlier one did not.
//!
//! Every handle remembers the disk's crash generation when it was opened. After a crash,
//! old handles fail with an error and change nothing: a crashed node that is dropped
//! afterwards (running destructors that would flush) cannot write through the crash.
//!
//! A crash between two calls of a storage layer often finds nothing unsynced (redb, for
//! one, keeps non-durable commits in memory and writes and syncs in a single call), so
//! the interesting power failures happen *inside* a call. [`SimDisk::schedule_crash`]
//! arms the disk to fail just before its k-th mutating operation (write, length change,
//! sync, or name change): the crash model runs at that moment with a generator seeded by
//! the caller, the operation fails with an error, and every handle is dead. The storage
//! code above sees an I/O error in the middle of whatever it was doing, exactly as a
//! process sees nothing at all after a real power cut.

use super::parent_directory;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

/// Upper bound on one simulated file's size, so a runaway test fails loudly instead of
/// exhausting memory.
pub const SIM_FILE_SIZE_MAX_BYTES: u64 = 1 << 30;

/// An in-memory disk shared by clones; see the module documentation.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

/// An open file on a [`SimDisk`].
#[derive(Debug)]
pub struct SimFile {
    state: Arc<Mutex<DiskState>>,
    inode: usize,
    generation: u64,
}

/// What a crash did, for logs and for tests that want to know a fault really happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashReport {
    pub writes_kept: u64,
    pub writes_lost: u64,
    pub writes_torn: u64,
    pub name_operations_kept: u64,
    pub name_operations_lost: u64,
}

#[derive(Debug, Default)]
struct DiskState {
    inodes: Vec<Inode>,
    names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    pending_name_operations: Vec<NameOperation>,
    generation: u64,
    sync_count: u64,
    mutation_count: u64,
    scheduled_crash: Option<ScheduledCrash>,
    last_crash: Option<CrashReport>,
}

/// A power failure armed to strike before a given mutating operation.
#[derive(Debug)]
struct ScheduledCrash {
    operations_before_crash: u64,
    random: ChaCha8Rng,
}

#[derive(Debug, Default)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<PendingOperation>,
}

#[derive(Debug)]
enum PendingOperation {
    Write { offset: u64, data: Vec<u8> },
    SetLength(u64),
}

#[derive(Clone, Debug)]
enum NameOperation {
    Link { name: String, inode: usize },
    Unlink { name: String },
}

impl SimDisk {
    #[must_use]
    pub fn new() -> SimDisk {
        SimDisk::default()
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().expect("sim disk lock poisoned")
    }

    /// Simulates a power failure; see the module documentation. Handles opened before the
    /// crash stop working.
    pub fn crash(&self, random: &mut impl Rng) -> CrashReport {
        self.lock().crash(random)
    }

    /// Arms a power failure just before the disk's `operations_before_crash`-th mutating
    /// operation from now (0: the very next one), with the crash model driven by `seed`.
    /// Replaces any crash already scheduled. See the module documentation.
    pub fn schedule_crash(&self, operations_before_crash: u64, seed: u64) {
        self.lock().scheduled_crash = Some(ScheduledCrash {
            operations_before_crash,
            random: ChaCha8Rng::seed_from_u64(seed),
        });
    }

    /// Disarms a scheduled crash that has not struck; returns whether one was pending.
    pub fn cancel_scheduled_crash(&self) -> bool {
        self.lock().scheduled_crash.take().is_some()
    }

    /// How many mutating operations (writes, length changes, syncs, name changes) the
    /// disk has been asked for so far, including one a scheduled crash struck. A test can
    /// run a workload once to count them, then schedule a crash at any of them.
    #[must_use]
    pub fn mutation_count(&self) -> u64 {
        self.lock().mutation_count
    }

    /// How many crashes this disk has suffered (scheduled or not).
    #[must_use]
    pub fn crash_count(&self) -> u64 {
        self.lock().generation
    }

    /// What the most recent crash did, if there was one.
    #[must_use]
    pub fn last_crash(&self) -> Option<CrashReport> {
        self.lock().last_crash
    }

    /// Number of `sync_data` calls served so far (for tests and benchmarks).
    #[must_use]
    pub fn sync_count(&self) -> u64 {
        self.lock().sync_count
    }

    /// Flips one bit of the durable and current images of `name` at `offset`: silent
    /// media corruption, for testing that checksums catch it.
    pub fn corrupt_bit(&self, name: &str, offset: u64, bit: u8) -> io::Result<()> {
        let mut state = self.lock();
        let inode = *state.names.get(name).ok_or_else(|| not_found(name))?;
        let inode = &mut state.inodes[inode];
        let offset = usize::try_from(offset).map_err(io::Error::other)?;
        for image in [&mut inode.current, &mut inode.durable] {
            if let Some(byte) = image.get_mut(offset) {
                *byte ^= 1 << (bit % 8);
            }
        }
        Ok(())
    }

    pub(super) fn open(&self, name: &str) -> io::Result<SimFile> {
        let mut state = self.lock();
        let inode = match state.names.get(name) {
            Some(&inode) => inode,
            None => {
                state.before_mutation()?;
                let inode = state.inodes.len();
                state.inodes.push(Inode::default());
                let operation = NameOperation::Link {
                    name: name.to_owned(),
                    inode,
                };
                operation.apply(&mut state.names);
                state.pending_name_operations.push(operation);
                inode
            }
        };
        Ok(SimFile {
            state: Arc::clone(&self.state),
            inode,
            generation: state.generation,
        })
    }

    pub(super) fn exists(&self, name: &str) -> io::Result<bool> {
        Ok(self.lock().names.contains_key(name))
    }

    pub(super) fn list(&self, directory: &str) -> io::Result<Vec<String>> {
        let state = self.lock();
        Ok(state
            .names
            .keys()
            .filter(|name| parent_directory(name) == directory)
            .cloned()
            .collect())
    }

    pub(super) fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.lock();
        if !state.names.contains_key(name) {
            return Err(not_found(name));
        }
        state.before_mutation()?;
        let operation = NameOperation::Unlink {
            name: name.to_owned(),
        };
        operation.apply(&mut state.names);
        state.pending_name_operations.push(operation);
        Ok(())
    }

    pub(super) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.lock();
        let inode = *state.names.get(from).ok_or_else(|| not_found(from))?;
        state.before_mutation()?;
        // Recorded as one link-then-unlink pair; a crash keeps a prefix of the pending
        // operations, so it may keep both names (the link survived, the unlink did not),
        // which is what a crash between the two steps of a copy-style rename looks like.
        // Callers that need atomic replacement write to a temporary name and rename over
        // the target, and treat a leftover temporary as garbage.
        for operation in [
            NameOperation::Link {
                name: to.to_owned(),
                inode,
            },
            NameOperation::Unlink {
                name: from.to_owned(),
            },
        ] {
            operation.apply(&mut state.names);
            state.pending_name_operations.push(operation);
        }
        Ok(())
    }

    pub(super) fn sync_directory(&self, directory: &str) -> io::Result<()> {
        let mut state = self.lock();
        state.before_mutation()?;
        // Names in other directories are not made durable by this sync: keep them pending.
        let pending = std::mem::take(&mut state.pending_name_operations);
        let (synced, other): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|operation| parent_directory(operation.name()) == directory);
        for operation in &synced {
            operation.apply(&mut state.durable_names);
        }
        state.pending_name_operations = other;
        Ok(())
    }
}

impl DiskState {
    fn crash(&mut self, random: &mut impl Rng) -> CrashReport {
        let mut report = CrashReport::default();
        for inode in &mut self.inodes {
            inode.crash(random, &mut report);
        }
        let pending = std::mem::take(&mut self.pending_name_operations);
        let kept = random.random_range(0..=pending.len());
        for operation in &pending[..kept] {
            operation.apply(&mut self.durable_names);
        }
        report.name_operations_kept = kept as u64;
        report.name_operations_lost = (pending.len() - kept) as u64;
        self.names = self.durable_names.clone();
        self.generation += 1;
        self.scheduled_crash = None;
        self.last_crash = Some(report);
        report
    }

    /// Counts one mutating operation against a scheduled crash; strikes when it is due.
    fn before_mutation(&mut self) -> io::Result<()> {
        self.mutation_count += 1;
        let Some(scheduled) = &mut self.scheduled_crash else {
            return Ok(());
        };
        if scheduled.operations_before_crash > 0 {
            scheduled.operations_before_crash -= 1;
            return Ok(());
        }
        let mut random = scheduled.random.clone();
        self.crash(&mut random);
        Err(io::Error::other("simulated power failure"))
    }
}

impl NameOperation {
    fn name(&self) -> &str {
        match self {
            NameOperation::Link { name, .. } | NameOperation::Unlink { name } => name,
        }
    }

    fn apply(&self, names: &mut BTreeMap<String, usize>) {
        match self {
            NameOperation::Link { name, inode } => {
                names.insert(name.clone(), *inode);
            }
            NameOperation::Unlink { name } => {
                names.remove(name);
            }
        }
    }
}

impl Inode {
    fn crash(&mut self, random: &mut impl Rng, report: &mut CrashReport) {
        let mut image = std::mem::take(&mut self.durable);
        for operation in self.pending.drain(..) {
            match operation {
                PendingOperation::Write { offset, data } => {
                    let kept_bytes = match random.random_range(0..3u8) {
                        0 => {
                            report.writes_kept += 1;
                            data.len()
                        }
                        1 => {
                            report.writes_lost += 1;
                            continue;
                        }
                        _ => {
                            report.writes_torn += 1;
                            random.random_range(0..=data.len())
                        }
                    };
                    write_into(&mut image, offset, &data[..kept_bytes]);
                }
                PendingOperation::SetLength(length) => {
                    if random.random_bool(0.5) {
                        resize(&mut image, length);
                    }
                }
            }
        }
        self.current = image.clone();
        self.durable = image;
    }
}

impl SimFile {
    /// Another handle to the same inode, dead after the same crash.
    pub(super) fn clone_handle(&self) -> SimFile {
        SimFile {
            state: Arc::clone(&self.state),
            inode: self.inode,
            generation: self.generation,
        }
    }

    fn lock_live(&self) -> io::Result<MutexGuard<'_, DiskState>> {
        let state = self.state.lock().expect("sim disk lock poisoned");
        if state.generation != self.generation {
            return Err(io::Error::other(
                "simulated disk crashed since file was opened",
            ));
        }
        Ok(state)
    }

    pub(super) fn len(&self) -> io::Result<u64> {
        let state = self.lock_live()?;
        Ok(state.inodes[self.inode].current.len() as u64)
    }

    pub(super) fn read_exact_at(&self, offset: u64, buffer: &mut [u8]) -> io::Result<()> {
        let state = self.lock_live()?;
        let current = &state.inodes[self.inode].current;
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        let end = start.checked_add(buffer.len()).ok_or_else(unexpected_end)?;
        let source = current.get(start..end).ok_or_else(unexpected_end)?;
        buffer.copy_from_slice(source);
        Ok(())
    }

    pub(super) fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset.checked_add(data.len() as u64);
        if end.is_none_or(|end| end > SIM_FILE_SIZE_MAX_BYTES) {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated file size limit",
            ));
        }
        let mut state = self.lock_live()?;
        state.before_mutation()?;
        let inode = &mut state.inodes[self.inode];
        write_into(&mut inode.current, offset, data);
        inode.pending.push(PendingOperation::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    pub(super) fn set_len(&self, length: u64) -> io::Result<()> {
        if length > SIM_FILE_SIZE_MAX_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated file size limit",
            ));
        }
        let mut state = self.lock_live()?;
        state.before_mutation()?;
        let inode = &mut state.inodes[self.inode];
        resize(&mut inode.current, length);
        inode.pending.push(PendingOperation::SetLength(length));
        Ok(())
    }

    pub(super) fn sync_data(&self) -> io::Result<()> {
        let mut state = self.lock_live()?;
        state.before_mutation()?;
        state.sync_count += 1;
        let inode = &mut state.inodes[self.inode];
        for operation in inode.pending.drain(..) {
            match operation {
                PendingOperation::Write { offset, data } => {
                    write_into(&mut inode.durable, offset, &data);
                }
                PendingOperation::SetLength(length) => resize(&mut inode.durable, length),
            }
        }
        debug_assert_eq!(inode.durable.len(), inode.current.len());
        Ok(())
    }
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = usize::try_from(offset).expect("offset bounded by SIM_FILE_SIZE_MAX_BYTES");
    let end = start + data.len();
    if image.len() <= start {
        // An append (the common case: log segments): no zero-filling of bytes that are
        // overwritten at once; a hole before `start` still reads as zeros.
        image.resize(start, 0);
        image.extend_from_slice(data);
        return;
    }
    let overlap_end = end.min(image.len());
    image[start..overlap_end].copy_from_slice(&data[..overlap_end - start]);
    image.extend_from_slice(&data[overlap_end - start..]);
    debug_assert!(image.len() >= end);
}

fn resize(image: &mut Vec<u8>, length: u64) {
    let length = usize::try_from(length).expect("length bounded by SIM_FILE_SIZE_MAX_BYTES");
    image.resize(length, 0);
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no such file {name:?}"))
}

fn unexpected_end() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "read past end of file")
}
