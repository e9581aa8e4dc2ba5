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
//! **Incremental.** The observer runs after every event, hundreds of thousands of times
//! in a benchmark run, and most events change nothing it checks. So it remembers, per
//! node, what the node showed at the previous observation (term, vote, leadership,
//! commit index, first held index): a node that was running then and shows exactly the
//! same now is skipped, since every check above is a function of those values and of
//! the observer's own record, and on the same values it would find what it found before
//! and change nothing. (A node that restarts between two observations is absent from
//! one of them, or shows a lower commit index, and is compared again either way; a
//! restart hidden inside one event with every value equal was not re-read before this
//! either.) Nodes are kept in a short list searched linearly (clusters have a handful),
//! and the committed record is a vector indexed by log index, not a map: a lookup is an
//! array access. Reading a node's newly committed entries reuses one buffer, and the
//! payload hash is a word-at-a-time hash, not SipHash byte by byte.
//!
//! Memory is bounded by the run: one record per committed index (up to the highest
//! committed index seen) and per term with a leader, asserted against generous caps.
//! With compaction and snapshots a node's cursor never lies below its log's first index:
//! entries a node compacted or replaced by a snapshot were compared when they were
//! committed (compaction keeps every entry committed in a flush until a later event, see
//! `snapshot.rs`). The record could later keep only the indexes some node still holds
//! (or a hash chain below them).
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

/// Most terms with a leader the observer records over one run.
const TERMS_RECORDED_MAX: usize = 1 << 20;

/// Highest committed index the observer records over one run (its record is a vector
/// indexed by log index).
const COMMITTED_INDEX_MAX: u64 = 1 << 22;

/// Most nodes the observer tracks over one run (every id it has ever seen).
const NODES_TRACKED_MAX: usize = 1 << 10;

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
    /// Appends to `into` the (term, payload hash) of the entries from `from` on, at most
    /// `entries_max` (none if `from` is past the log's end).
    fn entries(
        &self,
        from: LogIndex,
        entries_max: usize,
        into: &mut Vec<(Term, u64)>,
    ) -> Result<(), String>;
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
    fn entries(
        &self,
        from: LogIndex,
        entries_max: usize,
        into: &mut Vec<(Term, u64)>,
    ) -> Result<(), String> {
        self.log()
            .visit_range(
                from,
                entries_max,
                READ_BATCH_SIZE_MAX_BYTES,
                |position, payload| {
                    into.push((position.term, payload_hash(payload)));
                    Ok(())
                },
            )
            .map_err(|error| format!("{} cannot read its log at {from}: {error}", self.id))?;
        Ok(())
    }
}

/// The multiplier of [`payload_hash`] (the 64-bit golden ratio, odd).
const PAYLOAD_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// The multiplier of [`payload_hash`]'s final step (another odd constant).
const PAYLOAD_FINAL_MULTIPLIER: u64 = 0xff51_afd7_ed55_8ccd;

/// The full 128-bit product of `a` and `b`, its two halves xored: every input bit
/// reaches every output bit's neighbourhood in one multiplication.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    let (low, high) = (product as u64, (product >> 64) as u64);
    low ^ high
}

/// A deterministic 64-bit hash of a payload, the same on every platform: the length,
/// then every 8-byte little-endian word (the last one zero-padded), each folded into the
/// state with a [`folded_multiply`], then one more folding. Not for adversaries (nothing
/// here is): for telling two different payloads apart at one log index.
pub(super) fn payload_hash(payload: &[u8]) -> u64 {
    let length = payload.len() as u64;
    let mut state = folded_multiply(length ^ PAYLOAD_FINAL_MULTIPLIER, PAYLOAD_MULTIPLIER);
    let mut words = payload.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        state = folded_multiply(state ^ word, PAYLOAD_MULTIPLIER);
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        state = folded_multiply(state ^ u64::from_le_bytes(last), PAYLOAD_MULTIPLIER);
    }
    folded_multiply(state, PAYLOAD_FINAL_MULTIPLIER)
}

/// What a node showed at one observation: every value the checks read from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shown {
    term: Term,
    vote: Option<NodeId>,
    leads: bool,
    committed: LogIndex,
    first_held: LogIndex,
}

impl Shown {
    fn of<N: ObservedNode>(node: &N) -> Shown {
        Shown {
            term: node.current_term(),
            vote: node.vote(),
            leads: node.leads(),
            committed: node.committed(),
            first_held: node.first_held(),
        }
    }
}

/// What the observer remembers of one node, kept across its crashes.
#[derive(Debug)]
struct NodeRecord {
    id: NodeId,
    /// The number of the last observation that showed the node running.
    seen_in: u64,
    /// What it showed then.
    shown: Shown,
    /// The last of its committed entries already compared (meaningful only if the node
    /// ran at the previous observation).
    cursor: LogIndex,
}

/// Checks election safety, vote stability and committed-log agreement over a whole run.
/// See the module documentation.
#[derive(Debug, Default)]
pub struct RaftObserver {
    /// The node seen leading each term.
    leaders: BTreeMap<Term, NodeId>,
    /// Every node ever seen, in the order first seen.
    nodes: Vec<NodeRecord>,
    /// (term, payload hash) of each committed index seen, at position index − 1. `None`
    /// for an index nobody showed committed: a node can compact entries before the
    /// observer reads them (the script harness observes after each command, not each
    /// event), leaving indexes nobody showed it.
    committed: Vec<Option<(Term, u64)>>,
    /// Observations so far (the first is number 1).
    observations: u64,
    /// Reused for each read of a node's entries.
    scratch: Vec<(Term, u64)>,
}

impl ClusterObserver<RaftNode> for RaftObserver {
    fn observe(&mut self, replicas: &[&RaftNode]) -> Result<(), String> {
        self.observe_nodes(replicas)
    }
}

impl RaftObserver {
    pub(super) fn observe_nodes<N: ObservedNode>(&mut self, nodes: &[&N]) -> Result<(), String> {
        self.observations += 1;
        for node in nodes {
            self.observe_node(*node)?;
        }
        Ok(())
    }

    /// Checks one node, unless it ran at the previous observation and shows exactly
    /// what it showed then (see the module documentation).
    fn observe_node<N: ObservedNode>(&mut self, node: &N) -> Result<(), String> {
        let (id, shown) = (node.node_id(), Shown::of(node));
        let position = self.record_position(id);
        let record = &self.nodes[position];
        let ran_before = record.seen_in != 0 && record.seen_in + 1 == self.observations;
        if ran_before && record.shown == shown {
            self.nodes[position].seen_in = self.observations;
            return Ok(());
        }
        let last_shown = (record.seen_in != 0).then_some(record.shown);
        let cursor = ran_before.then_some(record.cursor);
        self.check_vote(id, shown, last_shown)?;
        self.check_leader(id, shown)?;
        let cursor = self.check_committed(node, shown, cursor)?;
        let record = &mut self.nodes[position];
        record.seen_in = self.observations;
        record.shown = shown;
        record.cursor = cursor;
        Ok(())
    }

    /// The position of `id`'s record in `nodes`, added if it is new (never seen).
    fn record_position(&mut self, id: NodeId) -> usize {
        if let Some(position) = self.nodes.iter().position(|record| record.id == id) {
            return position;
        }
        assert!(
            self.nodes.len() < NODES_TRACKED_MAX,
            "more than {NODES_TRACKED_MAX} nodes in one run"
        );
        self.nodes.push(NodeRecord {
            id,
            seen_in: 0,
            shown: Shown {
                term: Term(0),
                vote: None,
                leads: false,
                committed: LogIndex(0),
                first_held: LogIndex(0),
            },
            cursor: LogIndex(0),
        });
        self.nodes.len() - 1
    }

    /// Compares the node's term and vote with the last ones seen (`last`, kept across
    /// its crashes; `None` for a node never seen).
    fn check_vote(&self, id: NodeId, shown: Shown, last: Option<Shown>) -> Result<(), String> {
        let Some(last) = last else {
            return Ok(());
        };
        let (term, vote, last_term, last_vote) = (shown.term, shown.vote, last.term, last.vote);
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
        Ok(())
    }

    fn check_leader(&mut self, id: NodeId, shown: Shown) -> Result<(), String> {
        if !shown.leads {
            return Ok(());
        }
        let term = shown.term;
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

    /// Compares the node's newly committed entries with the record (or extends it), from
    /// its `cursor` (`None`: the node did not run at the previous observation); returns
    /// the new cursor.
    fn check_committed<N: ObservedNode>(
        &mut self,
        node: &N,
        shown: Shown,
        cursor: Option<LogIndex>,
    ) -> Result<LogIndex, String> {
        let (id, commit) = (node.node_id(), shown.committed);
        let restart_cursor = LogIndex(shown.first_held.0.saturating_sub(1));
        // A node that installed a snapshot no longer holds the entries below it: its
        // cursor skips to its log's first entry (those entries were compared when it,
        // or the leader that sent the snapshot, committed them).
        let mut cursor = match cursor {
            Some(cursor) if cursor <= commit => cursor.max(restart_cursor),
            _ => restart_cursor,
        };
        let mut entries = std::mem::take(&mut self.scratch);
        let result = loop {
            if cursor >= commit {
                break Ok(cursor);
            }
            let from = cursor.next();
            let wanted = usize::try_from(commit.0 - cursor.0).unwrap_or(usize::MAX);
            entries.clear();
            if let Err(error) = node.entries(from, wanted.min(READ_BATCH_ENTRIES_MAX), &mut entries)
            {
                break Err(error);
            }
            if entries.is_empty() {
                break Err(format!(
                    "{id} has committed {commit} but holds no entry {from}"
                ));
            }
            if let Err(error) =
                self.compare_batch(id, cursor, &entries[..wanted.min(entries.len())])
            {
                break Err(error);
            }
            cursor = LogIndex(cursor.0 + wanted.min(entries.len()) as u64);
        };
        self.scratch = entries;
        result
    }

    /// Compares the entries following `after` with the record, one by one.
    fn compare_batch(
        &mut self,
        id: NodeId,
        after: LogIndex,
        entries: &[(Term, u64)],
    ) -> Result<(), String> {
        let mut index = after;
        for &(term, hash) in entries {
            index = index.next();
            self.compare_or_record(id, index, term, hash)?;
        }
        Ok(())
    }

    fn compare_or_record(
        &mut self,
        id: NodeId,
        index: LogIndex,
        term: Term,
        hash: u64,
    ) -> Result<(), String> {
        assert!(
            index.0 <= COMMITTED_INDEX_MAX,
            "committed index {index} beyond the {COMMITTED_INDEX_MAX} recorded in one run"
        );
        let slot = usize::try_from(index.0 - 1).expect("bounded by COMMITTED_INDEX_MAX");
        if slot >= self.committed.len() {
            self.committed.resize(slot + 1, None);
        }
        match self.committed[slot] {
            Some((recorded_term, recorded_hash)) => {
                if (recorded_term, recorded_hash) != (term, hash) {
                    return Err(format!(
                        "committed entry {index} differs: {id} holds {term} (payload hash \
                         {hash:#x}), {recorded_term} (payload hash {recorded_hash:#x}) was \
                         committed before"
                    ));
                }
            }
            None => self.committed[slot] = Some((term, hash)),
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
        fn entries(
            &self,
            from: LogIndex,
            max: usize,
            into: &mut Vec<(Term, u64)>,
        ) -> Result<(), String> {
            let start = usize::try_from(from.0 - 1).unwrap();
            let end = self.log.len().min(start + max);
            into.extend(
                self.log[start.min(end)..end]
                    .iter()
                    .map(|(term, payload)| (Term(*term), payload_hash(payload.as_bytes()))),
            );
            Ok(())
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

    /// Payloads of the long forged logs below.
    const PAYLOADS: [&str; 4] = ["put a", "put b", "delete a", "cas b 1 2"];

    /// 60 entries in terms 1 to 3.
    fn long_log() -> Vec<(u64, &'static str)> {
        (0..60u64)
            .map(|index| {
                (
                    1 + index / 20,
                    PAYLOADS[usize::try_from(index).unwrap() % 4],
                )
            })
            .collect()
    }

    /// Two nodes commit the same log a few entries at a time, each state shown three
    /// times (the repeats change nothing and are skipped); `follower_log` is what node 2
    /// holds, and it commits five entries behind node 1.
    fn long_run(follower_log: &[(u64, &'static str)]) -> Vec<Vec<Forged>> {
        let log = long_log();
        let mut steps = Vec::new();
        for commit in 0..=60u64 {
            for _ in 0..3 {
                steps.push(vec![
                    committed(node(1, 3, Some(1), true), &log, commit),
                    committed(
                        node(2, 3, Some(1), false),
                        follower_log,
                        commit.saturating_sub(5),
                    ),
                ]);
            }
        }
        steps
    }

    #[test]
    fn a_diverging_log_is_caught_at_the_step_that_commits_the_divergence() {
        assert_eq!(observe(&long_run(&long_log())), Ok(()));
        // Node 2's entry 42 has another payload: caught when node 2 commits it (node 1
        // has at 47), the first of the three steps that show it.
        let mut payload_differs = long_log();
        payload_differs[41].1 = "put z";
        assert_caught(
            &long_run(&payload_differs),
            47 * 3,
            "committed entry i42 differs: n2 holds t3",
        );
        // Same payload, another term.
        let mut term_differs = long_log();
        term_differs[41].0 = 2;
        assert_caught(
            &long_run(&term_differs),
            47 * 3,
            "committed entry i42 differs: n2 holds t2",
        );
        // The last entry: compared even though the run ends there.
        let mut last_differs = long_log();
        last_differs[54].1 = "put z";
        assert_caught(
            &long_run(&last_differs),
            60 * 3,
            "committed entry i55 differs",
        );
    }

    #[test]
    fn a_node_back_from_a_crash_is_compared_again_though_it_shows_the_same_values() {
        let rewritten: [(u64, &str); 3] = [(1, "noop"), (1, "put x"), (2, "noop")];
        let leader = committed(node(1, 2, Some(1), true), &LOG, 3);
        let steps = vec![
            vec![
                leader.clone(),
                committed(node(2, 2, Some(1), false), &LOG, 3),
            ],
            // Node 2 is down for one observation and comes back with the same term,
            // vote and commit index but another committed entry 2.
            vec![leader.clone()],
            vec![leader, committed(node(2, 2, Some(1), false), &rewritten, 3)],
        ];
        assert_caught(&steps, 2, "committed entry i2 differs: n2 holds t1");
    }

    #[test]
    fn the_payload_hash_tells_apart_every_one_bit_change_and_every_length() {
        let payload: Vec<u8> = (1..22u8).map(|byte| byte.wrapping_mul(37)).collect();
        let original = payload_hash(&payload);
        let mut hashes = std::collections::BTreeSet::from([original]);
        for byte in 0..payload.len() {
            for bit in 0..8 {
                let mut changed = payload.clone();
                changed[byte] ^= 1 << bit;
                assert!(
                    hashes.insert(payload_hash(&changed)),
                    "byte {byte} bit {bit}"
                );
            }
        }
        for length in 0..payload.len() {
            assert!(
                hashes.insert(payload_hash(&payload[..length])),
                "length {length}"
            );
        }
        let zeros = [0u8; 17];
        for length in 1..zeros.len() {
            assert!(
                hashes.insert(payload_hash(&zeros[..length])),
                "{length} zeros"
            );
        }
        assert_eq!(payload_hash(&payload), original, "deterministic");
    }
}
