//! Monotonic reads: a session never sees time go backwards.
//!
//! Definition (Terry et al., "Session Guarantees for Weakly Consistent Replicated Data",
//! PDIS 1994): "If Read R1 occurs before R2 in a session and R1 accesses server S1 at
//! time t1 and R2 accesses server S2 at time t2, then RelevantWrites(S1, t1, R1) is a
//! subset of DB(S2, t2)." DDIA (ch. 5): after reading newer data, a user does not then
//! read older data (the refresh that makes a comment disappear).
//!
//! How it is decided from a history (see observations.rs for "known older"): for every
//! `ok` read `r2` by process `p`, consider the earlier `ok` reads of `p` on the same key
//! that completed before `r2` was invoked. If `r2` returned a state known to be older than
//! the write one of those earlier reads returned, the session went back in time: a
//! violation. The write an earlier read returned is in RelevantWrites, and a state known
//! older than it cannot include it.
//!
//! Reads of absent constrain nothing later (they may have seen the initial state). To stay
//! linear, a later read of a value is compared with the newest earlier observation by
//! real time and with the union of the earlier observations' causal pasts; a later read of
//! absent is compared with at most the last 1,024 distinct earlier observations.
//!
//! What it cannot see: two values written by overlapping, causally unrelated writes may be
//! read in either order; only single-key regressions are judged (cross-key ones are what
//! monotonic writes, writes-follow-reads and consistent prefix look at).

use crate::history::History;
use crate::observations::{
    ABSENT_COMPARISONS_MAX, Completions, Observation, Observations, ReadId, SessionEntry, WriteId,
};
use crate::session::Findings;
use crate::verdict::Verdict;
use std::collections::{HashMap, VecDeque};

/// The property's name in verdicts.
pub const PROPERTY: &str = "monotonic-reads";

/// Checks monotonic reads for every process of `history`.
pub fn check_monotonic_reads(history: &History) -> Verdict {
    crate::session::check_history(history, check)
}

/// What a session has seen of one key.
#[derive(Debug, Default)]
struct Seen {
    /// The observed write invoked last, and the read that returned it.
    newest: Option<(WriteId, ReadId)>,
    /// Per process: the most of its `ok` writes in any observed write's causal past.
    causal_front: Vec<u32>,
    /// Distinct observed writes, most recent last, with the read that returned each.
    distinct: VecDeque<(WriteId, ReadId)>,
}

impl Seen {
    fn add(&mut self, observations: &Observations<'_>, write: WriteId, read: ReadId) {
        let invoke = observations.writes[write].invoke;
        if self
            .newest
            .is_none_or(|(newest, _)| invoke > observations.writes[newest].invoke)
        {
            self.newest = Some((write, read));
        }
        let past = observations.past(write);
        if self.causal_front.is_empty() {
            self.causal_front = past.to_vec();
        } else {
            for (front, &known) in self.causal_front.iter_mut().zip(past) {
                *front = (*front).max(known);
            }
        }
        if self.distinct.back().is_none_or(|&(last, _)| last != write) {
            self.distinct.push_back((write, read));
            if self.distinct.len() > ABSENT_COMPARISONS_MAX {
                self.distinct.pop_front();
            }
        }
    }

    /// An earlier observation (write, read) that `observation` is known older than.
    fn regression(
        &self,
        observations: &Observations<'_>,
        observation: Observation,
    ) -> Option<(WriteId, ReadId)> {
        match observation {
            Observation::Unknown => None,
            Observation::Write(write) => {
                let record = &observations.writes[write];
                let newest = self.newest?;
                if observations.older(observation, newest.0).is_some() {
                    return Some(newest);
                }
                let in_some_past = record.complete.is_some()
                    && self
                        .causal_front
                        .get(record.process)
                        .is_some_and(|&front| front > record.ok_writes_before);
                if !in_some_past {
                    return None;
                }
                self.latest_newer_than(observations, observation)
            }
            Observation::Absent => self.latest_newer_than(observations, observation),
        }
    }

    fn latest_newer_than(
        &self,
        observations: &Observations<'_>,
        observation: Observation,
    ) -> Option<(WriteId, ReadId)> {
        self.distinct
            .iter()
            .rev()
            .find(|&&(write, _)| observations.older(observation, write).is_some())
            .copied()
    }
}

pub(crate) fn check(observations: &Observations<'_>) -> Verdict {
    let mut findings = Findings::new(PROPERTY);
    for session in &observations.sessions {
        let mut completed: Completions<ReadId> = Completions::new();
        let mut seen: HashMap<usize, Seen> = HashMap::new();
        for &entry in session {
            let SessionEntry::Read(read) = entry else {
                continue;
            };
            let record = &observations.reads[read];
            while let Some(earlier) = completed.pop_until(record.invoke) {
                if let Observation::Write(write) = observations.reads[earlier].observation {
                    let key = observations.reads[earlier].key;
                    seen.entry(key)
                        .or_default()
                        .add(observations, write, earlier);
                }
            }
            let regression = seen
                .get(&record.key)
                .and_then(|seen| seen.regression(observations, record.observation));
            if let Some((newer, earlier)) = regression {
                let older = observations
                    .older(record.observation, newer)
                    .expect("a regression is known older");
                findings.record(observations.process_ids[record.process], || {
                    let explanation = format!(
                        "process {} read {:?} and got {}, after an earlier read of its session \
                         had returned {}",
                        observations.process_ids[record.process],
                        observations.keys[record.key],
                        observations.explain_older(older),
                        observations.read_value(earlier)
                    );
                    let mut operations = vec![
                        observations.writes[newer].op,
                        observations.reads[earlier].op,
                        record.op,
                    ];
                    operations.extend(observations.older_operations(older));
                    (explanation, operations)
                });
            }
            completed.push(record.complete, read);
        }
    }
    findings.verdict(observations)
}
