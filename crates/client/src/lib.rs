//! # replikv-client: a Rust client for a replikv cluster, over its HTTP API
//!
//! Any node of a replikv cluster accepts any request and forwards what it cannot serve
//! to the leader. A client can therefore be naive and still correct; this one is a
//! little less naive, in three ways that each matter to an application:
//!
//! - **Leader discovery.** Built from a list of endpoints (HTTP addresses, in any
//!   order), it asks them for `GET /v1/status` to learn which one is the leader, and
//!   sends writes and linearizable reads there directly: a forwarded request costs a
//!   hop. When the leader fails (a connection refused, 503 not the leader or no
//!   leader), it forgets the leader, backs off (doubling, capped) and discovers again,
//!   for a bounded number of attempts. If the leader is not among the endpoints, any
//!   endpoint that answers will do: it forwards.
//! - **Idempotent retries.** The client picks a random 64-bit identity once and
//!   numbers its writes; each write goes out with `x-replikv-client` and
//!   `x-replikv-sequence`, and a retry (after a timeout, a lost connection, an unknown
//!   outcome) repeats the same pair. The state machine's client-session table applies a
//!   request id once and answers a retry with the first attempt's outcome, so a write
//!   the client retried is applied at most once. The table keeps one request per
//!   client, so this client keeps one write in flight at a time (writes from
//!   concurrent tasks queue on a lock); reads do not take it.
//! - **Session guarantees.** Every answer carries the log position it was read or
//!   written at (`x-replikv-position`); the client keeps the highest it has seen and
//!   sends it as `x-replikv-session` on [`Consistency::Session`] reads, which any node
//!   serves once it has applied that far. So a session read from a lagging follower
//!   still sees the client's own writes and never goes back in time. Session and
//!   follower reads rotate over the endpoints, spreading load off the leader.
//!
//! **Bounded.** Each HTTP attempt has a connect and a total timeout; an operation makes
//! at most [`ClientOptions::attempts_max`] attempts with capped backoff; a response body
//! larger than [`ClientOptions::body_size_max_bytes`] is refused. Failures are
//! [`ClientError`]s that say whether a write may have been applied.
//!
//! ```no_run
//! # async fn example() -> replikv_client::Result<()> {
//! use replikv_client::{Client, ClientOptions, Consistency};
//! let client = Client::new(&["127.0.0.1:8001", "127.0.0.1:8002"], ClientOptions::default())?;
//! client.put("greeting", "hello").await?;
//! let read = client.get("greeting", Consistency::Session).await?;
//! assert_eq!(read.map(|read| read.value), Some(b"hello".to_vec()));
//! # Ok(())
//! # }
//! ```
//!
//! Modules: [`wire`] (header names, parsing, what a status code means for a retry),
//! [`status`] (the cluster status and its table), [`error`], [`blocking`] (the same
//! client for synchronous programs); the request loop is in `transport`.

pub mod blocking;
pub mod error;
pub mod status;
mod transport;
pub mod wire;

pub use blocking::BlockingClient;
pub use error::{ClientError, Result};
pub use replikv_core::LogPosition;
pub use status::{ClusterStatus, EndpointStatus, FollowerStatus, NodeStatus};
pub use transport::Client;
pub use wire::Consistency;

/// How a [`Client`] behaves; every field bounds something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Longest one HTTP attempt may take, connection included. Longer than the
    /// server's own request timeout (5 s by default), so that the server's answer
    /// (an unknown outcome, say) arrives before the client gives up on it.
    pub attempt_timeout_ms: u64,
    /// Longest a TCP connection may take to establish.
    pub connect_timeout_ms: u64,
    /// Longest a status query (discovery, [`Client::status`]) may take per node.
    pub status_timeout_ms: u64,
    /// Most attempts per operation (the first included).
    pub attempts_max: u32,
    /// Backoff before the second attempt; doubles after each failed attempt.
    pub backoff_initial_ms: u64,
    /// Most backoff between two attempts.
    pub backoff_max_ms: u64,
    /// How long a discovered leader is trusted before it is looked up again (a
    /// leadership transfer does not make the old leader fail, only forward).
    pub leader_refresh_ms: u64,
    /// How long session and follower reads skip an endpoint that refused a connection.
    pub endpoint_down_ms: u64,
    /// Largest response body accepted.
    pub body_size_max_bytes: usize,
    /// The client identity; `None` picks a random one (what applications want: two
    /// clients with one identity would answer each other's writes).
    pub client_id: Option<u64>,
    /// The cluster's client password, sent as `Authorization: Bearer` on every request
    /// when the nodes require one (`REPLIKV_CLIENT_PASSWORD` on the servers).
    pub password: Option<String>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            attempt_timeout_ms: 8_000,
            connect_timeout_ms: 1_000,
            status_timeout_ms: 1_000,
            attempts_max: 10,
            backoff_initial_ms: 20,
            backoff_max_ms: 1_000,
            leader_refresh_ms: 10_000,
            endpoint_down_ms: 1_000,
            body_size_max_bytes: replikv_core::limits::VALUE_SIZE_MAX_BYTES + 64 * 1024,
            client_id: None,
            password: None,
        }
    }
}

/// A value read, with the key's version and the position it was read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub value: Vec<u8>,
    /// How many writes the key has seen.
    pub version: u64,
    /// The log position the read was served at.
    pub position: LogPosition,
    /// The endpoint that served the read.
    pub served_by: String,
}

/// A write that took effect: the key's new version and the write's log position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    pub version: u64,
    pub position: LogPosition,
}

/// The outcome of a compare-and-set (like RESP's `CAS`: 1, 0, -1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The new value was written.
    Swapped(Written),
    /// Not written: the key holds another value (or another version).
    Differs,
    /// Not written: the key is absent (it was expected to hold a value).
    Absent,
}
