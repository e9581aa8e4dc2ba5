//! What each clock can tell about happens-before, checked on random message exchanges.
//!
//! Proptest drives three nodes through local events, sends and deliveries in arbitrary
//! order (messages are reordered freely), while each node's physical clock advances
//! unevenly and sometimes steps backwards. Every event is stamped by all three clocks at
//! once: a Lamport clock, a hybrid logical clock and a vector clock. The ground truth is
//! computed independently, as the transitive closure of program order and
//! send-before-receive. The test then checks the module essay's table:
//!
//! - vector clocks characterise happens-before *exactly*: `Before` if and only if the
//!   first event happened before the second, `Concurrent` if and only if neither did;
//! - Lamport and hybrid timestamps are *consistent* with it (happened before implies a
//!   smaller timestamp) and totally order all events, but a smaller timestamp says
//!   nothing: concurrent events get ordered too.

use proptest::prelude::*;
use replikv_core::NodeId;
use replikv_core::clock::{
    Causality, ClockError, HlcTimestamp, HybridLogicalClock, LamportClock, LamportTimestamp,
    VersionVector,
};

const NODES: usize = 3;
const MAX_OFFSET_NS: u64 = 1_000;
/// Events are tracked as bits of a u128: at most this many.
const EVENTS_MAX: usize = 128;

#[derive(Clone, Debug)]
enum Step {
    Local {
        node: usize,
        elapsed_ns: u64,
    },
    Send {
        from: usize,
        to: usize,
        elapsed_ns: u64,
    },
    Deliver {
        pick: prop::sample::Index,
        elapsed_ns: u64,
    },
    ClockStepsBack {
        node: usize,
        by_ns: u64,
    },
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let node = 0..NODES;
    let elapsed = 0..300u64;
    let step = prop_oneof![
        (node.clone(), elapsed.clone())
            .prop_map(|(node, elapsed_ns)| Step::Local { node, elapsed_ns }),
        (node.clone(), node.clone(), elapsed.clone()).prop_map(|(from, to, elapsed_ns)| {
            Step::Send {
                from,
                to,
                elapsed_ns,
            }
        }),
        (any::<prop::sample::Index>(), elapsed)
            .prop_map(|(pick, elapsed_ns)| Step::Deliver { pick, elapsed_ns }),
        (node, 0..2_000u64).prop_map(|(node, by_ns)| Step::ClockStepsBack { node, by_ns }),
    ];
    proptest::collection::vec(step, 1..EVENTS_MAX)
}

/// One event, as stamped by every clock, with its true causal past.
#[derive(Clone, Debug)]
struct Event {
    lamport: LamportTimestamp,
    hybrid: HlcTimestamp,
    vector: VersionVector,
    /// Bit `i` is set when event `i` happened before this one.
    past: u128,
}

#[derive(Clone, Debug)]
struct Message {
    to: usize,
    send_event: usize,
}

struct Node {
    lamport: LamportClock,
    hybrid: HybridLogicalClock,
    vector: VersionVector,
    physical_ns: u64,
    last_event: Option<usize>,
}

struct Run {
    nodes: Vec<Node>,
    events: Vec<Event>,
    in_flight: Vec<Message>,
}

impl Run {
    fn new() -> Run {
        let nodes = (0..NODES)
            .map(|i| {
                let id = NodeId(i as u64 + 1);
                Node {
                    lamport: LamportClock::new(id),
                    hybrid: HybridLogicalClock::new(id, MAX_OFFSET_NS),
                    vector: VersionVector::new(),
                    // Skewed start, within the max offset of each other.
                    physical_ns: 10_000 + 300 * i as u64,
                    last_event: None,
                }
            })
            .collect();
        Run {
            nodes,
            events: Vec::new(),
            in_flight: Vec::new(),
        }
    }

    /// Records an event at `node` whose past also includes `cause` (a send).
    fn record(&mut self, node: usize, cause: Option<usize>, event: Event) -> usize {
        let mut past = event.past;
        for earlier in [self.nodes[node].last_event, cause].into_iter().flatten() {
            past |= self.events[earlier].past | (1 << earlier);
        }
        self.events.push(Event { past, ..event });
        let index = self.events.len() - 1;
        self.nodes[node].last_event = Some(index);
        index
    }

    fn local_event(&mut self, node: usize) -> usize {
        let n = &mut self.nodes[node];
        n.vector.increment(n.lamport.node());
        let event = Event {
            lamport: n.lamport.tick(),
            hybrid: n.hybrid.now(n.physical_ns).unwrap(),
            vector: n.vector.clone(),
            past: 0,
        };
        self.record(node, None, event)
    }

    /// Delivers a message; a hybrid clock that finds the sender too far ahead drops it,
    /// and then no receive event happens.
    fn deliver(&mut self, message: Message) -> Result<(), TestCaseError> {
        let sent = self.events[message.send_event].clone();
        let n = &mut self.nodes[message.to];
        let hybrid = match n.hybrid.observe(sent.hybrid, n.physical_ns) {
            Ok(hybrid) => hybrid,
            Err(ClockError::RemoteTooFarAhead { .. }) => {
                prop_assert!(sent.hybrid.wall_ns > n.physical_ns + MAX_OFFSET_NS);
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
        };
        n.vector.merge(&sent.vector);
        n.vector.increment(n.lamport.node());
        let event = Event {
            lamport: n.lamport.observe(sent.lamport).unwrap(),
            hybrid,
            vector: n.vector.clone(),
            past: 0,
        };
        let received = self.record(message.to, Some(message.send_event), event);
        prop_assert!(self.events[received].lamport > sent.lamport);
        prop_assert!(self.events[received].hybrid > sent.hybrid);
        Ok(())
    }

    fn step(&mut self, step: &Step) -> Result<(), TestCaseError> {
        match *step {
            Step::Local { node, elapsed_ns } => {
                self.nodes[node].physical_ns += elapsed_ns;
                self.local_event(node);
            }
            Step::Send {
                from,
                to,
                elapsed_ns,
            } => {
                self.nodes[from].physical_ns += elapsed_ns;
                let send_event = self.local_event(from);
                self.in_flight.push(Message { to, send_event });
            }
            Step::Deliver { pick, elapsed_ns } => {
                if !self.in_flight.is_empty() {
                    let message = self.in_flight.swap_remove(pick.index(self.in_flight.len()));
                    self.nodes[message.to].physical_ns += elapsed_ns;
                    self.deliver(message)?;
                }
            }
            Step::ClockStepsBack { node, by_ns } => {
                let n = &mut self.nodes[node];
                n.physical_ns = n.physical_ns.saturating_sub(by_ns);
            }
        }
        Ok(())
    }
}

fn happened_before(events: &[Event], a: usize, b: usize) -> bool {
    events[b].past & (1 << a) != 0
}

proptest! {
    #[test]
    fn vector_clocks_are_exact_and_scalar_clocks_are_consistent(steps in steps()) {
        let mut run = Run::new();
        for step in &steps {
            run.step(step)?;
        }
        let events = &run.events;
        prop_assert!(events.len() <= EVENTS_MAX);
        for a in 0..events.len() {
            for b in 0..events.len() {
                if a == b {
                    continue;
                }
                let expected = match (happened_before(events, a, b), happened_before(events, b, a)) {
                    (true, false) => Causality::Before,
                    (false, true) => Causality::After,
                    (false, false) => Causality::Concurrent,
                    (true, true) => return Err(TestCaseError::fail("causal cycle")),
                };
                prop_assert_eq!(events[a].vector.compare(&events[b].vector), expected);
                // Scalar clocks: a total order (distinct timestamps) consistent with
                // causality.
                prop_assert_ne!(events[a].lamport, events[b].lamport);
                prop_assert_ne!(events[a].hybrid, events[b].hybrid);
                if expected == Causality::Before {
                    prop_assert!(events[a].lamport < events[b].lamport);
                    prop_assert!(events[a].hybrid < events[b].hybrid);
                }
            }
        }
    }
}

#[test]
fn a_lamport_order_cannot_tell_concurrent_from_causal() {
    // Node 1 does two events, node 2 one, with no message between them: all concurrent
    // across nodes, yet Lamport orders node 2's event first, exactly as it would if node
    // 2's event had caused node 1's second one. The vectors say "concurrent".
    let mut first = (LamportClock::new(NodeId(1)), VersionVector::new());
    let mut second = (LamportClock::new(NodeId(2)), VersionVector::new());
    first.0.tick();
    first.1.increment(NodeId(1));
    let a = (first.0.tick(), {
        first.1.increment(NodeId(1));
        first.1.clone()
    });
    let b = (second.0.tick(), {
        second.1.increment(NodeId(2));
        second.1.clone()
    });
    assert!(b.0 < a.0);
    assert_eq!(b.1.compare(&a.1), Causality::Concurrent);
    // Had a message carried b to node 1 before a, Lamport would look just the same.
    let mut causal = LamportClock::new(NodeId(1));
    causal.tick();
    let a_after_b = causal.observe(b.0).unwrap();
    assert!(b.0 < a_after_b && a_after_b.counter == a.0.counter);
}
