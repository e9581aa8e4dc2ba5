//! Peer input is never trusted: absurd messages are dropped and counted, never a panic,
//! and the node keeps working afterwards.

use crate::single_leader::message::{AppendResult, Command, Message, WireEntry};
use crate::single_leader::{RaftConfig, RaftNode};
use replikv_core::replica::Replica;
use replikv_core::{Instant, LogIndex, LogPosition, NodeId, Term};
use replikv_storage::disk::Disk;

fn follower() -> RaftNode {
    let peers = vec![NodeId(2), NodeId(3)];
    let mut node = RaftNode::open(
        NodeId(1),
        peers,
        Disk::simulated(),
        7,
        RaftConfig::default(),
    )
    .expect("opens");
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
        (NodeId(99), append(1, LogPosition::ZERO, vec![noop(1, 1)])),
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
