//! The leader's per-follower pipeline, driven by hand: a single node made leader by
//! hand-made vote answers, whose appends and acknowledgements the test orders at will
//! (the script harness delivers in order, so it cannot reorder two answers).
//!
//! The regression here: the pipeline was a counter that an acknowledgement decremented
//! only when it raised the follower's matched index. When the answer to a later append
//! overtook the answer to an earlier one, the earlier answer raised nothing and its slot
//! was never freed; the heartbeat's reset did not fire either (the follower had
//! acknowledged everything sent), so every reordering shrank the pipeline for good.

use crate::single_leader::message::{AppendResult, Message};
use crate::single_leader::{RaftConfig, RaftNode};
use replikv_core::replica::{Output, Replica};
use replikv_core::{ClientId, Instant, Key, LogIndex, NodeId, Request, RequestId, Term, Value};
use replikv_storage::disk::Disk;

/// When the hand-driven leader acts (after its election deadline, before any heartbeat
/// deadline matters: the tests never tick it again).
pub(super) const NOW: Instant = Instant::from_millis(1_000);

/// Node 1 of {1, 2, 3}, elected leader of term 1 by node 2's answers, its no-op appended
/// and flushed, its outputs drained.
pub(super) fn elected_leader(config: RaftConfig) -> RaftNode {
    elected_leader_on(Disk::simulated(), config)
}

/// [`elected_leader`] on a given disk.
pub(super) fn elected_leader_on(disk: Disk, config: RaftConfig) -> RaftNode {
    let peers = vec![NodeId(2), NodeId(3)];
    let mut node = RaftNode::open(NodeId(1), peers, disk, 7, config).expect("opens");
    node.handle_tick(Instant::ZERO).expect("tick");
    node.handle_tick(NOW).expect("election timeout");
    let pre_vote = Message::PreVoteResponse {
        term: Term(1),
        granted: true,
    };
    node.handle_message(NOW, NodeId(2), pre_vote)
        .expect("pre-vote");
    let vote = Message::VoteResponse {
        term: Term(1),
        granted: true,
    };
    node.handle_message(NOW, NodeId(2), vote).expect("vote");
    assert!(node.is_leader(), "elected");
    node.handle_flush(NOW).expect("flush");
    drain(&mut node);
    node
}

/// The outputs since the last drain: the entry ranges of the appends to `peer`.
pub(super) fn appends_to(node: &mut RaftNode, peer: NodeId) -> Vec<(u64, u64)> {
    drain(node)
        .into_iter()
        .filter_map(|output| match output {
            Output::Send {
                to,
                message: Message::Append { entries, .. },
            } if to == peer && !entries.is_empty() => {
                let first = entries.first().expect("not empty").position.index.0;
                let last = entries.last().expect("not empty").position.index.0;
                Some((first, last))
            }
            _ => None,
        })
        .collect()
}

pub(super) fn drain(node: &mut RaftNode) -> Vec<Output<Message>> {
    std::iter::from_fn(|| node.poll_output()).collect()
}

pub(super) fn accepted(matched: u64) -> Message {
    Message::AppendResponse {
        term: Term(1),
        result: AppendResult::Accepted {
            matched: LogIndex(matched),
        },
        read_sequence: 0,
    }
}

/// Proposes puts of `keys` and flushes, which sends them.
fn propose(node: &mut RaftNode, keys: &[&str], sequence: &mut u64) {
    for key in keys {
        *sequence += 1;
        let request_id = RequestId {
            client: ClientId(1),
            sequence: *sequence,
        };
        let request = Request::Put {
            key: Key::new(key.as_bytes()).expect("key"),
            value: Value::new(b"v".to_vec()).expect("value"),
        };
        node.handle_request(NOW, request_id, request)
            .expect("proposed");
    }
    node.handle_flush(NOW).expect("flush");
}

fn one_entry_appends_two_in_flight() -> RaftConfig {
    RaftConfig {
        append_entries_max: 1,
        inflight_appends_max: 2,
        ..RaftConfig::default()
    }
}

#[test]
fn reordered_acknowledgements_free_every_pipeline_slot() {
    let mut node = elected_leader(one_entry_appends_two_in_flight());
    let (follower, mut sequence) = (NodeId(2), 0);
    node.handle_message(NOW, follower, accepted(1))
        .expect("no-op acknowledged");
    propose(&mut node, &["a", "b"], &mut sequence);
    assert_eq!(appends_to(&mut node, follower), [(2, 2), (3, 3)]);
    // The answer to the second append overtakes the answer to the first.
    node.handle_message(NOW, follower, accepted(3))
        .expect("ack 3");
    node.handle_message(NOW, follower, accepted(2))
        .expect("ack 2");
    assert_eq!(appends_to(&mut node, follower), []);
    // Both slots are free again: two new entries go out at once.
    propose(&mut node, &["c", "d"], &mut sequence);
    assert_eq!(appends_to(&mut node, follower), [(4, 4), (5, 5)]);
}

#[test]
fn one_acknowledgement_frees_every_append_it_covers() {
    let mut node = elected_leader(one_entry_appends_two_in_flight());
    let (follower, mut sequence) = (NodeId(2), 0);
    propose(&mut node, &["a", "b"], &mut sequence);
    // The no-op (1) is still in flight: one slot left, for entry 2.
    assert_eq!(appends_to(&mut node, follower), [(2, 2)]);
    node.handle_message(NOW, follower, accepted(2))
        .expect("ack 2");
    // Both appends are acknowledged at once: entries 3 and 4 fill the two slots.
    propose(&mut node, &["c"], &mut sequence);
    assert_eq!(appends_to(&mut node, follower), [(3, 3), (4, 4)]);
    // Stale and duplicate answers free nothing that is still in flight.
    node.handle_message(NOW, follower, accepted(2))
        .expect("duplicate");
    propose(&mut node, &["d"], &mut sequence);
    assert_eq!(appends_to(&mut node, follower), []);
}
