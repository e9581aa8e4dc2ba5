//! The cluster configuration a store remembers: who votes and who only listens.
//!
//! A replication group changes its members through its own log (the replication crate
//! explains how and why). The state machine applies those entries like any other, and
//! the store keeps the configuration in force at its applied position, in the same redb
//! transaction that records that position: the state and the configuration it was built
//! under never disagree, after any crash. A snapshot carries the configuration with the
//! data, so a node that is brought up to date by a snapshot (a compacted leader can send
//! nothing else) learns who its peers are from it, not from a log prefix it never sees.
//!
//! The store does not interpret the configuration; it only checks that a record is well
//! formed, because the bytes come from disk or from a peer's snapshot: ids are non-zero,
//! sorted and unique within each list, nobody is both a voter and a learner, there is at
//! least one voter, and the whole group has at most [`MEMBERS_MAX`] nodes.
//!
//! ```text
//! record = voters: u32 LE count | u64 LE ids | learners: u32 LE count | u64 LE ids
//! ```

use super::encoding::corruption;
use replikv_core::NodeId;
use replikv_core::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Most nodes (voters and learners together) in one group's configuration.
pub const MEMBERS_MAX: usize = 64;

/// A group's configuration: its voters and its learners, each sorted by id, disjoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// The nodes whose votes and acknowledgements count.
    pub voters: Vec<NodeId>,
    /// The nodes that receive the log but never vote nor count.
    pub learners: Vec<NodeId>,
}

impl Membership {
    /// A configuration of `voters` and `learners`, sorted; refused with
    /// [`Error::InvalidInput`] if it breaks a rule of the module documentation.
    pub fn new(mut voters: Vec<NodeId>, mut learners: Vec<NodeId>) -> Result<Membership> {
        voters.sort_unstable();
        learners.sort_unstable();
        let membership = Membership { voters, learners };
        membership.check().map_err(Error::InvalidInput)?;
        Ok(membership)
    }

    /// Whether `node` is a voter.
    #[must_use]
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.voters.binary_search(&node).is_ok()
    }

    /// Whether `node` is a learner.
    #[must_use]
    pub fn is_learner(&self, node: NodeId) -> bool {
        self.learners.binary_search(&node).is_ok()
    }

    /// Whether `node` is a voter or a learner.
    #[must_use]
    pub fn contains(&self, node: NodeId) -> bool {
        self.is_voter(node) || self.is_learner(node)
    }

    /// Every member, voters then learners.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(&self.learners).copied()
    }

    /// The rules of the module documentation; the first one broken, in words.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.voters.is_empty() {
            return Err("a configuration needs at least one voter".into());
        }
        if self.voters.len() + self.learners.len() > MEMBERS_MAX {
            return Err(format!("more than {MEMBERS_MAX} members"));
        }
        for list in [&self.voters, &self.learners] {
            if list.contains(&NodeId::NONE) {
                return Err("node id 0 is reserved".into());
            }
            if list.windows(2).any(|pair| pair[0] >= pair[1]) {
                return Err("ids must be sorted and unique".into());
            }
        }
        if let Some(both) = self.learners.iter().find(|id| self.is_voter(**id)) {
            return Err(format!("{both} is both a voter and a learner"));
        }
        Ok(())
    }

    /// The record's bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + 8 * (self.voters.len() + self.learners.len()));
        for list in [&self.voters, &self.learners] {
            let count = u32::try_from(list.len()).expect("at most MEMBERS_MAX");
            bytes.extend_from_slice(&count.to_le_bytes());
            for id in list {
                bytes.extend_from_slice(&id.0.to_le_bytes());
            }
        }
        bytes
    }

    /// Decodes a record, checking every rule; [`Error::Corruption`] if it breaks one.
    pub fn decode(bytes: &[u8]) -> Result<Membership> {
        let mut rest = bytes;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let (count, tail) = rest
                .split_first_chunk::<4>()
                .ok_or_else(|| corruption("membership record: truncated count".into()))?;
            let count = u32::from_le_bytes(*count) as usize;
            if count > MEMBERS_MAX {
                return Err(corruption(format!("membership record: {count} ids")));
            }
            rest = tail;
            for _ in 0..count {
                let (id, tail) = rest
                    .split_first_chunk::<8>()
                    .ok_or_else(|| corruption("membership record: truncated id".into()))?;
                list.push(NodeId(u64::from_le_bytes(*id)));
                rest = tail;
            }
        }
        if !rest.is_empty() {
            return Err(corruption(format!(
                "membership record: {} trailing bytes",
                rest.len()
            )));
        }
        let [voters, learners] = lists;
        let membership = Membership { voters, learners };
        membership
            .check()
            .map_err(|text| corruption(format!("membership record: {text}")))?;
        Ok(membership)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert!(Membership::new(ids(&[]), ids(&[1])).is_err());
        assert!(Membership::new(ids(&[1, 1]), ids(&[])).is_err());
        assert!(Membership::new(ids(&[1, 2]), ids(&[2])).is_err());
        assert!(Membership::new(ids(&[0, 1]), ids(&[])).is_err());
        let too_many: Vec<u64> = (1..=MEMBERS_MAX as u64 + 1).collect();
        assert!(Membership::new(ids(&too_many), ids(&[])).is_err());
        let fine = Membership::new(ids(&[3, 1]), ids(&[2])).unwrap();
        assert_eq!(fine.voters, ids(&[1, 3]));
        assert!(fine.is_voter(NodeId(3)) && fine.is_learner(NodeId(2)));
        assert!(!fine.contains(NodeId(4)));
    }

    #[test]
    fn damaged_records_are_corruption() {
        let record = Membership::new(ids(&[1, 2]), ids(&[3])).unwrap().encode();
        for cut in 0..record.len() {
            assert!(Membership::decode(&record[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = record.clone();
        trailing.push(0);
        assert!(Membership::decode(&trailing).is_err());
        let unsorted = Membership {
            voters: ids(&[2, 1]),
            learners: Vec::new(),
        };
        assert!(matches!(
            Membership::decode(&unsorted.encode()),
            Err(Error::Corruption(_))
        ));
    }

    proptest! {
        #[test]
        fn records_round_trip(voters in proptest::collection::btree_set(1u64..100, 1..10),
                              learners in proptest::collection::btree_set(100u64..200, 0..10)) {
            let voters: Vec<u64> = voters.into_iter().collect();
            let learners: Vec<u64> = learners.into_iter().collect();
            let membership = Membership::new(ids(&voters), ids(&learners)).unwrap();
            prop_assert_eq!(Membership::decode(&membership.encode()).unwrap(), membership);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Membership::decode(&bytes);
        }
    }
}
