//! Reference models: tiny replicas whose correctness (or brokenness) is known in advance.
//!
//! They exist to prove the harness before the real replication strategies arrive. If the
//! simulator and checkers are right, the correct [`register::Register`] passes every seed
//! under every fault, and each model of [`broken`] is caught within a few seeds. A harness
//! that lets a broken model pass, or fails the correct one, is itself broken.
//!
//! The register keeps its state on the real replication log
//! ([`replikv_storage::log::Log`]), not on a file format of its own. That makes it a test
//! of two things at once: of the harness, and of the log under power failures. Every
//! crash a sweep injects into the serving node, between calls or inside a sync, a
//! segment rollover or recovery itself, is a crash of the code the replication strategies
//! will run on; a write the log loses after acknowledging it fails the durability checker
//! with a seed that replays it.

pub mod broken;
pub mod register;

/// The message type of models whose nodes never talk to each other. It has no values, so
/// no message can ever be sent or received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoMessage {}
