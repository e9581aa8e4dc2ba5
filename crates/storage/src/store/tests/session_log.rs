//! The durable form of the sessions (`session_log.rs`): base chunks plus one delta per
//! commit, folded when the deltas outgrow the live sessions.
//!
//! What must hold: whatever sequence of writes, commits (durable or not), folds and
//! reopenings, the store's sessions are those of an independent model (a map from client
//! to its last sequence and log index, evicting the lowest index), and continuing to apply
//! after a reopening gives the same outcomes and sessions as a store never reopened (so
//! the eviction order survives exactly). Folds must actually happen, commits that change
//! more sessions than one delta holds must split, an older store (format 4, one row per
//! client) is upgraded in place, snapshots and installs carry the sessions whatever deltas
//! are pending, and a damaged delta is refused as corruption, never a panic. Crashes
//! between commits with folds are in `session_crash.rs`.

use super::*;
use crate::store::session_log::{self, FoldLimits, decode_batch, encode_batch};
use proptest::prelude::*;
use rand::Rng;
use replikv_core::{ClientId, RequestId};

/// A client's put at `index`, with request id (client, sequence).
fn client_put(index: u64, client: u64, sequence: u64) -> LoggedWrite {
    LoggedWrite {
        stamp_unix_ms: 0,
        index: LogIndex(index),
        request_id: Some(RequestId {
            client: ClientId(client),
            sequence,
        }),
        write: StoreWrite::Put {
            key: key(&format!("k{}", client % 5)),
            value: value(&format!("{client}.{sequence}")),
        },
    }
}

fn open_folding(disk: &Disk, sessions_max: usize, limits: FoldLimits) -> Store {
    let options = StoreOptions {
        client_sessions_max: sessions_max,
        ..StoreOptions::default()
    };
    let mut store = Store::open_with(disk, STORE_NAME, &options).unwrap();
    store.session_fold_limits = limits;
    store
}

/// The deltas the store's sessions say are stored.
fn delta_log(store: &Store) -> session_log::DeltaLog {
    store.sessions.as_ref().expect("loaded").delta_log()
}

/// An operation of the property test.
#[derive(Clone, Debug)]
enum Operation {
    /// A write of `client`: `kind` 0 retries its last request, 1 sends an older one,
    /// otherwise the next one.
    Write { client: u64, kind: u8 },
    /// Commits the open transaction, durably or not.
    Commit { durable: bool },
    /// Closes and reopens the store.
    Reopen,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => (0..12u64, 0..4u8).prop_map(|(client, kind)| Operation::Write { client, kind }),
        2 => any::<bool>().prop_map(|durable| Operation::Commit { durable }),
        1 => Just(Operation::Reopen),
    ]
}

/// The specification of the sessions: client to (sequence, index), evicting the lowest
/// index beyond `sessions_max`.
#[derive(Debug, Default)]
struct SessionModel {
    sessions: BTreeMap<u64, (u64, u64)>,
}

impl SessionModel {
    fn apply(&mut self, client: u64, sequence: u64, index: u64, sessions_max: usize) {
        if self
            .sessions
            .get(&client)
            .is_some_and(|&(latest, _)| sequence <= latest)
        {
            return;
        }
        self.sessions.insert(client, (sequence, index));
        while self.sessions.len() > sessions_max {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(_, (_, index))| *index)
                .map(|(client, _)| *client)
                .unwrap();
            self.sessions.remove(&oldest);
        }
    }

    fn matches(&self, store: &Store) -> bool {
        let stored: BTreeMap<u64, (u64, u64)> = store
            .client_sessions()
            .unwrap()
            .into_iter()
            .map(|session| (session.client.0, (session.sequence, session.index.0)))
            .collect();
        stored == self.sessions
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sessions_match_a_model_through_commits_folds_and_reopening(
        operations in proptest::collection::vec(operation(), 1..80),
        sessions_max in 1..8usize,
        deltas_max in 1..6u64,
        floor_bytes in prop_oneof![Just(0usize), Just(300)],
    ) {
        let limits = FoldLimits { deltas_max, floor_bytes };
        let disk = Disk::simulated();
        let mut store = open_folding(&disk, sessions_max, limits);
        let reference_disk = Disk::simulated();
        let mut reference = open_folding(&reference_disk, sessions_max, FoldLimits::default());
        let mut model = SessionModel::default();
        let mut sequences = [0u64; 12];
        let mut index = 0;
        for operation in operations {
            match operation {
                Operation::Write { client, kind } => {
                    let latest = sequences[client as usize];
                    let sequence = match kind {
                        0 if latest > 0 => latest,
                        1 if latest > 1 => latest - 1,
                        _ => latest + 1,
                    };
                    sequences[client as usize] = latest.max(sequence);
                    index += 1;
                    let write = [client_put(index, client, sequence)];
                    let outcomes = store.apply_logged(&write, position(index)).unwrap();
                    let expected = reference.apply_logged(&write, position(index)).unwrap();
                    prop_assert_eq!(outcomes, expected);
                    model.apply(client, sequence, index, sessions_max);
                }
                Operation::Commit { durable: true } => store.sync().unwrap(),
                Operation::Commit { durable: false } => store.flush_pending().unwrap(),
                Operation::Reopen => {
                    drop(store);
                    store = open_folding(&disk, sessions_max, limits);
                }
            }
            prop_assert!(model.matches(&store));
            prop_assert!(delta_log(&store).count <= deltas_max);
        }
        prop_assert_eq!(store.client_sessions().unwrap(), reference.client_sessions().unwrap());
    }
}

#[test]
fn sessions_survive_reopening_after_many_commits_with_folds_in_between() {
    let limits = FoldLimits {
        deltas_max: 16,
        floor_bytes: 0,
    };
    let disk = Disk::simulated();
    let mut store = open_folding(&disk, 64, limits);
    let reference_disk = Disk::simulated();
    let mut reference = open_folding(&reference_disk, 64, FoldLimits::default());
    let mut random = ChaCha8Rng::seed_from_u64(7);
    let mut sequences = vec![0u64; 200];
    let (mut folds, mut reopenings, mut index) = (0, 0, 0);
    for _ in 0..300 {
        let mut batch = Vec::new();
        for _ in 0..random.random_range(1..12) {
            let client = random.random_range(0..sequences.len());
            sequences[client] += 1;
            index += 1;
            batch.push(client_put(index, client as u64, sequences[client]));
        }
        let outcomes = store.apply_logged(&batch, position(index)).unwrap();
        let expected = reference.apply_logged(&batch, position(index)).unwrap();
        assert_eq!(outcomes, expected, "at {index}");
        let before = delta_log(&store).count;
        store.sync().unwrap();
        let after = delta_log(&store);
        assert!(after.count <= limits.deltas_max);
        folds += usize::from(after.count < before + 1);
        if random.random_bool(0.1) {
            let sessions = store.client_sessions().unwrap();
            drop(store);
            store = open_folding(&disk, 64, limits);
            reopenings += 1;
            assert_eq!(store.client_sessions().unwrap(), sessions, "at {index}");
            assert_eq!(
                delta_log(&store),
                after,
                "the deltas stored are those counted"
            );
        }
    }
    assert!(
        folds > 10 && reopenings > 10,
        "{folds} folds, {reopenings} reopenings"
    );
    assert_eq!(
        store.client_sessions().unwrap(),
        reference.client_sessions().unwrap()
    );
}

#[test]
fn a_commit_changing_more_sessions_than_a_delta_holds_writes_several() {
    let limits = FoldLimits {
        deltas_max: SESSION_DELTAS_MAX,
        floor_bytes: usize::MAX,
    };
    let disk = Disk::simulated();
    let mut store = open_folding(&disk, 1000, limits);
    let writes: Vec<LoggedWrite> = (1..=1000)
        .map(|client| client_put(client, client, 1))
        .collect();
    store.apply_logged(&writes, position(1000)).unwrap();
    store.sync().unwrap();
    assert_eq!(delta_log(&store).count, 1);
    // 4,000 new clients in one transaction evict the 1,000 first ones: 5,000 changes.
    for first in (1001..5001).step_by(1000) {
        let writes: Vec<LoggedWrite> = (first..first + 1000)
            .map(|client| client_put(client, client, 1))
            .collect();
        store.apply_logged(&writes, position(first + 999)).unwrap();
    }
    store.sync().unwrap();
    assert_eq!(
        delta_log(&store).count,
        1 + 5000_u64.div_ceil(SESSION_DELTA_ENTRIES_MAX as u64)
    );
    let sessions = store.client_sessions().unwrap();
    assert_eq!(sessions.len(), 1000);
    assert_eq!(sessions[0].client, ClientId(4001));
    drop(store);
    let store = open_folding(&disk, 1000, limits);
    assert_eq!(store.client_sessions().unwrap(), sessions);
}

#[test]
fn a_format_4_store_is_upgraded_and_keeps_its_sessions_and_their_order() {
    let disk = Disk::simulated();
    let reference_disk = Disk::simulated();
    let mut store = open_folding(&disk, 3, FoldLimits::default());
    let mut reference = open_folding(&reference_disk, 3, FoldLimits::default());
    let writes: Vec<LoggedWrite> = [(1, 5), (2, 3), (3, 4), (4, 1), (5, 2)]
        .iter()
        .map(|&(index, client)| client_put(index, client, index))
        .collect();
    store.apply_logged(&writes, position(5)).unwrap();
    reference.apply_logged(&writes, position(5)).unwrap();
    store.sync().unwrap();
    let transaction = store.database.begin_write().unwrap();
    sessions_to_rows(&transaction);
    transaction
        .open_table(META)
        .unwrap()
        .insert(META_FORMAT, &FORMAT_VERSION_SESSION_ROWS.to_be_bytes()[..])
        .unwrap();
    transaction.commit().unwrap();
    drop(store);

    let mut store = open_folding(&disk, 3, FoldLimits::default());
    assert_eq!(
        store.client_sessions().unwrap(),
        reference.client_sessions().unwrap()
    );
    let read = store.database.begin_read().unwrap();
    let format = read.open_table(META).unwrap().get(META_FORMAT).unwrap();
    assert_eq!(format.unwrap().value(), &FORMAT_VERSION.to_be_bytes()[..]);
    assert!(read.open_table(session::SESSIONS).is_err(), "rows dropped");
    drop(read);
    // The eviction order came through: the same clients go as in the reference.
    let more: Vec<LoggedWrite> = (6..12)
        .map(|index| client_put(index, index % 7, 100 + index))
        .collect();
    let outcomes = store.apply_logged(&more, position(11)).unwrap();
    assert_eq!(
        outcomes,
        reference.apply_logged(&more, position(11)).unwrap()
    );
    assert_eq!(
        store.client_sessions().unwrap(),
        reference.client_sessions().unwrap()
    );
}

#[test]
fn snapshots_and_installs_carry_the_sessions_of_base_and_deltas() {
    let limits = FoldLimits {
        deltas_max: 4,
        floor_bytes: 0,
    };
    let disk = Disk::simulated();
    let mut store = open_folding(&disk, 8, limits);
    for index in 1..=30 {
        let write = [client_put(index, index % 11, index)];
        store.apply_logged(&write, position(index)).unwrap();
        if index % 3 == 0 {
            store.sync().unwrap();
        }
        if index == 24 {
            // Folds so far; from here on deltas pile up.
            store.session_fold_limits = FoldLimits::default();
        }
    }
    assert!(
        delta_log(&store).count > 0,
        "deltas pending in the snapshot"
    );
    let sessions = store.client_sessions().unwrap();
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.client_sessions().unwrap(), sessions);

    let target_disk = Disk::simulated();
    let mut target = open_folding(&target_disk, 8, limits);
    target
        .apply_logged(&[client_put(1, 99, 1)], position(1))
        .unwrap();
    target.sync().unwrap();
    complete_install(&mut target, &snapshot, 64);
    assert_eq!(target.client_sessions().unwrap(), sessions);
    drop(target);
    let target = open_folding(&target_disk, 8, limits);
    assert_eq!(target.client_sessions().unwrap(), sessions);
    assert_eq!(delta_log(&target).count, 0, "an install leaves a base only");
}

/// Opens a store with one applied write, stores `delta(next sequence)` as a session
/// delta behind its back, and returns the error of opening it again.
fn reopen_with_delta(delta: impl FnOnce(u64) -> (u64, Vec<u8>)) -> Error {
    let disk = Disk::simulated();
    let mut store = open_folding(&disk, 8, FoldLimits::default());
    store
        .apply_logged(&[client_put(1, 1, 1)], position(1))
        .unwrap();
    store.sync().unwrap();
    let (sequence, bytes) = delta(delta_log(&store).next_sequence);
    let transaction = store.database.begin_write().unwrap();
    transaction
        .open_table(SESSION_DELTAS)
        .unwrap()
        .insert(sequence, bytes.as_slice())
        .unwrap();
    transaction.commit().unwrap();
    drop(store);
    Store::open(&disk, STORE_NAME).unwrap_err()
}

#[test]
fn a_damaged_delta_is_refused_as_corruption() {
    let error = reopen_with_delta(|_| (u64::MAX, vec![0, 0, 0, 1, 7]));
    assert!(
        matches!(&error, Error::Corruption(detail) if detail.contains("session delta")),
        "{error}"
    );
}

#[test]
fn a_session_past_the_applied_index_is_refused_as_corruption() {
    let future = ClientSession {
        client: ClientId(9),
        sequence: 1,
        index: LogIndex(1_000),
        outcome: WriteOutcome::Written {
            version: Version(1),
        },
    };
    let error = reopen_with_delta(|next| (next, encode_batch([(9, Some(&future))].into_iter())));
    assert!(
        matches!(&error, Error::Corruption(detail) if detail.contains("past the applied index")),
        "{error}"
    );
}

#[test]
fn session_batches_round_trip_and_refuse_damage() {
    let session = |client: u64| ClientSession {
        client: ClientId(client),
        sequence: 3,
        index: LogIndex(client + 10),
        outcome: WriteOutcome::Written {
            version: Version(2),
        },
    };
    let (one, two) = (session(1), session(2));
    let batch = encode_batch([(1, Some(&one)), (2, None), (5, Some(&session(5)))].into_iter());
    let decoded = decode_batch(&batch, "test", true).unwrap();
    assert_eq!(decoded, [(1, Some(one)), (2, None), (5, Some(session(5)))]);
    let valid = encode_batch([(1, Some(&one)), (2, Some(&two))].into_iter());
    let record = one.encode();
    let with_record = |client: u64, record: &[u8]| {
        let mut bytes = 1u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&client.to_be_bytes());
        bytes.push(u8::try_from(record.len()).unwrap());
        bytes.extend_from_slice(record);
        bytes
    };
    let swapped = {
        let mut bytes = 2u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(&valid[4 + 8 + 1 + record.len()..]);
        bytes.extend_from_slice(&valid[4..4 + 8 + 1 + record.len()]);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("no header", vec![0, 0], true),
        ("entry missing", 1u32.to_be_bytes().to_vec(), true),
        ("too many entries", u32::MAX.to_be_bytes().to_vec(), true),
        ("truncated", valid[..valid.len() - 1].to_vec(), true),
        ("trailing byte", [valid.as_slice(), &[0]].concat(), true),
        ("out of order", swapped, true),
        ("bad record", with_record(1, &[1, 2, 3]), true),
        ("removal in a chunk", with_record(1, &[]), false),
    ];
    for (name, bytes, removals) in cases {
        let result = decode_batch(&bytes, name, removals);
        assert!(
            matches!(result, Err(Error::Corruption(_))),
            "{name}: {result:?}"
        );
    }
    assert_eq!(decode_batch(&valid, "valid", false).unwrap().len(), 2);
}

#[test]
fn eviction_follows_the_log_after_many_rewrites_of_the_same_sessions() {
    // A few clients writing over and over leave stale entries in the in-memory eviction
    // order, dropped once they outnumber the live ones; eviction must stay exact.
    let disk = Disk::simulated();
    let mut store = open_folding(&disk, 5, FoldLimits::default());
    let mut model = SessionModel::default();
    let mut random = ChaCha8Rng::seed_from_u64(3);
    let mut sequences = [0u64; 7];
    for index in 1..=3000 {
        // Mostly clients 0 to 4, now and then 5 or 6, which evict the oldest of them.
        let client = if random.random_bool(0.95) {
            random.random_range(0..5)
        } else {
            random.random_range(5..7)
        };
        sequences[client] += 1;
        let write = [client_put(index, client as u64, sequences[client])];
        store.apply_logged(&write, position(index)).unwrap();
        model.apply(client as u64, sequences[client], index, 5);
        assert!(model.matches(&store), "after index {index}");
        let order = store.sessions.as_ref().unwrap().order_length();
        assert!(
            order <= 2 * 5 + 64 + 1,
            "{order} entries in the eviction order"
        );
        if index % 500 == 0 {
            drop(store);
            store = open_folding(&disk, 5, FoldLimits::default());
            assert!(model.matches(&store), "after reopening at {index}");
        }
    }
}
