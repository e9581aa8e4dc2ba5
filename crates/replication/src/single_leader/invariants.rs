//! Raft's cross-node invariants, checked over a whole run by [`RaftObserver`].
//!
//! The simulator shows the observer the running nodes after every event. Checking only
//! what is visible at one instant misses the interesting bugs: leader A of term T
//! crashes, a voter that forgot its vote in a crash elects B in the same term, and no
//! instant ever shows two leaders. So the observer remembers, for the whole run:
//!
//! - **election safety**: the leader of every term it has seen; a second node leading a
//!   term, at any time, is a violation;
//! - **votes**: each node's last (term, vote). A node's term never goes back, and within
//!   one term its vote, once cast, never changes, not even to "no vote": the hard state
//!   is durable before a node acts on it, so a restart must bring the vote back. A vote
//!   that changes is the forgotten-vote bug that lets two leaders share a term;
//! - **committed log**: index → (term, payload hash) of every entry any node has
//!   reported committed. Each node has a cursor, the last of its committed entries
//!   already compared; each step reads only the node's newly committed range (no window,
//!   nothing skipped) and compares it with, or appends it to, the record. A node that
//!   disappears (crash) or whose commit index falls (restart) is compared again from the
//!   first entry its log holds, so a restart that brings back a different committed
//!   prefix is caught too.
//!
//! Memory is bounded by the run: one record per committed index and per term with a
//! leader, asserted against generous caps. With compaction and snapshots a node's cursor
//! never lies below its log's first index: entries a node compacted or replaced by a
//! snapshot were compared when they were committed (compaction keeps every entry
//! committed in a flush until a later event, see `snapshot.rs`). The record could later
//! keep only the indexes some node still holds (or a hash chain below them).
//!
//! **Membership change** needs no change here, and that is the point of it: election
//! safety is per term whatever configuration each node believes in (single-server
//! changes make any two majorities of consecutive configurations overlap, which is what
//! keeps two leaders out of one term; `membership.rs`), and configuration entries are
//! log entries, so the committed-log check compares them like any other: two nodes that
//! committed different configurations at one index are caught as a differing committed
//! entry. A node added later is simply a node first seen later (its cursor starts at its
//! log's first entry); a removed node keeps being checked as long as it runs. What is
//! particular to membership is checked locally by every node (`assert_invariants`: a
//! leader outside its configuration must have its removal pending).
//!
//! The observer sees nodes through [`ObservedNode`], which [`RaftNode`] implements and
//! the tests forge, so it is tested on sequences of states no correct node would produce.

use super::node::RaftNode;
use replikv_core::replica::ClusterObserver;
use replikv_core::{LogIndex, NodeId, Term};
use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// Most terms with a leader the observer records over one run.
const TERMS_RECORDED_MAX: usize = 1 << 20;

/// Most committed entries the observer records over one run.
const COMMITTED_ENTRIES_MAX: usize = 1 << 22;

/// Most entries read from one node's log at a time.
const READ_BATCH_ENTRIES_MAX: usize = 256;

/// Most payload bytes read from one node's log at a time (the first entry always is).
const READ_BATCH_SIZE_MAX_BYTES: usize = 1 << 20;

/// What the observer sees of one node.
pub(super) trait ObservedNode {
    fn node_id(&self) -> NodeId;
    fn current_term(&self) -> Term;
    fn vote(&self) -> Option<NodeId>;
    fn leads(&self) -> bool;
    fn committed(&self) -> LogIndex;
    fn first_held(&self) -> LogIndex;
    /// (term, payload hash) of the entries from `from` on, at most `entries_max`.
    fn entries(&self, from: LogIndex, entries_max: usize) -> Result<Vec<(Term, u64)>, String>;
}

impl ObservedNode for RaftNode {
    fn node_id(&self) -> NodeId {
        self.id
    }
    fn current_term(&self) -> Term {
        self.term()
    }
    fn vote(&self) -> Option<NodeId> {
        self.voted_for
    }
    fn leads(&self) -> bool {
        self.is_leader()
    }
    fn committed(&self) -> LogIndex {
        self.commit_index()
    }
    fn first_held(&self) -> LogIndex {
        self.log().first_index()
    }
    fn entries(&self, from: LogIndex, entries_max: usize) -> Result<Vec<(Term, u64)>, String> {
        let entries = self
            .log()
            .read_range(from, entries_max, READ_BATCH_SIZE_MAX_BYTES)
            .map_err(|error| format!("{} cannot read its log at {from}: {error}", self.id))?;
        Ok(entries
            .iter()
            .map(|entry| (entry.position.term, payload_hash(&entry.payload)))
            .collect())
    }
}

/// A deterministic hash of a payload (SipHash with fixed keys).
pub(super) fn payload_hash(payload: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}

/// Checks election safety, vote stability and committed-log agreement over a whole run.
/// See the module documentation.
#[derive(Debug, Default)]
pub struct RaftObserver {
    /// The node seen leading each term.
    leaders: BTreeMap<Term, NodeId>,
    /// Each node's last seen (term, vote), kept across its crashes.
    votes: BTreeMap<NodeId, (Term, Option<NodeId>)>,
    /// (term, payload hash) of each committed index seen. A map, not a list: a node can
    /// compact entries before the observer reads them (the script harness observes after
    /// each command, not each event), leaving indexes nobody showed it.
    committed: BTreeMap<LogIndex, (Term, u64)>,
    /// Per running node, the last of its committed entries already compared.
    cursors: BTreeMap<NodeId, LogIndex>,
}

impl ClusterObserver<RaftNode> for RaftObserver {
    fn observe(&mut self, replicas: &[&RaftNode]) -> Result<(), String> {
        self.observe_nodes(replicas)
    }
}

impl RaftObserver {
    pub(super) fn observe_nodes<N: ObservedNode>(&mut self, nodes: &[&N]) -> Result<(), String> {
        self.cursors
            .retain(|id, _| nodes.iter().any(|node| node.node_id() == *id));
        for node in nodes {
            self.check_vote(*node)?;
            self.check_leader(*node)?;
            self.check_committed(*node)?;
        }
        Ok(())
    }

    fn check_vote<N: ObservedNode>(&mut self, node: &N) -> Result<(), String> {
        let (id, term, vote) = (node.node_id(), node.current_term(), node.vote());
        if let Some(&(last_term, last_vote)) = self.votes.get(&id) {
            if term < last_term {
                return Err(format!(
                    "the term of {id} went back from {last_term} to {term}"
                ));
            }
            if term == last_term && last_vote.is_some() && vote != last_vote {
                return Err(format!(
                    "the vote of {id} in {term} changed from {last_vote:?} to {vote:?} \
                     (a forgotten vote lets two leaders share a term)"
                ));
            }
        }
        self.votes.insert(id, (term, vote));
        Ok(())
    }

    fn check_leader<N: ObservedNode>(&mut self, node: &N) -> Result<(), String> {
        if !node.leads() {
            return Ok(());
        }
        let (id, term) = (node.node_id(), node.current_term());
        let leader = *self.leaders.entry(term).or_insert(id);
        if leader != id {
            return Err(format!(
                "two leaders in {term} over the run: {leader} and {id}"
            ));
        }
        assert!(
            self.leaders.len() <= TERMS_RECORDED_MAX,
            "more than {TERMS_RECORDED_MAX} terms with a leader in one run"
        );
        Ok(())
    }

    /// Compares the node's newly committed entries with the record (or extends it).
    fn check_committed<N: ObservedNode>(&mut self, node: &N) -> Result<(), String> {
        let (id, commit) = (node.node_id(), node.committed());
        let restart_cursor = LogIndex(node.first_held().0.saturating_sub(1));
        // A node that installed a snapshot no longer holds the entries below it: its
        // cursor skips to its log's first entry (those entries were compared when it,
        // or the leader that sent the snapshot, committed them).
        let mut cursor = match self.cursors.get(&id) {
            Some(&cursor) if cursor <= commit => cursor.max(restart_cursor),
            _ => restart_cursor,
        };
        while cursor < commit {
            let from = cursor.next();
            let wanted = usize::try_from(commit.0 - cursor.0).unwrap_or(usize::MAX);
            let entries = node.entries(from, wanted.min(READ_BATCH_ENTRIES_MAX))?;
            if entries.is_empty() {
                return Err(format!(
                    "{id} has committed {commit} but holds no entry {from}"
                ));
            }
            for (term, hash) in entries.into_iter().take(wanted) {
                cursor = cursor.next();
                self.compare_or_record(id, cursor, term, hash)?;
            }
        }
        self.cursors.insert(id, cursor);
        Ok(())
    }

    fn compare_or_record(
        &mut self,
        id: NodeId,
        index: LogIndex,
        term: Term,
        hash: u64,
    ) -> Result<(), String> {
        match self.committed.get(&index) {
            Some(&(recorded_term, recorded_hash)) => {
                if (recorded_term, recorded_hash) != (term, hash) {
                    return Err(format!(
                        "committed entry {index} differs: {id} holds {term} (payload hash \
                         {hash:#x}), {recorded_term} (payload hash {recorded_hash:#x}) was \
                         committed before"
                    ));
                }
            }
            None => {
                assert!(
                    self.committed.len() < COMMITTED_ENTRIES_MAX,
                    "more than {COMMITTED_ENTRIES_MAX} committed entries in one run"
                );
                self.committed.insert(index, (term, hash));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forged node state: what a node would show the observer at one instant.
    #[derive(Clone, Debug)]
    struct Forged {
        id: u64,
        term: u64,
        vote: Option<u64>,
        leads: bool,
        /// (term, payload) of the log from index 1; everything up to `commit` is committed.
        log: Vec<(u64, &'static str)>,
        commit: u64,
    }

    impl ObservedNode for Forged {
        fn node_id(&self) -> NodeId {
            NodeId(self.id)
        }
        fn current_term(&self) -> Term {
            Term(self.term)
        }
        fn vote(&self) -> Option<NodeId> {
            self.vote.map(NodeId)
        }
        fn leads(&self) -> bool {
            self.leads
        }
        fn committed(&self) -> LogIndex {
            LogIndex(self.commit)
        }
        fn first_held(&self) -> LogIndex {
            LogIndex(1)
        }
        fn entries(&self, from: LogIndex, max: usize) -> Result<Vec<(Term, u64)>, String> {
            let start = usize::try_from(from.0 - 1).unwrap();
            let end = self.log.len().min(start + max);
            Ok(self.log[start.min(end)..end]
                .iter()
                .map(|(term, payload)| (Term(*term), payload_hash(payload.as_bytes())))
                .collect())
        }
    }

    fn node(id: u64, term: u64, vote: Option<u64>, leads: bool) -> Forged {
        Forged {
            id,
            term,
            vote,
            leads,
            log: Vec::new(),
            commit: 0,
        }
    }

    fn committed(mut forged: Forged, log: &[(u64, &'static str)], commit: u64) -> Forged {
        forged.log = log.to_vec();
        forged.commit = commit;
        forged
    }

    /// Feeds `steps` (each the running nodes at one instant) to a fresh observer and
    /// returns the first violation with the step it was found at.
    fn observe(steps: &[Vec<Forged>]) -> Result<(), (usize, String)> {
        let mut observer = RaftObserver::default();
        for (step, nodes) in steps.iter().enumerate() {
            let nodes: Vec<&Forged> = nodes.iter().collect();
            observer
                .observe_nodes(&nodes)
                .map_err(|violation| (step, violation))?;
        }
        Ok(())
    }

    fn assert_caught(steps: &[Vec<Forged>], at_step: usize, text: &str) {
        let (step, violation) = observe(steps).expect_err("a violation");
        assert_eq!(step, at_step, "{violation}");
        assert!(violation.contains(text), "{violation}");
    }

    const LOG: [(u64, &str); 3] = [(1, "noop"), (1, "put a"), (2, "noop")];

    #[test]
    fn a_clean_run_with_a_crash_and_a_restart_passes() {
        let steps = vec![
            vec![
                committed(node(1, 1, Some(1), true), &LOG[..2], 2),
                committed(node(2, 1, Some(1), false), &LOG[..2], 1),
            ],
            // Node 1 crashed; node 2 is elected in term 2 and commits more.
            vec![committed(node(2, 2, Some(2), true), &LOG, 3)],
            // Node 1 restarts with its durable vote and catches up: compared again.
            vec![
                committed(node(1, 2, Some(2), false), &LOG, 3),
                committed(node(2, 2, Some(2), true), &LOG, 3),
            ],
        ];
        assert_eq!(observe(&steps), Ok(()));
    }

    #[test]
    fn two_leaders_of_one_term_at_different_times_are_caught() {
        let steps = vec![
            vec![node(1, 3, Some(1), true), node(2, 3, Some(1), false)],
            vec![node(2, 3, Some(1), false)],
            vec![node(2, 3, Some(1), false), node(3, 3, Some(3), true)],
        ];
        assert_caught(&steps, 2, "two leaders in t3 over the run: n1 and n3");
    }

    #[test]
    fn a_forgotten_or_changed_vote_is_caught_across_a_restart() {
        let voted = vec![node(2, 4, Some(1), false)];
        let forgotten = vec![voted.clone(), vec![], vec![node(2, 4, None, false)]];
        assert_caught(&forgotten, 2, "the vote of n2 in t4 changed from");
        let changed = vec![voted.clone(), vec![node(2, 4, Some(3), false)]];
        assert_caught(
            &changed,
            1,
            "changed from Some(NodeId(1)) to Some(NodeId(3))",
        );
        let newer_term = vec![voted, vec![node(2, 5, Some(3), false)]];
        assert_eq!(observe(&newer_term), Ok(()));
    }

    #[test]
    fn a_term_going_back_is_caught() {
        let steps = vec![vec![node(1, 5, None, false)], vec![node(1, 4, None, false)]];
        assert_caught(&steps, 1, "the term of n1 went back");
    }

    #[test]
    fn a_committed_entry_is_compared_even_when_its_first_holder_is_down() {
        let other: [(u64, &str); 2] = [(1, "noop"), (1, "put b")];
        let payload_differs = vec![
            vec![committed(node(1, 1, Some(1), true), &LOG[..2], 2)],
            vec![],
            vec![committed(node(2, 1, Some(1), false), &other, 2)],
        ];
        assert_caught(&payload_differs, 2, "committed entry i2 differs");
        let term_differs: [(u64, &str); 2] = [(1, "noop"), (2, "put a")];
        let steps = vec![
            vec![committed(node(1, 1, Some(1), true), &LOG[..2], 1)],
            vec![committed(node(1, 2, Some(1), true), &term_differs, 2)],
        ];
        assert_eq!(observe(&steps), Ok(()), "i2 was not committed before");
        let steps = vec![
            vec![committed(node(1, 1, Some(1), true), &LOG[..2], 2)],
            vec![committed(node(3, 2, Some(3), true), &term_differs, 2)],
        ];
        assert_caught(&steps, 1, "committed entry i2 differs");
    }

    #[test]
    fn a_restart_that_brings_back_another_committed_prefix_is_caught() {
        let rewritten: [(u64, &str); 3] = [(1, "noop"), (1, "put x"), (2, "noop")];
        let steps = vec![
            vec![committed(node(1, 2, Some(1), true), &LOG, 3)],
            // The node restarts with a lower commit index and a rewritten log.
            vec![committed(node(1, 2, Some(1), false), &rewritten, 1)],
            vec![committed(node(1, 2, Some(1), false), &rewritten, 3)],
        ];
        assert_caught(&steps, 2, "committed entry i2 differs");
    }

    #[test]
    fn a_committed_index_past_the_log_is_caught() {
        let steps = vec![vec![committed(node(1, 1, Some(1), true), &LOG[..1], 2)]];
        assert_caught(&steps, 0, "holds no entry i2");
    }
}
