//! Key expiry: what a write does to a key's time to live, and the rules that decide it.
//!
//! A key may carry an absolute expiry time, `expires_at_unix_ms`, in milliseconds of the
//! Unix epoch. Users speak in Redis's terms (`SET k v EX 10`, `EXPIRE k 10 GT`,
//! `PERSIST k`), most of them relative ("in ten seconds"). A replicated state machine
//! cannot resolve "in ten seconds" with the clock of whichever replica applies the
//! entry: replicas apply at different times and their clocks disagree, and they would
//! store different expiry times for the same log. So a relative time is resolved against
//! the **stamp** of the log entry that carries it: the leader's wall-clock time, written
//! into the entry when it was proposed. Every replica reads the same stamp, so every
//! replica computes the same `expires_at_unix_ms`. The same stamp decides whether a key
//! is still present when a conditional write (compare-and-set, SET NX/XX, EXPIRE XX)
//! applies: an expired key is absent at that log position, on every replica alike.
//!
//! This module holds the pure rules, shared by the store (which applies them), the
//! replication layer (which validates requests) and the servers (which parse commands):
//! [`Expiry`] says what a write does to the expiry time, [`Expiry::resolve`] turns it
//! into an absolute time given the entry's stamp and the key's current expiry, and
//! [`ExpireCondition`] is Redis's `NX | XX | GT | LT` of the EXPIRE family. Nothing here
//! reads a clock: stamps come in as numbers.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The latest expiry time a key may have: the last millisecond of the year 9999 (what
/// Redis clients can express as a date, and far from any overflow). Relative times that
/// would pass it are refused where requests enter.
pub const EXPIRES_AT_UNIX_MS_MAX: u64 = 253_402_300_799_999;

/// What a write does to its key's expiry time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Expiry {
    /// The key lives forever (plain `SET`, `PERSIST`).
    #[default]
    Clear,
    /// The key keeps the expiry time it has (`SET ... KEEPTTL`; compare-and-set, which
    /// like Redis's `INCR` and `APPEND` changes a value, not its time to live).
    Keep,
    /// The key expires this many milliseconds after the stamp of the log entry that
    /// carries the write (`EX`, `PX`, `EXPIRE`, `PEXPIRE`).
    AfterMs(u64),
    /// The key expires at this Unix time in milliseconds (`EXAT`, `PXAT`, `EXPIREAT`,
    /// `PEXPIREAT`).
    AtUnixMs(u64),
}

impl Expiry {
    /// Refuses a time beyond [`EXPIRES_AT_UNIX_MS_MAX`] (a relative time is compared as
    /// if it started at the epoch: a relative time that large could never be valid).
    pub fn check(self) -> Result<()> {
        match self {
            Expiry::AfterMs(time) | Expiry::AtUnixMs(time) if time > EXPIRES_AT_UNIX_MS_MAX => {
                Err(Error::InvalidInput(format!(
                    "invalid expire time: {time} ms exceeds {EXPIRES_AT_UNIX_MS_MAX}"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The absolute expiry time the key has after the write, given the stamp of the
    /// entry that carries it and the key's current expiry time (`None`: none).
    #[must_use]
    pub fn resolve(self, stamp_unix_ms: u64, current: Option<u64>) -> Option<u64> {
        match self {
            Expiry::Clear => None,
            Expiry::Keep => current,
            Expiry::AfterMs(after) => Some(
                stamp_unix_ms
                    .saturating_add(after)
                    .min(EXPIRES_AT_UNIX_MS_MAX),
            ),
            Expiry::AtUnixMs(at) => Some(at.min(EXPIRES_AT_UNIX_MS_MAX)),
        }
    }
}

/// Whether an entry whose expiry time is `expires_at_unix_ms` is expired at `now_unix_ms`:
/// a key expires at its expiry time, not one millisecond after (Redis's rule).
#[must_use]
pub fn is_expired(expires_at_unix_ms: Option<u64>, now_unix_ms: u64) -> bool {
    expires_at_unix_ms.is_some_and(|at| at <= now_unix_ms)
}

/// The condition of an `EXPIRE`-family command (Redis 7's options).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExpireCondition {
    /// Always set the expiry (no option).
    #[default]
    Always,
    /// `NX`: only if the key has no expiry.
    IfNone,
    /// `XX`: only if the key has an expiry.
    IfSome,
    /// `GT`: only if the new expiry is later than the current one (no expiry counts as
    /// infinitely late, so `GT` never applies to a key without one).
    IfLater,
    /// `LT`: only if the new expiry is earlier than the current one (no expiry counts as
    /// infinitely late, so `LT` always applies to a key without one).
    IfEarlier,
}

impl ExpireCondition {
    /// Whether a present key whose expiry is `current` takes the expiry `new`.
    #[must_use]
    pub fn allows(self, current: Option<u64>, new: Option<u64>) -> bool {
        let late = |time: Option<u64>| time.unwrap_or(u64::MAX);
        match self {
            ExpireCondition::Always => true,
            ExpireCondition::IfNone => current.is_none(),
            ExpireCondition::IfSome => current.is_some(),
            ExpireCondition::IfLater => current.is_some() && late(new) > late(current),
            ExpireCondition::IfEarlier => late(new) < late(current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_resolve_from_the_stamp() {
        assert_eq!(Expiry::AfterMs(500).resolve(1_000, Some(7)), Some(1_500));
        assert_eq!(Expiry::AtUnixMs(9).resolve(1_000, None), Some(9));
        assert_eq!(Expiry::Keep.resolve(1_000, Some(7)), Some(7));
        assert_eq!(Expiry::Keep.resolve(1_000, None), None);
        assert_eq!(Expiry::Clear.resolve(1_000, Some(7)), None);
        let huge = Expiry::AfterMs(EXPIRES_AT_UNIX_MS_MAX).resolve(u64::MAX, None);
        assert_eq!(huge, Some(EXPIRES_AT_UNIX_MS_MAX));
    }

    #[test]
    fn expiry_is_inclusive() {
        assert!(!is_expired(None, u64::MAX));
        assert!(!is_expired(Some(10), 9));
        assert!(is_expired(Some(10), 10));
    }

    #[test]
    fn checks_refuse_times_beyond_the_maximum() {
        assert!(Expiry::AfterMs(EXPIRES_AT_UNIX_MS_MAX).check().is_ok());
        assert!(Expiry::AfterMs(EXPIRES_AT_UNIX_MS_MAX + 1).check().is_err());
        assert!(Expiry::AtUnixMs(u64::MAX).check().is_err());
        assert!(Expiry::Clear.check().is_ok());
    }

    #[test]
    fn conditions_follow_redis() {
        use ExpireCondition::*;
        // (condition, current, new, allowed)
        let table = [
            (Always, None, Some(5), true),
            (IfNone, None, Some(5), true),
            (IfNone, Some(3), Some(5), false),
            (IfSome, None, Some(5), false),
            (IfSome, Some(3), Some(5), true),
            (IfLater, None, Some(5), false),
            (IfLater, Some(3), Some(5), true),
            (IfLater, Some(5), Some(3), false),
            (IfEarlier, None, Some(5), true),
            (IfEarlier, Some(3), Some(5), false),
            (IfEarlier, Some(5), Some(3), true),
        ];
        for (condition, current, new, allowed) in table {
            assert_eq!(
                condition.allows(current, new),
                allowed,
                "{condition:?} {current:?} -> {new:?}"
            );
        }
    }
}
