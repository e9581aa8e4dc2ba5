//! A fault hook in the peer transport, for live tests: per-link delay, jitter, loss,
//! duplication and reordering of replication messages.
//!
//! Network namespaces and iptables (the live test's partitions) can cut links, but this
//! kernel has no `netem`, so nothing below the server can make a link slow, lossy or
//! disorderly. The hook does it where every outgoing message passes: in
//! [`super::PeerSenders::send`], before the message enters its peer's queue. It exists
//! only when the server starts with `--testing-faults` (`testing_faults = true`); then
//! `PUT /v1/admin/testing/link-faults` sets, at run time, a default [`LinkFault`] and
//! per-peer overrides ([`LinkFaults`]), and `DELETE` clears them. Without the flag the
//! hook is never created, the route answers 404, and sending costs one check of an
//! empty `OnceLock`.
//!
//! **What it does to a message.** Only replication messages ([`super::PeerFrame::Raft`])
//! are touched: Raft is built for a network that loses, duplicates, delays and reorders,
//! and that is what the tests want to exercise. Forwarded client requests and their
//! replies pass untouched, because the real transport (TCP) never duplicates them and a
//! test of the replication protocol should not depend on them. For each message to peer
//! `P`, with `P`'s fault (its override or the default), drawn in this order from one
//! seeded generator:
//! - lost with probability `loss_ratio`;
//! - otherwise sent once, or twice with probability `duplicate_ratio`;
//! - each copy delayed `latency_ms` plus a uniform `0..=jitter_ms`, and with
//!   probability `reorder_ratio` a further `reorder_delay_ms` (so it overtakes nothing
//!   and is overtaken: reordering).
//!
//! A copy with no delay goes straight to the queue. Delayed copies wait in the peer's
//! delay line: a tokio task holding a heap ordered by due time (ties in sending order,
//! so plain latency never reorders), which hands each copy to the peer's queue when it
//! is due. A line holds at most [`DELAYED_FRAMES_MAX`] copies; beyond, copies are
//! dropped and counted as dropped peer messages (`replikv_peer_messages_dropped_total`)
//! and as `overflowed` here (every count is also the metric
//! `replikv_testing_link_faults_total{effect}`). The line task holds only a weak reference to the senders,
//! so it ends with them.
//!
//! **Repeatable.** The generator is ChaCha8 seeded with `--testing-faults-seed`; the
//! same seed and the same sequence of sends give the same fates. (Which message is sent
//! when still depends on the machine's timing: a live run is repeatable in its fault
//! decisions, not in every interleaving.)

use replikv_core::NodeId;
use replikv_core::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;

/// Longest latency, jitter or reorder delay one link may be given.
pub const LINK_DELAY_LIMIT_MS: u64 = 10_000;

/// Most per-peer overrides in one [`LinkFaults`].
pub const LINK_FAULT_PEERS_MAX: usize = 64;

/// Most delayed copies waiting in one peer's delay line.
pub const DELAYED_FRAMES_MAX: usize = 4096;

/// The faults of one link (this node to one peer). All zero: a perfect link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkFault {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub loss_ratio: f64,
    pub duplicate_ratio: f64,
    pub reorder_ratio: f64,
    /// The extra delay of a reordered message.
    pub reorder_delay_ms: u64,
}

impl LinkFault {
    /// Whether this link is perfect (then messages skip the hook's work).
    #[must_use]
    pub fn is_none(&self) -> bool {
        *self == LinkFault::default()
    }

    /// Checks the limits: delays up to [`LINK_DELAY_LIMIT_MS`], ratios in `0..=1`.
    pub fn validate(&self) -> Result<()> {
        let delays = [
            ("latency_ms", self.latency_ms),
            ("jitter_ms", self.jitter_ms),
            ("reorder_delay_ms", self.reorder_delay_ms),
        ];
        for (name, value) in delays {
            if value > LINK_DELAY_LIMIT_MS {
                return Err(Error::InvalidInput(format!(
                    "{name} {value} above {LINK_DELAY_LIMIT_MS}"
                )));
            }
        }
        let ratios = [
            ("loss_ratio", self.loss_ratio),
            ("duplicate_ratio", self.duplicate_ratio),
            ("reorder_ratio", self.reorder_ratio),
        ];
        for (name, value) in ratios {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::InvalidInput(format!("{name} {value} outside 0..=1")));
            }
        }
        Ok(())
    }

    /// The delays of the copies to send (empty: lost); see the module documentation.
    pub fn fate(&self, random: &mut impl Rng) -> Vec<Duration> {
        if self.loss_ratio > 0.0 && random.random_bool(self.loss_ratio) {
            return Vec::new();
        }
        let duplicated = self.duplicate_ratio > 0.0 && random.random_bool(self.duplicate_ratio);
        let copies = if duplicated { 2 } else { 1 };
        (0..copies)
            .map(|_| {
                let mut delay_ms = self.latency_ms;
                if self.jitter_ms > 0 {
                    delay_ms += random.random_range(0..=self.jitter_ms);
                }
                if self.reorder_ratio > 0.0 && random.random_bool(self.reorder_ratio) {
                    delay_ms += self.reorder_delay_ms;
                }
                Duration::from_millis(delay_ms)
            })
            .collect()
    }
}

/// Every link's faults: a default and per-peer overrides (the JSON body of `PUT
/// /v1/admin/testing/link-faults`, peers keyed by node id).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkFaults {
    pub default: LinkFault,
    pub peers: BTreeMap<u64, LinkFault>,
}

impl LinkFaults {
    /// Checks every link's limits, the peer ids and their count.
    pub fn validate(&self) -> Result<()> {
        if self.peers.len() > LINK_FAULT_PEERS_MAX {
            return Err(Error::InvalidInput(format!(
                "at most {LINK_FAULT_PEERS_MAX} per-peer overrides"
            )));
        }
        if self.peers.contains_key(&0) {
            return Err(Error::InvalidInput("node id 0 is reserved".into()));
        }
        self.default.validate()?;
        self.peers.values().try_for_each(LinkFault::validate)
    }

    /// The fault of the link to `peer`.
    #[must_use]
    pub fn for_peer(&self, peer: NodeId) -> &LinkFault {
        self.peers.get(&peer.0).unwrap_or(&self.default)
    }
}

/// What the hook did so far (reported by the admin route).
#[derive(Debug, Default)]
pub struct FaultCounters {
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    pub delayed: AtomicU64,
    /// Delayed copies dropped because their delay line was full.
    pub overflowed: AtomicU64,
}

impl FaultCounters {
    /// The counts now.
    #[must_use]
    pub fn snapshot(&self) -> LinkFaultCounts {
        LinkFaultCounts {
            lost: self.lost.load(Ordering::Relaxed),
            duplicated: self.duplicated.load(Ordering::Relaxed),
            delayed: self.delayed.load(Ordering::Relaxed),
            overflowed: self.overflowed.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of [`FaultCounters`] (in the node's status and metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkFaultCounts {
    pub lost: u64,
    pub duplicated: u64,
    pub delayed: u64,
    pub overflowed: u64,
}

impl LinkFaultCounts {
    /// Each count with its name (the metric's `effect` label).
    #[must_use]
    pub fn by_effect(&self) -> [(&'static str, u64); 4] {
        [
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("delayed", self.delayed),
            ("overflowed", self.overflowed),
        ]
    }
}

/// One delayed copy, ordered by due time, then by sending order.
#[derive(Debug)]
struct Delayed<T> {
    due: tokio::time::Instant,
    sequence: u64,
    frame: T,
}

impl<T> PartialEq for Delayed<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.sequence) == (other.due, other.sequence)
    }
}
impl<T> Eq for Delayed<T> {}
impl<T> PartialOrd for Delayed<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Delayed<T> {
    /// Reversed: `BinaryHeap` is a max-heap, the line wants the earliest first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.sequence).cmp(&(self.due, self.sequence))
    }
}

/// One peer's delay line: the sending end of its task's channel, and how many copies
/// it holds (queued or in the heap).
#[derive(Debug)]
struct DelayLine<T> {
    sender: mpsc::UnboundedSender<Delayed<T>>,
    held: Arc<AtomicUsize>,
}

/// Where a due copy goes: the peer's real queue (`false`: it was dropped there).
pub trait Deliver<T>: Send + Sync + 'static {
    fn deliver(&self, to: NodeId, frame: T) -> bool;
}

/// The hook's state; see the module documentation.
#[derive(Debug)]
pub struct FaultInjector<T> {
    faults: Mutex<(LinkFaults, ChaCha8Rng)>,
    lines: Mutex<BTreeMap<NodeId, DelayLine<T>>>,
    runtime: tokio::runtime::Handle,
    next_sequence: AtomicU64,
    pub counters: FaultCounters,
}

impl<T: Send + 'static> FaultInjector<T> {
    /// A hook with perfect links, seeded with `seed`; delay lines run on `runtime`.
    #[must_use]
    pub fn new(seed: u64, runtime: tokio::runtime::Handle) -> FaultInjector<T> {
        FaultInjector {
            faults: Mutex::new((LinkFaults::default(), ChaCha8Rng::seed_from_u64(seed))),
            lines: Mutex::new(BTreeMap::new()),
            runtime,
            next_sequence: AtomicU64::new(0),
            counters: FaultCounters::default(),
        }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, (LinkFaults, ChaCha8Rng)> {
        // A panic while holding this lock would be a bug of ours; the state stays usable.
        self.faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The faults in force.
    #[must_use]
    pub fn link_faults(&self) -> LinkFaults {
        self.faults().0.clone()
    }

    /// Replaces the faults (after checking them); copies already delayed stay delayed.
    pub fn set_link_faults(&self, faults: LinkFaults) -> Result<()> {
        faults.validate()?;
        self.faults().0 = faults;
        Ok(())
    }

    /// The delays of the copies of one message to `to` (empty: lost), or `None` when
    /// the link is perfect and the message should go straight to the queue.
    pub fn fate(&self, to: NodeId) -> Option<Vec<Duration>> {
        let mut guard = self.faults();
        let (faults, random) = &mut *guard;
        let fault = faults.for_peer(to);
        if fault.is_none() {
            return None;
        }
        let fate = fault.fate(random);
        drop(guard);
        let counters = &self.counters;
        match fate.len() {
            0 => counters.lost.fetch_add(1, Ordering::Relaxed),
            2 => counters.duplicated.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        Some(fate)
    }

    /// Puts `frame` in `to`'s delay line for `delay`; `false` (counted) if the line is
    /// full. `deliver` is where the line hands due copies.
    pub fn delay(
        &self,
        to: NodeId,
        frame: T,
        delay: Duration,
        deliver: Weak<dyn Deliver<T>>,
    ) -> bool {
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = lines
            .entry(to)
            .or_insert_with(|| self.spawn_line(to, deliver));
        if line.held.load(Ordering::Relaxed) >= DELAYED_FRAMES_MAX {
            self.counters.overflowed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let delayed = Delayed {
            due: tokio::time::Instant::now() + delay,
            sequence: self.next_sequence.fetch_add(1, Ordering::Relaxed),
            frame,
        };
        line.held.fetch_add(1, Ordering::Relaxed);
        if line.sender.send(delayed).is_err() {
            line.held.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        self.counters.delayed.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn spawn_line(&self, to: NodeId, deliver: Weak<dyn Deliver<T>>) -> DelayLine<T> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let held = Arc::new(AtomicUsize::new(0));
        self.runtime
            .spawn(run_line(to, receiver, Arc::clone(&held), deliver));
        DelayLine { sender, held }
    }
}

/// A delay line's task: holds copies until due, then delivers them in due order. Ends
/// when its channel closes (the injector is gone) or the senders are.
async fn run_line<T: Send + 'static>(
    to: NodeId,
    mut receiver: mpsc::UnboundedReceiver<Delayed<T>>,
    held: Arc<AtomicUsize>,
    deliver: Weak<dyn Deliver<T>>,
) {
    let mut heap: BinaryHeap<Delayed<T>> = BinaryHeap::new();
    loop {
        let next_due = heap.peek().map(|delayed| delayed.due);
        let wait = async {
            match next_due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = receiver.recv() => match received {
                Some(delayed) => heap.push(delayed),
                None => return,
            },
            () = wait => {
                let Some(target) = deliver.upgrade() else { return };
                let now = tokio::time::Instant::now();
                while heap.peek().is_some_and(|delayed| delayed.due <= now) {
                    let delayed = heap.pop().expect("peeked");
                    held.fetch_sub(1, Ordering::Relaxed);
                    target.deliver(to, delayed.frame);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy(loss_ratio: f64) -> LinkFault {
        LinkFault {
            loss_ratio,
            ..LinkFault::default()
        }
    }

    #[test]
    fn limits_are_enforced() {
        let bad = [
            LinkFault {
                latency_ms: LINK_DELAY_LIMIT_MS + 1,
                ..LinkFault::default()
            },
            lossy(1.5),
            lossy(f64::NAN),
            LinkFault {
                reorder_ratio: -0.1,
                ..LinkFault::default()
            },
        ];
        for fault in bad {
            assert!(fault.validate().is_err(), "{fault:?}");
        }
        assert!(lossy(1.0).validate().is_ok());
        let zero_peer = LinkFaults {
            peers: BTreeMap::from([(0, LinkFault::default())]),
            ..LinkFaults::default()
        };
        assert!(zero_peer.validate().is_err());
        let too_many = LinkFaults {
            peers: (1..=65).map(|id| (id, LinkFault::default())).collect(),
            ..LinkFaults::default()
        };
        assert!(too_many.validate().is_err());
    }

    #[test]
    fn fates_follow_the_ratios_and_the_seed() {
        let fault = LinkFault {
            latency_ms: 10,
            jitter_ms: 5,
            loss_ratio: 0.25,
            duplicate_ratio: 0.5,
            reorder_ratio: 0.5,
            reorder_delay_ms: 100,
        };
        let draw = |seed| {
            let mut random = ChaCha8Rng::seed_from_u64(seed);
            (0..4000)
                .map(|_| fault.fate(&mut random))
                .collect::<Vec<_>>()
        };
        let fates = draw(7);
        assert_eq!(fates, draw(7), "the same seed, the same fates");
        assert_ne!(fates, draw(8));
        let lost = fates.iter().filter(|fate| fate.is_empty()).count();
        let doubled = fates.iter().filter(|fate| fate.len() == 2).count();
        assert!((800..1200).contains(&lost), "lost {lost} of 4000");
        assert!(
            (1300..1700).contains(&doubled),
            "doubled {doubled} of ~3000"
        );
        let delays: Vec<u64> = fates
            .iter()
            .flatten()
            .map(|delay| u64::try_from(delay.as_millis()).unwrap())
            .collect();
        assert!(
            delays
                .iter()
                .all(|ms| (10..=15).contains(ms) || (110..=115).contains(ms))
        );
        let reordered = delays.iter().filter(|ms| **ms >= 110).count();
        assert!(reordered * 3 > delays.len() && reordered * 3 < delays.len() * 2);
    }

    #[test]
    fn a_perfect_link_and_full_loss_are_exact() {
        let mut random = ChaCha8Rng::seed_from_u64(1);
        let perfect = LinkFault::default();
        assert!(perfect.is_none());
        assert_eq!(perfect.fate(&mut random), vec![Duration::ZERO]);
        assert!(lossy(1.0).fate(&mut random).is_empty());
        let faults = LinkFaults {
            default: lossy(1.0),
            peers: BTreeMap::from([(3, LinkFault::default())]),
        };
        assert_eq!(faults.for_peer(NodeId(3)), &LinkFault::default());
        assert_eq!(faults.for_peer(NodeId(2)), &lossy(1.0));
    }

    #[derive(Debug, Default)]
    struct Recorder(Mutex<Vec<u32>>);

    impl Deliver<u32> for Recorder {
        fn deliver(&self, _to: NodeId, frame: u32) -> bool {
            self.0.lock().unwrap().push(frame);
            true
        }
    }

    #[test]
    fn delay_lines_deliver_in_due_order_and_bound_what_they_hold() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let recorder = Arc::new(Recorder::default());
        let target: Arc<dyn Deliver<u32>> = recorder.clone();
        let injector = FaultInjector::new(1, runtime.handle().clone());
        let _enter = runtime.enter();
        let weak = Arc::downgrade(&target);
        assert!(injector.delay(NodeId(2), 1, Duration::from_millis(30), weak.clone()));
        assert!(injector.delay(NodeId(2), 2, Duration::from_millis(10), weak.clone()));
        assert!(injector.delay(NodeId(2), 3, Duration::from_millis(10), weak.clone()));
        let started = std::time::Instant::now();
        while recorder.0.lock().unwrap().len() < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never delivered"
            );
            runtime.block_on(tokio::time::sleep(Duration::from_millis(5)));
        }
        assert!(
            started.elapsed() >= Duration::from_millis(30),
            "delivered early"
        );
        // Due order, and ties (2 and 3 share a delay) in sending order.
        assert_eq!(*recorder.0.lock().unwrap(), vec![2, 3, 1]);
        let long = Duration::from_secs(1);
        for frame in 0..DELAYED_FRAMES_MAX {
            let frame = u32::try_from(frame).unwrap();
            assert!(injector.delay(NodeId(2), frame, long, weak.clone()));
        }
        assert!(!injector.delay(NodeId(2), 0, long, weak));
        assert_eq!(injector.counters.overflowed.load(Ordering::Relaxed), 1);
    }
}
