//! The key routes: `GET/PUT/DELETE /v1/kv/{key}`, with the read-consistency and
//! session-token headers parsed here.

use super::{HttpState, error_response, reply_response};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use replikv_core::error::Error;
use replikv_core::kv::ReadConsistency;
use replikv_core::{Key, LogPosition, Request, Value};

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
    crate::peer::address_book::check_client_key(text.as_bytes())?;
    Key::new(text.into_bytes())
}

pub(super) async fn get_key(
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

pub(super) async fn put_key(
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

pub(super) async fn delete_key(
    State(state): State<HttpState>,
    Path(key_text): Path<String>,
) -> Response {
    match key(key_text) {
        Ok(key) => reply_response(state.call(Request::Delete { key }).await),
        Err(error) => error_response(&error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
