//! The HTTP API (axum): keys over REST, and the node's status as JSON.
//!
//! - `GET /v1/kv/{key}`: 200 with the value as the body, or 404; the key's version in
//!   `x-replikv-version` and the read's log position in `x-replikv-position`.
//! - `PUT /v1/kv/{key}` with the value as the body: 200; version and position headers.
//! - `DELETE /v1/kv/{key}`: 200; version and position headers.
//! - `GET /v1/status`: role, leader, term, positions, commit mode (and whether it is
//!   lossy with the current voters), voters and learners, per-follower lag, discarded
//!   writes, as JSON.
//! - `POST /v1/admin/transfer-leadership` with a node id as the body (empty: the leader
//!   picks the most caught-up voter): Raft's leadership transfer, answered once the
//!   target leads, with `{"leader": id, "term": t}`. Any node accepts it (forwarded to
//!   the leader); while it runs the leader refuses writes with 503, retryable.
//!
//! Keys are the URL's last path segment, percent-decoded (so UTF-8 keys; binary keys
//! need the RESP API). Reads take `x-replikv-consistency: linearizable` (default),
//! `lease`, `follower` or `session`; a session read also takes `x-replikv-session`,
//! the highest `x-replikv-position` the client has seen (`index@term`).
//!
//! HTTP requests have no connection-long session, so each borrows a client identity
//! from a small pool ([`CLIENT_POOL_MAX`]) and returns it afterwards: the state
//! machine's table of client sessions then holds as many HTTP clients as there are
//! concurrent HTTP requests, not one per request (which would evict the RESP
//! connections' sessions and with them their protection against retried writes).
//!
//! Errors map to statuses by what the client may assume: 400 invalid (not applied),
//! 429 overloaded and 503 unavailable (not applied, retry), 504 unknown outcome (the
//! write may or may not have taken effect), 500 storage failure.

use crate::keyspace::Keyspaces;
use crate::node_loop::{NodeHandle, NodeStatus};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use replikv_core::error::Error;
use replikv_core::kv::ReadConsistency;
use replikv_core::limits::VALUE_SIZE_MAX_BYTES;
use replikv_core::{ClientId, Key, LogPosition, NodeId, Reply, Request, RequestId, Value};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Most idle client identities kept for reuse.
pub const CLIENT_POOL_MAX: usize = 256;

/// Client identities lent to HTTP requests, with their last sequence number.
#[derive(Debug, Default)]
struct ClientPool {
    free: Mutex<Vec<(ClientId, u64)>>,
}

impl ClientPool {
    fn take(&self) -> (ClientId, u64) {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        free.pop()
            .unwrap_or_else(|| (NodeHandle::new_client_id(), 0))
    }

    fn give_back(&self, client: (ClientId, u64)) {
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if free.len() < CLIENT_POOL_MAX {
            free.push(client);
        }
    }
}

#[derive(Clone, Debug)]
struct HttpState {
    keyspaces: Keyspaces,
    clients: Arc<ClientPool>,
}

impl HttpState {
    async fn call(&self, request: Request) -> Reply {
        let (client, sequence) = self.clients.take();
        let request_id = RequestId {
            client,
            sequence: sequence + 1,
        };
        let node = self.keyspaces.route(&request).clone();
        let reply = node.request(request_id, request).await;
        self.clients.give_back((client, sequence + 1));
        reply
    }
}

/// The HTTP routes over `keyspaces`.
pub fn router(keyspaces: Keyspaces) -> Router {
    let state = HttpState {
        keyspaces,
        clients: Arc::new(ClientPool::default()),
    };
    Router::new()
        .route("/v1/kv/{key}", get(get_key).put(put_key).delete(delete_key))
        .route("/v1/status", get(status))
        .route("/v1/admin/transfer-leadership", post(transfer_leadership))
        .layer(DefaultBodyLimit::max(VALUE_SIZE_MAX_BYTES))
        .with_state(state)
}

/// Serves HTTP on `listener` until shutdown.
pub async fn run_listener(
    listener: tokio::net::TcpListener,
    keyspaces: Keyspaces,
    mut shutdown: watch::Receiver<bool>,
) {
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    if let Err(error) = axum::serve(listener, router(keyspaces))
        .with_graceful_shutdown(stopping)
        .await
    {
        tracing::warn!(%error, "the HTTP server stopped");
    }
}

fn error_response(error: &Error) -> Response {
    let status = match error {
        Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
        Error::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
        Error::NotLeader { .. } | Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Indeterminate(_) => StatusCode::GATEWAY_TIMEOUT,
        Error::Corruption(_) | Error::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, format!("{error}\n")).into_response()
}

fn written(version: u64, position: LogPosition, body: Vec<u8>, status: StatusCode) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert("x-replikv-version", HeaderValue::from(version));
    if let Ok(position) = HeaderValue::from_str(&position.to_string()) {
        headers.insert("x-replikv-position", position);
    }
    response
}

fn reply_response(reply: Reply) -> Response {
    match reply {
        Reply::Read {
            value: Some(value),
            version,
            position,
        } => written(version.0, position, value.into_bytes(), StatusCode::OK),
        Reply::Read {
            value: None,
            version,
            position,
        } => written(
            version.0,
            position,
            b"not found\n".to_vec(),
            StatusCode::NOT_FOUND,
        ),
        Reply::Written { version, position } => {
            written(version.0, position, Vec::new(), StatusCode::OK)
        }
        Reply::Failed(error) => error_response(&error),
        other => error_response(&Error::InvalidInput(format!("unexpected reply {other:?}"))),
    }
}

/// Parses `index@term`, the form positions are printed in.
fn parse_position(text: &str) -> Option<LogPosition> {
    let (index, term) = text.split_once('@')?;
    Some(LogPosition::new(term.parse().ok()?, index.parse().ok()?))
}

fn consistency(headers: &HeaderMap) -> Result<ReadConsistency, Error> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let invalid = |text: &str| Err(Error::InvalidInput(text.into()));
    match header("x-replikv-consistency").unwrap_or("linearizable") {
        "linearizable" => Ok(ReadConsistency::Linearizable),
        "lease" => Ok(ReadConsistency::Lease),
        "follower" => Ok(ReadConsistency::Follower),
        "session" => match header("x-replikv-session").map(parse_position) {
            None => Ok(ReadConsistency::Session {
                token: LogPosition::ZERO,
            }),
            Some(Some(token)) => Ok(ReadConsistency::Session { token }),
            Some(None) => invalid("x-replikv-session must be index@term"),
        },
        _ => invalid("x-replikv-consistency must be linearizable, lease, follower or session"),
    }
}

fn key(text: String) -> Result<Key, Error> {
    Key::new(text.into_bytes())
}

async fn get_key(
    State(state): State<HttpState>,
    Path(key_text): Path<String>,
    headers: HeaderMap,
) -> Response {
    let key = match key(key_text) {
        Ok(key) => key,
        Err(error) => return error_response(&error),
    };
    let consistency = match consistency(&headers) {
        Ok(consistency) => consistency,
        Err(error) => return error_response(&error),
    };
    reply_response(state.call(Request::Get { key, consistency }).await)
}

async fn put_key(
    State(state): State<HttpState>,
    Path(key_text): Path<String>,
    body: Bytes,
) -> Response {
    let key = match key(key_text) {
        Ok(key) => key,
        Err(error) => return error_response(&error),
    };
    let value = match Value::new(body.to_vec()) {
        Ok(value) => value,
        Err(error) => return error_response(&error),
    };
    reply_response(state.call(Request::Put { key, value }).await)
}

async fn delete_key(State(state): State<HttpState>, Path(key_text): Path<String>) -> Response {
    match key(key_text) {
        Ok(key) => reply_response(state.call(Request::Delete { key }).await),
        Err(error) => error_response(&error),
    }
}

async fn status(State(state): State<HttpState>) -> Response {
    match state.keyspaces.default_group().status().await {
        Some(status) => axum::Json(status_json(&status)).into_response(),
        None => error_response(&Error::Unavailable(
            "the node is stopped or overloaded".into(),
        )),
    }
}

/// `POST /v1/admin/transfer-leadership`: the body names the target node (or is empty).
async fn transfer_leadership(State(state): State<HttpState>, body: Bytes) -> Response {
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
        "lossy": status.replication.lossy,
        "voters": status.replication.voters.iter().map(|id| id.0).collect::<Vec<_>>(),
        "learners": status.replication.learners.iter().map(|id| id.0).collect::<Vec<_>>(),
        "writes_discarded": status.writes_discarded,
        "peer_messages_dropped": status.peer_messages_dropped,
        "elections_started": status.stats.elections_started,
        "followers": followers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_as_they_print() {
        let position = LogPosition::new(3, 42);
        assert_eq!(parse_position(&position.to_string()), Some(position));
        for bad in ["", "42", "a@b", "1@", "@1"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }

    #[test]
    fn consistency_headers_are_checked() {
        let mut headers = HeaderMap::new();
        assert_eq!(consistency(&headers), Ok(ReadConsistency::Linearizable));
        headers.insert("x-replikv-consistency", HeaderValue::from_static("session"));
        headers.insert("x-replikv-session", HeaderValue::from_static("7@2"));
        assert_eq!(
            consistency(&headers),
            Ok(ReadConsistency::Session {
                token: LogPosition::new(2, 7)
            })
        );
        headers.insert("x-replikv-session", HeaderValue::from_static("junk"));
        assert!(consistency(&headers).is_err());
        headers.insert(
            "x-replikv-consistency",
            HeaderValue::from_static("eventual"),
        );
        assert!(consistency(&headers).is_err());
    }
}
