//! The read modes' edges that scripts show less directly: read settings outside their
//! limits are refused, lease reads are never served from a lease when leases are off,
//! the session-read queue is bounded, a token this node cannot check is redirected by a
//! follower, and with leases on a node just opened refuses pre-votes for one minimum
//! election timeout (it may have acknowledged a lease round before it crashed).

use super::pipeline::{NOW, drain, elected_leader};
use crate::single_leader::message::Message;
use crate::single_leader::{
    LEASE_CLOCK_DRIFT_LIMIT_PPM, PENDING_REQUESTS_LIMIT, RaftConfig, RaftNode,
    SESSION_READ_WAIT_LIMIT_MS,
};
use replikv_core::error::Error;
use replikv_core::kv::ReadConsistency;
use replikv_core::replica::{Output, Replica};
use replikv_core::{ClientId, Instant, Key, LogPosition, NodeId, Reply, Request, RequestId, Term};
use replikv_storage::disk::Disk;
use std::time::Duration;

fn get(sequence: u64, consistency: ReadConsistency) -> (RequestId, Request) {
    let request_id = RequestId {
        client: ClientId(1),
        sequence,
    };
    let key = Key::new("k").expect("key");
    (request_id, Request::Get { key, consistency })
}

fn replies(node: &mut RaftNode) -> Vec<Reply> {
    drain(node)
        .into_iter()
        .filter_map(|output| match output {
            Output::Reply { reply, .. } => Some(reply),
            Output::Send { .. } | Output::Discarded { .. } => None,
        })
        .collect()
}

#[test]
fn read_settings_beyond_the_limits_are_refused() {
    let base = RaftConfig::default();
    let invalid = [
        RaftConfig {
            lease_clock_drift_max_ppm: LEASE_CLOCK_DRIFT_LIMIT_PPM + 1,
            ..base.clone()
        },
        RaftConfig {
            session_read_wait_ms_max: 0,
            ..base.clone()
        },
        RaftConfig {
            session_read_wait_ms_max: SESSION_READ_WAIT_LIMIT_MS + 1,
            ..base.clone()
        },
        RaftConfig {
            session_reads_waiting_max: 0,
            ..base.clone()
        },
        RaftConfig {
            session_reads_waiting_max: PENDING_REQUESTS_LIMIT + 1,
            ..base.clone()
        },
    ];
    for config in invalid {
        assert!(
            matches!(config.validate(), Err(Error::InvalidInput(_))),
            "{config:?}"
        );
    }
    let largest = RaftConfig {
        lease_clock_drift_max_ppm: LEASE_CLOCK_DRIFT_LIMIT_PPM,
        session_read_wait_ms_max: SESSION_READ_WAIT_LIMIT_MS,
        session_reads_waiting_max: PENDING_REQUESTS_LIMIT,
        lease_reads_enabled: true,
        ..base
    };
    largest.validate().expect("the limits themselves are valid");
}

#[test]
fn without_leases_a_lease_read_waits_for_a_round() {
    let mut node = elected_leader(RaftConfig::default());
    for sequence in 1..=3 {
        let (request_id, request) = get(sequence, ReadConsistency::Lease);
        node.handle_request(NOW, request_id, request).expect("read");
        node.handle_flush(NOW).expect("flush");
        assert!(replies(&mut node).is_empty(), "served without a round");
    }
    assert_eq!(node.stats().lease_reads_served, 0);
    assert_eq!(node.stats().lease_reads_fallback, 0);
}

#[test]
fn the_session_queue_is_bounded_and_expires_with_a_redirect() {
    let config = RaftConfig {
        session_reads_waiting_max: 2,
        ..RaftConfig::default()
    };
    let mut node = elected_leader(config);
    let ahead = LogPosition::new(1, 50);
    for sequence in 1..=3 {
        let (request_id, request) = get(sequence, ReadConsistency::Session { token: ahead });
        node.handle_request(NOW, request_id, request).expect("read");
    }
    assert!(
        matches!(
            replies(&mut node)[..],
            [Reply::Failed(Error::Overloaded(_))]
        ),
        "the third waits beyond the bound"
    );
    let deadline = NOW + Duration::from_millis(100);
    assert!(node.poll_timeout().expect("a deadline") <= deadline);
    node.handle_tick(deadline - Duration::from_millis(1))
        .expect("tick");
    assert!(replies(&mut node).is_empty(), "still waiting");
    node.handle_tick(deadline).expect("tick");
    let expired = replies(&mut node);
    assert_eq!(
        expired,
        vec![Reply::Failed(Error::NotLeader { leader: None }); 2],
        "a leader redirects to no one in particular"
    );
    assert_eq!(node.stats().session_reads_redirected, 2);
}

/// A node opened on `disk` with leases enabled, ticked once at `now`.
fn opened_with_leases(now: Instant) -> RaftNode {
    let config = RaftConfig {
        lease_reads_enabled: true,
        ..RaftConfig::default()
    };
    let peers = vec![NodeId(2), NodeId(3)];
    let mut node = RaftNode::open(NodeId(1), peers, Disk::simulated(), 3, config).expect("opens");
    node.handle_tick(now).expect("tick");
    node
}

fn pre_vote_granted(node: &mut RaftNode, now: Instant) -> bool {
    let pre_vote = Message::PreVote {
        term: Term(1),
        last: LogPosition::ZERO,
    };
    node.handle_message(now, NodeId(2), pre_vote)
        .expect("pre-vote");
    drain(node).into_iter().any(|output| {
        matches!(
            output,
            Output::Send {
                message: Message::PreVoteResponse { granted: true, .. },
                ..
            }
        )
    })
}

#[test]
fn with_leases_a_node_just_opened_refuses_votes_for_a_minimum_timeout() {
    let opened = Instant::from_millis(5_000);
    let minimum = Duration::from_millis(RaftConfig::default().election_timeout_ms_min);
    let mut node = opened_with_leases(opened);
    assert!(!pre_vote_granted(&mut node, opened));
    assert!(!pre_vote_granted(&mut node, opened + minimum / 2));
    assert!(pre_vote_granted(&mut node, opened + minimum));
    // Without leases the same node grants at once.
    let peers = vec![NodeId(2), NodeId(3)];
    let mut plain = RaftNode::open(
        NodeId(1),
        peers,
        Disk::simulated(),
        3,
        RaftConfig::default(),
    )
    .expect("opens");
    plain.handle_tick(opened).expect("tick");
    assert!(pre_vote_granted(&mut plain, opened));
}
