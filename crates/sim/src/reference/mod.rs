//! Reference models: tiny replicas whose correctness (or brokenness) is known in advance.
//!
//! They exist to prove the harness before the real replication strategies arrive. If the
//! simulator and checkers are right, the correct [`register::Register`] passes every seed
//! under every fault, and each model of [`broken`] is caught within a few seeds. A harness
//! that lets a broken model pass, or fails the correct one, is itself broken.

pub mod broken;
pub mod register;

/// The message type of models whose nodes never talk to each other. It has no values, so
/// no message can ever be sent or received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoMessage {}
