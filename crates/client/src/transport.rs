//! The [`Client`] and its request loop: where the endpoints, the leader, the request
//! ids and the session token live, and how one operation becomes bounded HTTP attempts.
//!
//! An operation is a [`Call`]: method, path, body, and whether it must reach the leader
//! or may go to any node. [`Client::execute`] runs it: pick an endpoint (the known
//! leader, discovering it if unknown; or the next endpoint in rotation), send, classify
//! the answer with [`wire::classify`], and either return, stop (invalid), or forget the
//! leader, back off and try again, up to [`ClientOptions::attempts_max`] attempts. A
//! write's attempts all carry the same request id, so whichever of them the cluster
//! applies, it applies once; the loop remembers whether any attempt *may* have been
//! applied (sent and not answered, or answered 504), which decides between
//! [`ClientError::Unavailable`] and [`ClientError::OutcomeUnknown`] when it gives up.
//! Every successful answer's position raises the session token.
//!
//! Two refinements keep requests off dead ends: a discovered leader is trusted for
//! [`ClientOptions::leader_refresh_ms`] only (after a leadership transfer the old leader
//! still answers, by forwarding, so nothing else would reveal the change), and an
//! endpoint that refused a connection is skipped by the rotation for
//! [`ClientOptions::endpoint_down_ms`] (unless every endpoint is).

use crate::error::{ClientError, Result};
use crate::status::{ClusterStatus, EndpointStatus, NodeStatus};
use crate::wire::{self, Attempt, Consistency};
use crate::{CasOutcome, ClientOptions, Versioned, Written};
use replikv_core::{Key, LogPosition, Value};
use reqwest::{Method, Url};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Most endpoints a client takes.
pub const ENDPOINTS_MAX: usize = 64;

/// A replikv client; see the crate documentation. Cheap to share behind an `Arc`; all
/// methods take `&self`.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Vec<Url>,
    options: ClientOptions,
    client_id: u64,
    /// The last sequence number used; locked for a whole write, so one is in flight.
    sequence: tokio::sync::Mutex<u64>,
    /// Index into `endpoints` of the node believed to lead, and when that was learned.
    leader: Mutex<Option<(usize, Instant)>>,
    /// Per endpoint, until when it is skipped by the rotation (a refused connection).
    down_until: Mutex<Vec<Option<Instant>>>,
    /// The highest position seen in any answer: the session token.
    session: Mutex<LogPosition>,
    /// Rotation over the endpoints for reads that any node serves.
    next_endpoint: AtomicUsize,
}

/// Where a call may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Leader,
    Any,
}

/// One operation, as HTTP.
#[derive(Debug)]
struct Call<'a> {
    method: Method,
    key: &'a str,
    /// A path segment after the key (`cas`).
    suffix: Option<&'static str>,
    query: Option<String>,
    body: Vec<u8>,
    /// Read consistency header, for reads.
    consistency: Option<Consistency>,
    target: Target,
    /// `(client, sequence)` for writes.
    request_id: Option<(u64, u64)>,
}

/// A definite HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    version: Option<u64>,
    position: Option<LogPosition>,
    body: Vec<u8>,
    endpoint: String,
}

/// A failed attempt: what happened and whether the request may have reached a node.
#[derive(Debug)]
struct Failure {
    detail: String,
    maybe_sent: bool,
}

/// Parses `host:port` or `http://host:port` into a base URL.
fn parse_endpoint(text: &str) -> Result<Url> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url = Url::parse(&with_scheme)
        .map_err(|error| ClientError::Config(format!("endpoint {text:?}: {error}")))?;
    if url.host().is_none() || url.cannot_be_a_base() || url.scheme() != "http" {
        return Err(ClientError::Config(format!(
            "endpoint {text:?} is not host:port or http://host:port"
        )));
    }
    Ok(url)
}

impl Client {
    /// A client of the cluster reachable at `endpoints` (HTTP addresses, `host:port`
    /// or `http://host:port`). Contacts nobody yet: discovery happens on first use.
    pub fn new(endpoints: &[impl AsRef<str>], options: ClientOptions) -> Result<Client> {
        if endpoints.is_empty() || endpoints.len() > ENDPOINTS_MAX {
            return Err(ClientError::Config(format!(
                "between 1 and {ENDPOINTS_MAX} endpoints, not {}",
                endpoints.len()
            )));
        }
        if options.attempts_max == 0 {
            return Err(ClientError::Config(
                "attempts_max must be at least 1".into(),
            ));
        }
        let endpoints = endpoints
            .iter()
            .map(|endpoint| parse_endpoint(endpoint.as_ref()))
            .collect::<Result<Vec<Url>>>()?;
        let http = reqwest::Client::builder()
            .default_headers(authorization_headers(options.password.as_deref())?)
            .timeout(Duration::from_millis(options.attempt_timeout_ms))
            .connect_timeout(Duration::from_millis(options.connect_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| ClientError::Config(format!("HTTP client: {error}")))?;
        let client_id = options
            .client_id
            .unwrap_or_else(|| rand::random::<u64>().max(1));
        let down_until = Mutex::new(vec![None; endpoints.len()]);
        Ok(Client {
            http,
            endpoints,
            options,
            client_id,
            sequence: tokio::sync::Mutex::new(0),
            leader: Mutex::new(None),
            down_until,
            session: Mutex::new(LogPosition::ZERO),
            next_endpoint: AtomicUsize::new(0),
        })
    }

    /// This client's identity (what its writes carry in `x-replikv-client`).
    #[must_use]
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// The session token: the highest log position this client has seen.
    #[must_use]
    pub fn session_position(&self) -> LogPosition {
        *lock(&self.session)
    }

    /// The endpoint currently believed to lead, if any.
    #[must_use]
    pub fn leader_endpoint(&self) -> Option<String> {
        lock(&self.leader).map(|(index, _)| display(&self.endpoints[index]))
    }

    /// Reads `key`; `None` if it is absent.
    pub async fn get(&self, key: &str, consistency: Consistency) -> Result<Option<Versioned>> {
        check_key(key)?;
        let call = Call {
            consistency: Some(consistency),
            target: if consistency.needs_leader() {
                Target::Leader
            } else {
                Target::Any
            },
            ..Call::new(Method::GET, key)
        };
        let answer = self.execute(&call).await?;
        match answer.status {
            200 => Ok(Some(Versioned {
                version: required(answer.version, &answer)?,
                position: required(answer.position, &answer)?,
                value: answer.body,
                served_by: answer.endpoint,
            })),
            404 if answer.version.is_some() => Ok(None),
            _ => Err(unexpected(&answer)),
        }
    }

    /// Writes `value` under `key`.
    pub async fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<Written> {
        check_key(key)?;
        check_value(value.as_ref())?;
        let call = Call {
            body: value.as_ref().to_vec(),
            ..Call::new(Method::PUT, key)
        };
        let answer = self.write(call).await?;
        written(&answer)
    }

    /// Deletes `key` (a delete of an absent key succeeds, and counts as a write).
    pub async fn delete(&self, key: &str) -> Result<Written> {
        check_key(key)?;
        let answer = self.write(Call::new(Method::DELETE, key)).await?;
        written(&answer)
    }

    /// Writes `new` only if `key` holds `expected` (`None`: only if it is absent).
    pub async fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
    ) -> Result<CasOutcome> {
        check_key(key)?;
        check_value(new.as_bytes())?;
        if let Some(expected) = expected {
            check_value(expected.as_bytes())?;
        }
        let body = serde_json::json!({"expected": expected, "new": new});
        let call = Call {
            suffix: Some("cas"),
            body: body.to_string().into_bytes(),
            ..Call::new(Method::POST, key)
        };
        let answer = self.write(call).await?;
        match answer.status {
            200 => Ok(CasOutcome::Swapped(written(&answer)?)),
            409 => Ok(CasOutcome::Differs),
            404 if answer.version.is_some() => Ok(CasOutcome::Absent),
            _ => Err(unexpected(&answer)),
        }
    }

    /// Writes `new` only if `key`'s version is still `expected` (0: never written):
    /// [`CasOutcome::Swapped`] or [`CasOutcome::Differs`].
    pub async fn compare_and_set_version(
        &self,
        key: &str,
        expected: u64,
        new: impl AsRef<[u8]>,
    ) -> Result<CasOutcome> {
        check_key(key)?;
        check_value(new.as_ref())?;
        let call = Call {
            query: Some(format!("if-version={expected}")),
            body: new.as_ref().to_vec(),
            ..Call::new(Method::PUT, key)
        };
        let answer = self.write(call).await?;
        match answer.status {
            200 => Ok(CasOutcome::Swapped(written(&answer)?)),
            409 => Ok(CasOutcome::Differs),
            _ => Err(unexpected(&answer)),
        }
    }

    /// Every endpoint's status (asked concurrently; an unreachable node is reported,
    /// not an error).
    pub async fn status(&self) -> ClusterStatus {
        let pending: Vec<_> = self
            .endpoints
            .iter()
            .map(|endpoint| {
                let http = self.http.clone();
                let url = endpoint.clone();
                let timeout = Duration::from_millis(self.options.status_timeout_ms);
                let limit = self.options.body_size_max_bytes;
                tokio::spawn(async move { node_status(&http, url, timeout, limit).await })
            })
            .collect();
        let mut nodes = Vec::with_capacity(pending.len());
        for (endpoint, task) in self.endpoints.iter().zip(pending) {
            let status = task
                .await
                .unwrap_or_else(|error| Err(format!("status task failed: {error}")));
            nodes.push(EndpointStatus {
                endpoint: display(endpoint),
                status,
            });
        }
        ClusterStatus { nodes }
    }

    /// Runs a write under the next request id, holding the sequence lock throughout.
    async fn write(&self, call: Call<'_>) -> Result<Answer> {
        let mut sequence = self.sequence.lock().await;
        *sequence += 1;
        let call = Call {
            request_id: Some((self.client_id, *sequence)),
            ..call
        };
        self.execute(&call).await
    }

    /// The attempt loop; see the module documentation.
    async fn execute(&self, call: &Call<'_>) -> Result<Answer> {
        let is_write = call.request_id.is_some();
        let mut backoff_ms = self.options.backoff_initial_ms;
        let mut maybe_applied = false;
        let mut last = String::new();
        for attempt in 1..=self.options.attempts_max {
            let index = match call.target {
                Target::Leader => self.leader_index().await,
                Target::Any => self.rotate(),
            };
            match self.send(index, call).await {
                Ok(answer) => match wire::classify(answer.status) {
                    Attempt::Done => {
                        self.observe(answer.position);
                        return Ok(answer);
                    }
                    Attempt::Invalid => {
                        let text = String::from_utf8_lossy(&answer.body);
                        return Err(ClientError::Invalid(text.trim().to_owned()));
                    }
                    Attempt::Retry {
                        maybe_applied: maybe,
                    } => {
                        maybe_applied |= maybe && is_write;
                        let text = String::from_utf8_lossy(&answer.body);
                        last = format!(
                            "{}: HTTP {}: {}",
                            answer.endpoint,
                            answer.status,
                            text.trim()
                        );
                    }
                },
                Err(failure) => {
                    if !failure.maybe_sent {
                        self.mark_down(index);
                    }
                    maybe_applied |= failure.maybe_sent && is_write;
                    last = failure.detail;
                }
            }
            self.forget_leader(index);
            if attempt < self.options.attempts_max {
                tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = backoff_ms
                    .saturating_mul(2)
                    .min(self.options.backoff_max_ms);
            }
        }
        let attempts = self.options.attempts_max;
        Err(if maybe_applied {
            ClientError::OutcomeUnknown { attempts, last }
        } else {
            ClientError::Unavailable { attempts, last }
        })
    }

    /// One HTTP attempt of `call` at endpoint `index`.
    async fn send(&self, index: usize, call: &Call<'_>) -> std::result::Result<Answer, Failure> {
        let endpoint = &self.endpoints[index];
        let mut request = self
            .http
            .request(call.method.clone(), call.url(endpoint))
            .body(call.body.clone());
        if let Some(consistency) = call.consistency {
            request = request.header(wire::CONSISTENCY_HEADER, consistency.as_str());
            if consistency == Consistency::Session {
                let token = self.session_position().to_string();
                request = request.header(wire::SESSION_HEADER, token);
            }
        }
        if let Some((client, sequence)) = call.request_id {
            request = request
                .header(wire::CLIENT_HEADER, client.to_string())
                .header(wire::SEQUENCE_HEADER, sequence.to_string());
        }
        if call.suffix.is_some() {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let endpoint = display(endpoint);
        let response = request.send().await.map_err(|error| Failure {
            detail: format!("{endpoint}: {}", describe(&error)),
            maybe_sent: !error.is_connect(),
        })?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            let value = response.headers().get(name)?;
            value.to_str().ok().map(str::to_owned)
        };
        let version = header(wire::VERSION_HEADER).and_then(|text| text.parse().ok());
        let position = header(wire::POSITION_HEADER).and_then(|text| wire::parse_position(&text));
        let body = read_body(response, self.options.body_size_max_bytes)
            .await
            .map_err(|detail| Failure {
                detail: format!("{endpoint}: {detail}"),
                maybe_sent: true,
            })?;
        Ok(Answer {
            status,
            version,
            position,
            body,
            endpoint,
        })
    }

    /// The leader's endpoint index, discovering it if unknown; when no node names a
    /// leader among the endpoints, the next endpoint in rotation (it forwards).
    async fn leader_index(&self) -> usize {
        let refresh = Duration::from_millis(self.options.leader_refresh_ms);
        if let Some((index, learned)) = *lock(&self.leader)
            && learned.elapsed() < refresh
        {
            return index;
        }
        let status = self.status().await;
        let found = status.leader().and_then(|leader| {
            status.nodes.iter().position(|node| {
                node.status
                    .as_ref()
                    .is_ok_and(|status| status.node_id == leader)
            })
        });
        match found {
            Some(index) => {
                *lock(&self.leader) = Some((index, Instant::now()));
                index
            }
            None => self.rotate(),
        }
    }

    fn forget_leader(&self, index: usize) {
        let mut leader = lock(&self.leader);
        if leader.is_some_and(|(known, _)| known == index) {
            *leader = None;
        }
    }

    /// The next endpoint in rotation, skipping those recently found down (unless all
    /// are).
    fn rotate(&self) -> usize {
        let count = self.endpoints.len();
        let first = self.next_endpoint.fetch_add(1, Ordering::Relaxed) % count;
        let down_until = lock(&self.down_until);
        let now = Instant::now();
        let up = (0..count)
            .map(|offset| (first + offset) % count)
            .find(|index| down_until[*index].is_none_or(|until| until <= now));
        match up {
            Some(index) => {
                // Continue the rotation after the endpoint chosen.
                let skipped = (index + count - first) % count;
                self.next_endpoint.fetch_add(skipped, Ordering::Relaxed);
                index
            }
            None => first,
        }
    }

    /// Skips endpoint `index` in the rotation for a while: it refused a connection.
    fn mark_down(&self, index: usize) {
        let until = Instant::now() + Duration::from_millis(self.options.endpoint_down_ms);
        lock(&self.down_until)[index] = Some(until);
    }

    /// Raises the session token to `position`.
    fn observe(&self, position: Option<LogPosition>) {
        if let Some(position) = position {
            let mut session = lock(&self.session);
            *session = (*session).max(position);
        }
    }
}

impl<'a> Call<'a> {
    /// A write to the leader, with no body; callers fill in the rest.
    fn new(method: Method, key: &'a str) -> Call<'a> {
        Call {
            method,
            key,
            suffix: None,
            query: None,
            body: Vec::new(),
            consistency: None,
            target: Target::Leader,
            request_id: None,
        }
    }

    fn url(&self, endpoint: &Url) -> Url {
        let mut url = endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.clear().extend(["v1", "kv", self.key]);
            segments.extend(self.suffix);
        }
        url.set_query(self.query.as_deref());
        url
    }
}

/// One node's status.
async fn node_status(
    http: &reqwest::Client,
    mut url: Url,
    timeout: Duration,
    limit: usize,
) -> std::result::Result<NodeStatus, String> {
    url.set_path("/v1/status");
    let response = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|error| describe(&error))?;
    let status = response.status();
    let body = read_body(response, limit).await?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(format!("HTTP {}: {}", status.as_u16(), text.trim()));
    }
    serde_json::from_slice(&body).map_err(|error| format!("unreadable status: {error}"))
}

/// The body, refused past `limit` bytes.
async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> std::result::Result<Vec<u8>, String> {
    let too_large = || format!("response body over the limit of {limit} bytes");
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| format!("reading the body: {}", describe(&error)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error with its causes (reqwest's own message leaves out why: "connection
/// refused", "timed out").
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    let mut depth = 0;
    while let Some(cause) = source
        && depth < 4
    {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
        depth += 1;
    }
    text
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `host:port` of a base URL.
fn display(url: &Url) -> String {
    let host = url.host_str().unwrap_or("?");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

fn check_key(key: &str) -> Result<()> {
    Key::new(key.as_bytes())
        .map(drop)
        .map_err(|error| ClientError::Invalid(error.to_string()))
}

fn check_value(value: &[u8]) -> Result<()> {
    Value::new(value)
        .map(drop)
        .map_err(|error| ClientError::Invalid(error.to_string()))
}

fn required<T>(field: Option<T>, answer: &Answer) -> Result<T> {
    field.ok_or_else(|| ClientError::Protocol {
        endpoint: answer.endpoint.clone(),
        detail: format!(
            "HTTP {} without {} or {}",
            answer.status,
            wire::VERSION_HEADER,
            wire::POSITION_HEADER
        ),
    })
}

fn written(answer: &Answer) -> Result<Written> {
    Ok(Written {
        version: required(answer.version, answer)?,
        position: required(answer.position, answer)?,
    })
}

/// A definite answer the operation has no meaning for: a 404 without a version header
/// (a server without the route, not a key found absent), a 409 to a plain read.
fn unexpected(answer: &Answer) -> ClientError {
    ClientError::Protocol {
        endpoint: answer.endpoint.clone(),
        detail: format!(
            "unexpected HTTP {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body).trim()
        ),
    }
}

/// The `Authorization: Bearer` header every request carries when a password is set
/// (marked sensitive, so it never shows in debug output).
fn authorization_headers(password: Option<&str>) -> Result<reqwest::header::HeaderMap> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(password) = password {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {password}"))
            .map_err(|_| ClientError::Config("the password must be printable ASCII".into()))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_or_without_a_scheme() {
        let url = parse_endpoint("127.0.0.1:8001").unwrap();
        assert_eq!(display(&url), "127.0.0.1:8001");
        let url = parse_endpoint(" http://localhost:9 ").unwrap();
        assert_eq!(display(&url), "localhost:9");
        for bad in ["", "https://a:1", "http://", "a b:1"] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_percent_encoded_in_one_path_segment() {
        let endpoint = parse_endpoint("127.0.0.1:1").unwrap();
        let call = Call::new(Method::GET, "a/b c?");
        assert_eq!(
            call.url(&endpoint).as_str(),
            "http://127.0.0.1:1/v1/kv/a%2Fb%20c%3F"
        );
        let call = Call {
            suffix: Some("cas"),
            query: Some("if-version=3".into()),
            ..Call::new(Method::POST, "k")
        };
        assert_eq!(
            call.url(&endpoint).as_str(),
            "http://127.0.0.1:1/v1/kv/k/cas?if-version=3"
        );
    }

    #[test]
    fn a_client_is_built_only_from_sane_options() {
        let none: [&str; 0] = [];
        assert!(Client::new(&none, ClientOptions::default()).is_err());
        let options = ClientOptions {
            attempts_max: 0,
            ..ClientOptions::default()
        };
        assert!(Client::new(&["a:1"], options).is_err());
        let options = ClientOptions {
            client_id: Some(7),
            ..ClientOptions::default()
        };
        let client = Client::new(&["a:1", "b:2"], options).unwrap();
        assert_eq!(client.client_id(), 7);
        assert_eq!(client.session_position(), LogPosition::ZERO);
        client.observe(Some(LogPosition::new(2, 5)));
        client.observe(Some(LogPosition::new(1, 9)));
        client.observe(None);
        assert_eq!(client.session_position(), LogPosition::new(2, 5));
        assert_eq!(
            [client.rotate(), client.rotate(), client.rotate()],
            [0, 1, 0]
        );
    }

    #[test]
    fn the_rotation_skips_endpoints_found_down_until_all_are() {
        let client = Client::new(&["a:1", "b:2", "c:3"], ClientOptions::default()).unwrap();
        client.mark_down(1);
        let chosen: Vec<usize> = (0..4).map(|_| client.rotate()).collect();
        assert_eq!(chosen, [0, 2, 0, 2]);
        client.mark_down(0);
        client.mark_down(2);
        let mut chosen: Vec<usize> = (0..3).map(|_| client.rotate()).collect();
        chosen.sort_unstable();
        assert_eq!(chosen, [0, 1, 2], "all down: plain rotation");
        let options = ClientOptions {
            endpoint_down_ms: 0,
            ..ClientOptions::default()
        };
        let client = Client::new(&["a:1", "b:2"], options).unwrap();
        client.mark_down(0);
        assert_eq!([client.rotate(), client.rotate()], [0, 1]);
    }
}
