//! Installing a snapshot: equal stores afterwards, harmless duplicates, refused garbage,
//! and crashes in the middle that resume.

use super::*;

/// A leader store with a history applied up to `index` (of `history`).
fn leader(disk: &Disk, history: &History, index: usize) -> Store {
    let mut store = Store::open(disk, "leader/store.redb").unwrap();
    history.apply(&mut store, 1, index + 1);
    store
}

/// Installs chunks of `snapshot` into `store` from its resume point to the end.
fn install_rest(store: &mut Store, snapshot: &StoreSnapshot, bytes_max: usize) {
    for _ in 0..=snapshot.len().unwrap() {
        let after = store.install_progress().unwrap().resume_after().cloned();
        let chunk = snapshot.read_chunk(after.as_ref(), bytes_max).unwrap();
        assert!(store.install_chunk(&chunk).unwrap());
        if chunk.done {
            return;
        }
    }
    panic!("install never completed");
}

#[test]
fn an_installed_snapshot_makes_equal_stores() {
    each_disk(|disk| {
        let mut random = ChaCha8Rng::seed_from_u64(21);
        let history = History::generate(&mut random, 50);
        let mut leader = leader(disk, &history, 30);
        let snapshot = leader.snapshot().unwrap();
        history.apply(&mut leader, 31, 41);

        let mut follower = Store::open(disk, STORE_NAME).unwrap();
        follower
            .apply(&[StoreWrite::Delete { key: key("old") }], position(3))
            .unwrap();
        follower.install_begin(snapshot.position()).unwrap();
        install_rest(&mut follower, &snapshot, 64);
        // Until finish, the follower still serves its old state.
        assert_eq!(follower.applied_position(), position(3));
        assert_eq!(follower.version(&key("old")).unwrap(), Version(1));
        let install = follower.install_progress().unwrap();
        assert!(install.is_complete());
        assert_eq!(
            install.entries_installed(),
            history.states[30].entries.len() as u64
        );
        follower.install_finish().unwrap();
        assert!(follower.install_progress().is_none());
        assert_eq!(follower.applied_position(), position(30));
        assert_eq!(follower.durable_applied_position(), position(30));
        assert_eq!(full_state(&mut follower), history.states[30].entries);
        // Reads no longer see what the follower wrote before (its read cache of written
        // entries held the tombstone of "old").
        let installed = history.states[30].entries.get(&key("old"));
        assert_eq!(
            follower.version(&key("old")).unwrap(),
            installed.map_or(Version(0), |(version, _)| *version)
        );

        // The follower catches up from the snapshot's position with the log.
        history.apply(&mut follower, 31, 51);
        history.apply(&mut leader, 41, 51);
        assert_eq!(full_state(&mut follower), full_state(&mut leader));
        assert_eq!(
            follower.visible_state().unwrap(),
            history.states[50].visible()
        );
    });
}

#[test]
fn duplicate_stale_and_foreign_chunks_are_ignored() {
    let disk = Disk::simulated();
    let mut random = ChaCha8Rng::seed_from_u64(22);
    let history = History::generate(&mut random, 20);
    let mut leader = leader(&disk, &history, 20);
    let snapshot = leader.snapshot().unwrap();
    let mut follower = Store::open(&disk, STORE_NAME).unwrap();
    let first = snapshot.read_chunk(None, 50).unwrap();
    assert!(!first.done);
    assert!(!follower.install_chunk(&first).unwrap(), "no install yet");
    follower.install_begin(snapshot.position()).unwrap();
    assert!(follower.install_chunk(&first).unwrap());
    assert!(!follower.install_chunk(&first).unwrap(), "duplicate");
    let second = snapshot.read_chunk(first.last_key(), 50).unwrap();
    let third = snapshot.read_chunk(second.last_key(), 50).unwrap();
    assert!(!follower.install_chunk(&third).unwrap(), "out of order");
    let mut foreign = second.clone();
    foreign.position = position(19);
    assert!(!follower.install_chunk(&foreign).unwrap(), "other snapshot");
    assert!(follower.install_chunk(&second).unwrap());
    install_rest(&mut follower, &snapshot, 50);
    let done = snapshot.read_chunk(None, usize::MAX).unwrap();
    assert!(
        !follower.install_chunk(&done).unwrap(),
        "after the last chunk"
    );
    follower.install_finish().unwrap();
    assert_eq!(full_state(&mut follower), history.states[20].entries);
}

#[test]
fn malformed_chunks_are_refused_and_change_nothing() {
    let disk = Disk::simulated();
    let mut follower = Store::open(&disk, STORE_NAME).unwrap();
    let at = position(5);
    follower.install_begin(at).unwrap();
    let entry = |k: &str, version: u64| SnapshotEntry {
        key: key(k),
        version: Version(version),
        value: Some(value("v")),
        expires_at_unix_ms: None,
    };
    let chunk = |entries: Vec<SnapshotEntry>, done| SnapshotChunk {
        position: at,
        after: None,
        entries,
        done,
        sessions: Vec::new(),
        leases: Vec::new(),
        membership: None,
    };
    let oversized = (0..5)
        .map(|n| SnapshotEntry {
            expires_at_unix_ms: None,
            key: key(&format!("k{n}")),
            version: Version(1),
            value: Some(Value::new(vec![0; replikv_core::limits::VALUE_SIZE_MAX_BYTES]).unwrap()),
        })
        .collect();
    let malformed = [
        ("unordered", chunk(vec![entry("b", 1), entry("a", 1)], true)),
        ("repeated", chunk(vec![entry("a", 1), entry("a", 2)], true)),
        ("version zero", chunk(vec![entry("a", 0)], true)),
        ("no progress", chunk(vec![], false)),
        ("oversized", chunk(oversized, false)),
    ];
    for (name, chunk) in &malformed {
        let result = follower.install_chunk(chunk);
        assert!(
            matches!(result, Err(Error::InvalidInput(_))),
            "{name}: {result:?}"
        );
        let install = follower.install_progress().unwrap();
        assert_eq!(
            (install.resume_after(), install.entries_installed()),
            (None, 0)
        );
    }
    let mut before_after = chunk(vec![entry("a", 1)], false);
    assert!(follower.install_chunk(&before_after).unwrap());
    before_after.after = Some(key("a"));
    before_after.entries = vec![entry("a", 3)];
    let result = follower.install_chunk(&before_after);
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
}

#[test]
fn installs_refuse_stale_and_incomplete_snapshots_and_can_be_aborted() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    store
        .apply(&[StoreWrite::Delete { key: key("a") }], position(10))
        .unwrap();
    for stale in [position(9), position(10)] {
        assert!(matches!(
            store.install_begin(stale),
            Err(Error::InvalidInput(_))
        ));
    }
    assert!(matches!(
        store.install_finish(),
        Err(Error::InvalidInput(_))
    ));
    store.install_begin(position(20)).unwrap();
    assert!(matches!(
        store.install_finish(),
        Err(Error::InvalidInput(_))
    ));
    let last = SnapshotChunk {
        position: position(20),
        after: None,
        entries: Vec::new(),
        done: true,
        sessions: Vec::new(),
        leases: Vec::new(),
        membership: None,
    };
    assert!(store.install_chunk(&last).unwrap());
    // Applying past the snapshot meanwhile makes it stale at finish.
    store.apply(&[], position(21)).unwrap();
    assert!(matches!(
        store.install_finish(),
        Err(Error::InvalidInput(_))
    ));
    store.install_abort().unwrap();
    assert!(store.install_progress().is_none());
    store.install_abort().unwrap();
    assert_eq!(store.version(&key("a")).unwrap(), Version(1));
    // An empty snapshot installs as an empty state.
    store.install_begin(position(30)).unwrap();
    let last = SnapshotChunk {
        position: position(30),
        ..last
    };
    assert!(store.install_chunk(&last).unwrap());
    store.install_finish().unwrap();
    assert!(full_state(&mut store).is_empty());
    assert_eq!(store.applied_position(), position(30));
}

/// A diverged replica (it applied beyond what its leader's history holds) takes the
/// leader's state even at a lower position, and the choice survives a reopening.
#[test]
fn a_replacing_install_takes_a_state_behind_the_applied_position() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let write = StoreWrite::Put {
        key: key("diverged"),
        value: Value::new(b"lost".to_vec()).unwrap(),
    };
    store.apply(&[write], position(10)).unwrap();
    assert!(matches!(
        store.install_begin(position(7)),
        Err(Error::InvalidInput(_))
    ));
    store.install_begin_replacing(position(7)).unwrap();
    store.sync().unwrap();
    drop(store);
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    assert!(store.install_progress().unwrap().is_replacing());
    let last = SnapshotChunk {
        position: position(7),
        after: None,
        entries: vec![SnapshotEntry {
            expires_at_unix_ms: None,
            key: key("kept"),
            version: Version(3),
            value: Some(Value::new(b"leader".to_vec()).unwrap()),
        }],
        done: true,
        sessions: Vec::new(),
        leases: Vec::new(),
        membership: None,
    };
    assert!(store.install_chunk(&last).unwrap());
    store.install_finish().unwrap();
    assert_eq!(store.applied_position(), position(7));
    assert_eq!(store.version(&key("diverged")).unwrap(), Version(0));
    assert_eq!(store.version(&key("kept")).unwrap(), Version(3));
}

#[test]
fn an_install_in_progress_survives_reopening() {
    each_disk(|disk| {
        let mut random = ChaCha8Rng::seed_from_u64(23);
        let history = History::generate(&mut random, 20);
        let mut leader = leader(disk, &history, 20);
        let snapshot = leader.snapshot().unwrap();
        let mut follower = Store::open(disk, STORE_NAME).unwrap();
        follower.install_begin(snapshot.position()).unwrap();
        let first = snapshot.read_chunk(None, 40).unwrap();
        assert!(follower.install_chunk(&first).unwrap());
        follower.sync().unwrap();
        drop(follower);
        let mut follower = Store::open(disk, STORE_NAME).unwrap();
        let install = follower.install_progress().unwrap();
        assert_eq!(install.position(), snapshot.position());
        assert_eq!(install.resume_after(), first.last_key());
        install_rest(&mut follower, &snapshot, 40);
        follower.install_finish().unwrap();
        assert_eq!(full_state(&mut follower), history.states[20].entries);
    });
}

/// Crash at a random point of an install (chunks synced at random), reopen, resume or
/// restart, finish: the follower ends equal to the snapshot, and before finishing it
/// always serves its old state.
#[test]
fn a_crash_in_the_middle_of_an_install_resumes() {
    let mut resumed = 0;
    let mut restarted = 0;
    for seed in 0..48 {
        let mut random = ChaCha8Rng::seed_from_u64(1000 + seed);
        let history = History::generate(&mut random, 25);
        let leader_disk = Disk::simulated();
        let mut leader = leader(&leader_disk, &history, 25);
        let snapshot = leader.snapshot().unwrap();

        let disk = Disk::simulated();
        let mut follower = Store::open(&disk, STORE_NAME).unwrap();
        history.apply(&mut follower, 1, 6);
        follower.sync().unwrap();
        follower.install_begin(snapshot.position()).unwrap();
        let mut synced_key = None;
        let chunks = random.random_range(0..6);
        for _ in 0..chunks {
            let after = follower.install_progress().unwrap().resume_after().cloned();
            let chunk = snapshot.read_chunk(after.as_ref(), 30).unwrap();
            assert!(follower.install_chunk(&chunk).unwrap());
            if random.random_bool(0.5) {
                follower.sync().unwrap();
                synced_key = Some(chunk.last_key().cloned());
            }
            if chunk.done {
                break;
            }
        }
        sim(&disk).crash(&mut ChaCha8Rng::seed_from_u64(seed));
        drop(follower);

        let mut follower = Store::open(&disk, STORE_NAME).unwrap();
        assert_eq!(follower.applied_position(), position(5), "seed {seed}");
        assert_eq!(
            full_state(&mut follower),
            history.states[5].entries,
            "seed {seed}"
        );
        match follower.install_progress() {
            Some(install) => {
                resumed += 1;
                if let Some(synced_key) = &synced_key {
                    assert!(install.resume_after() >= synced_key.as_ref(), "seed {seed}");
                }
            }
            None => {
                assert!(synced_key.is_none(), "seed {seed}: lost a synced install");
                restarted += 1;
            }
        }
        complete_install(&mut follower, &snapshot, 30);
        // finish is durable: a crash right after it keeps the new state.
        sim(&disk).crash(&mut ChaCha8Rng::seed_from_u64(seed + 1));
        drop(follower);
        let mut follower = Store::open(&disk, STORE_NAME).unwrap();
        assert_eq!(follower.applied_position(), position(25), "seed {seed}");
        assert_eq!(
            full_state(&mut follower),
            history.states[25].entries,
            "seed {seed}"
        );
        assert!(follower.install_progress().is_none());
    }
    assert!(
        resumed > 0 && restarted > 0,
        "{resumed} resumed, {restarted} restarted"
    );
}
