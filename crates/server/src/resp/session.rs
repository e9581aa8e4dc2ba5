//! One RESP connection's state, and the key-value commands it runs.
//!
//! A connection is one client session: its own random [`ClientId`] (the state machine's
//! deduplication of retried writes is keyed by it, and one session sends one request at
//! a time, in sequence), its chosen read consistency, and its session token, the highest
//! log position any reply carried, which `session` reads wait for on whichever node
//! serves them (read-your-writes and monotonic reads across nodes).
//!
//! Redis commands map onto the store's few operations:
//!
//! - GET, EXISTS, STRLEN, MGET: reads at the connection's consistency (MGET and
//!   EXISTS of several keys read key by key: not one snapshot).
//! - SET: a put. SET NX / XX / GET, INCR and friends, APPEND and CAS are
//!   read-then-compare-and-set-version loops: read the value and its version
//!   (linearizably), compute, write only if the version is unchanged, and start over if
//!   another writer got in between, at most [`CAS_RETRIES_MAX`] times. Each is therefore
//!   atomic: no write by anyone else lands between its read and its write.
//! - SET with EX/PX/EXAT/PXAT/KEEPTTL, SETEX, PSETEX: one replicated write carrying
//!   the expiry (a relative time counts from the leader's stamp of the write); with
//!   NX/XX/GET, the same read-then-write loop, the write conditional on the version.
//!   EXPIRE and friends, PERSIST: one replicated write each, decided at its stamp.
//!   TTL/PTTL: a read of the key's expiry time at the connection's consistency, counted
//!   down on this node's clock.
//! - DEL: per key, a read, then a delete if the key existed (the count says how many
//!   keys existed when read); MSET: puts, key by key (not atomic across keys).
//!
//! Errors keep Redis's shape (`-PREFIX message`) with prefixes that say what a client
//! may assume: `ERR` (invalid, certainly not applied), `UNAVAILABLE` (no leader
//! reachable, not applied), `OVERLOADED` (a queue was full, not applied), `UNKNOWN` (the
//! write may or may not have taken effect), `IOERR` (the node's storage failed).

use super::codec::Response;
use crate::auth::ClientAuth;
use crate::keyspace::Keyspaces;
use bytes::Bytes;
use replikv_core::error::Error;
use replikv_core::kv::ReadConsistency;
use replikv_core::{
    ClientId, ExpireCondition, Expiry, Key, LogPosition, Reply, Request, RequestId, Value, Version,
};

/// Most read-compare-and-set rounds of one conditional command before it gives up.
pub const CAS_RETRIES_MAX: usize = 32;

/// The read levels a connection can choose (`READCONSISTENCY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadLevel {
    Linearizable,
    Lease,
    Follower,
    Session,
}

impl ReadLevel {
    #[must_use]
    pub fn parse(text: &[u8]) -> Option<ReadLevel> {
        match text.to_ascii_lowercase().as_slice() {
            b"linearizable" => Some(ReadLevel::Linearizable),
            b"lease" => Some(ReadLevel::Lease),
            b"follower" => Some(ReadLevel::Follower),
            b"session" => Some(ReadLevel::Session),
            _ => None,
        }
    }

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ReadLevel::Linearizable => "linearizable",
            ReadLevel::Lease => "lease",
            ReadLevel::Follower => "follower",
            ReadLevel::Session => "session",
        }
    }
}

/// One connection's session; see the module documentation.
#[derive(Debug)]
pub struct Session {
    pub keyspaces: Keyspaces,
    /// The number CLIENT ID answers (per node, in connection order).
    pub connection_id: u64,
    pub name: Option<Bytes>,
    pub protocol: u8,
    pub read_level: ReadLevel,
    /// The highest log position a reply carried.
    pub token: LogPosition,
    /// The password this connection must present, and whether it did (or needs none).
    pub auth: ClientAuth,
    pub authenticated: bool,
    /// The log position of this connection's last write, for WAIT.
    pub last_write: Option<LogPosition>,
    client: ClientId,
    sequence: u64,
}

/// The value and version a read found.
type Found = (Option<Value>, Version);

impl Session {
    #[must_use]
    pub fn new(keyspaces: Keyspaces, connection_id: u64) -> Session {
        Session {
            keyspaces,
            connection_id,
            name: None,
            protocol: 2,
            read_level: ReadLevel::Linearizable,
            token: LogPosition::ZERO,
            auth: ClientAuth::default(),
            authenticated: true,
            last_write: None,
            client: crate::node_loop::NodeHandle::new_client_id(),
            sequence: 0,
        }
    }

    /// Sends one request under the next request id of this session.
    pub async fn call(&mut self, request: Request) -> Reply {
        self.sequence += 1;
        let request_id = RequestId {
            client: self.client,
            sequence: self.sequence,
        };
        let node = self.keyspaces.route(&request).clone();
        let reply = node.request(request_id, request).await;
        if let Some(position) = reply.position() {
            self.token = self.token.max(position);
        }
        if let Reply::Written { position, .. }
        | Reply::CompareAndSet {
            swapped: true,
            position,
            ..
        } = &reply
        {
            self.last_write = Some(self.last_write.unwrap_or(*position).max(*position));
        }
        reply
    }

    fn consistency(&self) -> ReadConsistency {
        match self.read_level {
            ReadLevel::Linearizable => ReadConsistency::Linearizable,
            ReadLevel::Lease => ReadConsistency::Lease,
            ReadLevel::Follower => ReadConsistency::Follower,
            ReadLevel::Session => ReadConsistency::Session { token: self.token },
        }
    }

    /// Reads `key` at the connection's level, or linearizably if `linearizable`.
    pub async fn read(&mut self, key: &Key, linearizable: bool) -> Result<Found, Response> {
        let consistency = if linearizable {
            ReadConsistency::Linearizable
        } else {
            self.consistency()
        };
        let request = Request::Get {
            key: key.clone(),
            consistency,
        };
        match self.call(request).await {
            Reply::Read { value, version, .. } => Ok((value, version)),
            other => Err(unexpected(other)),
        }
    }

    /// Writes `new` if `key` is still at `version`: `Ok(true)` swapped, `Ok(false)` not.
    async fn write_if_version(
        &mut self,
        key: &Key,
        version: Version,
        new: Value,
    ) -> Result<bool, Response> {
        let request = Request::CompareAndSetVersion {
            key: key.clone(),
            expected: version,
            new,
        };
        match self.call(request).await {
            Reply::CompareAndSet { swapped, .. } => Ok(swapped),
            other => Err(unexpected(other)),
        }
    }

    /// The read-compute-compare-and-set loop. `decide` sees the current value and
    /// returns the value to write and the response to give once written, or a response
    /// to give without writing. The write keeps the key's expiry (as Redis's `INCR` and
    /// `APPEND` do).
    pub async fn read_modify_write<F>(&mut self, key: &Key, decide: F) -> Response
    where
        F: FnMut(Option<&Value>) -> Result<(Value, Response), Response>,
    {
        self.read_modify_write_with(key, None, decide).await
    }

    /// [`Session::read_modify_write`] whose write sets the expiry `expiry` when given
    /// (`SET` with options: `Expiry::Clear` unless it says otherwise).
    pub async fn read_modify_write_with<F>(
        &mut self,
        key: &Key,
        expiry: Option<Expiry>,
        mut decide: F,
    ) -> Response
    where
        F: FnMut(Option<&Value>) -> Result<(Value, Response), Response>,
    {
        for _ in 0..CAS_RETRIES_MAX {
            let (current, version) = match self.read(key, true).await {
                Ok(found) => found,
                Err(response) => return response,
            };
            let (new, response) = match decide(current.as_ref()) {
                Ok(decided) => decided,
                Err(response) => return response,
            };
            let written = match expiry {
                None => self.write_if_version(key, version, new).await,
                Some(expiry) => {
                    let key = key.clone();
                    self.put_with_expiry(key, new, Some(version), expiry).await
                }
            };
            match written {
                Ok(true) => return response,
                Ok(false) => {}
                Err(response) => return response,
            }
        }
        Response::Error(format!(
            "UNAVAILABLE gave up after {CAS_RETRIES_MAX} conflicting concurrent writes"
        ))
    }

    /// Writes `value` with `expiry`, if the key is still at `expected_version` when
    /// given: `Ok(true)` written, `Ok(false)` the version moved on.
    pub async fn put_with_expiry(
        &mut self,
        key: Key,
        value: Value,
        expected_version: Option<Version>,
        expiry: Expiry,
    ) -> Result<bool, Response> {
        let request = Request::PutWithExpiry {
            key,
            value,
            expected_version,
            expiry,
        };
        match self.call(request).await {
            Reply::Written { .. } => Ok(true),
            Reply::CompareAndSet { swapped, .. } => Ok(swapped),
            other => Err(unexpected(other)),
        }
    }

    /// `EXPIRE` and friends, `PERSIST`: 1 if the key's expiry changed, 0 if not.
    pub async fn expire(
        &mut self,
        key: Key,
        expiry: Expiry,
        condition: ExpireCondition,
    ) -> Response {
        let request = Request::Expire {
            key,
            expiry,
            condition,
        };
        match self.call(request).await {
            Reply::CompareAndSet { swapped, .. } => Response::Integer(i64::from(swapped)),
            other => unexpected(other),
        }
    }

    /// `TTL` (seconds, rounded) or `PTTL` (`millis`): -2 absent, -1 no expiry, else the
    /// time left on this node's clock (0 if that clock already passed it).
    pub async fn time_to_live(&mut self, key: Key, millis: bool) -> Response {
        let request = Request::GetWithExpiry {
            key,
            consistency: self.consistency(),
        };
        let expires_at = match self.call(request).await {
            Reply::ReadWithExpiry { value: None, .. } => return Response::Integer(-2),
            Reply::ReadWithExpiry {
                expires_at_unix_ms: None,
                ..
            } => return Response::Integer(-1),
            Reply::ReadWithExpiry {
                expires_at_unix_ms: Some(at),
                ..
            } => at,
            other => return unexpected(other),
        };
        let now = self.keyspaces.default_group().wall_clock_unix_ms();
        let left_ms = expires_at.saturating_sub(now);
        let left = if millis {
            left_ms
        } else {
            left_ms.saturating_add(500) / 1000
        };
        Response::Integer(i64::try_from(left).unwrap_or(i64::MAX))
    }

    pub async fn put(&mut self, key: Key, value: Value) -> Response {
        match self.call(Request::Put { key, value }).await {
            Reply::Written { .. } => Response::ok(),
            other => unexpected(other),
        }
    }

    /// Deletes `key` if it exists; `Ok(true)` if it existed.
    pub async fn delete(&mut self, key: Key) -> Result<bool, Response> {
        let (value, _) = self.read(&key, true).await?;
        if value.is_none() {
            return Ok(false);
        }
        match self.call(Request::Delete { key }).await {
            Reply::Written { .. } => Ok(true),
            other => Err(unexpected(other)),
        }
    }

    /// `CAS key expected new`: 1 swapped, 0 the value differs, -1 the key is absent.
    pub async fn compare_and_set(&mut self, key: &Key, expected: &[u8], new: Value) -> Response {
        for _ in 0..CAS_RETRIES_MAX {
            let (current, version) = match self.read(key, true).await {
                Ok(found) => found,
                Err(response) => return response,
            };
            match current {
                None => return Response::Integer(-1),
                Some(value) if value.as_bytes() != expected => return Response::Integer(0),
                Some(_) => {}
            }
            match self.write_if_version(key, version, new.clone()).await {
                Ok(true) => return Response::Integer(1),
                Ok(false) => {}
                Err(response) => return response,
            }
        }
        Response::Error(format!(
            "UNAVAILABLE gave up after {CAS_RETRIES_MAX} conflicting concurrent writes"
        ))
    }
}

/// The RESP error for a failed reply (or an impossible one).
#[must_use]
pub fn unexpected(reply: Reply) -> Response {
    match reply {
        Reply::Failed(error) => error_response(&error),
        other => Response::error(format!("internal: unexpected reply {other:?}")),
    }
}

/// A replikv error as a Redis-style error line; see the module documentation.
#[must_use]
pub fn error_response(error: &Error) -> Response {
    let prefix = match error {
        Error::InvalidInput(_) => "ERR",
        Error::NotLeader { .. } | Error::Unavailable(_) => "UNAVAILABLE",
        Error::Overloaded(_) => "OVERLOADED",
        Error::Indeterminate(_) => "UNKNOWN",
        Error::Corruption(_) | Error::Io(_) => "IOERR",
    };
    let text = error.to_string().replace(['\r', '\n'], " ");
    Response::Error(format!("{prefix} {text}"))
}
