//! Lamport clocks: a total order of events that never contradicts causality.
//!
//! Leslie Lamport's "Time, Clocks, and the Ordering of Events in a Distributed System"
//! (Communications of the ACM 21(7), 1978) observes that a distributed system has no
//! single "now", only the *happens-before* relation: within one process events are ordered
//! by program order, and the sending of a message happens before its receipt. A logical
//! clock that respects that relation is enough to agree on an order of events.
//!
//! The algorithm, as the seeds summarise it (seed 002, *Understanding Distributed Systems*,
//! "Logical clocks"; seed 003, DDIA ch. 9, "Lamport timestamps"):
//!
//! - each node keeps a counter; every local event (including sending a message)
//!   increments it and is stamped with the new value;
//! - every message carries the sender's timestamp; on receipt, the receiver sets its
//!   counter to `max(local, received) + 1` and stamps the receive event with it;
//! - a timestamp is the pair `(counter, node id)`, compared counter first, so that two
//!   events on different nodes with the same counter are still ordered: the order is
//!   total.
//!
//! What this buys is the *clock condition*: if A happened before B then
//! `L(A) < L(B)`. What it does not buy is the converse: `L(A) < L(B)` is also what two
//! concurrent events look like, so a Lamport clock cannot detect concurrency (that takes a
//! [`VersionVector`](super::VersionVector)). It is the right tool when all nodes must agree
//! on *some* order consistent with causality (a last-writer-wins register, total order
//! broadcast) and no tool at all when conflicts must be seen.
//!
//! Remote counters are untrusted: [`LamportClock::observe`] rejects one above
//! [`COUNTER_MAX`](super::COUNTER_MAX) instead of letting a corrupt peer push the counter
//! to the edge of `u64` and make the next increment overflow.

use super::{ClockError, check_remote_counter};
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One event's Lamport timestamp. Ordered by `counter`, then `node` (field order), which
/// is a total order: two events of one node never share a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LamportTimestamp {
    pub counter: u64,
    pub node: NodeId,
}

impl fmt::Display for LamportTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.counter, self.node)
    }
}

/// One node's Lamport clock. Serializes for inspection; restore one by observing its last
/// persisted timestamp, which checks it like a peer's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LamportClock {
    node: NodeId,
    counter: u64,
}

impl LamportClock {
    /// A clock for `node` that has seen no event yet.
    #[must_use]
    pub fn new(node: NodeId) -> LamportClock {
        LamportClock { node, counter: 0 }
    }

    /// The node this clock stamps events for.
    #[must_use]
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The timestamp of the latest event (counter 0 before the first one).
    #[must_use]
    pub fn last(&self) -> LamportTimestamp {
        LamportTimestamp {
            counter: self.counter,
            node: self.node,
        }
    }

    /// A local event or the sending of a message: the next timestamp.
    pub fn tick(&mut self) -> LamportTimestamp {
        // Remote counters are at most COUNTER_MAX, so reaching u64::MAX takes 2^63 local
        // events: an overflow here is a broken invariant, not bad input.
        self.counter = self
            .counter
            .checked_add(1)
            .expect("Lamport counter exhausted 2^63 local events");
        self.last()
    }

    /// The receipt of a message stamped `remote`: the receive event's timestamp, which
    /// orders after both `remote` and every earlier event of this node. A remote counter
    /// above [`COUNTER_MAX`](super::COUNTER_MAX) is rejected and changes nothing.
    pub fn observe(&mut self, remote: LamportTimestamp) -> Result<LamportTimestamp, ClockError> {
        let remote_counter = check_remote_counter(remote.counter)?;
        self.counter = self.counter.max(remote_counter);
        let stamped = self.tick();
        debug_assert!(stamped > remote);
        Ok(stamped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::COUNTER_MAX;
    use proptest::prelude::*;

    fn timestamp(counter: u64, node: u64) -> LamportTimestamp {
        LamportTimestamp {
            counter,
            node: NodeId(node),
        }
    }

    #[test]
    fn the_seeds_example_receive_jumps_past_the_sender() {
        // Node 1 does three events and sends; node 2, at counter 1, receives at 4.
        let mut sender = LamportClock::new(NodeId(1));
        let mut receiver = LamportClock::new(NodeId(2));
        sender.tick();
        sender.tick();
        let sent = sender.tick();
        assert_eq!(receiver.tick(), timestamp(1, 2));
        assert_eq!(receiver.observe(sent), Ok(timestamp(4, 2)));
        // A stale message does not move the clock back: max + 1.
        assert_eq!(receiver.observe(timestamp(1, 1)), Ok(timestamp(5, 2)));
    }

    #[test]
    fn a_clock_restored_from_its_last_timestamp_continues_after_it() {
        let mut clock = LamportClock::new(NodeId(1));
        let persisted = (0..5).map(|_| clock.tick()).last().unwrap();
        let mut restored = LamportClock::new(NodeId(1));
        assert!(restored.observe(persisted).unwrap() > persisted);
        assert!(restored.tick() > persisted);
    }

    #[test]
    fn ties_on_the_counter_are_broken_by_node() {
        assert!(timestamp(3, 1) < timestamp(3, 2));
        assert!(timestamp(3, 9) < timestamp(4, 1));
    }

    #[test]
    fn a_counter_beyond_the_limit_is_rejected_without_effect() {
        let mut clock = LamportClock::new(NodeId(1));
        clock.tick();
        let before = clock.clone();
        assert_eq!(
            clock.observe(timestamp(COUNTER_MAX + 1, 2)),
            Err(ClockError::CounterTooLarge {
                counter: COUNTER_MAX + 1
            })
        );
        assert_eq!(clock, before);
        // At the limit there is still room for local events.
        assert_eq!(
            clock.observe(timestamp(COUNTER_MAX, 2)),
            Ok(timestamp(COUNTER_MAX + 1, 1))
        );
        assert_eq!(clock.tick(), timestamp(COUNTER_MAX + 2, 1));
    }

    /// One input to a clock: a local event, or a message with this counter and sender.
    #[derive(Clone, Debug)]
    enum Input {
        Tick,
        Observe(u64, u64),
    }

    fn inputs() -> impl Strategy<Value = Vec<Input>> {
        let input = prop_oneof![
            Just(Input::Tick),
            (0..50u64, 1..4u64).prop_map(|(counter, node)| Input::Observe(counter, node)),
            (0..=COUNTER_MAX, 1..4u64).prop_map(|(counter, node)| Input::Observe(counter, node)),
        ];
        proptest::collection::vec(input, 0..40)
    }

    proptest! {
        /// Law: the timestamps one clock issues strictly increase, and a receive event
        /// orders after the message it receives.
        #[test]
        fn timestamps_strictly_increase_and_receives_follow_sends(inputs in inputs()) {
            let mut clock = LamportClock::new(NodeId(7));
            let mut previous = clock.last();
            for input in inputs {
                let stamped = match input {
                    Input::Tick => clock.tick(),
                    Input::Observe(counter, node) => {
                        let remote = timestamp(counter, node);
                        let stamped = clock.observe(remote).unwrap();
                        prop_assert!(stamped > remote);
                        prop_assert_eq!(stamped.counter, previous.counter.max(counter) + 1);
                        stamped
                    }
                };
                prop_assert!(stamped > previous);
                prop_assert_eq!(stamped.node, NodeId(7));
                prop_assert_eq!(clock.last(), stamped);
                previous = stamped;
            }
        }
    }
}
