//! Leases in the store: grants, refusals, fencing of stale tokens through the apply
//! path, deduplicated retries of lease requests, and leases travelling in snapshots.

use super::*;
use replikv_core::{ClientId, LogPosition, Reply, RequestId};

fn logged(index: u64, request: Option<(u64, u64)>, write: StoreWrite) -> LoggedWrite {
    LoggedWrite {
        stamp_unix_ms: 0,
        index: LogIndex(index),
        request_id: request.map(|(client, sequence)| RequestId {
            client: ClientId(client),
            sequence,
        }),
        write,
    }
}

fn acquire(holder: u64) -> StoreWrite {
    StoreWrite::AcquireLease {
        name: key("lock"),
        holder: ClientId(holder),
        ttl_ms: 1000,
    }
}

fn fenced_put(v: &str, token: u64) -> StoreWrite {
    StoreWrite::PutFenced {
        key: key("data"),
        value: value(v),
        lease: key("lock"),
        token,
    }
}

fn lease(granted: bool, holder: Option<u64>, token: u64) -> WriteOutcome {
    WriteOutcome::Lease {
        granted,
        holder: holder.map(ClientId),
        token,
    }
}

fn apply_at(store: &mut Store, write: LoggedWrite) -> WriteOutcome {
    let at = position(write.index.0);
    store.apply_logged(&[write], at).unwrap()[0]
}

#[test]
fn a_stale_token_is_fenced_off_after_a_new_grant() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    assert_eq!(
        apply_at(&mut store, logged(3, None, acquire(1))),
        lease(true, Some(1), 3)
    );
    assert_eq!(
        apply_at(&mut store, logged(4, None, acquire(2))),
        lease(false, Some(1), 3)
    );
    let written = WriteOutcome::Written {
        version: Version(1),
    };
    assert_eq!(
        apply_at(&mut store, logged(5, None, fenced_put("one", 3))),
        written
    );
    let expire = StoreWrite::ExpireLease {
        name: key("lock"),
        token: 3,
        renewed_at: LogIndex(3),
    };
    assert_eq!(
        apply_at(&mut store, logged(6, None, expire)),
        lease(true, None, 3)
    );
    // The old holder may still write while nobody has a newer token...
    assert!(matches!(
        apply_at(&mut store, logged(7, None, fenced_put("one-late", 3))),
        WriteOutcome::Written { .. }
    ));
    // ...but not once a new grant exists: its token is strictly larger.
    assert_eq!(
        apply_at(&mut store, logged(8, None, acquire(2))),
        lease(true, Some(2), 8)
    );
    let stale = apply_at(&mut store, logged(9, None, fenced_put("one-stale", 3)));
    assert_eq!(stale, WriteOutcome::Fenced { latest_token: 8 });
    let Reply::Failed(error) = stale.into_reply(LogPosition::ZERO) else {
        panic!("a fenced write fails");
    };
    assert_eq!(error.outcome(), replikv_core::Outcome::Failed);
    assert_eq!(
        store.get(&key("data")).unwrap(),
        Some((value("one-late"), Version(2)))
    );
    let delete = StoreWrite::DeleteFenced {
        key: key("data"),
        lease: key("lock"),
        token: 8,
    };
    assert!(matches!(
        apply_at(&mut store, logged(10, None, delete)),
        WriteOutcome::Written { .. }
    ));
    // A token of a lease never granted fences everything.
    let unknown = StoreWrite::PutFenced {
        key: key("data"),
        value: value("x"),
        lease: key("other"),
        token: 0,
    };
    assert_eq!(
        apply_at(&mut store, logged(11, None, unknown)),
        WriteOutcome::Fenced { latest_token: 0 }
    );
    let record = store.lease(&key("lock")).unwrap().unwrap();
    assert_eq!(
        (record.holder, record.token, record.active),
        (ClientId(2), 8, true)
    );
}

#[test]
fn a_retried_acquire_gets_its_first_answer() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let first = apply_at(&mut store, logged(1, Some((7, 1)), acquire(7)));
    assert_eq!(first, lease(true, Some(7), 1));
    let release = StoreWrite::ReleaseLease {
        name: key("lock"),
        holder: ClientId(7),
        token: 1,
    };
    assert_eq!(
        apply_at(&mut store, logged(2, Some((7, 2)), release.clone())),
        lease(true, None, 1)
    );
    // The release retried: its stored answer, not a refusal for a lease no longer held.
    assert_eq!(
        apply_at(&mut store, logged(3, Some((7, 2)), release)),
        lease(true, None, 1)
    );
    // Sessions keep lease and fencing outcomes across a reopen.
    apply_at(&mut store, logged(4, Some((8, 1)), fenced_put("x", 99)));
    store.sync().unwrap();
    drop(store);
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    assert_eq!(
        apply_at(&mut store, logged(5, Some((8, 1)), fenced_put("x", 99))),
        WriteOutcome::Fenced { latest_token: 1 }
    );
}

#[test]
fn leases_travel_in_the_last_snapshot_chunk() {
    let disk = Disk::simulated();
    let mut leader = Store::open(&disk, "leader.redb").unwrap();
    apply_at(&mut leader, logged(1, None, acquire(1)));
    apply_at(&mut leader, logged(2, None, fenced_put("v", 1)));
    let other = StoreWrite::AcquireLease {
        name: key("another"),
        holder: ClientId(3),
        ttl_ms: 5,
    };
    apply_at(&mut leader, logged(3, None, other));
    let snapshot = leader.snapshot().unwrap();
    let mut follower = Store::open(&disk, STORE_NAME).unwrap();
    complete_install(&mut follower, &snapshot, 1);
    assert_eq!(follower.leases().unwrap(), leader.leases().unwrap());
    assert_eq!(follower.leases().unwrap().len(), 2);
    // The follower fences exactly as the leader does.
    assert_eq!(
        apply_at(&mut follower, logged(4, None, acquire(2))),
        lease(false, Some(1), 1)
    );
    // A chunk that is not the last may not carry leases.
    let mut chunk = snapshot
        .read_chunk(None, SNAPSHOT_CHUNK_SIZE_MAX_BYTES)
        .unwrap();
    chunk.done = false;
    follower.install_begin(position(50)).unwrap();
    chunk.position = position(50);
    assert!(matches!(
        follower.install_chunk(&chunk),
        Err(Error::InvalidInput(_))
    ));
}
