//! Version vectors (and vector clocks): the exact shape of happens-before.
//!
//! A Lamport timestamp squeezes causality into one number and so loses the ability to say
//! "these two are concurrent". A vector keeps one counter per node instead: entry `n`
//! counts the events (or writes) of node `n` that the holder knows about. Two vectors are
//! compared entry by entry; if every entry of `a` is at most the matching entry of `b`,
//! everything `a` knows `b` knows too, and `a` happened before (or is) `b`. If each has an
//! entry larger than the other's, each knows something the other does not: they are
//! *concurrent* (seed 002, *Understanding Distributed Systems*, "Vector clocks"; seed 000,
//! DDIA ch. 5, "Version vectors").
//!
//! The same structure goes by two names. *Vector clocks* (Fidge 1988, Mattern 1989) stamp
//! every event of a process: increment your own entry on every event, send the vector,
//! and on receipt take the entry-wise maximum then increment. *Version vectors* (Parker et
//! al., "Detection of Mutual Inconsistency in Distributed Systems", IEEE TSE 1983) stamp
//! the *state of a data item*: a replica increments its own entry when it accepts a write
//! and takes the maximum when it merges another replica's state, which is what
//! multi-leader replication uses to tell an update from a conflict. [`VersionVector`]
//! serves both uses; the operations are the same.
//!
//! Mathematically the vectors form a join-semilattice: [`VersionVector::merge`] (entry-wise
//! maximum) is commutative, associative and idempotent, and it is the *least upper bound*
//! of its inputs, so `a ≤ b` exactly when `merge(a, b) == b`. Those laws are what make
//! anti-entropy converge whatever order replicas exchange state in, and they are what the
//! property tests below check.
//!
//! A missing entry means zero, and zero entries are never stored, so two vectors that mean
//! the same thing are equal as values (`==`, `Hash`, serialized bytes). Deserialization
//! enforces that canonical form and rejects counters above
//! [`COUNTER_MAX`](super::COUNTER_MAX), so a peer cannot make a later increment overflow.
//! The vector grows by one entry per node that ever wrote; bounding the number of nodes is
//! the cluster membership's job.
//!
//! Naming follows Riak: `a.descends(b)` is `a ≥ b` (a has seen everything b has),
//! `a.dominates(b)` is `a > b` (and something more).

use super::{ClockError, Dot, check_remote_counter};
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::iter::Peekable;

/// How two vectors relate under happens-before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Causality {
    /// The left vector happened before the right one (`a < b`).
    Before,
    /// The left vector happened after the right one (`a > b`).
    After,
    /// The same knowledge (`a == b`).
    Equal,
    /// Each knows something the other does not.
    Concurrent,
}

impl Causality {
    /// The relation seen from the other side: `b.compare(a) == a.compare(b).reverse()`.
    #[must_use]
    pub fn reverse(self) -> Causality {
        match self {
            Causality::Before => Causality::After,
            Causality::After => Causality::Before,
            Causality::Equal => Causality::Equal,
            Causality::Concurrent => Causality::Concurrent,
        }
    }
}

/// A map from node to counter, zero entries omitted. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<(NodeId, u64)>", into = "Vec<(NodeId, u64)>")]
pub struct VersionVector {
    counters: BTreeMap<NodeId, u64>,
}

impl VersionVector {
    /// The empty vector: has seen nothing; happens before every other vector.
    #[must_use]
    pub fn new() -> VersionVector {
        VersionVector::default()
    }

    /// Node `node`'s counter (zero if absent).
    #[must_use]
    pub fn get(&self, node: NodeId) -> u64 {
        self.counters.get(&node).copied().unwrap_or(0)
    }

    /// Counts one more event of `node` and returns its new counter.
    pub fn increment(&mut self, node: NodeId) -> u64 {
        assert_ne!(node, NodeId::NONE, "node 0 cannot own events");
        let counter = self.counters.entry(node).or_insert(0);
        // Counters from outside are at most COUNTER_MAX: overflow needs 2^63 increments.
        *counter = counter
            .checked_add(1)
            .expect("version vector counter exhausted");
        *counter
    }

    /// Raises every entry to at least `other`'s: afterwards `self` is the least upper
    /// bound of the two.
    pub fn merge(&mut self, other: &VersionVector) {
        for (&node, &counter) in &other.counters {
            let entry = self.counters.entry(node).or_insert(0);
            *entry = (*entry).max(counter);
        }
    }

    /// How `self` relates to `other` under happens-before.
    #[must_use]
    pub fn compare(&self, other: &VersionVector) -> Causality {
        let mut less = false;
        let mut greater = false;
        for (mine, theirs) in PairedEntries::new(self, other) {
            match mine.cmp(&theirs) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
            if less && greater {
                return Causality::Concurrent;
            }
        }
        match (less, greater) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Whether `self` has seen everything `other` has (`self ≥ other`).
    #[must_use]
    pub fn descends(&self, other: &VersionVector) -> bool {
        other
            .counters
            .iter()
            .all(|(&node, &counter)| self.get(node) >= counter)
    }

    /// Whether `self` has seen everything `other` has, and more (`self > other`).
    #[must_use]
    pub fn dominates(&self, other: &VersionVector) -> bool {
        self.compare(other) == Causality::After
    }

    /// Whether the event `dot` is among those `self` has seen.
    #[must_use]
    pub fn covers(&self, dot: Dot) -> bool {
        dot.counter <= self.get(dot.node)
    }

    /// The non-zero entries, by node.
    pub fn iter(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.counters
            .iter()
            .map(|(&node, &counter)| (node, counter))
    }

    /// The number of non-zero entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.counters.len()
    }

    /// Whether this is the empty vector.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
    }
}

/// Checks the canonical form: nodes strictly increasing, none of them node 0, counters
/// between 1 and [`COUNTER_MAX`](super::COUNTER_MAX).
impl TryFrom<Vec<(NodeId, u64)>> for VersionVector {
    type Error = ClockError;

    fn try_from(entries: Vec<(NodeId, u64)>) -> Result<VersionVector, ClockError> {
        let mut counters = BTreeMap::new();
        let mut previous = NodeId::NONE;
        for (node, counter) in entries {
            if node <= previous {
                return Err(ClockError::Malformed(format!(
                    "version vector entry {node} is node 0, repeated or out of order"
                )));
            }
            if counter == 0 {
                return Err(ClockError::Malformed(format!(
                    "version vector stores a zero entry for {node}"
                )));
            }
            counters.insert(node, check_remote_counter(counter)?);
            previous = node;
        }
        Ok(VersionVector { counters })
    }
}

impl From<VersionVector> for Vec<(NodeId, u64)> {
    fn from(vector: VersionVector) -> Vec<(NodeId, u64)> {
        vector.counters.into_iter().collect()
    }
}

/// Walks two vectors' entries in node order, yielding both counters for every node that
/// either has (a merge join of the two sorted maps).
struct PairedEntries<'a> {
    left: Peekable<btree_map::Iter<'a, NodeId, u64>>,
    right: Peekable<btree_map::Iter<'a, NodeId, u64>>,
}

impl<'a> PairedEntries<'a> {
    fn new(left: &'a VersionVector, right: &'a VersionVector) -> PairedEntries<'a> {
        PairedEntries {
            left: left.counters.iter().peekable(),
            right: right.counters.iter().peekable(),
        }
    }
}

impl Iterator for PairedEntries<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let order = match (self.left.peek(), self.right.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((left, _)), Some((right, _))) => left.cmp(right),
        };
        match order {
            Ordering::Less => self.left.next().map(|(_, &counter)| (counter, 0)),
            Ordering::Greater => self.right.next().map(|(_, &counter)| (0, counter)),
            Ordering::Equal => {
                let (_, &left) = self.left.next()?;
                let (_, &right) = self.right.next()?;
                Some((left, right))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::COUNTER_MAX;
    use proptest::prelude::*;

    /// A vector from `(node, counter)` pairs, which may repeat nodes and hold zeros.
    fn vector(entries: &[(u64, u64)]) -> VersionVector {
        let mut counters = BTreeMap::new();
        for &(node, counter) in entries {
            if counter > 0 {
                counters.insert(NodeId(node), counter);
            }
        }
        VersionVector { counters }
    }

    fn merged(a: &VersionVector, b: &VersionVector) -> VersionVector {
        let mut result = a.clone();
        result.merge(b);
        result
    }

    /// The definition, entry by entry over the union of nodes: the reference that
    /// `compare`'s merge join is checked against.
    fn compare_by_definition(a: &VersionVector, b: &VersionVector) -> Causality {
        let nodes: Vec<NodeId> = a
            .counters
            .keys()
            .chain(b.counters.keys())
            .copied()
            .collect();
        let less_or_equal = nodes.iter().all(|&n| a.get(n) <= b.get(n));
        let greater_or_equal = nodes.iter().all(|&n| a.get(n) >= b.get(n));
        match (less_or_equal, greater_or_equal) {
            (true, true) => Causality::Equal,
            (true, false) => Causality::Before,
            (false, true) => Causality::After,
            (false, false) => Causality::Concurrent,
        }
    }

    #[test]
    fn the_seeds_examples_compare_as_the_seeds_say() {
        // Seed 002: A happened before B iff every counter is <= and one is <.
        let a = vector(&[(1, 1), (2, 0), (3, 0)]);
        let b = vector(&[(1, 2), (2, 1)]);
        let c = vector(&[(1, 1), (3, 1)]);
        assert_eq!(a.compare(&b), Causality::Before);
        assert_eq!(b.compare(&a), Causality::After);
        assert_eq!(b.compare(&c), Causality::Concurrent);
        assert_eq!(a.compare(&a.clone()), Causality::Equal);
        assert!(b.descends(&a) && b.dominates(&a));
        assert!(a.descends(&a) && !a.dominates(&a));
        assert!(!b.descends(&c) && !c.descends(&b));
        assert_eq!(merged(&b, &c), vector(&[(1, 2), (2, 1), (3, 1)]));
    }

    #[test]
    fn increment_counts_from_one_and_covers_its_dot() {
        let mut vector = VersionVector::new();
        assert_eq!(vector.increment(NodeId(4)), 1);
        assert_eq!(vector.increment(NodeId(4)), 2);
        assert_eq!(vector.get(NodeId(4)), 2);
        assert_eq!(vector.get(NodeId(5)), 0);
        let dot = |counter| Dot {
            node: NodeId(4),
            counter,
        };
        assert!(vector.covers(dot(2)) && !vector.covers(dot(3)));
        assert_eq!(vector.iter().collect::<Vec<_>>(), vec![(NodeId(4), 2)]);
        assert_eq!(vector.len(), 1);
    }

    #[test]
    fn the_wire_form_is_canonical_and_checked() {
        let valid = vec![(NodeId(1), 3), (NodeId(4), COUNTER_MAX)];
        let vector = VersionVector::try_from(valid.clone()).unwrap();
        assert_eq!(Vec::from(vector), valid);
        let invalid = [
            vec![(NodeId(1), 0)],
            vec![(NodeId::NONE, 1)],
            vec![(NodeId(2), 1), (NodeId(1), 1)],
            vec![(NodeId(2), 1), (NodeId(2), 2)],
            vec![(NodeId(2), COUNTER_MAX + 1)],
        ];
        for entries in invalid {
            assert!(
                VersionVector::try_from(entries.clone()).is_err(),
                "{entries:?}"
            );
        }
    }

    fn vectors() -> impl Strategy<Value = VersionVector> {
        // Few nodes and small counters, so that every causality case is common.
        proptest::collection::vec((1..5u64, 0..4u64), 0..5).prop_map(|e| vector(&e))
    }

    proptest! {
        /// Law: merge is commutative, associative and idempotent.
        #[test]
        fn merge_is_a_semilattice_join(a in vectors(), b in vectors(), c in vectors()) {
            prop_assert_eq!(merged(&a, &b), merged(&b, &a));
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
            prop_assert_eq!(merged(&a, &a), a.clone());
        }

        /// Law: merge is the least upper bound: it descends both inputs, and any vector
        /// descending both descends it.
        #[test]
        fn merge_is_the_least_upper_bound(a in vectors(), b in vectors(), c in vectors()) {
            let join = merged(&a, &b);
            prop_assert!(join.descends(&a) && join.descends(&b));
            prop_assert_eq!(c.descends(&a) && c.descends(&b), c.descends(&join));
        }

        /// Law: compare matches its definition, is antisymmetric, and agrees with merge
        /// (`a ≤ b` exactly when `merge(a, b) == b`) and with descends/dominates.
        #[test]
        fn compare_is_antisymmetric_and_consistent_with_merge(a in vectors(), b in vectors()) {
            let causality = a.compare(&b);
            prop_assert_eq!(causality, compare_by_definition(&a, &b));
            prop_assert_eq!(b.compare(&a), causality.reverse());
            prop_assert_eq!(causality == Causality::Equal, a == b);
            let at_most = matches!(causality, Causality::Before | Causality::Equal);
            prop_assert_eq!(at_most, merged(&a, &b) == b);
            prop_assert_eq!(at_most, b.descends(&a));
            prop_assert_eq!(causality == Causality::Before, b.dominates(&a));
        }

        /// Law: incrementing any entry makes the result strictly After the original, by
        /// exactly that one event.
        #[test]
        fn increment_moves_strictly_after(a in vectors(), node in 1..6u64) {
            let mut next = a.clone();
            let counter = next.increment(NodeId(node));
            prop_assert_eq!(counter, a.get(NodeId(node)) + 1);
            prop_assert_eq!(next.compare(&a), Causality::After);
            prop_assert_eq!(next.len(), a.len() + usize::from(a.get(NodeId(node)) == 0));
        }

        /// Law: the wire form round-trips, and equal meaning is equal value.
        #[test]
        fn wire_form_round_trips(a in vectors()) {
            let wire = Vec::from(a.clone());
            prop_assert!(wire.iter().all(|&(_, counter)| counter > 0));
            prop_assert_eq!(VersionVector::try_from(wire).unwrap(), a);
        }
    }
}
