//! `GET /metrics` and the HTTP side of the request metrics.
//!
//! The scrape handler asks the node for its status (the state metrics are read at
//! scrape time, see `crate::metrics`), then answers the whole registry in Prometheus's
//! text exposition format (version 0.0.4). If the node does not answer (stopped, or its
//! queue full) the scrape still succeeds with the event metrics and the state as last
//! read: a monitoring system learns more from a partial scrape than from an error.
//!
//! [`record`] is a route layer: every request that matched a route is counted and timed
//! under `api="http"`, its command being the method and the route's template
//! (`GET /v1/kv/{key}`, never the key itself, so the label set stays bounded), its
//! outcome derived from the status code the same way the RESP errors' prefixes are.

use super::HttpState;
use crate::metrics::{Api, Outcome};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`.
pub(super) async fn scrape(State(state): State<HttpState>) -> Response {
    let node = state.keyspaces.default_group();
    let status = node.status().await;
    let text = node.metrics().render(status.as_ref());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Counts and times one HTTP request; see the module documentation.
pub(super) async fn record(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    let command = format!("{method} {route}");
    let outcome = outcome(response.status());
    let metrics = state.keyspaces.default_group().metrics();
    metrics.record_request(Api::Http, &command, outcome, started.elapsed());
    response
}

/// A status code as an outcome (404 is a successful read of an absent key).
fn outcome(status: StatusCode) -> Outcome {
    match status {
        status if status.is_success() || status == StatusCode::NOT_FOUND => Outcome::Ok,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Outcome::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => Outcome::Overloaded,
        StatusCode::SERVICE_UNAVAILABLE => Outcome::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => Outcome::Unknown,
        StatusCode::INTERNAL_SERVER_ERROR => Outcome::StorageFailed,
        _ => Outcome::Invalid,
    }
}
