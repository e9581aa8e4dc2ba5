//! Peer input is never trusted: absurd messages are dropped and counted, never a panic
//! nor an error that would stop the node, and the node keeps working afterwards. Covers
//! a follower (malformed, oversized and overloading appends) and a leader (absurd
//! acknowledgements, stray vote answers).

use super::pipeline::{NOW, accepted, appends_to, drain, elected_leader};
use crate::single_leader::message::{AppendResult, Command, Message, WireEntry};
use crate::single_leader::{RaftConfig, RaftNode};
use replikv_core::limits::{LOG_RECORD_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use replikv_core::replica::{Output, Replica};
use replikv_core::{ClientId, Instant, Key, LogIndex, LogPosition, NodeId, RequestId, Term, Value};
use replikv_storage::disk::Disk;
use replikv_storage::log::{LogOptions, PAYLOAD_SIZE_MAX_BYTES};
use replikv_storage::store::StoreWrite;

fn follower() -> RaftNode {
    follower_with(RaftConfig::default())
}

fn follower_with(config: RaftConfig) -> RaftNode {
    let peers = vec![NodeId(2), NodeId(3)];
    let mut node = RaftNode::open(NodeId(1), peers, Disk::simulated(), 7, config).expect("opens");
    node.handle_tick(Instant::ZERO).expect("tick");
    node
}

fn append(term: u64, previous: LogPosition, entries: Vec<WireEntry>) -> Message {
    Message::Append {
        term: Term(term),
        previous,
        entries,
        commit: LogIndex(u64::MAX),
        read_sequence: u64::MAX,
    }
}

fn noop(term: u64, index: u64) -> WireEntry {
    WireEntry {
        position: LogPosition::new(term, index),
        payload: Command::Noop.encode(),
    }
}

#[test]
fn absurd_peer_messages_are_dropped_and_counted() {
    let mut node = follower();
    let now = Instant::from_millis(1);
    let absurd = [
        // Node 0 is nobody. (A node outside this node's configuration is not absurd: a
        // leader may know a newer configuration; see `membership.rs`.)
        (NodeId::NONE, append(1, LogPosition::ZERO, vec![noop(1, 1)])),
        (NodeId(1), append(1, LogPosition::ZERO, vec![noop(1, 1)])),
        (NodeId(2), append(u64::MAX, LogPosition::ZERO, vec![])),
        (
            NodeId(2),
            append(1, LogPosition::new(1, u64::MAX), vec![noop(1, 0)]),
        ),
        (NodeId(2), append(1, LogPosition::ZERO, vec![noop(1, 5)])),
        (NodeId(2), append(1, LogPosition::ZERO, vec![noop(2, 1)])),
        (
            NodeId(2),
            append(
                1,
                LogPosition::ZERO,
                vec![WireEntry {
                    position: LogPosition::new(1, 1),
                    payload: b"garbage".to_vec(),
                }],
            ),
        ),
    ];
    for (from, message) in absurd {
        node.handle_message(now, from, message)
            .expect("no storage error");
    }
    assert!(node.stats().messages_dropped >= 6, "{:?}", node.stats());
    assert_eq!(node.log().last_position(), LogPosition::ZERO);
    // Responses a follower never asked for are ignored; a proper append still works.
    let stray = Message::AppendResponse {
        term: Term(1),
        result: AppendResult::Rejected { next: LogIndex(0) },
        read_sequence: u64::MAX,
    };
    node.handle_message(now, NodeId(3), stray).expect("ignored");
    let good = append(1, LogPosition::ZERO, vec![noop(1, 1)]);
    node.handle_message(now, NodeId(2), good).expect("accepted");
    node.handle_flush(now).expect("flush");
    assert_eq!(node.log().last_position(), LogPosition::new(1, 1));
    assert_eq!(node.commit_index(), LogIndex(1));
    assert_eq!(node.leader(), Some(NodeId(2)));
}

/// A follower already in term 1 that knows no leader yet.
fn follower_in_term_1() -> RaftNode {
    let mut node = follower();
    let vote = Message::Vote {
        term: Term(1),
        last: LogPosition::new(0, 0),
        transfer: false,
    };
    node.handle_message(Instant::from_millis(1), NodeId(3), vote)
        .expect("vote");
    drain(&mut node);
    assert_eq!((node.term(), node.leader()), (Term(1), None));
    node
}

#[test]
fn a_malformed_append_is_no_sign_of_a_leader() {
    let mut node = follower_in_term_1();
    let deadline = node.poll_timeout();
    let malformed = [
        append(1, LogPosition::ZERO, vec![noop(1, 2)]),
        append(1, LogPosition::ZERO, vec![noop(2, 1)]),
        append(1, LogPosition::new(2, 0), vec![]),
    ];
    for message in malformed {
        node.handle_message(Instant::from_millis(2), NodeId(2), message)
            .expect("dropped");
    }
    assert_eq!(node.leader(), None, "a malformed append names no leader");
    assert_eq!(node.poll_timeout(), deadline, "nor delays an election");
    assert_eq!(node.stats().messages_dropped, 3);
}

#[test]
fn an_oversized_payload_is_dropped_not_fatal() {
    let mut node = follower();
    let oversized = WireEntry {
        position: LogPosition::new(1, 1),
        payload: vec![0; PAYLOAD_SIZE_MAX_BYTES + 1],
    };
    let message = append(1, LogPosition::ZERO, vec![oversized]);
    node.handle_message(Instant::from_millis(1), NodeId(2), message)
        .expect("dropped, the node keeps running");
    assert_eq!(node.stats().messages_dropped, 1);
    assert_eq!(node.log().last_position(), LogPosition::ZERO);
    let good = append(1, LogPosition::ZERO, vec![noop(1, 1)]);
    node.handle_message(Instant::from_millis(1), NodeId(2), good)
        .expect("accepted");
    assert_eq!(node.log().last_position(), LogPosition::new(1, 1));
}

fn big_put(term: u64, index: u64) -> WireEntry {
    let write = StoreWrite::Put {
        key: Key::new(b"k".to_vec()).expect("key"),
        value: Value::new(vec![b'v'; VALUE_SIZE_MAX_BYTES]).expect("value"),
    };
    WireEntry {
        position: LogPosition::new(term, index),
        payload: Command::Write {
            origin: NodeId(2),
            request_id: RequestId {
                client: ClientId(1),
                sequence: index,
            },
            write,
            stamp_unix_ms: 0,
        }
        .encode(),
    }
}

fn acknowledged(node: &mut RaftNode) -> Vec<AppendResult> {
    drain(node)
        .into_iter()
        .filter_map(|output| match output {
            Output::Send {
                message: Message::AppendResponse { result, .. },
                ..
            } => Some(result),
            _ => None,
        })
        .collect()
}

#[test]
fn an_append_beyond_the_pending_buffer_is_dropped_unanswered() {
    let config = RaftConfig {
        log_options: LogOptions {
            pending_size_max_bytes: LOG_RECORD_SIZE_MAX_BYTES as u64,
            ..LogOptions::default()
        },
        ..RaftConfig::default()
    };
    let mut node = follower_with(config);
    let now = Instant::from_millis(1);
    let first = append(1, LogPosition::ZERO, vec![big_put(1, 1), big_put(1, 2)]);
    node.handle_message(now, NodeId(2), first).expect("fits");
    let second = append(1, LogPosition::new(1, 2), vec![big_put(1, 3)]);
    node.handle_message(now, NodeId(2), second.clone())
        .expect("overloaded: dropped, the node keeps running");
    assert_eq!(node.stats().messages_dropped, 1);
    assert_eq!(node.log().last_position(), LogPosition::new(1, 2));
    node.handle_flush(now).expect("flush");
    let matched = LogIndex(2);
    assert_eq!(
        acknowledged(&mut node),
        [AppendResult::Accepted { matched }]
    );
    // After the sync the leader's resend goes through.
    node.handle_message(now, NodeId(2), second)
        .expect("fits now");
    node.handle_flush(now).expect("flush");
    let matched = LogIndex(3);
    assert_eq!(
        acknowledged(&mut node),
        [AppendResult::Accepted { matched }]
    );
}

#[test]
fn absurd_answers_to_a_leader_are_ignored() {
    let mut node = elected_leader(RaftConfig::default());
    let response = |result| Message::AppendResponse {
        term: Term(1),
        result,
        read_sequence: 0,
    };
    let absurd = [
        (NodeId(2), accepted(u64::MAX)),
        (NodeId(2), accepted(2)),
        (
            NodeId(2),
            response(AppendResult::Rejected { next: LogIndex(0) }),
        ),
        (
            NodeId(3),
            response(AppendResult::Rejected {
                next: LogIndex(u64::MAX),
            }),
        ),
        (
            NodeId(3),
            Message::AppendResponse {
                term: Term(1),
                result: AppendResult::Accepted {
                    matched: LogIndex(1),
                },
                read_sequence: u64::MAX,
            },
        ),
        (
            NodeId(3),
            Message::VoteResponse {
                term: Term(1),
                granted: true,
            },
        ),
        (
            NodeId(2),
            Message::VoteResponse {
                term: Term(1),
                granted: false,
            },
        ),
        (
            NodeId(3),
            Message::PreVoteResponse {
                term: Term(2),
                granted: true,
            },
        ),
        (NodeId(99), accepted(1)),
    ];
    for (from, message) in absurd {
        node.handle_message(NOW, from, message)
            .expect("ignored, the leader keeps running");
        assert!(node.is_leader());
        assert_eq!(node.commit_index(), LogIndex(0), "nothing absurd commits");
    }
    drain(&mut node);
    // A real acknowledgement still commits the no-op, and the pipeline still works.
    node.handle_message(NOW, NodeId(2), accepted(1))
        .expect("ack");
    assert_eq!(node.commit_index(), LogIndex(1));
    assert!(appends_to(&mut node, NodeId(2)).is_empty());
}
