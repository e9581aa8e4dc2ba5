//! The laws of dotted version vectors with siblings, checked against a model.
//!
//! Proptest drives random histories of one key on three replicas: writes and deletes at
//! random coordinators with random stale contexts (any context some earlier read
//! returned, from any replica, or none), reads, and anti-entropy merges in random
//! directions. Alongside, the test keeps the *history* each replica has heard of (the dots
//! of every write it coordinated or received by merge) and the context each write was
//! made with. The model of a correct implementation is then exact:
//!
//! - a replica's siblings are the writes of its history that no write of its history
//!   overwrote, where `w'` overwrites `w` when the context `w'` was made with covers `w`'s
//!   dot (so no acknowledged write is ever lost unless a later write's context covered it,
//!   and concurrent writes always become siblings);
//! - its context is the merge of every write's context and dot in its history;
//! - reads show the non-tombstone siblings.
//!
//! Every state that ever existed is kept, and merge is checked commutative, associative
//! and idempotent over random triples of them (older states play lagging replicas).

use proptest::prelude::*;
use replikv_core::NodeId;
use replikv_core::clock::{Dot, Siblings, VersionVector};
use std::collections::{BTreeMap, BTreeSet};

const REPLICAS: usize = 3;

#[derive(Clone, Debug)]
enum Operation {
    /// A client write (`delete`: a tombstone) at `replica` with the `context`-th context
    /// ever read (modulo how many there are).
    Write {
        replica: usize,
        context: usize,
        delete: bool,
    },
    /// A client read at `replica`; its context becomes available to later writes.
    Read { replica: usize },
    /// Anti-entropy: `to` merges `from`'s state.
    Merge { from: usize, to: usize },
}

fn operations() -> impl Strategy<Value = Vec<Operation>> {
    let replica = 0..REPLICAS;
    let operation = prop_oneof![
        3 => (replica.clone(), any::<usize>(), prop::bool::weighted(0.2)).prop_map(
            |(replica, context, delete)| Operation::Write { replica, context, delete }
        ),
        2 => replica.clone().prop_map(|replica| Operation::Read { replica }),
        2 => (replica.clone(), replica).prop_map(|(from, to)| Operation::Merge { from, to }),
    ];
    proptest::collection::vec(operation, 1..50)
}

/// A write as the model remembers it.
struct Written {
    context: VersionVector,
    value: Option<u32>,
}

/// The replicas, the model, and every state seen.
struct Run {
    replicas: Vec<Siblings<u32>>,
    histories: Vec<BTreeSet<Dot>>,
    writes: BTreeMap<Dot, Written>,
    contexts_read: Vec<VersionVector>,
    states_seen: Vec<Siblings<u32>>,
}

impl Run {
    fn new() -> Run {
        Run {
            replicas: vec![Siblings::new(); REPLICAS],
            histories: vec![BTreeSet::new(); REPLICAS],
            writes: BTreeMap::new(),
            contexts_read: vec![VersionVector::new()],
            states_seen: vec![Siblings::new()],
        }
    }

    fn apply(&mut self, operation: &Operation) -> usize {
        match *operation {
            Operation::Write {
                replica,
                context,
                delete,
            } => {
                let context = self.contexts_read[context % self.contexts_read.len()].clone();
                let coordinator = NodeId(replica as u64 + 1);
                let value = u32::try_from(self.writes.len()).unwrap();
                let dot = if delete {
                    self.replicas[replica].delete(&context, coordinator)
                } else {
                    self.replicas[replica].write(&context, value, coordinator)
                }
                .unwrap();
                let value = (!delete).then_some(value);
                let fresh = self.writes.insert(dot, Written { context, value });
                assert!(fresh.is_none(), "dot {dot} issued twice");
                self.histories[replica].insert(dot);
                replica
            }
            Operation::Read { replica } => {
                let (_, context) = self.replicas[replica].read();
                self.contexts_read.push(context);
                replica
            }
            Operation::Merge { from, to } => {
                let other = self.replicas[from].clone();
                self.replicas[to].merge(&other).unwrap();
                let heard = self.histories[from].clone();
                self.histories[to].extend(heard);
                to
            }
        }
    }

    /// The model's siblings for a history: writes that no write of the history overwrote.
    fn expected_siblings(&self, history: &BTreeSet<Dot>) -> Vec<(Dot, Option<u32>)> {
        history
            .iter()
            .filter(|&&dot| {
                !history
                    .iter()
                    .any(|later| self.writes[later].context.covers(dot))
            })
            .map(|&dot| (dot, self.writes[&dot].value))
            .collect()
    }

    fn expected_context(&self, history: &BTreeSet<Dot>) -> VersionVector {
        let mut context = VersionVector::new();
        for dot in history {
            context.merge(&self.writes[dot].context);
            // Dots of one node are issued in increasing order: raise the entry to this one.
            while context.get(dot.node) < dot.counter {
                context.increment(dot.node);
            }
        }
        context
    }

    fn check(&self, replica: usize) -> Result<(), TestCaseError> {
        let state = &self.replicas[replica];
        let history = &self.histories[replica];
        let expected = self.expected_siblings(history);
        let actual: Vec<(Dot, Option<u32>)> = state
            .siblings()
            .iter()
            .map(|sibling| (sibling.dot, sibling.value))
            .collect();
        prop_assert_eq!(&actual, &expected, "siblings of replica {}", replica);
        prop_assert_eq!(state.context(), &self.expected_context(history));
        let (values, context) = state.read();
        let live: Vec<u32> = expected.iter().filter_map(|&(_, value)| value).collect();
        prop_assert_eq!(values.into_iter().copied().collect::<Vec<_>>(), live);
        prop_assert_eq!(&context, state.context());
        prop_assert_eq!(
            state.is_deleted(),
            expected.iter().all(|(_, v)| v.is_none())
        );
        Ok(())
    }
}

fn merged(a: &Siblings<u32>, b: &Siblings<u32>) -> Siblings<u32> {
    let mut result = a.clone();
    result.merge(b).unwrap();
    result
}

proptest! {
    /// Laws: every replica state matches the model after every operation (no lost
    /// write, no false conflict, concurrent writes become siblings, reads hide
    /// tombstones); merging every replica matches the model of the union of histories.
    #[test]
    fn replicas_hold_exactly_the_writes_nobody_overwrote(operations in operations()) {
        let mut run = Run::new();
        for operation in &operations {
            let touched = run.apply(operation);
            run.check(touched)?;
        }
        let mut everything = Siblings::new();
        let mut union = BTreeSet::new();
        for (state, history) in run.replicas.iter().zip(&run.histories) {
            everything.merge(state).unwrap();
            union.extend(history.iter().copied());
        }
        let survivors: Vec<(Dot, Option<u32>)> =
            everything.siblings().iter().map(|s| (s.dot, s.value)).collect();
        prop_assert_eq!(survivors, run.expected_siblings(&union));
        prop_assert_eq!(union.len(), run.writes.len());
    }

    /// Law: merge is commutative, associative and idempotent over any states of the key
    /// that ever existed.
    #[test]
    fn merge_is_a_semilattice_join(
        operations in operations(),
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let mut run = Run::new();
        for operation in &operations {
            let touched = run.apply(operation);
            let state = run.replicas[touched].clone();
            run.states_seen.push(state);
        }
        let pick = |i: usize| &run.states_seen[picks[i].index(run.states_seen.len())];
        let (a, b, c) = (pick(0), pick(1), pick(2));
        prop_assert_eq!(merged(a, b), merged(b, a));
        prop_assert_eq!(merged(&merged(a, b), c), merged(a, &merged(b, c)));
        prop_assert_eq!(&merged(a, a), a);
        prop_assert_eq!(&merged(&merged(a, b), b), &merged(a, b));
    }

    /// Law: clients that write with the same context, at any replicas, all end up as
    /// siblings, alongside whatever that context had not seen.
    #[test]
    fn concurrent_writes_always_become_siblings(
        before in operations(),
        coordinators in proptest::collection::vec(0..REPLICAS, 2..6),
        context in any::<usize>(),
    ) {
        let mut run = Run::new();
        for operation in &before {
            run.apply(operation);
        }
        let first_racer = run.writes.len();
        for &replica in &coordinators {
            run.apply(&Operation::Write { replica, context, delete: false });
        }
        let mut everything = Siblings::new();
        for state in &run.replicas {
            everything.merge(state).unwrap();
        }
        let values: BTreeSet<u32> = everything.values().copied().collect();
        for racer in first_racer..run.writes.len() {
            prop_assert!(values.contains(&u32::try_from(racer).unwrap()), "write {} lost", racer);
        }
    }
}
