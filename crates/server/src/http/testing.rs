//! `/v1/admin/testing/link-faults`: the live test's handle on the peer transport's
//! fault hook (`peer/faults.rs`).
//!
//! A live test slows, loses, duplicates and reorders replication messages per link at
//! run time: `PUT` with a JSON [`LinkFaults`] body (a `default` link fault and `peers`
//! overrides keyed by node id; every field optional, zero by default) replaces the
//! faults in force, `DELETE` restores perfect links, `GET` reads them. Each answers the
//! faults in force and the hook's counters (`lost`, `duplicated`, `delayed`,
//! `overflowed`). A body that does not parse or breaks a limit is a 400 that says why.
//!
//! The route exists only for nodes started with `--testing-faults`; on any other node
//! it answers 404, as if it did not exist, so a production node cannot be made lossy
//! through its API. It sits behind the same client authentication as every route.

use super::{HttpState, error_response};
use crate::peer::PeerFrame;
use crate::peer::faults::{FaultInjector, LinkFaults};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use replikv_core::error::Error;

/// The hook, when the node started with `--testing-faults`.
fn injector(state: &HttpState) -> Option<&FaultInjector<PeerFrame>> {
    state.keyspaces.default_group().peer_senders().faults()
}

/// What a node without `--testing-faults` answers: the route does not exist.
fn disabled() -> Response {
    let text = "testing faults are disabled: start the node with --testing-faults\n";
    (StatusCode::NOT_FOUND, text).into_response()
}

/// The faults in force and the hook's counters, as JSON.
fn answer(injector: &FaultInjector<PeerFrame>) -> Response {
    let mut answer = serde_json::json!({ "faults": injector.link_faults() });
    for (effect, count) in injector.counters.snapshot().by_effect() {
        answer[effect] = count.into();
    }
    axum::Json(answer).into_response()
}

/// `GET /v1/admin/testing/link-faults`.
pub(super) async fn link_faults(State(state): State<HttpState>) -> Response {
    injector(&state).map_or_else(disabled, answer)
}

/// `PUT /v1/admin/testing/link-faults` with a [`LinkFaults`] JSON body.
pub(super) async fn set_link_faults(State(state): State<HttpState>, body: Bytes) -> Response {
    let Some(injector) = injector(&state) else {
        return disabled();
    };
    let faults: LinkFaults = match serde_json::from_slice(&body) {
        Ok(faults) => faults,
        Err(error) => {
            let error = Error::InvalidInput(format!("link faults: {error}"));
            return error_response(&error);
        }
    };
    match injector.set_link_faults(faults) {
        Ok(()) => answer(injector),
        Err(error) => error_response(&error),
    }
}

/// `DELETE /v1/admin/testing/link-faults`: every link perfect again.
pub(super) async fn clear_link_faults(State(state): State<HttpState>) -> Response {
    let Some(injector) = injector(&state) else {
        return disabled();
    };
    let cleared = injector.set_link_faults(LinkFaults::default());
    debug_assert!(cleared.is_ok(), "no faults always validate");
    answer(injector)
}
