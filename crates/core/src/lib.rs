//! # replikv-core: the vocabulary every replication strategy speaks
//!
//! This crate holds the words that every other crate of replikv shares, and nothing that
//! performs I/O. A replication strategy (single-leader, leaderless, multi-leader, chain)
//! is a deterministic state machine: it is handed inputs (a peer's message, a client's
//! request, a tick of time) and produces outputs (messages to send, replies to clients).
//! The [`replica::Replica`] trait is that contract; the simulator and the server both
//! drive every strategy through it, with the same loop.
//!
//! Architecture invariant: nothing in this crate reads the wall clock, opens a socket or a
//! file, spawns a thread, or draws unseeded randomness. Time comes in as
//! [`time::Instant`] values, randomness as seeds. The `tidy` test enforces what it can.
//!
//! What lives here:
//! - [`id`]: node, client and request identifiers.
//! - [`expiry`]: what a write does to a key's time to live, resolved from log-entry
//!   stamps so that every replica computes the same expiry time.
//! - [`kv`]: keys, values, versions, client requests and replies.
//! - [`position`]: terms, log indexes and log positions of a replicated log.
//! - [`error`]: errors classified by what they mean to a client (certainly failed, or
//!   outcome unknown), which is exactly what the history format needs.
//! - [`time`]: virtual or real monotonic time as plain numbers.
//! - [`limits`]: the bounds every layer enforces on keys, values and batches.
//! - [`clock`]: logical clocks (Lamport, hybrid logical, version vectors, dotted version
//!   vectors with siblings).

pub mod clock;
pub mod error;
pub mod expiry;
pub mod id;
pub mod kv;
pub mod limits;
pub mod position;
pub mod replica;
pub mod time;

pub use error::{Error, Outcome};
pub use expiry::{ExpireCondition, Expiry};
pub use id::{ClientId, NodeId, RequestId};
pub use kv::{Key, Reply, Request, Value, Version};
pub use position::{LogIndex, LogPosition, Term};
pub use time::Instant;
