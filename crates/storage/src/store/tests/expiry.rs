//! Key expiry in the store: writes decided at their entry's stamp, reads judged at the
//! reader's time, the sweep's conditional delete, the expiry index (bounded, earliest
//! first, kept in step across rewrites, flushes, snapshots and installs), the upgrade of
//! a format 3 store, and the law that makes the sweep invisible: a store that swept its
//! expired keys reads exactly like one that did not.

use super::*;
use replikv_core::{ExpireCondition, Expiry};

/// A logged write at `index` with the stamp `stamp_unix_ms`.
fn at(index: u64, stamp_unix_ms: u64, write: StoreWrite) -> LoggedWrite {
    LoggedWrite {
        index: LogIndex(index),
        request_id: None,
        write,
        stamp_unix_ms,
    }
}

fn put_expiring(k: &str, v: &str, expiry: Expiry, expected: Option<u64>) -> StoreWrite {
    StoreWrite::PutWithExpiry {
        key: key(k),
        value: value(v),
        expected_version: expected.map(Version),
        expiry,
    }
}

fn expire(k: &str, expiry: Expiry, condition: ExpireCondition) -> StoreWrite {
    StoreWrite::Expire {
        key: key(k),
        expiry,
        condition,
    }
}

/// Applies one write at `index` and stamp `stamp`; returns its outcome.
fn apply(store: &mut Store, index: u64, stamp: u64, write: StoreWrite) -> WriteOutcome {
    store
        .apply_logged(&[at(index, stamp, write)], position(index))
        .unwrap()[0]
}

fn swapped(outcome: WriteOutcome) -> bool {
    matches!(outcome, WriteOutcome::CompareAndSet { swapped: true, .. })
}

#[test]
fn relative_expiry_resolves_from_the_stamp_and_reads_judge_by_their_clock() {
    each_disk(|disk| {
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        let outcome = apply(
            &mut store,
            1,
            1_000,
            put_expiring("k", "v", Expiry::AfterMs(100), None),
        );
        assert_eq!(
            outcome,
            WriteOutcome::Written {
                version: Version(1)
            }
        );
        let read = store.read_with_expiry_at(&key("k"), 1_099).unwrap();
        assert_eq!(read, (Some(value("v")), Version(1), Some(1_100)));
        // Expired at its expiry time: absent, with the version its tombstone will have.
        assert_eq!(store.read_at(&key("k"), 1_100).unwrap(), (None, Version(2)));
        // A plain put clears the expiry, as Redis's SET does.
        apply(
            &mut store,
            2,
            1_050,
            StoreWrite::Put {
                key: key("k"),
                value: value("w"),
            },
        );
        assert_eq!(
            store.read_with_expiry_at(&key("k"), u64::MAX).unwrap().2,
            None
        );
        store.sync().unwrap();
        drop(store);
        let store = Store::open(disk, STORE_NAME).unwrap();
        assert_eq!(
            store.read_at(&key("k"), u64::MAX).unwrap(),
            (Some(value("w")), Version(2))
        );
    });
}

#[test]
fn conditional_writes_judge_presence_at_the_stamp() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    apply(
        &mut store,
        1,
        1_000,
        put_expiring("k", "v", Expiry::AtUnixMs(2_000), None),
    );
    // Before the expiry the key is present at version 1...
    let cas = |expected| StoreWrite::CompareAndSetVersion {
        key: key("k"),
        expected: Version(expected),
        new: value("n"),
    };
    assert!(swapped(apply(&mut store, 2, 1_999, cas(1))));
    // ...and the compare-and-set kept its expiry (INCR keeps a TTL in Redis).
    assert_eq!(
        store.read_with_expiry_at(&key("k"), 0).unwrap().2,
        Some(2_000)
    );
    // At the expiry it is absent at version 3: a stale version no longer matches.
    assert!(!swapped(apply(&mut store, 3, 2_000, cas(2))));
    let nx = put_expiring("k", "fresh", Expiry::AfterMs(10), Some(3));
    assert!(swapped(apply(&mut store, 4, 2_000, nx)));
    let read = store.read_with_expiry_at(&key("k"), 2_005).unwrap();
    assert_eq!(read, (Some(value("fresh")), Version(4), Some(2_010)));
    // Compare-and-set on value sees the expired key as absent.
    let absent = StoreWrite::CompareAndSetValue {
        key: key("k"),
        expected: None,
        new: value("again"),
    };
    assert!(swapped(apply(&mut store, 5, 3_000, absent)));
    assert_eq!(store.read_with_expiry_at(&key("k"), 3_000).unwrap().2, None);
}

#[test]
fn expire_follows_redis_conditions_and_deletes_on_a_past_time() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let mut index = 0;
    let mut run = |store: &mut Store, stamp, write| {
        index += 1;
        apply(store, index, stamp, write)
    };
    use ExpireCondition::*;
    assert!(!swapped(run(
        &mut store,
        100,
        expire("absent", Expiry::AfterMs(5), Always)
    )));
    run(
        &mut store,
        100,
        StoreWrite::Put {
            key: key("k"),
            value: value("v"),
        },
    );
    // PERSIST of a key without expiry: nothing to do.
    assert!(!swapped(run(
        &mut store,
        100,
        expire("k", Expiry::Clear, IfSome)
    )));
    assert!(!swapped(run(
        &mut store,
        100,
        expire("k", Expiry::AfterMs(50), IfSome)
    )));
    assert!(!swapped(run(
        &mut store,
        100,
        expire("k", Expiry::AfterMs(50), IfLater)
    )));
    assert!(swapped(run(
        &mut store,
        100,
        expire("k", Expiry::AfterMs(50), IfNone)
    )));
    assert_eq!(
        store.read_with_expiry_at(&key("k"), 100).unwrap(),
        (Some(value("v")), Version(1), Some(150))
    );
    assert!(!swapped(run(
        &mut store,
        100,
        expire("k", Expiry::AfterMs(20), IfLater)
    )));
    assert!(swapped(run(
        &mut store,
        100,
        expire("k", Expiry::AfterMs(20), IfEarlier)
    )));
    assert!(swapped(run(
        &mut store,
        100,
        expire("k", Expiry::Clear, IfSome)
    )));
    assert_eq!(
        store.read_with_expiry_at(&key("k"), 10_000).unwrap(),
        (Some(value("v")), Version(1), None)
    );
    // An expiry already past deletes the key.
    let past = run(&mut store, 500, expire("k", Expiry::AtUnixMs(400), Always));
    assert_eq!(
        past,
        WriteOutcome::CompareAndSet {
            swapped: true,
            version: Version(2)
        }
    );
    assert_eq!(store.read_at(&key("k"), 0).unwrap(), (None, Version(2)));
    assert!(store.expired_keys(u64::MAX, 10).unwrap().is_empty());
}

#[test]
fn the_sweep_finds_expired_keys_in_order_and_spares_rewritten_ones() {
    each_disk(|disk| {
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        for (n, expires_at) in [(1, 300), (2, 100), (3, 200), (4, 900)] {
            let write = put_expiring(&format!("k{n}"), "v", Expiry::AtUnixMs(expires_at), None);
            apply(&mut store, n, 50, write);
        }
        apply(
            &mut store,
            5,
            50,
            StoreWrite::Put {
                key: key("forever"),
                value: value("v"),
            },
        );
        assert!(store.expired_keys(99, 10).unwrap().is_empty());
        let expired = store.expired_keys(300, 2).unwrap();
        assert_eq!(expired, vec![(key("k2"), 100), (key("k3"), 200)]);
        // Rewritten after being found: the sweep's delete leaves it alone.
        apply(
            &mut store,
            6,
            250,
            StoreWrite::Put {
                key: key("k3"),
                value: value("new"),
            },
        );
        let sweep = |k: &str, expires_at| StoreWrite::DeleteExpired {
            key: key(k),
            expires_at_unix_ms: expires_at,
        };
        let deleted = apply(&mut store, 7, 300, sweep("k2", 100));
        assert_eq!(
            deleted,
            WriteOutcome::CompareAndSet {
                swapped: true,
                version: Version(2)
            }
        );
        assert!(!swapped(apply(&mut store, 8, 300, sweep("k3", 200))));
        // Not yet expired at the sweep's own stamp: kept (a leader with a fast clock).
        assert!(!swapped(apply(&mut store, 9, 299, sweep("k1", 300))));
        assert_eq!(
            store.read_at(&key("k3"), u64::MAX).unwrap(),
            (Some(value("new")), Version(3))
        );
        store.sync().unwrap();
        assert_eq!(
            store.expired_keys(u64::MAX, 10).unwrap(),
            vec![(key("k1"), 300), (key("k4"), 900)]
        );
        assert_eq!(store.read(&key("k2")).unwrap(), (None, Version(2)));
    });
}

#[test]
fn snapshots_carry_expiry_and_installs_rebuild_the_index() {
    let disk = Disk::simulated();
    let mut leader = Store::open(&disk, "leader.redb").unwrap();
    apply(
        &mut leader,
        1,
        10,
        put_expiring("a", "v", Expiry::AtUnixMs(500), None),
    );
    apply(
        &mut leader,
        2,
        10,
        put_expiring("b", "v", Expiry::Keep, None),
    );
    let follower_disk = Disk::simulated();
    let mut follower = Store::open(&follower_disk, STORE_NAME).unwrap();
    // An expiring key of the follower's own that the snapshot replaces.
    apply(
        &mut follower,
        1,
        10,
        put_expiring("c", "v", Expiry::AtUnixMs(100), None),
    );
    follower.sync().unwrap();
    let snapshot = leader.snapshot().unwrap();
    complete_install(&mut follower, &snapshot, 16);
    let read = follower.read_with_expiry_at(&key("a"), 0).unwrap();
    assert_eq!(read, (Some(value("v")), Version(1), Some(500)));
    assert_eq!(
        follower.expired_keys(u64::MAX, 10).unwrap(),
        vec![(key("a"), 500)]
    );
}

#[test]
fn a_format_3_store_is_upgraded_in_place() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    apply(
        &mut store,
        1,
        0,
        StoreWrite::Put {
            key: key("old"),
            value: value("v"),
        },
    );
    store.sync().unwrap();
    // Turn it into what format 3 wrote: no expiry index, format 3.
    let transaction = store.database.begin_write().unwrap();
    sessions_to_rows(&transaction);
    transaction.delete_table(EXPIRY).unwrap();
    transaction
        .open_table(META)
        .unwrap()
        .insert(META_FORMAT, &FORMAT_VERSION_NO_EXPIRY.to_be_bytes()[..])
        .unwrap();
    transaction.commit().unwrap();
    drop(store);
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    assert_eq!(
        store.read_at(&key("old"), 0).unwrap(),
        (Some(value("v")), Version(1))
    );
    apply(
        &mut store,
        2,
        0,
        put_expiring("new", "v", Expiry::AtUnixMs(5), None),
    );
    assert_eq!(store.expired_keys(5, 10).unwrap(), vec![(key("new"), 5)]);
    drop(store);
    // The upgrade is durable: a format 3 record is gone for good.
    let store = Store::open(&disk, STORE_NAME).unwrap();
    let transaction = store.database.begin_read().unwrap();
    let meta = transaction.open_table(META).unwrap();
    let format = meta.get(META_FORMAT).unwrap().unwrap().value().to_vec();
    assert_eq!(format, FORMAT_VERSION.to_be_bytes());
}

/// A random data write with expiry options, on a few keys.
fn random_expiring_write(random: &mut ChaCha8Rng, stamp: u64) -> StoreWrite {
    let k = format!("k{}", random.random_range(0..4u8));
    let expiry = match random.random_range(0..4u8) {
        0 => Expiry::Clear,
        1 => Expiry::Keep,
        2 => Expiry::AfterMs(random.random_range(0..40)),
        _ => Expiry::AtUnixMs(stamp + random.random_range(0..40)),
    };
    match random.random_range(0..5u8) {
        0 => put_expiring(&k, "v", expiry, None),
        1 => put_expiring(&k, "c", expiry, Some(random.random_range(0..6))),
        2 => expire(&k, expiry, ExpireCondition::Always),
        3 => StoreWrite::CompareAndSetVersion {
            key: key(&k),
            expected: Version(random.random_range(0..6)),
            new: value("x"),
        },
        _ => StoreWrite::Delete { key: key(&k) },
    }
}

#[test]
fn sweeping_is_invisible_to_reads_and_writes() {
    for seed in 0..20 {
        let disk = Disk::simulated();
        let mut swept = Store::open(&disk, "swept.redb").unwrap();
        let mut unswept = Store::open(&disk, "unswept.redb").unwrap();
        let mut random = ChaCha8Rng::seed_from_u64(seed);
        let (mut swept_index, mut stamp) = (0, 1_000);
        for step in 0..60 {
            stamp += random.random_range(0..15);
            let write = random_expiring_write(&mut random, stamp);
            swept_index += 1;
            let a = apply(&mut swept, swept_index, stamp, write.clone());
            let b = apply(&mut unswept, step + 1, stamp, write);
            assert_eq!(a, b, "seed {seed} step {step}");
            for (k, expires_at) in swept.expired_keys(stamp, 2).unwrap() {
                swept_index += 1;
                let sweep = StoreWrite::DeleteExpired {
                    key: k,
                    expires_at_unix_ms: expires_at,
                };
                assert!(
                    swapped(apply(&mut swept, swept_index, stamp, sweep)),
                    "seed {seed}"
                );
            }
            for n in 0..4 {
                let k = key(&format!("k{n}"));
                let now = stamp + random.random_range(0..20);
                assert_eq!(
                    swept.read_with_expiry_at(&k, now).unwrap(),
                    unswept.read_with_expiry_at(&k, now).unwrap(),
                    "seed {seed} step {step} key {k}"
                );
            }
        }
    }
}
