//! What Raft peers say to each other.
//!
//! Six messages, in three request/response pairs: the pre-vote (a dry run of an election
//! that changes no state, so a node that cannot win never bumps anyone's term), the vote,
//! and AppendEntries (which doubles as heartbeat and as the leadership confirmation round
//! of a ReadIndex read). Every message carries the sender's term, and term fencing is
//! applied before anything else looks at a message (see `node.rs`).
//!
//! Messages arrive from the network, so nothing in them is trusted: a receiver validates
//! indexes, terms and payloads and drops (and counts) what does not make sense instead of
//! panicking. Payloads are the encoded [`Command`]s, kept opaque on the wire so that the
//! bytes a follower stores are exactly the bytes the leader stored.

pub use super::command::Command;
use replikv_core::{LogIndex, LogPosition, Term};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A message between two Raft peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// "Would you vote for me at `term` (one above my current term), given my last entry
    /// `last`?" Changes nothing on the receiver.
    PreVote { term: Term, last: LogPosition },
    /// The answer to a pre-vote. `term` echoes the proposed term when granted, else the
    /// receiver's current term.
    PreVoteResponse { term: Term, granted: bool },
    /// "Vote for me at `term`; my last entry is `last`."
    Vote { term: Term, last: LogPosition },
    /// The answer to a vote, sent only once the receiver's hard state is durable.
    VoteResponse { term: Term, granted: bool },
    /// Entries following `previous`, and the leader's commit index. Empty entries make a
    /// heartbeat. `read_sequence` numbers the leader's ReadIndex confirmation rounds.
    Append {
        term: Term,
        previous: LogPosition,
        entries: Vec<WireEntry>,
        commit: LogIndex,
        read_sequence: u64,
    },
    /// The answer to an append.
    AppendResponse {
        term: Term,
        result: AppendResult,
        read_sequence: u64,
    },
}

impl Message {
    /// The sender's term.
    #[must_use]
    pub fn term(&self) -> Term {
        match self {
            Message::PreVote { term, .. }
            | Message::PreVoteResponse { term, .. }
            | Message::Vote { term, .. }
            | Message::VoteResponse { term, .. }
            | Message::Append { term, .. }
            | Message::AppendResponse { term, .. } => *term,
        }
    }
}

/// How a follower answered an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendResult {
    /// The follower's log matches the leader's up to `matched`, durably.
    Accepted { matched: LogIndex },
    /// The consistency check failed; the leader should retry from `next` (the follower's
    /// last index + 1, or the first index of the conflicting term): fast backtracking.
    Rejected { next: LogIndex },
}

/// One log entry on the wire: its position and its encoded [`Command`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    pub position: LogPosition,
    pub payload: Vec<u8>,
}

/// Shows the payload's size and a 64-bit FNV-1a digest instead of its bytes: the
/// simulator hashes the debug text of every message, and a byte list printed number by
/// number (or a 1 MiB value printed in full) would dominate its run time. The digest
/// keeps two different payloads apart in that hash.
impl fmt::Debug for WireEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digest = self
            .payload
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
                (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
            });
        let kind = super::command::kind_name(&self.payload);
        let length = self.payload.len();
        write!(f, "{} {kind} {length}B#{digest:016x}", self.position)
    }
}
