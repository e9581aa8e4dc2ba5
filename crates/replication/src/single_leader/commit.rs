//! Commit modes: when the leader tells a client its write is done.
//!
//! Raft commits an entry once a majority holds it durably, and that is the only point at
//! which a write is safe from any single failover. Databases offer other points, and
//! replikv offers them all, per replication group, as a [`CommitMode`]:
//!
//! - `majority`: Raft's rule. Acknowledged = durable on a majority (leader included).
//! - `all`: fully synchronous. Acknowledged = durable on every voter. One slow or dead
//!   follower stalls every write, which is the price.
//! - `semi-sync k`: the leader plus `k` followers, MySQL's and PostgreSQL's semi-synchronous
//!   replication. `semi-sync any k` waits for any `k` followers (PostgreSQL's `ANY k`);
//!   `semi-sync first k` waits for the `k` followers of highest priority (lowest node id)
//!   among those the leader heard from within an election timeout, padded with the next
//!   ones by priority when fewer are reachable (PostgreSQL's `FIRST k`: a standby that
//!   stops answering hands its place to the next in line).
//! - `async`: acknowledged once durable on the leader alone; followers copy later.
//!
//! ## The arithmetic
//!
//! A write acknowledged after `a` durable copies (the leader's included) survives every
//! failover exactly when every possible new leader holds it. A new leader needs the votes
//! of an election quorum `q = n / 2 + 1`, and a voter refuses a candidate whose log is
//! less up to date than its own; so if every election quorum meets every acknowledging
//! set, which is `a + q > n`, the new leader is at least as up to date as a voter holding
//! the write, and holds it (Raft's leader completeness argument uses nothing else about
//! the acknowledging set). With `a + q <= n` there is a quorum of nodes that all lack the
//! write, and it can elect a leader: the configuration is **lossy**. replikv accepts a
//! lossy configuration, because that trade is exactly what users choose async
//! replication for, but flags it in status ([`CommitMode::is_lossy`]) and counts every
//! acknowledged write a failover discards (see `mod.rs`, "Failover that never hides
//! loss").
//!
//! | n | majority | all | semi-sync 1 | semi-sync 2 | async |
//! |---|----------|-----|-------------|-------------|-------|
//! | 1 | safe     | safe| invalid     | invalid     | safe  |
//! | 3 | safe     | safe| safe        | safe        | lossy |
//! | 5 | safe     | safe| lossy       | safe        | lossy |
//!
//! ## Two indexes
//!
//! The leader keeps Raft's **commit index** exactly as Raft defines it (majority, and
//! only through an entry of its own term), widened to the acknowledgement point when the
//! mode is safe: everything at or below it survives any failover, followers apply up to
//! it, and nothing at or below it is ever truncated. Beside it, the **acknowledged
//! index** is the mode's point, under the same own-term rule; clients are answered for
//! entries at or below it. In a safe mode the acknowledged index never exceeds the commit
//! index; in a lossy mode it runs ahead, and the leader alone applies that far (its
//! replies carry the store's outcome). Only the leader's store can therefore hold a
//! write that a failover takes back, and only a deposed leader ever needs its store
//! rebuilt.

use replikv_core::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Which followers a `semi-sync` leader waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncChoice {
    /// Any `k` followers.
    Any,
    /// The `k` reachable followers of highest priority (lowest id).
    First,
}

/// When the leader acknowledges a write; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CommitMode {
    /// Durable on a majority of the voters (Raft).
    #[default]
    Majority,
    /// Durable on every voter.
    All,
    /// Durable on the leader and `followers` followers.
    SemiSync {
        followers: usize,
        choice: SyncChoice,
    },
    /// Durable on the leader.
    Async,
}

/// Votes needed to elect a leader among `voters`.
#[must_use]
pub fn election_quorum(voters: usize) -> usize {
    voters / 2 + 1
}

impl CommitMode {
    /// Durable copies (the leader's included) a write needs before it is acknowledged, in
    /// a group of `voters`.
    #[must_use]
    pub fn acknowledging_copies(self, voters: usize) -> usize {
        match self {
            CommitMode::Majority => election_quorum(voters),
            CommitMode::All => voters,
            CommitMode::SemiSync { followers, .. } => followers + 1,
            CommitMode::Async => 1,
        }
    }

    /// Whether a failover can discard acknowledged writes: acknowledging copies plus an
    /// election quorum do not exceed the voters.
    #[must_use]
    pub fn is_lossy(self, voters: usize) -> bool {
        self.acknowledging_copies(voters) + election_quorum(voters) <= voters
    }

    /// Checks that the mode can be met by `voters` voters.
    pub fn validate(self, voters: usize) -> Result<()> {
        if voters == 0 {
            return Err(Error::InvalidInput(
                "a group needs at least one voter".into(),
            ));
        }
        if let CommitMode::SemiSync { followers, .. } = self
            && (followers == 0 || followers >= voters)
        {
            return Err(Error::InvalidInput(format!(
                "commit mode {self}: needs 1..={} followers in a group of {voters}",
                voters - 1
            )));
        }
        Ok(())
    }

    /// A one-line statement of what the mode guarantees in a group of `voters`, for
    /// status pages and logs.
    #[must_use]
    pub fn describe(self, voters: usize) -> String {
        let copies = self.acknowledging_copies(voters);
        let quorum = election_quorum(voters);
        if self.is_lossy(voters) {
            format!(
                "{self}: lossy — acknowledged after {copies} of {voters} durable copies; \
                 {copies} + election quorum {quorum} <= {voters}, so a failover can discard \
                 acknowledged writes (each one is counted and reported)"
            )
        } else {
            format!(
                "{self}: safe — acknowledged after {copies} of {voters} durable copies; \
                 {copies} + election quorum {quorum} > {voters}, so no failover loses an \
                 acknowledged write"
            )
        }
    }
}

impl fmt::Display for CommitMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitMode::Majority => f.write_str("majority"),
            CommitMode::All => f.write_str("all"),
            CommitMode::SemiSync {
                followers,
                choice: SyncChoice::Any,
            } => write!(f, "semi-sync any {followers}"),
            CommitMode::SemiSync {
                followers,
                choice: SyncChoice::First,
            } => write!(f, "semi-sync first {followers}"),
            CommitMode::Async => f.write_str("async"),
        }
    }
}

/// Parses the names [`Display`](fmt::Display) prints: `majority`, `all`, `async`,
/// `semi-sync any K`, `semi-sync first K`, and `semi-sync K` (any). Dashes, spaces and
/// underscores separate words alike (`semi-sync-first-1`).
impl FromStr for CommitMode {
    type Err = Error;
    fn from_str(text: &str) -> Result<CommitMode> {
        let normalized = text.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        let words: Vec<&str> = normalized.split('-').filter(|w| !w.is_empty()).collect();
        let invalid = || {
            Error::InvalidInput(format!(
                "unknown commit mode {text:?} (expected majority, all, async, \
                 semi-sync any K or semi-sync first K)"
            ))
        };
        let parse_count = |word: &str| word.parse::<usize>().map_err(|_| invalid());
        match words.as_slice() {
            ["majority"] => Ok(CommitMode::Majority),
            ["all"] => Ok(CommitMode::All),
            ["async"] => Ok(CommitMode::Async),
            ["semi", "sync", count] => Ok(CommitMode::SemiSync {
                followers: parse_count(count)?,
                choice: SyncChoice::Any,
            }),
            ["semi", "sync", choice, count] => {
                let choice = match *choice {
                    "any" => SyncChoice::Any,
                    "first" => SyncChoice::First,
                    _ => return Err(invalid()),
                };
                Ok(CommitMode::SemiSync {
                    followers: parse_count(count)?,
                    choice,
                })
            }
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(text: &str) -> CommitMode {
        text.parse().expect("valid mode")
    }

    #[test]
    fn the_arithmetic_table_of_the_module_doc_holds() {
        let cases = [
            (1, "majority", Some(false)),
            (1, "all", Some(false)),
            (1, "semi-sync 1", None),
            (1, "async", Some(false)),
            (3, "majority", Some(false)),
            (3, "all", Some(false)),
            (3, "semi-sync 1", Some(false)),
            (3, "semi-sync 2", Some(false)),
            (3, "async", Some(true)),
            (5, "majority", Some(false)),
            (5, "all", Some(false)),
            (5, "semi-sync 1", Some(true)),
            (5, "semi-sync first 1", Some(true)),
            (5, "semi-sync 2", Some(false)),
            (5, "async", Some(true)),
            (4, "semi-sync 1", Some(false)),
            (6, "semi-sync 2", Some(false)),
            (6, "semi-sync 1", Some(true)),
        ];
        for (voters, text, lossy) in cases {
            let mode = mode(text);
            match lossy {
                None => assert!(mode.validate(voters).is_err(), "{text} with {voters}"),
                Some(lossy) => {
                    mode.validate(voters).expect("valid");
                    assert_eq!(mode.is_lossy(voters), lossy, "{text} with {voters}");
                }
            }
        }
    }

    #[test]
    fn lossy_exactly_when_some_quorum_misses_every_acknowledging_set() {
        // Brute force over small groups: a lossy mode has an election quorum disjoint
        // from some acknowledging set, a safe one has none.
        for voters in 1..=7_usize {
            for copies in 1..=voters {
                let quorum = election_quorum(voters);
                let disjoint_possible = copies + quorum <= voters;
                let mode = if copies == 1 {
                    CommitMode::Async
                } else if copies == voters {
                    CommitMode::All
                } else {
                    CommitMode::SemiSync {
                        followers: copies - 1,
                        choice: SyncChoice::Any,
                    }
                };
                assert_eq!(mode.acknowledging_copies(voters), copies);
                assert_eq!(
                    mode.is_lossy(voters),
                    disjoint_possible,
                    "{mode} of {voters}"
                );
            }
        }
    }

    #[test]
    fn names_round_trip_and_bad_names_are_refused() {
        for text in [
            "majority",
            "all",
            "async",
            "semi-sync any 2",
            "semi-sync first 1",
        ] {
            assert_eq!(mode(text).to_string(), text);
        }
        assert_eq!(mode("semi_sync_first_1"), mode("semi-sync first 1"));
        assert_eq!(mode("Semi-Sync 2"), mode("semi-sync any 2"));
        for bad in ["", "quorum", "semi-sync", "semi-sync some 1", "semi-sync x"] {
            assert!(bad.parse::<CommitMode>().is_err(), "{bad:?}");
        }
        assert!(mode("semi-sync 0").validate(3).is_err());
        assert!(mode("semi-sync 3").validate(3).is_err());
    }

    #[test]
    fn descriptions_say_lossy_or_safe() {
        assert!(CommitMode::Async.describe(3).contains("lossy"));
        assert!(CommitMode::Majority.describe(3).contains("safe"));
    }
}
