//! The HTTP API (axum): keys over REST, and the node's status as JSON.
//!
//! - `GET /v1/kv/{key}`: 200 with the value as the body, or 404; the key's version in
//!   `x-replikv-version` and the read's log position in `x-replikv-position`.
//! - `PUT /v1/kv/{key}` with the value as the body: 200; version and position headers.
//! - `DELETE /v1/kv/{key}`: 200; version and position headers.
//! - `POST /v1/kv/{key}/cas` with `{"expected": "..." | null, "new": "..."}`: 200
//!   swapped, 409 the value differs, 404 the key is absent (RESP's `CAS`); and
//!   `PUT /v1/kv/{key}?if-version=N`: written only if the key's version is still `N`
//!   (409 otherwise).
//! - Every key route takes an optional request id, `x-replikv-client` and
//!   `x-replikv-sequence` (nonzero u64s, both or neither): a retry under the same id is
//!   applied once (see `kv`).
//! - `GET /metrics`: the node's metrics in Prometheus's text format (`metrics.rs`).
//! - `GET /v1/status`: role, leader, term, positions, commit mode (and whether it is
//!   lossy with the current voters), voters and learners, per-follower lag, discarded
//!   writes, as JSON.
//! - `POST /v1/admin/transfer-leadership` with a node id as the body (empty: the leader
//!   picks the most caught-up voter): Raft's leadership transfer, answered once the
//!   target leads, with `{"leader": id, "term": t}`. Any node accepts it (forwarded to
//!   the leader); while it runs the leader refuses writes with 503, retryable.
//! - `PUT /v1/admin/testing/clock-offset` with `{"offset_ms": N}`: skews this node's
//!   wall clock for key expiry (only with `--testing-faults`; 404 otherwise).
//! - `GET/POST /v1/admin/members`, `POST /v1/admin/members/{id}/promote`,
//!   `DELETE /v1/admin/members/{id}`: list, add (learner or voter), promote and remove
//!   members of a running cluster (`members.rs`).
//! - `GET/PUT/DELETE /v1/admin/testing/link-faults`: live tests only (`--testing-faults`,
//!   else 404): read, set or clear the peer transport's per-link faults (`testing.rs`).
//!
//! With a client password configured (`client_password`), every route answers 401
//! unless the request carries `Authorization: Bearer <password>`.
//!
//! Keys are the URL's last path segment, percent-decoded (so UTF-8 keys; binary keys
//! need the RESP API). Reads take `x-replikv-consistency: linearizable` (default),
//! `lease`, `follower` or `session`; a session read also takes `x-replikv-session`,
//! the highest `x-replikv-position` the client has seen (`index@term`).
//!
//! HTTP requests without request-id headers have no connection-long session, so each
//! borrows a client identity from a small pool ([`CLIENT_POOL_MAX`]) and returns it afterwards: the state
//! machine's table of client sessions then holds as many HTTP clients as there are
//! concurrent HTTP requests, not one per request (which would evict the RESP
//! connections' sessions and with them their protection against retried writes).
//!
//! Errors map to statuses by what the client may assume: 400 invalid (not applied),
//! 429 overloaded and 503 unavailable (not applied, retry), 504 unknown outcome (the
//! write may or may not have taken effect), 500 storage failure.

mod admin;
mod kv;
mod members;
mod metrics;
mod testing;

pub use admin::status_json;

use crate::auth::ClientAuth;
use crate::keyspace::Keyspaces;
use crate::node_loop::NodeHandle;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use replikv_core::error::Error;
use replikv_core::limits::VALUE_SIZE_MAX_BYTES;
use replikv_core::{ClientId, LogPosition, Reply, Request, RequestId};
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
pub(crate) struct HttpState {
    pub(crate) keyspaces: Keyspaces,
    clients: Arc<ClientPool>,
    auth: ClientAuth,
}

impl HttpState {
    pub(crate) async fn call(&self, request: Request) -> Reply {
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

/// The HTTP routes over `keyspaces`, each behind `auth` when it requires a password.
pub fn router(keyspaces: Keyspaces, auth: ClientAuth) -> Router {
    let state = HttpState {
        keyspaces,
        clients: Arc::new(ClientPool::default()),
        auth,
    };
    Router::new()
        .route(
            "/v1/kv/{key}",
            get(kv::get_key).put(kv::put_key).delete(kv::delete_key),
        )
        .route("/v1/kv/{key}/cas", post(kv::compare_and_set))
        .route("/v1/status", get(admin::status))
        .route("/metrics", get(metrics::scrape))
        .route(
            "/v1/admin/transfer-leadership",
            post(admin::transfer_leadership),
        )
        .route("/v1/admin/members", get(members::list).post(members::add))
        .route(
            "/v1/admin/testing/clock-offset",
            axum::routing::put(admin::set_clock_offset),
        )
        .route("/v1/admin/members/{id}/promote", post(members::promote))
        .route("/v1/admin/members/{id}", delete(members::remove))
        .route(
            "/v1/admin/testing/link-faults",
            get(testing::link_faults)
                .put(testing::set_link_faults)
                .delete(testing::clear_link_faults),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::record,
        ))
        .layer(DefaultBodyLimit::max(VALUE_SIZE_MAX_BYTES))
        .with_state(state)
}

/// Serves HTTP on `listener` until shutdown.
pub async fn run_listener(
    listener: tokio::net::TcpListener,
    keyspaces: Keyspaces,
    auth: ClientAuth,
    mut shutdown: watch::Receiver<bool>,
) {
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    if let Err(error) = axum::serve(listener, router(keyspaces, auth))
        .with_graceful_shutdown(stopping)
        .await
    {
        tracing::warn!(%error, "the HTTP server stopped");
    }
}

/// The authentication layer: with a client password configured, every route (
/// `/metrics` included: Prometheus sends bearer tokens too) wants `Authorization:
/// Bearer <password>`, else 401.
async fn authorize(
    State(state): State<HttpState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if state.auth.required() {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| bearer_token(value.as_bytes()));
        if !presented.is_some_and(|token| state.auth.check(token)) {
            let challenge = [(header::WWW_AUTHENTICATE, "Bearer realm=\"replikv\"")];
            let text = "authentication required: Authorization: Bearer <client password>\n";
            return (StatusCode::UNAUTHORIZED, challenge, text).into_response();
        }
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header (the scheme's case is free).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

pub(crate) fn error_response(error: &Error) -> Response {
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

pub(crate) fn reply_response(reply: Reply) -> Response {
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
