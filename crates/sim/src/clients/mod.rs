//! Client processes: a register workload in a closed loop, recorded as a history.
//!
//! Each client runs one operation at a time (read, write, compare-and-set or delete on
//! one of a handful of keys), waits for its outcome, thinks for a moment, and starts the
//! next. Every written value is unique in the run (a run-wide counter), which is what lets
//! checkers tell writes apart. An operation goes to the node last named as leader (or a
//! random node), follows `NotLeader { leader }` hints and refused connections for a
//! bounded number of attempts (those errors mean the operation certainly did not happen,
//! so retrying under the same request id is safe), and gives up at a client-side timeout.
//!
//! A **write whose outcome is unknown** (its timeout fired, or a node answered
//! `Indeterminate`) is retried on another node under the *same* request id, with a fresh
//! timeout, up to `unknown_retries_max` times, before it is given up as `info`. The
//! nodes apply a request id at most once (client sessions in the state machine), so the
//! attempts are one operation and the history records them as one: invoked when the
//! first attempt was sent, `ok` as soon as *any* attempt is acknowledged (a late success
//! of an earlier attempt counts), and never `fail` once an attempt's outcome was unknown
//! (a later certain failure only says that *that* attempt did nothing: the operation
//! becomes `info`). Reads are not retried this way: an unknown read changes nothing.
//!
//! Some compare-and-sets are **on version** (the key's version as this client last saw
//! it). The history format has no such operation and the checkers know nothing of
//! versions, so one is recorded by what it did to the value: a swap is an `ok` write of
//! its new value, no swap a `fail` write (it certainly changed nothing), an unknown
//! outcome an `info` write. That is honest, only weaker: whether the version really
//! matched is not checked by the history (the scripts of the replication crate test it).
//!
//! Outcomes map onto the history format of `replikv_check` exactly as DESIGN.md states:
//! a reply is `ok`; an error is `fail` or `info` according to [`Error::outcome`]; a
//! timeout is `info`, and a reply that arrives later is ignored. As in Jepsen, a client
//! whose operation ended in `info` continues under a new process id: the unknown
//! operation stays concurrent with everything after it, and no process id ever has two
//! overlapping operations. The process id doubles as the [`ClientId`] of request ids.
//!
//! **Reads** follow the workload's [`ReadMode`]: linearizable and lease reads go where
//! writes go; a follower read goes to the client's home replica (client `i` reads node
//! `i mod n`: one replica's states form a prefix sequence), a session read to a random
//! node. A session read carries the
//! client's token, the highest log position of any reply it received (a write's entry, a
//! read's applied position). The token belongs to the client, not to its process id: a
//! client that continues under a new process after an `info` keeps it, so its earlier
//! acknowledged writes stay visible to it. Read-your-writes cannot cover the `info`
//! write itself: its position never reached the client (it may never have been
//! written), and the checkers, which judge sessions per process id, demand nothing of it
//! either — the old process ends with it, and the new process never wrote it.
//!
//! When the fault phase ends, clients stop starting random operations; halfway through the
//! quiet period every client reads every key once (Jepsen's final reads), which is what
//! lets a durability checker see whether acknowledged writes survived.
//!
//! This module only decides; it returns [`ClientAction`]s that the event loop schedules.

use crate::options::{ReadMode, SimulationOptions, WorkloadOptions};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use replikv_check::{Function, History, Operation, OperationType};
use replikv_core::kv::ReadConsistency;
use replikv_core::{
    ClientId, Error, Instant, Key, LogPosition, NodeId, Outcome, Reply, Request, RequestId, Value,
    Version,
};
use serde_json::Value as Json;
use std::collections::{BTreeSet, VecDeque};

/// Identifies one attempt of one operation, so that stale replies can be recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket {
    pub client: usize,
    pub operation: u64,
    pub attempt: u32,
}

/// What a client wants the event loop to schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction {
    /// Deliver `request` to `node` at `at`.
    Send {
        ticket: Ticket,
        node: NodeId,
        request_id: RequestId,
        request: Request,
        at: Instant,
    },
    /// Fire the client-side timeout of `operation` at `at`.
    Timeout {
        client: usize,
        operation: u64,
        at: Instant,
    },
    /// Start the client's next operation at `at`.
    Start { client: usize, at: Instant },
}

/// Counts for the run summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub operations_ok: u64,
    pub operations_failed: u64,
    pub operations_unknown: u64,
    pub redirects: u64,
    pub refusals: u64,
    pub timeouts: u64,
    pub late_replies: u64,
    /// Writes sent again under the same request id after an unknown outcome.
    pub unknown_retries: u64,
}

#[derive(Debug)]
struct InFlight {
    operation: u64,
    attempt: u32,
    request_id: RequestId,
    request: Request,
    key_index: usize,
    invoke: Instant,
    f: Function,
    value: Json,
    /// When the current round of attempts times out.
    deadline: Instant,
    /// Retries after an unknown outcome so far.
    unknown_retries: u32,
    /// Whether some attempt's outcome was unknown: the operation may have taken effect.
    maybe_applied: bool,
    /// The node the latest attempt went to.
    node: NodeId,
}

#[derive(Debug)]
struct ClientSlot {
    process: u64,
    sequence: u64,
    leader_hint: Option<NodeId>,
    /// The last value this client saw per key (`None`: absent or never seen).
    last_seen: Vec<Option<u64>>,
    /// The last version this client saw per key (0: never seen).
    last_version: Vec<Version>,
    /// Keys still to read once the workload has stopped.
    final_reads: VecDeque<usize>,
    /// Whether a `Start` for this client is already scheduled.
    start_scheduled: bool,
    current: Option<InFlight>,
    /// The session token: the highest log position of any reply (kept across processes).
    token: LogPosition,
}

/// Every client process of a run and the history they record.
#[derive(Debug)]
pub struct Clients {
    workload: WorkloadOptions,
    nodes: Vec<NodeId>,
    slots: Vec<ClientSlot>,
    next_process: u64,
    next_operation: u64,
    next_value: u64,
    /// Keys written so far with `fresh_key_per_write`.
    fresh_keys_used: usize,
    /// The history names of the keys used so far, by key number (see [`KeyNames`]).
    key_names: KeyNames,
    /// See [`Clients::retried_requests`].
    retried_requests: BTreeSet<RequestId>,
    history: History,
    stopped: bool,
    random: ChaCha8Rng,
    stats: ClientStats,
}

/// How an operation ended.
enum Completion {
    Ok {
        read: Option<Json>,
        swapped: Option<bool>,
        /// The key's version the reply reported.
        version: Version,
    },
    Failed,
    Unknown,
}

impl Clients {
    pub fn new(options: &SimulationOptions, random: ChaCha8Rng) -> Clients {
        let slots = (0..options.clients)
            .map(|index| ClientSlot {
                process: index as u64,
                sequence: 0,
                leader_hint: None,
                last_seen: vec![None; options.workload.keys],
                last_version: vec![Version(0); options.workload.keys],
                final_reads: VecDeque::new(),
                start_scheduled: false,
                current: None,
                token: LogPosition::ZERO,
            })
            .collect();
        Clients {
            workload: options.workload,
            nodes: (1..=options.nodes as u64).map(NodeId).collect(),
            slots,
            next_process: options.clients as u64,
            next_operation: 0,
            next_value: 1,
            fresh_keys_used: 0,
            key_names: KeyNames::default(),
            retried_requests: BTreeSet::new(),
            history: History::default(),
            stopped: false,
            random,
            stats: ClientStats::default(),
        }
    }

    /// The first operation of every client, at time zero.
    pub fn begin(&mut self) -> Vec<ClientAction> {
        (0..self.slots.len())
            .map(|client| self.schedule_start(client, Instant::ZERO))
            .collect()
    }

    /// Starts the next operation of `client`: a random one while the workload runs, then
    /// its final reads.
    pub fn start(&mut self, client: usize, now: Instant) -> Vec<ClientAction> {
        let slot = &mut self.slots[client];
        slot.start_scheduled = false;
        assert!(slot.current.is_none(), "one operation per process");
        let (request, key_index, f, value) = if self.stopped {
            let Some(key_index) = slot.final_reads.pop_front() else {
                return Vec::new();
            };
            final_read(key_index, self.key_names.key(key_index))
        } else {
            if self.history.operations.len() >= self.workload.operations_max {
                return Vec::new();
            }
            self.generate(client)
        };
        let operation = self.next_operation;
        self.next_operation += 1;
        let slot = &mut self.slots[client];
        slot.sequence += 1;
        let request_id = RequestId {
            client: ClientId(slot.process),
            sequence: slot.sequence,
        };
        let node = match (&request, slot.leader_hint) {
            (
                Request::Get {
                    consistency: ReadConsistency::Follower,
                    ..
                },
                _,
            ) => self.nodes[client % self.nodes.len()],
            (
                Request::Get {
                    consistency: ReadConsistency::Session { .. },
                    ..
                },
                _,
            ) => self.nodes[self.random.random_range(0..self.nodes.len())],
            (_, Some(leader)) if self.random.random_bool(0.8) => leader,
            _ => self.nodes[self.random.random_range(0..self.nodes.len())],
        };
        slot.current = Some(InFlight {
            operation,
            attempt: 1,
            request_id,
            request: request.clone(),
            key_index,
            invoke: now,
            f,
            value,
            deadline: now + self.workload.timeout,
            unknown_retries: 0,
            maybe_applied: false,
            node,
        });
        let ticket = Ticket {
            client,
            operation,
            attempt: 1,
        };
        vec![
            self.send(ticket, node, request_id, request, now),
            ClientAction::Timeout {
                client,
                operation,
                at: now + self.workload.timeout,
            },
        ]
    }

    /// A node answered. An error if the reply does not answer the request's kind.
    pub fn reply(
        &mut self,
        ticket: Ticket,
        reply: Reply,
        now: Instant,
    ) -> Result<Vec<ClientAction>, String> {
        let Some(current) = self.current_operation(ticket) else {
            self.stats.late_replies += 1;
            return Ok(Vec::new());
        };
        if ticket.attempt != current.attempt {
            // An earlier attempt of the operation. After an unknown outcome its success
            // is the operation's (the request id applies once); anything else, or any
            // answer to an attempt already answered by a redirect, is stale.
            if !current.maybe_applied || matches!(reply, Reply::Failed(_)) {
                self.stats.late_replies += 1;
                return Ok(Vec::new());
            }
            let position = reply.position();
            let completion = classify(&current.request, reply)?;
            self.note_position(ticket.client, position);
            return Ok(self.complete(ticket.client, completion, now));
        }
        if let Reply::Failed(Error::NotLeader { leader }) = &reply
            && current.attempt < self.workload.attempts_max
        {
            let leader = leader.filter(|leader| self.nodes.contains(leader));
            self.slots[ticket.client].leader_hint = leader;
            self.stats.redirects += 1;
            return Ok(self.retry(ticket, leader, now));
        }
        let position = reply.position();
        let completion = classify(&current.request, reply)?;
        self.note_position(ticket.client, position);
        if matches!(completion, Completion::Unknown) && self.may_retry_unknown(ticket.client) {
            return Ok(self.retry_unknown(ticket.client, now));
        }
        Ok(self.complete(ticket.client, completion, now))
    }

    /// Raises the client's session token to the position a reply carries.
    fn note_position(&mut self, client: usize, position: Option<LogPosition>) {
        if let Some(position) = position {
            let slot = &mut self.slots[client];
            slot.token = slot.token.max(position);
        }
    }

    /// The node the request went to is down: the connection was refused.
    pub fn refused(&mut self, ticket: Ticket, now: Instant) -> Vec<ClientAction> {
        let Some(attempt) = self.current(ticket).map(|current| current.attempt) else {
            self.stats.late_replies += 1;
            return Vec::new();
        };
        self.stats.refusals += 1;
        if attempt < self.workload.attempts_max {
            self.slots[ticket.client].leader_hint = None;
            return self.retry(ticket, None, now);
        }
        self.complete(ticket.client, Completion::Failed, now)
    }

    /// Whether the current operation of `client` may be retried after an unknown
    /// outcome: a write with retries left.
    fn may_retry_unknown(&self, client: usize) -> bool {
        self.slots[client].current.as_ref().is_some_and(|current| {
            current.request.is_write()
                && current.unknown_retries < self.workload.unknown_retries_max
        })
    }

    /// Sends the current operation of `client` again, same request id, to another node
    /// than the latest attempt's, with a fresh timeout.
    fn retry_unknown(&mut self, client: usize, now: Instant) -> Vec<ClientAction> {
        self.stats.unknown_retries += 1;
        if let Some(current) = &self.slots[client].current {
            self.retried_requests.insert(current.request_id);
        }
        let others: Vec<NodeId> = {
            let latest = self.slots[client]
                .current
                .as_ref()
                .map(|current| current.node);
            let others: Vec<NodeId> = self
                .nodes
                .iter()
                .copied()
                .filter(|node| Some(*node) != latest)
                .collect();
            if others.is_empty() {
                self.nodes.clone()
            } else {
                others
            }
        };
        let node = others[self.random.random_range(0..others.len())];
        let deadline = now + self.workload.timeout;
        let current = self.slots[client]
            .current
            .as_mut()
            .expect("retry of an operation in flight");
        current.unknown_retries += 1;
        current.maybe_applied = true;
        current.attempt += 1;
        current.deadline = deadline;
        current.node = node;
        let ticket = Ticket {
            client,
            operation: current.operation,
            attempt: current.attempt,
        };
        let (request_id, request) = (current.request_id, current.request.clone());
        let operation = current.operation;
        vec![
            self.send(ticket, node, request_id, request, now),
            ClientAction::Timeout {
                client,
                operation,
                at: deadline,
            },
        ]
    }

    /// The client-side timeout of `operation` fired.
    pub fn timeout(&mut self, client: usize, operation: u64, now: Instant) -> Vec<ClientAction> {
        // A timeout of an earlier round of a retried operation fires before the current
        // round's deadline: ignored.
        let matches = self.slots[client]
            .current
            .as_ref()
            .is_some_and(|current| current.operation == operation && now >= current.deadline);
        if !matches {
            return Vec::new();
        }
        self.stats.timeouts += 1;
        if self.may_retry_unknown(client) {
            return self.retry_unknown(client, now);
        }
        self.complete(client, Completion::Unknown, now)
    }

    /// No new random operations from now on; those in flight still complete.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// After the workload stopped: every client reads every key once, in turn (Jepsen's
    /// final reads), so the durability checker sees reads that follow every write.
    pub fn final_reads(&mut self, now: Instant) -> Vec<ClientAction> {
        assert!(self.stopped, "final reads follow the workload");
        let mut actions = Vec::new();
        for client in 0..self.slots.len() {
            let keys = self.final_read_keys(client);
            let slot = &mut self.slots[client];
            slot.final_reads = keys;
            if slot.current.is_none() && !slot.start_scheduled {
                actions.push(self.schedule_start(client, now));
            }
        }
        actions
    }

    fn schedule_start(&mut self, client: usize, at: Instant) -> ClientAction {
        let slot = &mut self.slots[client];
        assert!(!slot.start_scheduled, "one pending start per client");
        slot.start_scheduled = true;
        ClientAction::Start { client, at }
    }

    /// Ends the run: an operation still in flight is recorded as `info` without a
    /// completion time.
    pub fn finish(mut self) -> (History, ClientStats) {
        for slot in &mut self.slots {
            if let Some(current) = slot.current.take() {
                self.stats.operations_unknown += 1;
                self.history.operations.push(Operation {
                    process: slot.process,
                    key: self.key_names.name(current.key_index).to_owned(),
                    f: current.f,
                    value: current.value,
                    ok: None,
                    kind: OperationType::Info,
                    invoke: current.invoke.as_nanos(),
                    complete: None,
                });
            }
        }
        (self.history, self.stats)
    }

    #[must_use]
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The requests sent again, under the same id, after an unknown outcome: each may
    /// have reached the log twice, so one copy can be discarded while the other
    /// survives.
    #[must_use]
    pub fn retried_requests(&self) -> &BTreeSet<RequestId> {
        &self.retried_requests
    }

    fn current(&self, ticket: Ticket) -> Option<&InFlight> {
        self.current_operation(ticket)
            .filter(|current| current.attempt == ticket.attempt)
    }

    /// The operation in flight that `ticket` is an attempt of (any attempt).
    fn current_operation(&self, ticket: Ticket) -> Option<&InFlight> {
        self.slots[ticket.client]
            .current
            .as_ref()
            .filter(|current| current.operation == ticket.operation)
    }

    fn send(
        &mut self,
        ticket: Ticket,
        node: NodeId,
        request_id: RequestId,
        request: Request,
        now: Instant,
    ) -> ClientAction {
        ClientAction::Send {
            ticket,
            node,
            request_id,
            request,
            at: now + self.workload.client_latency.sample(&mut self.random),
        }
    }

    /// Sends the current operation again, to `leader` at once or, without a hint, to a
    /// random node after a backoff. Same request id: the previous attempt certainly
    /// did not take effect.
    fn retry(&mut self, ticket: Ticket, leader: Option<NodeId>, now: Instant) -> Vec<ClientAction> {
        let (node, start) = match leader {
            Some(leader) => (leader, now),
            None => {
                let node = self.nodes[self.random.random_range(0..self.nodes.len())];
                (
                    node,
                    now + self.workload.retry_backoff.sample(&mut self.random),
                )
            }
        };
        let current = self.slots[ticket.client]
            .current
            .as_mut()
            .expect("retry of an operation in flight");
        current.attempt += 1;
        current.node = node;
        let next = Ticket {
            attempt: current.attempt,
            ..ticket
        };
        let (request_id, request) = (current.request_id, current.request.clone());
        vec![self.send(next, node, request_id, request, start)]
    }

    /// Records the current operation of `client` and schedules its next one.
    fn complete(
        &mut self,
        client: usize,
        completion: Completion,
        now: Instant,
    ) -> Vec<ClientAction> {
        let slot = &mut self.slots[client];
        let current = slot
            .current
            .take()
            .expect("completing an operation in flight");
        // A certain failure of the latest attempt says nothing of an earlier attempt
        // whose outcome was unknown.
        let completion = match completion {
            Completion::Failed if current.maybe_applied => Completion::Unknown,
            other => other,
        };
        let (kind, value, ok) = match completion {
            Completion::Ok {
                read,
                swapped,
                version,
            } => {
                self.stats.operations_ok += 1;
                let value = read.unwrap_or_else(|| current.value.clone());
                remember(slot, &current, &value, swapped);
                slot.last_version[current.key_index] = version;
                (OperationType::Ok, value, swapped)
            }
            Completion::Failed => {
                self.stats.operations_failed += 1;
                (OperationType::Fail, current.value, None)
            }
            Completion::Unknown => {
                self.stats.operations_unknown += 1;
                (OperationType::Info, current.value, None)
            }
        };
        let operation = Operation {
            process: slot.process,
            key: self.key_names.name(current.key_index).to_owned(),
            f: current.f,
            value,
            ok,
            kind,
            invoke: current.invoke.as_nanos(),
            complete: Some(now.as_nanos()),
        };
        debug_assert_eq!(operation.validate(), Ok(()));
        self.history.operations.push(operation);
        if kind == OperationType::Info {
            // Jepsen's rule: the unknown operation may still be running, so this client
            // continues as a new process.
            slot.process = self.next_process;
            slot.sequence = 0;
            self.next_process += 1;
        }
        let think = self.workload.think_time.sample(&mut self.random);
        vec![self.schedule_start(client, now + think)]
    }

    /// A random operation on a random key: the request, its key, and its history
    /// function and value (a read's value is filled in when it completes).
    fn generate(&mut self, client: usize) -> (Request, usize, Function, Json) {
        if self.workload.fresh_key_per_write {
            return self.generate_on_fresh_keys(client);
        }
        let key_index = self.random.random_range(0..self.workload.keys);
        let key = self.key_names.key(key_index);
        let w = &self.workload;
        let choice = self
            .random
            .random_range(0..w.read_weight + w.write_weight + w.cas_weight + w.delete_weight);
        let (read_end, write_end) = (w.read_weight, w.read_weight + w.write_weight);
        let cas_end = write_end + w.cas_weight;
        if choice < read_end {
            return self.workload_read(client, key_index);
        }
        if choice >= cas_end {
            return (
                Request::Delete { key },
                key_index,
                Function::Delete,
                Json::Null,
            );
        }
        let new = self.next_value;
        self.next_value += 1;
        let new_value = Value::new(new.to_string()).expect("short values are valid");
        if choice < write_end {
            let request = Request::Put {
                key,
                value: new_value,
            };
            return (request, key_index, Function::Write, Json::from(new));
        }
        if self.random.random_bool(0.25) {
            let seen = self.slots[client].last_version[key_index];
            let expected = if self.random.random_bool(0.8) {
                seen
            } else {
                Version(seen.0 + 1)
            };
            let request = Request::CompareAndSetVersion {
                key,
                expected,
                new: new_value,
            };
            return (request, key_index, Function::Write, Json::from(new));
        }
        let expected = if self.random.random_bool(0.8) {
            self.slots[client].last_seen[key_index]
        } else {
            None
        };
        let request = Request::CompareAndSet {
            key,
            expected: expected.map(|v| Value::new(v.to_string()).expect("short values are valid")),
            new: new_value,
        };
        let value = Json::Array(vec![
            expected.map_or(Json::Null, Json::from),
            Json::from(new),
        ]);
        (request, key_index, Function::Cas, value)
    }
}

impl Clients {
    /// A read of a key already written, or a write of a key never written before (see
    /// `WorkloadOptions::fresh_key_per_write`).
    fn generate_on_fresh_keys(&mut self, client: usize) -> (Request, usize, Function, Json) {
        let w = &self.workload;
        let writes_left = self.fresh_keys_used < w.keys;
        let write = writes_left
            && (self.fresh_keys_used == 0
                || self.random.random_range(0..w.read_weight + w.write_weight) >= w.read_weight);
        if !write {
            let key_index = self.random.random_range(0..self.fresh_keys_used.max(1));
            return self.workload_read(client, key_index);
        }
        let key_index = self.fresh_keys_used;
        self.fresh_keys_used += 1;
        let new = self.next_value;
        self.next_value += 1;
        let request = Request::Put {
            key: self.key_names.key(key_index),
            value: Value::new(new.to_string()).expect("short values are valid"),
        };
        (request, key_index, Function::Write, Json::from(new))
    }

    /// The keys client `client` reads at the end. With fresh keys, each written key is
    /// read by one client (every client reading every key would take far too long);
    /// otherwise every client reads every key.
    fn final_read_keys(&self, client: usize) -> VecDeque<usize> {
        let clients = self.slots.len();
        if !self.workload.fresh_key_per_write {
            let keys = self.workload.keys;
            return (0..keys).map(|key| (key + client) % keys).collect();
        }
        (0..self.fresh_keys_used)
            .filter(|key| key % clients == client)
            .collect()
    }

    /// A read of key number `key_index` as the workload's [`ReadMode`] asks.
    fn workload_read(
        &mut self,
        client: usize,
        key_index: usize,
    ) -> (Request, usize, Function, Json) {
        let consistency = match self.workload.reads {
            ReadMode::Linearizable => ReadConsistency::Linearizable,
            ReadMode::Lease => ReadConsistency::Lease,
            ReadMode::Follower => ReadConsistency::Follower,
            ReadMode::Session => ReadConsistency::Session {
                token: self.slots[client].token,
            },
        };
        let key = self.key_names.key(key_index);
        let request = Request::Get { key, consistency };
        (request, key_index, Function::Read, Json::Null)
    }
}

/// A linearizable read of `key`, key number `key_index`.
fn final_read(key_index: usize, key: Key) -> (Request, usize, Function, Json) {
    let request = Request::Get {
        key,
        consistency: ReadConsistency::Linearizable,
    };
    (request, key_index, Function::Read, Json::Null)
}

/// Updates what a client last saw of a key after an `ok` operation.
fn remember(slot: &mut ClientSlot, current: &InFlight, value: &Json, swapped: Option<bool>) {
    let seen = &mut slot.last_seen[current.key_index];
    match current.f {
        Function::Read | Function::Write => *seen = value.as_u64(),
        Function::Delete => *seen = None,
        Function::Cas => {
            if swapped == Some(true) {
                *seen = value.get(1).and_then(Json::as_u64);
            }
        }
    }
}

/// How a reply ends the operation `request`, or why it cannot answer it.
fn classify(request: &Request, reply: Reply) -> Result<Completion, String> {
    let completion = match (request, reply) {
        (_, Reply::Failed(error)) => match error.outcome() {
            Outcome::Failed => Completion::Failed,
            Outcome::Unknown => Completion::Unknown,
        },
        (Request::Get { .. }, Reply::Read { value, version, .. }) => Completion::Ok {
            read: Some(value.as_ref().map_or(Json::Null, value_to_json)),
            swapped: None,
            version,
        },
        (Request::Put { .. } | Request::Delete { .. }, Reply::Written { version, .. }) => {
            Completion::Ok {
                read: None,
                swapped: None,
                version,
            }
        }
        (
            Request::CompareAndSet { .. },
            Reply::CompareAndSet {
                swapped, version, ..
            },
        ) => Completion::Ok {
            read: None,
            swapped: Some(swapped),
            version,
        },
        // Recorded as a write: `ok` if it swapped, `fail` (nothing written) if not.
        (
            Request::CompareAndSetVersion { .. },
            Reply::CompareAndSet {
                swapped, version, ..
            },
        ) => {
            if swapped {
                Completion::Ok {
                    read: None,
                    swapped: None,
                    version,
                }
            } else {
                Completion::Failed
            }
        }
        (request, reply) => return Err(format!("reply {reply:?} does not answer {request:?}")),
    };
    Ok(completion)
}

/// The history name of key number `index`.
#[must_use]
pub fn key_name(index: usize) -> String {
    format!("k{index}")
}

/// The names of the keys a run has used so far, by key number, each formatted once: a
/// `format!` per operation (twice: the request's key and the history's) was 1.6 % of a
/// write-heavy run. Grows only to the highest key number used, which the workload bounds
/// (`WorkloadOptions::keys`).
#[derive(Debug, Default)]
struct KeyNames {
    names: Vec<(String, Key)>,
}

impl KeyNames {
    /// The history name of key number `index`.
    fn name(&mut self, index: usize) -> &str {
        &self.entry(index).0
    }

    /// Key number `index`.
    fn key(&mut self, index: usize) -> Key {
        self.entry(index).1.clone()
    }

    fn entry(&mut self, index: usize) -> &(String, Key) {
        while self.names.len() <= index {
            let name = key_name(self.names.len());
            let key = Key::new(name.clone()).expect("short key names are valid");
            self.names.push((name, key));
        }
        &self.names[index]
    }
}

/// A value as the history shows it: the workload's unique integers as JSON numbers,
/// anything else (never written by the workload) as a string.
#[must_use]
pub fn value_to_json(value: &Value) -> Json {
    std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .map_or_else(|| Json::String(value.to_string()), Json::from)
}

#[cfg(test)]
mod tests;
