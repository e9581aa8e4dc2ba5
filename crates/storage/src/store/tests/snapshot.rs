//! Snapshots are consistent, do not block writes, and stream in bounded chunks.

use super::*;

#[test]
fn a_snapshot_keeps_its_state_while_writes_continue() {
    each_disk(|disk| {
        let mut random = ChaCha8Rng::seed_from_u64(11);
        let history = History::generate(&mut random, 60);
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        history.apply(&mut store, 1, 31);
        let snapshot = store.snapshot().unwrap();
        assert_eq!(snapshot.position(), position(30));
        // Writes continue, and are synced, while the snapshot is held.
        history.apply(&mut store, 31, 61);
        store.sync().unwrap();
        for bytes_max in [0, 1, 40, 100, 1000] {
            assert_eq!(
                read_all(&snapshot, bytes_max),
                history.states[30].entries,
                "bytes_max {bytes_max}"
            );
        }
        assert_eq!(
            snapshot.len().unwrap(),
            history.states[30].entries.len() as u64
        );
        assert_eq!(full_state(&mut store), history.states[60].entries);
    });
}

#[test]
fn chunks_respect_the_budget_and_resume_after_any_key() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let batch: Vec<StoreWrite> = (0..50u32)
        .map(|n| StoreWrite::Put {
            key: key(&format!("key{n:03}")),
            value: Value::new(vec![b'v'; n as usize * 10]).unwrap(),
        })
        .collect();
    store.apply(&batch, position(1)).unwrap();
    let snapshot = store.snapshot().unwrap();
    let mut after = None;
    let mut chunks = 0;
    loop {
        let chunk = snapshot.read_chunk(after.as_ref(), 300).unwrap();
        chunks += 1;
        assert!(chunk.entries.len() == 1 || chunk.size_bytes() <= 300);
        // A lost chunk is read again identically.
        assert_eq!(snapshot.read_chunk(after.as_ref(), 300).unwrap(), chunk);
        if chunk.done {
            break;
        }
        after = chunk.last_key().cloned();
    }
    assert!(chunks > 10, "{chunks} chunks");
    // Resuming after a key that is not in the snapshot starts at the next one.
    let chunk = snapshot.read_chunk(Some(&key("key0105")), 1).unwrap();
    assert_eq!(chunk.entries[0].key, key("key011"));
    let chunk = snapshot.read_chunk(Some(&key("z")), 1).unwrap();
    assert!(chunk.done && chunk.entries.is_empty());
    assert_eq!(chunk.last_key(), Some(&key("z")));
}

#[test]
fn an_empty_store_snapshots_as_one_empty_chunk() {
    each_disk(|disk| {
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        let snapshot = store.snapshot().unwrap();
        assert!(snapshot.is_empty().unwrap());
        let chunk = snapshot.read_chunk(None, 100).unwrap();
        assert!(chunk.done && chunk.entries.is_empty());
        assert_eq!(chunk.position, LogPosition::ZERO);
        assert!(format!("{snapshot:?}").contains("position"));
    });
}

#[test]
fn chunk_budgets_are_capped() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let big = Value::new(vec![1; replikv_core::limits::VALUE_SIZE_MAX_BYTES]).unwrap();
    let batch: Vec<StoreWrite> = (0..6)
        .map(|n| StoreWrite::Put {
            key: key(&format!("big{n}")),
            value: big.clone(),
        })
        .collect();
    store.apply(&batch, position(1)).unwrap();
    let chunk = store
        .snapshot()
        .unwrap()
        .read_chunk(None, usize::MAX)
        .unwrap();
    assert!(!chunk.done);
    assert!(chunk.size_bytes() <= SNAPSHOT_CHUNK_SIZE_MAX_BYTES);
    assert_eq!(chunk.entries.len(), 3);
}

#[test]
fn a_snapshot_outliving_its_store_fails_cleanly() {
    each_disk(|disk| {
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        let batch: Vec<StoreWrite> = (0..200)
            .map(|n| StoreWrite::Put {
                key: key(&format!("key{n:03}")),
                value: value("v"),
            })
            .collect();
        store.apply(&batch, position(1)).unwrap();
        let snapshot = store.snapshot().unwrap();
        drop(store);
        match snapshot.read_chunk(None, usize::MAX) {
            Ok(chunk) => assert_eq!(chunk.entries.len(), 200),
            Err(error) => assert!(matches!(error, Error::Io(_)), "{error}"),
        }
    });
}
