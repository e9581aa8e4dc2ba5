//! Read-your-writes: a session sees its own writes.
//!
//! Definition (Terry, Demers, Petersen, Spreitzer, Theimer & Welch, "Session Guarantees
//! for Weakly Consistent Replicated Data", PDIS 1994): "If Read R follows Write W in a
//! session and R is performed at server S at time t, then W is included in DB(S,t)."
//! DDIA (ch. 5) calls it read-after-write consistency: a user who reloads the page sees
//! what they just submitted.
//!
//! How it is decided from a history (see observations.rs for "known older"): for every
//! `ok` read `r` of key `k` by process `p`, take `p`'s latest `ok` write (write, delete or
//! swapped cas) of `k` that completed before `r` was invoked. If `r` returned a state
//! known to be older than that write — a value whose write was acknowledged before it
//! was invoked or is in its causal past, or absent when every delete of the key is known
//! to precede it — `r` did not include the session's own write: a violation. Reading a
//! value written concurrently by someone else is fine (it may have overwritten ours).
//!
//! What it cannot see: a write whose outcome the client does not know (`info`) does not
//! bind the session; an overwrite of our write by a write that overlapped it in time is
//! indistinguishable from our write being invisible, so it is not reported.

use crate::history::History;
use crate::observations::{Completions, Observations, SessionEntry, WriteId, describe_write};
use crate::session::Findings;
use crate::verdict::Verdict;
use std::collections::HashMap;

/// The property's name in verdicts.
pub const PROPERTY: &str = "read-your-writes";

/// Checks read-your-writes for every process of `history`.
pub fn check_read_your_writes(history: &History) -> Verdict {
    crate::session::check_history(history, check)
}

pub(crate) fn check(observations: &Observations<'_>) -> Verdict {
    let mut findings = Findings::new(PROPERTY);
    for session in &observations.sessions {
        let mut completed: Completions<WriteId> = Completions::new();
        let mut latest_own: HashMap<usize, WriteId> = HashMap::new();
        for &entry in session {
            while let Some(write) = completed.pop_until(observations.invoke_of(entry)) {
                let key = observations.writes[write].key;
                let latest = latest_own.entry(key).or_insert(write);
                if observations.writes[write].invoke >= observations.writes[*latest].invoke {
                    *latest = write;
                }
            }
            match entry {
                SessionEntry::Write(write) => {
                    if let Some(complete) = observations.writes[write].complete {
                        completed.push(complete, write);
                    }
                }
                SessionEntry::Read(read) => {
                    let record = &observations.reads[read];
                    let Some(&own) = latest_own.get(&record.key) else {
                        continue;
                    };
                    let Some(older) = observations.older(record.observation, own) else {
                        continue;
                    };
                    findings.record(observations.process_ids[record.process], || {
                        let explanation = format!(
                            "process {} read {:?} after {} had completed, and got {}",
                            observations.process_ids[record.process],
                            observations.keys[record.key],
                            describe_write(observations, own),
                            observations.explain_older(older)
                        );
                        let mut operations = vec![observations.writes[own].op, record.op];
                        operations.extend(observations.older_operations(older));
                        (explanation, operations)
                    });
                }
            }
        }
    }
    findings.verdict(observations)
}
