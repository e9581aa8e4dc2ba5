//! Apply, read, version, compare-and-set and delete semantics, limits, reopening.

use super::*;
use proptest::prelude::{ProptestConfig, any, prop_assert_eq, proptest};
use replikv_core::Reply;

fn put(k: &str, v: &str) -> StoreWrite {
    StoreWrite::Put {
        key: key(k),
        value: value(v),
    }
}

fn delete(k: &str) -> StoreWrite {
    StoreWrite::Delete { key: key(k) }
}

fn written(version: u64) -> WriteOutcome {
    WriteOutcome::Written {
        version: Version(version),
    }
}

fn cas(swapped: bool, version: u64) -> WriteOutcome {
    WriteOutcome::CompareAndSet {
        swapped,
        version: Version(version),
    }
}

/// The semantics table. Columns: name | writes applied first (`;`-separated) | the write
/// under test | its outcome | what key `k` reads afterwards (value or `-`, version).
/// Writes: `put K V`, `delete K`, `cas-value K EXPECTED|- NEW`, `cas-version K N NEW`.
/// Outcomes: `written N`, `swapped N`, `kept N` (compare-and-set that did not swap).
const CASES: &str = "
put new key                        |                        | put k a             | written 1 | a 1
put overwrites                     | put k a                | put k b             | written 2 | b 2
delete absent leaves a tombstone   |                        | delete k            | written 1 | - 1
delete present                     | put k a                | delete k            | written 2 | - 2
delete twice                       | put k a; delete k      | delete k            | written 3 | - 3
re-create continues the version    | put k a; delete k      | put k b             | written 3 | b 3
cas value absent on absent         |                        | cas-value k - a     | swapped 1 | a 1
cas value absent on present        | put k a                | cas-value k - b     | kept 1    | a 1
cas value match                    | put k a                | cas-value k a b     | swapped 2 | b 2
cas value mismatch                 | put k a                | cas-value k x b     | kept 1    | a 1
cas value on never written         |                        | cas-value k a b     | kept 0    | - 0
cas value absent on tombstone      | put k a; delete k      | cas-value k - b     | swapped 3 | b 3
cas value old value on tombstone   | put k a; delete k      | cas-value k a b     | kept 2    | - 2
cas version 0 on never written     |                        | cas-version k 0 a   | swapped 1 | a 1
cas version 0 on tombstone         | put k a; delete k      | cas-version k 0 b   | kept 2    | - 2
cas version of tombstone           | put k a; delete k      | cas-version k 2 b   | swapped 3 | b 3
cas version current                | put k a; put k b       | cas-version k 2 c   | swapped 3 | c 3
cas version stale across re-create | put k a; delete k; put k a | cas-version k 1 b | kept 3  | a 3
cas version ahead                  | put k a                | cas-version k 2 b   | kept 1    | a 1
other keys are independent         | put j a; put j b       | put k c             | written 1 | c 1
";

/// One row of [`CASES`].
struct Case {
    name: String,
    setup: Vec<StoreWrite>,
    write: StoreWrite,
    outcome: WriteOutcome,
    read: (Option<Value>, Version),
}

fn cases() -> Vec<Case> {
    let cases: Vec<Case> = CASES
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let columns: Vec<&str> = line.split('|').map(str::trim).collect();
            let [name, setup, write, outcome, read] = columns[..] else {
                panic!("malformed case {line:?}");
            };
            Case {
                name: name.to_owned(),
                setup: setup
                    .split(';')
                    .filter(|w| !w.trim().is_empty())
                    .map(parse_write)
                    .collect(),
                write: parse_write(write),
                outcome: parse_outcome(outcome),
                read: parse_read(read),
            }
        })
        .collect();
    assert_eq!(cases.len(), 20);
    cases
}

fn parse_write(text: &str) -> StoreWrite {
    let words: Vec<&str> = text.split_whitespace().collect();
    let optional = |word: &str| (word != "-").then(|| value(word));
    match words[..] {
        ["put", k, v] => put(k, v),
        ["delete", k] => delete(k),
        ["cas-value", k, expected, new] => StoreWrite::CompareAndSetValue {
            key: key(k),
            expected: optional(expected),
            new: value(new),
        },
        ["cas-version", k, expected, new] => StoreWrite::CompareAndSetVersion {
            key: key(k),
            expected: Version(expected.parse().unwrap()),
            new: value(new),
        },
        _ => panic!("malformed write {text:?}"),
    }
}

fn parse_outcome(text: &str) -> WriteOutcome {
    let (kind, version) = text.split_once(' ').unwrap();
    let version = version.trim().parse().unwrap();
    match kind {
        "written" => written(version),
        "swapped" => cas(true, version),
        "kept" => cas(false, version),
        _ => panic!("malformed outcome {text:?}"),
    }
}

fn parse_read(text: &str) -> (Option<Value>, Version) {
    let (read, version) = text.split_once(' ').unwrap();
    let read = (read != "-").then(|| value(read));
    (read, Version(version.trim().parse().unwrap()))
}

fn check_read(store: &Store, case: &Case) {
    let (value, version) = case.read.clone();
    let k = key("k");
    let name = &case.name;
    assert_eq!(store.read(&k).unwrap(), (value.clone(), version), "{name}");
    assert_eq!(store.version(&k).unwrap(), version, "{name}");
    assert_eq!(
        store.get(&k).unwrap(),
        value.map(|v| (v, version)),
        "{name}"
    );
}

#[test]
fn semantics_table_in_separate_batches() {
    each_disk(|disk| {
        for (number, case) in cases().iter().enumerate() {
            let name = format!("{STORE_NAME}.{number}");
            let mut store = Store::open(disk, &name).unwrap();
            store.apply(&case.setup, position(1)).unwrap();
            let outcomes = store
                .apply(std::slice::from_ref(&case.write), position(2))
                .unwrap();
            assert_eq!(outcomes, [case.outcome], "{}", case.name);
            check_read(&store, case);
            // The model agrees with every case, so the crash tests' oracle is the same spec.
            let mut model = Model::default();
            model.apply_batch(&case.setup);
            assert_eq!(
                model.apply(&case.write),
                case.outcome,
                "model: {}",
                case.name
            );
        }
    });
}

#[test]
fn semantics_table_in_one_batch_sees_earlier_writes_of_the_batch() {
    let disk = Disk::simulated();
    for (number, case) in cases().iter().enumerate() {
        let mut store = Store::open(&disk, &format!("{STORE_NAME}.{number}")).unwrap();
        let mut batch = case.setup.clone();
        batch.push(case.write.clone());
        let outcomes = store.apply(&batch, position(1)).unwrap();
        assert_eq!(outcomes.len(), batch.len());
        assert_eq!(outcomes.last(), Some(&case.outcome), "{}", case.name);
        check_read(&store, case);
    }
}

#[test]
fn outcomes_become_replies() {
    assert_eq!(
        written(4).into_reply(position(3)),
        Reply::Written {
            version: Version(4),
            position: position(3)
        }
    );
    assert_eq!(
        cas(false, 2).into_reply(position(5)),
        Reply::CompareAndSet {
            swapped: false,
            version: Version(2),
            position: position(5)
        }
    );
    assert_eq!(cas(true, 9).version(), Some(Version(9)));
}

#[test]
fn a_new_store_is_empty_at_position_zero() {
    each_disk(|disk| {
        let store = Store::open(disk, STORE_NAME).unwrap();
        assert_eq!(store.applied_position(), LogPosition::ZERO);
        assert_eq!(store.durable_applied_position(), LogPosition::ZERO);
        assert_eq!(store.get(&key("k")).unwrap(), None);
        assert_eq!(store.version(&key("k")).unwrap(), Version(0));
        assert!(store.visible_state().unwrap().is_empty());
        assert!(store.install_progress().is_none());
        assert_eq!(store.name(), STORE_NAME);
    });
}

#[test]
fn reopening_keeps_state_positions_and_versions() {
    each_disk(|disk| {
        let mut random = ChaCha8Rng::seed_from_u64(1);
        let history = History::generate(&mut random, 30);
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        history.apply(&mut store, 1, 31);
        assert_eq!(store.durable_applied_position(), LogPosition::ZERO);
        store.sync().unwrap();
        assert_eq!(store.durable_applied_position(), position(30));
        drop(store);
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        assert_eq!(store.applied_position(), position(30));
        assert_eq!(store.durable_applied_position(), position(30));
        assert_eq!(full_state(&mut store), history.states[30].entries);
        assert_eq!(store.visible_state().unwrap(), history.states[30].visible());
        // And it keeps working.
        store.apply(&[put("k0", "after")], position(31)).unwrap();
        assert_eq!(store.get(&key("k0")).unwrap().unwrap().0, value("after"));
    });
}

#[test]
fn dropping_without_sync_keeps_a_consistent_prefix() {
    // A clean drop is not a sync: whatever reopens must still be a state of the history.
    each_disk(|disk| {
        let mut random = ChaCha8Rng::seed_from_u64(2);
        let history = History::generate(&mut random, 12);
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        history.apply(&mut store, 1, 6);
        store.sync().unwrap();
        history.apply(&mut store, 6, 13);
        drop(store);
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        let index = store.applied_position().index.0 as usize;
        assert!(index >= 5, "lost synced state: {index}");
        assert_eq!(full_state(&mut store), history.states[index].entries);
        assert_eq!(store.durable_applied_position(), store.applied_position());
    });
}

#[test]
fn sync_without_changes_does_not_touch_the_disk() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    store.apply(&[put("a", "1")], position(1)).unwrap();
    store.sync().unwrap();
    let syncs = sim(&disk).sync_count();
    store.sync().unwrap();
    assert_eq!(sim(&disk).sync_count(), syncs);
    store.apply(&[], position(2)).unwrap();
    store.sync().unwrap();
    assert!(sim(&disk).sync_count() > syncs);
    assert_eq!(store.durable_applied_position(), position(2));
}

#[test]
#[should_panic(expected = "applied position must increase")]
fn applying_a_position_twice_is_a_bug() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    store.apply(&[put("a", "1")], position(3)).unwrap();
    let _ = store.apply(&[put("a", "2")], position(3));
}

#[test]
fn oversized_batches_are_refused_whole() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let too_many = vec![put("a", "1"); APPLY_BATCH_WRITES_MAX + 1];
    let error = store.apply(&too_many, position(1)).unwrap_err();
    assert!(matches!(error, Error::InvalidInput(_)), "{error}");
    let big = Value::new(vec![7; replikv_core::limits::VALUE_SIZE_MAX_BYTES]).unwrap();
    let too_big: Vec<StoreWrite> = (0..APPLY_BATCH_SIZE_MAX_BYTES / big.as_bytes().len() + 1)
        .map(|n| StoreWrite::Put {
            key: key(&format!("big{n}")),
            value: big.clone(),
        })
        .collect();
    let error = store.apply(&too_big, position(1)).unwrap_err();
    assert!(matches!(error, Error::InvalidInput(_)), "{error}");
    assert_eq!(store.applied_position(), LogPosition::ZERO);
    assert!(store.visible_state().unwrap().is_empty());
    // The largest key and value are accepted.
    let largest = StoreWrite::Put {
        key: Key::new(vec![b'k'; replikv_core::limits::KEY_SIZE_MAX_BYTES]).unwrap(),
        value: big.clone(),
    };
    store
        .apply(std::slice::from_ref(&largest), position(1))
        .unwrap();
    assert_eq!(store.get(largest.key()).unwrap(), Some((big, Version(1))));
}

#[test]
fn a_leftover_creation_is_discarded() {
    let disk = Disk::simulated();
    disk.open(&format!("{STORE_NAME}.creating"))
        .unwrap()
        .write_all_at(0, b"half a database")
        .unwrap();
    let store = Store::open(&disk, STORE_NAME).unwrap();
    assert_eq!(store.applied_position(), LogPosition::ZERO);
    assert!(!disk.exists(&format!("{STORE_NAME}.creating")).unwrap());
}

#[test]
fn damaged_files_are_refused_or_read_correctly_never_misread() {
    let disk = Disk::simulated();
    let mut random = ChaCha8Rng::seed_from_u64(3);
    let history = History::generate_padded(&mut random, 20, 500);
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    history.apply(&mut store, 1, 21);
    store.sync().unwrap();
    drop(store);
    // Flip bits in every 512-byte block that holds anything: every page redb wrote.
    let file = disk.open(STORE_NAME).unwrap();
    let mut bytes = vec![0; usize::try_from(file.len().unwrap()).unwrap()];
    file.read_exact_at(0, &mut bytes).unwrap();
    let (mut refused, mut accepted) = (0, 0);
    for (block, content) in bytes.chunks(512).enumerate() {
        let used: Vec<usize> = (0..content.len()).filter(|&i| content[i] != 0).collect();
        for _ in 0..4.min(used.len()) {
            let offset = (block * 512 + used[random.random_range(0..used.len())]) as u64;
            let bit = random.random_range(0..8);
            let copy = copy_disk(&disk);
            sim(&copy).corrupt_bit(STORE_NAME, offset, bit).unwrap();
            let context = format!("bit {bit} at {offset}");
            match Store::open(&copy, STORE_NAME) {
                Ok(mut store) => {
                    accepted += 1;
                    assert_eq!(store.applied_position(), position(20), "{context}");
                    assert_eq!(
                        full_state(&mut store),
                        history.states[20].entries,
                        "{context}"
                    );
                }
                Err(error) => {
                    refused += 1;
                    let detected = matches!(error, Error::Corruption(_) | Error::Io(_));
                    assert!(detected, "{context}: {error}");
                }
            }
        }
    }
    // Most flips land in free or superseded pages and are harmless; many must be caught.
    assert!(
        refused > 20 && accepted > 0,
        "{refused} refused, {accepted} accepted"
    );
}

/// A simulated disk holding a copy of `disk`'s store file (synced).
fn copy_disk(disk: &Disk) -> Disk {
    let source = disk.open(STORE_NAME).unwrap();
    let mut bytes = vec![0; usize::try_from(source.len().unwrap()).unwrap()];
    source.read_exact_at(0, &mut bytes).unwrap();
    let copy = Disk::simulated();
    let file = copy.open(STORE_NAME).unwrap();
    file.write_all_at(0, &bytes).unwrap();
    file.sync_data().unwrap();
    copy.sync_directory("state").unwrap();
    copy
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any sequence of batches: every outcome and the final state match the model.
    #[test]
    fn store_matches_the_model(seed in any::<u64>(), length in 1usize..40) {
        let history = History::generate(&mut ChaCha8Rng::seed_from_u64(seed), length);
        let disk = Disk::simulated();
        let mut store = Store::open(&disk, STORE_NAME).unwrap();
        history.apply(&mut store, 1, length + 1);
        prop_assert_eq!(full_state(&mut store), history.states[length].entries.clone());
        prop_assert_eq!(store.visible_state().unwrap(), history.states[length].visible());
        for (k, (version, value)) in &history.states[length].entries {
            prop_assert_eq!(store.read(k).unwrap(), (value.clone(), *version));
        }
    }
}

/// A history's batch `number` as logged writes: write `i` at index `10 * number + i`, the
/// batch applied at `10 * number + 9`.
fn logged_batch(history: &History, number: usize) -> (Vec<LoggedWrite>, LogPosition) {
    let first = 10 * number as u64;
    let batch = history.batches[number]
        .iter()
        .zip(first..)
        .map(|(write, index)| LoggedWrite {
            index: LogIndex(index),
            request_id: None,
            write: write.clone(),
            stamp_unix_ms: 0,
        })
        .collect();
    (batch, position(first + 9))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The batch moved into the store (`apply_logged_owned`) and the batch lent to it
    /// (`apply_logged`) decide the same outcomes, the model's, and leave the same state,
    /// across syncs and a reopening.
    #[test]
    fn owned_and_borrowed_batches_apply_alike(seed in any::<u64>(), length in 1usize..40) {
        let history = History::generate(&mut ChaCha8Rng::seed_from_u64(seed), length);
        let disk = Disk::simulated();
        let mut owned = Store::open(&disk, STORE_NAME).unwrap();
        let mut borrowed = Store::open(&disk, &format!("{STORE_NAME}.borrowed")).unwrap();
        for number in 1..=length {
            let (batch, applied) = logged_batch(&history, number);
            let lent = borrowed.apply_logged(&batch, applied).unwrap();
            let moved = owned.apply_logged_owned(batch, applied, None).unwrap();
            prop_assert_eq!(&moved, &history.outcomes[number]);
            prop_assert_eq!(&lent, &history.outcomes[number]);
            if number % 7 == 0 {
                owned.sync().unwrap();
            }
        }
        owned.sync().unwrap();
        drop(owned);
        let mut owned = Store::open(&disk, STORE_NAME).unwrap();
        let expected = history.states[length].entries.clone();
        prop_assert_eq!(full_state(&mut owned), expected.clone());
        prop_assert_eq!(full_state(&mut borrowed), expected);
    }
}

/// Applies stay in one open write transaction across calls (committed when it would
/// outgrow its limits, or before a snapshot, sync or install): reads see them at
/// once, a snapshot sees them, and a store closed without a crash keeps them.
#[test]
fn applies_are_visible_before_their_transaction_commits() {
    each_disk(|disk| {
        let name = key("counter");
        let writes = OPEN_TRANSACTION_WRITES_MAX as u64 + 50;
        let mut store = Store::open(disk, STORE_NAME).unwrap();
        for index in 1..=writes {
            let put = StoreWrite::Put {
                key: name.clone(),
                value: value(&index.to_string()),
            };
            store.apply(&[put], position(index)).unwrap();
            let expected = Some((value(&index.to_string()), Version(index)));
            assert_eq!(store.get(&name).unwrap(), expected, "after {index}");
            if index == 100 {
                let snapshot = store.snapshot().unwrap();
                assert_eq!(snapshot.position(), position(100));
                assert_eq!(snapshot.len().unwrap(), 1);
            }
        }
        assert!(store.durable_applied_position() < position(writes));
        drop(store);
        let store = Store::open(disk, STORE_NAME).unwrap();
        assert_eq!(store.applied_position(), position(writes));
        assert_eq!(store.version(&name).unwrap(), Version(writes));
    });
}

/// The open transaction holds up to the bound its owner sets (clamped to
/// `APPLY_BATCH_WRITES_MAX..=OPEN_TRANSACTION_WRITES_MAX`) before a non-durable commit.
#[test]
fn the_open_transaction_holds_as_many_writes_as_its_owner_allows() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let batch = |first: u64| -> Vec<StoreWrite> {
        (first..first + 1024)
            .map(|number| put(&format!("k{}", number % 100), "v"))
            .collect()
    };
    let held = |store: &Store| store.pending.as_ref().map_or(0, |pending| pending.writes);
    for round in 0..6u64 {
        store
            .apply(&batch(round * 1024), position(round + 1))
            .unwrap();
    }
    assert_eq!(
        held(&store),
        2048,
        "the default bound: committed after 4,096"
    );
    store.set_open_transaction_writes_max(1_000_000);
    for round in 6..21u64 {
        store
            .apply(&batch(round * 1024), position(round + 1))
            .unwrap();
    }
    // 2,048 + 15 batches of 1,024 is one batch past the maximum of 16,384.
    assert_eq!(held(&store), 1024, "clamped to the maximum");
    store.set_open_transaction_writes_max(1);
    store.apply(&batch(21 * 1024), position(22)).unwrap();
    store.apply(&batch(22 * 1024), position(23)).unwrap();
    store.apply(&batch(23 * 1024), position(24)).unwrap();
    assert_eq!(held(&store), 4096, "clamped to one batch's limit");
    store.apply(&batch(24 * 1024), position(25)).unwrap();
    assert_eq!(held(&store), 1024, "committed first");
}

/// What the last durable commit wrote: a few pages for one key rewritten many times, at
/// least the values themselves for many keys with page-sized values.
#[test]
fn the_size_of_the_last_durable_commit_follows_the_pages_it_changed() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    for index in 1..=1000 {
        store.apply(&[put("hot", "v")], position(index)).unwrap();
    }
    store.sync().unwrap();
    let hot_bytes = store.last_durable_commit_size_bytes();
    assert!(
        (1..=64 * 4096).contains(&hot_bytes),
        "one key, a few pages: {hot_bytes}"
    );
    let page_sized = "v".repeat(4096);
    for index in 1001..=1200 {
        let write = put(&format!("k{index}"), &page_sized);
        store.apply(&[write], position(index)).unwrap();
    }
    store.sync().unwrap();
    let scattered_bytes = store.last_durable_commit_size_bytes();
    assert!(
        scattered_bytes >= 200 * 4096,
        "200 page-sized values: {scattered_bytes}"
    );
    store.sync().unwrap();
    assert_eq!(
        store.last_durable_commit_size_bytes(),
        0,
        "nothing to commit"
    );
}

#[test]
fn the_write_buffer_is_flushed_into_the_open_transaction_beyond_its_bound() {
    let disk = Disk::simulated();
    let mut store = Store::open(&disk, STORE_NAME).unwrap();
    let big = Value::new(vec![7u8; 512 * 1024]).unwrap();
    let mut most_buffered = 0;
    for batch in 1..=12u64 {
        let writes: Vec<StoreWrite> = (0..2)
            .map(|i| StoreWrite::Put {
                key: key(&format!("k{}", (batch * 2 + i) % 9)),
                value: big.clone(),
            })
            .collect();
        store.apply(&writes, position(batch)).unwrap();
        most_buffered = most_buffered.max(store.buffer.size_bytes());
        assert!(store.buffer.size_bytes() <= WRITE_BUFFER_SIZE_MAX_BYTES);
        assert!(store.pending.is_some(), "the transaction stays open");
        if batch == 6 {
            store.sync().unwrap();
        }
    }
    assert!(
        most_buffered > WRITE_BUFFER_SIZE_MAX_BYTES / 2,
        "{most_buffered}"
    );
    // Every key written is visible, whether in the buffer or already in the transaction.
    let expected: BTreeMap<Key, Value> = (0..9)
        .map(|k| (key(&format!("k{k}")), big.clone()))
        .collect();
    assert_eq!(store.visible_state().unwrap(), expected);
    assert_eq!(
        store.version(&key("k0")).unwrap(),
        Version(2),
        "written at 9 and 18"
    );
    drop(store);
    // A crash keeps the synced batches, with their state.
    sim(&disk).crash(&mut ChaCha8Rng::seed_from_u64(3));
    let store = Store::open(&disk, STORE_NAME).unwrap();
    let recovered = store.applied_position().index.0;
    assert!(recovered >= 6, "{recovered}");
    let keys_written = (1..=recovered).flat_map(|batch| [batch * 2 % 9, (batch * 2 + 1) % 9]);
    let expected: BTreeMap<Key, Value> = keys_written
        .map(|k| (key(&format!("k{k}")), big.clone()))
        .collect();
    assert_eq!(store.visible_state().unwrap(), expected);
}
