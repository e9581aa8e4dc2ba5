//! The RESP (Redis protocol) API: any Redis client can talk to any replikv node.
//!
//! Each accepted connection is one tokio task and one [`Session`]: it decodes commands
//! (`codec.rs`, with `redis-protocol`'s parser), runs them one at a time in arrival
//! order (`commands.rs`, `admin.rs`, `expiry.rs`), and writes the replies in the same order.
//! Pipelining works: replies are fed into the write buffer and flushed once no further
//! complete command is waiting, so a burst of pipelined commands shares a flush. A
//! command is never run concurrently with another of the same connection, which is what
//! lets a connection be one client session of the state machine (one request in flight,
//! sequential request ids).
//!
//! With a client password configured, a connection must authenticate (`AUTH`, or
//! `HELLO ... AUTH`) before any command but PING, HELLO, AUTH and QUIT; the others are
//! answered `-NOAUTH Authentication required.` Until it has, its requests may occupy
//! at most [`codec::UNAUTHENTICATED_REQUEST_SIZE_MAX_BYTES`] while being received.
//!
//! Bad input never panics the server: malformed RESP gets an error reply and the
//! connection is closed (the byte stream cannot be resynchronised); unknown commands
//! and wrong arities get an error reply and the connection goes on. Connections are
//! bounded ([`CONNECTIONS_MAX`]); one beyond it is answered with an error and closed.

pub mod admin;
pub mod codec;
pub mod commands;
pub mod expiry;
pub mod session;
pub mod wait;

use crate::auth::ClientAuth;
use crate::keyspace::Keyspaces;
use crate::metrics::{Api, Outcome, RequestMetricsCache};
use codec::{RespCodec, Response};
use commands::After;
use futures_util::{SinkExt, StreamExt};
use session::Session;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::codec::Framed;

/// Most client connections served at once.
pub const CONNECTIONS_MAX: usize = 10_000;

/// Accepts RESP connections until shutdown.
pub async fn run_listener(
    listener: TcpListener,
    keyspaces: Keyspaces,
    auth: ClientAuth,
    mut shutdown: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let next_id = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stopping| *stopping) => return,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a client connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let mut session = Session::new(keyspaces.clone(), next_id.fetch_add(1, Ordering::Relaxed));
        session.authenticated = !auth.required();
        session.auth = auth.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(reason) = serve(stream, session, shutdown).await {
                tracing::debug!(%remote, %reason, "client connection closed");
            }
            drop(permit);
        });
    }
}

async fn refuse(stream: TcpStream) {
    let mut framed = Framed::new(stream, RespCodec::new());
    let _ = framed
        .send(Response::error("max number of clients reached"))
        .await;
}

/// Serves one connection until the client leaves, misbehaves, or the server stops.
async fn serve(
    stream: TcpStream,
    mut session: Session,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String> {
    let mut framed = Framed::new(stream, RespCodec::new());
    framed.codec_mut().request_size_max_bytes = request_size_max_bytes(&session);
    let mut metrics_cache = RequestMetricsCache::default();
    loop {
        let next = tokio::select! {
            next = framed.next() => next,
            _ = shutdown.wait_for(|stopping| *stopping) => return Ok(()),
        };
        let command = match next {
            None => return Ok(()),
            Some(Ok(command)) => command,
            Some(Err(error)) => {
                let _ = framed
                    .send(Response::Error(format!("ERR {}", error.0)))
                    .await;
                return Err(error.0);
            }
        };
        let started = std::time::Instant::now();
        let name = commands::metric_name(&command);
        let (response, after) = commands::execute(&mut session, command).await;
        let metrics = session.keyspaces.default_group().metrics();
        let outcome = outcome(&response);
        let elapsed = started.elapsed();
        metrics.record_request_cached(&mut metrics_cache, Api::Resp, name, outcome, elapsed);
        framed.codec_mut().protocol = session.protocol;
        framed.codec_mut().request_size_max_bytes = request_size_max_bytes(&session);
        framed.feed(response).await.map_err(|error| error.0)?;
        if after == After::Close {
            framed.flush().await.map_err(|error| error.0)?;
            return Ok(());
        }
        if framed.read_buffer().is_empty() {
            framed.flush().await.map_err(|error| error.0)?;
        }
    }
}

/// The largest incomplete request the connection may buffer now.
fn request_size_max_bytes(session: &Session) -> usize {
    if session.authenticated {
        codec::REQUEST_SIZE_MAX_BYTES
    } else {
        codec::UNAUTHENTICATED_REQUEST_SIZE_MAX_BYTES
    }
}

/// How a reply ended, for the request metrics: by the error's prefix word (see
/// `session.rs` for what each means).
#[must_use]
pub fn outcome(response: &Response) -> Outcome {
    let Response::Error(text) = response else {
        return Outcome::Ok;
    };
    match text.split(' ').next().unwrap_or_default() {
        "NOAUTH" | "WRONGPASS" => Outcome::Unauthorized,
        "UNAVAILABLE" => Outcome::Unavailable,
        "OVERLOADED" => Outcome::Overloaded,
        "UNKNOWN" => Outcome::Unknown,
        "IOERR" => Outcome::StorageFailed,
        _ => Outcome::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn metric_labels_are_bounded_and_outcomes_follow_error_prefixes() {
        let command = |words: &[&'static str]| -> codec::Command {
            words.iter().map(|word| Bytes::from(*word)).collect()
        };
        assert_eq!(commands::metric_name(&command(&["gEt", "k"])), "get");
        assert_eq!(commands::metric_name(&command(&["WAIT", "1", "0"])), "wait");
        assert_eq!(
            commands::metric_name(&command(&["config", "get"])),
            "config"
        );
        assert_eq!(commands::metric_name(&command(&["made-up"])), "other");
        assert_eq!(commands::metric_name(&command(&[])), "other");
        let cases = [
            (Response::ok(), Outcome::Ok),
            (Response::Null, Outcome::Ok),
            (Response::error("syntax error"), Outcome::Invalid),
            (Response::Error("NOAUTH x".into()), Outcome::Unauthorized),
            (Response::Error("WRONGPASS x".into()), Outcome::Unauthorized),
            (
                Response::Error("UNAVAILABLE x".into()),
                Outcome::Unavailable,
            ),
            (Response::Error("OVERLOADED x".into()), Outcome::Overloaded),
            (Response::Error("UNKNOWN x".into()), Outcome::Unknown),
            (Response::Error("IOERR x".into()), Outcome::StorageFailed),
        ];
        for (response, expected) in cases {
            assert_eq!(outcome(&response), expected, "{response:?}");
        }
    }
}
