//! Invariants that span the nodes of one cluster, checked by the simulator after every
//! step: election safety (at most one leader per term) and agreement of committed log
//! prefixes (log matching restricted to what is committed, compared over a bounded window
//! so that the check stays cheap on long runs).

use super::node::RaftNode;
use replikv_core::{LogIndex, Term};
use std::collections::BTreeMap;

/// How many committed indexes below the smaller commit index of two nodes are compared.
const COMPARED_INDEXES_MAX: u64 = 16;

pub(super) fn check_cluster(replicas: &[&RaftNode]) -> Result<(), String> {
    let mut leaders: BTreeMap<Term, replikv_core::NodeId> = BTreeMap::new();
    for replica in replicas.iter().filter(|replica| replica.is_leader()) {
        if let Some(other) = leaders.insert(replica.term(), replica.id) {
            return Err(format!(
                "two leaders in {}: {other} and {}",
                replica.term(),
                replica.id
            ));
        }
    }
    for (position, first) in replicas.iter().enumerate() {
        for second in &replicas[position + 1..] {
            check_committed_prefixes(first, second)?;
        }
    }
    Ok(())
}

fn check_committed_prefixes(first: &RaftNode, second: &RaftNode) -> Result<(), String> {
    let commit = first.commit_index().min(second.commit_index());
    let floor = LogIndex(commit.0.saturating_sub(COMPARED_INDEXES_MAX));
    let mut index = commit;
    while index > floor {
        let (a, b) = (first.log().term_at(index), second.log().term_at(index));
        if a != b {
            return Err(format!(
                "committed entry {index} differs: term {a:?} on {} and {b:?} on {}",
                first.id, second.id
            ));
        }
        index = index.previous().expect("above floor");
    }
    Ok(())
}
