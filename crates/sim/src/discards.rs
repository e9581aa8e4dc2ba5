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
