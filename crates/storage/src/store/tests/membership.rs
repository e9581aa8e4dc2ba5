//! The configuration a store carries: applied with its entry, durable with the applied
//! position, carried by a snapshot and replaced by an install, across reopens and crashes.

use super::*;
use replikv_core::NodeId;

fn membership(voters: &[u64], learners: &[u64]) -> Membership {
    let ids = |list: &[u64]| list.iter().copied().map(NodeId).collect();
    Membership::new(ids(voters), ids(learners)).unwrap()
}

fn put(k: &str) -> LoggedWrite {
    LoggedWrite {
        stamp_unix_ms: 0,
        index: LogIndex(0),
        request_id: None,
        write: StoreWrite::Put {
            key: key(k),
            value: value("v"),
        },
    }
}

#[test]
fn membership_is_applied_with_its_position_and_survives_a_reopen() {
    each_disk(|disk| {
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        assert_eq!(store.membership(), None);
        let first = membership(&[1, 2, 3], &[4]);
        let write = LoggedWrite {
            index: LogIndex(1),
            ..put("a")
        };
        store
            .apply_logged_with_membership(&[write], position(2), Some(&first))
            .unwrap();
        assert_eq!(store.membership(), Some(&first));
        // A batch without a configuration entry keeps the configuration.
        store.apply_logged(&[], position(3)).unwrap();
        assert_eq!(store.membership(), Some(&first));
        store.sync().unwrap();
        drop(store);
        let store = Store::open(disk, STORE_NAME).unwrap();
        assert_eq!(store.membership(), Some(&first));
        assert_eq!(store.applied_position(), position(3));
    });
}

#[test]
fn a_crash_keeps_the_membership_and_the_applied_position_together() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let synced = membership(&[1, 2, 3], &[]);
    store
        .apply_logged_with_membership(&[], position(1), Some(&synced))
        .unwrap();
    store.sync().unwrap();
    let unsynced = membership(&[1, 2, 3], &[5]);
    store
        .apply_logged_with_membership(&[], position(2), Some(&unsynced))
        .unwrap();
    drop(store);
    sim(&disk).crash(&mut ChaCha8Rng::seed_from_u64(7));
    let store = Store::open(&disk, STORE_NAME).unwrap();
    let expected = if store.applied_position() == position(2) {
        &unsynced
    } else {
        &synced
    };
    assert_eq!(store.membership(), Some(expected));
}

#[test]
fn an_invalid_membership_is_refused_and_applies_nothing() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let both = Membership {
        voters: vec![NodeId(1)],
        learners: vec![NodeId(1)],
    };
    let result = store.apply_logged_with_membership(&[], position(1), Some(&both));
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    assert_eq!(store.applied_position(), LogPosition::ZERO);
    assert_eq!(store.membership(), None);
}

#[test]
fn a_snapshot_carries_the_membership_and_an_install_replaces_it() {
    let leader_disk = Disk::simulated();
    let mut leader = Store::open(&leader_disk, STORE_NAME).unwrap();
    let carried = membership(&[1, 2, 3, 4], &[5]);
    let write = LoggedWrite {
        index: LogIndex(4),
        ..put("a")
    };
    leader
        .apply_logged_with_membership(&[write], position(5), Some(&carried))
        .unwrap();
    let snapshot = leader.snapshot().unwrap();
    assert_eq!(snapshot.membership(), Some(&carried));
    let chunk = snapshot.read_chunk(None, 1).unwrap();
    assert!(chunk.done);
    assert_eq!(chunk.membership.as_ref(), Some(&carried));

    let follower_disk = Disk::simulated();
    let mut follower = Store::open(&follower_disk, STORE_NAME).unwrap();
    let old = membership(&[1, 2, 3], &[]);
    follower
        .apply_logged_with_membership(&[], position(1), Some(&old))
        .unwrap();
    follower.install_begin(chunk.position).unwrap();
    assert!(follower.install_chunk(&chunk).unwrap());
    assert_eq!(follower.membership(), Some(&old), "staged until the finish");
    follower.install_finish().unwrap();
    assert_eq!(follower.membership(), Some(&carried));
    drop(follower);
    let follower = Store::open(&follower_disk, STORE_NAME).unwrap();
    assert_eq!(follower.membership(), Some(&carried));

    // A snapshot without a configuration leaves none behind.
    let empty_disk = Disk::simulated();
    let mut empty = Store::open(&empty_disk, STORE_NAME).unwrap();
    let mut bare = empty.snapshot().unwrap().read_chunk(None, 1).unwrap();
    bare.position = position(9);
    let mut follower = Store::open(&follower_disk, STORE_NAME).unwrap();
    follower.install_begin(bare.position).unwrap();
    assert!(follower.install_chunk(&bare).unwrap());
    follower.install_finish().unwrap();
    assert_eq!(follower.membership(), None);
}

#[test]
fn a_chunk_with_an_invalid_membership_is_refused() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    store.install_begin(position(3)).unwrap();
    let chunk = SnapshotChunk {
        position: position(3),
        after: None,
        entries: Vec::new(),
        done: true,
        sessions: Vec::new(),
        leases: Vec::new(),
        membership: Some(Membership {
            voters: Vec::new(),
            learners: vec![NodeId(2)],
        }),
    };
    let result = store.install_chunk(&chunk);
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
}
