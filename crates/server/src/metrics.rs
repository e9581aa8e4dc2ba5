//! A node's metrics, in Prometheus's text exposition format (`GET /metrics`).
//!
//! An operator running replikv wants the answers to a few questions without reading
//! logs: how many requests arrive and how fast they are served, how long a write takes
//! to commit and how long the disk takes to sync, whether the cluster is electing
//! leaders when it should not, how far each follower trails the leader, and whether
//! anything was lost or dropped. This module holds those numbers for one node.
//!
//! The numbers come from two kinds of places. **Events** are recorded where they
//! happen: the RESP and HTTP layers count each client request by API, command and
//! outcome and time it; the node loop times the work that closes each batch of inputs
//! (`start_flush`) and its sync thread each fsync of the log, the loop records
//! each batch's size and times each write from the moment it reaches the leader's loop
//! until its reply leaves it (the commit latency). **State** is read at scrape time from
//! the node's status ([`crate::NodeStatus`]): term, role, positions, the replica's own
//! counters (`RaftStats`: elections, snapshot transfers), discarded writes, dropped peer
//! messages, the queue depth, and on the leader each follower's lag. Reading state at
//! scrape time keeps the node loop free of bookkeeping and cannot drift from the truth.
//!
//! The collection uses the `prometheus` crate with a registry per node, not the global
//! recorder of the `metrics` facade: tests run several nodes in one process, and each
//! must expose its own numbers. Names follow Prometheus's conventions: `replikv_`
//! first, base units last (`_seconds`, `_bytes`, `_total` for counters). Label values
//! are bounded sets (command names this server knows, fixed outcome words, follower
//! ids of the configuration), so a client cannot grow the exposition without bound.

use crate::node_loop::NodeStatus;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::Mutex;
use std::time::Duration;

/// Latency buckets, in seconds: 50 µs to 10 s, about three per decade.
const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Batch-size buckets, in inputs: powers of four up to the loop's batch limit.
const BATCH_BUCKETS: &[f64] = &[1.0, 4.0, 16.0, 64.0, 256.0, 1024.0];

/// The API a client request came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Resp,
    Http,
}

impl Api {
    fn label(self) -> &'static str {
        match self {
            Api::Resp => "resp",
            Api::Http => "http",
        }
    }
}

/// How a client request ended, as a label value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Invalid input (a client error, certainly not applied).
    Invalid,
    Unauthorized,
    Unavailable,
    Overloaded,
    /// The write may or may not have taken effect.
    Unknown,
    /// The node's storage failed.
    StorageFailed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Invalid => "invalid",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Unavailable => "unavailable",
            Outcome::Overloaded => "overloaded",
            Outcome::Unknown => "unknown",
            Outcome::StorageFailed => "storage_failed",
        }
    }
}

/// Counters read from the node's status at scrape time (monotonic within a process).
#[derive(Debug)]
struct StatusCounters {
    elections_started: IntCounter,
    leaderships_won: IntCounter,
    writes_discarded: IntCounter,
    snapshots_sent: IntCounter,
    snapshots_installed: IntCounter,
    peer_messages_dropped: IntCounter,
    inputs_refused: IntCounter,
}

/// Gauges read from the node's status at scrape time.
#[derive(Debug)]
struct StatusGauges {
    term: IntGauge,
    role: IntGaugeVec,
    last_index: IntGauge,
    commit_index: IntGauge,
    applied_index: IntGauge,
    input_queue_depth: IntGauge,
    requests_waiting: IntGauge,
    follower_matched_index: IntGaugeVec,
    follower_lag_entries: IntGaugeVec,
    follower_last_ack_age_seconds: GaugeVec,
}

/// One connection's resolved request metrics: see [`Metrics::record_request_cached`].
#[derive(Debug, Default)]
pub struct RequestMetricsCache {
    last: Option<(RequestLabels, (IntCounter, Histogram))>,
}

/// A request metric's labels: API, command and outcome.
type RequestLabels = (Api, &'static str, Outcome);

/// One node's metrics; see the module documentation.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    client_requests: IntCounterVec,
    client_request_duration: HistogramVec,
    commit_duration: Histogram,
    flush_duration: Histogram,
    log_sync_duration: Histogram,
    batch_inputs: Histogram,
    /// The testing fault hook's effects (only nodes with `--testing-faults` expose it).
    testing_link_faults: IntCounterVec,
    counters: StatusCounters,
    gauges: StatusGauges,
    /// Serialises scrapes: status counters advance by the difference since the last.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// Registers a collector; names are this module's constants, so a failure is a bug.
fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    collector: C,
) -> C {
    let result = registry.register(Box::new(collector.clone()));
    assert!(result.is_ok(), "metric registered twice: {result:?}");
    collector
}

/// A metric's construction failed: only for invalid names, so a bug in this module.
fn built<T>(result: prometheus::Result<T>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("invalid metric definition: {error}"),
    }
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    register(registry, built(IntCounter::new(name, help)))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, built(IntGauge::new(name, help)))
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        built(IntGaugeVec::new(Opts::new(name, help), labels)),
    )
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let options = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, built(Histogram::with_opts(options)))
}

impl StatusCounters {
    fn new(registry: &Registry) -> StatusCounters {
        StatusCounters {
            elections_started: counter(
                registry,
                "replikv_elections_started_total",
                "Elections this node started.",
            ),
            leaderships_won: counter(
                registry,
                "replikv_leaderships_won_total",
                "Elections this node won.",
            ),
            writes_discarded: counter(
                registry,
                "replikv_writes_discarded_total",
                "Accepted writes a failover discarded (lossy commit modes).",
            ),
            snapshots_sent: counter(
                registry,
                "replikv_snapshots_sent_total",
                "Leader: snapshot transfers completed (the follower installed it).",
            ),
            snapshots_installed: counter(
                registry,
                "replikv_snapshots_installed_total",
                "Follower: snapshots installed.",
            ),
            peer_messages_dropped: counter(
                registry,
                "replikv_peer_messages_dropped_total",
                "Outgoing peer messages dropped (full queue or no connection).",
            ),
            inputs_refused: counter(
                registry,
                "replikv_node_inputs_refused_total",
                "Inputs refused because the node loop's queue was full.",
            ),
        }
    }
}

impl StatusGauges {
    fn new(registry: &Registry) -> StatusGauges {
        let follower = &["follower"];
        let ack_age = Opts::new(
            "replikv_follower_last_ack_age_seconds",
            "Leader: time since each follower last answered (-1: not since this leadership began).",
        );
        StatusGauges {
            term: gauge(registry, "replikv_term", "The node's current term."),
            role: gauge_vec(
                registry,
                "replikv_role",
                "1 for the node's current role, 0 for the others.",
                &["role"],
            ),
            last_index: gauge(
                registry,
                "replikv_last_index",
                "The index of the last entry of the local log.",
            ),
            commit_index: gauge(
                registry,
                "replikv_commit_index",
                "The highest index known committed.",
            ),
            applied_index: gauge(
                registry,
                "replikv_applied_index",
                "The index of the last entry applied to the store.",
            ),
            input_queue_depth: gauge(
                registry,
                "replikv_node_input_queue_depth",
                "Inputs waiting in the node loop's queue.",
            ),
            requests_waiting: gauge(
                registry,
                "replikv_node_requests_waiting",
                "Client requests waiting for their reply inside the node loop.",
            ),
            follower_matched_index: gauge_vec(
                registry,
                "replikv_follower_matched_index",
                "Leader: the highest index known durable on each follower.",
                follower,
            ),
            follower_lag_entries: gauge_vec(
                registry,
                "replikv_follower_lag_entries",
                "Leader: each follower's lag behind the leader's last entry, in entries.",
                follower,
            ),
            follower_last_ack_age_seconds: register(
                registry,
                built(GaugeVec::new(ack_age, follower)),
            ),
        }
    }
}

impl Metrics {
    /// A fresh registry holding every metric of a node at zero.
    #[must_use]
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = Opts::new(
            "replikv_client_requests_total",
            "Client requests served, by API, command and outcome.",
        );
        let client_requests = register(
            &registry,
            built(IntCounterVec::new(requests, &["api", "command", "outcome"])),
        );
        let durations = HistogramOpts::new(
            "replikv_client_request_duration_seconds",
            "Time from a client command's arrival to its reply, by API and command.",
        )
        .buckets(LATENCY_BUCKETS_SECONDS.to_vec());
        let client_request_duration = register(
            &registry,
            built(HistogramVec::new(durations, &["api", "command"])),
        );
        let commit_duration = histogram(
            &registry,
            "replikv_commit_duration_seconds",
            "Leader: time from a write's arrival in the node loop to its reply (durable and committed).",
            LATENCY_BUCKETS_SECONDS,
        );
        let flush_duration = histogram(
            &registry,
            "replikv_flush_duration_seconds",
            "Time the node loop spends closing one batch of inputs (writing it to the log, \
             applying, replying), and its group commit's fsync unless pipelined_fsync is on.",
            LATENCY_BUCKETS_SECONDS,
        );
        let log_sync_duration = histogram(
            &registry,
            "replikv_log_fsync_duration_seconds",
            "Time of one group commit's fsync of the log (on the sync thread with pipelined_fsync, \
             on the node loop without); syncs the log runs itself (rollover, truncation, \
             compaction, shutdown) are not counted.",
            LATENCY_BUCKETS_SECONDS,
        );
        let batch_inputs = histogram(
            &registry,
            "replikv_batch_inputs",
            "Inputs handled by the node loop between two flushes.",
            BATCH_BUCKETS,
        );
        let faults = Opts::new(
            "replikv_testing_link_faults_total",
            "Testing fault hook (--testing-faults only): replication messages lost, \
             duplicated, delayed, or dropped because a delay line was full, by effect.",
        );
        let testing_link_faults =
            register(&registry, built(IntCounterVec::new(faults, &["effect"])));
        let counters = StatusCounters::new(&registry);
        let gauges = StatusGauges::new(&registry);
        Metrics {
            registry,
            client_requests,
            client_request_duration,
            commit_duration,
            flush_duration,
            log_sync_duration,
            batch_inputs,
            testing_link_faults,
            counters,
            gauges,
            scrape: Mutex::new(()),
        }
    }

    /// Counts one client request and its duration. `command` must come from a bounded
    /// set (see [`crate::resp::commands::metric_name`]).
    pub fn record_request(&self, api: Api, command: &str, outcome: Outcome, elapsed: Duration) {
        self.client_requests
            .with_label_values(&[api.label(), command, outcome.label()])
            .inc();
        self.client_request_duration
            .with_label_values(&[api.label(), command])
            .observe(elapsed.as_secs_f64());
    }

    /// Like [`Metrics::record_request`], through `cache`: a connection keeps the
    /// counter and histogram of its last (command, outcome) pair, so a run of the same
    /// command (the usual load) skips the label lookups (a lock and a hash each).
    pub fn record_request_cached(
        &self,
        cache: &mut RequestMetricsCache,
        api: Api,
        command: &'static str,
        outcome: Outcome,
        elapsed: Duration,
    ) {
        let key = (api, command, outcome);
        let handles = match &mut cache.last {
            Some((cached, handles)) if *cached == key => handles,
            slot => {
                let handles = (
                    self.client_requests.with_label_values(&[
                        api.label(),
                        command,
                        outcome.label(),
                    ]),
                    self.client_request_duration
                        .with_label_values(&[api.label(), command]),
                );
                &mut slot.insert((key, handles)).1
            }
        };
        handles.0.inc();
        handles.1.observe(elapsed.as_secs_f64());
    }

    /// Leader: one write's time from arrival in the node loop to its reply.
    pub fn record_commit(&self, elapsed: Duration) {
        self.commit_duration.observe(elapsed.as_secs_f64());
    }

    /// One flush's duration and the number of inputs of its batch.
    pub fn record_flush(&self, elapsed: Duration, inputs: usize) {
        self.flush_duration.observe(elapsed.as_secs_f64());
        self.batch_inputs.observe(inputs as f64);
    }

    /// One fsync of the log (a group commit's durable half).
    pub fn record_log_sync(&self, elapsed: Duration) {
        self.log_sync_duration.observe(elapsed.as_secs_f64());
    }

    /// The exposition text, after reading the state metrics from `status` (or leaving
    /// them as they were when the node did not answer).
    #[must_use]
    pub fn render(&self, status: Option<&NodeStatus>) -> String {
        let _guard = self
            .scrape
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(status) = status {
            self.update(status);
        }
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "encoding the metrics failed");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }

    fn update(&self, status: &NodeStatus) {
        let stats = &status.stats;
        let counters = &self.counters;
        advance(&counters.elections_started, stats.elections_started);
        advance(&counters.leaderships_won, stats.leaderships_won);
        advance(&counters.writes_discarded, status.writes_discarded);
        advance(&counters.snapshots_sent, stats.snapshots_sent);
        advance(&counters.snapshots_installed, stats.snapshots_installed);
        advance(
            &counters.peer_messages_dropped,
            status.peer_messages_dropped,
        );
        advance(&counters.inputs_refused, status.inputs_refused);
        for (effect, total) in status
            .testing_link_faults
            .iter()
            .flat_map(|counts| counts.by_effect())
        {
            advance(
                &self.testing_link_faults.with_label_values(&[effect]),
                total,
            );
        }
        let gauges = &self.gauges;
        gauges.term.set(signed(status.term.0));
        for role in ["leader", "follower", "candidate", "pre-candidate"] {
            let current = i64::from(role == status.role);
            gauges.role.with_label_values(&[role]).set(current);
        }
        gauges
            .last_index
            .set(signed(status.replication.last.index.0));
        gauges.commit_index.set(signed(status.commit.0));
        gauges.applied_index.set(signed(status.applied.0));
        gauges
            .input_queue_depth
            .set(signed(status.input_queue_depth));
        gauges.requests_waiting.set(signed(status.requests_waiting));
        // Followers come and go with leadership and membership: only current ones.
        gauges.follower_matched_index.reset();
        gauges.follower_lag_entries.reset();
        gauges.follower_last_ack_age_seconds.reset();
        for follower in status.replication.followers.iter().flatten() {
            let id = follower.follower.0.to_string();
            let label = [id.as_str()];
            gauges
                .follower_matched_index
                .with_label_values(&label)
                .set(signed(follower.matched.0));
            gauges
                .follower_lag_entries
                .with_label_values(&label)
                .set(signed(follower.lag_entries));
            let age = follower
                .since_last_ack
                .map_or(-1.0, |since| since.as_secs_f64());
            gauges
                .follower_last_ack_age_seconds
                .with_label_values(&label)
                .set(age);
        }
    }
}

/// Moves `counter` up to `total` (a counter read from the node never goes down within a
/// process; if it did, the counter stays where it is).
fn advance(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_registry_renders_every_event_metric_at_zero() {
        let metrics = Metrics::new();
        let text = metrics.render(None);
        for line in [
            "replikv_commit_duration_seconds_count 0",
            "replikv_flush_duration_seconds_count 0",
            "replikv_log_fsync_duration_seconds_count 0",
            "replikv_batch_inputs_count 0",
            "replikv_elections_started_total 0",
        ] {
            assert!(text.lines().any(|found| found == line), "{line} in {text}");
        }
        metrics.record_flush(Duration::from_millis(3), 5);
        metrics.record_request(Api::Resp, "get", Outcome::Ok, Duration::from_micros(70));
        let text = metrics.render(None);
        assert!(text.contains("replikv_batch_inputs_sum 5\n"), "{text}");
        let requests = r#"replikv_client_requests_total{api="resp",command="get",outcome="ok"} 1"#;
        assert!(text.contains(requests), "{text}");
    }

    #[test]
    fn status_counters_only_move_up() {
        let counter = IntCounter::new("c", "c").unwrap();
        for (total, expected) in [(3, 3), (7, 7), (5, 7), (7, 7), (9, 9)] {
            advance(&counter, total);
            assert_eq!(counter.get(), expected);
        }
    }
}
