//! The one contract between a replication strategy and whatever drives it.
//!
//! A replica is a deterministic state machine in the style of quinn-proto: `handle_*`
//! methods feed it inputs, `poll_*` methods drain what it wants done. The driver (the
//! simulator, or the server's node loop) owns all I/O: it delivers messages, it decides
//! what time it is, it closes each batch of inputs with a flush ([`Replica::handle_flush`],
//! or its pipelined halves below).
//! Given the same construction (including its seed and storage contents) and the same
//! sequence of inputs, a replica produces the same outputs, always. That is what makes
//! every simulator run replayable from its seed.
//!
//! ## Storage and group commit
//!
//! A replica owns its storage objects (the replication log and the state store, built by
//! the driver over a real or simulated disk and handed in at construction). Writes are
//! buffered; durability happens only in a flush, which the driver calls after it has fed
//! a batch of inputs ([`Replica::handle_flush`], or [`Replica::start_flush`] and
//! [`Replica::handle_sync_completed`]): one fsync covers every append of the batch (group
//! commit), and outputs that must wait for durability (acknowledgements, votes) are
//! released only after it. A replica never acknowledges anything it has not flushed.
//! (A replica's storage may also sync on its own inside an input, a truncation for
//! instance, which never releases anything early either.)
//!
//! ## Pipelined group commit
//!
//! `handle_flush` waits for the disk, and a driver that calls it on its only thread
//! handles nothing else meanwhile: its cycle is the fsync, then the CPU work of the next
//! batch, then the next fsync, each waiting for the other. A driver that wants the two to
//! overlap splits the flush in two. [`Replica::start_flush`] does everything
//! `handle_flush` does except the wait: it writes the batch and hands back the sync as a
//! [`PendingSync`], which the driver runs wherever it likes (the server: a thread of its
//! own) while it feeds the replica more inputs; [`Replica::handle_sync_completed`] takes
//! the outcome back, and only then does the replica release what waited for that sync.
//! While a sync is outstanding, `start_flush` still closes the batch (sends, reads,
//! timers) but starts no other sync, and the writes handled meanwhile wait in memory for
//! the next one. After `handle_sync_completed` the driver calls `start_flush` again,
//! which starts that next sync. One exception: an operation that cannot wait for the
//! driver (a log truncation or compaction, a reset to a snapshot, a synchronous
//! `handle_flush`) may complete the outstanding sync itself, and the next `start_flush`
//! may then start another while the driver still runs the first; the first's
//! completion, when it comes back, is stale and changes nothing. So a driver accepts
//! more than one outstanding sync and hands back every completion, in any order. The promise is unchanged: nothing is acknowledged before a sync that
//! covers it has *completed*. A replica that has no use for pipelining keeps the
//! defaults, under which `start_flush` is `handle_flush` and no sync is ever pending.
//!
//! ## Time
//!
//! `now` is passed into every input. [`Replica::poll_timeout`] tells the driver the next
//! instant at which the replica wants [`Replica::handle_tick`] called, so a driver never
//! needs to tick on a fixed period (the simulator jumps straight to the next deadline).
//!
//! ## Wall-clock time
//!
//! `now` is monotonic and its origin arbitrary. Key expiry needs calendar time, so the
//! driver also hands the replica the wall clock, in Unix milliseconds, through
//! [`Replica::set_wall_clock`] before each input (the simulator: a per-node skewed
//! virtual calendar; the server: the system clock plus its testing offset). A replica
//! uses it only where a clock is a matter of judgement — a leader stamping the entries
//! it proposes, a replica judging whether a key it serves has expired — and never while
//! applying the log: applying reads the stamps the log carries, so every replica
//! computes the same state.
//!
//! ## Errors
//!
//! Client and peer input never makes a replica return an error or panic: bad input
//! becomes a [`Reply::Failed`] or is dropped and counted. An `Err` from a `handle_*`
//! method means the replica's own storage failed (I/O error, corruption); the replica is
//! then unusable and the driver must stop it and restart it from its durable state.
//!
//! ## Loss is reported
//!
//! A replica that throws away a write it accepted (async replication's failover does
//! exactly that) says so with [`Output::Discarded`]: which client request, where, which
//! key and value. It reports before it removes the write from storage, so a crash in
//! between reports it again after the restart rather than never: drivers deduplicate by
//! request id and position.
//!
//! ## Watching the whole cluster
//!
//! Some invariants are not a property of one replica, nor of the replicas running at one
//! instant, but of a whole run: "at most one leader per term, ever" is broken when leader A
//! of term T crashes and B is elected in T afterwards, yet no single instant shows two
//! leaders. So each strategy names a [`ClusterObserver`] ([`Replica::Observer`]): the
//! driver creates one per run and calls it after every event with the replicas running
//! at that moment; the observer keeps whatever history it needs (bounded) and reports
//! the first violation. This is the one mechanism for cross-replica invariants: a
//! stateless check is simply an observer that remembers nothing, and strategies with
//! nothing to check use [`NoObserver`].
//!
//! [`Reply::Failed`]: crate::kv::Reply::Failed

use crate::error::Result;
use crate::id::{NodeId, RequestId};
use crate::kv::{Key, Reply, Request, Value};
use crate::position::LogPosition;
use crate::time::Instant;
use std::collections::BTreeMap;
use std::fmt;

/// Something a replica wants its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<M> {
    /// Send `message` to peer `to`. Delivery is best-effort: it may be lost, delayed,
    /// duplicated or reordered, and the protocol must cope.
    Send { to: NodeId, message: M },
    /// Answer the client request `request_id` that this replica received.
    Reply { request_id: RequestId, reply: Reply },
    /// Writes this replica accepted from clients and has now thrown away (a failover in
    /// a lossy commit mode took them back). Loss is never silent: the driver logs them
    /// with their keys and counts them; the simulator compares them, write for write,
    /// with the acknowledged writes its durability checker finds lost. At most
    /// [`DISCARD_REPORT_WRITES_MAX`] writes per output.
    Discarded { writes: Vec<DiscardedWrite> },
}

/// Most writes one [`Output::Discarded`] carries.
pub const DISCARD_REPORT_WRITES_MAX: usize = 1024;

/// One discarded write; see [`Output::Discarded`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscardedWrite {
    /// The client request that made the write.
    pub request_id: RequestId,
    /// Where it was in the replica's log.
    pub position: LogPosition,
    pub key: Key,
    /// The value it would have left (a put, or a compare-and-set's new value); `None`
    /// for a delete.
    pub value: Option<Value>,
    /// Whether the replica knows the write is gone from the history that survives. A
    /// replica that cannot tell exactly where its log parts from its new leader's
    /// reports every write it might have lost with `certain: false`: possibly too many,
    /// never too few.
    pub certain: bool,
}

/// The slow half of a pipelined group commit: one sync a replica asks its driver to run,
/// on any thread (see "Pipelined group commit" in the module documentation).
pub struct PendingSync {
    sequence: u64,
    sync: Box<dyn FnOnce() -> std::io::Result<()> + Send>,
}

impl PendingSync {
    /// A sync numbered `sequence` (increasing per replica incarnation) that `sync` performs.
    pub fn new(
        sequence: u64,
        sync: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    ) -> PendingSync {
        PendingSync {
            sequence,
            sync: Box::new(sync),
        }
    }

    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Performs the sync (blocking) and returns its outcome for
    /// [`Replica::handle_sync_completed`].
    #[must_use]
    pub fn run(self) -> CompletedSync {
        CompletedSync {
            sequence: self.sequence,
            result: (self.sync)(),
        }
    }
}

impl fmt::Debug for PendingSync {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("PendingSync")
            .field("sequence", &self.sequence)
            .finish_non_exhaustive()
    }
}

/// The outcome of a [`PendingSync`]: its number, and whether the disk reported success.
#[derive(Debug)]
pub struct CompletedSync {
    pub sequence: u64,
    pub result: std::io::Result<()>,
}

/// Watches the replicas of one cluster over a whole run and reports the first violated
/// cross-replica invariant. See the module documentation.
pub trait ClusterObserver<R> {
    /// Called by the driver after every event with the replicas currently running (a
    /// crashed replica is absent until it restarts). Returns a description of the first
    /// violation seen. The observer may keep history across calls, within a bound.
    fn observe(&mut self, replicas: &[&R]) -> std::result::Result<(), String>;
}

/// The observer of a strategy with no cross-replica invariants: it checks nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoObserver;

impl<R> ClusterObserver<R> for NoObserver {
    fn observe(&mut self, _replicas: &[&R]) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// Feeds the `Debug` text of `value` to `hasher`, piece by piece, without allocating: the
/// default of [`Replica::hash_message`], and the fallback of overrides for rare messages.
pub fn hash_debug(value: &impl fmt::Debug, hasher: &mut dyn std::hash::Hasher) {
    struct Feed<'a>(&'a mut dyn std::hash::Hasher);
    impl fmt::Write for Feed<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            self.0.write(text.as_bytes());
            Ok(())
        }
    }
    use fmt::Write as _;
    write!(Feed(hasher), "{value:?}").expect("feeding a hasher cannot fail");
}

/// A replication strategy's node, driven by the simulator and by the server alike.
pub trait Replica {
    /// What peers of this strategy say to each other.
    type Message: Clone + fmt::Debug;

    /// The run-wide checker of this strategy's cross-replica invariants (for example
    /// "at most one leader per term, over the whole run"); [`NoObserver`] if none.
    type Observer: ClusterObserver<Self> + Default + fmt::Debug
    where
        Self: Sized;

    /// Feeds a compact, deterministic fingerprint of `message` to `hasher`: the simulator
    /// folds every message it sends and delivers into its trace hash this way, so two
    /// different messages must feed different data. The default feeds the message's
    /// `Debug` text, which is exact but slow; a strategy whose messages are frequent
    /// overrides it with their fields.
    fn hash_message(message: &Self::Message, hasher: &mut dyn std::hash::Hasher)
    where
        Self: Sized,
    {
        hash_debug(message, hasher);
    }

    /// This replica's id.
    fn id(&self) -> NodeId;

    /// The wall-clock time, in milliseconds since the Unix epoch, that the inputs which
    /// follow happen at (see the module documentation). Drivers call it before each
    /// input; a replica that has no use for calendar time ignores it (the default).
    fn set_wall_clock(&mut self, _unix_ms: u64) {}

    /// A message from peer `from` arrived.
    fn handle_message(&mut self, now: Instant, from: NodeId, message: Self::Message) -> Result<()>;

    /// A client request arrived at this replica. Exactly one [`Output::Reply`] with the same
    /// `request_id` follows eventually, unless the replica crashes first.
    fn handle_request(
        &mut self,
        now: Instant,
        request_id: RequestId,
        request: Request,
    ) -> Result<()>;

    /// The deadline from [`Replica::poll_timeout`] passed (or the driver ticks anyway:
    /// an early tick must be harmless).
    fn handle_tick(&mut self, now: Instant) -> Result<()>;

    /// End of a batch of inputs: make every buffered write durable (one sync for the whole
    /// batch) and release the outputs that were waiting for durability.
    fn handle_flush(&mut self, now: Instant) -> Result<()>;

    /// End of a batch of inputs, pipelined: everything [`Replica::handle_flush`] does but
    /// the wait for the disk. Returns the sync the driver must run and report through
    /// [`Replica::handle_sync_completed`], or `None` if nothing waits for the disk or a
    /// sync is already outstanding (see "Pipelined group commit" in the module
    /// documentation). The default flushes synchronously and never returns a sync.
    fn start_flush(&mut self, now: Instant) -> Result<Option<PendingSync>> {
        self.handle_flush(now)?;
        Ok(None)
    }

    /// The sync [`Replica::start_flush`] returned has completed: on success what waited
    /// for it is released (acknowledgements, commits); an error makes the replica
    /// unusable, as any storage error does. The driver calls `start_flush` next.
    fn handle_sync_completed(&mut self, _now: Instant, completed: CompletedSync) -> Result<()> {
        panic!(
            "sync {} completed, but this replica never starts one",
            completed.sequence
        );
    }

    /// The next output, if any. The driver drains this after every input.
    fn poll_output(&mut self) -> Option<Output<Self::Message>>;

    /// When this replica next needs [`Replica::handle_tick`], if ever.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The key-value state this replica currently exposes to local reads: what convergence
    /// checks compare across replicas once faults have healed. Meant for tests and
    /// debugging, not for serving requests.
    fn visible_state(&self) -> Result<BTreeMap<Key, Value>>;
}
