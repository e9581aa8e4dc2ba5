//! Client sessions: a retried request applies once, a superseded one not at all,
//! eviction is bounded and deterministic, and sessions survive reopening and travel
//! inside snapshots.

use super::*;
use crate::store::session::{self, ClientSession, SESSION_RECORD_SIZE_MAX_BYTES};
use replikv_core::{ClientId, LogPosition, Reply, RequestId};

fn request(client: u64, sequence: u64) -> Option<RequestId> {
    Some(RequestId {
        client: ClientId(client),
        sequence,
    })
}

fn put(index: u64, request_id: Option<RequestId>, k: &str, v: &str) -> LoggedWrite {
    LoggedWrite {
        stamp_unix_ms: 0,
        index: LogIndex(index),
        request_id,
        write: StoreWrite::Put {
            key: key(k),
            value: value(v),
        },
    }
}

fn cas(index: u64, request_id: Option<RequestId>, k: &str, expected: &str) -> LoggedWrite {
    LoggedWrite {
        stamp_unix_ms: 0,
        index: LogIndex(index),
        request_id,
        write: StoreWrite::CompareAndSetValue {
            key: key(k),
            expected: Some(value(expected)),
            new: value(&format!("{expected}+")),
        },
    }
}

fn written(version: u64) -> WriteOutcome {
    WriteOutcome::Written {
        version: Version(version),
    }
}

/// Applies one logged write in its own batch at its own index.
fn apply_one(store: &mut Store, write: LoggedWrite) -> WriteOutcome {
    let at = position(write.index.0);
    store.apply_logged(&[write], at).unwrap()[0]
}

fn open_with_sessions(disk: &Disk, sessions_max: usize) -> Store {
    let options = StoreOptions {
        client_sessions_max: sessions_max,
        ..StoreOptions::default()
    };
    Store::open_with(disk, STORE_NAME, &options).unwrap()
}

#[test]
fn a_retry_gets_the_first_outcome_and_applies_nothing() {
    each_disk(|disk| {
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        assert_eq!(
            apply_one(&mut store, put(1, request(7, 1), "a", "x")),
            written(1)
        );
        // The retry, at a later index (a second entry of the same request).
        assert_eq!(
            apply_one(&mut store, put(2, request(7, 1), "a", "x")),
            written(1)
        );
        assert_eq!(store.version(&key("a")).unwrap(), Version(1));
        // A compare-and-set retried after its own success still reports the swap.
        let swapped = WriteOutcome::CompareAndSet {
            swapped: true,
            version: Version(2),
        };
        assert_eq!(
            apply_one(&mut store, cas(3, request(7, 2), "a", "x")),
            swapped
        );
        assert_eq!(
            apply_one(&mut store, cas(4, request(7, 2), "a", "x")),
            swapped
        );
        assert_eq!(
            store.get(&key("a")).unwrap(),
            Some((value("x+"), Version(2)))
        );
        // In one batch too: the second copy is answered from the first.
        let batch = [
            put(5, request(8, 1), "b", "y"),
            put(6, request(8, 1), "b", "y"),
        ];
        let outcomes = store.apply_logged(&batch, position(6)).unwrap();
        assert_eq!(outcomes, [written(1), written(1)]);
        // Writes without a request id are never deduplicated.
        let batch = [put(7, None, "c", "z"), put(8, None, "c", "z")];
        let outcomes = store.apply_logged(&batch, position(8)).unwrap();
        assert_eq!(outcomes, [written(1), written(2)]);
        let session = store.client_session(ClientId(7)).unwrap().unwrap();
        assert_eq!((session.sequence, session.index), (2, LogIndex(3)));
    });
}

#[test]
fn a_superseded_request_is_refused_as_unknown() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    apply_one(&mut store, put(1, request(3, 5), "a", "x"));
    let outcome = apply_one(&mut store, put(2, request(3, 4), "a", "old"));
    assert_eq!(outcome, WriteOutcome::Superseded { latest_sequence: 5 });
    assert_eq!(outcome.version(), None);
    let Reply::Failed(error) = outcome.into_reply(LogPosition::ZERO) else {
        panic!("a superseded request fails");
    };
    assert_eq!(error.outcome(), replikv_core::Outcome::Unknown);
    assert_eq!(
        store.get(&key("a")).unwrap(),
        Some((value("x"), Version(1)))
    );
    // The session is unchanged: the retry of request 5 is still answered.
    assert_eq!(
        apply_one(&mut store, put(3, request(3, 5), "a", "x")),
        written(1)
    );
}

#[test]
fn the_least_recently_written_client_is_evicted_and_may_apply_twice() {
    let disk = Disk::simulated();
    let mut store = open_with_sessions(&disk, 2);
    apply_one(&mut store, put(1, request(1, 1), "a", "1"));
    apply_one(&mut store, put(2, request(2, 1), "a", "2"));
    apply_one(&mut store, put(3, request(1, 2), "a", "3"));
    // Client 2 wrote least recently: the third client evicts it, not client 1.
    apply_one(&mut store, put(4, request(3, 1), "a", "4"));
    let clients: Vec<ClientId> = store
        .client_sessions()
        .unwrap()
        .iter()
        .map(|session| session.client)
        .collect();
    assert_eq!(clients, [ClientId(1), ClientId(3)]);
    // Client 1's retry is still deduplicated; client 2's, forgotten, applies again.
    assert_eq!(
        apply_one(&mut store, put(5, request(1, 2), "a", "3")),
        written(3)
    );
    assert_eq!(
        apply_one(&mut store, put(6, request(2, 1), "a", "2")),
        written(5)
    );
    assert_eq!(store.client_sessions().unwrap().len(), 2);
}

#[test]
fn sessions_survive_reopening_and_match_a_model_under_random_retries() {
    let disk = Disk::simulated();
    let mut random = ChaCha8Rng::seed_from_u64(5);
    let sessions_max = 3;
    let mut store = open_with_sessions(&disk, sessions_max);
    // The model: per client, (sequence, index, outcome); eviction by lowest index.
    let mut model: BTreeMap<u64, (u64, u64, WriteOutcome)> = BTreeMap::new();
    let mut versions = 0;
    for index in 1..=300u64 {
        let client = random.random_range(0..6u64);
        let latest = model.get(&client).map_or(0, |entry| entry.0);
        let sequence = match random.random_range(0..4u8) {
            0 if latest > 0 => latest,
            1 if latest > 1 => latest - 1,
            _ => latest + 1,
        };
        let outcome = apply_one(&mut store, put(index, request(client, sequence), "k", "v"));
        let expected = match model.get(&client) {
            Some(&(seen, _, outcome)) if seen == sequence => outcome,
            Some(&(seen, _, _)) if seen > sequence => WriteOutcome::Superseded {
                latest_sequence: seen,
            },
            _ => {
                versions += 1;
                model.insert(client, (sequence, index, written(versions)));
                if model.len() > sessions_max {
                    let oldest = *model.iter().min_by_key(|(_, entry)| entry.1).unwrap().0;
                    model.remove(&oldest);
                }
                written(versions)
            }
        };
        assert_eq!(outcome, expected, "entry {index}");
        if index % 50 == 0 {
            store.sync().unwrap();
            drop(store);
            store = open_with_sessions(&disk, sessions_max);
        }
    }
    let sessions: Vec<(u64, u64, u64, WriteOutcome)> = store
        .client_sessions()
        .unwrap()
        .iter()
        .map(|s| (s.client.0, s.sequence, s.index.0, s.outcome))
        .collect();
    let expected: Vec<(u64, u64, u64, WriteOutcome)> = model
        .iter()
        .map(|(client, (sequence, index, outcome))| (*client, *sequence, *index, *outcome))
        .collect();
    assert_eq!(sessions, expected);
}

#[test]
fn a_crash_keeps_sessions_and_data_in_step() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    apply_one(&mut store, put(1, request(1, 1), "a", "x"));
    store.sync().unwrap();
    apply_one(&mut store, put(2, request(1, 2), "a", "y"));
    drop(store);
    sim(&disk).crash(&mut ChaCha8Rng::seed_from_u64(1));
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    // Either both the write and its session survived, or neither did.
    let session = store.client_session(ClientId(1)).unwrap().unwrap();
    let version = store.version(&key("a")).unwrap();
    assert_eq!(session.sequence, version.0);
    let next = store.applied_position().index.0 + 1;
    let outcome = apply_one(&mut store, put(next, request(1, 2), "a", "y"));
    assert_eq!(outcome, written(2), "applied once, whatever the crash kept");
}

#[test]
fn sessions_travel_in_the_last_snapshot_chunk() {
    let disk = Disk::simulated();
    let mut leader = Store::open_with(
        &disk,
        "leader.redb",
        &StoreOptions {
            client_sessions_max: 2,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    for index in 1..=6u64 {
        let k = format!("k{index}");
        apply_one(&mut leader, put(index, request(index % 3, index), &k, "v"));
    }
    let snapshot = leader.snapshot().unwrap();
    let first = snapshot.read_chunk(None, 1).unwrap();
    assert!(!first.done && first.sessions.is_empty());
    let mut follower = open_with_sessions(&disk, 2);
    complete_install(&mut follower, &snapshot, 1);
    assert_eq!(
        follower.client_sessions().unwrap(),
        leader.client_sessions().unwrap()
    );
    // The installed sessions deduplicate, and their eviction order was rebuilt.
    assert_eq!(
        apply_one(&mut follower, put(7, request(0, 6), "k6", "v")),
        written(1)
    );
    apply_one(&mut follower, put(8, request(9, 1), "z", "v"));
    let clients: Vec<u64> = follower
        .client_sessions()
        .unwrap()
        .iter()
        .map(|session| session.client.0)
        .collect();
    assert_eq!(clients, [0, 9], "client 2 (index 5) was the oldest");
}

#[test]
fn malformed_sessions_in_a_chunk_are_refused() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let at = position(10);
    store.install_begin(at).unwrap();
    let session = |client: u64, index: u64| ClientSession {
        client: ClientId(client),
        sequence: 1,
        index: LogIndex(index),
        outcome: written(1),
    };
    let chunk = |sessions: Vec<ClientSession>, done: bool| SnapshotChunk {
        position: at,
        after: None,
        entries: vec![SnapshotEntry {
            expires_at_unix_ms: None,
            key: key("a"),
            version: Version(1),
            value: None,
        }],
        done,
        sessions,
        leases: Vec::new(),
        membership: None,
    };
    let superseded = ClientSession {
        outcome: WriteOutcome::Superseded { latest_sequence: 2 },
        ..session(3, 3)
    };
    let malformed = [
        ("not last", chunk(vec![session(1, 1)], false)),
        ("unordered", chunk(vec![session(2, 1), session(1, 2)], true)),
        (
            "same index",
            chunk(vec![session(1, 4), session(2, 4)], true),
        ),
        ("index zero", chunk(vec![session(1, 0)], true)),
        ("after snapshot", chunk(vec![session(1, 11)], true)),
        ("superseded", chunk(vec![superseded], true)),
    ];
    for (name, chunk) in &malformed {
        let result = store.install_chunk(chunk);
        assert!(
            matches!(result, Err(Error::InvalidInput(_))),
            "{name}: {result:?}"
        );
    }
    assert!(
        store
            .install_chunk(&chunk(vec![session(1, 2), session(2, 1)], true))
            .unwrap()
    );
    store.install_finish().unwrap();
    assert_eq!(store.client_sessions().unwrap().len(), 2);
}

#[test]
fn session_records_round_trip_and_refuse_garbage() {
    for outcome in [
        written(u64::MAX),
        WriteOutcome::CompareAndSet {
            swapped: false,
            version: Version(3),
        },
        WriteOutcome::CompareAndSet {
            swapped: true,
            version: Version(4),
        },
    ] {
        let session = ClientSession {
            client: ClientId(9),
            sequence: 12,
            index: LogIndex(40),
            outcome,
        };
        let bytes = session.encode();
        assert!(bytes.len() <= SESSION_RECORD_SIZE_MAX_BYTES);
        assert_eq!(ClientSession::decode(9, &bytes).unwrap(), session);
        for length in 0..bytes.len() {
            assert!(matches!(
                ClientSession::decode(9, &bytes[..length]),
                Err(Error::Corruption(_))
            ));
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(ClientSession::decode(9, &longer).is_err());
    }
    let mut bytes = ClientSession {
        client: ClientId(1),
        sequence: 1,
        index: LogIndex(1),
        outcome: written(1),
    }
    .encode();
    bytes[16] = 9;
    assert!(matches!(
        ClientSession::decode(1, &bytes),
        Err(Error::Corruption(_))
    ));
}

#[test]
fn the_sessions_bound_is_checked() {
    let disk = Disk::simulated();
    for sessions_max in [0, CLIENT_SESSIONS_LIMIT + 1] {
        let options = StoreOptions {
            client_sessions_max: sessions_max,
            ..StoreOptions::default()
        };
        assert!(matches!(
            Store::open_with(&disk, STORE_NAME, &options),
            Err(Error::InvalidInput(_))
        ));
    }
}

#[test]
fn a_format_2_store_is_upgraded_and_keeps_its_sessions() {
    let disk = Disk::simulated();
    let mut store = open_with_sessions(&disk, 2);
    apply_one(&mut store, put(1, request(1, 1), "a", "x"));
    apply_one(&mut store, put(2, request(2, 1), "a", "y"));
    store.sync().unwrap();
    // Turn the store back into format 2: the format record and the order table.
    let transaction = store.database.begin_write().unwrap();
    sessions_to_rows(&transaction);
    {
        let mut order = transaction.open_table(session::SESSION_ORDER).unwrap();
        order.insert(1, 1).unwrap();
        order.insert(2, 2).unwrap();
        let mut meta = transaction.open_table(META).unwrap();
        meta.insert(META_FORMAT, &FORMAT_VERSION_SESSION_ORDER.to_be_bytes()[..])
            .unwrap();
    }
    transaction.commit().unwrap();
    drop(store);

    let mut store = open_with_sessions(&disk, 2);
    let sessions = store.client_sessions().unwrap();
    assert_eq!(sessions.len(), 2);
    let read = store.database.begin_read().unwrap();
    let format = read.open_table(META).unwrap().get(META_FORMAT).unwrap();
    assert_eq!(format.unwrap().value(), &FORMAT_VERSION.to_be_bytes()[..]);
    assert!(read.open_table(session::SESSION_ORDER).is_err(), "dropped");
    drop(read);
    // Eviction still follows the log: client 1's session is the oldest.
    apply_one(&mut store, put(3, request(3, 1), "a", "z"));
    let clients: Vec<u64> = store
        .client_sessions()
        .unwrap()
        .iter()
        .map(|session| session.client.0)
        .collect();
    assert_eq!(clients, [2, 3]);
}

#[test]
fn a_store_of_an_unknown_format_is_refused() {
    let disk = Disk::simulated();
    let store = Store::open(&disk, STORE_NAME).unwrap();
    let transaction = store.database.begin_write().unwrap();
    transaction
        .open_table(META)
        .unwrap()
        .insert(META_FORMAT, &1u64.to_be_bytes()[..])
        .unwrap();
    transaction.commit().unwrap();
    drop(store);
    let error = Store::open(&disk, STORE_NAME).unwrap_err();
    assert!(matches!(error, Error::Corruption(_)), "{error}");
}
