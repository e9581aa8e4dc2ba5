//! Durability: no acknowledged write is lost.
//!
//! Definition: once the database has acknowledged a write (`ok`), the write survives —
//! crashes, failovers and partitions included. DDIA (ch. 5, "Handling Node Outages" and
//! "Leader failover") describes how asynchronous replication breaks exactly this: a new
//! leader that lacks the old leader's last writes discards them, although clients were
//! told they succeeded. replikv's single-leader mode counts the writes it discards on
//! failover; this checker counts, from the clients' side, the acknowledged writes that
//! are gone, so the two numbers can be compared exactly.
//!
//! Two workloads, two entry points, one report ([`DurabilityReport`]: the count and the
//! list of lost acknowledged writes, each with the reads that prove it):
//!
//! - Registers ([`lost_register_writes`]): a key holds one value, so a later write
//!   legitimately replaces an earlier one and only some losses are visible. An `ok` write
//!   `w` of a value (deletes cannot be told apart) is lost when an `ok` read of its key
//!   that began after `w` completed, and after every `ok` write of the key that could
//!   follow `w` completed, returned a value whose write real-time precedes `w`
//!   (acknowledged before `w` was invoked), or returned absent while every delete of the
//!   key real-time precedes `w`. Since a write with the latest completion could always
//!   follow `w`, the judged reads are those that began after every acknowledged write of
//!   the key had completed: the final reads. (Writes of unknown outcome are not waited for:
//!   with unique values they cannot bring an older value back.) A stale read from a
//!   lagging replica looks exactly like a loss; give this checker reads meant to be up to
//!   date.
//! - Sets ([`lost_set_writes`]): each `write` adds its (unique) value to the key's set and
//!   a `read` returns the whole set as a JSON array. The final read of a key is its `ok`
//!   array read invoked last; every `ok` write of the key that completed before the final
//!   read was invoked must be in it, and every one that is not is lost. This sees every
//!   loss, which is why exact counting uses it. Writes that overlap the final read, writes
//!   of unknown outcome, and keys never read are not judged; the report counts the
//!   acknowledged writes left unjudged.

use crate::history::{Function, History, Operation, OperationType};
use crate::observations::{Observation, Observations};
use crate::verdict::{Verdict, Violation, describe};
use std::collections::{BTreeMap, HashSet};

/// The property's name in verdicts.
pub const PROPERTY: &str = "durability";

/// At most this many lost writes are listed in a violation (the report has them all).
const WITNESS_WRITES_MAX: usize = 64;

/// One acknowledged write that is gone.
#[derive(Clone, Debug, PartialEq)]
pub struct LostWrite {
    /// The lost write, as in the history.
    pub write: Operation,
    /// The operations that prove it lost: the read, and the older write it returned.
    pub evidence: Vec<Operation>,
}

/// What a durability check found.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DurabilityReport {
    /// Every lost acknowledged write, in history order.
    pub lost: Vec<LostWrite>,
    /// Acknowledged writes no judged read could confirm or refute.
    pub unjudged_writes: usize,
}

impl DurabilityReport {
    /// How many acknowledged writes were lost.
    #[must_use]
    pub fn lost_count(&self) -> usize {
        self.lost.len()
    }

    /// The report as a verdict: `Invalid` when anything was lost.
    #[must_use]
    pub fn verdict(&self) -> Verdict {
        if self.lost.is_empty() {
            return Verdict::Valid;
        }
        let mut operations = Vec::new();
        for lost in self.lost.iter().take(WITNESS_WRITES_MAX) {
            operations.push(lost.write.clone());
            operations.extend(lost.evidence.iter().cloned());
        }
        let listed = self.lost.len().min(WITNESS_WRITES_MAX);
        let explanation = format!(
            "{} acknowledged write{} lost (first: {}, absent from a later read that had to \
             include it){}",
            self.lost.len(),
            if self.lost.len() == 1 { "" } else { "s" },
            describe(&self.lost[0].write),
            if listed < self.lost.len() {
                format!("; the first {listed} are listed")
            } else {
                String::new()
            }
        );
        Verdict::Invalid(Violation::new(PROPERTY, explanation, operations))
    }
}

/// Checks that no acknowledged register write is lost (see the module doc).
pub fn check_register_durability(history: &History) -> Verdict {
    match lost_register_writes(history) {
        Ok(report) => report.verdict(),
        Err(error) => Verdict::input_error(error),
    }
}

/// The acknowledged register writes that final reads prove lost.
pub fn lost_register_writes(history: &History) -> Result<DurabilityReport, String> {
    let observations = Observations::new(history)?;
    Ok(register_report(&observations))
}

pub(crate) fn register_report(observations: &Observations<'_>) -> DurabilityReport {
    let keys = observations.keys.len();
    let mut settled = vec![0_u64; keys];
    for write in &observations.writes {
        if let Some(complete) = write.complete {
            settled[write.key] = settled[write.key].max(complete);
        }
    }
    let mut final_reads: Vec<Vec<usize>> = vec![Vec::new(); keys];
    for (id, read) in observations.reads.iter().enumerate() {
        if read.invoke > settled[read.key] {
            final_reads[read.key].push(id);
        }
    }
    let mut report = DurabilityReport::default();
    for (id, write) in observations.writes.iter().enumerate() {
        if write.complete.is_none() || write.deletes {
            continue;
        }
        let proof = final_reads[write.key].iter().find_map(|&read| {
            let older =
                observations.older_in_real_time(observations.reads[read].observation, id)?;
            Some((read, older))
        });
        match proof {
            Some((read, older)) => {
                let mut evidence =
                    vec![observations.operation(observations.reads[read].op).clone()];
                evidence.extend(
                    older
                        .into_iter()
                        .map(|op| observations.operation(op).clone()),
                );
                report.lost.push(LostWrite {
                    write: observations.operation(write.op).clone(),
                    evidence,
                });
            }
            None if final_reads[write.key].is_empty() => report.unjudged_writes += 1,
            None => {}
        }
    }
    report
}

/// Checks that no acknowledged set write is lost (see the module doc).
pub fn check_set_durability(history: &History) -> Verdict {
    match lost_set_writes(history) {
        Ok(report) => report.verdict(),
        Err(error) => Verdict::input_error(error),
    }
}

/// The acknowledged set writes missing from their key's final read.
pub fn lost_set_writes(history: &History) -> Result<DurabilityReport, String> {
    history.validate().map_err(|error| error.to_string())?;
    check_set_values_are_unique(history)?;
    let mut final_reads: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, operation) in history.operations.iter().enumerate() {
        let is_array_read = operation.f == Function::Read
            && operation.kind == OperationType::Ok
            && operation.value.is_array();
        if !is_array_read {
            continue;
        }
        let latest = final_reads.entry(&operation.key).or_insert(index);
        if operation.invoke >= history.operations[*latest].invoke {
            *latest = index;
        }
    }
    let mut report = DurabilityReport::default();
    for operation in &history.operations {
        if operation.f != Function::Write || operation.kind != OperationType::Ok {
            continue;
        }
        let judged = final_reads
            .get(operation.key.as_str())
            .map(|&read| &history.operations[read])
            .filter(|read| {
                operation
                    .complete
                    .is_some_and(|complete| complete < read.invoke)
            });
        let Some(read) = judged else {
            report.unjudged_writes += 1;
            continue;
        };
        let present = read
            .value
            .as_array()
            .is_some_and(|elements| elements.contains(&operation.value));
        if !present {
            report.lost.push(LostWrite {
                write: operation.clone(),
                evidence: vec![read.clone()],
            });
        }
    }
    Ok(report)
}

/// The set model has only writes (adds) and reads, and each value is added once per key.
fn check_set_values_are_unique(history: &History) -> Result<(), String> {
    let mut written: HashSet<(&str, String)> = HashSet::new();
    for (index, operation) in history.operations.iter().enumerate() {
        match operation.f {
            Function::Read => {}
            Function::Write if operation.kind == OperationType::Fail => {}
            Function::Write => {
                if !written.insert((&operation.key, operation.value.to_string())) {
                    return Err(format!(
                        "operation {}: key {:?} gets value {} twice; the set model needs unique values",
                        index + 1,
                        operation.key,
                        operation.value
                    ));
                }
            }
            Function::Cas | Function::Delete => {
                return Err(format!(
                    "operation {}: the set model has only write (add) and read operations",
                    index + 1
                ));
            }
        }
    }
    Ok(())
}

impl Observations<'_> {
    /// Like [`Observations::older`] with real-time evidence only: the history indices of
    /// the older write (or latest delete) when `observation` is older than `write`.
    pub(crate) fn older_in_real_time(
        &self,
        observation: Observation,
        write: usize,
    ) -> Option<Vec<usize>> {
        let invoke = self.writes[write].invoke;
        let acknowledged_before = |other: usize| {
            self.writes[other]
                .complete
                .is_some_and(|complete| complete < invoke)
        };
        match observation {
            Observation::Unknown => None,
            Observation::Write(observed) => {
                acknowledged_before(observed).then(|| vec![self.writes[observed].op])
            }
            Observation::Absent => {
                let deletes = &self.deletes[self.writes[write].key];
                let all_acknowledged_before = deletes.all_before(&self.writes, invoke, |_| false);
                all_acknowledged_before.then(|| {
                    deletes
                        .latest
                        .map(|delete| self.writes[delete].op)
                        .into_iter()
                        .collect()
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(lines: &str) -> History {
        History::read_jsonl(lines.as_bytes()).unwrap()
    }

    #[test]
    fn set_writes_the_final_read_cannot_judge_are_counted_apart() {
        let report = lost_set_writes(&history(
            r#"{"process":0,"key":"s","f":"write","value":1,"type":"ok","invoke":0,"complete":10}
{"process":1,"key":"s","f":"read","value":[1],"type":"ok","invoke":20,"complete":30}
{"process":0,"key":"s","f":"write","value":2,"type":"ok","invoke":25,"complete":35}
{"process":0,"key":"t","f":"write","value":1,"type":"ok","invoke":40,"complete":50}
{"process":0,"key":"s","f":"write","value":3,"type":"info","invoke":60,"complete":null}"#,
        ))
        .unwrap();
        assert_eq!((report.lost_count(), report.unjudged_writes), (0, 2));
        assert_eq!(report.verdict(), Verdict::Valid);
    }

    #[test]
    fn the_set_model_rejects_what_it_cannot_judge() {
        let cas = r#"{"process":0,"key":"s","f":"cas","value":[1,2],"ok":true,"type":"ok","invoke":0,"complete":10}"#;
        assert!(
            lost_set_writes(&history(cas))
                .unwrap_err()
                .contains("only write")
        );
        let twice = r#"{"process":0,"key":"s","f":"write","value":1,"type":"ok","invoke":0,"complete":10}
{"process":1,"key":"s","f":"write","value":1,"type":"info","invoke":5,"complete":null}"#;
        assert!(
            lost_set_writes(&history(twice))
                .unwrap_err()
                .contains("twice")
        );
        assert!(check_set_durability(&history(twice)).is_unknown());
    }

    #[test]
    fn a_register_write_overwritten_by_a_later_one_is_not_lost() {
        let report = lost_register_writes(&history(
            r#"{"process":0,"key":"x","f":"write","value":1,"type":"ok","invoke":0,"complete":10}
{"process":0,"key":"x","f":"write","value":2,"type":"ok","invoke":20,"complete":30}
{"process":1,"key":"x","f":"read","value":2,"type":"ok","invoke":40,"complete":50}
{"process":1,"key":"y","f":"write","value":1,"type":"ok","invoke":40,"complete":50}"#,
        ))
        .unwrap();
        assert_eq!((report.lost_count(), report.unjudged_writes), (0, 1));
    }

    #[test]
    fn many_lost_writes_are_all_counted_and_the_witness_is_bounded() {
        let mut lines = String::new();
        for value in 0..100 {
            lines.push_str(&format!(
                "{{\"process\":0,\"key\":\"s\",\"f\":\"write\",\"value\":{value},\"type\":\"ok\",\"invoke\":{},\"complete\":{}}}\n",
                value * 10,
                value * 10 + 5
            ));
        }
        lines.push_str(r#"{"process":1,"key":"s","f":"read","value":[],"type":"ok","invoke":5000,"complete":5001}"#);
        let history = history(&lines);
        assert_eq!(lost_set_writes(&history).unwrap().lost_count(), 100);
        let verdict = check_set_durability(&history);
        let violation = verdict.violation().unwrap();
        assert!(
            violation
                .explanation
                .starts_with("100 acknowledged writes lost"),
            "{}",
            violation.explanation
        );
        assert_eq!(violation.operations.len(), WITNESS_WRITES_MAX + 1);
    }
}
