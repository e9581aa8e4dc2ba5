//! Opening a node whose log was compacted or reset, and the follower's side of a
//! snapshot fed by hand: what the scripts cannot reach without a crash at one exact
//! point.
//!
//! - A leader that compacted its log reopens at its store's position and replays the
//!   rest of its log.
//! - A store that installed a snapshot durably while the log's reset was cut short by a
//!   crash (the store is ahead of the log, or holds a position the log has with another
//!   term) makes `open` finish the reset.
//! - A store behind the log's compacted prefix is corruption: compaction never passes
//!   the store's durable position.
//! - A malformed chunk from a peer is dropped and counted, never an error.
//! - The store is synced once enough bytes were applied, however few the entries
//!   (`store_sync_size_max_bytes`): the log compacts up to it.

use super::pipeline::{NOW, drain, elected_leader_on};
use crate::single_leader::message::{Command, Message, SnapshotResult, WireChunk};
use crate::single_leader::{HARD_STATE_FILE_NAME, RaftConfig, RaftNode, STORE_FILE_NAME};
use replikv_core::error::Error;
use replikv_core::replica::{Output, Replica};
use replikv_core::{
    ClientId, Key, LogIndex, LogPosition, NodeId, Request, RequestId, Term, Value, Version,
};
use replikv_storage::disk::Disk;
use replikv_storage::log::{Entry, Log, LogOptions, MetadataFile};
use replikv_storage::store::{SnapshotChunk, SnapshotEntry, Store, StoreWrite};

fn compacting_config() -> RaftConfig {
    RaftConfig {
        store_sync_entries: 1,
        store_sync_entries_max: 1,
        log_retained_entries_max: 2,
        log_options: LogOptions {
            segment_size_max_bytes: 100,
            ..LogOptions::default()
        },
        ..RaftConfig::default()
    }
}

fn put(key: &str, value: &str) -> Request {
    Request::Put {
        key: Key::new(key.as_bytes().to_vec()).expect("key"),
        value: Value::new(value.as_bytes().to_vec()).expect("value"),
    }
}

fn put_entry(term: u64, index: u64, key: &str) -> Entry {
    let write = StoreWrite::Put {
        key: Key::new(key.as_bytes().to_vec()).expect("key"),
        value: Value::new(b"v".to_vec()).expect("value"),
    };
    let command = Command::Write {
        origin: NodeId(1),
        request_id: RequestId {
            client: ClientId(1),
            sequence: index,
        },
        write,
        stamp_unix_ms: 0,
    };
    Entry::new(term, index, command.encode())
}

/// Client 1's write number `sequence` of `key` on the leader `node`, acknowledged by
/// follower 2 so that it commits; its outputs drained.
fn put_acknowledged(node: &mut RaftNode, sequence: u64, key: &str, value: &str) {
    let request_id = RequestId {
        client: ClientId(1),
        sequence,
    };
    node.handle_request(NOW, request_id, put(key, value))
        .expect("request");
    node.handle_flush(NOW).expect("flush");
    let matched = node.log().last_position().index.0;
    node.handle_message(NOW, NodeId(2), super::pipeline::accepted(matched))
        .expect("ack");
    node.handle_flush(NOW).expect("flush");
    drain(node);
}

/// Stores a hard state of `term` (no vote), as a node that saw that term would have.
fn store_term(disk: &Disk, term: u64) {
    let mut hard_state = MetadataFile::open(disk, HARD_STATE_FILE_NAME).expect("opens");
    let text = format!(r#"{{"term":{term},"voted_for":null}}"#);
    hard_state.store(text.as_bytes()).expect("stored");
}

fn open(disk: &Disk, config: RaftConfig) -> replikv_core::error::Result<RaftNode> {
    RaftNode::open(
        NodeId(1),
        vec![NodeId(2), NodeId(3)],
        disk.clone(),
        7,
        config,
    )
}

#[test]
fn a_compacted_log_reopens_and_replays_from_the_store() {
    let disk = Disk::simulated();
    let mut node = elected_leader_on(disk.clone(), compacting_config());
    for (sequence, key) in ["a", "b", "c", "d", "e", "f", "g", "h"].iter().enumerate() {
        put_acknowledged(&mut node, sequence as u64 + 1, key, "1");
    }
    node.handle_flush(NOW).expect("flush");
    assert!(node.stats().entries_compacted > 0, "{:?}", node.stats());
    let first_index = node.log().first_index();
    let state = node.visible_state().expect("state");
    assert_eq!(state.len(), 8);
    drop(node);
    let reopened = open(&disk, compacting_config()).expect("a compacted log reopens");
    assert_eq!(reopened.log().first_index(), first_index);
    assert!(reopened.applied_index() >= LogIndex(first_index.0 - 1));
    assert_eq!(reopened.visible_state().expect("state"), state);
}

/// A store at `applied` (installed from a one-key snapshot) beside a log of term-1
/// entries 1..=3: what a crash between the install and the log's reset leaves.
fn store_ahead_of_log(applied: LogPosition) -> Disk {
    let disk = Disk::simulated();
    let mut log = Log::open(disk.clone(), LogOptions::default()).expect("log");
    let entries: Vec<Entry> = (1..=3).map(|index| put_entry(1, index, "x")).collect();
    log.append(&entries).expect("append");
    log.sync().expect("sync");
    drop(log);
    let mut store = Store::open(&disk, STORE_FILE_NAME).expect("store");
    store.install_begin(applied).expect("begin");
    let chunk = SnapshotChunk {
        position: applied,
        after: None,
        entries: vec![SnapshotEntry {
            expires_at_unix_ms: None,
            key: Key::new(b"k".to_vec()).expect("key"),
            version: Version(1),
            value: Some(Value::new(b"snap".to_vec()).expect("value")),
        }],
        done: true,
        sessions: Vec::new(),
        leases: Vec::new(),
        membership: None,
    };
    assert!(store.install_chunk(&chunk).expect("chunk"));
    store.install_finish().expect("finish");
    store_term(&disk, applied.term.0);
    disk
}

#[test]
fn a_store_ahead_of_its_log_makes_open_finish_the_reset() {
    for applied in [LogPosition::new(2, 10), LogPosition::new(2, 2)] {
        let disk = store_ahead_of_log(applied);
        let node = open(&disk, RaftConfig::default()).expect("opens");
        assert_eq!(node.log().first_index(), applied.index.next(), "{applied}");
        assert_eq!(node.log().last_position(), applied);
        assert_eq!(node.log().term_at(applied.index), Some(applied.term));
        assert_eq!(node.applied_index(), applied.index);
        assert_eq!(node.commit_index(), applied.index);
        let state = node.visible_state().expect("state");
        assert_eq!(state.len(), 1, "{state:?}");
    }
}

#[test]
fn a_store_behind_the_compacted_log_is_corruption() {
    let disk = Disk::simulated();
    let options = LogOptions {
        segment_size_max_bytes: 60,
        ..LogOptions::default()
    };
    let mut log = Log::open(disk.clone(), options.clone()).expect("log");
    let entries: Vec<Entry> = (1..=8).map(|index| put_entry(1, index, "x")).collect();
    log.append(&entries).expect("append");
    log.sync().expect("sync");
    log.truncate_prefix(LogIndex(6)).expect("compact");
    assert!(log.first_index() > LogIndex(1));
    drop(log);
    store_term(&disk, 1);
    let config = RaftConfig {
        log_options: options,
        ..RaftConfig::default()
    };
    match open(&disk, config) {
        Err(Error::Corruption(text)) => assert!(text.contains("compacted"), "{text}"),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn a_malformed_chunk_is_dropped_and_counted() {
    let mut node = open(&Disk::simulated(), RaftConfig::default()).expect("opens");
    node.handle_tick(NOW).expect("tick");
    let key = |text: &str| Key::new(text.as_bytes().to_vec()).expect("key");
    let entry = |text: &str| SnapshotEntry {
        key: key(text),
        version: Version(1),
        value: None,
        expires_at_unix_ms: None,
    };
    let position = LogPosition::new(1, 5);
    let out_of_order = SnapshotChunk {
        position,
        after: None,
        entries: vec![entry("b"), entry("a")],
        done: false,
        sessions: Vec::new(),
        leases: Vec::new(),
        membership: None,
    };
    let zero_version = SnapshotChunk {
        entries: vec![SnapshotEntry {
            expires_at_unix_ms: None,
            version: Version(0),
            ..entry("a")
        }],
        ..out_of_order.clone()
    };
    let future_term = SnapshotChunk {
        position: LogPosition::new(9, 5),
        ..zero_version.clone()
    };
    for chunk in [out_of_order, zero_version, future_term] {
        let dropped = node.stats().messages_dropped;
        let message = Message::InstallSnapshot {
            term: Term(1),
            chunk: WireChunk(chunk),
        };
        node.handle_message(NOW, NodeId(2), message)
            .expect("peer input never fails a node");
        assert_eq!(node.stats().messages_dropped, dropped + 1);
    }
    assert_eq!(node.stats().snapshots_installed, 0);
    // A well-formed first chunk is installed and answered with the resume point.
    let good = SnapshotChunk {
        position,
        after: None,
        entries: vec![entry("a")],
        done: false,
        sessions: Vec::new(),
        leases: Vec::new(),
        membership: None,
    };
    let message = Message::InstallSnapshot {
        term: Term(1),
        chunk: WireChunk(good),
    };
    node.handle_message(NOW, NodeId(2), message).expect("chunk");
    let answers: Vec<SnapshotResult> = drain(&mut node)
        .into_iter()
        .filter_map(|output| match output {
            Output::Send {
                message: Message::InstallSnapshotResponse { result, .. },
                ..
            } => Some(result),
            _ => None,
        })
        .collect();
    assert_eq!(
        answers,
        [SnapshotResult::Resume {
            after: Some(key("a"))
        }]
    );
}

/// Writes `count` keys with `value_size_bytes`-byte values through a leader on `disk`
/// with `config`, each acknowledged by a follower; returns the entries compacted.
fn entries_compacted_after_writes(config: RaftConfig, count: u64, value_size_bytes: usize) -> u64 {
    let mut node = elected_leader_on(Disk::simulated(), config);
    let value = "v".repeat(value_size_bytes);
    for sequence in 1..=count {
        put_acknowledged(&mut node, sequence, &format!("k{sequence}"), &value);
    }
    node.handle_flush(NOW).expect("flush");
    node.stats().entries_compacted
}

#[test]
fn applied_bytes_alone_sync_the_store_and_let_the_log_compact() {
    // Compaction never passes the store's durable position, so it shows when the store
    // was synced. With an entry count out of reach, only the byte bound can sync it.
    let unreachable_count = RaftConfig {
        store_sync_entries: 1_000_000,
        store_sync_entries_max: 1_000_000,
        ..compacting_config()
    };
    assert_eq!(
        entries_compacted_after_writes(unreachable_count.clone(), 8, 200),
        0,
        "no store sync before the byte bound"
    );
    let byte_bound = RaftConfig {
        store_sync_size_max_bytes: 600,
        ..unreachable_count
    };
    assert!(entries_compacted_after_writes(byte_bound, 8, 200) > 0);
}

/// Writes through the leader `node` (client 1, from `sequence` on), one per key of
/// `keys`, each acknowledged by a follower; returns the store's durable applied index
/// after each write.
fn durable_indexes_after_writes(
    node: &mut RaftNode,
    sequence: &mut u64,
    keys: impl Iterator<Item = String>,
    value: &str,
) -> Vec<u64> {
    let mut durable = Vec::new();
    for key in keys {
        *sequence += 1;
        put_acknowledged(node, *sequence, &key, value);
        durable.push(node.store.durable_applied_position().index.0);
    }
    durable
}

/// How many entries apart the store's durable commits came, in order.
fn durable_commit_gaps(durable: &[u64]) -> Vec<u64> {
    let mut advances: Vec<u64> = durable.to_vec();
    advances.dedup();
    advances.windows(2).map(|pair| pair[1] - pair[0]).collect()
}

#[test]
fn the_store_sync_interval_stretches_while_durable_commits_write_few_pages() {
    // One hot key: each durable commit rewrites a handful of pages, far below one per
    // four entries of `store_sync_entries`, so the interval doubles up to its maximum.
    // Then 4 KiB values under fresh keys: a page or more per entry, and the interval is
    // back at `store_sync_entries` after the first such commit.
    let config = RaftConfig {
        store_sync_entries: 256,
        store_sync_entries_max: 1024,
        ..RaftConfig::default()
    };
    let mut node = elected_leader_on(Disk::simulated(), config);
    let mut sequence = 0;
    let hot = std::iter::repeat_n("hot".to_owned(), 3_000);
    let durable = durable_indexes_after_writes(&mut node, &mut sequence, hot, "v");
    let gaps = durable_commit_gaps(&durable);
    assert!(
        gaps.starts_with(&[256, 512, 1024]),
        "doubling from 256: {gaps:?}"
    );
    let scattered = (0..2_000).map(|number| format!("scattered-{number}"));
    let large_value = "v".repeat(4096);
    let durable = durable_indexes_after_writes(&mut node, &mut sequence, scattered, &large_value);
    let gaps = durable_commit_gaps(&durable);
    assert!(
        gaps.len() >= 2 && gaps[1..].iter().all(|gap| *gap == 256),
        "back to 256 once commits write many pages: {gaps:?}"
    );
}

#[test]
fn a_store_sync_forced_by_applied_bytes_ends_the_stretch() {
    // Stretched to 1024 on a hot key, then one value large enough to force a sync by the
    // byte bound: that sync covers less than an interval and says nothing of the working
    // set, so the next interval is 256 again (not 1024, although the forced commit wrote
    // few pages).
    let config = RaftConfig {
        store_sync_entries: 256,
        store_sync_entries_max: 1024,
        store_sync_size_max_bytes: 64 * 1024,
        ..RaftConfig::default()
    };
    let mut node = elected_leader_on(Disk::simulated(), config);
    let mut sequence = 0;
    let hot = || std::iter::repeat_n("hot".to_owned(), 2_000);
    let durable = durable_indexes_after_writes(&mut node, &mut sequence, hot(), "v");
    let gaps = durable_commit_gaps(&durable);
    assert!(gaps.starts_with(&[256, 512, 1024]), "stretched: {gaps:?}");
    let before = node.store.durable_applied_position().index.0;
    let large = "v".repeat(64 * 1024);
    let keys = std::iter::once("large".to_owned());
    let forced = durable_indexes_after_writes(&mut node, &mut sequence, keys, &large);
    assert!(forced[0] > before, "the byte bound synced at once");
    let mut durable = forced;
    durable.extend(durable_indexes_after_writes(
        &mut node,
        &mut sequence,
        hot(),
        "v",
    ));
    let gaps = durable_commit_gaps(&durable);
    assert!(gaps.starts_with(&[256, 512]), "from 256 again: {gaps:?}");
}
