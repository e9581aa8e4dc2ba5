//! # replikv-server: one node of a replikv cluster, as an operating-system process
//!
//! The replication strategies are deterministic state machines that never perform I/O
//! (see `replikv_core::replica`). This crate is where they meet the real world, and the
//! only crate of the workspace that is asynchronous: tokio tasks accept connections,
//! decode the Redis protocol and the peer protocol, and hand work to the node; one
//! dedicated thread owns the replica and does its disk work. The server is a thin
//! router: it knows wire formats and sockets, never replication rules.
//!
//! ```text
//!  redis client ──RESP──▶ resp/ (a task per connection) ─┐
//!                                                        │ NodeHandle::request
//!  peer nodes ──frames──▶ peer/ (a task per connection) ─┤ (bounded channel)
//!                                                        ▼
//!                          node_loop (one std::thread: the RaftNode, its disk,
//!                                     group commit with one fsync per batch)
//!                                                        │ Send ▶ peer queues
//!                                                        │ Reply ▶ the waiting task
//! ```
//!
//! - [`node_loop`]: the thread that owns the replica, and [`NodeHandle`], the only way
//!   in (bounded, with timeouts that report an unknown outcome, forwarding to the
//!   leader).
//! - [`peer`]: TCP between nodes: handshake, length-delimited postcard frames,
//!   reconnects, bounded queues, request forwarding.
//! - [`resp`]: the Redis-protocol API.
//! - [`http`]: the HTTP API (keys and status).
//! - [`metrics`]: the node's Prometheus metrics (`GET /metrics`).
//! - [`keyspace`]: the seam where keyspaces and other replication strategies plug in.
//! - [`auth`]: the client password (RESP AUTH, HTTP bearer token).
//! - [`config`]: a node's configuration (TOML or flags).
//! - [`server`]: start-up and shutdown order, the data directory's lock.
//!
//! Invariant: the node loop alone touches the replica. Everything else talks to it
//! through its bounded input channel, so the replica stays a single-threaded state
//! machine exactly as the simulator drives it.

pub mod auth;
pub mod config;
pub mod http;
pub mod keyspace;
pub mod metrics;
pub mod node_loop;
pub mod peer;
pub mod resp;
pub mod server;

pub use config::ServerConfig;
pub use node_loop::{NodeHandle, NodeStatus};
pub use server::RunningServer;

use replikv_core::error::{Error, Result};

/// Runs a node until SIGTERM or Ctrl-C (then shuts it down gracefully) or until its
/// storage fails. Builds its own tokio runtime: the caller stays synchronous.
pub fn run(config: &ServerConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("replikv-io")
        .build()?;
    runtime.block_on(async {
        let mut server = RunningServer::start(config).await?;
        tokio::select! {
            result = server.stopped() => {
                result?;
                Err(Error::Unavailable("the node loop stopped".into()))
            }
            signal = shutdown_signal() => {
                tracing::info!(signal, "shutting down");
                server.shutdown().await
            }
        }
    })
}

/// Waits for SIGTERM or SIGINT (Ctrl-C); returns the signal's name.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// Blocks the calling (synchronous) thread until SIGTERM or SIGINT arrives or `poll`
/// returns `true` (checked every `poll_interval`); returns the signal's name, or `None`
/// when `poll` ended the wait. For `replikv cluster up`, which supervises child
/// processes without an async runtime of its own.
pub fn wait_for_signal_or(
    poll_interval: std::time::Duration,
    mut poll: impl FnMut() -> bool,
) -> Result<Option<&'static str>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async {
        let signal = shutdown_signal();
        tokio::pin!(signal);
        let mut interval = tokio::time::interval(poll_interval);
        loop {
            tokio::select! {
                name = &mut signal => return Some(name),
                _ = interval.tick() => if poll() { return None },
            }
        }
    }))
}
