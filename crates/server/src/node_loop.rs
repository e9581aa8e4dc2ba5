//! The node loop: one OS thread that owns a replica and drives it with real time.
//!
//! The replication strategies are sans-IO state machines ([`Replica`]): they never read a
//! clock, never touch a socket, never decide when to sync. Something must do all three,
//! and that is this loop. It runs on a dedicated `std::thread`, not on a tokio worker,
//! because the replica does its storage I/O inline: a write to the log or the store
//! that blocks for a millisecond would otherwise stall every connection scheduled on the
//! same worker.
//!
//! Everything reaches the replica through one **bounded** channel of [`Input`]s: peer
//! messages, client requests (each with the channel its reply goes back on), status
//! queries and the shutdown order. The loop waits until either an input arrives or the
//! replica's next deadline ([`Replica::poll_timeout`]) passes, then drains up to
//! [`INPUT_BATCH_MAX`] inputs without waiting, ticks if a deadline passed, and closes the
//! batch **once** with [`Replica::start_flush`]: the batch's writes go to the log in one
//! write, and the one fsync that makes them durable is the group commit, so the busier
//! the node the more writes share it.
//!
//! **The fsync may run beside the loop** (`pipelined_fsync`: by default on for a node
//! with peers, off for a node alone; see the measurements in `config.rs`). Without it
//! the loop runs the fsync that `start_flush` hands back ([`PendingSync`]) itself, at
//! once, and gives the outcome to [`Replica::handle_sync_completed`]: the group commit
//! waits for the disk, and the loop's cycle is the fsync, then the CPU work of the next
//! batch. With it, the loop passes the sync to the node's *sync thread*, which runs it
//! and returns the outcome on a channel of its own, waking the loop
//! ([`Input::SyncWake`]); meanwhile the loop handles the next batch, whose writes wait in
//! memory for the next sync. The loop takes outcomes back after each batch. Neither side
//! ever blocks on the other: the loop's job channel is bounded by
//! `SYNCS_OUTSTANDING_MAX` (past it the loop syncs itself), and the thread only tries
//! to wake the loop (a full input queue means a busy loop, which looks anyway). Nothing
//! is acknowledged earlier for it: what claims durability (a reply, an append
//! acknowledgement, the leader counting its own copy) waits for the completion of a sync
//! that covers it (see "Pipelined group commit" in `replikv_core::replica`). Shutdown
//! flushes with [`Replica::handle_flush`], which completes an outstanding sync on the
//! loop itself.
//!
//! Outputs are dispatched after every input and after the flush: messages go to the
//! peer transport's bounded per-peer queues (a full queue drops the message and counts
//! it: Raft tolerates loss), replies go to the waiting client, and discarded writes (a
//! lossy commit mode's failover) are logged one by one with their key, request id and
//! position, and counted.
//!
//! Time is the process's monotonic clock, as nanoseconds since the loop started. Key
//! expiry also needs calendar time: before every input the loop hands the replica the
//! system's wall clock in Unix milliseconds ([`Replica::set_wall_clock`]), plus the
//! node's testing offset ([`LoopCounters::clock_offset_ms`]: `--testing-clock-offset-ms`,
//! or set at runtime by the testing admin endpoint), which lets a test skew one node's
//! clock.
//!
//! **Storage failure stops the node.** An `Err` from the replica means its own storage
//! failed; the replica is unusable, so the loop answers every waiting client with an
//! unknown outcome and ends. The server then exits, and a restart recovers from the
//! durable state (crash rather than diverge).
//!
//! [`NodeHandle`] is what the APIs use: it sends requests into the loop (a full queue
//! answers `Overloaded`, certainly not attempted), waits for the reply within a
//! configured timeout (past it the answer is an *unknown outcome*), and forwards a
//! request that this node cannot serve to the leader through the peer transport.

use crate::metrics::Metrics;
use crate::peer::PeerSenders;
use replikv_core::error::{Error, Result};
use replikv_core::limits::{KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use replikv_core::replica::{CompletedSync, DiscardedWrite, Output, PendingSync, Replica};
use replikv_core::{ClientId, Instant, LogIndex, NodeId, Reply, Request, RequestId, Term, Value};
use replikv_replication::single_leader::{Message, RaftNode, RaftStats, ReplicationStatus};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;
use tokio::sync::oneshot;

/// Most inputs handled between two flushes: bounds the latency a batch adds and the
/// work one fsync covers.
pub const INPUT_BATCH_MAX: usize = 1024;

/// Most syncs handed to the sync thread and not yet taken back. Normally one is
/// outstanding; more only after the replica completed one itself (a compaction, a
/// truncation). Past the bound the loop runs the next sync itself: it never blocks on
/// the sync thread, which could be waiting for room in the loop's own input queue.
const SYNCS_OUTSTANDING_MAX: usize = 4;

/// Longest the loop sleeps when the replica wants no tick at all.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// Most client requests waiting for their reply inside the loop; beyond, `Overloaded`.
pub const REQUESTS_WAITING_MAX: usize = 64 * 1024;

/// Something for the node loop to do.
#[derive(Debug)]
pub enum Input {
    /// A message from peer `from`.
    Message { from: NodeId, message: Message },
    /// A client request; its reply goes back on `reply`.
    Request {
        request_id: RequestId,
        request: Request,
        reply: oneshot::Sender<Reply>,
    },
    /// A status query.
    Status { reply: oneshot::Sender<NodeStatus> },
    /// The sync thread finished a log sync: its outcome waits in the thread's completion
    /// channel (see the module documentation). Only a wake-up: when the queue is full
    /// the thread sends none, and the loop, busy anyway, finds the outcome after its batch.
    SyncWake,
    /// Flush and stop.
    Shutdown,
}

/// A snapshot of what one node knows, for INFO, status pages and `cluster up`.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    pub id: NodeId,
    /// `leader`, `follower`, `candidate` or `pre-candidate`.
    pub role: &'static str,
    pub leader: Option<NodeId>,
    pub term: Term,
    pub commit: LogIndex,
    pub applied: LogIndex,
    pub replication: ReplicationStatus,
    /// The commit mode and what it guarantees (`CommitMode::describe`).
    pub commit_mode: String,
    /// Whether the log's fsync runs beside the node loop (`pipelined_fsync`).
    pub pipelined_fsync: bool,
    pub stats: RaftStats,
    /// Discarded writes reported by the replica since the process started.
    pub writes_discarded: u64,
    /// Outgoing peer messages dropped because a peer's queue was full or it had no
    /// connection.
    pub peer_messages_dropped: u64,
    /// Inputs refused because the loop's queue was full, since the process started.
    pub inputs_refused: u64,
    /// What the testing fault hook did, when the node runs with `--testing-faults`.
    pub testing_link_faults: Option<crate::peer::faults::LinkFaultCounts>,
    /// Inputs waiting in the loop's queue, and client requests waiting for a reply.
    pub input_queue_depth: u64,
    pub requests_waiting: u64,
}

/// Counters shared between the loop and its handles.
#[derive(Debug, Default)]
pub struct LoopCounters {
    pub inputs_refused: AtomicU64,
    pub writes_discarded: AtomicU64,
    /// Inputs sent and not yet received by the loop (may briefly read one low or high:
    /// the two sides update it on either side of the channel).
    pub inputs_queued: AtomicI64,
    /// The node's metrics: the loop records commit and flush timings, the APIs their
    /// requests, and a scrape reads them all.
    pub metrics: Metrics,
    /// Milliseconds added to the wall clock this node uses (testing only; 0 otherwise).
    pub clock_offset_ms: AtomicI64,
    /// Whether the testing admin endpoints are enabled (`testing_faults`).
    pub testing_faults: std::sync::atomic::AtomicBool,
}

impl LoopCounters {
    /// The wall clock this node uses, in Unix milliseconds: the system's, plus the
    /// testing offset. A system clock before 1970 reads as 0.
    pub fn wall_clock_unix_ms(&self) -> u64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            });
        let offset = self.clock_offset_ms.load(Ordering::Relaxed);
        system.saturating_add_signed(offset)
    }
}

/// The monotonic clock handed to the replica.
#[derive(Clone, Copy, Debug)]
struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    fn now(self) -> Instant {
        let nanos = self.origin.elapsed().as_nanos();
        Instant::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

/// The replica and everything the loop needs beside it.
struct NodeLoop {
    node: RaftNode,
    inputs: Receiver<Input>,
    peers: PeerSenders,
    clock: Clock,
    /// Who waits for each pending request's reply.
    waiting: HashMap<RequestId, Waiters>,
    waiting_count: usize,
    counters: Arc<LoopCounters>,
    commit_mode: String,
    /// The sync thread; none: the loop syncs itself (`pipelined_fsync` off).
    sync_thread: Option<SyncThread>,
}

/// The loop's side of its sync thread.
struct SyncThread {
    /// Syncs to run, in order. Unbounded as a channel, bounded by
    /// [`SYNCS_OUTSTANDING_MAX`]: the loop must never block sending here.
    jobs: std::sync::mpsc::Sender<PendingSync>,
    /// Their outcomes, in the same order.
    completions: Receiver<CompletedSync>,
    /// Syncs handed over whose outcome the loop has not taken back: one, or more when
    /// the replica completed one itself and started the next (see "Pipelined group
    /// commit" in `replikv_core::replica`).
    outstanding: usize,
}

/// The clients waiting for one request's reply, in arrival order: usually one, several
/// when a retry joined a pending request. The first is kept apart so that the usual
/// case costs no allocation beside the map's slot (this is on every request's path).
#[derive(Debug)]
struct Waiters {
    first: Option<oneshot::Sender<Reply>>,
    more: VecDeque<oneshot::Sender<Reply>>,
    /// When the first copy of a write reached the loop: its commit latency's start.
    write_started: Option<std::time::Instant>,
}

impl Waiters {
    fn new(sender: oneshot::Sender<Reply>, write_started: Option<std::time::Instant>) -> Waiters {
        Waiters {
            first: Some(sender),
            more: VecDeque::new(),
            write_started,
        }
    }

    /// Another client (a retry) waits for the same request.
    fn join(&mut self, sender: oneshot::Sender<Reply>, write_started: Option<std::time::Instant>) {
        if self.first.is_none() && self.more.is_empty() {
            self.first = Some(sender);
        } else {
            self.more.push_back(sender);
        }
        self.write_started = self.write_started.or(write_started);
    }

    fn pop_front(&mut self) -> Option<oneshot::Sender<Reply>> {
        self.first.take().or_else(|| self.more.pop_front())
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.more.is_empty()
    }

    fn into_senders(self) -> impl Iterator<Item = oneshot::Sender<Reply>> {
        self.first.into_iter().chain(self.more)
    }
}

/// How the loop runs, from the node's configuration.
#[derive(Clone, Debug)]
pub struct LoopOptions {
    /// The commit mode and what it guarantees, for status replies.
    pub commit_mode: String,
    /// Whether the log's fsync runs on the sync thread (see the module documentation).
    pub pipelined_fsync: bool,
}

/// Starts the loop on its own thread, and with `pipelined_fsync` its sync thread, which
/// reports back through `wake` (a sender of the loop's own inputs). The loop ends after
/// [`Input::Shutdown`] (`Ok`; dropping the last [`NodeHandle`] sends it), or when
/// storage failed (`Err`), and sends that result on `done`; the sync thread ends with it.
pub fn spawn(
    node: RaftNode,
    (inputs, wake): (Receiver<Input>, SyncSender<Input>),
    peers: PeerSenders,
    counters: Arc<LoopCounters>,
    options: LoopOptions,
    done: oneshot::Sender<Result<()>>,
) -> std::io::Result<()> {
    let name = format!("node-loop-{}", node.id().0);
    let sync_thread = if options.pipelined_fsync {
        Some(spawn_sync_thread(node.id(), wake, Arc::clone(&counters))?)
    } else {
        None
    };
    let commit_mode = options.commit_mode;
    let node_loop = NodeLoop {
        node,
        inputs,
        peers,
        clock: Clock {
            origin: std::time::Instant::now(),
        },
        waiting: HashMap::new(),
        waiting_count: 0,
        counters,
        commit_mode,
        sync_thread,
    };
    std::thread::Builder::new().name(name).spawn(move || {
        let _ = done.send(node_loop.run());
    })?;
    Ok(())
}

/// Starts the thread that runs the loop's log syncs, one at a time, and returns each
/// outcome on its completion channel, waking the loop with [`Input::SyncWake`] unless
/// the loop's queue is full (then the loop is busy and looks anyway). It never blocks on
/// the loop, and ends when the loop drops its end of either channel.
fn spawn_sync_thread(
    id: NodeId,
    wake: SyncSender<Input>,
    counters: Arc<LoopCounters>,
) -> std::io::Result<SyncThread> {
    let (jobs, pending_syncs) = std::sync::mpsc::channel::<PendingSync>();
    let (completed_syncs, completions) = std::sync::mpsc::channel::<CompletedSync>();
    std::thread::Builder::new()
        .name(format!("node-sync-{}", id.0))
        .spawn(move || {
            for pending in pending_syncs {
                let started = std::time::Instant::now();
                let completed = pending.run();
                counters.metrics.record_log_sync(started.elapsed());
                if completed_syncs.send(completed).is_err() {
                    return; // the loop is gone
                }
                counters.inputs_queued.fetch_add(1, Ordering::Relaxed);
                match wake.try_send(Input::SyncWake) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => {
                        counters.inputs_queued.fetch_sub(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
        })?;
    Ok(SyncThread {
        jobs,
        completions,
        outstanding: 0,
    })
}

/// Whether the loop goes on after an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl NodeLoop {
    fn run(mut self) -> Result<()> {
        let result = self.run_until_stopped();
        if let Err(error) = &result {
            tracing::error!(node = %self.node.id(), %error, "storage failed: the node stops");
        }
        // Whatever happened, nobody waits forever: the outcome of a pending write is
        // unknown (it may commit through another leader).
        for (_, waiters) in self.waiting.drain() {
            for sender in waiters.into_senders() {
                let error = Error::Indeterminate("the node stopped; unknown outcome".into());
                let _ = sender.send(Reply::Failed(error));
            }
        }
        result
    }

    fn run_until_stopped(&mut self) -> Result<()> {
        loop {
            let now = self.clock.now();
            let wait = self
                .node
                .poll_timeout()
                .map_or(IDLE_WAIT, |deadline| {
                    deadline.saturating_duration_since(now)
                })
                .min(IDLE_WAIT);
            let mut handled = 0;
            let mut flow = match self.inputs.recv_timeout(wait) {
                Ok(input) => {
                    handled += 1;
                    self.handle_input(input)?
                }
                Err(RecvTimeoutError::Timeout) => Flow::Continue,
                Err(RecvTimeoutError::Disconnected) => Flow::Stop,
            };
            while flow == Flow::Continue && handled < INPUT_BATCH_MAX {
                match self.inputs.try_recv() {
                    Ok(input) => {
                        handled += 1;
                        flow = self.handle_input(input)?;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => flow = Flow::Stop,
                }
            }
            self.take_back_syncs()?;
            let now = self.clock.now();
            if self
                .node
                .poll_timeout()
                .is_some_and(|deadline| deadline <= now)
            {
                self.node.set_wall_clock(self.counters.wall_clock_unix_ms());
                self.node.handle_tick(now)?;
                self.dispatch_outputs();
            }
            if flow == Flow::Stop {
                self.node.handle_flush(self.clock.now())?;
                self.dispatch_outputs();
                tracing::info!(node = %self.node.id(), "node loop stopped after a final flush");
                return Ok(());
            }
            let flush_started = std::time::Instant::now();
            self.start_flush()?;
            if handled > 0 {
                let metrics = &self.counters.metrics;
                metrics.record_flush(flush_started.elapsed(), handled);
            }
            self.dispatch_outputs();
        }
    }

    /// Closes the batch, and runs the fsync it needs here or hands it to the sync thread.
    fn start_flush(&mut self) -> Result<()> {
        let now = self.clock.now();
        let Some(pending) = self.node.start_flush(now)? else {
            return Ok(());
        };
        let sync_thread = self
            .sync_thread
            .as_mut()
            .filter(|thread| thread.outstanding < SYNCS_OUTSTANDING_MAX);
        let Some(sync_thread) = sync_thread else {
            let started = std::time::Instant::now();
            let completed = pending.run();
            self.counters.metrics.record_log_sync(started.elapsed());
            return self.node.handle_sync_completed(now, completed);
        };
        sync_thread.outstanding += 1;
        sync_thread
            .jobs
            .send(pending)
            .map_err(|_| Error::Io("the node's sync thread is gone".into()))
    }

    /// Hands the replica every sync outcome the sync thread has returned.
    fn take_back_syncs(&mut self) -> Result<()> {
        let Some(sync_thread) = self.sync_thread.as_mut() else {
            return Ok(());
        };
        while sync_thread.outstanding > 0 {
            let completed = match sync_thread.completions.try_recv() {
                Ok(completed) => completed,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(Error::Io("the node's sync thread is gone".into()));
                }
            };
            sync_thread.outstanding -= 1;
            self.node
                .handle_sync_completed(self.clock.now(), completed)?;
        }
        self.dispatch_outputs();
        Ok(())
    }

    fn handle_input(&mut self, input: Input) -> Result<Flow> {
        self.counters.inputs_queued.fetch_sub(1, Ordering::Relaxed);
        let now = self.clock.now();
        self.node.set_wall_clock(self.counters.wall_clock_unix_ms());
        match input {
            Input::Message { from, message } => self.node.handle_message(now, from, message)?,
            Input::Request {
                request_id,
                request,
                reply,
            } => {
                if self.waiting_count >= REQUESTS_WAITING_MAX {
                    // A retry of a request still waiting here may yet be applied:
                    // "overloaded" (certainly not applied) would be a false answer.
                    let error = if self.waiting.contains_key(&request_id) {
                        Error::Indeterminate(format!(
                            "{REQUESTS_WAITING_MAX} requests waiting; an earlier attempt of \
                             this request is still pending"
                        ))
                    } else {
                        Error::Overloaded(format!("{REQUESTS_WAITING_MAX} requests waiting"))
                    };
                    let _ = reply.send(Reply::Failed(error));
                    return Ok(Flow::Continue);
                }
                let write_started = request.is_write().then(std::time::Instant::now);
                match self.waiting.entry(request_id) {
                    Entry::Occupied(mut entry) => entry.get_mut().join(reply, write_started),
                    Entry::Vacant(entry) => {
                        entry.insert(Waiters::new(reply, write_started));
                    }
                }
                self.waiting_count += 1;
                self.node.handle_request(now, request_id, request)?;
            }
            Input::Status { reply } => {
                let _ = reply.send(self.status(now));
            }
            Input::SyncWake => {} // the outcome is taken back after the batch
            Input::Shutdown => return Ok(Flow::Stop),
        }
        self.dispatch_outputs();
        Ok(Flow::Continue)
    }

    fn dispatch_outputs(&mut self) {
        while let Some(output) = self.node.poll_output() {
            match output {
                Output::Send { to, message } => self.peers.send_raft(to, message),
                Output::Reply { request_id, reply } => self.reply(request_id, reply),
                Output::Discarded { writes } => self.report_discarded(&writes),
            }
        }
    }

    fn reply(&mut self, request_id: RequestId, reply: Reply) {
        let Some(waiters) = self.waiting.get_mut(&request_id) else {
            tracing::debug!(%request_id, "a reply nobody waits for");
            return;
        };
        if let Some(started) = waiters.write_started.take()
            && matches!(reply, Reply::Written { .. } | Reply::CompareAndSet { .. })
        {
            self.counters.metrics.record_commit(started.elapsed());
        }
        let sender = waiters.pop_front();
        if waiters.is_empty() {
            self.waiting.remove(&request_id);
        }
        if let Some(sender) = sender {
            self.waiting_count -= 1;
            // The client may have given up (timeout, closed connection): nothing to do.
            let _ = sender.send(reply);
        }
    }

    fn report_discarded(&self, writes: &[DiscardedWrite]) {
        for write in writes {
            tracing::warn!(
                node = %self.node.id(),
                key = %write.key,
                request_id = %write.request_id,
                position = %write.position,
                certain = write.certain,
                "an accepted write was discarded by a failover (lossy commit mode)"
            );
        }
        let count = u64::try_from(writes.len()).unwrap_or(u64::MAX);
        self.counters
            .writes_discarded
            .fetch_add(count, Ordering::Relaxed);
    }

    fn status(&self, now: Instant) -> NodeStatus {
        NodeStatus {
            id: self.node.id(),
            role: self.node.role_name(),
            leader: self.node.leader(),
            term: self.node.term(),
            commit: self.node.commit_index(),
            applied: self.node.applied_index(),
            replication: self.node.replication_status(now),
            commit_mode: self.commit_mode.clone(),
            pipelined_fsync: self.sync_thread.is_some(),
            stats: self.node.stats().clone(),
            writes_discarded: self.counters.writes_discarded.load(Ordering::Relaxed),
            peer_messages_dropped: self.peers.messages_dropped(),
            inputs_refused: self.counters.inputs_refused.load(Ordering::Relaxed),
            testing_link_faults: (self.peers.faults()).map(|injector| injector.counters.snapshot()),
            input_queue_depth: u64::try_from(self.counters.inputs_queued.load(Ordering::Relaxed))
                .unwrap_or(0),
            requests_waiting: self.waiting_count as u64,
        }
    }
}

/// How requests reach the node loop, and the leader when this node is not it. Cheap to
/// clone: every connection holds one.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    inner: Arc<HandleInner>,
}

#[derive(Debug)]
struct HandleInner {
    id: NodeId,
    inputs: SyncSender<Input>,
    peers: PeerSenders,
    request_timeout: Duration,
    counters: Arc<LoopCounters>,
    /// The configured client limits (at most the core limits).
    key_size_max_bytes: usize,
    value_size_max_bytes: usize,
}

impl Drop for HandleInner {
    /// The last handle gone: the loop stops (its sync thread holds a sender of the same
    /// channel, so the channel alone would never tell it). Waits for room in the queue,
    /// as [`NodeHandle::shutdown`] does; a loop already stopped refuses at once.
    fn drop(&mut self) {
        if self.inputs.send(Input::Shutdown).is_ok() {
            self.counters.inputs_queued.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Longest one forwarded attempt waits for the leader's reply before the request is
/// tried again (under the same request id, so a write still applies once): a leader
/// that died or was deposed must not hold the request until its deadline.
const FORWARD_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);

/// Longest pause between two attempts of a request that found no leader.
const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(100);

impl NodeHandle {
    #[must_use]
    pub fn new(
        id: NodeId,
        inputs: SyncSender<Input>,
        peers: PeerSenders,
        request_timeout: Duration,
        counters: Arc<LoopCounters>,
    ) -> NodeHandle {
        NodeHandle {
            inner: Arc::new(HandleInner {
                id,
                inputs,
                peers,
                request_timeout,
                counters,
                key_size_max_bytes: KEY_SIZE_MAX_BYTES,
                value_size_max_bytes: VALUE_SIZE_MAX_BYTES,
            }),
        }
    }

    /// Lowers the largest key and value clients may send (clamped to the core limits).
    /// Only on a handle not yet cloned: the limits are fixed before serving.
    #[must_use]
    pub fn with_size_limits(
        mut self,
        key_size_max_bytes: usize,
        value_size_max_bytes: usize,
    ) -> NodeHandle {
        let inner = Arc::get_mut(&mut self.inner);
        assert!(
            inner.is_some(),
            "size limits are set before the handle is shared"
        );
        if let Some(inner) = inner {
            inner.key_size_max_bytes = key_size_max_bytes.min(KEY_SIZE_MAX_BYTES);
            inner.value_size_max_bytes = value_size_max_bytes.min(VALUE_SIZE_MAX_BYTES);
        }
        self
    }

    /// `Err` (invalid input) if a key or value of `request` exceeds the configured
    /// limits: such a request is refused before it reaches the node.
    pub fn check_sizes(&self, request: &Request) -> Result<()> {
        let check = |what: &str, size: usize, limit: usize| {
            if size > limit {
                return Err(Error::InvalidInput(format!(
                    "{what} of {size} bytes exceeds the limit of {limit} bytes"
                )));
            }
            Ok(())
        };
        if let Some(key) = request.key() {
            check("key", key.as_bytes().len(), self.inner.key_size_max_bytes)?;
        }
        let values: [Option<&Value>; 2] = match request {
            Request::Put { value, .. } | Request::PutFenced { value, .. } => [Some(value), None],
            Request::CompareAndSet { expected, new, .. } => [expected.as_ref(), Some(new)],
            Request::CompareAndSetVersion { new, .. } => [Some(new), None],
            _ => [None, None],
        };
        for value in values.into_iter().flatten() {
            check(
                "value",
                value.as_bytes().len(),
                self.inner.value_size_max_bytes,
            )?;
        }
        Ok(())
    }

    /// The wall clock this node uses, in Unix milliseconds (testing offset included):
    /// what TTL answers count from.
    #[must_use]
    pub fn wall_clock_unix_ms(&self) -> u64 {
        self.inner.counters.wall_clock_unix_ms()
    }

    /// Whether the node runs with testing faults enabled (`testing_faults`).
    #[must_use]
    pub fn testing_faults(&self) -> bool {
        self.inner.counters.testing_faults.load(Ordering::Relaxed)
    }

    /// Sets this node's testing clock offset (the caller checked that testing faults
    /// are enabled and the offset is within bounds).
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.inner
            .counters
            .clock_offset_ms
            .store(offset_ms, Ordering::Relaxed);
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.inner.id
    }

    /// A fresh client identity: random, so that it never repeats across connections,
    /// nodes and restarts (the state machine's client sessions are keyed by it, and a
    /// reused id would answer a new request from an old one's outcome).
    #[must_use]
    pub fn new_client_id() -> ClientId {
        ClientId(rand::random::<u64>() | 1)
    }

    /// Serves `request` wherever it can be served: here, or forwarded to the leader when
    /// this node answers `NotLeader`. Retries (under the same request id, which the state
    /// machine applies once) until the configured timeout; then a write whose outcome
    /// is not certain is answered with an unknown outcome.
    ///
    /// One client must not have two requests in flight: request ids of one client are
    /// sequential (see `replikv_storage::store::session`).
    pub async fn request(&self, request_id: RequestId, request: Request) -> Reply {
        if let Err(error) = self.check_sizes(&request) {
            return Reply::Failed(error);
        }
        let deadline = tokio::time::Instant::now() + self.inner.request_timeout;
        let mut backoff = Duration::from_millis(5);
        let mut outcome_unknown = false;
        let last_failure = loop {
            let unknown_before_attempt = outcome_unknown;
            let attempt = self.attempt(request_id, &request, &mut outcome_unknown);
            let reply = match tokio::time::timeout_at(deadline, attempt).await {
                Ok(reply) => reply,
                Err(_) => return self.timed_out(outcome_unknown || request.is_write()),
            };
            match reply {
                Reply::Failed(Error::NotLeader { .. } | Error::Unavailable(_)) => {}
                // An earlier attempt reached the leader and may have been applied: a
                // refusal of this one (e.g. the leader's queue is full) says nothing about
                // that one, so the client must not read it as "not applied".
                Reply::Failed(_) if unknown_before_attempt => return self.timed_out(true),
                reply => return reply,
            }
            if tokio::time::Instant::now() + backoff >= deadline {
                break reply;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        };
        if outcome_unknown {
            return self.timed_out(true);
        }
        last_failure
    }

    /// One attempt: the local node, then the leader it names if that is another node.
    async fn attempt(
        &self,
        request_id: RequestId,
        request: &Request,
        outcome_unknown: &mut bool,
    ) -> Reply {
        let reply = self.request_local(request_id, request.clone()).await;
        let Reply::Failed(Error::NotLeader {
            leader: Some(leader),
        }) = reply
        else {
            return reply;
        };
        if leader == self.inner.id {
            return reply;
        }
        match self
            .inner
            .peers
            .forward(leader, request_id, request.clone())
        {
            Err(error) => Reply::Failed(error),
            Ok(pending) => {
                // From here the leader may apply the write even if no answer comes back.
                *outcome_unknown |= request.is_write();
                let waited = tokio::time::timeout(FORWARD_ATTEMPT_TIMEOUT, pending.reply()).await;
                waited.ok().flatten().unwrap_or_else(|| {
                    Reply::Failed(Error::Unavailable(format!(
                        "leader {leader} did not answer the forwarded request"
                    )))
                })
            }
        }
    }

    fn timed_out(&self, outcome_unknown: bool) -> Reply {
        let timeout_ms = self.inner.request_timeout.as_millis();
        if outcome_unknown {
            Reply::Failed(Error::Indeterminate(format!(
                "no reply within {timeout_ms} ms: unknown outcome, the write may or may not \
                 have taken effect"
            )))
        } else {
            Reply::Failed(Error::Unavailable(format!(
                "no reply within {timeout_ms} ms"
            )))
        }
    }

    /// Serves `request` on this node only (no forwarding): what a forwarded request from
    /// a peer uses, so a request travels at most one hop.
    pub async fn request_local(&self, request_id: RequestId, request: Request) -> Reply {
        let (sender, receiver) = oneshot::channel();
        let input = Input::Request {
            request_id,
            request,
            reply: sender,
        };
        if let Err(error) = self.try_send(input) {
            return Reply::Failed(error);
        }
        receiver.await.unwrap_or_else(|_| {
            Reply::Failed(Error::Indeterminate(
                "the node stopped; unknown outcome".into(),
            ))
        })
    }

    /// What the node knows now; `None` if the loop has stopped or is overloaded.
    pub async fn status(&self) -> Option<NodeStatus> {
        let (sender, receiver) = oneshot::channel();
        self.try_send(Input::Status { reply: sender }).ok()?;
        receiver.await.ok()
    }

    /// Hands a peer's message to the loop; a full queue drops it (counted).
    pub fn deliver(&self, from: NodeId, message: Message) {
        if self.try_send(Input::Message { from, message }).is_err() {
            tracing::debug!(%from, "node input queue full: peer message dropped");
        }
    }

    /// Asks the loop to flush and stop. Waits for room in the queue: shutdown must not
    /// be dropped.
    pub fn shutdown(&self) {
        if self.inner.inputs.send(Input::Shutdown).is_ok() {
            let counters = &self.inner.counters;
            counters.inputs_queued.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The peers this node talks to and their addresses (the live address book).
    #[must_use]
    pub fn peer_addresses(&self) -> std::collections::BTreeMap<NodeId, std::net::SocketAddr> {
        self.inner.peers.peer_addresses()
    }

    /// The peer transport's sending side (the testing fault hook lives there).
    #[must_use]
    pub fn peer_senders(&self) -> &PeerSenders {
        &self.inner.peers
    }

    /// Inputs refused because the loop's queue was full.
    #[must_use]
    pub fn inputs_refused(&self) -> u64 {
        self.inner.counters.inputs_refused.load(Ordering::Relaxed)
    }

    /// The node's metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.inner.counters.metrics
    }

    fn try_send(&self, input: Input) -> Result<()> {
        match self.inner.inputs.try_send(input) {
            Ok(()) => {
                self.inner
                    .counters
                    .inputs_queued
                    .fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.inner
                    .counters
                    .inputs_refused
                    .fetch_add(1, Ordering::Relaxed);
                Err(Error::Overloaded("the node's input queue is full".into()))
            }
            Err(TrySendError::Disconnected(_)) => {
                Err(Error::Unavailable("the node has stopped".into()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sync thread never blocks on the loop: with the loop's input queue full (the
    /// loop busy elsewhere), every outcome still comes back on the completion channel.
    /// A first cut sent outcomes into the input queue and blocked there, while the loop
    /// could block handing it more syncs: both waited forever (found in review).
    #[test]
    fn the_sync_thread_returns_outcomes_while_the_loop_queue_is_full() {
        let (wake, inputs) = std::sync::mpsc::sync_channel(1);
        wake.try_send(Input::Shutdown).unwrap(); // the queue is now full
        let counters = Arc::new(LoopCounters::default());
        let thread = spawn_sync_thread(NodeId(1), wake, counters).unwrap();
        for sequence in 1..=SYNCS_OUTSTANDING_MAX as u64 * 2 {
            thread
                .jobs
                .send(PendingSync::new(sequence, || Ok(())))
                .unwrap();
        }
        for sequence in 1..=SYNCS_OUTSTANDING_MAX as u64 * 2 {
            let completed = thread
                .completions
                .recv_timeout(Duration::from_secs(10))
                .expect("an outcome despite the full queue");
            assert_eq!(completed.sequence, sequence);
            assert!(completed.result.is_ok());
        }
        assert!(matches!(inputs.try_recv(), Ok(Input::Shutdown)));
    }
}
