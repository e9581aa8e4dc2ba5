//! # replikv-replication: how replicas agree
//!
//! A replication strategy decides who accepts writes, how they travel to the other
//! replicas, and when a write counts as done. The families the design covers are:
//!
//! - **single leader** (this crate's first strategy, [`single_leader`]): one elected node
//!   orders every write into a replicated log; the others follow it. Raft elects the
//!   leader and decides when an entry is committed.
//! - **multi-leader** and **leaderless** (quorum reads and writes, Dynamo style): several
//!   nodes accept writes and reconcile afterwards. They come later.
//! - **chain replication**: writes flow head to tail, reads are served by the tail. Later.
//!
//! Every strategy is a sans-IO state machine implementing
//! [`replikv_core::replica::Replica`], so the simulator and the server drive them all with
//! the same loop, and every strategy lives in one module with the same skeleton, so that
//! a reader comparing two strategies opens the same files:
//!
//! - `mod.rs`: the essay — the protocol as used here, its invariants, what is durable
//!   when;
//! - `message.rs`: what peers say to each other;
//! - `node.rs`: the `Replica` implementation, with the roles split over sibling files;
//! - `tests/`: data-driven scripts with checked-in expected traces.

pub mod single_leader;
