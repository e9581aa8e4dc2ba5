//! Planted bugs: deliberate, plausible mistakes that the simulator must catch.
//!
//! A checker that never fails proves nothing. The simulator's checkers (linearizability,
//! durability, convergence) and the run-wide [`RaftObserver`](super::RaftObserver) are
//! only as good as the bugs they have been seen to catch, so this module keeps a handful
//! of real mistakes at hand, each one a line or two at the place where a tired engineer
//! would make it, and the simulator's test `planted` proves that each is caught within
//! 1,000 seeds.
//!
//! ## The switchboard
//!
//! Everything here exists only under the cargo feature `planted-bugs` (off by default).
//! With the feature on, [`RaftConfig`](super::RaftConfig) gains a field
//! `planted_bug: Option<PlantedBug>` (default `None`), chosen at runtime, so one build
//! can run the correct node and every broken variant side by side. At each bug site the
//! node asks [`planted!`](planted)`(config, Bug)`, a macro that reads that field with the
//! feature and expands to the constant `false` without it: a production build carries no
//! field, no enum and no branch, and the hooks stay one line long, which keeps merges in
//! the shared files easy.
//!
//! ## Adding a bug
//!
//! Add a variant to [`PlantedBug`] with a doc comment that names the mistake and what
//! should catch it, add it to [`PlantedBug::ALL`] and [`PlantedBug::name`], put a
//! `planted!(self.config, Variant)` hook at the site, and give it a case in the
//! simulator's `tests/planted.rs` (which fails if a variant has no case).

/// Whether the planted bug `$bug` (a [`PlantedBug`] variant name) is active in the
/// [`RaftConfig`](super::RaftConfig) `$config`; the constant `false` without the
/// `planted-bugs` feature.
macro_rules! planted {
    ($config:expr, $bug:ident) => {{
        #[cfg(feature = "planted-bugs")]
        let active = $config.planted_bug == Some($crate::single_leader::PlantedBug::$bug);
        #[cfg(not(feature = "planted-bugs"))]
        let active = false;
        active
    }};
}

pub(super) use planted;

/// A deliberate mistake a node can be built with (feature `planted-bugs` only).
#[cfg(feature = "planted-bugs")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PlantedBug {
    /// The leader counts its own log entries towards a majority, and applies and answers
    /// them, before its log synced them (ack before fsync). A crash of the leader loses
    /// entries it already reported committed.
    AckBeforeFsync,
    /// A follower serves `linearizable` reads from its local store, as if they were
    /// `local` ones: a read can miss a write acknowledged before it began.
    FollowerServesLinearizableReads,
    /// Votes (and pre-votes) are granted without comparing logs: a node missing committed
    /// entries can win an election and overwrite them.
    VoteWithoutLogCheck,
    /// The leader commits an entry of an older term as soon as a majority holds it, the
    /// mistake of Raft's Figure 8 (§5.4.2): a later leader can still overwrite it.
    CommitOlderTermByCounting,
    /// A restarted node forgets the vote of its durable hard state (as if the vote had
    /// not been synced): it can vote twice in one term, and two leaders share it.
    ForgetVoteOnRestart,
    /// A follower acknowledges an append at once instead of after the flush that makes
    /// it durable: a crash loses entries the leader counted towards a majority.
    FollowerAckBeforeDurable,
    /// In a lossy commit mode (async), the leader takes its acknowledgement point for a
    /// safe commit: followers apply writes a failover can still take back, and the
    /// group claims a durability it does not have.
    AsyncAckCountedAsSynchronous,
}

#[cfg(feature = "planted-bugs")]
impl PlantedBug {
    /// Every planted bug, for sweeps.
    pub const ALL: [PlantedBug; 7] = [
        PlantedBug::AckBeforeFsync,
        PlantedBug::FollowerServesLinearizableReads,
        PlantedBug::VoteWithoutLogCheck,
        PlantedBug::CommitOlderTermByCounting,
        PlantedBug::ForgetVoteOnRestart,
        PlantedBug::FollowerAckBeforeDurable,
        PlantedBug::AsyncAckCountedAsSynchronous,
    ];

    /// A short kebab-case name, for test output and command lines.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            PlantedBug::AckBeforeFsync => "ack-before-fsync",
            PlantedBug::FollowerServesLinearizableReads => "follower-serves-linearizable-reads",
            PlantedBug::VoteWithoutLogCheck => "vote-without-log-check",
            PlantedBug::CommitOlderTermByCounting => "commit-older-term-by-counting",
            PlantedBug::ForgetVoteOnRestart => "forget-vote-on-restart",
            PlantedBug::FollowerAckBeforeDurable => "follower-ack-before-durable",
            PlantedBug::AsyncAckCountedAsSynchronous => "async-ack-counted-as-synchronous",
        }
    }
}

#[cfg(feature = "planted-bugs")]
impl std::str::FromStr for PlantedBug {
    type Err = String;
    fn from_str(name: &str) -> Result<PlantedBug, String> {
        PlantedBug::ALL
            .into_iter()
            .find(|bug| bug.name() == name)
            .ok_or_else(|| format!("unknown planted bug {name:?}"))
    }
}

#[cfg(all(test, feature = "planted-bugs"))]
mod tests {
    use super::PlantedBug;

    #[test]
    fn names_round_trip() {
        for bug in PlantedBug::ALL {
            assert_eq!(bug.name().parse::<PlantedBug>(), Ok(bug));
        }
        assert!("no-such-bug".parse::<PlantedBug>().is_err());
    }
}
