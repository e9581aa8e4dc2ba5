//! Driving replicas: inputs in, outputs out, group commit, timers, crashes and pauses.
//!
//! Every input a node receives (a peer message, a client request, a timer tick) goes
//! through `Simulation::feed`, which hands it to the replica at the node's own clock
//! reading and then drains every output: messages go to the network, replies to the
//! client that sent the request. The first input after a flush schedules the next
//! flush after a random flush latency; inputs arriving meanwhile join that batch, which is
//! group commit, and a crash in the window loses exactly what the batch had not yet made
//! durable. Half the flushes (`pipelined_flush_percent`) are pipelined, as a server's
//! are with `pipelined_fsync` on ([`Replica::start_flush`]): the sync a replica hands out
//! completes after a random sync latency ([`Replica::handle_sync_completed`]), inputs
//! arriving meanwhile are handled and open the next batch, and a crash before the
//! completion (or inside the sync itself) leaves the written batch's fate to the disk's
//! crash model. A paused node's disk finishes its sync, but the node learns of it only
//! when it resumes. The other flushes call `handle_flush`, which also completes a sync
//! still outstanding.
//!
//! The simulator enforces rules that hold for every strategy, and stops the run when one
//! breaks:
//!
//! - a node replies only to a request it received since it (re)started, at most once per
//!   delivery (the `unanswered` receipts are consumed by replies);
//! - a node sends only to nodes of the cluster, and not to itself unless allowed;
//! - a node's id is the one it was built with;
//! - no node emits more than `NODE_OUTPUT_QUEUE_MAX` outputs from one input, holds more
//!   than [`UNANSWERED_REQUESTS_MAX`] requests, or keeps asking to be ticked at the same
//!   instant (a timer livelock);
//! - `handle_*` never fails: the simulated disk injects no I/O errors, so an error is a
//!   bug (a torn write the recovery did not cut, for instance).
//!
//! A crash calls `SimDisk::crash` first and only then drops the replica, so nothing the
//! replica's destructors might write can survive. Messages on the wire to a crashed node
//! are dropped (they carry the addressee's incarnation), a restart builds a new replica
//! over the same disk. A paused node is running but deaf: its inputs are held (bounded)
//! and its timers do not fire until it resumes.

use crate::clients::Ticket;
use crate::clock::NodeClock;
use crate::network::{Loss, Plan};
use crate::report::{Failure, FailureKind, NodeStates};
use crate::run::{Event, Simulation};
use rand::Rng;
use replikv_core::error::Result as ReplicaResult;
use replikv_core::limits::NODE_OUTPUT_QUEUE_MAX;
use replikv_core::replica::{
    CompletedSync, DISCARD_REPORT_WRITES_MAX, DiscardedWrite, Output, PendingSync, Replica,
};
use replikv_core::{Instant, NodeId, Request, RequestId};
use replikv_storage::disk::{Disk, SimDisk};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::hash::Hash;
use std::time::Duration;

/// Most client requests a node may hold without replying.
pub const UNANSWERED_REQUESTS_MAX: usize = 100_000;

/// Most ticks a node may ask for at one virtual instant before it counts as a livelock.
pub const TICKS_PER_INSTANT_MAX: u32 = 10_000;

/// What a replica factory is given to build a node.
#[derive(Clone, Debug)]
pub struct NodeSetup {
    pub id: NodeId,
    /// Every other node of the cluster, in id order.
    pub peers: Vec<NodeId>,
    /// The node's own simulated disk, the same one across restarts.
    pub disk: Disk,
    /// A seed for the replica's own randomness (election timeouts, ...), fresh for every
    /// start.
    pub seed: u64,
}

/// An input to one node.
#[derive(Debug)]
pub(crate) enum Input<M> {
    Message {
        from: NodeId,
        message: M,
    },
    Request {
        ticket: Ticket,
        request_id: RequestId,
        request: Request,
    },
    Tick,
}

/// One node of the cluster, running or not.
pub(crate) struct NodeSlot<N: Replica> {
    pub id: NodeId,
    pub disk: SimDisk,
    pub replica: Option<N>,
    /// Bumped at every crash and restart; messages carry the addressee's incarnation.
    pub incarnation: u64,
    pub clock: NodeClock,
    /// The pause in progress, by number.
    pub paused: Option<u64>,
    pub held: VecDeque<Input<N::Message>>,
    pub flush_scheduled: bool,
    /// The syncs `start_flush` handed out, by sequence, until their completion events
    /// (more than one only after the replica completed one itself).
    pub outstanding_syncs: BTreeMap<u64, PendingSync>,
    /// Syncs that completed while the node was paused, handed over when it resumes.
    pub completed_syncs: Vec<CompletedSync>,
    pub timer_deadline: Option<Instant>,
    pub timer_generation: u64,
    /// Client requests received and not yet answered, with who sent them.
    pub unanswered: BTreeMap<RequestId, Receipts>,
    pub unanswered_count: usize,
    /// The virtual instant of the last tick and how many ticks happened at it.
    pub ticks_at: (Instant, u32),
    /// The armed crash waiting for a mutating disk operation, by number.
    pub armed: Option<u64>,
    /// The disk's crash count as of the last crash the simulator knows about; a higher
    /// count after a call means an armed crash struck inside it.
    pub crashes_known: u64,
}

/// The deliveries of one request id that a node has not answered yet, oldest first. The
/// first is kept inline: nearly every request id is delivered once at a time, and a
/// queue allocated per request was a measurable part of a write-heavy run.
#[derive(Debug)]
pub struct Receipts {
    first: Ticket,
    more: VecDeque<Ticket>,
}

impl<N: Replica> NodeSlot<N> {
    pub fn new(id: NodeId, skew_max: Duration, random: &mut impl Rng) -> NodeSlot<N> {
        NodeSlot {
            id,
            disk: SimDisk::new(),
            replica: None,
            incarnation: 0,
            clock: NodeClock::new(skew_max, random),
            paused: None,
            held: VecDeque::new(),
            flush_scheduled: false,
            outstanding_syncs: BTreeMap::new(),
            completed_syncs: Vec::new(),
            timer_deadline: None,
            timer_generation: 0,
            unanswered: BTreeMap::new(),
            unanswered_count: 0,
            ticks_at: (Instant::ZERO, 0),
            armed: None,
            crashes_known: 0,
        }
    }

    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.paused.is_some()
    }

    fn forget_volatile_state(&mut self) {
        self.incarnation += 1;
        self.paused = None;
        self.held.clear();
        self.flush_scheduled = false;
        self.outstanding_syncs.clear();
        self.completed_syncs.clear();
        self.timer_deadline = None;
        self.timer_generation += 1;
        self.unanswered.clear();
        self.unanswered_count = 0;
    }

    /// Records a crash the simulator caused or noticed.
    fn crashed(&mut self) {
        drop(self.replica.take());
        self.forget_volatile_state();
        self.armed = None; // a crash disarms the disk
        self.crashes_known = self.disk.crash_count();
    }

    /// Whether an armed crash struck during the last call into the replica.
    fn struck(&self) -> bool {
        self.disk.crash_count() != self.crashes_known
    }
}

/// The slot index of node `id` (ids are 1..=nodes).
pub(crate) fn index_of(id: NodeId) -> usize {
    usize::try_from(id.0).expect("small node ids") - 1
}

impl<N, F> Simulation<'_, N, F>
where
    N: Replica,
    F: Fn(NodeSetup) -> ReplicaResult<N>,
{
    /// Builds the replica of slot `index` over its disk (first start or restart).
    pub(crate) fn start_node(&mut self, index: usize) -> Result<(), Failure> {
        let id = self.nodes[index].id;
        let setup = NodeSetup {
            id,
            peers: self
                .nodes
                .iter()
                .map(|s| s.id)
                .filter(|p| *p != id)
                .collect(),
            disk: Disk::Simulated(self.nodes[index].disk.clone()),
            seed: self.random.nodes.random(),
        };
        let result = (self.factory)(setup);
        if self.nodes[index].struck() {
            drop(result);
            return self.crashed_inside_call(index);
        }
        let replica = result.map_err(|error| {
            let message = format!("{id} failed to start: {error}");
            self.failure(FailureKind::StorageError, message)
        })?;
        if replica.id() != id {
            let message = format!("node built as {id} calls itself {}", replica.id());
            return Err(self.failure(FailureKind::SimulatorInvariant, message));
        }
        let slot = &mut self.nodes[index];
        slot.forget_volatile_state();
        slot.replica = Some(replica);
        self.after_input(index, false)
    }

    /// Power failure of node `index`: the disk loses or tears unsynced writes first, then
    /// the replica is dropped.
    pub(crate) fn crash(&mut self, index: usize) {
        let slot = &mut self.nodes[index];
        let report = slot.disk.crash(&mut self.random.storage);
        slot.crashed();
        self.stats.crashes += 1;
        self.stats.crash_writes_lost += report.writes_lost;
        self.stats.crash_writes_torn += report.writes_torn;
        let id = slot.id;
        self.trace.record(format_args!("  crash {id}: {report:?}"));
    }

    /// An armed crash struck while the replica of `index` was inside a call: the disk has
    /// already crashed; the replica and whatever it produced in that call are dropped, as
    /// a process sees nothing after a power cut.
    fn crashed_inside_call(&mut self, index: usize) -> Result<(), Failure> {
        // Messages and replies die with the node; its reports of discarded writes were
        // made before it touched the disk, so they stand.
        let id = self.nodes[index].id;
        let mut discarded = Vec::new();
        if let Some(replica) = self.nodes[index].replica.as_mut() {
            while let Some(output) = replica.poll_output() {
                if let Output::Discarded { writes } = output {
                    discarded.push(writes);
                }
            }
        }
        for writes in discarded {
            self.record_discards(id, writes)?;
        }
        let slot = &mut self.nodes[index];
        slot.crashed();
        let report = slot.disk.last_crash().unwrap_or_default();
        self.stats.crashes += 1;
        self.stats.crashes_inside_calls += 1;
        self.stats.crash_writes_lost += report.writes_lost;
        self.stats.crash_writes_torn += report.writes_torn;
        let id = slot.id;
        self.trace
            .record(format_args!("  crash inside a call {id}: {report:?}"));
        self.schedule_restart(index)
    }

    pub(crate) fn restart(&mut self, index: usize) -> Result<(), Failure> {
        assert!(
            self.nodes[index].replica.is_none(),
            "restart of a running node"
        );
        self.stats.restarts += 1;
        self.start_node(index)
    }

    pub(crate) fn pause(&mut self, index: usize) {
        let pause = self.next_fault_number();
        let slot = &mut self.nodes[index];
        slot.paused = Some(pause);
        slot.timer_deadline = None;
        slot.timer_generation += 1;
        self.stats.pauses += 1;
    }

    /// Ends a pause: held inputs arrive in order, then the batch is flushed and timers
    /// that came due meanwhile fire.
    pub(crate) fn resume(&mut self, index: usize) -> Result<(), Failure> {
        let slot = &mut self.nodes[index];
        slot.paused = None;
        let held = std::mem::take(&mut slot.held);
        for input in held {
            if self.nodes[index].replica.is_none() {
                break; // a crash struck inside one of the held inputs
            }
            self.feed(index, input)?;
        }
        let completed_syncs = std::mem::take(&mut self.nodes[index].completed_syncs);
        for completed in completed_syncs {
            if self.nodes[index].replica.is_none() {
                break; // a crash struck inside a call
            }
            self.hand_back_sync(index, completed)?;
        }
        self.schedule_flush(index)?;
        self.refresh_timer(index)
    }

    /// A peer message reached the end of its link.
    pub(crate) fn deliver(
        &mut self,
        from: NodeId,
        to: NodeId,
        incarnation: u64,
        message: N::Message,
    ) -> Result<(), Failure> {
        if !self.network.arrive(from, to) {
            self.stats.messages_partitioned += 1;
            return Ok(());
        }
        let index = index_of(to);
        let slot = &self.nodes[index];
        if slot.incarnation != incarnation || slot.replica.is_none() {
            self.stats.messages_to_down_nodes += 1;
            return Ok(());
        }
        self.stats.messages_delivered += 1;
        self.input(index, Input::Message { from, message })
    }

    /// A client request reached a node; a down node refuses the connection.
    pub(crate) fn request(
        &mut self,
        ticket: Ticket,
        node: NodeId,
        request_id: RequestId,
        request: Request,
    ) -> Result<(), Failure> {
        let index = index_of(node);
        if self.nodes[index].replica.is_none() {
            let latency = self.options.workload.client_latency;
            let at = self.now + latency.sample(&mut self.random.network);
            return self.schedule(at, Event::Refused { ticket, node });
        }
        let input = Input::Request {
            ticket,
            request_id,
            request,
        };
        self.input(index, input)
    }

    pub(crate) fn timer(&mut self, node: NodeId, generation: u64) -> Result<(), Failure> {
        let index = index_of(node);
        let now = self.now;
        let slot = &mut self.nodes[index];
        let live = slot.replica.is_some() && !slot.is_paused();
        if !live || slot.timer_generation != generation {
            return Ok(());
        }
        let deadline = slot
            .timer_deadline
            .take()
            .expect("a live timer has a deadline");
        if slot.clock.now(now) < deadline {
            // The clock drifted slower since the timer was set: arm it again.
            return self.refresh_timer(index);
        }
        if slot.ticks_at.0 == now {
            slot.ticks_at.1 += 1;
        } else {
            slot.ticks_at = (now, 1);
        }
        if slot.ticks_at.1 > TICKS_PER_INSTANT_MAX {
            let message =
                format!("{node} asked for more than {TICKS_PER_INSTANT_MAX} ticks at one instant");
            return Err(self.failure(FailureKind::SimulatorInvariant, message));
        }
        self.stats.ticks += 1;
        self.feed(index, Input::Tick)
    }

    pub(crate) fn flush(&mut self, node: NodeId, incarnation: u64) -> Result<(), Failure> {
        let index = index_of(node);
        let slot = &mut self.nodes[index];
        if slot.incarnation != incarnation || slot.replica.is_none() {
            return Ok(());
        }
        slot.flush_scheduled = false;
        if slot.is_paused() {
            return Ok(()); // resuming schedules the flush again
        }
        self.stats.flushes += 1;
        let now = slot.clock.now(self.now);
        let replica = slot.replica.as_mut().expect("checked above");
        replica.set_wall_clock(crate::clock::wall_clock_unix_ms(now));
        let pipelined =
            self.random.storage.random_range(0..100u8) < self.options.pipelined_flush_percent;
        let result = if pipelined {
            replica.start_flush(now)
        } else {
            replica.handle_flush(now).map(|()| None)
        };
        if self.nodes[index].struck() {
            return self.crashed_inside_call(index);
        }
        let pending = result.map_err(|error| {
            let message = format!("{node} failed to flush: {error}");
            self.failure(FailureKind::StorageError, message)
        })?;
        if let Some(pending) = pending {
            self.stats.syncs_started += 1;
            let sequence = pending.sequence();
            let slot = &mut self.nodes[index];
            if !slot.outstanding_syncs.is_empty() {
                self.stats.syncs_started_while_outstanding += 1;
            }
            let earlier = slot.outstanding_syncs.insert(sequence, pending);
            assert!(earlier.is_none(), "{node} started sync {sequence} twice");
            let event = Event::Synced {
                node,
                incarnation,
                sequence,
            };
            let at = self.now + self.options.sync_latency.sample(&mut self.random.storage);
            self.schedule(at, event)?;
        }
        self.after_input(index, false)
    }

    /// A node's outstanding sync completes: the disk does the work (power may fail in
    /// it), and the replica learns of it now, or when it resumes if it is paused.
    pub(crate) fn synced(
        &mut self,
        node: NodeId,
        incarnation: u64,
        sequence: u64,
    ) -> Result<(), Failure> {
        let index = index_of(node);
        let slot = &mut self.nodes[index];
        if slot.incarnation != incarnation || slot.replica.is_none() {
            return Ok(());
        }
        let pending = slot
            .outstanding_syncs
            .remove(&sequence)
            .expect("a sync event has its sync");
        let completed = pending.run();
        if self.nodes[index].struck() {
            return self.crashed_inside_call(index);
        }
        if self.nodes[index].is_paused() {
            self.nodes[index].completed_syncs.push(completed);
            return Ok(());
        }
        self.hand_back_sync(index, completed)
    }

    /// Hands a completed sync to the running replica of `index`, then opens the next
    /// batch: what arrived while the sync was outstanding waits for the next one.
    fn hand_back_sync(&mut self, index: usize, completed: CompletedSync) -> Result<(), Failure> {
        self.stats.syncs_completed += 1;
        let slot = &mut self.nodes[index];
        let id = slot.id;
        let now = slot.clock.now(self.now);
        let replica = slot.replica.as_mut().expect("handed to a running replica");
        replica.set_wall_clock(crate::clock::wall_clock_unix_ms(now));
        let result = replica.handle_sync_completed(now, completed);
        if self.nodes[index].struck() {
            return self.crashed_inside_call(index);
        }
        if let Err(error) = result {
            let message = format!("{id} failed to complete a sync: {error}");
            return Err(self.failure(FailureKind::StorageError, message));
        }
        self.after_input(index, true)
    }

    /// An input for node `index`: held if it is paused, fed otherwise.
    fn input(&mut self, index: usize, input: Input<N::Message>) -> Result<(), Failure> {
        let held_max = self.options.faults.pauses.map_or(0, |p| p.held_inputs_max);
        let slot = &mut self.nodes[index];
        if slot.is_paused() {
            if slot.held.len() < held_max {
                slot.held.push_back(input);
            } else {
                self.stats.held_inputs_dropped += 1;
            }
            return Ok(());
        }
        self.feed(index, input)
    }

    /// Hands one input to the running, unpaused replica of `index`.
    fn feed(&mut self, index: usize, input: Input<N::Message>) -> Result<(), Failure> {
        let slot = &mut self.nodes[index];
        let id = slot.id;
        let now = slot.clock.now(self.now);
        if let Input::Request {
            ticket, request_id, ..
        } = &input
        {
            if slot.unanswered_count >= UNANSWERED_REQUESTS_MAX {
                let message = format!("{id} holds {UNANSWERED_REQUESTS_MAX} unanswered requests");
                return Err(self.failure(FailureKind::SimulatorInvariant, message));
            }
            match slot.unanswered.entry(*request_id) {
                Entry::Vacant(vacant) => {
                    vacant.insert(Receipts {
                        first: *ticket,
                        more: VecDeque::new(),
                    });
                }
                Entry::Occupied(mut occupied) => occupied.get_mut().more.push_back(*ticket),
            }
            slot.unanswered_count += 1;
        }
        let replica = slot.replica.as_mut().expect("only running nodes are fed");
        replica.set_wall_clock(crate::clock::wall_clock_unix_ms(now));
        let result = match input {
            Input::Message { from, message } => replica.handle_message(now, from, message),
            Input::Request {
                request_id,
                request,
                ..
            } => replica.handle_request(now, request_id, request),
            Input::Tick => replica.handle_tick(now),
        };
        if self.nodes[index].struck() {
            return self.crashed_inside_call(index);
        }
        if let Err(error) = result {
            let message = format!("{id} failed to handle an input: {error}");
            return Err(self.failure(FailureKind::StorageError, message));
        }
        self.after_input(index, true)
    }

    /// Drains outputs, opens a batch (schedules a flush) if asked, re-arms the timer.
    fn after_input(&mut self, index: usize, opens_batch: bool) -> Result<(), Failure> {
        self.drain_outputs(index)?;
        if opens_batch {
            self.schedule_flush(index)?;
        }
        self.refresh_timer(index)
    }

    fn drain_outputs(&mut self, index: usize) -> Result<(), Failure> {
        let mut outputs = std::mem::take(&mut self.outputs);
        debug_assert!(outputs.is_empty(), "drained after every input");
        let slot = &mut self.nodes[index];
        let id = slot.id;
        let replica = slot
            .replica
            .as_mut()
            .expect("only running nodes have outputs");
        while let Some(output) = replica.poll_output() {
            if outputs.len() >= NODE_OUTPUT_QUEUE_MAX {
                let message =
                    format!("{id} emitted more than {NODE_OUTPUT_QUEUE_MAX} outputs at once");
                return Err(self.failure(FailureKind::SimulatorInvariant, message));
            }
            outputs.push(output);
        }
        for output in outputs.drain(..) {
            match output {
                Output::Send { to, message } => self.send(id, to, message)?,
                Output::Reply { request_id, reply } => {
                    self.route_reply(index, request_id, reply)?;
                }
                Output::Discarded { writes } => self.record_discards(id, writes)?,
            }
        }
        self.outputs = outputs;
        Ok(())
    }

    fn record_discards(&mut self, id: NodeId, writes: Vec<DiscardedWrite>) -> Result<(), Failure> {
        if writes.is_empty() || writes.len() > DISCARD_REPORT_WRITES_MAX {
            let message = format!("{id} reported {} discarded writes at once", writes.len());
            return Err(self.failure(FailureKind::SimulatorInvariant, message));
        }
        self.stats.writes_discarded += writes.len() as u64;
        self.trace.record(format_args!(
            "  {id} discarded {} writes: {writes:?}",
            writes.len()
        ));
        self.discards.record(writes);
        Ok(())
    }

    fn send(&mut self, from: NodeId, to: NodeId, message: N::Message) -> Result<(), Failure> {
        if to.0 == 0 || to.0 > self.nodes.len() as u64 {
            let message =
                format!("{from} sent a message to {to}, which is not in the cluster: {message:?}");
            return Err(self.failure(FailureKind::SimulatorInvariant, message));
        }
        if to == from && !self.options.allow_self_messages {
            let message = format!("{from} sent a message to itself: {message:?}");
            return Err(self.failure(FailureKind::SimulatorInvariant, message));
        }
        self.stats.messages_sent += 1;
        let plan = self.network.plan(
            &self.options.faults,
            &mut self.random.network,
            self.now,
            from,
            to,
        );
        self.trace.record_with(
            |hasher| {
                let mut hasher = hasher;
                (from, to, plan).hash(&mut hasher);
                N::hash_message(&message, hasher);
            },
            |line| write!(line, "  send {from}->{to} {message:?}: {plan:?}"),
        );
        let (first, duplicate) = match plan {
            Plan::Lost(loss) => {
                match loss {
                    Loss::Dropped => self.stats.messages_dropped += 1,
                    Loss::Partitioned => self.stats.messages_partitioned += 1,
                    Loss::Overflow => self.stats.messages_overflowed += 1,
                }
                return Ok(());
            }
            Plan::Deliver { first, duplicate } => (first, duplicate),
        };
        let incarnation = self.nodes[index_of(to)].incarnation;
        if let Some(at) = duplicate {
            self.stats.messages_duplicated += 1;
            let copy = message.clone();
            self.schedule(
                at,
                Event::Deliver {
                    from,
                    to,
                    incarnation,
                    message: copy,
                },
            )?;
        }
        self.schedule(
            first,
            Event::Deliver {
                from,
                to,
                incarnation,
                message,
            },
        )
    }

    fn route_reply(
        &mut self,
        index: usize,
        request_id: RequestId,
        reply: replikv_core::Reply,
    ) -> Result<(), Failure> {
        let slot = &mut self.nodes[index];
        let id = slot.id;
        let Entry::Occupied(mut receipts) = slot.unanswered.entry(request_id) else {
            let message = format!(
                "{id} replied to {request_id}, which it did not receive since it started or already answered: {reply:?}"
            );
            return Err(self.failure(FailureKind::SimulatorInvariant, message));
        };
        let ticket = receipts.get().first;
        match receipts.get_mut().more.pop_front() {
            Some(next) => receipts.get_mut().first = next,
            None => {
                receipts.remove();
            }
        }
        slot.unanswered_count -= 1;
        let latency = self.options.workload.client_latency;
        let at = self.now + latency.sample(&mut self.random.network);
        self.schedule(
            at,
            Event::Reply {
                ticket,
                from: id,
                reply,
            },
        )
    }

    fn schedule_flush(&mut self, index: usize) -> Result<(), Failure> {
        let slot = &mut self.nodes[index];
        if slot.flush_scheduled || slot.replica.is_none() {
            return Ok(());
        }
        slot.flush_scheduled = true;
        let event = Event::Flush {
            node: slot.id,
            incarnation: slot.incarnation,
        };
        let at = self.now + self.options.flush_latency.sample(&mut self.random.storage);
        self.schedule(at, event)
    }

    /// Makes sure exactly one live timer event matches the replica's `poll_timeout`.
    pub(crate) fn refresh_timer(&mut self, index: usize) -> Result<(), Failure> {
        let now = self.now;
        let slot = &mut self.nodes[index];
        let Some(replica) = slot.replica.as_ref() else {
            return Ok(());
        };
        if slot.is_paused() {
            return Ok(());
        }
        let wanted = replica.poll_timeout();
        if wanted == slot.timer_deadline {
            return Ok(());
        }
        slot.timer_deadline = wanted;
        slot.timer_generation += 1;
        let Some(deadline) = wanted else {
            return Ok(());
        };
        let event = Event::Timer {
            node: slot.id,
            generation: slot.timer_generation,
        };
        let at = slot.clock.virtual_deadline(deadline, now);
        self.schedule(at, event)
    }

    /// Every replica's visible state, in id order.
    pub(crate) fn visible_states(&self) -> Result<NodeStates, Failure> {
        let mut states = Vec::with_capacity(self.nodes.len());
        for slot in &self.nodes {
            let replica = slot
                .replica
                .as_ref()
                .expect("every node runs after HealAll");
            let state = replica.visible_state().map_err(|error| {
                let message = format!("{} could not read its visible state: {error}", slot.id);
                self.failure(FailureKind::StorageError, message)
            })?;
            states.push((slot.id, state));
        }
        Ok(states)
    }
}
