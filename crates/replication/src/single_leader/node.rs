//! The Raft node: state, construction from durable storage, and the `Replica` plumbing.
//!
//! [`RaftNode`] owns its three storage objects: the replication [`Log`], the hard state
//! (current term and vote) in a [`MetadataFile`], and the applied state in a [`Store`].
//! This file holds what every role shares: opening and recovering, term fencing of
//! incoming messages, stepping down, the durable hard state, the outputs held until the
//! next flush, and the [`Replica`] trait methods, which only dispatch. The roles' logic
//! lives beside it: `election.rs` (followers, pre-candidates, candidates, votes),
//! `replication.rs` (AppendEntries on both sides, commit), `client.rs` (client writes,
//! applying committed entries), `reads.rs` (reads of every consistency level), `lag.rs`
//! (replication status).
//!
//! Term fencing happens in one place, [`RaftNode::handle_message`]: a message from a
//! higher term makes this node a follower of that term (durably) before the message is
//! looked at, except pre-votes and their answers, which never change a term; a message
//! from a lower term is answered (so a stale leader or candidate learns the new term) or
//! dropped. After fencing, every handler sees `message.term() == self.term`.

use super::invariants::RaftObserver;
use super::message::{AppendResult, Message, SnapshotResult};
use super::planted::planted;
use super::{RaftConfig, RaftStats};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_core::error::{Error, Result};
use replikv_core::replica::{CompletedSync, DiscardedWrite, Output, PendingSync, Replica};
use replikv_core::{
    Instant, Key, LogIndex, LogPosition, NodeId, Reply, Request, RequestId, Term, Value,
};
use replikv_storage::disk::Disk;
use replikv_storage::log::{Log, MetadataFile};
use replikv_storage::store::{Membership, Store, StoreOptions};
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

/// A durable store commit counts as cheap when it wrote at most one page per this many
/// entries of `store_sync_entries` (see `RaftNode::stretch_store_sync_interval`).
const STORE_SYNC_ENTRIES_PER_PAGE_CHEAP: u64 = 4;

/// redb's page size: what the store's file is written in.
const STORE_PAGE_SIZE_BYTES: u64 = 4096;

/// A Raft replica in `majority` commit mode; see the module documentation.
#[derive(Debug)]
pub struct RaftNode {
    pub(super) id: NodeId,
    /// The configuration given at open: in force until the store or the log holds one
    /// (empty for a node that joins; see `membership.rs`).
    pub(super) bootstrap: Membership,
    /// The configuration entries of the log above the store's applied position, in log
    /// order: the latest is the configuration in force (see `membership.rs`).
    pub(super) log_memberships: VecDeque<(LogIndex, Membership)>,
    pub(super) config: RaftConfig,
    pub(super) random: ChaCha8Rng,
    pub(super) log: Log,
    hard_state_file: MetadataFile,
    pub(super) store: Store,
    /// Applied entries between two durable commits of the store now: from
    /// `store_sync_entries`, stretched while commits stay cheap (`close_batch`).
    store_sync_interval_entries: u64,
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
    /// Held messages whose entries the outstanding log sync covers (see
    /// [`Replica::start_flush`]): released when it completes.
    pub(super) held_until_sync: Vec<(NodeId, Message)>,
    pub(super) stats: RaftStats,
    /// The last discarded writes ([`RECENT_DISCARDS_MAX`](super::replication::RECENT_DISCARDS_MAX)).
    pub(super) recent_discards: VecDeque<DiscardedWrite>,
    /// This node answered `SnapshotNeeded`: its committed log conflicts with its leader's,
    /// and it accepts no entries until a snapshot replaces its store and log. In memory
    /// only: after a restart the next conflicting append finds the conflict again.
    pub(super) snapshot_needed: bool,
    /// Where this node's log parts from its leader's, found when it asked for the
    /// snapshot: the writes it proposed after it are reported discarded when the
    /// snapshot replaces the log (not before: until then a new election could still
    /// keep them).
    pub(super) divergence_after: Option<LogIndex>,
    /// Session reads waiting for the store to apply their token, oldest first (see
    /// `reads.rs`).
    pub(super) session_reads: VecDeque<super::reads::SessionRead>,
    /// With lease reads enabled, a node just opened refuses votes until then: it may have
    /// acknowledged a lease round before it crashed and forgotten its leader contact.
    pub(super) votes_refused_until: Option<Instant>,
    /// A leadership transfer this node started as leader, stepped down during, and
    /// still has to answer (see `transfer.rs`).
    pub(super) transfer_handoff: Option<super::transfer::Transfer>,
    /// Calendar time: the driver's wall clock, stamps, the sweep (`expiry.rs`).
    pub(super) expiry: super::expiry::ExpiryClock,
}

/// How [`RaftNode::discard_log_entries`] removes entries.
#[derive(Clone, Copy, Debug)]
pub(super) enum Discard {
    /// Every entry after this index (an uncommitted, conflicting suffix).
    After(LogIndex),
    /// Every entry: the log continues after this position (a snapshot's).
    ResetTo(LogPosition),
}

impl RaftNode {
    /// Opens a node of a group's founding configuration on `disk`: recovers the log, the
    /// hard state and the store, and resumes as a follower of its durable term. `peers`
    /// are the other founding voters: the configuration until a configuration entry
    /// changes it (then the log's or the store's configuration wins, see
    /// `membership.rs`), so a founding node must be given the same `peers` at every open.
    pub fn open(
        id: NodeId,
        peers: Vec<NodeId>,
        disk: Disk,
        seed: u64,
        config: RaftConfig,
    ) -> Result<RaftNode> {
        let mut voters: Vec<NodeId> = peers.into_iter().filter(|peer| *peer != id).collect();
        voters.push(id);
        voters.sort_unstable();
        voters.dedup();
        if voters.contains(&NodeId::NONE) {
            return Err(Error::InvalidInput("node id 0 is reserved".into()));
        }
        let bootstrap = Membership::new(voters, Vec::new())?;
        Self::open_with(id, bootstrap, disk, seed, config)
    }

    /// Opens a node that joins an existing group: it bootstraps nothing, knows no
    /// configuration until a leader's log entries or snapshot bring one, and until it is
    /// added (as a learner, then promoted, or as a voter) it never campaigns. After it
    /// was added, reopening it with this function is right too: its configuration comes
    /// from its log and store.
    pub fn open_joining(id: NodeId, disk: Disk, seed: u64, config: RaftConfig) -> Result<RaftNode> {
        Self::open_with(id, Membership::default(), disk, seed, config)
    }

    fn open_with(
        id: NodeId,
        bootstrap: Membership,
        disk: Disk,
        seed: u64,
        config: RaftConfig,
    ) -> Result<RaftNode> {
        config.validate()?;
        if id == NodeId::NONE {
            return Err(Error::InvalidInput("node id 0 is reserved".into()));
        }
        if !bootstrap.voters.is_empty() {
            config.commit_mode.validate(bootstrap.voters.len())?;
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
        Self::reconcile_log_with_store(&mut log, applied)?;
        let hard_state = HardState {
            voted_for: hard_state
                .voted_for
                .filter(|_| !planted!(config, ForgetVoteOnRestart)),
            ..hard_state
        };
        #[cfg(test)]
        let hard_state = HardState {
            voted_for: hard_state.voted_for.filter(|_| !FORGET_VOTE_ON_OPEN.get()),
            ..hard_state
        };
        let mut node = RaftNode {
            id,
            bootstrap,
            log_memberships: VecDeque::new(),
            store_sync_interval_entries: config.store_sync_entries,
            config,
            random: ChaCha8Rng::seed_from_u64(seed),
            log,
            hard_state_file,
            store,
            term: hard_state.term,
            voted_for: hard_state.voted_for,
            role: Role::Follower { leader: None },
            commit: LogIndex::ZERO,
            election_deadline: None,
            leader_contact: None,
            outputs: VecDeque::new(),
            held: Vec::new(),
            held_until_sync: Vec::new(),
            stats: RaftStats::default(),
            recent_discards: VecDeque::new(),
            snapshot_needed: false,
            divergence_after: None,
            session_reads: VecDeque::new(),
            votes_refused_until: None,
            transfer_handoff: None,
            expiry: super::expiry::ExpiryClock::default(),
        };
        let interval = usize::try_from(node.store_sync_interval_entries).unwrap_or(usize::MAX);
        node.store.set_open_transaction_writes_max(interval);
        node.load_log_memberships()?;
        // In a safe mode everything applied was committed. In a lossy mode this node may
        // have applied, as leader, entries no majority holds: its commit index restarts
        // at its compacted prefix (compaction never passes the commit index) and the
        // next leader tells it the rest (see `commit.rs`).
        let compacted = node.log.first_index().previous().expect("first index >= 1");
        node.commit = if node.commit_mode_is_lossy() {
            compacted
        } else {
            applied.index
        };
        node.log.mark_committed(node.commit);
        Ok(node)
    }

    /// At open: the store must not be behind the log's compacted prefix (compaction never
    /// passes the store's durable applied position), and the log must hold the store's
    /// applied position. A store ahead of its log, or applied at a position the log holds
    /// with another term, is what a crash leaves between a snapshot's install (durable
    /// first) and the log's reset to it: the reset is finished here.
    fn reconcile_log_with_store(log: &mut Log, applied: LogPosition) -> Result<()> {
        let compacted = log.first_index().previous().expect("first index >= 1");
        if applied.index < compacted {
            return Err(Error::Corruption(format!(
                "the store applied {applied}, behind the log compacted up to {compacted}"
            )));
        }
        if log.term_at(applied.index) != Some(applied.term) {
            log.reset_to(applied)?;
        }
        Ok(())
    }

    /// For the script tests: marks `index` committed on this node alone (and applies it),
    /// as the old leader of a lossy commit mode could have told it.
    #[cfg(test)]
    pub(super) fn force_commit(&mut self, now: Instant, index: LogIndex) {
        let index = index.min(self.log.durable_position().index);
        self.commit = self.commit.max(index);
        self.log.mark_committed(self.commit);
        self.after_input(now).expect("apply");
    }

    /// The one place where log entries other than a compacted prefix are removed: a
    /// conflicting suffix, or the whole log when a snapshot replaces it. Counts the
    /// entries above the kept position in `stats.entries_truncated`, and first reports
    /// the client writes this node proposed among the removed entries as discarded
    /// ([`Output::Discarded`]): first, so that a crash in between reports them again
    /// after the restart rather than never.
    ///
    /// A reset reports nothing itself: a snapshot's install reports what it will
    /// discard before it changes the store (see `snapshot.rs`, `finish_install`).
    pub(super) fn discard_log_entries(&mut self, discard: Discard) -> Result<()> {
        let last = self.log.last_position().index;
        match discard {
            Discard::After(after) => {
                assert!(
                    after >= self.commit,
                    "discarding committed entries after {after}"
                );
                if after < last {
                    self.report_discarded_writes(after.next(), last, true)?;
                }
                self.stats.entries_truncated += last.0.saturating_sub(after.0);
                self.log.truncate_suffix(after)?;
                self.note_truncated_memberships(after);
                Ok(())
            }
            Discard::ResetTo(position) => {
                self.stats.entries_truncated += last.0.saturating_sub(position.index.0);
                self.log.reset_to(position)?;
                self.note_truncated_memberships(position.index);
                self.note_applied_memberships();
                Ok(())
            }
        }
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

    /// The latest client writes this node proposed and then had to discard (a lossy
    /// commit mode's failover), oldest first; `stats().writes_discarded` counts them
    /// all since the node opened. Each was also emitted as an
    /// [`Output::Discarded`](replikv_core::replica::Output::Discarded).
    pub fn recent_discards(&self) -> impl Iterator<Item = &DiscardedWrite> {
        self.recent_discards.iter()
    }

    /// Number of voters of the current configuration (this node among them or not).
    pub(super) fn voters(&self) -> usize {
        self.membership().voters.len()
    }

    /// Votes (or acknowledgements) needed for a majority of the voters.
    pub(super) fn quorum(&self) -> usize {
        self.voters() / 2 + 1
    }

    pub(super) fn send(&mut self, to: NodeId, message: Message) {
        debug_assert!(to != self.id && to != NodeId::NONE);
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
                Message::Vote {
                    transfer: false, ..
                } if self.in_leader_lease(now) => {
                    // A disruptive candidate while our leader is alive: ignore (check-quorum
                    // makes a leader that lost its majority step down by itself). A
                    // transfer's vote is not refused (`transfer.rs`).
                    self.stats.votes_ignored_in_lease += 1;
                    return Ok(false);
                }
                Message::Append { .. } | Message::InstallSnapshot { .. } => {
                    self.become_follower(now, term, Some(from))?;
                }
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
            Message::InstallSnapshot { chunk, .. } => Message::InstallSnapshotResponse {
                term,
                position: chunk.0.position,
                result: SnapshotResult::Resume { after: None },
            },
            _ => return,
        };
        self.send(from, answer);
    }

    /// Whether a leader of the current term was heard from within the minimum election
    /// timeout (or this node is that leader).
    pub(super) fn in_leader_lease(&self, now: Instant) -> bool {
        if self.config.lease_reads_enabled
            && (self.election_deadline.is_none()
                || self.votes_refused_until.is_some_and(|until| now < until))
        {
            // Just opened: see `votes_refused_until` (`reads.rs` has the argument).
            return true;
        }
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
        // Only a lossy mode applies beyond the commit index, and only as leader; a
        // deposed leader keeps that state until the new leader rebuilds it.
        assert!(
            applied <= self.commit || self.commit_mode_is_lossy(),
            "applied {applied} > commit {} in a safe commit mode",
            self.commit
        );
        // Applying never passes the durable log (`apply_target`); an installed snapshot
        // may, when the log already held its position without having synced it.
        assert!(
            applied <= last,
            "applied {applied} beyond the log's last {last}"
        );
        if let Role::Leader(state) = &self.role {
            // Acknowledgements start at the commit index a follower learned (which may
            // run ahead of its own fsync) and advance only over durable entries.
            assert!(state.acknowledged <= last.max(self.commit));
        }
        assert!(self.commit <= last, "commit {} > last {last}", self.commit);
        assert!(self.log.committed_index() <= self.commit);
        if let Role::Leader(_) = self.role {
            assert_eq!(self.voted_for, Some(self.id), "a leader voted for itself");
            // A leader outside its configuration is one whose removal is not committed
            // yet: it steps down when it is (see `membership.rs`).
            assert!(
                self.is_voter(self.id) || self.pending_membership_change().is_some(),
                "{} leads outside its committed configuration",
                self.id
            );
        }
        assert!(self.log.last_position().term <= self.term);
        self.assert_transfer_invariants();
    }

    /// Common end of every input: apply what became committed, check invariants.
    fn after_input(&mut self, now: Instant) -> Result<()> {
        self.apply_committed()?;
        self.answer_acknowledged();
        self.answer_membership_changes();
        self.serve_reads()?;
        self.advance_transfer(now);
        self.settle_handoff();
        self.assert_invariants();
        Ok(())
    }

    /// The end of every flush but the wait for the disk: the leader's batch work, what
    /// became committed, compaction and, now and then, the store's durable commit.
    fn close_batch(&mut self, now: Instant) -> Result<()> {
        self.leader_flush(now)?;
        self.after_input(now)?;
        // Before the store's sync: what this flush committed and applied stays in the log
        // until a later event, so that observers read every committed entry at least once.
        self.compact_log()?;
        let applied = self.store.applied_position().index.0;
        let durable_applied = self.store.durable_applied_position().index.0;
        let installing = self.store.install_progress().is_some();
        let unsynced_size_bytes = self.store.unsynced_size_bytes();
        let due_by_entries = applied - durable_applied >= self.store_sync_interval_entries;
        if installing
            || due_by_entries
            || unsynced_size_bytes >= self.config.store_sync_size_max_bytes
        {
            self.store.sync()?;
            // Only a commit of a whole interval's entries says what a longer one would
            // cost: an install's syncs (every flush, staging chunks) and a sync forced by
            // large values say nothing of the working set, so they end any stretch.
            let judged = due_by_entries && !installing;
            self.stretch_store_sync_interval(judged);
        }
        Ok(())
    }

    /// After a durable store commit: if it wrote at most one page per
    /// [`STORE_SYNC_ENTRIES_PER_PAGE_CHEAP`] entries of `store_sync_entries` (a working
    /// set of few B-tree pages, each rewritten by many writes), the next one may wait
    /// twice as long, up to `store_sync_entries_max`; otherwise (writes that scatter over
    /// more pages, whose commit grows with the interval) it is back to
    /// `store_sync_entries`. So the commit's pause stays about what `store_sync_entries`
    /// makes it when writes scatter, and comes less often when they do not. A sync that
    /// is not `judged` (not one interval's entries) sets it back too.
    fn stretch_store_sync_interval(&mut self, judged: bool) {
        let pages = self.store.last_durable_commit_size_bytes() / STORE_PAGE_SIZE_BYTES;
        let shortest = self.config.store_sync_entries;
        let longest = self.config.store_sync_entries_max.max(shortest);
        let cheap = pages.saturating_mul(STORE_SYNC_ENTRIES_PER_PAGE_CHEAP) <= shortest;
        self.store_sync_interval_entries = if judged && cheap {
            self.store_sync_interval_entries
                .saturating_mul(2)
                .min(longest)
        } else {
            shortest
        };
        assert!((shortest..=longest).contains(&self.store_sync_interval_entries));
        let interval = usize::try_from(self.store_sync_interval_entries).unwrap_or(usize::MAX);
        self.store.set_open_transaction_writes_max(interval);
    }

    /// Sends held messages whose durability is now on disk (those of a term still current).
    fn release_held(&mut self, which: HeldRelease) {
        let mut released = std::mem::take(&mut self.held_until_sync);
        if which == HeldRelease::All {
            released.append(&mut self.held);
        }
        for (to, message) in released {
            if message.term() == self.term {
                self.send(to, message);
            }
        }
    }
}

/// Which held messages a completed sync releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeldRelease {
    /// Those the outstanding sync covered.
    UntilSync,
    /// Every held message: the log is durable up to its last entry.
    All,
}

impl Replica for RaftNode {
    type Message = Message;
    type Observer = RaftObserver;

    fn hash_message(message: &Message, hasher: &mut dyn std::hash::Hasher) {
        message.fingerprint(hasher);
    }

    fn id(&self) -> NodeId {
        self.id
    }

    fn set_wall_clock(&mut self, unix_ms: u64) {
        self.expiry.wall_unix_ms = unix_ms;
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Message) -> Result<()> {
        // Any node may write to us, members or not (a new leader's configuration may be
        // newer than ours; Raft answers without consulting its configuration).
        if from == self.id || from == NodeId::NONE || message.term() > TERM_MAX {
            self.stats.messages_dropped += 1;
            return Ok(());
        }
        if !self.fence(now, from, &message)? {
            return self.after_input(now);
        }
        match message {
            Message::PreVote { term, last } => self.handle_pre_vote(now, from, term, last),
            Message::PreVoteResponse { term, granted } => {
                self.handle_pre_vote_response(now, from, term, granted)?;
            }
            Message::Vote { term, last, .. } => self.handle_vote(now, from, term, last)?,
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
            Message::InstallSnapshot { chunk, .. } => {
                self.handle_install_snapshot(now, from, chunk.0)?;
            }
            Message::InstallSnapshotResponse {
                position, result, ..
            } => self.handle_install_snapshot_response(now, from, position, result)?,
            Message::TimeoutNow { last, .. } => self.handle_timeout_now(now, from, last)?,
        }
        self.after_input(now)
    }

    fn handle_request(
        &mut self,
        now: Instant,
        request_id: RequestId,
        request: Request,
    ) -> Result<()> {
        self.handle_client_request(now, request_id, request)?;
        self.after_input(now)
    }

    fn handle_tick(&mut self, now: Instant) -> Result<()> {
        self.expire_session_reads(now);
        self.transfer_tick(now);
        if matches!(self.role, Role::Leader(_)) {
            self.leader_tick(now)?;
            self.expiry_sweep(now)?;
        } else {
            self.election_tick(now)?;
        }
        self.after_input(now)
    }

    fn handle_flush(&mut self, now: Instant) -> Result<()> {
        // Completes an outstanding sync too, so everything held may go.
        self.log.sync()?;
        self.release_held(HeldRelease::All);
        self.close_batch(now)
    }

    fn start_flush(&mut self, now: Instant) -> Result<Option<PendingSync>> {
        let pending = if self.log.sync_outstanding() {
            None
        } else {
            // Nothing outstanding: what waited for an earlier sync may go (a truncation
            // may have completed it), and what is held now waits for this one.
            self.release_held(HeldRelease::UntilSync);
            let pending = self.log.start_sync()?;
            if pending.is_some() {
                self.held_until_sync.append(&mut self.held);
            } else {
                self.release_held(HeldRelease::All);
            }
            pending
        };
        self.close_batch(now)?;
        Ok(pending)
    }

    fn handle_sync_completed(&mut self, now: Instant, completed: CompletedSync) -> Result<()> {
        self.log.finish_sync(completed)?;
        if self.log.sync_outstanding() {
            // A stale completion: the log completed that sync itself (a truncation), and
            // the one outstanding now is newer; what waits for it keeps waiting.
            return Ok(());
        }
        self.release_held(HeldRelease::UntilSync);
        self.leader_flush(now)?;
        self.after_input(now)
    }

    fn poll_output(&mut self) -> Option<Output<Message>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let role_deadline = match &self.role {
            Role::Leader(state) => self
                .next_lease_deadline()
                .map_or(state.next_deadline(), |lease| {
                    lease.min(state.next_deadline())
                }),
            _ => self.election_deadline.unwrap_or(Instant::ZERO),
        };
        let session_deadline = self.session_reads.front().map(|read| read.deadline);
        let deadline = [session_deadline, self.transfer_deadline()]
            .into_iter()
            .flatten()
            .fold(role_deadline, Instant::min);
        Some(deadline)
    }

    fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        self.store.visible_state()
    }
}
