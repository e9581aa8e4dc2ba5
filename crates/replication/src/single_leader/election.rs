//! Elections: followers time out, pre-vote, campaign, and vote.
//!
//! A follower that hears nothing from a leader for a randomized election timeout (drawn
//! from the node's seeded generator, so runs replay) does not campaign at once: it first
//! runs a *pre-vote* for `term + 1`, which changes no state anywhere. Only if a majority
//! would vote for it (its log is at least as up to date as theirs, and they have not heard
//! from a leader recently) does it bump its term and ask for real votes. A node cut off
//! from the majority therefore keeps its term, and does not force a healthy leader to step
//! down when it comes back.
//!
//! A vote is granted at most once per term, durably (the hard state is stored before the
//! answer is sent), and only to a candidate whose last entry is at least as up to date as
//! ours: [`LogPosition`] orders by term then index, which is exactly that comparison.
//! Winning a majority makes the candidate leader (see `leader.rs`).
//!
//! Only a voter of its own current configuration campaigns (see `membership.rs`): a
//! learner, a removed node or one not yet added keeps its timer running and does nothing
//! when it expires. Votes are asked of the configuration's voters and only their grants
//! count; a node answers a (pre-)vote whatever its own configuration says of the
//! candidate (the candidate may know a newer configuration than ours).
//!
//! With lease reads enabled, a node just opened also refuses (pre-)votes for one minimum
//! election timeout after its first tick: it may have confirmed a leader's lease round
//! just before it crashed, and its leader contact did not survive the crash.

use super::message::Message;
use super::node::{RaftNode, Role};
use super::planted::planted;
use replikv_core::error::Result;
use replikv_core::{Instant, LogPosition, NodeId, Term};
use std::collections::BTreeSet;

impl RaftNode {
    /// A tick while not leader: arms the first deadline, or starts a pre-vote when the
    /// election deadline passed.
    pub(super) fn election_tick(&mut self, now: Instant) -> Result<()> {
        let Some(deadline) = self.election_deadline else {
            if self.config.lease_reads_enabled {
                let quiet = std::time::Duration::from_millis(self.config.election_timeout_ms_min);
                self.votes_refused_until = Some(now + quiet);
            }
            self.reset_election_deadline(now);
            return Ok(());
        };
        if now < deadline {
            return Ok(());
        }
        if !self.is_voter(self.id) {
            // Not a voter here: never campaign (see `membership.rs`).
            self.stats.elections_skipped_not_voter += 1;
            self.reset_election_deadline(now);
            return Ok(());
        }
        if !self.config.pre_vote {
            return self.start_election(now, false);
        }
        self.start_pre_vote(now)
    }

    fn start_pre_vote(&mut self, now: Instant) -> Result<()> {
        self.stats.pre_votes_started += 1;
        self.role = Role::PreCandidate {
            granted: BTreeSet::from([self.id]),
        };
        self.reset_election_deadline(now);
        let term = Term(self.term.0 + 1);
        let last = self.log.last_position();
        for peer in self.voter_peers() {
            self.send(peer, Message::PreVote { term, last });
        }
        self.maybe_win_pre_vote(now)
    }

    fn maybe_win_pre_vote(&mut self, now: Instant) -> Result<()> {
        let won = matches!(&self.role, Role::PreCandidate { granted } if self.is_quorum(granted));
        if won {
            self.start_election(now, false)?;
        }
        Ok(())
    }

    /// Campaigns for the next term; `transfer`: because the leader handed leadership
    /// over (`transfer.rs`), which the votes say.
    pub(super) fn start_election(&mut self, now: Instant, transfer: bool) -> Result<()> {
        self.stats.elections_started += 1;
        let term = Term(self.term.0 + 1);
        self.set_hard_state(term, Some(self.id))?;
        self.leader_contact = None;
        self.role = Role::Candidate {
            granted: BTreeSet::from([self.id]),
        };
        self.reset_election_deadline(now);
        let last = self.log.last_position();
        for peer in self.voter_peers() {
            self.send(
                peer,
                Message::Vote {
                    term,
                    last,
                    transfer,
                },
            );
        }
        self.maybe_win_election(now)
    }

    fn maybe_win_election(&mut self, now: Instant) -> Result<()> {
        let won = matches!(&self.role, Role::Candidate { granted } if self.is_quorum(granted));
        if won {
            self.become_leader(now)?;
        }
        Ok(())
    }

    /// Whether `granted` holds a majority of the current configuration's voters.
    fn is_quorum(&self, granted: &BTreeSet<NodeId>) -> bool {
        let voters = granted.iter().filter(|node| self.is_voter(**node)).count();
        voters >= self.quorum()
    }

    /// Whether a candidate whose last entry is `last` may get our (pre-)vote as far as logs
    /// go.
    fn log_is_up_to_date(&self, last: LogPosition) -> bool {
        last >= self.log.last_position() || planted!(self.config, VoteWithoutLogCheck)
    }

    pub(super) fn handle_pre_vote(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        last: LogPosition,
    ) {
        let granted =
            term > self.term && self.log_is_up_to_date(last) && !self.in_leader_lease(now);
        let answer_term = if granted { term } else { self.term };
        self.send(
            from,
            Message::PreVoteResponse {
                term: answer_term,
                granted,
            },
        );
    }

    pub(super) fn handle_pre_vote_response(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        granted: bool,
    ) -> Result<()> {
        // A granted pre-vote echoes the proposed term, one above ours.
        if !granted || term != Term(self.term.0 + 1) {
            return Ok(());
        }
        if let Role::PreCandidate { granted } = &mut self.role {
            granted.insert(from);
        }
        self.maybe_win_pre_vote(now)
    }

    pub(super) fn handle_vote(
        &mut self,
        now: Instant,
        from: NodeId,
        term: Term,
        last: LogPosition,
    ) -> Result<()> {
        debug_assert_eq!(term, self.term, "fenced");
        let free = self.voted_for.is_none() || self.voted_for == Some(from);
        let granted = free && self.leader().is_none() && self.log_is_up_to_date(last);
        if granted {
            // Durable before the answer leaves (set_hard_state syncs).
            self.set_hard_state(term, Some(from))?;
            self.reset_election_deadline(now);
        }
        self.send(
            from,
            Message::VoteResponse {
                term: self.term,
                granted,
            },
        );
        Ok(())
    }

    pub(super) fn handle_vote_response(
        &mut self,
        now: Instant,
        from: NodeId,
        granted: bool,
    ) -> Result<()> {
        if !granted {
            return Ok(());
        }
        if let Role::Candidate { granted } = &mut self.role {
            granted.insert(from);
        }
        self.maybe_win_election(now)
    }
}
