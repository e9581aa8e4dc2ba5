//! What Raft peers say to each other.
//!
//! Nine messages: four request/response pairs and a command. The pairs are the pre-vote (a dry run of an election
//! that changes no state, so a node that cannot win never bumps anyone's term), the vote,
//! AppendEntries (which doubles as heartbeat and as the leadership confirmation round
//! of a ReadIndex read), and InstallSnapshot (one chunk of the leader's state, for a
//! follower the log cannot catch up; see `snapshot.rs`); the command is `TimeoutNow`, a
//! leader handing over its leadership to a caught-up follower (`transfer.rs`). Every
//! message carries the
//! sender's term, and term fencing is applied before anything else looks at a message
//! (see `node.rs`).
//!
//! Messages arrive from the network, so nothing in them is trusted: a receiver validates
//! indexes, terms and payloads and drops (and counts) what does not make sense instead of
//! panicking. Payloads are the encoded [`Command`]s, kept opaque on the wire so that the
//! bytes a follower stores are exactly the bytes the leader stored.

pub use super::command::Command;
use replikv_core::{Key, LogIndex, LogPosition, Term};
use replikv_storage::store::SnapshotChunk;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::hash::Hasher;

/// A message between two Raft peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// "Would you vote for me at `term` (one above my current term), given my last entry
    /// `last`?" Changes nothing on the receiver.
    PreVote { term: Term, last: LogPosition },
    /// The answer to a pre-vote. `term` echoes the proposed term when granted, else the
    /// receiver's current term.
    PreVoteResponse { term: Term, granted: bool },
    /// "Vote for me at `term`; my last entry is `last`." `transfer`: the candidate
    /// campaigns because its leader handed leadership over (`TimeoutNow`), so voters
    /// that still hear from that leader do not refuse it (see `transfer.rs`).
    Vote {
        term: Term,
        last: LogPosition,
        #[serde(default)]
        transfer: bool,
    },
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
    /// One chunk of the leader's state store at the snapshot's position
    /// (`chunk.position`), starting after `chunk.after`; `chunk.done` marks the last.
    InstallSnapshot { term: Term, chunk: WireChunk },
    /// The answer to a snapshot chunk, about the snapshot at `position`.
    InstallSnapshotResponse {
        term: Term,
        position: LogPosition,
        result: SnapshotResult,
    },
    /// From the leader of `term` to a follower whose log holds everything up to `last`
    /// (the leader's last entry): "start an election now", skipping the pre-vote and the
    /// election timeout (leadership transfer, see `transfer.rs`).
    TimeoutNow { term: Term, last: LogPosition },
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
            | Message::AppendResponse { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::InstallSnapshotResponse { term, .. }
            | Message::TimeoutNow { term, .. } => *term,
        }
    }
}

impl Message {
    /// Feeds the simulator's trace hash ([`Replica::hash_message`]): appends and their
    /// answers, which are most of the traffic, field by field (an entry by its position
    /// and payload bytes); the rarer messages by their `Debug` text.
    ///
    /// [`Replica::hash_message`]: replikv_core::replica::Replica::hash_message
    pub fn fingerprint(&self, hasher: &mut dyn Hasher) {
        match self {
            Message::Append {
                term,
                previous,
                entries,
                commit,
                read_sequence,
            } => {
                hasher.write_u8(1);
                for number in [term.0, previous.term.0, previous.index.0, commit.0] {
                    hasher.write_u64(number);
                }
                hasher.write_u64(*read_sequence);
                hasher.write_usize(entries.len());
                for entry in entries {
                    hasher.write_u64(entry.position.term.0);
                    hasher.write_u64(entry.position.index.0);
                    hasher.write_usize(entry.payload.len());
                    hasher.write(&entry.payload);
                }
            }
            Message::AppendResponse {
                term,
                result,
                read_sequence,
            } => {
                hasher.write_u8(2);
                hasher.write_u64(term.0);
                hasher.write_u64(*read_sequence);
                let (kind, index) = match result {
                    AppendResult::Accepted { matched } => (0, matched.0),
                    AppendResult::Rejected { next } => (1, next.0),
                    AppendResult::SnapshotNeeded => (2, 0),
                };
                hasher.write_u8(kind);
                hasher.write_u64(index);
            }
            other => {
                hasher.write_u8(0);
                replikv_core::replica::hash_debug(other, hasher);
            }
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
    /// The conflict reaches an entry the follower holds as committed (and may have
    /// applied): truncation cannot repair it, only a snapshot that replaces the store and
    /// the log. A correct leader in `majority` mode never causes it; lossy commit modes
    /// can.
    SnapshotNeeded,
}

/// How a follower answered a snapshot chunk.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotResult {
    /// The install of the snapshot goes on: send the chunk after `after` (`None`: from
    /// the beginning). Not a durability claim: after a crash the follower reports the
    /// resume point it really has, and the leader follows it.
    Resume { after: Option<Key> },
    /// The follower's store holds the snapshot's state durably and its log continues
    /// after the snapshot's position (or it held that position committed already).
    Installed,
}

/// A snapshot chunk on the wire. Its `Debug` shows the chunk's extent, size and a digest
/// instead of every key and value, for the same reason as [`WireEntry`]'s.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireChunk(pub SnapshotChunk);

impl fmt::Debug for WireChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chunk = &self.0;
        let mut digest = 0xcbf2_9ce4_8422_2325_u64;
        for entry in &chunk.entries {
            let value = entry
                .value
                .as_ref()
                .map_or(&[][..], |value| value.as_bytes());
            let bytes = entry.key.as_bytes().iter().chain(value);
            for byte in bytes.chain(&entry.version.0.to_le_bytes()) {
                digest = (digest ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        let after = chunk
            .after
            .as_ref()
            .map_or("-".to_owned(), |key| format!("{key:?}"));
        let (count, bytes) = (chunk.entries.len(), chunk.size_bytes());
        let done = if chunk.done { " done" } else { "" };
        write!(
            f,
            "{} after={after} {count}x {bytes}B#{digest:016x}{done}",
            chunk.position
        )
    }
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
