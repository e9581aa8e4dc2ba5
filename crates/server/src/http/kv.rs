//! The key routes: `GET/PUT/DELETE /v1/kv/{key}` and `POST /v1/kv/{key}/cas`, with the
//! read-consistency, session-token and request-id headers parsed here.
//!
//! **Request ids.** A request that carries `x-replikv-client: <u64>` and
//! `x-replikv-sequence: <u64>` (both, nonzero, decimal) is served under that
//! [`RequestId`] instead of an identity borrowed from the pool. That is what makes a
//! client's retry safe: the state machine's client-session table remembers each
//! client's last applied write and its outcome, so a retry of the same (client,
//! sequence) after a timeout or a lost connection is answered with the first attempt's
//! outcome and not applied again. A client using these headers must number its requests
//! increasingly and have one write in flight at a time (the session table keeps only
//! the last one), which the `replikv-client` crate does. Only one of the two headers, or
//! a value that is not a nonzero u64, is refused with 400.
//!
//! **Compare-and-set.** `POST /v1/kv/{key}/cas` takes `{"expected": "..." | null,
//! "new": "..."}` (`null`: the key must be absent) and answers like RESP's `CAS`: 200
//! swapped, 409 the current value differs, 404 the key is absent. The swap itself is
//! one replicated write (deduplicated like any other); telling "differs" from "absent"
//! after a refused swap takes a linearizable read, so under concurrent writers that
//! classification describes the key just after the refusal. `PUT /v1/kv/{key}?if-version=N`
//! writes only if the key's version is still `N` (0: never written): 200 written, 409
//! the version moved on.
//!
//! **Expiry.** `PUT /v1/kv/{key}?ttl-ms=N` writes a value that expires N ms after the
//! leader's stamp of the write (see the README's "Key expiry"); it combines with
//! `if-version`. A plain PUT clears any expiry, like Redis's `SET`. A GET of a key that
//! expires answers its remaining time to live in [`TTL_HEADER`], counted on the serving
//! node's clock.

use super::{HttpState, error_response, reply_response, written};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use replikv_core::error::Error;
use replikv_core::kv::ReadConsistency;
use replikv_core::{ClientId, Key, LogPosition, Reply, Request, RequestId, Value, Version};
use serde::Deserialize;

/// The header naming the client identity of a request (a u64).
pub const CLIENT_HEADER: &str = "x-replikv-client";
/// The header numbering a client's requests (a u64; a retry repeats it).
pub const SEQUENCE_HEADER: &str = "x-replikv-sequence";

/// The header of a GET answer that holds the key's remaining time to live, in ms
/// (absent: the key does not expire).
pub const TTL_HEADER: &str = "x-replikv-ttl-ms";

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

/// The request id the client chose (`None`: it chose none, borrow one from the pool).
fn request_id(headers: &HeaderMap) -> Result<Option<RequestId>, Error> {
    let number = |name: &str| -> Result<Option<u64>, Error> {
        let Some(value) = headers.get(name) else {
            return Ok(None);
        };
        match value
            .to_str()
            .ok()
            .and_then(|text| text.parse::<u64>().ok())
        {
            Some(number) if number > 0 => Ok(Some(number)),
            _ => Err(Error::InvalidInput(format!(
                "{name} must be a nonzero unsigned 64-bit decimal number"
            ))),
        }
    };
    match (number(CLIENT_HEADER)?, number(SEQUENCE_HEADER)?) {
        (None, None) => Ok(None),
        (Some(client), Some(sequence)) => Ok(Some(RequestId {
            client: ClientId(client),
            sequence,
        })),
        _ => Err(Error::InvalidInput(format!(
            "{CLIENT_HEADER} and {SEQUENCE_HEADER} go together"
        ))),
    }
}

fn key(text: String) -> Result<Key, Error> {
    crate::peer::address_book::check_client_key(text.as_bytes())?;
    Key::new(text.into_bytes())
}

/// Serves `request` under the client's request id if it sent one, else under a pooled
/// identity.
async fn call(state: &HttpState, headers: &HeaderMap, request: Request) -> Reply {
    match request_id(headers) {
        Ok(None) => state.call(request).await,
        Ok(Some(request_id)) => {
            let node = state.keyspaces.route(&request).clone();
            node.request(request_id, request).await
        }
        Err(error) => Reply::Failed(error),
    }
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
    let request = Request::GetWithExpiry { key, consistency };
    match call(&state, &headers, request).await {
        Reply::ReadWithExpiry {
            value,
            version,
            expires_at_unix_ms,
            position,
        } => {
            let mut response = reply_response(Reply::Read {
                value,
                version,
                position,
            });
            if let Some(expires_at) = expires_at_unix_ms {
                let now = state.keyspaces.default_group().wall_clock_unix_ms();
                let remaining = expires_at.saturating_sub(now);
                response.headers_mut().insert(TTL_HEADER, remaining.into());
            }
            response
        }
        other => reply_response(other),
    }
}

/// The query of a PUT: `if-version=N` makes it a compare-and-set on the version,
/// `ttl-ms=N` gives the value a time to live. Anything else in the query is refused
/// rather than ignored.
fn put_query(query: Option<&str>) -> Result<(Option<u64>, Option<u64>), Error> {
    let (mut if_version, mut ttl_ms) = (None, None);
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let parsed = match pair.split_once('=') {
            Some(("if-version", number)) if if_version.is_none() => {
                number.parse().ok().map(|number| if_version = Some(number))
            }
            Some(("ttl-ms", number)) if ttl_ms.is_none() => number
                .parse()
                .ok()
                .filter(|ttl| *ttl > 0)
                .map(|number| ttl_ms = Some(number)),
            _ => None,
        };
        if parsed.is_none() {
            return Err(Error::InvalidInput(format!(
                "a PUT takes if-version=<u64> and ttl-ms=<positive u64>, not {pair:?}"
            )));
        }
    }
    Ok((if_version, ttl_ms))
}

pub(super) async fn put_key(
    State(state): State<HttpState>,
    Path(key_text): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = key(key_text).and_then(|key| {
        let value = Value::new(body.to_vec())?;
        Ok((key, value, put_query(uri.query())?))
    });
    let (key, value, (if_version, ttl_ms)) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return error_response(&error),
    };
    let request = match (if_version, ttl_ms) {
        (None, None) => Request::Put { key, value },
        (Some(expected), None) => Request::CompareAndSetVersion {
            key,
            expected: Version(expected),
            new: value,
        },
        (expected, Some(ttl_ms)) => Request::PutWithExpiry {
            key,
            value,
            expected_version: expected.map(Version),
            expiry: replikv_core::Expiry::AfterMs(ttl_ms),
        },
    };
    if if_version.is_none() {
        return reply_response(call(&state, &headers, request).await);
    }
    match call(&state, &headers, request).await {
        Reply::CompareAndSet {
            swapped,
            version,
            position,
        } => {
            let (status, body) = if swapped {
                (StatusCode::OK, "written\n")
            } else {
                (StatusCode::CONFLICT, "the version differs\n")
            };
            written(version.0, position, body.as_bytes().to_vec(), status)
        }
        other => reply_response(other),
    }
}

pub(super) async fn delete_key(
    State(state): State<HttpState>,
    Path(key_text): Path<String>,
    headers: HeaderMap,
) -> Response {
    match key(key_text) {
        Ok(key) => reply_response(call(&state, &headers, Request::Delete { key }).await),
        Err(error) => error_response(&error),
    }
}

/// The body of `POST /v1/kv/{key}/cas`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CasBody {
    #[serde(default)]
    expected: Option<String>,
    new: String,
}

fn cas_request(key_text: String, body: &[u8]) -> Result<Request, Error> {
    let key = key(key_text)?;
    let body: CasBody = serde_json::from_slice(body).map_err(|error| {
        Error::InvalidInput(format!(
            "the body must be {{\"expected\": string or null, \"new\": string}}: {error}"
        ))
    })?;
    let expected = body.expected.map(|text| Value::new(text.into_bytes()));
    Ok(Request::CompareAndSet {
        key,
        expected: expected.transpose()?,
        new: Value::new(body.new.into_bytes())?,
    })
}

pub(super) async fn compare_and_set(
    State(state): State<HttpState>,
    Path(key_text): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match cas_request(key_text, &body) {
        Ok(request) => request,
        Err(error) => return error_response(&error),
    };
    let Request::CompareAndSet { key, expected, .. } = &request else {
        unreachable!("cas_request builds a compare-and-set");
    };
    let (key, expected_absent) = (key.clone(), expected.is_none());
    let (version, position) = match call(&state, &headers, request).await {
        Reply::CompareAndSet {
            swapped: true,
            version,
            position,
        } => return written(version.0, position, b"swapped\n".to_vec(), StatusCode::OK),
        Reply::CompareAndSet {
            version, position, ..
        } => (version, position),
        other => return reply_response(other),
    };
    if expected_absent {
        return written(
            version.0,
            position,
            b"differs\n".to_vec(),
            StatusCode::CONFLICT,
        );
    }
    // Refused: the key is absent or holds another value; a read tells which.
    let read = Request::Get {
        key,
        consistency: ReadConsistency::Linearizable,
    };
    match state.call(read).await {
        Reply::Read {
            value: None,
            version,
            position,
        } => written(
            version.0,
            position,
            b"absent\n".to_vec(),
            StatusCode::NOT_FOUND,
        ),
        Reply::Read {
            version, position, ..
        } => written(
            version.0,
            position,
            b"differs\n".to_vec(),
            StatusCode::CONFLICT,
        ),
        other => reply_response(other),
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

    fn with(client: Option<&'static str>, sequence: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(client) = client {
            headers.insert(CLIENT_HEADER, HeaderValue::from_static(client));
        }
        if let Some(sequence) = sequence {
            headers.insert(SEQUENCE_HEADER, HeaderValue::from_static(sequence));
        }
        headers
    }

    #[test]
    fn request_id_headers_are_checked() {
        assert_eq!(request_id(&with(None, None)), Ok(None));
        let id = RequestId {
            client: ClientId(18_446_744_073_709_551_615),
            sequence: 7,
        };
        let both = with(Some("18446744073709551615"), Some("7"));
        assert_eq!(request_id(&both), Ok(Some(id)));
        let bad = [
            (Some("1"), None),
            (None, Some("1")),
            (Some("0"), Some("1")),
            (Some("1"), Some("0")),
            (Some("-1"), Some("1")),
            (Some("1"), Some("x")),
            (Some("18446744073709551616"), Some("1")),
            (Some(" 1"), Some("1")),
        ];
        for (client, sequence) in bad {
            let result = request_id(&with(client, sequence));
            assert!(
                matches!(result, Err(Error::InvalidInput(_))),
                "{client:?} {sequence:?}: {result:?}"
            );
        }
    }

    #[test]
    fn put_queries_are_checked() {
        assert_eq!(put_query(None), Ok((None, None)));
        assert_eq!(put_query(Some("")), Ok((None, None)));
        assert_eq!(put_query(Some("if-version=0")), Ok((Some(0), None)));
        assert_eq!(put_query(Some("if-version=42")), Ok((Some(42), None)));
        assert_eq!(put_query(Some("ttl-ms=5")), Ok((None, Some(5))));
        assert_eq!(
            put_query(Some("ttl-ms=5&if-version=2")),
            Ok((Some(2), Some(5)))
        );
        for bad in [
            "if-version=",
            "if-version=-1",
            "version=1",
            "if-version=1&x=2",
            "if-version=1&if-version=2",
            "ttl-ms=0",
            "ttl-ms=-3",
            "x",
        ] {
            assert!(put_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cas_bodies_are_checked() {
        let request = cas_request("k".into(), br#"{"expected": null, "new": "v"}"#).unwrap();
        let expected = Request::CompareAndSet {
            key: Key::new("k").unwrap(),
            expected: None,
            new: Value::new("v").unwrap(),
        };
        assert_eq!(request, expected);
        let request = cas_request("k".into(), br#"{"expected": "a", "new": "b"}"#).unwrap();
        let Request::CompareAndSet { expected, .. } = request else {
            panic!("{request:?}");
        };
        assert_eq!(expected, Some(Value::new("a").unwrap()));
        for bad in [
            &b""[..],
            b"{}",
            b"{\"expected\": 1, \"new\": \"b\"}",
            b"{\"new\": \"b\", \"extra\": 1}",
            b"[1]",
        ] {
            assert!(cas_request("k".into(), bad).is_err(), "{bad:?}");
        }
        assert!(cas_request(String::new(), br#"{"new": "b"}"#).is_err());
    }
}
