//! The Raft node: state, construction from durable storage, and the `Replica` plumbing.
//!
//! [`RaftNode`] owns its three storage objects: the replication [`Log`], the hard state
//! (current term and vote) in a [`MetadataFile`], and the applied state in a [`Store`].
//! This file holds what every role shares: opening and recovering, term fencing of
//! incoming messages, stepping down, the durable hard state, the outputs held until the
//! next flush, and the [`Replica`] trait methods, which only dispatch. The roles' logic
//! lives beside it: `election.rs` (followers, pre-candidates, candidates, votes),
//! `replication.rs` (AppendEntries on both sides, commit), `client.rs` (client requests,
//! ReadIndex reads, applying committed entries).
//!
//! Term fencing happens in one place, [`RaftNode::handle_message`]: a message from a
//! higher term makes this node a follower of that term (durably) before the message is
//! looked at, except pre-votes and their answers, which never change a term; a message
//! from a lower term is answered (so a stale leader or candidate learns the new term) or
//! dropped. After fencing, every handler sees `message.term() == self.term`.

use super::invariants::RaftObserver;
use super::message::{AppendResult, Message};
use super::{RaftConfig, RaftStats};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_core::error::{Error, Result};
use replikv_core::replica::{Output, Replica};
use replikv_core::{Instant, Key, LogIndex, NodeId, Reply, Request, RequestId, Term, Value};
use replikv_storage::disk::Disk;
use replikv_storage::log::{Log, MetadataFile};
use replikv_storage::store::{Store, StoreOptions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

#[cfg(test)]
thread_local! {
    /// A bug planted for the tests of [`RaftObserver`]: when set, a node opening forgets
    /// the vote of its hard state (keeping the term), as a node would that did not make
    /// its vote durable. Per thread, so it cannot leak into other tests.
    pub(super) static FORGET_VOTE_ON_OPEN: std::cell::Cell<bool> = const {
        std::cell::Cell::new(false)
    };
}

/// The hard state file's name on the node's disk.
pub const HARD_STATE_FILE_NAME: &str = "raft.meta";

/// The state store's file name on the node's disk.
pub const STORE_FILE_NAME: &str = "state.redb";

/// Terms above this are absurd (no cluster elects 2^62 leaders) and their messages are
/// dropped, so that term arithmetic can never overflow.
pub const TERM_MAX: Term = Term(1 << 62);

/// What must survive a crash besides the log: Raft's current term and vote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct HardState {
    term: Term,
    voted_for: Option<NodeId>,
}

/// A node's role in its current term.
#[derive(Debug)]
pub(super) enum Role {
    Follower {
        leader: Option<NodeId>,
    },
    /// Running a pre-vote for `term + 1`; the peers that granted it (self included).
    PreCandidate {
        granted: BTreeSet<NodeId>,
    },
    /// Campaigning in the current term; the peers that voted for it (self included).
    Candidate {
        granted: BTreeSet<NodeId>,
    },
    Leader(Box<super::leader::LeaderState>),
}

/// A Raft replica in `majority` commit mode; see the module documentation.
#[derive(Debug)]
pub struct RaftNode {
    pub(super) id: NodeId,
    /// The other voters, in id order.
    pub(super) peers: Vec<NodeId>,
    pub(super) config: RaftConfig,
    pub(super) random: ChaCha8Rng,
    pub(super) log: Log,
    hard_state_file: MetadataFile,
    pub(super) store: Store,
    pub(super) term: Term,
    pub(super) voted_for: Option<NodeId>,
    pub(super) role: Role,
    /// Highest index known committed. Never decreases.
    pub(super) commit: LogIndex,
    /// When a follower or candidate next starts an election; `None` until the first tick.
    pub(super) election_deadline: Option<Instant>,
    /// When this node last heard from a leader of its current term (pre-votes and votes
    /// are refused while that is recent: leader stickiness).
    pub(super) leader_contact: Option<Instant>,
    pub(super) outputs: VecDeque<Output<Message>>,
    /// Messages that claim durability (append acknowledgements), released by the next
    /// flush if their term is still current.
    pub(super) held: Vec<(NodeId, Message)>,
    pub(super) stats: RaftStats,
}

impl RaftNode {
    /// Opens a node on `disk`: recovers the log, the hard state and the store, and resumes
    /// as a follower of its durable term. `peers` are the other voters.
    pub fn open(
        id: NodeId,
        peers: Vec<NodeId>,
        disk: Disk,
        seed: u64,
        config: RaftConfig,
    ) -> Result<RaftNode> {
        config.validate()?;
        let mut peers: Vec<NodeId> = peers.into_iter().filter(|peer| *peer != id).collect();
        peers.sort_unstable();
        peers.dedup();
        if id == NodeId::NONE || peers.contains(&NodeId::NONE) {
            return Err(Error::InvalidInput("node id 0 is reserved".into()));
        }
        let mut log = Log::open(disk.clone(), config.log_options.clone())?;
        let hard_state_file = MetadataFile::open(&disk, HARD_STATE_FILE_NAME)?;
        let hard_state = match hard_state_file.load() {
            None => HardState::default(),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
                Error::Corruption(format!("{HARD_STATE_FILE_NAME}: undecodable: {error}"))
            })?,
        };
        if hard_state.term < log.last_position().term {
            return Err(Error::Corruption(format!(
                "{HARD_STATE_FILE_NAME}: term {} below the log's last entry {}",
                hard_state.term,
                log.last_position()
            )));
        }
        let store_options = StoreOptions {
            client_sessions_max: config.client_sessions_max,
            ..StoreOptions::default()
        };
        let store = Store::open_with(&disk, STORE_FILE_NAME, &store_options)?;
        let applied = store.applied_position();
        if log.term_at(applied.index) != Some(applied.term) {
            return Err(Error::Corruption(format!(
                "the store applied {applied}, which the log does not hold (log ends at {})",
                log.last_position()
            )));
        }
        log.mark_committed(applied.index);
        #[cfg(test)]
        let hard_state = HardState {
            voted_for: hard_state.voted_for.filter(|_| !FORGET_VOTE_ON_OPEN.get()),
            ..hard_state
        };
        Ok(RaftNode {
            id,
            peers,
            config,
            random: ChaCha8Rng::seed_from_u64(seed),
            log,
            hard_state_file,
            store,
            term: hard_state.term,
            voted_for: hard_state.voted_for,
            role: Role::Follower { leader: None },
            commit: applied.index,
            election_deadline: None,
            leader_contact: None,
            outputs: VecDeque::new(),
            held: Vec::new(),
            stats: RaftStats::default(),
        })
    }

    /// The current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// Whether this node is the leader of its current term.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The leader this node knows of in its current term, itself included.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        match &self.role {
            Role::Leader(_) => Some(self.id),
            Role::Follower { leader } => *leader,
            Role::PreCandidate { .. } | Role::Candidate { .. } => None,
        }
    }

    /// A short name of the role, for traces.
    #[must_use]
    pub fn role_name(&self) -> &'static str {
        match self.role {
            Role::Follower { .. } => "follower",
            Role::PreCandidate { .. } => "pre-candidate",
            Role::Candidate { .. } => "candidate",
            Role::Leader(_) => "leader",
        }
    }

    /// The highest committed index this node knows.
    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }

    /// The index of the last entry applied to the store.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.store.applied_position().index
    }

    /// The replication log (read-only), for tests and invariant checks.
    #[must_use]
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Counters of what this node did and dropped.
    #[must_use]
    pub fn stats(&self) -> &RaftStats {
        &self.stats
    }

    /// Number of voters, this node included.
    pub(super) fn voters(&self) -> usize {
        self.peers.len() + 1
    }

    /// Votes (or acknowledgements) needed for a majority of the voters.
    pub(super) fn quorum(&self) -> usize {
        self.voters() / 2 + 1
    }

    pub(super) fn send(&mut self, to: NodeId, message: Message) {
        debug_assert!(to != self.id && self.peers.contains(&to));
        self.outputs.push_back(Output::Send { to, message });
    }

    pub(super) fn reply(&mut self, request_id: RequestId, reply: Reply) {
        self.outputs.push_back(Output::Reply { request_id, reply });
    }

    /// Writes the term and vote durably (two syncs, see [`MetadataFile`]) before anyone
    /// can act on them. Terms never decrease; a vote is never changed within a term.
    pub(super) fn set_hard_state(&mut self, term: Term, voted_for: Option<NodeId>) -> Result<()> {
        assert!(
            term >= self.term,
            "term decreases: {term} after {}",
            self.term
        );
        if term == self.term {
            assert!(
                self.voted_for.is_none() || self.voted_for == voted_for,
                "vote changed within {term}"
            );
        }
        if term == self.term && voted_for == self.voted_for {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&HardState { term, voted_for })
            .expect("hard state always serializes");
        self.hard_state_file.store(&bytes)?;
        self.term = term;
        self.voted_for = voted_for;
        Ok(())
    }

    /// Becomes a follower of `term` (durably, if the term is new) with `leader` if known.
    /// A leader that steps down answers its pending requests first.
    pub(super) fn become_follower(
        &mut self,
        now: Instant,
        term: Term,
        leader: Option<NodeId>,
    ) -> Result<()> {
        if term > self.term {
            self.set_hard_state(term, None)?;
            self.leader_contact = None;
        }
        if let Role::Leader(state) = std::mem::replace(&mut self.role, Role::Follower { leader }) {
            self.abandon_leadership(*state);
        }
        self.role = Role::Follower { leader };
        self.reset_election_deadline(now);
        Ok(())
    }

    /// Draws a fresh randomized election deadline.
    pub(super) fn reset_election_deadline(&mut self, now: Instant) {
        let timeout_ms = self.random.random_range(
            self.config.election_timeout_ms_min..=self.config.election_timeout_ms_max,
        );
        self.election_deadline = Some(now + Duration::from_millis(timeout_ms));
    }

    /// Term fencing: see the module documentation. Returns whether the message goes on to
    /// its handler.
    fn fence(&mut self, now: Instant, from: NodeId, message: &Message) -> Result<bool> {
        let term = message.term();
        if term > self.term {
            match message {
                Message::PreVote { .. } => return Ok(true),
                Message::PreVoteResponse { granted: true, .. } => return Ok(true),
                Message::Vote { .. } if self.in_leader_lease(now) => {
                    // A disruptive candidate while our leader is alive: ignore (check-quorum
                    // makes a leader that lost its majority step down by itself).
                    self.stats.votes_ignored_in_lease += 1;
                    return Ok(false);
                }
                Message::Append { .. } => self.become_follower(now, term, Some(from))?,
                _ => self.become_follower(now, term, None)?,
            }
            return Ok(true);
        }
        if term < self.term {
            self.answer_stale(from, message);
            return Ok(false);
        }
        Ok(true)
    }

    /// Answers a message from an older term so its sender learns the current one.
    fn answer_stale(&mut self, from: NodeId, message: &Message) {
        self.stats.stale_messages += 1;
        let term = self.term;
        let answer = match message {
            Message::PreVote { .. } => Message::PreVoteResponse {
                term,
                granted: false,
            },
            Message::Vote { .. } => Message::VoteResponse {
                term,
                granted: false,
            },
            Message::Append { read_sequence, .. } => Message::AppendResponse {
                term,
                result: AppendResult::Rejected {
                    next: self.log.last_position().index.next(),
                },
                read_sequence: *read_sequence,
            },
            _ => return,
        };
        self.send(from, answer);
    }

    /// Whether a leader of the current term was heard from within the minimum election
    /// timeout (or this node is that leader).
    pub(super) fn in_leader_lease(&self, now: Instant) -> bool {
        match &self.role {
            Role::Leader(_) => true,
            Role::Follower { leader: Some(_) } => self.leader_contact.is_some_and(|contact| {
                now.saturating_duration_since(contact)
                    < Duration::from_millis(self.config.election_timeout_ms_min)
            }),
            _ => false,
        }
    }

    /// Checks the invariants between this node's fields; cheap, run after every input.
    pub(super) fn assert_invariants(&self) {
        let applied = self.store.applied_position().index;
        let last = self.log.last_position().index;
        assert!(
            applied <= self.commit,
            "applied {applied} > commit {}",
            self.commit
        );
        assert!(self.commit <= last, "commit {} > last {last}", self.commit);
        assert!(self.log.committed_index() <= self.commit);
        if let Role::Leader(_) = self.role {
            assert_eq!(self.voted_for, Some(self.id), "a leader voted for itself");
        }
        assert!(self.log.last_position().term <= self.term);
    }

    /// Common end of every input: apply what became committed, check invariants.
    fn after_input(&mut self) -> Result<()> {
        self.apply_committed()?;
        self.serve_reads()?;
        self.assert_invariants();
        Ok(())
    }
}

impl Replica for RaftNode {
    type Message = Message;
    type Observer = RaftObserver;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Message) -> Result<()> {
        if from == self.id || !self.peers.contains(&from) || message.term() > TERM_MAX {
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        if !self.fence(now, from, &message)? {
            return self.after_input();
        }
        match message {
            Message::PreVote { term, last } => self.handle_pre_vote(now, from, term, last),
            Message::PreVoteResponse { term, granted } => {
                self.handle_pre_vote_response(now, from, term, granted)?;
            }
            Message::Vote { term, last } => self.handle_vote(now, from, term, last)?,
            Message::VoteResponse { granted, .. } => {
                self.handle_vote_response(now, from, granted)?;
            }
            Message::Append {
                previous,
                entries,
                commit,
                read_sequence,
                ..
            } => self.handle_append(now, from, previous, entries, commit, read_sequence)?,
            Message::AppendResponse {
                result,
                read_sequence,
                ..
            } => self.handle_append_response(now, from, result, read_sequence)?,
        }
        self.after_input()
    }

    fn handle_request(
        &mut self,
        now: Instant,
        request_id: RequestId,
        request: Request,
    ) -> Result<()> {
        self.handle_client_request(now, request_id, request)?;
        self.after_input()
    }

    fn handle_tick(&mut self, now: Instant) -> Result<()> {
        if matches!(self.role, Role::Leader(_)) {
            self.leader_tick(now)?;
        } else {
            self.election_tick(now)?;
        }
        self.after_input()
    }

    fn handle_flush(&mut self, now: Instant) -> Result<()> {
        self.log.sync()?;
        let held = std::mem::take(&mut self.held);
        for (to, message) in held {
            if message.term() == self.term {
                self.send(to, message);
            }
        }
        self.leader_flush(now)?;
        self.after_input()?;
        let applied = self.store.applied_position().index.0;
        let durable_applied = self.store.durable_applied_position().index.0;
        if applied - durable_applied >= self.config.store_sync_entries {
            self.store.sync()?;
        }
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Output<Message>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.role {
            Role::Leader(state) => Some(
                self.next_lease_deadline()
                    .map_or(state.next_deadline(), |lease| {
                        lease.min(state.next_deadline())
                    }),
            ),
            _ => Some(self.election_deadline.unwrap_or(Instant::ZERO)),
        }
    }

    fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        self.store.visible_state()
    }
}
