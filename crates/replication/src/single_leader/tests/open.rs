//! Opening a node: configurations outside the limits the node and its store enforce are
//! refused up front, and a hard state that contradicts the log is corruption, reported
//! by `open` rather than found later by an assertion.

use super::pipeline::{NOW, elected_leader_on};
use crate::single_leader::{
    HARD_STATE_FILE_NAME, INFLIGHT_APPENDS_LIMIT, PENDING_REQUESTS_LIMIT, RaftConfig, RaftNode,
};
use replikv_core::error::Error;
use replikv_core::replica::Replica;
use replikv_core::{LogPosition, NodeId};
use replikv_storage::disk::Disk;
use replikv_storage::log::MetadataFile;
use replikv_storage::store::{APPLY_BATCH_SIZE_MAX_BYTES, APPLY_BATCH_WRITES_MAX};

#[test]
fn configurations_beyond_the_limits_are_refused() {
    let base = RaftConfig::default();
    let invalid = [
        RaftConfig {
            inflight_appends_max: INFLIGHT_APPENDS_LIMIT + 1,
            ..base.clone()
        },
        RaftConfig {
            pending_requests_max: PENDING_REQUESTS_LIMIT + 1,
            ..base.clone()
        },
        RaftConfig {
            apply_batch_entries_max: APPLY_BATCH_WRITES_MAX + 1,
            ..base.clone()
        },
        RaftConfig {
            append_size_max_bytes: APPLY_BATCH_SIZE_MAX_BYTES,
            ..base.clone()
        },
        RaftConfig {
            inflight_appends_max: 0,
            ..base.clone()
        },
        RaftConfig {
            client_sessions_max: 0,
            ..base.clone()
        },
        RaftConfig {
            client_sessions_max: replikv_storage::store::CLIENT_SESSIONS_LIMIT + 1,
            ..base.clone()
        },
    ];
    for config in invalid {
        let result = config.validate();
        assert!(matches!(result, Err(Error::InvalidInput(_))), "{config:?}");
        let open = RaftNode::open(NodeId(1), vec![NodeId(2)], Disk::simulated(), 1, config);
        assert!(matches!(open, Err(Error::InvalidInput(_))));
    }
    let largest = RaftConfig {
        inflight_appends_max: INFLIGHT_APPENDS_LIMIT,
        pending_requests_max: PENDING_REQUESTS_LIMIT,
        apply_batch_entries_max: APPLY_BATCH_WRITES_MAX,
        ..base
    };
    largest.validate().expect("the limits themselves are valid");
    assert!(largest.apply_batch_size_max_bytes() <= APPLY_BATCH_SIZE_MAX_BYTES);
}

#[test]
fn a_hard_state_term_below_the_log_is_corruption() {
    let disk = Disk::simulated();
    let mut node = elected_leader_on(disk.clone(), RaftConfig::default());
    node.handle_flush(NOW).expect("flush");
    assert_eq!(node.log().last_position(), LogPosition::new(1, 1));
    drop(node);
    let mut hard_state = MetadataFile::open(&disk, HARD_STATE_FILE_NAME).expect("opens");
    hard_state
        .store(br#"{"term":0,"voted_for":null}"#)
        .expect("stored");
    let peers = vec![NodeId(2), NodeId(3)];
    match RaftNode::open(NodeId(1), peers, disk, 7, RaftConfig::default()) {
        Err(Error::Corruption(text)) => assert!(text.contains("below the log"), "{text}"),
        other => panic!("expected corruption, got {:?}", other.map(|_| ())),
    }
}
