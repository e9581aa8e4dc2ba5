//! Machinery shared by the session-guarantee checkers.
//!
//! Terry et al. define their four guarantees per session: each one relates the
//! operations of one client to what that client later observes. Three of them (monotonic
//! writes, writes-follow-reads, and consistent prefix, which DDIA phrases as "answers
//! never before their questions") share one shape, checked here once: an *observer*
//! reads a value, and from the write it read the guarantee derives *requirements* — other
//! writes the observer must never afterwards see the key state before. What differs is
//! which writes are required (the writer's earlier writes; the writes the writer had
//! read; the writer's whole causal past), so each checker passes its own rule.
//!
//! Requirements only grow along a session, so the observer keeps, per writer process,
//! the furthest "front" it has been shown (a count of that process's writes, or a time)
//! and looks requirements up on demand for the key each later read touches.
//!
//! [`Findings`] collects violations: their count, and the first one (in process order,
//! then session order) in full.

use crate::observations::{
    Completions, Observation, Observations, ReadId, WriteId, describe_write,
};
use crate::verdict::{Verdict, Violation};
use std::collections::BTreeSet;

/// Violations of one property found so far.
#[derive(Debug)]
pub(crate) struct Findings {
    property: &'static str,
    count: usize,
    /// The (history) ids of the processes whose sessions violate the property.
    processes: BTreeSet<u64>,
    first: Option<(String, Vec<usize>)>,
}

impl Findings {
    pub(crate) fn new(property: &'static str) -> Findings {
        Findings {
            property,
            count: 0,
            processes: BTreeSet::new(),
            first: None,
        }
    }

    /// Records a violation in the session of `process` (a history process id): `details`
    /// gives its explanation and the history indices of the operations that show it, and
    /// is only called for the first one.
    pub(crate) fn record(&mut self, process: u64, details: impl FnOnce() -> (String, Vec<usize>)) {
        self.count += 1;
        self.processes.insert(process);
        if self.first.is_none() {
            self.first = Some(details());
        }
    }

    pub(crate) fn verdict(self, observations: &Observations<'_>) -> Verdict {
        let Some((mut explanation, operations)) = self.first else {
            return Verdict::Valid;
        };
        let processes: Vec<String> = self.processes.iter().map(u64::to_string).collect();
        let plural = |count: usize, one: &'static str, many: &'static str| {
            if count == 1 { one } else { many }
        };
        explanation.push_str(&format!(
            " ({} violation{} in all, in the session{} of process{} {}; the first is shown)",
            self.count,
            plural(self.count, "", "s"),
            plural(processes.len(), "", "s"),
            plural(processes.len(), "", "es"),
            processes.join(", ")
        ));
        let operations = operations
            .into_iter()
            .map(|index| observations.operation(index).clone())
            .collect();
        Verdict::Invalid(Violation::new(self.property, explanation, operations))
    }
}

/// Builds the observations of `history` and runs one session checker over them; a
/// history the observations cannot be built from (duplicate written values, ...) is an
/// input error, never a pass.
pub(crate) fn check_history(
    history: &crate::history::History,
    check: fn(&Observations<'_>) -> Verdict,
) -> Verdict {
    match Observations::new(history) {
        Ok(observations) => check(&observations),
        Err(error) => Verdict::input_error(error),
    }
}

/// A guarantee of the observer shape.
pub(crate) trait ObserverRule {
    /// The fronts (writer process, front) an observer reaches by reading `write`.
    fn fronts(&self, observations: &Observations<'_>, write: WriteId) -> Vec<(usize, u64)>;

    /// The write that `front` of `process` requires on `key`, if any.
    fn required(
        &self,
        observations: &Observations<'_>,
        process: usize,
        front: u64,
        key: usize,
    ) -> Option<WriteId>;

    /// Why `required` is required once `observed` was read: words completing "process q
    /// read k = v (write), ..." and the history indices of the operations that show it.
    fn justify(
        &self,
        observations: &Observations<'_>,
        required: WriteId,
        observed: WriteId,
    ) -> (String, Vec<usize>);
}

/// Where an observer's knowledge of one writer process came from.
#[derive(Clone, Copy, Debug)]
struct Front {
    front: u64,
    read: ReadId,
    observed: WriteId,
}

/// Checks every observer's session against `rule`.
pub(crate) fn check_observers(
    observations: &Observations<'_>,
    rule: &impl ObserverRule,
    findings: &mut Findings,
) {
    let processes = observations.process_ids.len();
    for session in &observations.sessions {
        let mut fronts: Vec<Option<Front>> = vec![None; processes];
        let mut active: Vec<usize> = Vec::new();
        let mut completed: Completions<ReadId> = Completions::new();
        for &entry in session {
            let crate::observations::SessionEntry::Read(read) = entry else {
                continue;
            };
            while let Some(earlier) = completed.pop_until(observations.reads[read].invoke) {
                let Observation::Write(observed) = observations.reads[earlier].observation else {
                    continue;
                };
                for (process, front) in rule.fronts(observations, observed) {
                    let slot = &mut fronts[process];
                    if slot.is_none() {
                        active.push(process);
                    }
                    if slot.is_none_or(|known| front > known.front) {
                        *slot = Some(Front {
                            front,
                            read: earlier,
                            observed,
                        });
                    }
                }
            }
            check_read(observations, rule, &fronts, &active, read, findings);
            completed.push(observations.reads[read].complete, read);
        }
    }
}

fn check_read(
    observations: &Observations<'_>,
    rule: &impl ObserverRule,
    fronts: &[Option<Front>],
    active: &[usize],
    read: ReadId,
    findings: &mut Findings,
) {
    let record = &observations.reads[read];
    for &process in active {
        let Some(front) = fronts[process] else {
            continue;
        };
        let Some(required) = rule.required(observations, process, front.front, record.key) else {
            continue;
        };
        let Some(older) = observations.older(record.observation, required) else {
            continue;
        };
        findings.record(observations.process_ids[record.process], || {
            let (reason, because) = rule.justify(observations, required, front.observed);
            let explanation = format!(
                "process {} read {:?} = {} ({}), {reason}; so it must not then see {:?} before {}. \
                 But its later read of {:?} returned {}",
                observations.process_ids[record.process],
                observations.keys[observations.reads[front.read].key],
                observations.written_value(front.observed),
                describe_write(observations, front.observed),
                observations.keys[record.key],
                describe_write(observations, required),
                observations.keys[record.key],
                observations.explain_older(older)
            );
            let mut operations = vec![
                observations.writes[required].op,
                observations.writes[front.observed].op,
                observations.reads[front.read].op,
                record.op,
            ];
            operations.extend(because);
            operations.extend(observations.older_operations(older));
            (explanation, operations)
        });
        return;
    }
}
