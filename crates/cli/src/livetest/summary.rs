//! The summary of a live run: what happened, what the checkers decided, the exit code.
//!
//! A reader of a Jepsen-style run wants three things, in this order: did anything break
//! (each checker's verdict, with the smallest set of operations that shows a violation,
//! printed exactly as `replikv check` prints it, by the same function); how much was
//! tested (operations per function and outcome: ok / fail / info); and what the faults
//! cost (availability, the fraction of invoked operations that completed `ok`, among the
//! operations invoked inside a fault window and among those invoked outside one).
//!
//! [`Summary::new`] computes all of it from the history, the fault windows and the
//! verdicts; [`Summary::text`] is what is printed and written to `summary.txt`,
//! [`Summary::json`] what is written to `summary.json`. The exit code follows
//! `replikv check`: 0 when every judged property holds, 1 when any is violated, 2 when
//! something could not be decided or the run itself went wrong (an infrastructure
//! problem: the summary lists it). A property the workload does not promise (session
//! reads are not linearizable by design) is reported but not judged.

use super::recorder::FaultWindow;
use crate::check::{
    EXIT_UNKNOWN_OR_BAD_INPUT, EXIT_VALID, EXIT_VIOLATION, exit_code, render_verdict,
};
use replikv_check::{Function, History, NamedVerdict, OperationType};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Operations of one function by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl Counts {
    fn add(&mut self, kind: OperationType) {
        match kind {
            OperationType::Ok => self.ok += 1,
            OperationType::Fail => self.fail += 1,
            OperationType::Info => self.info += 1,
        }
    }

    fn total(self) -> u64 {
        self.ok + self.fail + self.info
    }

    /// The ok fraction, when there was any operation.
    fn availability(self) -> Option<f64> {
        (self.total() > 0).then(|| self.ok as f64 / self.total() as f64)
    }
}

/// Everything the summary says.
#[derive(Debug)]
pub struct Summary {
    pub counts: BTreeMap<&'static str, Counts>,
    pub inside_faults: Counts,
    pub outside_faults: Counts,
    pub faults: Vec<FaultWindow>,
    pub verdicts: Vec<NamedVerdict>,
    /// The properties judged (the others are information).
    pub judged: Vec<bool>,
    pub processes: usize,
    /// Latency of the `ok` operations in milliseconds: p50, p99, max (none without any).
    pub latency_ok_ms: Option<[f64; 3]>,
    /// Problems of the run itself (a node that died on its own, no final read, ...).
    pub problems: Vec<String>,
    pub elapsed_s: f64,
}

/// Nearest-rank p50, p99 and max of the `ok` operations' latencies, in milliseconds.
fn latency_percentiles_ms(history: &History) -> Option<[f64; 3]> {
    let mut latencies: Vec<u64> = history
        .operations
        .iter()
        .filter(|operation| operation.kind == OperationType::Ok)
        .filter_map(|operation| Some(operation.complete? - operation.invoke))
        .collect();
    latencies.sort_unstable();
    let rank = |fraction: f64| {
        let index = ((latencies.len() as f64 * fraction).ceil() as usize).max(1) - 1;
        latencies[index.min(latencies.len() - 1)] as f64 / 1e6
    };
    (!latencies.is_empty()).then(|| [rank(0.5), rank(0.99), rank(1.0)])
}

fn function_name(function: Function) -> &'static str {
    match function {
        Function::Read => "read",
        Function::Write => "write",
        Function::Cas => "cas",
        Function::Delete => "delete",
    }
}

impl Summary {
    pub fn new(
        history: &History,
        faults: Vec<FaultWindow>,
        verdicts: Vec<NamedVerdict>,
        judges: impl Fn(&str) -> bool,
        problems: Vec<String>,
        elapsed_s: f64,
    ) -> Summary {
        let mut counts: BTreeMap<&'static str, Counts> = BTreeMap::new();
        let mut inside_faults = Counts::default();
        let mut outside_faults = Counts::default();
        for operation in &history.operations {
            counts
                .entry(function_name(operation.f))
                .or_default()
                .add(operation.kind);
            let inside = faults.iter().any(|window| {
                operation.invoke >= window.start_ns
                    && window.end_ns.is_none_or(|end| operation.invoke < end)
            });
            if inside {
                inside_faults.add(operation.kind);
            } else {
                outside_faults.add(operation.kind);
            }
        }
        let processes: BTreeSet<u64> = history.operations.iter().map(|o| o.process).collect();
        let judged = verdicts
            .iter()
            .map(|named| judges(named.property))
            .collect();
        let latency_ok_ms = latency_percentiles_ms(history);
        Summary {
            counts,
            inside_faults,
            outside_faults,
            faults,
            verdicts,
            judged,
            processes: processes.len(),
            latency_ok_ms,
            problems,
            elapsed_s,
        }
    }

    /// 0 valid, 1 a judged property violated, 2 undecided or the run went wrong.
    pub fn exit_code(&self) -> u8 {
        let judged: Vec<NamedVerdict> = self
            .verdicts
            .iter()
            .zip(&self.judged)
            .filter(|(_, judged)| **judged)
            .map(|(named, _)| named.clone())
            .collect();
        match exit_code(&judged) {
            EXIT_VIOLATION => EXIT_VIOLATION,
            EXIT_VALID if self.problems.is_empty() => EXIT_VALID,
            _ => EXIT_UNKNOWN_OR_BAD_INPUT,
        }
    }

    fn total(&self) -> Counts {
        let mut total = Counts::default();
        for counts in self.counts.values() {
            total.ok += counts.ok;
            total.fail += counts.fail;
            total.info += counts.info;
        }
        total
    }

    /// The human-readable summary.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut text = String::new();
        let total = self.total();
        let percent = |counts: Counts| {
            counts.availability().map_or("-".to_string(), |fraction| {
                format!("{:.1}%", fraction * 100.0)
            })
        };
        let _ = writeln!(
            text,
            "{} operations in {:.1} s by {} processes; {} fault windows",
            total.total(),
            self.elapsed_s,
            self.processes,
            self.faults.len()
        );
        for (function, counts) in &self.counts {
            let _ = writeln!(
                text,
                "  {function:<6} ok {:>7}  fail {:>6}  info {:>6}",
                counts.ok, counts.fail, counts.info
            );
        }
        let _ = writeln!(
            text,
            "availability (ok fraction): {} inside fault windows ({} ops), {} outside ({} ops)",
            percent(self.inside_faults),
            self.inside_faults.total(),
            percent(self.outside_faults),
            self.outside_faults.total()
        );
        if let Some([p50, p99, max]) = self.latency_ok_ms {
            let _ = writeln!(
                text,
                "latency of ok operations: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
            );
        }
        for (named, judged) in self.verdicts.iter().zip(&self.judged) {
            if !judged {
                let _ = write!(text, "(not promised by this workload, not judged) ");
            }
            text.push_str(&render_verdict(named, self.processes));
        }
        for problem in &self.problems {
            let _ = writeln!(text, "problem: {problem}");
        }
        let verdict = match self.exit_code() {
            EXIT_VALID => "valid",
            EXIT_VIOLATION => "VIOLATION",
            _ => "unknown",
        };
        let _ = writeln!(text, "result: {verdict}");
        text
    }

    /// The machine-readable summary.
    pub fn json(&self) -> serde_json::Value {
        let counts =
            |counts: Counts| json!({"ok": counts.ok, "fail": counts.fail, "info": counts.info});
        let functions: serde_json::Map<String, serde_json::Value> = self
            .counts
            .iter()
            .map(|(function, value)| ((*function).to_string(), counts(*value)))
            .collect();
        let verdicts: Vec<serde_json::Value> = self
            .verdicts
            .iter()
            .zip(&self.judged)
            .map(|(named, judged)| {
                let verdict = if named.verdict.is_valid() {
                    "valid"
                } else if named.verdict.is_invalid() {
                    "violated"
                } else {
                    "unknown"
                };
                json!({"property": named.property, "verdict": verdict, "judged": judged})
            })
            .collect();
        json!({
            "elapsed_s": self.elapsed_s,
            "operations": functions,
            "processes": self.processes,
            "fault_windows": self.faults.len(),
            "availability_inside_faults": self.inside_faults.availability(),
            "availability_outside_faults": self.outside_faults.availability(),
            "latency_ok_ms": self.latency_ok_ms.map(|[p50, p99, max]| json!({"p50": p50, "p99": p99, "max": max})),
            "verdicts": verdicts,
            "problems": self.problems,
            "exit_code": self.exit_code(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replikv_check::Operation;

    fn read(kind: OperationType, invoke: u64, latency_ms: u64) -> Operation {
        Operation {
            process: 0,
            key: "k".into(),
            f: Function::Read,
            value: serde_json::Value::Null,
            ok: None,
            kind,
            invoke,
            complete: Some(invoke + latency_ms * 1_000_000),
        }
    }

    #[test]
    fn counts_availability_and_latency() {
        let mut operations: Vec<Operation> = (1..=100)
            .map(|latency| read(OperationType::Ok, 0, latency))
            .collect();
        operations.push(read(OperationType::Info, 2_000, 1000));
        operations.push(read(OperationType::Fail, 3_000, 1));
        let history = History { operations };
        let window = FaultWindow {
            kind: "pause".into(),
            target: "n1".into(),
            start_ns: 1_000,
            end_ns: Some(2_500),
        };
        let summary = Summary::new(
            &history,
            vec![window],
            Vec::new(),
            |_| true,
            Vec::new(),
            1.0,
        );
        assert_eq!(summary.latency_ok_ms, Some([50.0, 99.0, 100.0]));
        assert_eq!(
            summary.counts["read"],
            Counts {
                ok: 100,
                fail: 1,
                info: 1
            }
        );
        assert_eq!(
            summary.inside_faults,
            Counts {
                ok: 0,
                fail: 0,
                info: 1
            }
        );
        assert_eq!(summary.outside_faults.total(), 101);
        assert_eq!(summary.exit_code(), EXIT_VALID);
        let problem = Summary::new(
            &history,
            Vec::new(),
            Vec::new(),
            |_| true,
            vec!["x".into()],
            1.0,
        );
        assert_eq!(problem.exit_code(), EXIT_UNKNOWN_OR_BAD_INPUT);
    }
}
