//! Dotted version vectors with siblings: exactly the concurrent values of a key.
//!
//! DDIA's shopping cart (ch. 5, "Capturing the happens-before relationship", Figure 5-13;
//! seed 000) shows the idea on one replica: the server gives every write of a key a
//! version number and returns it with every read; a client sends the number it last read
//! back with its next write; the server then overwrites every value with that number or
//! below (the client saw them and merged them into its write) and keeps every value above
//! it as a *sibling* (the client did not see them: they are concurrent). Nothing is lost
//! and nothing is kept that the client already merged.
//!
//! With several replicas accepting writes the single number becomes a vector, and the
//! obvious design — a version vector per value, one entry per replica — goes wrong: two
//! clients writing through the same replica both bump that replica's entry, and the
//! replica can no longer tell "this write saw that one" from "this write raced it", so it
//! either loses a write or reports a conflict that is not one. Per-client entries fix that
//! but grow without bound. Preguiça, Baquero, Almeida, Fonte and Gonçalves, "Dotted
//! Version Vectors: Logical Clocks for Optimistic Replication" (arXiv:1011.5808, 2010),
//! and the compact form Riak ships as `dvvset` (Almeida et al., "Scalable and Accurate
//! Causality Tracking for Eventually Consistent Stores", DAIS 2014), separate two things:
//!
//! - a **dot** `(node, counter)` names the one event that created a value: the
//!   `counter`-th write coordinated by `node`;
//! - a **causal context**, a [`VersionVector`], summarises every event the key has seen.
//!
//! [`Siblings`] stores a key's live values, each with its dot, plus one context covering
//! all of them and everything they overwrote. The operations are the cart algorithm with
//! dots in place of version numbers:
//!
//! - [`Siblings::read`] returns the values and the context; the client must send that
//!   context back with its next write of the key.
//! - [`Siblings::write`] discards every sibling whose dot the client's context covers,
//!   folds the client's context into the key's (the new value supersedes what the client
//!   saw, even on a replica that has not received it yet), and adds the value under a
//!   fresh dot of the coordinating replica. Values the client had not seen stay.
//! - [`Siblings::delete`] is a write of a tombstone: a concurrent write survives next to
//!   it, [`Siblings::read`] hides it, and the context still covers the deleted values, so
//!   anti-entropy cannot resurrect them.
//! - [`Siblings::merge`] combines two replicas' states of the key: a sibling survives
//!   unless the other side has seen its dot (its context covers it) and no longer has it
//!   (something overwrote it there). The contexts are merged.
//!
//! Merge is commutative, associative and idempotent, so replicas converge whatever order
//! anti-entropy runs in. A value is dropped only if some write's context covered its dot,
//! i.e. a client saw it before writing; two writes neither of which saw the other always
//! end up as siblings. A dot names one write, so two states that hold the same dot with
//! different values mean a replica reused a dot after losing durable state:
//! [`ClockError::DotConflict`], never a silent pick.
//!
//! **Limits.** A key with many clients and no resolution could grow siblings forever
//! (Riak warns at 25 and refuses at 100). Here a write or merge that would leave more than
//! [`SIBLINGS_MAX`] siblings fails with [`ClockError::TooManySiblings`] and changes nothing.
//! A client can always make progress: reading returns a context that covers every sibling,
//! so writing back one merged value collapses them.
//!
//! **Trust.** The client's context is folded into the key's context, so a forged context
//! could claim writes that never happened and make later writes with those dots vanish in
//! anti-entropy. Contexts are opaque tokens issued by replicas; a deployment that does not
//! trust its clients must authenticate them. Deserialization checks the shape (sorted,
//! covered dots, the sibling limit).

use super::{ClockError, VersionVector};
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// The most siblings a key may hold.
pub const SIBLINGS_MAX: usize = 64;

/// One event: the `counter`-th write coordinated by `node`. Ordered by node, then counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dot {
    pub node: NodeId,
    pub counter: u64,
}

impl fmt::Display for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.counter)
    }
}

/// One concurrent version of a key: the dot that created it and its value, or `None` for
/// a tombstone left by a delete.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Sibling<V> {
    pub dot: Dot,
    pub value: Option<V>,
}

impl<V> Sibling<V> {
    /// Whether this sibling records a delete.
    #[must_use]
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

/// A key's concurrent values and causal context. See the module docs.
///
/// Invariants: siblings sorted by dot without repeats, each dot covered by the context,
/// at most [`SIBLINGS_MAX`] of them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "SiblingsWire<V>",
    into = "SiblingsWire<V>",
    bound(
        serialize = "V: Serialize + Clone",
        deserialize = "V: Deserialize<'de>"
    )
)]
pub struct Siblings<V> {
    context: VersionVector,
    siblings: Vec<Sibling<V>>,
}

impl<V> Default for Siblings<V> {
    fn default() -> Siblings<V> {
        Siblings {
            context: VersionVector::new(),
            siblings: Vec::new(),
        }
    }
}

impl<V> Siblings<V> {
    /// A key that was never written: no siblings, empty context.
    #[must_use]
    pub fn new() -> Siblings<V> {
        Siblings::default()
    }

    /// The live values (tombstones hidden), in dot order, and the context the client must
    /// send back with its next write of this key.
    #[must_use]
    pub fn read(&self) -> (Vec<&V>, VersionVector) {
        (self.values().collect(), self.context.clone())
    }

    /// The live values, in dot order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.siblings
            .iter()
            .filter_map(|sibling| sibling.value.as_ref())
    }

    /// Every sibling, tombstones included, in dot order: what a resolver that wants to
    /// see concurrent deletes reads.
    #[must_use]
    pub fn siblings(&self) -> &[Sibling<V>] {
        &self.siblings
    }

    /// Everything this key has seen.
    #[must_use]
    pub fn context(&self) -> &VersionVector {
        &self.context
    }

    /// Whether the key has no live value (never written, or only tombstones left).
    #[must_use]
    pub fn is_deleted(&self) -> bool {
        self.siblings.iter().all(Sibling::is_tombstone)
    }

    /// A client write of `value` that had read `context`, coordinated by replica
    /// `coordinator`: discards the siblings `context` covers and adds `value` under a
    /// fresh dot, which it returns. Fails, changing nothing, if the key would exceed
    /// [`SIBLINGS_MAX`] siblings.
    pub fn write(
        &mut self,
        context: &VersionVector,
        value: V,
        coordinator: NodeId,
    ) -> Result<Dot, ClockError> {
        self.put(context, Some(value), coordinator)
    }

    /// A client delete that had read `context`: a write of a tombstone. Concurrent
    /// values survive beside it; the deleted ones stay covered by the context.
    pub fn delete(
        &mut self,
        context: &VersionVector,
        coordinator: NodeId,
    ) -> Result<Dot, ClockError> {
        self.put(context, None, coordinator)
    }

    fn put(
        &mut self,
        context: &VersionVector,
        value: Option<V>,
        coordinator: NodeId,
    ) -> Result<Dot, ClockError> {
        let kept = self
            .siblings
            .iter()
            .filter(|sibling| !context.covers(sibling.dot))
            .count();
        if kept + 1 > SIBLINGS_MAX {
            return Err(ClockError::TooManySiblings { count: kept + 1 });
        }
        self.siblings.retain(|sibling| !context.covers(sibling.dot));
        self.context.merge(context);
        // The context covers every dot the coordinator ever issued for this key (its own
        // state and the client's context both descend from them), so this one is fresh.
        let dot = Dot {
            node: coordinator,
            counter: self.context.increment(coordinator),
        };
        let position = self.siblings.partition_point(|sibling| sibling.dot < dot);
        debug_assert!(self.siblings.get(position).is_none_or(|s| s.dot != dot));
        self.siblings.insert(position, Sibling { dot, value });
        debug_assert_eq!(self.check(), Ok(()));
        Ok(dot)
    }

    /// The structural invariants; the wire form is checked with this too.
    fn check(&self) -> Result<(), ClockError> {
        if self.siblings.len() > SIBLINGS_MAX {
            return Err(ClockError::TooManySiblings {
                count: self.siblings.len(),
            });
        }
        for pair in self.siblings.windows(2) {
            if pair[0].dot >= pair[1].dot {
                return Err(ClockError::Malformed(format!(
                    "siblings {} and {} are repeated or out of order",
                    pair[0].dot, pair[1].dot
                )));
            }
        }
        for sibling in &self.siblings {
            if sibling.dot.counter == 0 || !self.context.covers(sibling.dot) {
                return Err(ClockError::Malformed(format!(
                    "sibling {} is not covered by the context",
                    sibling.dot
                )));
            }
        }
        Ok(())
    }
}

/// Where one sibling of a merge's result comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Mine(usize),
    Theirs(usize),
}

impl<V: Clone + PartialEq> Siblings<V> {
    /// Combines another replica's state of the same key into this one (anti-entropy,
    /// read repair, hinted handoff). Fails, changing nothing, on a dot holding two
    /// different values or if the result would exceed [`SIBLINGS_MAX`] siblings.
    pub fn merge(&mut self, other: &Siblings<V>) -> Result<(), ClockError> {
        let plan = self.merge_plan(other)?;
        if plan.len() > SIBLINGS_MAX {
            return Err(ClockError::TooManySiblings { count: plan.len() });
        }
        let mut mine: Vec<Option<Sibling<V>>> = std::mem::take(&mut self.siblings)
            .into_iter()
            .map(Some)
            .collect();
        self.siblings = plan
            .into_iter()
            .map(|source| match source {
                Source::Mine(index) => mine[index].take().expect("each sibling taken once"),
                Source::Theirs(index) => other.siblings[index].clone(),
            })
            .collect();
        self.context.merge(&other.context);
        debug_assert_eq!(self.check(), Ok(()));
        Ok(())
    }

    /// Walks both sibling lists in dot order and decides which siblings survive.
    fn merge_plan(&self, other: &Siblings<V>) -> Result<Vec<Source>, ClockError> {
        let (mine, theirs) = (&self.siblings, &other.siblings);
        let mut plan = Vec::with_capacity(mine.len() + theirs.len());
        let (mut i, mut j) = (0, 0);
        while i < mine.len() || j < theirs.len() {
            let order = match (mine.get(i), theirs.get(j)) {
                (Some(a), Some(b)) => a.dot.cmp(&b.dot),
                (Some(_), None) => Ordering::Less,
                (None, _) => Ordering::Greater,
            };
            match order {
                Ordering::Less => {
                    if !other.context.covers(mine[i].dot) {
                        plan.push(Source::Mine(i));
                    }
                    i += 1;
                }
                Ordering::Greater => {
                    if !self.context.covers(theirs[j].dot) {
                        plan.push(Source::Theirs(j));
                    }
                    j += 1;
                }
                Ordering::Equal => {
                    if mine[i].value != theirs[j].value {
                        return Err(ClockError::DotConflict { dot: mine[i].dot });
                    }
                    plan.push(Source::Mine(i));
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(plan)
    }
}

/// The serialized form, checked on the way in.
#[derive(Serialize, Deserialize)]
struct SiblingsWire<V> {
    context: VersionVector,
    siblings: Vec<Sibling<V>>,
}

impl<V> TryFrom<SiblingsWire<V>> for Siblings<V> {
    type Error = ClockError;

    fn try_from(wire: SiblingsWire<V>) -> Result<Siblings<V>, ClockError> {
        let siblings = Siblings {
            context: wire.context,
            siblings: wire.siblings,
        };
        siblings.check()?;
        Ok(siblings)
    }
}

impl<V> From<Siblings<V>> for SiblingsWire<V> {
    fn from(siblings: Siblings<V>) -> SiblingsWire<V> {
        SiblingsWire {
            context: siblings.context,
            siblings: siblings.siblings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: NodeId = NodeId(1);
    const B: NodeId = NodeId(2);

    fn dot(node: NodeId, counter: u64) -> Dot {
        Dot { node, counter }
    }

    fn dots<V>(siblings: &Siblings<V>) -> Vec<Dot> {
        siblings.siblings().iter().map(|s| s.dot).collect()
    }

    #[test]
    fn a_write_with_the_read_context_replaces_everything() {
        let mut key = Siblings::new();
        key.write(&VersionVector::new(), "x", A).unwrap();
        key.write(&VersionVector::new(), "y", A).unwrap();
        assert_eq!(key.read().0, vec![&"x", &"y"]);
        let (_, context) = key.read();
        assert_eq!(key.write(&context, "xy", B), Ok(dot(B, 1)));
        assert_eq!(key.read().0, vec![&"xy"]);
        assert_eq!(dots(&key), vec![dot(B, 1)]);
        assert_eq!(
            key.context().iter().collect::<Vec<_>>(),
            vec![(A, 2), (B, 1)]
        );
    }

    #[test]
    fn a_delete_leaves_a_tombstone_beside_concurrent_writes() {
        let mut key = Siblings::new();
        key.write(&VersionVector::new(), "x", A).unwrap();
        let (_, seen_x) = key.read();
        key.write(&seen_x, "y", A).unwrap(); // overwrites x
        key.delete(&seen_x, B).unwrap(); // concurrent with y
        assert_eq!(key.read().0, vec![&"y"]);
        assert_eq!(key.siblings().len(), 2);
        assert!(key.siblings()[1].is_tombstone() && !key.is_deleted());
        let (_, everything) = key.read();
        key.delete(&everything, B).unwrap();
        assert!(key.is_deleted());
        assert_eq!(key.read(), (Vec::new(), key.context().clone()));
        assert!(key.context().covers(dot(A, 1)) && key.context().covers(dot(A, 2)));
    }

    #[test]
    fn merge_drops_what_the_other_side_overwrote_and_keeps_what_it_never_saw() {
        let mut on_a = Siblings::new();
        on_a.write(&VersionVector::new(), "x", A).unwrap();
        let (_, seen_x) = on_a.read();
        // The client writes through B, which has never heard of x.
        let mut on_b = Siblings::new();
        on_b.write(&seen_x, "x2", B).unwrap();
        on_a.write(&VersionVector::new(), "y", A).unwrap(); // concurrent with x2
        let mut merged = on_a.clone();
        merged.merge(&on_b).unwrap();
        assert_eq!(merged.read().0, vec![&"y", &"x2"]);
        let mut other_way = on_b.clone();
        other_way.merge(&on_a).unwrap();
        assert_eq!(merged, other_way);
    }

    #[test]
    fn the_sibling_limit_is_an_error_that_changes_nothing() {
        let mut key = Siblings::new();
        for value in 0..SIBLINGS_MAX {
            key.write(&VersionVector::new(), value, A).unwrap();
        }
        let before = key.clone();
        let too_many = Err(ClockError::TooManySiblings {
            count: SIBLINGS_MAX + 1,
        });
        assert_eq!(key.write(&VersionVector::new(), 99, A), too_many);
        assert_eq!(key.delete(&VersionVector::new(), B), too_many);
        assert_eq!(key, before);
        // Covering one sibling makes room for one.
        let mut one = VersionVector::new();
        one.increment(A);
        assert_eq!(key.write(&one, 99, B), Ok(dot(B, 1)));
        // A merge that would exceed the limit fails too.
        let mut elsewhere = Siblings::new();
        elsewhere
            .write(&VersionVector::new(), 7, NodeId(3))
            .unwrap();
        let before = key.clone();
        assert_eq!(
            key.merge(&elsewhere),
            Err(ClockError::TooManySiblings {
                count: SIBLINGS_MAX + 1
            })
        );
        assert_eq!(key, before);
        // Reading and writing back one value always collapses them.
        let (_, context) = key.read();
        key.write(&context, 0, A).unwrap();
        assert_eq!(key.siblings().len(), 1);
    }

    #[test]
    fn two_values_under_one_dot_are_a_conflict_not_a_choice() {
        let mut first = Siblings::new();
        first.write(&VersionVector::new(), "x", A).unwrap();
        let mut reused = Siblings::new();
        reused.write(&VersionVector::new(), "not x", A).unwrap();
        let before = first.clone();
        assert_eq!(
            first.merge(&reused),
            Err(ClockError::DotConflict { dot: dot(A, 1) })
        );
        assert_eq!(first, before);
    }

    #[test]
    fn the_wire_form_is_checked() {
        let mut key = Siblings::new();
        key.write(&VersionVector::new(), "x", A).unwrap();
        key.write(&VersionVector::new(), "y", B).unwrap();
        let wire = SiblingsWire::from(key.clone());
        assert_eq!(Siblings::try_from(wire), Ok(key.clone()));
        let bad_shapes: [fn(&mut SiblingsWire<&str>); 4] = [
            |w| w.siblings.reverse(),
            |w| w.context = VersionVector::new(),
            |w| w.siblings[0].dot.counter = 0,
            |w| {
                let first = w.siblings[0].clone();
                w.siblings.insert(0, first);
            },
        ];
        for corrupt in bad_shapes {
            let mut wire = SiblingsWire::from(key.clone());
            corrupt(&mut wire);
            assert!(matches!(
                Siblings::try_from(wire),
                Err(ClockError::Malformed(_))
            ));
        }
        let mut wire = SiblingsWire::from(key);
        let last = wire.siblings[1].clone();
        wire.siblings = vec![last; SIBLINGS_MAX + 1];
        assert!(matches!(
            Siblings::try_from(wire),
            Err(ClockError::TooManySiblings { .. })
        ));
    }
}
