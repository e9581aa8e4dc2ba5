//! The simulated network between replicas: loss, duplication, delay, reordering and
//! partitions, with a bound on what is in flight.
//!
//! Every peer message passes [`Network::plan`] when it is sent. The plan draws, from the
//! run's network generator, whether the message is lost, whether it is duplicated, and a
//! delay for each copy; independent delays within a wide range are what reorder messages.
//! A message on a cut link is dropped, both when it is sent and when it would be
//! delivered, so a partition also swallows what was already on the wire.
//!
//! Partitions are sets of cut directed links. The shapes are those Jepsen's nemeses use
//! and that break real systems:
//!
//! - symmetric: the nodes split into two sides that cannot talk to each other;
//! - asymmetric: the same split, but only one direction is cut (A's messages to B are
//!   lost, B's reach A), which fools failure detectors that assume symmetry;
//! - bridge: two sides joined by one node that sees both, so the two sides each believe
//!   they have a majority with the bridge;
//! - isolate-one: one node cut off from everyone.
//!
//! At most one partition is active at a time. Healing removes every cut. The bound on
//! messages in flight models finite buffers: beyond it, sends are dropped and counted.
//!
//! Client connections do not go through here: clients talk to nodes over reliable,
//! delayed links (TCP), and what they suffer comes from node crashes and pauses.

use crate::options::FaultOptions;
use rand::Rng;
use rand::seq::SliceRandom;
use replikv_core::{Instant, NodeId};
use std::collections::BTreeSet;
use std::fmt;

/// The shape of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PartitionKind {
    Symmetric,
    Asymmetric,
    Bridge,
    IsolateOne,
}

/// An active partition: the directed links it cuts, and how it came about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    pub kind: PartitionKind,
    /// `(from, to)` pairs whose messages are lost.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// The groups that define the shape (sides, bridge node, isolated node), for traces.
    pub groups: Vec<Vec<NodeId>>,
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.kind)?;
        for group in &self.groups {
            let names: Vec<String> = group.iter().map(ToString::to_string).collect();
            write!(f, " [{}]", names.join(","))?;
        }
        Ok(())
    }
}

impl Partition {
    /// A random partition over `nodes` (at least two), of a random possible shape.
    pub fn random(nodes: &[NodeId], random: &mut impl Rng) -> Option<Partition> {
        if nodes.len() < 2 {
            return None;
        }
        let mut kinds = vec![
            PartitionKind::Symmetric,
            PartitionKind::Asymmetric,
            PartitionKind::IsolateOne,
        ];
        if nodes.len() >= 3 {
            kinds.push(PartitionKind::Bridge);
        }
        let kind = kinds[random.random_range(0..kinds.len())];
        let mut shuffled = nodes.to_vec();
        shuffled.shuffle(random);
        Some(Partition::build(kind, &shuffled, random))
    }

    /// Builds a partition of `kind` from nodes already in random order.
    fn build(kind: PartitionKind, nodes: &[NodeId], random: &mut impl Rng) -> Partition {
        let mut cut = BTreeSet::new();
        let mut cut_between = |from: &[NodeId], to: &[NodeId], both_ways: bool| {
            for &a in from {
                for &b in to {
                    cut.insert((a, b));
                    if both_ways {
                        cut.insert((b, a));
                    }
                }
            }
        };
        let groups = match kind {
            PartitionKind::Symmetric | PartitionKind::Asymmetric => {
                let split = random.random_range(1..nodes.len());
                let (a, b) = nodes.split_at(split);
                cut_between(a, b, kind == PartitionKind::Symmetric);
                vec![sorted(a), sorted(b)]
            }
            PartitionKind::Bridge => {
                let (bridge, rest) = nodes.split_at(1);
                let split = random.random_range(1..rest.len());
                let (a, b) = rest.split_at(split);
                cut_between(a, b, true);
                vec![sorted(a), sorted(bridge), sorted(b)]
            }
            PartitionKind::IsolateOne => {
                let (isolated, rest) = nodes.split_at(1);
                cut_between(isolated, rest, true);
                vec![sorted(isolated), sorted(rest)]
            }
        };
        Partition { kind, cut, groups }
    }

    #[must_use]
    pub fn cuts(&self, from: NodeId, to: NodeId) -> bool {
        self.cut.contains(&(from, to))
    }
}

fn sorted(nodes: &[NodeId]) -> Vec<NodeId> {
    let mut nodes = nodes.to_vec();
    nodes.sort();
    nodes
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Random loss.
    Dropped,
    /// A partition cut the link.
    Partitioned,
    /// Too many messages in flight.
    Overflow,
}

/// What happens to one sent message: up to two delivery times (a duplicate is a second).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Plan {
    Lost(Loss),
    Deliver {
        first: Instant,
        duplicate: Option<Instant>,
    },
}

/// The network's state: the active partition, what is in flight, whether faults are on.
#[derive(Debug, Default)]
pub struct Network {
    partition: Option<Partition>,
    in_flight: usize,
    /// Cleared at the end of the run, when every fault is healed: no loss, no
    /// duplication, no partition (delays remain).
    healed: bool,
}

impl Network {
    /// Decides the fate of a message sent now from `from` to `to`.
    pub fn plan(
        &mut self,
        faults: &FaultOptions,
        random: &mut impl Rng,
        now: Instant,
        from: NodeId,
        to: NodeId,
    ) -> Plan {
        if self.is_cut(from, to) {
            return Plan::Lost(Loss::Partitioned);
        }
        if !self.healed && random.random_bool(faults.message_drop_probability) {
            return Plan::Lost(Loss::Dropped);
        }
        if self.in_flight >= faults.messages_in_flight_max {
            return Plan::Lost(Loss::Overflow);
        }
        self.in_flight += 1;
        let first = now + faults.message_delay.sample(random);
        let wants_duplicate =
            !self.healed && random.random_bool(faults.message_duplicate_probability);
        let duplicate = if wants_duplicate && self.in_flight < faults.messages_in_flight_max {
            self.in_flight += 1;
            Some(now + faults.message_delay.sample(random))
        } else {
            None
        };
        Plan::Deliver { first, duplicate }
    }

    /// A planned delivery is due: whether the link still lets it through.
    pub fn arrive(&mut self, from: NodeId, to: NodeId) -> bool {
        assert!(self.in_flight > 0, "a delivery that was never planned");
        self.in_flight -= 1;
        !self.is_cut(from, to)
    }

    /// Starts `partition`; the previous one must have been healed.
    pub fn partition(&mut self, partition: Partition) {
        assert!(self.partition.is_none(), "one partition at a time");
        self.partition = Some(partition);
    }

    /// Removes the active partition, if any.
    pub fn heal_partition(&mut self) -> Option<Partition> {
        self.partition.take()
    }

    /// Ends every network fault for the rest of the run.
    pub fn heal_all(&mut self) {
        self.partition = None;
        self.healed = true;
    }

    #[must_use]
    pub fn is_partitioned(&self) -> bool {
        self.partition.is_some()
    }

    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.partition
            .as_ref()
            .is_some_and(|partition| partition.cuts(from, to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::FaultPreset;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn ids(count: u64) -> Vec<NodeId> {
        (1..=count).map(NodeId).collect()
    }

    fn reachable(partition: &Partition, from: NodeId, to: NodeId) -> bool {
        !partition.cuts(from, to)
    }

    #[test]
    fn every_shape_cuts_what_it_says() {
        let nodes = ids(5);
        let mut random = ChaCha8Rng::seed_from_u64(9);
        let mut seen = BTreeSet::new();
        for _ in 0..500 {
            let partition = Partition::random(&nodes, &mut random).unwrap();
            seen.insert(partition.kind);
            let groups = &partition.groups;
            let members: usize = groups.iter().map(Vec::len).sum();
            assert_eq!(members, nodes.len(), "groups cover every node once");
            match partition.kind {
                PartitionKind::Symmetric | PartitionKind::Asymmetric => {
                    let (a, b) = (&groups[0], &groups[1]);
                    for &x in a {
                        for &y in b {
                            assert!(!reachable(&partition, x, y));
                            let symmetric = partition.kind == PartitionKind::Symmetric;
                            assert_eq!(reachable(&partition, y, x), !symmetric);
                        }
                    }
                    assert_eq!(partition.cut.len() % (a.len() * b.len()), 0);
                }
                PartitionKind::Bridge => {
                    let (a, bridge, b) = (&groups[0], groups[1][0], &groups[2]);
                    for &x in a.iter().chain(b) {
                        assert!(reachable(&partition, x, bridge));
                        assert!(reachable(&partition, bridge, x));
                    }
                    for &x in a {
                        for &y in b {
                            assert!(!reachable(&partition, x, y));
                            assert!(!reachable(&partition, y, x));
                        }
                    }
                }
                PartitionKind::IsolateOne => {
                    let isolated = groups[0][0];
                    assert_eq!(partition.cut.len(), 2 * (nodes.len() - 1));
                    for &other in &groups[1] {
                        assert!(!reachable(&partition, isolated, other));
                        assert!(!reachable(&partition, other, isolated));
                    }
                }
            }
        }
        assert_eq!(seen.len(), 4, "every shape occurs");
    }

    #[test]
    fn small_clusters_get_only_possible_shapes() {
        let mut random = ChaCha8Rng::seed_from_u64(1);
        assert!(Partition::random(&ids(1), &mut random).is_none());
        for _ in 0..100 {
            let partition = Partition::random(&ids(2), &mut random).unwrap();
            assert_ne!(partition.kind, PartitionKind::Bridge);
            assert!(!partition.cut.is_empty());
        }
    }

    #[test]
    fn plans_follow_the_fault_rates_and_the_bound() {
        let mut faults = FaultPreset::Network.options();
        faults.messages_in_flight_max = 50;
        let mut network = Network::default();
        let mut random = ChaCha8Rng::seed_from_u64(4);
        let (mut lost, mut duplicated, mut overflowed) = (0, 0, 0);
        let now = Instant::from_millis(1);
        for _ in 0..1_000 {
            match network.plan(&faults, &mut random, now, NodeId(1), NodeId(2)) {
                Plan::Lost(Loss::Dropped) => lost += 1,
                Plan::Lost(Loss::Overflow) => overflowed += 1,
                Plan::Lost(Loss::Partitioned) => unreachable!("no partition"),
                Plan::Deliver { first, duplicate } => {
                    assert!(first > now && first <= now + faults.message_delay.max);
                    duplicated += usize::from(duplicate.is_some());
                    // Deliver immediately so the bound rarely bites.
                    for _ in 0..1 + usize::from(duplicate.is_some()) {
                        assert!(network.arrive(NodeId(1), NodeId(2)));
                    }
                }
            }
        }
        assert!((20..=90).contains(&lost), "about 5% lost: {lost}");
        assert!(
            (10..=60).contains(&duplicated),
            "about 3% duplicated: {duplicated}"
        );
        assert_eq!(overflowed, 0);
        for _ in 0..100 {
            let _ = network.plan(&faults, &mut random, now, NodeId(1), NodeId(2));
        }
        assert!(network.in_flight() <= 50);
    }

    #[test]
    fn partitions_drop_at_send_and_on_arrival_until_healed() {
        let faults = FaultPreset::None.options();
        let mut network = Network::default();
        let mut random = ChaCha8Rng::seed_from_u64(5);
        let now = Instant::ZERO;
        let plan = network.plan(&faults, &mut random, now, NodeId(1), NodeId(2));
        assert!(matches!(
            plan,
            Plan::Deliver {
                duplicate: None,
                ..
            }
        ));
        let mut cut = BTreeSet::new();
        cut.insert((NodeId(1), NodeId(2)));
        network.partition(Partition {
            kind: PartitionKind::Asymmetric,
            cut,
            groups: vec![vec![NodeId(1)], vec![NodeId(2)]],
        });
        assert!(!network.arrive(NodeId(1), NodeId(2)), "lost on the wire");
        assert_eq!(
            network.plan(&faults, &mut random, now, NodeId(1), NodeId(2)),
            Plan::Lost(Loss::Partitioned)
        );
        assert!(matches!(
            network.plan(&faults, &mut random, now, NodeId(2), NodeId(1)),
            Plan::Deliver { .. }
        ));
        assert!(network.heal_partition().is_some());
        assert!(network.arrive(NodeId(2), NodeId(1)));
        assert_eq!(network.in_flight(), 0);
    }
}
