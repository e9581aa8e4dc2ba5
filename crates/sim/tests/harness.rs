//! Tests of the harness itself: that it enforces its rules on misbehaving replicas,
//! injects the faults it claims, and keeps its promises to well-behaved ones.

mod support;

use replikv_check::Function;
use replikv_core::error::{Error, Result};
use replikv_core::replica::{ClusterObserver, NoObserver, Output, Replica};
use replikv_core::{Instant, Key, LogPosition, NodeId, Reply, Request, RequestId, Value, Version};
use replikv_sim::{
    FailureKind, FaultPreset, Model, NodeSetup, Properties, RunReport, SimulationOptions, run,
    simulate,
};
use replikv_storage::disk::File;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use support::Pinger;

/// Ways a replica can break the simulator's rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Misbehavior {
    ReplyTwice,
    ReplyToUnknownRequest,
    SendToItself,
    SendToStranger,
    WrongReplyKind,
    StorageError,
    TimerLivelock,
    WrongId,
    ClusterInvariantAfterRequests(u64),
}

#[derive(Debug)]
struct Misbehaving {
    id: NodeId,
    misbehavior: Misbehavior,
    requests: u64,
    outputs: VecDeque<Output<()>>,
}

/// Fails the run once some replica has served its limit of requests.
#[derive(Debug, Default)]
struct MisbehavingObserver;

impl ClusterObserver<Misbehaving> for MisbehavingObserver {
    fn observe(&mut self, replicas: &[&Misbehaving]) -> std::result::Result<(), String> {
        for replica in replicas {
            if let Misbehavior::ClusterInvariantAfterRequests(limit) = replica.misbehavior
                && replica.requests >= limit
            {
                return Err(format!("{} served {limit} requests", replica.id));
            }
        }
        Ok(())
    }
}

impl Replica for Misbehaving {
    type Message = ();
    type Observer = MisbehavingObserver;

    fn id(&self) -> NodeId {
        if self.misbehavior == Misbehavior::WrongId {
            NodeId(self.id.0 + 100)
        } else {
            self.id
        }
    }

    fn handle_message(&mut self, _now: Instant, _from: NodeId, _message: ()) -> Result<()> {
        Ok(())
    }

    fn handle_request(
        &mut self,
        _now: Instant,
        request_id: RequestId,
        request: Request,
    ) -> Result<()> {
        self.requests += 1;
        let version = Version(1);
        let reply = match request {
            Request::Get { .. } => Reply::Read {
                value: None,
                version,
                position: LogPosition::ZERO,
            },
            Request::CompareAndSet { .. } | Request::CompareAndSetVersion { .. } => {
                Reply::CompareAndSet {
                    swapped: false,
                    version,
                    position: LogPosition::ZERO,
                }
            }
            _ => Reply::Written {
                version,
                position: LogPosition::ZERO,
            },
        };
        match self.misbehavior {
            Misbehavior::ReplyTwice => {
                self.outputs.push_back(Output::Reply {
                    request_id,
                    reply: reply.clone(),
                });
            }
            Misbehavior::ReplyToUnknownRequest => {
                let stranger = RequestId {
                    sequence: request_id.sequence + 1_000,
                    ..request_id
                };
                self.outputs.push_back(Output::Reply {
                    request_id: stranger,
                    reply: reply.clone(),
                });
            }
            Misbehavior::SendToItself => self.outputs.push_back(Output::Send {
                to: self.id,
                message: (),
            }),
            Misbehavior::SendToStranger => self.outputs.push_back(Output::Send {
                to: NodeId(42),
                message: (),
            }),
            Misbehavior::WrongReplyKind => {
                let wrong = Reply::CompareAndSet {
                    swapped: true,
                    version,
                    position: LogPosition::ZERO,
                };
                self.outputs.push_back(Output::Reply {
                    request_id,
                    reply: wrong,
                });
                return Ok(());
            }
            Misbehavior::StorageError => return Err(Error::Io("disk on fire".into())),
            _ => {}
        }
        self.outputs.push_back(Output::Reply { request_id, reply });
        Ok(())
    }

    fn handle_tick(&mut self, _now: Instant) -> Result<()> {
        Ok(())
    }

    fn handle_flush(&mut self, _now: Instant) -> Result<()> {
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Output<()>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (self.misbehavior == Misbehavior::TimerLivelock).then_some(Instant::ZERO)
    }

    fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        Ok(BTreeMap::new())
    }
}

fn run_misbehaving(misbehavior: Misbehavior) -> RunReport {
    let options = SimulationOptions::new(1, FaultPreset::None);
    run(&options, |setup: NodeSetup| {
        Ok(Misbehaving {
            id: setup.id,
            misbehavior,
            requests: 0,
            outputs: VecDeque::new(),
        })
    })
}

#[test]
fn rule_breaking_replicas_stop_the_run_with_the_right_failure() {
    let cases = [
        (
            Misbehavior::ReplyTwice,
            FailureKind::SimulatorInvariant,
            "did not receive",
        ),
        (
            Misbehavior::ReplyToUnknownRequest,
            FailureKind::SimulatorInvariant,
            "did not receive",
        ),
        (
            Misbehavior::SendToItself,
            FailureKind::SimulatorInvariant,
            "to itself",
        ),
        (
            Misbehavior::SendToStranger,
            FailureKind::SimulatorInvariant,
            "not in the cluster",
        ),
        (
            Misbehavior::WrongReplyKind,
            FailureKind::SimulatorInvariant,
            "does not answer",
        ),
        (
            Misbehavior::StorageError,
            FailureKind::StorageError,
            "disk on fire",
        ),
        (
            Misbehavior::TimerLivelock,
            FailureKind::SimulatorInvariant,
            "ticks at one instant",
        ),
        (
            Misbehavior::WrongId,
            FailureKind::SimulatorInvariant,
            "calls itself",
        ),
        (
            Misbehavior::ClusterInvariantAfterRequests(5),
            FailureKind::ClusterInvariant,
            "served 5",
        ),
    ];
    for (misbehavior, kind, text) in cases {
        let report = run_misbehaving(misbehavior);
        let failure = report
            .failure
            .as_ref()
            .unwrap_or_else(|| panic!("{misbehavior:?} passed"));
        assert_eq!(failure.kind, kind, "{misbehavior:?}: {failure}");
        assert!(failure.message.contains(text), "{misbehavior:?}: {failure}");
        assert!(
            failure.at < Instant::from_millis(100),
            "stopped at once: {failure}"
        );
        let summary = report
            .failure_report("misbehaving", Some("harness"))
            .unwrap();
        assert!(
            summary.contains("seed 1") && summary.contains("REPLIKV_SEED=1"),
            "{summary}"
        );
    }
}

#[test]
fn allowed_self_messages_pass() {
    let mut options = SimulationOptions::new(2, FaultPreset::None);
    options.allow_self_messages = true;
    options.duration = Duration::from_secs(1);
    let report = run(&options, |setup: NodeSetup| {
        Ok(Misbehaving {
            id: setup.id,
            misbehavior: Misbehavior::SendToItself,
            requests: 0,
            outputs: VecDeque::new(),
        })
    });
    assert_eq!(report.failure, None);
    assert!(report.stats.messages_delivered > 0);
}

fn run_pingers(preset: FaultPreset, seed: u64) -> RunReport {
    let mut options = SimulationOptions::new(seed, preset);
    options.nodes = 5;
    options.duration = Duration::from_secs(5);
    run(&options, Pinger::open)
}

#[test]
fn a_reliable_network_delivers_every_message_once() {
    let report = run_pingers(FaultPreset::None, 3);
    assert_eq!(report.failure, None);
    let stats = report.stats;
    assert!(stats.messages_sent > 1_000, "{stats:?}");
    let lost = stats.messages_dropped + stats.messages_partitioned + stats.messages_overflowed;
    assert_eq!(
        lost + stats.messages_duplicated + stats.messages_to_down_nodes,
        0
    );
    // Messages still in flight at the end were sent but not delivered.
    assert!(
        stats.messages_sent - stats.messages_delivered < 20,
        "{stats:?}"
    );
    assert_eq!(
        stats.clients.operations_failed,
        stats.clients.operations_ok + stats.clients.operations_failed
    );
}

#[test]
fn network_faults_lose_duplicate_and_partition_messages() {
    let mut totals = replikv_sim::RunStats::default();
    for seed in 0..5 {
        let report = run_pingers(FaultPreset::Network, seed);
        assert_eq!(report.failure, None);
        let s = report.stats;
        totals.messages_sent += s.messages_sent;
        totals.messages_dropped += s.messages_dropped;
        totals.messages_duplicated += s.messages_duplicated;
        totals.messages_partitioned += s.messages_partitioned;
        totals.partitions_symmetric += s.partitions_symmetric;
        totals.partitions_asymmetric += s.partitions_asymmetric;
        totals.partitions_bridge += s.partitions_bridge;
        totals.partitions_isolate_one += s.partitions_isolate_one;
    }
    let sent = totals.messages_sent as f64;
    let dropped = totals.messages_dropped as f64 / sent;
    let duplicated = totals.messages_duplicated as f64 / sent;
    assert!(
        (0.03..0.07).contains(&dropped),
        "about 5% dropped: {dropped}"
    );
    assert!(
        (0.015..0.045).contains(&duplicated),
        "about 3% duplicated: {duplicated}"
    );
    assert!(totals.messages_partitioned > 0);
    for (shape, count) in [
        ("symmetric", totals.partitions_symmetric),
        ("asymmetric", totals.partitions_asymmetric),
        ("bridge", totals.partitions_bridge),
        ("isolate-one", totals.partitions_isolate_one),
    ] {
        assert!(count > 0, "no {shape} partition in 5 runs");
    }
}

#[test]
fn clocks_and_timers_keep_their_promises_under_every_fault() {
    // Pinger asserts monotonic clocks and on-time timers inside the replica.
    for seed in 0..5 {
        let report = run_pingers(FaultPreset::Everything, seed);
        assert_eq!(report.failure, None);
        let s = report.stats;
        assert!(s.crashes > 0 && s.pauses > 0 && s.clock_drifts > 0, "{s:?}");
        assert_eq!(s.restarts, s.crashes, "every crashed node restarts");
        assert!(s.ticks > 1_000);
    }
}

#[test]
fn pauses_hold_inputs_up_to_their_bound() {
    let mut options = SimulationOptions::new(8, FaultPreset::Crashes);
    options.nodes = 5;
    let mut pauses = options.faults.pauses.unwrap();
    pauses.held_inputs_max = 3;
    pauses.duration = replikv_sim::DurationRange::millis(200, 400);
    options.faults.pauses = Some(pauses);
    options.faults.crashes = None;
    let report = run(&options, Pinger::open);
    assert_eq!(report.failure, None);
    assert!(report.stats.pauses > 0);
    assert!(report.stats.held_inputs_dropped > 0, "{:?}", report.stats);
}

/// A replica whose destructor flushes a marker through the file it holds (as a buffered
/// writer would), and whose constructor fails if it finds one: a crash must make the
/// dropped node's handles refuse to write.
#[derive(Debug)]
struct WritesOnDrop {
    id: NodeId,
    file: File,
    outputs: VecDeque<Output<()>>,
}

impl Drop for WritesOnDrop {
    fn drop(&mut self) {
        let _ = self.file.write_all_at(0, b"written after the crash");
        let _ = self.file.sync_data();
    }
}

impl Replica for WritesOnDrop {
    type Message = ();
    type Observer = NoObserver;
    fn id(&self) -> NodeId {
        self.id
    }
    fn handle_message(&mut self, _: Instant, _: NodeId, _: ()) -> Result<()> {
        Ok(())
    }
    fn handle_request(&mut self, _: Instant, request_id: RequestId, _: Request) -> Result<()> {
        let reply = Reply::Failed(Error::Unavailable("nothing here".into()));
        self.outputs.push_back(Output::Reply { request_id, reply });
        Ok(())
    }
    fn handle_tick(&mut self, _: Instant) -> Result<()> {
        Ok(())
    }
    fn handle_flush(&mut self, _: Instant) -> Result<()> {
        Ok(())
    }
    fn poll_output(&mut self) -> Option<Output<()>> {
        self.outputs.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        Ok(BTreeMap::new())
    }
}

#[test]
fn a_crashed_node_cannot_write_through_its_destructor() {
    let mut options = SimulationOptions::new(4, FaultPreset::Crashes);
    options.duration = Duration::from_secs(20);
    let report = run(&options, |setup: NodeSetup| {
        let file = setup.disk.open("marker")?;
        setup.disk.sync_directory("")?;
        if !file.is_empty()? {
            return Err(Error::Corruption(
                "a dropped node wrote after its crash".into(),
            ));
        }
        Ok(WritesOnDrop {
            id: setup.id,
            file,
            outputs: VecDeque::new(),
        })
    });
    assert_eq!(report.failure, None);
    assert!(report.stats.crashes >= 3, "{:?}", report.stats);
}

#[test]
fn crashes_strike_between_and_inside_calls_and_lose_unsynced_writes() {
    let mut inside = 0;
    let mut lost_or_torn = 0;
    for seed in 0..20 {
        let report = Model::Register.simulate(&SimulationOptions::new(seed, FaultPreset::Crashes));
        assert_eq!(report.failure, None, "{}", report.summary());
        inside += report.stats.crashes_inside_calls;
        lost_or_torn += report.stats.crash_writes_lost + report.stats.crash_writes_torn;
        assert_eq!(report.stats.restarts, report.stats.crashes);
    }
    assert!(inside > 5, "crashes inside calls: {inside}");
    assert!(
        lost_or_torn > 5,
        "unsynced writes lost or torn: {lost_or_torn}"
    );
}

#[test]
fn invalid_options_fail_before_running() {
    let mut options = SimulationOptions::new(1, FaultPreset::None);
    options.nodes = 0;
    let report = simulate(
        &options,
        &Properties {
            linearizable: true,
            session_guarantees: true,
            durable: true,
            convergent: true,
            discards_reported: true,
        },
        Pinger::open,
    );
    assert_eq!(
        report.failure.map(|f| f.kind),
        Some(FailureKind::InvalidOptions)
    );
    assert_eq!(report.stats.events, 0);
}

#[test]
fn the_register_passes_and_its_history_is_well_formed() {
    let report = Model::Register.simulate(&SimulationOptions::new(11, FaultPreset::Everything));
    assert_eq!(report.failure, None, "{}", report.summary());
    let history = &report.history;
    assert!(history.operations.len() > 1_000);
    let mut running: BTreeMap<u64, u64> = BTreeMap::new();
    for operation in &history.operations {
        operation.validate().unwrap();
        // One process never has two overlapping operations.
        if let Some(previous_complete) = running.get(&operation.process) {
            assert!(operation.invoke >= *previous_complete, "{operation:?}");
        }
        running.insert(operation.process, operation.complete.unwrap_or(u64::MAX));
    }
    // After the fault phase only final reads start: every client reads every key.
    let end_of_faults = report.options.duration.as_nanos() as u64;
    let late: Vec<_> = history
        .operations
        .iter()
        .filter(|operation| operation.invoke >= end_of_faults)
        .collect();
    assert!(late.iter().all(|operation| operation.f == Function::Read));
    let keys: BTreeSet<&str> = late
        .iter()
        .map(|operation| operation.key.as_str())
        .collect();
    assert_eq!(keys.len(), report.options.workload.keys);
    assert!(late.len() >= report.options.clients * report.options.workload.keys);
    let serving: Vec<_> = report
        .final_states
        .iter()
        .filter(|(_, state)| !state.is_empty())
        .collect();
    assert!(serving.len() <= 1 && serving.iter().all(|(node, _)| *node == NodeId(1)));
}

/// Takes turns at leading, by virtual time: node `i` leads in every slot `s` of
/// `ROTATION_SLOT_MS` with `s % (2 * nodes) == 2 * (i - 1)`, so no two nodes ever lead at
/// one instant (odd slots are gaps that absorb clock skew). With `same_term` every
/// leadership claims term 1, which only a run-wide observer can see is two leaders in one
/// term; otherwise each leadership has a term of its own and the run is clean.
#[derive(Debug)]
struct Rotating {
    id: NodeId,
    nodes: u64,
    same_term: bool,
    leading_term: Option<u64>,
    deadline: Instant,
    outputs: VecDeque<Output<()>>,
}

const ROTATION_SLOT_MS: u64 = 1_000;

/// Remembers the leader of every term over the whole run.
#[derive(Debug, Default)]
struct RotatingObserver {
    leaders: BTreeMap<u64, NodeId>,
}

impl ClusterObserver<Rotating> for RotatingObserver {
    fn observe(&mut self, replicas: &[&Rotating]) -> std::result::Result<(), String> {
        let leading: Vec<&&Rotating> = replicas
            .iter()
            .filter(|r| r.leading_term.is_some())
            .collect();
        if leading.len() > 1 {
            return Err("two leaders at one instant".into());
        }
        for replica in leading {
            let term = replica.leading_term.expect("filtered");
            let leader = *self.leaders.entry(term).or_insert(replica.id);
            if leader != replica.id {
                return Err(format!(
                    "two leaders in term {term} over the run: {leader} and {}",
                    replica.id
                ));
            }
        }
        Ok(())
    }
}

impl Replica for Rotating {
    type Message = ();
    type Observer = RotatingObserver;
    fn id(&self) -> NodeId {
        self.id
    }
    fn handle_message(&mut self, _: Instant, _: NodeId, _: ()) -> Result<()> {
        Ok(())
    }
    fn handle_request(&mut self, _: Instant, request_id: RequestId, _: Request) -> Result<()> {
        let reply = Reply::Failed(Error::Unavailable("rotating nodes serve nothing".into()));
        self.outputs.push_back(Output::Reply { request_id, reply });
        Ok(())
    }
    fn handle_tick(&mut self, now: Instant) -> Result<()> {
        let slot = now.as_millis() / ROTATION_SLOT_MS;
        let (cycle, phase) = (slot / (2 * self.nodes), slot % (2 * self.nodes));
        let leads = phase == 2 * (self.id.0 - 1);
        let term = if self.same_term {
            1
        } else {
            cycle * self.nodes + self.id.0
        };
        self.leading_term = leads.then_some(term);
        self.deadline = Instant::from_millis((slot + 1) * ROTATION_SLOT_MS);
        Ok(())
    }
    fn handle_flush(&mut self, _: Instant) -> Result<()> {
        Ok(())
    }
    fn poll_output(&mut self) -> Option<Output<()>> {
        self.outputs.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.deadline)
    }
    fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        Ok(BTreeMap::new())
    }
}

fn run_rotating(same_term: bool) -> RunReport {
    let mut options = SimulationOptions::new(7, FaultPreset::None);
    options.duration = Duration::from_secs(20);
    let nodes = options.nodes as u64;
    run(&options, |setup: NodeSetup| {
        Ok(Rotating {
            id: setup.id,
            nodes,
            same_term,
            leading_term: None,
            deadline: Instant::ZERO,
            outputs: VecDeque::new(),
        })
    })
}

#[test]
fn the_observer_sees_violations_that_no_single_instant_shows() {
    let clean = run_rotating(false);
    assert!(clean.failure.is_none(), "{:?}", clean.failure);
    let report = run_rotating(true);
    let failure = report.failure.expect("two leaders of term 1 over the run");
    assert_eq!(failure.kind, FailureKind::ClusterInvariant, "{failure}");
    assert!(
        failure
            .message
            .contains("two leaders in term 1 over the run"),
        "{failure}"
    );
    let second_slot = Instant::from_millis(2 * ROTATION_SLOT_MS);
    assert!(
        failure.at >= second_slot,
        "caught at the second leadership: {failure}"
    );
}
