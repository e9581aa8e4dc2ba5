//! Monotonic writes: a session's writes are seen in the order it issued them.
//!
//! Definition (Terry et al., "Session Guarantees for Weakly Consistent Replicated Data",
//! PDIS 1994): "If Write W1 precedes Write W2 in a session, then, for any server S2, if
//! W2 in DB(S2) then W1 in DB(S2) and WriteOrder(W1, W2)."
//!
//! How it is decided from a history: a client cannot look into a server's database, only
//! at what reads return, so the guarantee is judged through its observers. When any
//! process `q` reads a value written by `W2` of process `p`, every `ok` write `W1` that
//! `p` issued earlier in its session (that is, `p`'s latest such write to each key) is
//! required: if a later read of `q` (invoked after the first one completed) returns, for
//! `W1`'s key, a state known to be older than `W1` (see observations.rs), `q` has seen
//! `W2` without `W1`: a violation. With `W1` and `W2` on the same key this is the
//! overwritten-by-an-older-write anomaly; across keys it is "the second post is visible
//! but the first is gone".
//!
//! What it cannot see: a guarantee about servers judged from clients only shows when the
//! same observer reads both keys in that order; an observer whose second read went to a
//! server that had neither write is, strictly, also a monotonic-reads matter for that
//! observer, and is reported here because the reads prove the writes were seen out of the
//! order their session issued them (Jepsen's reading: "all processes observe W1 before
//! W2"). `info` writes are not required (they may never have happened). What `W1`'s key
//! held when `W2` was read is not observable unless someone reads it.

use crate::history::History;
use crate::observations::{Observations, WriteId, describe_write};
use crate::session::{Findings, ObserverRule, check_observers};
use crate::verdict::Verdict;

/// The property's name in verdicts.
pub const PROPERTY: &str = "monotonic-writes";

/// Checks monotonic writes for every process of `history`.
pub fn check_monotonic_writes(history: &History) -> Verdict {
    crate::session::check_history(history, check)
}

/// Requires the writer's earlier `ok` writes.
#[derive(Debug)]
struct EarlierWritesOfTheSession;

impl ObserverRule for EarlierWritesOfTheSession {
    fn fronts(&self, observations: &Observations<'_>, write: WriteId) -> Vec<(usize, u64)> {
        let record = &observations.writes[write];
        vec![(record.process, u64::from(record.ok_writes_before))]
    }

    fn required(
        &self,
        observations: &Observations<'_>,
        process: usize,
        front: u64,
        key: usize,
    ) -> Option<WriteId> {
        observations.latest_ok_write(process, key, u32::try_from(front).ok()?)
    }

    fn justify(
        &self,
        observations: &Observations<'_>,
        required: WriteId,
        _observed: WriteId,
    ) -> (String, Vec<usize>) {
        let reason = format!(
            "and process {} had issued {} before that write",
            observations.process_ids[observations.writes[required].process],
            describe_write(observations, required)
        );
        (reason, Vec::new())
    }
}

pub(crate) fn check(observations: &Observations<'_>) -> Verdict {
    let mut findings = Findings::new(PROPERTY);
    check_observers(observations, &EarlierWritesOfTheSession, &mut findings);
    findings.verdict(observations)
}
