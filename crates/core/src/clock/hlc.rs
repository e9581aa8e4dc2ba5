//! Hybrid logical clocks: Lamport timestamps that stay close to physical time.
//!
//! A Lamport counter orders events correctly but means nothing to a human or to a
//! last-write-wins rule: counter 4711 is not "10:03". Physical timestamps mean something
//! but break causality whenever clocks disagree (seed 002: "the clock can go back in time
//! on the origin machine ... operation A which happens after operation B has a smaller
//! timestamp"). Kulkarni, Demirbas, Madappa, Avva and Leone, "Logical Physical Clocks and
//! Consistent Snapshots in Globally Distributed Databases" (OPODIS 2014), combine the two:
//! a timestamp is `(l, c)` where `l` is the largest physical time the node has heard of
//! and `c` a logical counter that orders events sharing the same `l`.
//!
//! Their update rules (send or local event with physical time `pt`; receive of `(l_m,
//! c_m)`) reduce to one sentence, which is how this file's property test states them:
//! **the new timestamp is the smallest `(wall, logical)` pair, in lexicographic order, that
//! is at least `(pt, 0)` and strictly greater than both the clock's previous timestamp and
//! (on receive) the remote timestamp.** So whenever physical time has moved past everything
//! the node has seen, the timestamp *is* physical time with a zero counter; otherwise the
//! counter ticks on the largest wall time seen. From that sentence follow the laws:
//!
//! - the clock is *monotonic* even when the physical clock steps backwards (NTP);
//! - a receive orders after the send (Lamport's clock condition), so HLC order is
//!   consistent with causality, and ties are broken by node id into a total order;
//! - `wall_ns` never runs more than the max offset ahead of the largest physical time the
//!   node has read, because of the next rule.
//!
//! **Bounded drift.** The paper assumes clocks synchronised within ε and shows
//! `l - pt ≤ ε`. A node with a broken clock breaks that assumption and, through the
//! receive rule, would drag every node it talks to into its future, permanently (no
//! timestamp can ever be issued below one already issued). CockroachDB, which uses HLCs for
//! MVCC and transaction ordering (seed 002, "Spanner ... CockroachDB ... uses
//! hybrid-logical clocks to avoid having to provision highly costly atomic clocks"),
//! refuses instead: a remote timestamp more than `max_offset` ahead of local physical
//! time is an error, and the message is dropped. [`HybridLogicalClock::observe`] does the
//! same.
//!
//! **Overflow.** The counter is 32 bits. It only grows while physical time stands still or
//! lags the largest wall time seen, so 2³² events at one wall time means something is badly
//! wrong; the clock then returns [`ClockError::LogicalOverflow`] instead of wrapping, which
//! would issue a timestamp below an earlier one.
//!
//! Physical time is an argument (`physical_now_ns`): like everything in the core, the clock
//! never reads a clock. The state is not durable; a node restarting must not issue
//! timestamps until its physical clock has passed the largest wall time it may have
//! issued before (wait out the max offset, as CockroachDB does), or observe that persisted
//! timestamp first. That is also why the clock serializes (for status and debugging) but
//! does not deserialize: restoring goes through [`HybridLogicalClock::observe`], which
//! checks what it is given.

use super::ClockError;
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One event's hybrid timestamp. Ordered by `wall_ns`, then `logical`, then `node` (field
/// order): a total order consistent with causality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct HlcTimestamp {
    /// The largest physical time, in nanoseconds, the issuing node had heard of.
    pub wall_ns: u64,
    /// Orders events that share `wall_ns`.
    pub logical: u32,
    /// The node that issued the timestamp: the final tie-break.
    pub node: NodeId,
}

impl fmt::Display for HlcTimestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", self.wall_ns, self.logical, self.node)
    }
}

/// One node's hybrid logical clock. Serializes for inspection; restore one by observing
/// its last persisted timestamp (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HybridLogicalClock {
    node: NodeId,
    max_offset_ns: u64,
    wall_ns: u64,
    logical: u32,
    /// The largest physical time ever passed in; `wall_ns` stays within `max_offset_ns`
    /// of it.
    physical_max_ns: u64,
}

impl HybridLogicalClock {
    /// A clock for `node` that accepts remote timestamps at most `max_offset_ns` ahead of
    /// its own physical time.
    #[must_use]
    pub fn new(node: NodeId, max_offset_ns: u64) -> HybridLogicalClock {
        HybridLogicalClock {
            node,
            max_offset_ns,
            wall_ns: 0,
            logical: 0,
            physical_max_ns: 0,
        }
    }

    /// The node this clock stamps events for.
    #[must_use]
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The largest offset tolerated between a remote timestamp and local physical time.
    #[must_use]
    pub fn max_offset_ns(&self) -> u64 {
        self.max_offset_ns
    }

    /// The timestamp of the latest event (zero before the first one).
    #[must_use]
    pub fn last(&self) -> HlcTimestamp {
        HlcTimestamp {
            wall_ns: self.wall_ns,
            logical: self.logical,
            node: self.node,
        }
    }

    /// A local event or the sending of a message at physical time `physical_now_ns`.
    /// Fails only if the logical counter is exhausted; the clock is then unchanged.
    pub fn now(&mut self, physical_now_ns: u64) -> Result<HlcTimestamp, ClockError> {
        let wall_ns = self.wall_ns.max(physical_now_ns);
        let logical = if wall_ns == self.wall_ns {
            self.logical
                .checked_add(1)
                .ok_or(ClockError::LogicalOverflow { wall_ns })?
        } else {
            0
        };
        Ok(self.advance(wall_ns, logical, physical_now_ns))
    }

    /// The receipt at physical time `physical_now_ns` of a message stamped `remote`: the
    /// receive event's timestamp, which orders after `remote`. A remote wall time more
    /// than the max offset ahead of `physical_now_ns` is rejected, as is an exhausted
    /// logical counter; the clock is then unchanged.
    pub fn observe(
        &mut self,
        remote: HlcTimestamp,
        physical_now_ns: u64,
    ) -> Result<HlcTimestamp, ClockError> {
        if remote.wall_ns > physical_now_ns.saturating_add(self.max_offset_ns) {
            return Err(ClockError::RemoteTooFarAhead {
                remote_wall_ns: remote.wall_ns,
                physical_now_ns,
                max_offset_ns: self.max_offset_ns,
            });
        }
        let wall_ns = self.wall_ns.max(remote.wall_ns).max(physical_now_ns);
        let logical = match (wall_ns == self.wall_ns, wall_ns == remote.wall_ns) {
            (true, true) => self.logical.max(remote.logical).checked_add(1),
            (true, false) => self.logical.checked_add(1),
            (false, true) => remote.logical.checked_add(1),
            (false, false) => Some(0),
        }
        .ok_or(ClockError::LogicalOverflow { wall_ns })?;
        let stamped = self.advance(wall_ns, logical, physical_now_ns);
        debug_assert!((stamped.wall_ns, stamped.logical) > (remote.wall_ns, remote.logical));
        Ok(stamped)
    }

    /// Moves the clock to `(wall_ns, logical)`, checking the clock's invariants.
    fn advance(&mut self, wall_ns: u64, logical: u32, physical_now_ns: u64) -> HlcTimestamp {
        assert!(
            (wall_ns, logical) > (self.wall_ns, self.logical),
            "hybrid clock must move forward"
        );
        assert!(
            wall_ns >= physical_now_ns,
            "hybrid clock behind physical time"
        );
        self.wall_ns = wall_ns;
        self.logical = logical;
        self.physical_max_ns = self.physical_max_ns.max(physical_now_ns);
        assert!(
            self.wall_ns >= self.physical_max_ns
                && self.wall_ns - self.physical_max_ns <= self.max_offset_ns,
            "hybrid clock drifted beyond the max offset"
        );
        self.last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX_OFFSET_NS: u64 = 500;

    fn timestamp(wall_ns: u64, logical: u32, node: u64) -> HlcTimestamp {
        HlcTimestamp {
            wall_ns,
            logical,
            node: NodeId(node),
        }
    }

    #[test]
    fn follows_physical_time_while_it_advances() {
        let mut clock = HybridLogicalClock::new(NodeId(1), MAX_OFFSET_NS);
        assert_eq!(clock.now(100), Ok(timestamp(100, 0, 1)));
        assert_eq!(clock.now(100), Ok(timestamp(100, 1, 1)));
        assert_eq!(clock.now(250), Ok(timestamp(250, 0, 1)));
    }

    #[test]
    fn stays_monotonic_when_physical_time_steps_back() {
        let mut clock = HybridLogicalClock::new(NodeId(1), MAX_OFFSET_NS);
        clock.now(1_000).unwrap();
        assert_eq!(clock.now(400), Ok(timestamp(1_000, 1, 1)));
        assert_eq!(clock.now(999), Ok(timestamp(1_000, 2, 1)));
        assert_eq!(clock.now(1_001), Ok(timestamp(1_001, 0, 1)));
    }

    #[test]
    fn a_receive_takes_the_larger_wall_time_and_orders_after_the_sender() {
        let mut clock = HybridLogicalClock::new(NodeId(2), MAX_OFFSET_NS);
        clock.now(100).unwrap();
        // Remote ahead, within the offset: adopt its wall time, count past its logical.
        assert_eq!(
            clock.observe(timestamp(300, 4, 1), 120),
            Ok(timestamp(300, 5, 2))
        );
        // Remote behind: keep ticking on our own wall time.
        assert_eq!(
            clock.observe(timestamp(200, 9, 1), 130),
            Ok(timestamp(300, 6, 2))
        );
        // Same wall time on both sides: past the larger counter.
        assert_eq!(
            clock.observe(timestamp(300, 9, 3), 140),
            Ok(timestamp(300, 10, 2))
        );
        // Physical time past everything: back to physical time.
        assert_eq!(
            clock.observe(timestamp(300, 9, 3), 301),
            Ok(timestamp(301, 0, 2))
        );
    }

    #[test]
    fn a_restart_restores_by_observing_the_last_persisted_timestamp() {
        let mut clock = HybridLogicalClock::new(NodeId(1), MAX_OFFSET_NS);
        let persisted = clock.now(5_000).unwrap();
        // The machine's clock went back by more than the max offset across the restart:
        // the restored clock refuses to start until physical time catches up.
        let mut restored = HybridLogicalClock::new(NodeId(1), MAX_OFFSET_NS);
        assert!(restored.observe(persisted, 4_000).is_err());
        let first = restored.observe(persisted, 4_600).unwrap();
        assert!(first > persisted);
        assert!(restored.now(4_700).unwrap() > first);
    }

    #[test]
    fn a_remote_too_far_ahead_is_rejected_without_effect() {
        let mut clock = HybridLogicalClock::new(NodeId(2), MAX_OFFSET_NS);
        clock.now(1_000).unwrap();
        let before = clock.clone();
        let remote = timestamp(1_000 + MAX_OFFSET_NS + 1, 0, 1);
        assert_eq!(
            clock.observe(remote, 1_000),
            Err(ClockError::RemoteTooFarAhead {
                remote_wall_ns: remote.wall_ns,
                physical_now_ns: 1_000,
                max_offset_ns: MAX_OFFSET_NS,
            })
        );
        assert_eq!(clock, before);
        // Exactly at the offset is accepted.
        let remote = timestamp(1_000 + MAX_OFFSET_NS, 0, 1);
        assert_eq!(
            clock.observe(remote, 1_000),
            Ok(timestamp(remote.wall_ns, 1, 2))
        );
    }

    #[test]
    fn logical_overflow_is_an_error_not_a_wrap() {
        let mut clock = HybridLogicalClock::new(NodeId(2), MAX_OFFSET_NS);
        let saturated = timestamp(1_000, u32::MAX - 1, 1);
        assert_eq!(
            clock.observe(saturated, 1_000),
            Ok(timestamp(1_000, u32::MAX, 2))
        );
        let before = clock.clone();
        let overflow = Err(ClockError::LogicalOverflow { wall_ns: 1_000 });
        assert_eq!(clock.now(1_000), overflow);
        assert_eq!(clock.observe(timestamp(1_000, 3, 1), 900), overflow);
        assert_eq!(clock.observe(timestamp(900, 3, 1), 900), overflow);
        assert_eq!(clock, before);
        // A remote at the limit overflows too, even on a fresh clock.
        let mut fresh = HybridLogicalClock::new(NodeId(3), MAX_OFFSET_NS);
        assert_eq!(
            fresh.observe(timestamp(1_000, u32::MAX, 1), 1_000),
            overflow
        );
        // Once physical time moves on, the clock works again.
        assert_eq!(clock.now(1_001), Ok(timestamp(1_001, 0, 2)));
    }

    #[test]
    fn the_offset_check_does_not_overflow_near_the_end_of_time() {
        let mut clock = HybridLogicalClock::new(NodeId(2), u64::MAX);
        assert_eq!(
            clock.observe(timestamp(u64::MAX, 0, 1), u64::MAX - 1),
            Ok(timestamp(u64::MAX, 1, 2))
        );
    }

    /// One input: a local event at a physical time, or a receive of a remote timestamp.
    #[derive(Clone, Debug)]
    enum Input {
        Now(u64),
        Observe(HlcTimestamp, u64),
    }

    fn inputs() -> impl Strategy<Value = Vec<Input>> {
        // Small ranges so that wall times collide and logical counters matter; a few
        // logical counters near the limit so that overflow is reached.
        let physical = 0..3_000u64;
        let logical = prop_oneof![0..5u32, (u32::MAX - 3)..=u32::MAX];
        let remote = (0..3_000u64, logical, 1..4u64)
            .prop_map(|(wall_ns, logical, node)| timestamp(wall_ns, logical, node));
        let input = prop_oneof![
            physical.clone().prop_map(Input::Now),
            (remote, physical).prop_map(|(remote, pt)| Input::Observe(remote, pt)),
        ];
        proptest::collection::vec(input, 0..60)
    }

    /// The specification: the least `(wall, logical)` at least `(pt, 0)` and above
    /// `floor`, computed in wide integers (so it can exceed the 32-bit counter).
    fn least_above(floor: (u64, u32), physical_now_ns: u64) -> (u64, u64) {
        if physical_now_ns > floor.0 {
            (physical_now_ns, 0)
        } else {
            (floor.0, u64::from(floor.1) + 1)
        }
    }

    proptest! {
        /// Laws: every timestamp is the least one above the previous timestamp, the remote
        /// (on receive) and physical time; hence the clock is monotonic even when physical
        /// time goes backwards, a receive orders after its send, the wall time never
        /// falls behind physical time nor gets more than the max offset ahead of the
        /// largest physical time seen; remotes too far ahead and counter overflow are
        /// errors that change nothing.
        #[test]
        fn every_timestamp_is_the_least_one_allowed(inputs in inputs()) {
            let mut clock = HybridLogicalClock::new(NodeId(7), MAX_OFFSET_NS);
            let mut physical_max_ns = 0;
            for input in inputs {
                let previous = clock.clone();
                let last = (clock.wall_ns, clock.logical);
                let (result, floor, pt, remote) = match input {
                    Input::Now(pt) => (clock.now(pt), last, pt, None),
                    Input::Observe(remote, pt) => {
                        let floor = last.max((remote.wall_ns, remote.logical));
                        (clock.observe(remote, pt), floor, pt, Some(remote))
                    }
                };
                let too_far = remote.is_some_and(|r| r.wall_ns > pt + MAX_OFFSET_NS);
                let expected = least_above(floor, pt);
                match result {
                    Ok(stamped) => {
                        prop_assert!(!too_far);
                        prop_assert_eq!((stamped.wall_ns, u64::from(stamped.logical)), expected);
                        prop_assert!(stamped > previous.last());
                        prop_assert!(remote.is_none_or(|r| stamped > r));
                        physical_max_ns = physical_max_ns.max(pt);
                        prop_assert!(stamped.wall_ns >= pt);
                        prop_assert!(stamped.wall_ns <= physical_max_ns + MAX_OFFSET_NS);
                        prop_assert_eq!(clock.last(), stamped);
                    }
                    Err(ClockError::RemoteTooFarAhead { .. }) => {
                        prop_assert!(too_far);
                        prop_assert_eq!(&clock, &previous);
                    }
                    Err(ClockError::LogicalOverflow { wall_ns }) => {
                        prop_assert!(!too_far);
                        prop_assert_eq!((wall_ns, u64::from(u32::MAX) + 1), expected);
                        prop_assert_eq!(&clock, &previous);
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other}"),
                }
            }
        }
    }
}
