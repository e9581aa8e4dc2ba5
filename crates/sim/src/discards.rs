//! Loss accounting: the writes the replicas said they discarded, compared write for
//! write with the acknowledged writes the durability checker finds lost.
//!
//! A lossy commit mode (async replication, semi-sync with too few acknowledgements)
//! may lose acknowledged writes on failover; DDIA's complaint about async failover is
//! not that it loses them but that it does so silently. replikv's replicas report every
//! write they throw away ([`Output::Discarded`](replikv_core::replica::Output::Discarded)).
//! The simulator collects the reports of the whole run (deduplicated by request id and
//! log position: a crash between reporting and removing reports again), and this check
//! holds the replicas to them exactly:
//!
//! - every acknowledged write the durability checker finds lost was reported (loss is
//!   never silent), and
//! - every write reported as certainly discarded whose operation the client saw
//!   acknowledged is lost (no false alarms). A replica that could not tell exactly where
//!   its log parted from its new leader's (a snapshot replaced a log it had not compared)
//!   reports what it might have lost as uncertain: those must include every loss, but
//!   may include writes that survived. So may a certain report of a request the client
//!   retried under the same id after an unknown outcome: the retry may have put a second
//!   copy in the log, which survives while the replica's own copy is discarded.
//!
//! Reported writes the client never saw acknowledged (it timed out, or the node
//! crashed before answering) are not judged: whether they count as lost depends on an
//! answer nobody received. The check needs a workload in which the durability checker
//! judges every acknowledged write (`WorkloadOptions::fresh_key_per_write`): with
//! several writes per key, a later write hides an earlier one's loss.

use crate::clients::value_to_json;
use replikv_check::durability::{self, LostWrite};
use replikv_check::{Function, History, OperationType, Verdict, Violation};
use replikv_core::replica::DiscardedWrite;
use replikv_core::{LogPosition, RequestId};
use std::collections::{BTreeSet, HashSet};

/// The property's name in verdicts.
pub const DISCARDS_PROPERTY: &str = "discards-reported";

/// At most this many writes are named in a violation's explanation.
const NAMED_WRITES_MAX: usize = 16;

/// Every discarded write reported during one run, each once.
#[derive(Debug, Default)]
pub struct Discards {
    seen: HashSet<(RequestId, LogPosition)>,
    writes: Vec<DiscardedWrite>,
}

impl Discards {
    /// Records a report; a write reported before (same request and position) is skipped.
    pub fn record(&mut self, writes: Vec<DiscardedWrite>) {
        for write in writes {
            if self.seen.insert((write.request_id, write.position)) {
                self.writes.push(write);
            }
        }
    }

    #[must_use]
    pub fn into_writes(self) -> Vec<DiscardedWrite> {
        self.writes
    }
}

/// Compares the reported discards with the lost acknowledged writes; see the module
/// documentation.
#[must_use]
pub fn check_discards(
    history: &History,
    discarded: &[DiscardedWrite],
    retried: &BTreeSet<RequestId>,
) -> Verdict {
    let report = match durability::lost_register_writes(history) {
        Ok(report) => report,
        Err(reason) => return Verdict::Unknown { reason },
    };
    if report.unjudged_writes > 0 {
        return Verdict::Invalid(Violation {
            property: DISCARDS_PROPERTY,
            explanation: format!(
                "{} acknowledged writes could not be judged (no final read of their key \
                 succeeded): loss cannot be counted exactly",
                report.unjudged_writes
            ),
            operations: Vec::new(),
        });
    }
    let lost: BTreeSet<(String, String)> = report.lost.iter().map(lost_identity).collect();
    let acknowledged = acknowledged_writes(history);
    let reported_where = |certain: bool| -> BTreeSet<(String, String)> {
        discarded
            .iter()
            .filter(|write| !certain || (write.certain && !retried.contains(&write.request_id)))
            .filter_map(discard_identity)
            .filter(|identity| acknowledged.contains(identity))
            .collect()
    };
    let reported = reported_where(false);
    let reported_certain = reported_where(true);
    let silent: Vec<&(String, String)> = lost.difference(&reported).collect();
    let false_alarms: Vec<&(String, String)> = reported_certain.difference(&lost).collect();
    if silent.is_empty() && false_alarms.is_empty() {
        return Verdict::Valid;
    }
    let name = |writes: &[&(String, String)]| {
        writes
            .iter()
            .take(NAMED_WRITES_MAX)
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Verdict::Invalid(Violation {
        property: DISCARDS_PROPERTY,
        explanation: format!(
            "{} lost acknowledged writes, {} reported discarded and acknowledged: {} lost \
             silently [{}], {} reported certainly discarded but not lost [{}]",
            lost.len(),
            reported.len(),
            silent.len(),
            name(&silent),
            false_alarms.len(),
            name(&false_alarms)
        ),
        operations: report
            .lost
            .iter()
            .take(NAMED_WRITES_MAX)
            .map(|lost| lost.write.clone())
            .collect(),
    })
}

fn lost_identity(lost: &LostWrite) -> (String, String) {
    (lost.write.key.clone(), lost.write.value.to_string())
}

/// The (key, value) of every acknowledged write of the history.
fn acknowledged_writes(history: &History) -> HashSet<(String, String)> {
    history
        .operations
        .iter()
        .filter(|op| op.f == Function::Write && op.kind == OperationType::Ok)
        .map(|op| (op.key.clone(), op.value.to_string()))
        .collect()
}

/// A discarded write as the history names it: (key, value), if it left a value.
fn discard_identity(write: &DiscardedWrite) -> Option<(String, String)> {
    let value = write.value.as_ref()?;
    let key = String::from_utf8_lossy(write.key.as_bytes()).into_owned();
    Some((key, value_to_json(value).to_string()))
}

/// The number of reported discards whose write the client saw acknowledged.
#[must_use]
pub fn acknowledged_discards(history: &History, discarded: &[DiscardedWrite]) -> usize {
    let acknowledged = acknowledged_writes(history);
    discarded
        .iter()
        .filter_map(discard_identity)
        .filter(|identity| acknowledged.contains(identity))
        .count()
}

/// One line per reported discard whose write the client saw acknowledged (at most
/// `lines_max`, then a count of the rest): what a failover took back, for people reading
/// a run.
#[must_use]
pub fn describe_acknowledged_discards(
    history: &History,
    discarded: &[DiscardedWrite],
    lines_max: usize,
) -> Vec<String> {
    let acknowledged = acknowledged_writes(history);
    let lost: Vec<&DiscardedWrite> = discarded
        .iter()
        .filter(|write| discard_identity(write).is_some_and(|id| acknowledged.contains(&id)))
        .collect();
    let mut lines: Vec<String> = lost
        .iter()
        .take(lines_max)
        .map(|write| {
            let (key, value) = discard_identity(write).expect("filtered on identity");
            let certainty = if write.certain { "" } else { " (uncertain)" };
            format!(
                "  acknowledged, then discarded{certainty}: {} wrote {key}={value} at {}",
                write.request_id, write.position
            )
        })
        .collect();
    if lost.len() > lines_max {
        lines.push(format!("  ... and {} more", lost.len() - lines_max));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use replikv_check::Operation;
    use replikv_core::{ClientId, Key, LogPosition, Value};
    use serde_json::Value as Json;

    fn write(key: &str, value: u64, kind: OperationType, at: u64) -> Operation {
        Operation {
            process: value,
            key: key.into(),
            f: Function::Write,
            value: Json::from(value),
            ok: None,
            kind,
            invoke: at,
            complete: Some(at + 1),
        }
    }

    fn read(key: &str, value: Option<u64>, at: u64) -> Operation {
        Operation {
            process: 99,
            key: key.into(),
            f: Function::Read,
            value: value.map_or(Json::Null, Json::from),
            ok: None,
            kind: OperationType::Ok,
            invoke: at,
            complete: Some(at + 1),
        }
    }

    fn discard(key: &str, value: u64, sequence: u64, certain: bool) -> DiscardedWrite {
        DiscardedWrite {
            request_id: RequestId {
                client: ClientId(value),
                sequence,
            },
            position: LogPosition::new(1, sequence),
            key: Key::new(key).unwrap(),
            value: Some(Value::new(value.to_string()).unwrap()),
            certain,
        }
    }

    /// k1=1 acknowledged and lost (read absent), k2=2 acknowledged and kept, k3=3 of
    /// unknown outcome and lost.
    fn history() -> History {
        History {
            operations: vec![
                write("k1", 1, OperationType::Ok, 0),
                write("k2", 2, OperationType::Ok, 0),
                write("k3", 3, OperationType::Info, 0),
                read("k1", None, 10),
                read("k2", Some(2), 10),
                read("k3", None, 10),
            ],
        }
    }

    fn verdict(discarded: &[DiscardedWrite], retried: &[RequestId]) -> Verdict {
        let retried: BTreeSet<RequestId> = retried.iter().copied().collect();
        check_discards(&history(), discarded, &retried)
    }

    #[test]
    fn exactly_the_lost_acknowledged_writes_reported_is_valid() {
        // The unknown write's report is not judged either way.
        let reports = [discard("k1", 1, 1, true), discard("k3", 3, 3, true)];
        assert!(verdict(&reports, &[]).is_valid());
        let lines = describe_acknowledged_discards(&history(), &reports, 10);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("k1=1"), "{lines:?}");
    }

    #[test]
    fn a_silent_loss_is_invalid() {
        let verdict = verdict(&[discard("k3", 3, 3, true)], &[]);
        let Verdict::Invalid(violation) = verdict else {
            panic!("{verdict:?}");
        };
        assert!(violation.explanation.contains("1 lost silently [k1=1]"));
    }

    #[test]
    fn a_certain_false_alarm_is_invalid_unless_uncertain_or_retried() {
        let false_alarm = discard("k2", 2, 2, true);
        let reports = [discard("k1", 1, 1, true), false_alarm.clone()];
        let verdict_certain = verdict(&reports, &[]);
        let Verdict::Invalid(violation) = verdict_certain else {
            panic!("{verdict_certain:?}");
        };
        assert!(violation.explanation.contains("[k2=2]"));
        let uncertain = DiscardedWrite {
            certain: false,
            ..false_alarm.clone()
        };
        assert!(verdict(&[discard("k1", 1, 1, true), uncertain], &[]).is_valid());
        assert!(verdict(&reports, &[false_alarm.request_id]).is_valid());
    }

    #[test]
    fn unjudged_acknowledged_writes_make_the_count_impossible() {
        let mut history = history();
        history.operations.retain(|op| op.f == Function::Write);
        let verdict = check_discards(&history, &[], &BTreeSet::new());
        assert!(!verdict.is_valid(), "{verdict:?}");
    }
}
