//! The event loop: one thread, one seed, virtual time.
//!
//! `Simulation` owns everything of a run: the event queue, the replicas and their
//! disks, the network, the clients and the random generators. [`run`] pops the earliest
//! event, advances virtual time to it, folds its description into the trace, dispatches
//! it, and shows the running replicas to the strategy's run-wide observer
//! (`Replica::Observer`, one per run, so it can check invariants over the whole run and
//! not only among the replicas up at one instant); a violation it reports or a replica's
//! storage error stops the run at once. Nothing else advances time, so a run is a pure function of
//! its options (seed included) and of the replica factory.
//!
//! The seed feeds one master ChaCha8 generator, which seeds a separate stream per concern
//! (network, faults, clients, node seeds, storage). Separate streams keep a change in one
//! concern (say, one more client) from reshuffling every other random choice.
//!
//! A run has two phases. Until `duration`, clients run the workload and faults are
//! injected. At `duration` every fault is healed (partitions removed, message loss and
//! duplication turned off, paused nodes resumed, crashed nodes restarted) and clients stop
//! starting operations; the cluster then runs for the quiet period, after which the final
//! states are collected.

use crate::checking::{Properties, check_run, checker_states};
use crate::clients::{ClientAction, Clients, Ticket};
use crate::director::{DIRECTOR_CLIENT_ID, Directive, Director, DirectorReply, NoDirector};
use crate::discards::Discards;
use crate::faults::FaultEvent;
use crate::network::{Network, Partition, PartitionKind};
use crate::node::{NodeSetup, NodeSlot};
use crate::options::SimulationOptions;
use crate::queue::EventQueue;
use crate::report::{Failure, FailureKind, NodeStates, RunReport, RunStats};
use crate::trace::Trace;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_core::error::Result as ReplicaResult;
use replikv_core::replica::{ClusterObserver, Output, Replica};
use replikv_core::{Instant, NodeId, Reply, Request, RequestId};
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};

/// Something scheduled to happen at a virtual instant.
#[derive(Debug)]
pub(crate) enum Event<M> {
    /// A peer message arrives (if the link and the addressee's incarnation still allow).
    Deliver {
        from: NodeId,
        to: NodeId,
        incarnation: u64,
        message: M,
    },
    /// A client request arrives at a node.
    Request {
        ticket: Ticket,
        node: NodeId,
        request_id: RequestId,
        request: Request,
    },
    /// A node's reply arrives at its client.
    Reply {
        ticket: Ticket,
        from: NodeId,
        reply: Reply,
    },
    /// The client learns that its connection to a down node was refused.
    Refused {
        ticket: Ticket,
        node: NodeId,
    },
    ClientStart {
        client: usize,
    },
    ClientTimeout {
        client: usize,
        operation: u64,
    },
    Timer {
        node: NodeId,
        generation: u64,
    },
    Flush {
        node: NodeId,
        incarnation: u64,
    },
    /// A node's outstanding pipelined sync completes.
    Synced {
        node: NodeId,
        incarnation: u64,
        sequence: u64,
    },
    Fault(FaultEvent),
    /// End of the fault phase: heal everything, stop the workload.
    HealAll,
    /// Halfway through the quiet period: every client reads every key.
    FinalReads,
    /// End of the quiet period: collect final states.
    End,
}

impl<M: fmt::Debug> fmt::Display for Event<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Deliver {
                from,
                to,
                incarnation,
                message,
            } => write!(f, "deliver {from}->{to}#{incarnation} {message:?}"),
            Event::Request {
                ticket,
                node,
                request_id,
                request,
            } => write!(
                f,
                "request {request_id} try {} -> {node}: {request:?}",
                ticket.attempt
            ),
            Event::Reply {
                ticket,
                from,
                reply,
            } => write!(
                f,
                "reply {from} -> client {} op {} try {}: {reply:?}",
                ticket.client, ticket.operation, ticket.attempt
            ),
            Event::Refused { ticket, node } => write!(
                f,
                "refused {node} -> client {} op {}",
                ticket.client, ticket.operation
            ),
            Event::ClientStart { client } => write!(f, "client {client} starts"),
            Event::ClientTimeout { client, operation } => {
                write!(f, "client {client} timeout op {operation}")
            }
            Event::Timer { node, generation } => write!(f, "timer {node} gen {generation}"),
            Event::Flush { node, incarnation } => write!(f, "flush {node}#{incarnation}"),
            Event::Synced {
                node,
                incarnation,
                sequence,
            } => write!(f, "synced {node}#{incarnation} sync {sequence}"),
            Event::Fault(fault) => write!(f, "fault {fault:?}"),
            Event::HealAll => f.write_str("heal all faults, stop the workload"),
            Event::FinalReads => f.write_str("final reads"),
            Event::End => f.write_str("end"),
        }
    }
}

impl<M> Event<M> {
    /// Feeds the event, at virtual `time`, to the trace hash: a tag per kind and its
    /// fields, a message through `message` (the strategy's `Replica::hash_message`).
    fn fingerprint(&self, time: Instant, hasher: &mut dyn Hasher, message: fn(&M, &mut dyn Hasher))
    where
        M: fmt::Debug,
    {
        let mut hasher = hasher;
        time.hash(&mut hasher);
        match self {
            Event::Deliver {
                from,
                to,
                incarnation,
                message: delivered,
            } => {
                (0u8, from, to, incarnation).hash(&mut hasher);
                message(delivered, hasher);
            }
            Event::Request {
                ticket,
                node,
                request_id,
                request,
            } => (1u8, ticket, node, request_id, request).hash(&mut hasher),
            Event::Reply {
                ticket,
                from,
                reply,
            } => (2u8, ticket, from, reply).hash(&mut hasher),
            Event::Refused { ticket, node } => (3u8, ticket, node).hash(&mut hasher),
            Event::ClientStart { client } => (4u8, client).hash(&mut hasher),
            Event::ClientTimeout { client, operation } => {
                (5u8, client, operation).hash(&mut hasher);
            }
            Event::Timer { node, generation } => (6u8, node, generation).hash(&mut hasher),
            Event::Flush { node, incarnation } => (7u8, node, incarnation).hash(&mut hasher),
            Event::Synced {
                node,
                incarnation,
                sequence,
            } => (12u8, node, incarnation, sequence).hash(&mut hasher),
            Event::Fault(fault) => {
                8u8.hash(&mut hasher);
                replikv_core::replica::hash_debug(fault, hasher);
            }
            Event::HealAll => 9u8.hash(&mut hasher),
            Event::FinalReads => 10u8.hash(&mut hasher),
            Event::End => 11u8.hash(&mut hasher),
        }
    }
}

/// Most running nodes shown to the observer from a list on the stack (more take a `Vec`).
const OBSERVED_INLINE_MAX: usize = 8;

/// The independent random streams of a run, all derived from its seed.
#[derive(Debug)]
pub(crate) struct Randomness {
    pub network: ChaCha8Rng,
    pub faults: ChaCha8Rng,
    pub nodes: ChaCha8Rng,
    pub storage: ChaCha8Rng,
}

/// Whether faults and the workload are still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Faulty,
    Quiet,
}

/// One run in progress.
pub(crate) struct Simulation<'a, N: Replica, F> {
    pub options: &'a SimulationOptions,
    pub factory: F,
    pub now: Instant,
    pub phase: Phase,
    pub queue: EventQueue<Event<N::Message>>,
    pub nodes: Vec<NodeSlot<N>>,
    pub network: Network,
    pub clients: Clients,
    pub random: Randomness,
    pub trace: Trace,
    pub stats: RunStats,
    /// Numbers pauses and armed crashes, so stale events can be recognised.
    pub fault_numbers: u64,
    pub final_states: NodeStates,
    /// The strategy's run-wide checker of cross-replica invariants.
    pub observer: N::Observer,
    /// Every write a replica reported discarding.
    pub discards: Discards,
    /// Requests a director ordered so far (the sequence of their request ids).
    pub director_requests: u64,
    /// Reused to drain a replica's outputs after each input (empty between inputs).
    pub outputs: Vec<Output<N::Message>>,
}

impl<N: Replica, F> fmt::Debug for Simulation<'_, N, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulation")
            .field("seed", &self.options.seed)
            .field("now", &self.now)
            .field("phase", &self.phase)
            .finish_non_exhaustive()
    }
}

/// Runs one simulation to its end (or its first failure) and returns what it produced,
/// without running the checkers. `factory` builds a replica from its setup, at the start
/// and at every restart (with the same disk).
pub fn run<N, F>(options: &SimulationOptions, factory: F) -> RunReport
where
    N: Replica,
    F: Fn(NodeSetup) -> ReplicaResult<N>,
{
    run_directed(options, factory, &mut NoDirector)
}

/// [`run`], with a [`Director`] that watches every event and may order aimed faults.
pub fn run_directed<N, F, D>(options: &SimulationOptions, factory: F, director: &mut D) -> RunReport
where
    N: Replica,
    F: Fn(NodeSetup) -> ReplicaResult<N>,
    D: Director<N>,
{
    let trace = options.trace || std::env::var_os("REPLIKV_SIM_TRACE").is_some_and(|v| v == "1");
    let empty = |failure: Failure| RunReport {
        options: *options,
        history: Default::default(),
        final_states: Vec::new(),
        discarded_writes: Vec::new(),
        retried_requests: Default::default(),
        stats: RunStats::default(),
        trace_hash: 0,
        verdicts: Vec::new(),
        failure: Some(failure),
        ended_at: Instant::ZERO,
    };
    if let Err(message) = options.validate() {
        return empty(Failure {
            at: Instant::ZERO,
            kind: FailureKind::InvalidOptions,
            message,
        });
    }
    let mut master = ChaCha8Rng::seed_from_u64(options.seed);
    let mut stream = || ChaCha8Rng::seed_from_u64(master.random());
    let clients = Clients::new(options, stream());
    let mut random = Randomness {
        network: stream(),
        faults: stream(),
        nodes: stream(),
        storage: stream(),
    };
    let nodes = (1..=options.nodes as u64)
        .map(|id| {
            NodeSlot::new(
                NodeId(id),
                options.faults.clocks.skew_max,
                &mut random.faults,
            )
        })
        .collect();
    let mut simulation = Simulation {
        options,
        factory,
        now: Instant::ZERO,
        phase: Phase::Faulty,
        queue: EventQueue::default(),
        nodes,
        network: Network::default(),
        clients,
        random,
        trace: Trace::new(trace),
        stats: RunStats::default(),
        fault_numbers: 0,
        final_states: Vec::new(),
        observer: N::Observer::default(),
        discards: Discards::default(),
        director_requests: 0,
        outputs: Vec::new(),
    };
    let outcome = simulation
        .start()
        .and_then(|()| simulation.event_loop(director));
    if outcome.is_ok() {
        director.finish(simulation.now, &simulation.running_nodes());
    }
    simulation.into_report(outcome)
}

/// Runs a simulation, then the checkers for `properties`; a verdict other than valid
/// fails the run.
pub fn simulate<N, F>(options: &SimulationOptions, properties: &Properties, factory: F) -> RunReport
where
    N: Replica,
    F: Fn(NodeSetup) -> ReplicaResult<N>,
{
    simulate_directed(options, properties, factory, &mut NoDirector)
}

/// [`simulate`], with a [`Director`] (see [`run_directed`]).
pub fn simulate_directed<N, F, D>(
    options: &SimulationOptions,
    properties: &Properties,
    factory: F,
    director: &mut D,
) -> RunReport
where
    N: Replica,
    F: Fn(NodeSetup) -> ReplicaResult<N>,
    D: Director<N>,
{
    let mut report = run_directed(options, factory, director);
    if report.failure.is_some() {
        return report;
    }
    let states = checker_states(&report.final_states);
    report.verdicts = check_run(
        &report.history,
        &states,
        &report.discarded_writes,
        &report.retried_requests,
        properties,
    );
    let failed: Vec<&str> = report
        .verdicts
        .iter()
        .filter(|named| !named.verdict.is_valid())
        .map(|named| named.property)
        .collect();
    if !failed.is_empty() {
        report.failure = Some(Failure {
            at: report.ended_at,
            kind: FailureKind::Checker,
            message: format!("not valid: {}", failed.join(", ")),
        });
    }
    report
}

impl<N, F> Simulation<'_, N, F>
where
    N: Replica,
    F: Fn(NodeSetup) -> ReplicaResult<N>,
{
    /// Builds every node, starts every client and schedules the faults and the phases.
    fn start(&mut self) -> Result<(), Failure> {
        for index in 0..self.nodes.len() {
            self.start_node(index)?;
        }
        let first_operations = self.clients.begin();
        self.client_actions(first_operations)?;
        self.schedule_initial_faults()?;
        let heal_at = Instant::ZERO + self.options.duration;
        self.schedule(heal_at, Event::HealAll)?;
        self.schedule(heal_at + self.options.quiet_period / 2, Event::FinalReads)?;
        self.schedule(heal_at + self.options.quiet_period, Event::End)
    }

    fn event_loop<D: Director<N>>(&mut self, director: &mut D) -> Result<(), Failure> {
        let mut directives = Vec::new();
        while let Some((time, event)) = self.queue.pop() {
            assert!(time >= self.now, "virtual time never goes backwards");
            self.now = time;
            self.stats.events += 1;
            self.trace.record_with(
                |hasher| event.fingerprint(time, hasher, N::hash_message),
                |line| write!(line, "{time} {event}"),
            );
            let end = matches!(event, Event::End);
            if let Some(reply) = director_answer(&event) {
                self.stats.director_replies += 1;
                director.on_reply(self.now, reply);
            } else {
                self.dispatch(event)?;
            }
            self.observe_cluster()?;
            if director.watches_events() && !end {
                director.after_event(self.now, &self.running_nodes(), &mut directives);
                for directive in directives.drain(..) {
                    self.direct(directive)?;
                }
            }
            if end {
                return Ok(());
            }
        }
        unreachable!("the End event is always scheduled")
    }

    fn dispatch(&mut self, event: Event<N::Message>) -> Result<(), Failure> {
        match event {
            Event::Deliver {
                from,
                to,
                incarnation,
                message,
            } => self.deliver(from, to, incarnation, message),
            Event::Request {
                ticket,
                node,
                request_id,
                request,
            } => self.request(ticket, node, request_id, request),
            Event::Reply { ticket, reply, .. } => {
                let actions = self
                    .clients
                    .reply(ticket, reply, self.now)
                    .map_err(|message| self.failure(FailureKind::SimulatorInvariant, message))?;
                self.client_actions(actions)
            }
            Event::Refused { ticket, .. } => {
                let actions = self.clients.refused(ticket, self.now);
                self.client_actions(actions)
            }
            Event::ClientStart { client } => {
                let actions = self.clients.start(client, self.now);
                self.client_actions(actions)
            }
            Event::ClientTimeout { client, operation } => {
                let actions = self.clients.timeout(client, operation, self.now);
                self.client_actions(actions)
            }
            Event::Timer { node, generation } => self.timer(node, generation),
            Event::Flush { node, incarnation } => self.flush(node, incarnation),
            Event::Synced {
                node,
                incarnation,
                sequence,
            } => self.synced(node, incarnation, sequence),
            Event::Fault(fault) => self.fault(fault),
            Event::HealAll => self.heal_all(),
            Event::FinalReads => {
                let actions = self.clients.final_reads(self.now);
                self.client_actions(actions)
            }
            Event::End => self.end(),
        }
    }

    fn client_actions(&mut self, actions: Vec<ClientAction>) -> Result<(), Failure> {
        for action in actions {
            match action {
                ClientAction::Send {
                    ticket,
                    node,
                    request_id,
                    request,
                    at,
                } => self.schedule(
                    at,
                    Event::Request {
                        ticket,
                        node,
                        request_id,
                        request,
                    },
                )?,
                ClientAction::Timeout {
                    client,
                    operation,
                    at,
                } => self.schedule(at, Event::ClientTimeout { client, operation })?,
                ClientAction::Start { client, at } => {
                    self.schedule(at, Event::ClientStart { client })?;
                }
            }
        }
        Ok(())
    }

    /// End of the fault phase: every fault healed, every node up, no new operations.
    fn heal_all(&mut self) -> Result<(), Failure> {
        self.phase = Phase::Quiet;
        self.network.heal_all();
        self.clients.stop();
        for slot in &mut self.nodes {
            if slot.armed.take().is_some() {
                slot.disk.cancel_scheduled_crash();
            }
        }
        for index in 0..self.nodes.len() {
            if self.nodes[index].is_paused() {
                self.resume(index)?;
            }
            if self.nodes[index].replica.is_none() {
                self.restart(index)?;
            }
        }
        Ok(())
    }

    /// End of the run: every replica's visible state becomes part of the report.
    fn end(&mut self) -> Result<(), Failure> {
        self.final_states = self.visible_states()?;
        Ok(())
    }

    /// Every node's replica in id order, `None` for a node that is down.
    fn running_nodes(&self) -> Vec<Option<&N>> {
        self.nodes
            .iter()
            .map(|slot| slot.replica.as_ref())
            .collect()
    }

    /// Carries out what a director ordered: a fault only during the fault phase, a
    /// request at any time.
    fn direct(&mut self, directive: Directive) -> Result<(), Failure> {
        if let Directive::Request { node, tag, request } = directive {
            return self.director_request(node, tag, request);
        }
        if self.phase == Phase::Quiet {
            self.stats.directives_ignored += 1;
            return Ok(());
        }
        self.stats.directives += 1;
        self.trace.record(format_args!("  directive {directive:?}"));
        let ids: Vec<NodeId> = self.nodes.iter().map(|slot| slot.id).collect();
        let index_of = |node: NodeId| ids.iter().position(|id| *id == node);
        match directive {
            Directive::Crash(node) => {
                let Some(index) = index_of(node) else {
                    return Ok(());
                };
                if self.nodes[index].replica.is_some() {
                    if self.nodes[index].armed.take().is_some() {
                        self.nodes[index].disk.cancel_scheduled_crash();
                    }
                    self.crash(index);
                }
                Ok(())
            }
            Directive::Restart(node) => match index_of(node) {
                Some(index) if self.nodes[index].replica.is_none() => self.restart(index),
                _ => Ok(()),
            },
            Directive::Isolate(node) => {
                if index_of(node).is_some() {
                    self.stats.partitions_isolate_one += 1;
                    self.network.heal_partition();
                    self.network.partition(isolate(node, &ids));
                }
                Ok(())
            }
            Directive::Heal => {
                self.network.heal_partition();
                Ok(())
            }
            Directive::Request { .. } => unreachable!("handled above"),
        }
    }

    /// Sends a director's request to `node` like a client's, under the director's own
    /// client id; its answer is routed back by [`director_answer`].
    fn director_request(
        &mut self,
        node: NodeId,
        tag: u64,
        request: Request,
    ) -> Result<(), Failure> {
        if !self.nodes.iter().any(|slot| slot.id == node) {
            self.stats.directives_ignored += 1;
            return Ok(());
        }
        self.stats.directives += 1;
        self.director_requests += 1;
        let request_id = RequestId {
            client: DIRECTOR_CLIENT_ID,
            sequence: self.director_requests,
        };
        self.trace.record(format_args!(
            "  directive request {request_id} (tag {tag}) -> {node}: {request:?}"
        ));
        let ticket = Ticket {
            client: DIRECTOR_TICKET_CLIENT,
            operation: tag,
            attempt: 0,
        };
        let latency = self.options.workload.client_latency;
        let at = self.now + latency.sample(&mut self.random.network);
        let event = Event::Request {
            ticket,
            node,
            request_id,
            request,
        };
        self.schedule(at, event)
    }

    /// Shows the running replicas to the run's observer; its first complaint fails the run.
    /// Shows the running replicas to the run-wide observer. After every event: up to
    /// [`OBSERVED_INLINE_MAX`] nodes, the list is built on the stack (a `Vec` per event
    /// was 1 % of a write-heavy run).
    fn observe_cluster(&mut self) -> Result<(), Failure> {
        let mut running = self.nodes.iter().filter_map(|slot| slot.replica.as_ref());
        let outcome = match running.next() {
            None => self.observer.observe(&[]),
            Some(first) if self.nodes.len() <= OBSERVED_INLINE_MAX => {
                let mut inline = [first; OBSERVED_INLINE_MAX];
                let mut count = 1;
                for replica in running {
                    inline[count] = replica;
                    count += 1;
                }
                self.observer.observe(&inline[..count])
            }
            Some(first) => {
                let all: Vec<&N> = std::iter::once(first).chain(running).collect();
                self.observer.observe(&all)
            }
        };
        outcome.map_err(|message| self.failure(FailureKind::ClusterInvariant, message))
    }

    pub(crate) fn schedule(
        &mut self,
        at: Instant,
        event: Event<N::Message>,
    ) -> Result<(), Failure> {
        debug_assert!(at >= self.now);
        self.queue
            .push(at, event)
            .map_err(|message| self.failure(FailureKind::SimulatorInvariant, message))
    }

    pub(crate) fn next_fault_number(&mut self) -> u64 {
        self.fault_numbers += 1;
        self.fault_numbers
    }

    pub(crate) fn failure(&self, kind: FailureKind, message: String) -> Failure {
        Failure {
            at: self.now,
            kind,
            message,
        }
    }

    fn into_report(self, outcome: Result<(), Failure>) -> RunReport {
        let mut stats = self.stats;
        let final_states = if outcome.is_ok() {
            self.final_states
        } else {
            Vec::new()
        };
        let retried_requests = self.clients.retried_requests().clone();
        let (history, client_stats) = self.clients.finish();
        stats.clients = client_stats;
        RunReport {
            options: *self.options,
            history,
            final_states,
            discarded_writes: self.discards.into_writes(),
            retried_requests,
            stats,
            trace_hash: self.trace.hash(),
            verdicts: Vec::new(),
            failure: outcome.err(),
            ended_at: self.now,
        }
    }
}

/// The ticket client index of a director's requests; no client slot has it.
const DIRECTOR_TICKET_CLIENT: usize = usize::MAX;

/// The director's answer if `event` answers one of its requests.
fn director_answer<M>(event: &Event<M>) -> Option<DirectorReply> {
    match event {
        Event::Reply {
            ticket,
            from,
            reply,
        } if ticket.client == DIRECTOR_TICKET_CLIENT => Some(DirectorReply {
            tag: ticket.operation,
            node: *from,
            reply: reply.clone(),
        }),
        Event::Refused { ticket, node } if ticket.client == DIRECTOR_TICKET_CLIENT => {
            Some(DirectorReply {
                tag: ticket.operation,
                node: *node,
                reply: Reply::Failed(replikv_core::Error::Unavailable(format!(
                    "{node} is down: connection refused"
                ))),
            })
        }
        _ => None,
    }
}

/// The isolate-one partition that cuts `node` off from every other of `ids`, both ways.
fn isolate(node: NodeId, ids: &[NodeId]) -> Partition {
    let others: Vec<NodeId> = ids.iter().copied().filter(|id| *id != node).collect();
    let cut = others
        .iter()
        .flat_map(|other| [(node, *other), (*other, node)])
        .collect();
    Partition {
        kind: PartitionKind::IsolateOne,
        cut,
        groups: vec![vec![node], others],
    }
}
