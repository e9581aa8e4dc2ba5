//! Tests of the state store: semantics, crashes, snapshots and installs.
//!
//! Most tests run over both disks ([`each_disk`]); crash tests need the simulated one.
//! Expected states come from [`Model`], a deliberately naive in-memory specification of
//! the store (a map from key to version and value-or-tombstone), written independently of
//! the store's own rules so that the two can disagree.

mod crash;
mod expiry;
mod install;
mod leases;
mod membership;
mod semantics;
mod session_crash;
mod session_log;
mod sessions;
mod snapshot;

use super::upgrade::{
    FORMAT_VERSION_NO_EXPIRY, FORMAT_VERSION_SESSION_ORDER, FORMAT_VERSION_SESSION_ROWS,
};
use super::*;
use crate::disk::SimDisk;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The file every test store lives in (in a directory, to exercise directory syncs).
const STORE_NAME: &str = "state/store.redb";

/// Runs `test` over a fresh real disk (a temporary directory) and a fresh simulated disk.
fn each_disk(test: impl Fn(&Disk)) {
    let directory = tempfile::tempdir().unwrap();
    test(&Disk::os(directory.path()).unwrap());
    test(&Disk::simulated());
}

fn sim(disk: &Disk) -> &SimDisk {
    match disk {
        Disk::Simulated(sim) => sim,
        Disk::Os(_) => panic!("test needs the simulated disk"),
    }
}

fn key(text: &str) -> Key {
    Key::new(text.as_bytes()).unwrap()
}

fn value(text: &str) -> Value {
    Value::new(text.as_bytes()).unwrap()
}

/// Test positions: index `index`, with the term rising every ten entries.
fn position(index: u64) -> LogPosition {
    LogPosition::new(1 + index / 10, index)
}

/// Everything a store holds, tombstones and versions included.
type FullState = BTreeMap<Key, (Version, Option<Value>)>;

/// The whole state of `snapshot`, read in chunks of at most `bytes_max` bytes, checking
/// the chunk protocol on the way.
fn read_all(snapshot: &StoreSnapshot, bytes_max: usize) -> FullState {
    let mut state = FullState::new();
    let mut after: Option<Key> = None;
    let chunks_max = snapshot.len().unwrap() + 1;
    for _ in 0..=chunks_max {
        let chunk = snapshot.read_chunk(after.as_ref(), bytes_max).unwrap();
        assert_eq!(chunk.position, snapshot.position());
        assert_eq!(chunk.after, after);
        assert!(
            chunk.done || !chunk.entries.is_empty(),
            "chunk without progress"
        );
        assert!(
            chunk.entries.len() <= 1 || chunk.size_bytes() <= bytes_max,
            "chunk of {} bytes over a budget of {bytes_max}",
            chunk.size_bytes()
        );
        for entry in &chunk.entries {
            let previous = state.insert(entry.key.clone(), (entry.version, entry.value.clone()));
            assert!(previous.is_none(), "key {} sent twice", entry.key);
        }
        if chunk.done {
            return state;
        }
        after = chunk.last_key().cloned();
    }
    panic!("snapshot never finished");
}

/// The whole state of a store.
fn full_state(store: &mut Store) -> FullState {
    read_all(&store.snapshot().unwrap(), SNAPSHOT_CHUNK_SIZE_MAX_BYTES)
}

/// Completes installing `snapshot` into `store` from wherever its install stands: begins
/// one if none is in progress, sends the chunks after its resume key until it is complete
/// (a crash inside a finish may leave it complete already), and finishes.
fn complete_install(store: &mut Store, snapshot: &StoreSnapshot, bytes_max: usize) {
    if store.install_progress().is_none() {
        store.install_begin(snapshot.position()).unwrap();
    }
    for _ in 0..=snapshot.len().unwrap() {
        let install = store.install_progress().unwrap();
        if install.is_complete() {
            break;
        }
        let chunk = snapshot
            .read_chunk(install.resume_after(), bytes_max)
            .unwrap();
        assert!(store.install_chunk(&chunk).unwrap(), "chunk refused");
    }
    store.install_finish().unwrap();
}

/// The specification: what a store must hold after a sequence of writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    entries: FullState,
}

impl Model {
    fn apply(&mut self, write: &StoreWrite) -> WriteOutcome {
        let key = write.key().clone();
        let (version, current) = self.entries.get(&key).cloned().unwrap_or_default();
        let next = Version(version.0 + 1);
        let (new, swapped) = match write {
            StoreWrite::Put { value, .. } => (Some(Some(value.clone())), None),
            StoreWrite::Delete { .. } => (Some(None), None),
            StoreWrite::CompareAndSetValue { expected, new, .. } => {
                let swapped = *expected == current;
                (swapped.then(|| Some(new.clone())), Some(swapped))
            }
            StoreWrite::CompareAndSetVersion { expected, new, .. } => {
                let swapped = *expected == version;
                (swapped.then(|| Some(new.clone())), Some(swapped))
            }
            other => unreachable!("the model knows data writes only, not {other:?}"),
        };
        let version = match new {
            Some(value) => {
                self.entries.insert(key, (next, value));
                next
            }
            None => version,
        };
        match swapped {
            None => WriteOutcome::Written { version },
            Some(swapped) => WriteOutcome::CompareAndSet { swapped, version },
        }
    }

    fn apply_batch(&mut self, batch: &[StoreWrite]) -> Vec<WriteOutcome> {
        batch.iter().map(|write| self.apply(write)).collect()
    }

    fn visible(&self) -> BTreeMap<Key, Value> {
        self.entries
            .iter()
            .filter_map(|(key, (_, value))| Some((key.clone(), value.clone()?)))
            .collect()
    }
}

/// A random write on a small key space, so that keys are overwritten, deleted and
/// re-created, and compare-and-sets both succeed and fail.
/// Values carry up to `padding_bytes_max` extra bytes, to make redb's pages fill up.
fn random_write(random: &mut ChaCha8Rng, model: &Model, padding_bytes_max: usize) -> StoreWrite {
    let key = key(&format!("k{}", random.random_range(0..8u8)));
    let (version, current) = model.entries.get(&key).cloned().unwrap_or_default();
    let mut new = format!("v{}", random.random_range(0..1000u16)).into_bytes();
    new.resize(new.len() + random.random_range(0..=padding_bytes_max), b'.');
    let new = Value::new(new).unwrap();
    match random.random_range(0..6u8) {
        0 | 1 => StoreWrite::Put { key, value: new },
        2 => StoreWrite::Delete { key },
        3 => {
            let expected = if random.random_bool(0.7) {
                current
            } else {
                Some(value("stale"))
            };
            StoreWrite::CompareAndSetValue { key, expected, new }
        }
        _ => {
            let expected = Version(version.0 + u64::from(random.random_bool(0.3)));
            StoreWrite::CompareAndSetVersion { key, expected, new }
        }
    }
}

fn random_batch(
    random: &mut ChaCha8Rng,
    model: &Model,
    padding_bytes_max: usize,
) -> Vec<StoreWrite> {
    let length = random.random_range(0..6);
    let mut scratch = model.clone();
    (0..length)
        .map(|_| {
            let write = random_write(random, &scratch, padding_bytes_max);
            scratch.apply(&write);
            write
        })
        .collect()
}

/// A log of batches, and the model state after each (`states[i]`: after batch `i`, where
/// batch 0 is the empty start).
struct History {
    batches: Vec<Vec<StoreWrite>>,
    states: Vec<Model>,
    outcomes: Vec<Vec<WriteOutcome>>,
}

impl History {
    fn generate(random: &mut ChaCha8Rng, length: usize) -> History {
        History::generate_padded(random, length, 0)
    }

    /// A history whose values carry up to `padding_bytes_max` extra bytes.
    fn generate_padded(
        random: &mut ChaCha8Rng,
        length: usize,
        padding_bytes_max: usize,
    ) -> History {
        let mut model = Model::default();
        let mut history = History {
            batches: vec![Vec::new()],
            states: vec![model.clone()],
            outcomes: vec![Vec::new()],
        };
        for _ in 0..length {
            let batch = random_batch(random, &model, padding_bytes_max);
            history.outcomes.push(model.apply_batch(&batch));
            history.batches.push(batch);
            history.states.push(model.clone());
        }
        history
    }

    /// Applies batches `from..to` to `store`, checking each batch's outcomes.
    fn apply(&self, store: &mut Store, from: usize, to: usize) {
        for index in from..to {
            let outcomes = store
                .apply(&self.batches[index], position(index as u64))
                .unwrap();
            assert_eq!(outcomes, self.outcomes[index], "batch {index}");
        }
    }
}

/// Turns the sessions of `transaction`'s store back into the rows of formats 2 to 4
/// (one per client in table `sessions`, no chunks, no deltas), for upgrade tests.
fn sessions_to_rows(transaction: &redb::WriteTransaction) {
    let sessions = SessionTable::load_from(transaction).unwrap().all();
    transaction.delete_table(SESSION_CHUNKS).unwrap();
    transaction.delete_table(SESSION_DELTAS).unwrap();
    let mut rows = transaction.open_table(session::SESSIONS).unwrap();
    for session in sessions {
        rows.insert(session.client.0, session.encode().as_slice())
            .unwrap();
    }
}
