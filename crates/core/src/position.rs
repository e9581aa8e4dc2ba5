//! Positions in a replicated log: terms (epochs of leadership) and indexes.
//!
//! Every single-leader strategy numbers its log entries with a [`LogIndex`] starting at 1
//! and stamps each with the [`Term`] of the leader that created it. A [`LogPosition`]
//! (term, index) names one entry unambiguously across leader changes: two logs that hold
//! an entry with the same position agree on every entry up to it (Raft's log matching).
//! Index 0 with term 0 is the empty position "before the first entry".

use serde::{Deserialize, Serialize};
use std::fmt;

/// A leadership epoch. Strictly increases each time a new leader is elected.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// The 1-based index of an entry in the log; 0 means "no entry".
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

impl LogIndex {
    pub const ZERO: LogIndex = LogIndex(0);

    /// The index right after this one. Panics on overflow, which cannot happen in practice
    /// (2^64 entries) and would be a bug.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0.checked_add(1).expect("log index overflow"))
    }

    /// The index right before this one, or `None` for index zero.
    #[must_use]
    pub fn previous(self) -> Option<LogIndex> {
        self.0.checked_sub(1).map(LogIndex)
    }
}

/// The position of one log entry: the term that wrote it and its index. Ordered first by
/// term then by index, which is exactly Raft's "at least as up to date" comparison of the
/// last entries of two logs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    pub term: Term,
    pub index: LogIndex,
}

impl LogPosition {
    /// The position before the first entry of any log.
    pub const ZERO: LogPosition = LogPosition {
        term: Term(0),
        index: LogIndex(0),
    };

    #[must_use]
    pub fn new(term: u64, index: u64) -> LogPosition {
        LogPosition {
            term: Term(term),
            index: LogIndex(index),
        }
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "i{}", self.0)
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.index.0, self.term.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_term_before_index() {
        assert!(LogPosition::new(2, 1) > LogPosition::new(1, 100));
        assert!(LogPosition::new(2, 5) > LogPosition::new(2, 4));
        assert_eq!(LogPosition::ZERO, LogPosition::default());
    }

    #[test]
    fn index_steps() {
        assert_eq!(LogIndex(4).next(), LogIndex(5));
        assert_eq!(LogIndex(1).previous(), Some(LogIndex(0)));
        assert_eq!(LogIndex::ZERO.previous(), None);
    }
}
