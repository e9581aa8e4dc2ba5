//! What a run produces: its history, the replicas' final states, counts of everything that
//! happened, the trace fingerprint, the checkers' verdicts, and, if it failed, why, with
//! the command that replays it.
//!
//! A failure message is meant to be pasted into a bug report as is: it names the seed,
//! prints the complete options, and gives the exact command-line replay (when the options
//! are expressible as flags, which every preset-based run is) and the test-sweep form
//! (`REPLIKV_SEED=... cargo test -p replikv-sim`).

use crate::clients::ClientStats;
use crate::options::{SimulationOptions, WorkloadOptions};
use replikv_check::NamedVerdict;
use replikv_check::{History, Verdict};
use replikv_core::replica::DiscardedWrite;
use replikv_core::{Instant, Key, NodeId, RequestId, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Each replica's visible state, in node id order.
pub type NodeStates = Vec<(NodeId, BTreeMap<Key, Value>)>;

/// Counts of what a run did, for summaries and for tests that want proof a fault really
/// happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub events: u64,
    pub clients: ClientStats,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    pub messages_duplicated: u64,
    pub messages_partitioned: u64,
    pub messages_overflowed: u64,
    pub messages_to_down_nodes: u64,
    pub partitions_symmetric: u64,
    pub partitions_asymmetric: u64,
    pub partitions_bridge: u64,
    pub partitions_isolate_one: u64,
    pub crashes: u64,
    /// Crashes that struck inside a replica's call (an armed disk), included in `crashes`.
    pub crashes_inside_calls: u64,
    pub restarts: u64,
    pub crash_writes_lost: u64,
    pub crash_writes_torn: u64,
    pub pauses: u64,
    pub held_inputs_dropped: u64,
    pub clock_drifts: u64,
    pub flushes: u64,
    /// Pipelined syncs handed out by `start_flush` and completed.
    pub syncs_started: u64,
    pub syncs_completed: u64,
    /// Syncs started while an earlier one was still outstanding: the replica completed
    /// the earlier one itself (a truncation), whose completion then comes back stale.
    pub syncs_started_while_outstanding: u64,
    pub ticks: u64,
    /// Writes reported discarded, counting a write again when a crash made its node
    /// report it twice.
    pub writes_discarded: u64,
    /// Faults a [`Director`](crate::director::Director) ordered and that were carried out.
    pub directives: u64,
    /// Directives ordered after the fault phase, ignored (and requests to unknown nodes).
    pub directives_ignored: u64,
    /// Answers to a director's requests handed back to it.
    pub director_replies: u64,
}

impl RunStats {
    #[must_use]
    pub fn partitions(&self) -> u64 {
        self.partitions_symmetric
            + self.partitions_asymmetric
            + self.partitions_bridge
            + self.partitions_isolate_one
    }
}

/// What stopped a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The options were refused before the run started.
    InvalidOptions,
    /// A rule the simulator enforces on every replica was broken (a reply to a request
    /// never received, a message to an unknown node, ...).
    SimulatorInvariant,
    /// The strategy's run-wide observer (`Replica::Observer`) reported a violation.
    ClusterInvariant,
    /// A replica returned an error from a `handle_*` method or from its construction:
    /// the simulated disk injects no I/O errors, so this is a bug (for example failing
    /// to recover from a torn write).
    StorageError,
    /// A checker found the history or final states invalid, or could not decide.
    Checker,
}

/// Why and when a run failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Virtual time of the failure.
    pub at: Instant,
    pub kind: FailureKind,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} at {}: {}", self.kind, self.at, self.message)
    }
}

/// Everything a run produced.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub options: SimulationOptions,
    /// The completed operations of every client, in completion order.
    pub history: History,
    /// Each replica's `visible_state()` after the quiet period (empty if the run failed
    /// before its end).
    pub final_states: NodeStates,
    /// Every write a replica reported discarding, each once.
    pub discarded_writes: Vec<DiscardedWrite>,
    /// Requests the clients sent again under the same id after an unknown outcome.
    pub retried_requests: BTreeSet<RequestId>,
    pub stats: RunStats,
    /// A hash of every event's description: equal for two runs of the same seed.
    pub trace_hash: u64,
    pub verdicts: Vec<NamedVerdict>,
    pub failure: Option<Failure>,
    /// Virtual time when the run ended.
    pub ended_at: Instant,
}

impl RunReport {
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }

    /// One line: seed, operations by outcome, faults injected, verdicts.
    #[must_use]
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let c = &s.clients;
        let verdicts = if self.verdicts.is_empty() {
            "not checked".to_owned()
        } else {
            self.verdicts
                .iter()
                .map(|named| format!("{}={}", named.property, verdict_label(&named.verdict)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let discards = if self.discarded_writes.is_empty() {
            String::new()
        } else {
            let acknowledged =
                crate::discards::acknowledged_discards(&self.history, &self.discarded_writes);
            format!(
                " | writes discarded {} (acknowledged {acknowledged})",
                self.discarded_writes.len()
            )
        };
        format!(
            "seed {}: {} | ops ok {} fail {} info {} | messages sent {} dropped {} duplicated {} partitioned {} | partitions {} crashes {} pauses {}{discards} | {} events, trace {:016x} | {}",
            self.options.seed,
            if self.passed() { "PASS" } else { "FAIL" },
            c.operations_ok,
            c.operations_failed,
            c.operations_unknown,
            s.messages_sent,
            s.messages_dropped + s.messages_overflowed,
            s.messages_duplicated,
            s.messages_partitioned,
            s.partitions(),
            s.crashes,
            s.pauses,
            s.events,
            self.trace_hash,
            verdicts,
        )
    }

    /// The full failure report for `model` (or `None` if the run passed): seed, failure,
    /// invalid verdicts, options and replay commands.
    #[must_use]
    pub fn failure_report(&self, model: &str, test_target: Option<&str>) -> Option<String> {
        let failure = self.failure.as_ref()?;
        let mut text = format!(
            "simulation of model {model} FAILED with seed {}\n  {failure}\n",
            self.options.seed
        );
        for named in self
            .verdicts
            .iter()
            .filter(|named| !named.verdict.is_valid())
        {
            text += &format!("  {}: {}\n", named.property, named.verdict);
            for operation in named.verdict.violation().map_or(&[][..], |v| &v.operations) {
                let line = serde_json::to_string(operation).unwrap_or_default();
                text += &format!("    {line}\n");
            }
        }
        text += &format!("  options: {:?}\n", self.options);
        match replay_command(model, &self.options) {
            Some(command) => text += &format!("  replay: {command}\n"),
            None => text += "  replay: (options not expressible as flags; use the test form)\n",
        }
        if let Some(target) = test_target {
            text += &format!(
                "  replay the test: REPLIKV_SEED={} cargo test -p replikv-sim --test {target}\n",
                self.options.seed
            );
        }
        Some(text)
    }
}

/// The `replikv sim` command that reruns exactly these options, if they are expressible
/// as its flags (a fault preset, and defaults for everything without a flag).
#[must_use]
pub fn replay_command(model: &str, options: &SimulationOptions) -> Option<String> {
    let preset = options.faults.preset()?;
    let mut rebuilt = SimulationOptions::new(options.seed, preset);
    rebuilt.nodes = options.nodes;
    rebuilt.clients = options.clients;
    rebuilt.duration = options.duration;
    rebuilt.trace = options.trace;
    let whole_seconds = options.duration.subsec_nanos() == 0;
    if rebuilt != *options || !whole_seconds || options.workload != WorkloadOptions::default() {
        return None;
    }
    Some(format!(
        "cargo run -p replikv -- sim --model {model} --seed {} --faults {} --nodes {} --clients {} --duration-seconds {}",
        options.seed,
        preset,
        options.nodes,
        options.clients,
        options.duration.as_secs()
    ))
}

fn verdict_label(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Valid => "valid",
        Verdict::Invalid(_) => "INVALID",
        Verdict::Unknown { .. } => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::FaultPreset;
    use std::time::Duration;

    #[test]
    fn replay_commands_exist_only_for_flag_expressible_options() {
        let mut options = SimulationOptions::new(1234, FaultPreset::Crashes);
        options.duration = Duration::from_secs(7);
        options.nodes = 5;
        assert_eq!(
            replay_command("register", &options).as_deref(),
            Some(
                "cargo run -p replikv -- sim --model register --seed 1234 --faults crashes --nodes 5 --clients 5 --duration-seconds 7"
            )
        );
        options.faults.message_drop_probability = 0.5;
        assert_eq!(replay_command("register", &options), None);
        let mut options = SimulationOptions::new(1, FaultPreset::None);
        options.workload.keys = 9;
        assert_eq!(replay_command("register", &options), None);
    }
}
