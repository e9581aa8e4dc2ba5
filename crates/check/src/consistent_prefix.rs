//! Consistent prefix reads: nobody sees an answer before its question.
//!
//! Definition (Kleppmann, *Designing Data-Intensive Applications*, ch. 5, "Consistent
//! Prefix Reads"): "if a sequence of writes happens in a certain order, then anyone
//! reading those writes will see them appear in the same order." DDIA's example is causal:
//! an observer hears Mrs. Cake's answer before Mr. Poons's question, because the partition
//! holding the question lags. (Terry's "Replicated Data Consistency Explained Through
//! Baseball" gives the same name to "reads see a prefix of the write order".)
//!
//! How it is decided from a history: "happens in a certain order" is taken as causal
//! order (Lamport's happened-before over sessions and reads-from): write `W1` happens
//! before `W2` if `W2`'s process had, before invoking `W2`, issued `W1` (an `ok` write)
//! or read a value whose write had `W1` in its own causal past, transitively — tracked
//! with vector clocks (observations.rs). When any process `q` reads a value written by
//! `W2`, every write in `W2`'s causal past is required (per key and writer, the latest):
//! if a later read of `q` returns, for that key, a state known to be older than such a
//! `W1`, `q` has seen `W2`'s effects before `W1`'s — the answer before the question: a
//! violation. Monotonic writes (the writer's own earlier writes) and writes-follow-reads
//! (what the writer read directly) are one-step special cases; this check also follows
//! chains through several processes.
//!
//! What it cannot see: orders that are not causal (two independent writers' writes may be
//! seen in either order); `info` writes are only in a causal past once someone read them
//! and wrote after. The witness lists `W1`, `W2`, the observer's two reads, and the chain
//! of reads (and the writes they returned) that put `W1` in `W2`'s causal past.

use crate::history::History;
use crate::observations::{Observations, WriteId, describe_write};
use crate::session::{Findings, ObserverRule, check_observers};
use crate::verdict::Verdict;

/// The property's name in verdicts.
pub const PROPERTY: &str = "consistent-prefix";

/// Checks consistent prefix reads for every process of `history`.
pub fn check_consistent_prefix(history: &History) -> Verdict {
    crate::session::check_history(history, check)
}

/// Requires the causal past of what was read.
#[derive(Debug)]
struct CausalPast;

impl ObserverRule for CausalPast {
    fn fronts(&self, observations: &Observations<'_>, write: WriteId) -> Vec<(usize, u64)> {
        observations
            .causal_past_of(write)
            .map(|(process, ok_writes)| (process, u64::from(ok_writes)))
            .collect()
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
        observed: WriteId,
    ) -> (String, Vec<usize>) {
        let reason = format!(
            "which causally follows {} (the witness shows the reads that carried it)",
            describe_write(observations, required)
        );
        (reason, observations.causal_chain(required, observed))
    }
}

pub(crate) fn check(observations: &Observations<'_>) -> Verdict {
    let mut findings = Findings::new(PROPERTY);
    check_observers(observations, &CausalPast, &mut findings);
    findings.verdict(observations)
}
