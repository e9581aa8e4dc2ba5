//! Writes-follow-reads: a write is ordered after the writes its session had read.
//!
//! Definition (Terry et al., "Session Guarantees for Weakly Consistent Replicated Data",
//! PDIS 1994): "If Read R1 precedes Write W2 in a session and R1 is performed at server S1
//! at time t1, then, for any server S2, if W2 is in DB(S2) then any W1 in
//! RelevantWrites(S1, t1, R1) is also in DB(S2) and WriteOrder(W1, W2)." This is the
//! guarantee behind DDIA's "answer before the question" example: the answer was written
//! by someone who had read the question, so nobody may see the answer without it.
//!
//! How it is decided from a history, through observers as for monotonic writes: when any
//! process `q` reads a value written by `W2` of process `p`, the write `W1` returned by
//! `p`'s latest `ok` read of each key that completed before `W2` was invoked is required;
//! if a later read of `q` returns, for that key, a state known to be older than `W1` (see
//! observations.rs), `q` has seen `W2` without `W1`: a violation. Only direct reads of
//! the writer count; chains (`p` read what `o` wrote after `o` read `W1`) are consistent
//! prefix's business.
//!
//! What it cannot see: `p`'s earlier reads of a key are represented by its latest one
//! that returned a write (if `p` itself went back in time, monotonic reads reports it);
//! reads of absent require nothing; and, as for every guarantee judged from clients, an
//! observer only shows a violation by reading both keys in that order.

use crate::history::History;
use crate::observations::{Observation, Observations, ReadId, WriteId, describe_write};
use crate::session::{Findings, ObserverRule, check_observers};
use crate::verdict::Verdict;
use std::collections::HashMap;

/// The property's name in verdicts.
pub const PROPERTY: &str = "writes-follow-reads";

/// Checks writes-follow-reads for every process of `history`.
pub fn check_writes_follow_reads(history: &History) -> Verdict {
    crate::session::check_history(history, check)
}

/// Requires what the writer had read before writing. Fronts are times: a front `t`
/// requires what the writer's reads that completed before `t` returned.
#[derive(Debug)]
struct WritesTheWriterRead {
    /// Per (process, key): its `ok` reads that returned a write, by completion.
    reads: HashMap<(usize, usize), Vec<ReadId>>,
}

impl WritesTheWriterRead {
    fn new(observations: &Observations<'_>) -> WritesTheWriterRead {
        let mut reads: HashMap<(usize, usize), Vec<ReadId>> = HashMap::new();
        for (id, read) in observations.reads.iter().enumerate() {
            if matches!(read.observation, Observation::Write(_)) {
                reads.entry((read.process, read.key)).or_default().push(id);
            }
        }
        for list in reads.values_mut() {
            list.sort_by_key(|&read| {
                (
                    observations.reads[read].complete,
                    observations.reads[read].op,
                )
            });
        }
        WritesTheWriterRead { reads }
    }
}

impl ObserverRule for WritesTheWriterRead {
    fn fronts(&self, observations: &Observations<'_>, write: WriteId) -> Vec<(usize, u64)> {
        let record = &observations.writes[write];
        vec![(record.process, record.invoke.saturating_add(1))]
    }

    fn required(
        &self,
        observations: &Observations<'_>,
        process: usize,
        front: u64,
        key: usize,
    ) -> Option<WriteId> {
        let read = self.last_read_before(observations, process, key, front)?;
        match observations.reads[read].observation {
            Observation::Write(write) => Some(write),
            _ => None,
        }
    }

    fn justify(
        &self,
        observations: &Observations<'_>,
        required: WriteId,
        observed: WriteId,
    ) -> (String, Vec<usize>) {
        let writer = observations.writes[observed].process;
        let key = observations.writes[required].key;
        let front = observations.writes[observed].invoke.saturating_add(1);
        let reason = format!(
            "which process {} issued after reading {}",
            observations.process_ids[writer],
            describe_write(observations, required)
        );
        let read = self.last_read_before(observations, writer, key, front);
        (
            reason,
            read.map(|read| observations.reads[read].op)
                .into_iter()
                .collect(),
        )
    }
}

impl WritesTheWriterRead {
    /// `process`'s last read of `key` (that returned a write) completed before `front`.
    fn last_read_before(
        &self,
        observations: &Observations<'_>,
        process: usize,
        key: usize,
        front: u64,
    ) -> Option<ReadId> {
        let reads = self.reads.get(&(process, key))?;
        let count = reads.partition_point(|&read| observations.reads[read].complete < front);
        Some(reads[count.checked_sub(1)?])
    }
}

pub(crate) fn check(observations: &Observations<'_>) -> Verdict {
    let mut findings = Findings::new(PROPERTY);
    check_observers(
        observations,
        &WritesTheWriterRead::new(observations),
        &mut findings,
    );
    findings.verdict(observations)
}
