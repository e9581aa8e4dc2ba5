//! The membership admin routes: grow and shrink a running cluster over HTTP.
//!
//! - `GET /v1/admin/members`: the configuration as this node sees it (voters,
//!   learners, a pending change, the leader) and the peer address of every member it
//!   knows, as JSON.
//! - `POST /v1/admin/members` with `{"id": 4, "peer_address": "127.0.0.1:17004",
//!   "voter": false}`: writes the new member's address under its reserved key (see
//!   `peer/address_book.rs`: that is how every node, now or later, learns where it
//!   listens), waits until that write is committed, then adds the node as a learner.
//!   With `"voter": true` it then asks, again and again within [`PROMOTION_WAIT_MAX`],
//!   to promote the learner, which the leader grants once the learner caught up. An id
//!   that is already a voter is refused (409) before anything is written, so a typo
//!   cannot overwrite a voter's address; adding a learner again is a harmless retry.
//! - `POST /v1/admin/members/{id}/promote`: makes a learner a voter (409 while it lags).
//! - `DELETE /v1/admin/members/{id}`: removes a voter or a learner, then deletes its
//!   address key (the address goes after the member: never a member without one).
//!
//! Any node accepts them: the requests are ordinary [`Request`]s that the node handle
//! forwards to the leader. A change is answered once its configuration entry is
//! committed, with `{"voters": [...], "learners": [...], "position": "index@term"}`.
//!
//! Statuses: 400 for bad input (a malformed body, id 0, a change the configuration
//! refuses), 409 for a change that conflicts with the cluster's state *now* (another
//! change not committed yet, a learner too far behind to be promoted), 503 when no
//! leader answers, 504 for an unknown outcome. The replication crate reports the
//! conflicts as retryable `Unavailable` errors (the node handle retries those until
//! its request timeout); this module tells them apart from "no leader" by their
//! messages, which the replication crate's `membership.rs` words.

use super::{HttpState, error_response};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use replikv_core::error::Error;
use replikv_core::kv::MembershipChange;
use replikv_core::{NodeId, Reply, Request, Value};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use crate::peer::address_book::{lookup_member_address, member_key};

/// Longest `POST /v1/admin/members` with `"voter": true` waits for the new learner to
/// catch up before it gives up (409; the learner stays, promote it later).
pub const PROMOTION_WAIT_MAX: Duration = Duration::from_secs(30);

/// The body of `POST /v1/admin/members`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    id: u64,
    peer_address: SocketAddr,
    #[serde(default)]
    voter: bool,
}

fn parse_add_member(body: &[u8]) -> Result<AddMember, Error> {
    let request: AddMember = serde_json::from_slice(body).map_err(|error| {
        Error::InvalidInput(format!(
            "expected {{\"id\": N, \"peer_address\": \"host:port\", \"voter\": bool}}: {error}"
        ))
    })?;
    if request.id == 0 {
        return Err(Error::InvalidInput("node id 0 is reserved".into()));
    }
    Ok(request)
}

/// Whether a refused change conflicts with the cluster's current state (409) rather
/// than finding no leader (503). Matches the replication crate's wording.
fn is_conflict(error: &Error) -> bool {
    match error {
        Error::Unavailable(text) => {
            text.contains("is not committed yet") || text.contains("entries behind")
        }
        _ => false,
    }
}

fn membership_error(error: &Error) -> Response {
    if is_conflict(error) {
        return (StatusCode::CONFLICT, format!("{error}\n")).into_response();
    }
    error_response(error)
}

fn membership_response(reply: Reply) -> Response {
    match reply {
        Reply::Membership {
            voters,
            learners,
            position,
        } => axum::Json(serde_json::json!({
            "voters": voters.iter().map(|id| id.0).collect::<Vec<_>>(),
            "learners": learners.iter().map(|id| id.0).collect::<Vec<_>>(),
            "position": position.to_string(),
        }))
        .into_response(),
        Reply::Failed(error) => membership_error(&error),
        other => error_response(&Error::InvalidInput(format!("unexpected reply {other:?}"))),
    }
}

async fn change(state: &HttpState, change: MembershipChange) -> Reply {
    state.call(Request::ChangeMembership { change }).await
}

fn member_id(id: u64) -> Result<NodeId, Error> {
    if id == 0 {
        return Err(Error::InvalidInput("node id 0 is reserved".into()));
    }
    Ok(NodeId(id))
}

/// `GET /v1/admin/members`.
pub(super) async fn list(State(state): State<HttpState>) -> Response {
    let node = state.keyspaces.default_group();
    let Some(status) = node.status().await else {
        return error_response(&Error::Unavailable(
            "the node is stopped or overloaded".into(),
        ));
    };
    let replication = &status.replication;
    let known = node.peer_addresses();
    let members: BTreeSet<NodeId> = replication
        .voters
        .iter()
        .chain(&replication.learners)
        .chain(known.keys())
        .copied()
        .collect();
    let mut addresses = serde_json::Map::new();
    for member in members {
        let address = match known.get(&member) {
            Some(address) => Some(*address),
            None => lookup_member_address(node, member).await.ok().flatten(),
        };
        let text = address.map(|address| address.to_string());
        addresses.insert(member.0.to_string(), serde_json::json!(text));
    }
    axum::Json(serde_json::json!({
        "node_id": status.id.0,
        "leader": status.leader.map(|leader| leader.0),
        "voters": replication.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
        "learners": replication.learners.iter().map(|id| id.0).collect::<Vec<_>>(),
        "pending_change_index": replication.pending_membership_change.map(|index| index.0),
        "addresses": addresses,
    }))
    .into_response()
}

/// `POST /v1/admin/members`.
pub(super) async fn add(State(state): State<HttpState>, body: Bytes) -> Response {
    let request = match parse_add_member(&body) {
        Ok(request) => request,
        Err(error) => return error_response(&error),
    };
    let id = NodeId(request.id);
    // A typo must not overwrite a voter's address: refuse before writing anything.
    // (This node's view may lag the leader's; the leader refuses the change anyway.)
    let status = state.keyspaces.default_group().status().await;
    if status.is_some_and(|status| status.replication.voters.contains(&id)) {
        let text = format!("node {id} is already a voter; remove it first to add it again\n");
        return (StatusCode::CONFLICT, text).into_response();
    }
    let address = request.peer_address.to_string();
    let value = match Value::new(address.into_bytes()) {
        Ok(value) => value,
        Err(error) => return error_response(&error),
    };
    let put = Request::Put {
        key: member_key(id),
        value,
    };
    match state.call(put).await {
        Reply::Written { .. } => {}
        Reply::Failed(error) => return error_response(&error),
        other => return error_response(&Error::InvalidInput(format!("unexpected {other:?}"))),
    }
    let added = change(&state, MembershipChange::AddLearner(id)).await;
    if !request.voter || !matches!(added, Reply::Membership { .. }) {
        return membership_response(added);
    }
    promote_within(&state, id, PROMOTION_WAIT_MAX).await
}

/// Asks to promote `id` until it is granted, refused for good, or `wait_max` passed.
async fn promote_within(state: &HttpState, id: NodeId, wait_max: Duration) -> Response {
    let deadline = tokio::time::Instant::now() + wait_max;
    loop {
        let reply = change(state, MembershipChange::PromoteLearner(id)).await;
        let retry = matches!(&reply, Reply::Failed(error) if is_conflict(error));
        if !retry || tokio::time::Instant::now() >= deadline {
            return membership_response(reply);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `POST /v1/admin/members/{id}/promote`.
pub(super) async fn promote(State(state): State<HttpState>, Path(id): Path<u64>) -> Response {
    match member_id(id) {
        Ok(id) => membership_response(change(&state, MembershipChange::PromoteLearner(id)).await),
        Err(error) => error_response(&error),
    }
}

/// `DELETE /v1/admin/members/{id}`.
pub(super) async fn remove(State(state): State<HttpState>, Path(id): Path<u64>) -> Response {
    let id = match member_id(id) {
        Ok(id) => id,
        Err(error) => return error_response(&error),
    };
    let removed = change(&state, MembershipChange::Remove(id)).await;
    if matches!(removed, Reply::Membership { .. }) {
        // The member is gone; its address follows. Should this fail, the key stays
        // behind harmlessly (no configuration names the node) and a retry deletes it.
        if let Reply::Failed(error) = state
            .call(Request::Delete {
                key: member_key(id),
            })
            .await
        {
            tracing::warn!(member = %id, %error, "the removed member's address key stays");
        }
    }
    membership_response(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_member_bodies_are_checked() {
        let good = br#"{"id": 4, "peer_address": "127.0.0.1:17004"}"#;
        assert_eq!(
            parse_add_member(good).unwrap(),
            AddMember {
                id: 4,
                peer_address: SocketAddr::from(([127, 0, 0, 1], 17004)),
                voter: false,
            }
        );
        let voter = br#"{"id": 4, "peer_address": "127.0.0.1:1", "voter": true}"#;
        assert!(parse_add_member(voter).unwrap().voter);
        for bad in [
            &br#"{"id": 0, "peer_address": "127.0.0.1:1"}"#[..],
            br#"{"id": 4, "peer_address": "nowhere"}"#,
            br#"{"id": 4}"#,
            br#"{"id": -1, "peer_address": "127.0.0.1:1"}"#,
            br#"{"id": 4, "peer_address": "127.0.0.1:1", "extra": 1}"#,
            b"",
            b"\xff",
        ] {
            assert!(parse_add_member(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn conflicts_are_told_apart_from_a_missing_leader() {
        let pending =
            Error::Unavailable("the configuration change at 7 is not committed yet".into());
        let lagging = Error::Unavailable(
            "learner 4 lags 90 entries behind (at most 64 to be promoted)".into(),
        );
        assert!(is_conflict(&pending));
        assert!(is_conflict(&lagging));
        assert!(!is_conflict(&Error::Unavailable("no leader known".into())));
        assert!(!is_conflict(&Error::InvalidInput(
            "4 is not a learner".into()
        )));
        assert_eq!(membership_error(&lagging).status(), StatusCode::CONFLICT);
        let no_leader = Error::Unavailable("no leader".into());
        assert_eq!(
            membership_error(&no_leader).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
