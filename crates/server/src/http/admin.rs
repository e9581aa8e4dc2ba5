//! The node's status as JSON and the admin routes (leadership transfer, and the testing
//! clock offset, served only when the node runs with testing faults enabled).

use super::{HttpState, error_response, reply_response};
use crate::node_loop::NodeStatus;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use replikv_core::error::Error;
use replikv_core::{NodeId, Reply, Request};

pub(super) async fn status(State(state): State<HttpState>) -> Response {
    match state.keyspaces.default_group().status().await {
        Some(status) => axum::Json(status_json(&status)).into_response(),
        None => error_response(&Error::Unavailable(
            "the node is stopped or overloaded".into(),
        )),
    }
}

/// `POST /v1/admin/transfer-leadership`: the body names the target node (or is empty).
pub(super) async fn transfer_leadership(State(state): State<HttpState>, body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let to = match text.trim() {
        "" => None,
        id => match id.parse::<u64>() {
            Ok(id) if id > 0 => Some(NodeId(id)),
            _ => {
                let error = format!("the body must be a node id (or empty), not {id:?}");
                return error_response(&Error::InvalidInput(error));
            }
        },
    };
    match state.call(Request::TransferLeadership { to }).await {
        Reply::LeadershipTransferred { leader, term } => {
            axum::Json(serde_json::json!({"leader": leader.0, "term": term.0})).into_response()
        }
        other => reply_response(other),
    }
}

/// `PUT /v1/admin/testing/clock-offset` with `{"offset_ms": N}`: skews the wall clock
/// this node uses for key expiry by N ms (within ±`TESTING_CLOCK_OFFSET_LIMIT_MS`).
/// Answers 404 unless the node runs with testing faults enabled.
pub(super) async fn set_clock_offset(State(state): State<HttpState>, body: Bytes) -> Response {
    use crate::config::TESTING_CLOCK_OFFSET_LIMIT_MS;
    let node = state.keyspaces.default_group();
    if !node.testing_faults() {
        let text = "testing endpoints are disabled (start the node with --testing-faults)";
        return (axum::http::StatusCode::NOT_FOUND, text).into_response();
    }
    let offset = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|json| json.get("offset_ms").and_then(serde_json::Value::as_i64))
        .filter(|offset| offset.unsigned_abs() <= TESTING_CLOCK_OFFSET_LIMIT_MS.unsigned_abs());
    let Some(offset) = offset else {
        let error = format!(
            "the body must be {{\"offset_ms\": N}} with |N| <= {TESTING_CLOCK_OFFSET_LIMIT_MS}"
        );
        return error_response(&Error::InvalidInput(error));
    };
    node.set_clock_offset_ms(offset);
    axum::Json(serde_json::json!({"offset_ms": offset})).into_response()
}

/// The status as JSON (also what `replikv status` will print as a table).
#[must_use]
pub fn status_json(status: &NodeStatus) -> serde_json::Value {
    let followers: Vec<serde_json::Value> = status
        .replication
        .followers
        .iter()
        .flatten()
        .map(|follower| {
            serde_json::json!({
                "id": follower.follower.0,
                "matched_index": follower.matched.0,
                "lag_entries": follower.lag_entries,
                "last_ack_ms_ago": follower.since_last_ack.map(|since| since.as_millis()),
            })
        })
        .collect();
    serde_json::json!({
        "node_id": status.id.0,
        "role": status.role,
        "leader": status.leader.map(|leader| leader.0),
        "term": status.term.0,
        "last_index": status.replication.last.index.0,
        "commit_index": status.commit.0,
        "applied_index": status.applied.0,
        "commit_mode": status.commit_mode,
        "pipelined_fsync": status.pipelined_fsync,
        "lossy": status.replication.lossy,
        "voters": status.replication.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
        "learners": status.replication.learners.iter().map(|id| id.0).collect::<Vec<_>>(),
        "writes_discarded": status.writes_discarded,
        "peer_messages_dropped": status.peer_messages_dropped,
        "elections_started": status.stats.elections_started,
        "snapshots_installed": status.stats.snapshots_installed,
        "followers": followers,
    })
}
