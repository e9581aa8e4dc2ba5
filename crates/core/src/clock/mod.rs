//! Logical clocks: how replicas order events without trusting each other's wall clocks.
//!
//! A replicated store keeps asking one question: *did this write happen before that one,
//! after it, or neither?* The answer decides whether a write may overwrite another, whether
//! two values must be kept as siblings, and which of two conflicting values "wins". Wall
//! clocks cannot answer it. Quartz drifts, NTP steps a clock backwards, and two machines
//! never agree exactly (seed 002, after *Understanding Distributed Systems*, "Time"); seed
//! 003 (after *Designing Data-Intensive Applications* ch. 8) puts it bluntly: "it doesn't
//! make sense to think of a clock reading as a point in time — it is more like a range of
//! times, within a confidence interval". What we need is *happens-before*
//! (Lamport 1978): A happened before B if B knows about A, depends on it, or builds upon it;
//! if neither knows about the other they are *concurrent*, however far apart in physical
//! time they occurred (DDIA ch. 5, "The happens-before relationship and concurrency").
//!
//! This module holds four clocks. Each is cheap, and each can tell some things and not
//! others; a replication strategy picks the weakest one that answers its question.
//!
//! | clock | size | tells | cannot tell |
//! |---|---|---|---|
//! | [`LamportClock`] | one counter | a total order consistent with causality | whether two events are concurrent |
//! | [`HybridLogicalClock`] | wall time + counter | the same, and stays within the max clock offset of physical time | concurrency, like Lamport |
//! | [`VersionVector`] | one counter per node | before / after / equal / concurrent, exactly | a total order, physical time; per-replica entries on values conflate clients |
//! | [`Siblings`] (dotted version vectors) | one context + one dot per value | which values of a key are truly concurrent, without false conflicts | a total order, physical time: the client merges |
//!
//! **Lamport clocks** ([`lamport`]) give every event a `(counter, node)` pair. If A happened
//! before B then `L(A) < L(B)`, but the converse fails: `L(A) < L(B)` may just as well mean
//! that A and B were concurrent. A Lamport order is therefore a *valid* total order to agree
//! on (total order broadcast, LWW with a replica id to break ties, per seed 002's LWW
//! register) but it silently picks a winner among concurrent writes: it cannot *detect*
//! conflicts.
//!
//! **Hybrid logical clocks** ([`hlc`]) are Lamport clocks whose counter is physical time
//! plus a small logical tail (Kulkarni, Demirbas et al. 2014). They keep Lamport's clock
//! condition, never run backwards even when the machine's clock does, and stay within the
//! maximum clock offset of physical time, so a timestamp *means* a time: "the value as of
//! 10:03" is answerable, and last-write-wins picks the write that was, up to the offset,
//! really last. That is what CockroachDB uses them for, and what replikv's LWW mode uses.
//! Concurrent writes are still silently ordered: LWW with HLCs loses all but one of them,
//! which is why replikv counts the overwritten writes.
//!
//! **Version vectors** ([`vector`]) keep one counter per node. Comparing two of them
//! entry-wise answers the happens-before question exactly: `a ≤ b` everywhere means `a`
//! happened before (or is) `b`, anything else is concurrency (Parker et al. 1983; Fidge and
//! Mattern 1988 for vector clocks; DDIA ch. 5, "Version vectors"). They are what
//! multi-leader replication uses to detect conflicts and what Dynamo used per key. Their
//! weakness shows when they are attached to *values* with one entry per replica: two
//! clients writing through the same replica get the same vector entry bumped, and the
//! replica can no longer tell "the client saw the other write" from "the client did not".
//!
//! **Dotted version vectors** ([`dvv`]) fix that (Preguiça, Baquero et al. 2010). Each value
//! carries a single *dot* — the one event that created it — while the key as a whole
//! carries a version vector *context* of everything it has seen. A write discards exactly
//! the values whose dots the client's context covers and keeps the rest as siblings, so a
//! single replica serving many clients keeps exactly the concurrent values, no more (no
//! false conflicts) and no fewer (no lost writes). This is the seeds' shopping-cart
//! algorithm (seed 000, DDIA Figure 5-13) generalised to many replicas.
//!
//! ## Trust and limits
//!
//! Timestamps and vectors arrive from peers and clients, so nothing here panics on them.
//! Clock *states* ([`LamportClock`], [`HybridLogicalClock`]) serialize for inspection but
//! do not deserialize: a node restores its clock by creating a fresh one and observing the
//! last timestamp it persisted, which goes through the same checks as a peer's.
//! Every counter that comes from outside must be at most [`COUNTER_MAX`] (half the `u64`
//! range), which leaves a local clock 2⁶³ increments of headroom: at a billion events a
//! second that is three centuries, so local increments assert instead of returning errors.
//! A hybrid clock rejects a peer's timestamp that is more than the max offset ahead of the
//! local physical clock instead of jumping forward with it, and a key's sibling count is
//! bounded by [`SIBLINGS_MAX`]. All of these are reported as [`ClockError`]s, which convert
//! into the crate's [`Error`](enum@crate::Error) with the right [`Outcome`](crate::Outcome).

pub mod dvv;
pub mod hlc;
pub mod lamport;
pub mod vector;

pub use dvv::{Dot, SIBLINGS_MAX, Sibling, Siblings};
pub use hlc::{HlcTimestamp, HybridLogicalClock};
pub use lamport::{LamportClock, LamportTimestamp};
pub use vector::{Causality, VersionVector};

use crate::error::Error;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest counter accepted from outside (a peer's timestamp, a client's context): any
/// larger value is rejected, so that local increments can never overflow.
pub const COUNTER_MAX: u64 = u64::MAX / 2;

/// Why a clock operation was refused. A refused operation changed nothing.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ClockError {
    /// A peer's hybrid timestamp is further ahead of our physical clock than the configured
    /// maximum offset: one of the two clocks is wrong, and jumping forward would drag this
    /// node's timestamps away from physical time for everyone.
    #[error(
        "remote wall time {remote_wall_ns} ns is more than {max_offset_ns} ns ahead of local \
         physical time {physical_now_ns} ns"
    )]
    RemoteTooFarAhead {
        remote_wall_ns: u64,
        physical_now_ns: u64,
        max_offset_ns: u64,
    },
    /// A hybrid clock's logical counter would overflow at this wall time: physical time has
    /// not advanced for 2³² events. Retry once it has.
    #[error("hybrid clock's logical counter is exhausted at wall time {wall_ns} ns")]
    LogicalOverflow { wall_ns: u64 },
    /// A counter from outside exceeds [`COUNTER_MAX`].
    #[error("counter {counter} exceeds the limit of {COUNTER_MAX}")]
    CounterTooLarge { counter: u64 },
    /// The operation would leave a key with more than [`SIBLINGS_MAX`] siblings.
    #[error(
        "{count} siblings would exceed the limit of {SIBLINGS_MAX}: read the key and write \
         back one merged value with the context the read returned"
    )]
    TooManySiblings { count: usize },
    /// Two replicas hold different values under the same dot. Dots name one write each, so
    /// one replica reused a dot (it lost durable state) or the data is corrupt.
    #[error("dot {dot} names two different values")]
    DotConflict { dot: Dot },
    /// A serialized clock breaks an invariant (zero entry, missing dot, unsorted siblings).
    #[error("malformed clock: {0}")]
    Malformed(String),
}

impl From<ClockError> for Error {
    fn from(error: ClockError) -> Error {
        let message = error.to_string();
        match error {
            ClockError::RemoteTooFarAhead { .. } => Error::Unavailable(message),
            ClockError::LogicalOverflow { .. } | ClockError::TooManySiblings { .. } => {
                Error::Overloaded(message)
            }
            ClockError::CounterTooLarge { .. } | ClockError::Malformed(_) => {
                Error::InvalidInput(message)
            }
            ClockError::DotConflict { .. } => Error::Corruption(message),
        }
    }
}

/// Rejects a counter that came from outside if it exceeds [`COUNTER_MAX`].
fn check_remote_counter(counter: u64) -> Result<u64, ClockError> {
    if counter > COUNTER_MAX {
        return Err(ClockError::CounterTooLarge { counter });
    }
    Ok(counter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Outcome;

    #[test]
    fn every_clock_error_is_a_certain_failure_except_corruption() {
        let dot = Dot {
            node: crate::NodeId(1),
            counter: 1,
        };
        let cases = [
            (
                ClockError::RemoteTooFarAhead {
                    remote_wall_ns: 2,
                    physical_now_ns: 0,
                    max_offset_ns: 1,
                },
                Outcome::Failed,
            ),
            (ClockError::LogicalOverflow { wall_ns: 1 }, Outcome::Failed),
            (ClockError::CounterTooLarge { counter: 0 }, Outcome::Failed),
            (ClockError::TooManySiblings { count: 65 }, Outcome::Failed),
            (ClockError::Malformed("x".into()), Outcome::Failed),
            (ClockError::DotConflict { dot }, Outcome::Unknown),
        ];
        for (clock_error, outcome) in cases {
            assert_eq!(Error::from(clock_error).outcome(), outcome);
        }
    }

    #[test]
    fn remote_counters_are_bounded() {
        assert_eq!(check_remote_counter(COUNTER_MAX), Ok(COUNTER_MAX));
        assert_eq!(
            check_remote_counter(COUNTER_MAX + 1),
            Err(ClockError::CounterTooLarge {
                counter: COUNTER_MAX + 1
            })
        );
    }
}
