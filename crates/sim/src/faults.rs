//! The fault schedule: when partitions start and heal, nodes crash and restart, pause and
//! resume, and clocks drift.
//!
//! Each kind of fault is a self-perpetuating chain of events drawn from the run's fault
//! generator: a partition is healed after a random duration, and the next one starts a
//! random interval after the heal; a crash schedules the victim's restart and the next
//! crash; and so on. Victims are chosen among the nodes the fault can apply to (a crash
//! hits a running node, paused or not; a pause hits a running, unpaused node). Several
//! nodes can be down at once when downtimes overlap, including all of them: safety must
//! hold regardless, availability is not judged here.
//!
//! A crash strikes at once (between two inputs) or is armed to strike inside one of the
//! node's next mutating disk operations (see [`crate::options::CrashOptions`]); an armed
//! crash that finds no operation within its wait strikes at once. A restart, too, is
//! sometimes armed, so recovery itself gets interrupted by power failures.
//!
//! Nothing is scheduled past the end of the fault phase; at that point the run heals
//! everything itself (see [`mod@crate::run`]), and fault events still queued are ignored.

use crate::network::{Partition, PartitionKind};
use crate::node::{NodeSetup, NodeSlot, index_of};
use crate::options::DurationRange;
use crate::report::Failure;
use crate::run::{Event, Phase, Simulation};
use rand::Rng;
use replikv_core::error::Result as ReplicaResult;
use replikv_core::replica::Replica;
use replikv_core::{Instant, NodeId};

/// A scheduled fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultEvent {
    StartPartition,
    HealPartition,
    Crash,
    Restart {
        node: NodeId,
    },
    /// The armed crash `arm` of `node` had its time to strike inside a call.
    ArmedCrashDue {
        node: NodeId,
        arm: u64,
    },
    Pause,
    Resume {
        node: NodeId,
        pause: u64,
    },
    DriftClocks,
}

impl<N, F> Simulation<'_, N, F>
where
    N: Replica,
    F: Fn(NodeSetup) -> ReplicaResult<N>,
{
    pub(crate) fn schedule_initial_faults(&mut self) -> Result<(), Failure> {
        let faults = self.options.faults;
        if let Some(partitions) = faults.partitions {
            self.schedule_fault(partitions.interval, FaultEvent::StartPartition)?;
        }
        if let Some(crashes) = faults.crashes {
            self.schedule_fault(crashes.interval, FaultEvent::Crash)?;
        }
        if let Some(pauses) = faults.pauses {
            self.schedule_fault(pauses.interval, FaultEvent::Pause)?;
        }
        let clocks = faults.clocks;
        if !clocks.skew_max.is_zero() && !clocks.drift_step_max.is_zero() {
            let interval = DurationRange::new(clocks.drift_interval, clocks.drift_interval);
            self.schedule_fault(interval, FaultEvent::DriftClocks)?;
        }
        Ok(())
    }

    /// Schedules `fault` after a random delay within `range`, unless that falls after the
    /// fault phase.
    fn schedule_fault(&mut self, range: DurationRange, fault: FaultEvent) -> Result<(), Failure> {
        let at = self.now + range.sample(&mut self.random.faults);
        if at >= Instant::ZERO + self.options.duration {
            return Ok(());
        }
        self.schedule(at, Event::Fault(fault))
    }

    pub(crate) fn fault(&mut self, fault: FaultEvent) -> Result<(), Failure> {
        if self.phase == Phase::Quiet {
            return Ok(());
        }
        match fault {
            FaultEvent::StartPartition | FaultEvent::HealPartition => self.partition_fault(fault),
            FaultEvent::Crash => self.crash_fault(),
            FaultEvent::ArmedCrashDue { node, arm } => {
                let index = index_of(node);
                if self.nodes[index].armed != Some(arm) {
                    return Ok(()); // it struck already
                }
                self.nodes[index].disk.cancel_scheduled_crash();
                self.nodes[index].armed = None;
                self.crash(index);
                self.schedule_restart(index)
            }
            FaultEvent::Restart { node } => self.restart_fault(index_of(node)),
            FaultEvent::Pause => self.pause_fault(),
            FaultEvent::Resume { node, pause } => {
                let index = index_of(node);
                if self.nodes[index].paused != Some(pause) {
                    return Ok(()); // the node crashed meanwhile
                }
                self.resume(index)
            }
            FaultEvent::DriftClocks => self.drift_clocks(),
        }
    }

    fn partition_fault(&mut self, fault: FaultEvent) -> Result<(), Failure> {
        let partitions = self
            .options
            .faults
            .partitions
            .expect("scheduled only when enabled");
        if fault == FaultEvent::HealPartition {
            self.network.heal_partition();
            return self.schedule_fault(partitions.interval, FaultEvent::StartPartition);
        }
        self.start_partition();
        if self.network.is_partitioned() {
            self.schedule_fault(partitions.duration, FaultEvent::HealPartition)?;
        }
        Ok(())
    }

    /// Crashes a random running node at once or arms its disk, and schedules the next.
    fn crash_fault(&mut self) -> Result<(), Failure> {
        let crashes = self
            .options
            .faults
            .crashes
            .expect("scheduled only when enabled");
        let unarmed = |slot: &NodeSlot<N>| slot.replica.is_some() && slot.armed.is_none();
        if let Some(index) = self.pick_node(unarmed) {
            if self
                .random
                .faults
                .random_bool(crashes.inside_call_probability)
            {
                self.arm_crash(index)?;
            } else {
                self.crash(index);
                self.schedule_restart(index)?;
            }
        }
        self.schedule_fault(crashes.interval, FaultEvent::Crash)
    }

    fn restart_fault(&mut self, index: usize) -> Result<(), Failure> {
        let crashes = self
            .options
            .faults
            .crashes
            .expect("scheduled only when enabled");
        if self.nodes[index].replica.is_some() {
            return Ok(());
        }
        // Sometimes the power fails again during recovery.
        let probability = crashes.inside_call_probability / 2.0;
        if self.random.faults.random_bool(probability) {
            self.arm_crash(index)?;
        }
        self.restart(index)
    }

    /// Pauses a random running, unpaused node, and schedules the next pause.
    fn pause_fault(&mut self) -> Result<(), Failure> {
        let pauses = self
            .options
            .faults
            .pauses
            .expect("scheduled only when enabled");
        let pausable = |slot: &NodeSlot<N>| slot.replica.is_some() && !slot.is_paused();
        if let Some(index) = self.pick_node(pausable) {
            self.pause(index);
            let node = self.nodes[index].id;
            let pause = self.nodes[index].paused.expect("just paused");
            self.schedule_fault(pauses.duration, FaultEvent::Resume { node, pause })?;
        }
        self.schedule_fault(pauses.interval, FaultEvent::Pause)
    }

    /// Arms the disk of `index` to crash before one of its next few mutating operations.
    fn arm_crash(&mut self, index: usize) -> Result<(), Failure> {
        let crashes = self
            .options
            .faults
            .crashes
            .expect("armed only when enabled");
        let operations = self
            .random
            .faults
            .random_range(0..=crashes.armed_operations_max);
        let seed = self.random.faults.random();
        let arm = self.next_fault_number();
        let slot = &mut self.nodes[index];
        slot.disk.schedule_crash(operations, seed);
        slot.armed = Some(arm);
        let node = slot.id;
        self.trace.record(format_args!(
            "  arm crash {node} before operation {operations}"
        ));
        let wait = DurationRange::new(crashes.armed_wait, crashes.armed_wait);
        self.schedule_fault(wait, FaultEvent::ArmedCrashDue { node, arm })
    }

    /// Schedules the restart of the crashed node `index` after a random downtime.
    pub(crate) fn schedule_restart(&mut self, index: usize) -> Result<(), Failure> {
        let crashes = self
            .options
            .faults
            .crashes
            .expect("crashes happen only when enabled");
        let node = self.nodes[index].id;
        self.schedule_fault(crashes.downtime, FaultEvent::Restart { node })
    }

    fn start_partition(&mut self) {
        let ids: Vec<NodeId> = self.nodes.iter().map(|slot| slot.id).collect();
        let Some(partition) = Partition::random(&ids, &mut self.random.faults) else {
            return;
        };
        match partition.kind {
            PartitionKind::Symmetric => self.stats.partitions_symmetric += 1,
            PartitionKind::Asymmetric => self.stats.partitions_asymmetric += 1,
            PartitionKind::Bridge => self.stats.partitions_bridge += 1,
            PartitionKind::IsolateOne => self.stats.partitions_isolate_one += 1,
        }
        self.trace.record(format_args!("  partition {partition}"));
        self.network.partition(partition);
    }

    /// Every clock takes a random step; timers are re-armed against the new offsets.
    fn drift_clocks(&mut self) -> Result<(), Failure> {
        let clocks = self.options.faults.clocks;
        for slot in &mut self.nodes {
            slot.clock
                .drift(clocks.drift_step_max, &mut self.random.faults);
            slot.timer_deadline = None;
        }
        self.stats.clock_drifts += 1;
        for index in 0..self.nodes.len() {
            self.refresh_timer(index)?;
        }
        let interval = DurationRange::new(clocks.drift_interval, clocks.drift_interval);
        self.schedule_fault(interval, FaultEvent::DriftClocks)
    }

    /// A random node among those `eligible`, if any.
    fn pick_node(&mut self, eligible: impl Fn(&NodeSlot<N>) -> bool) -> Option<usize> {
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|index| eligible(&self.nodes[*index]))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.random.faults.random_range(0..candidates.len())])
    }
}
