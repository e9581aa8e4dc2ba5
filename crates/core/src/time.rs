//! Time as a plain number, passed into the protocol core.
//!
//! The core never reads a clock. The simulator hands each node a virtual time (possibly
//! skewed per node); the server hands it the real monotonic clock converted to
//! nanoseconds since the process started. Durations are `std::time::Duration`, which is a
//! value, not a clock.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in (virtual or real) time, in nanoseconds since an arbitrary origin that is
/// fixed for one process run.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Instant {
    nanos: u64,
}

impl Instant {
    pub const ZERO: Instant = Instant { nanos: 0 };

    #[must_use]
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant { nanos }
    }

    #[must_use]
    pub const fn from_millis(millis: u64) -> Instant {
        Instant {
            nanos: millis * 1_000_000,
        }
    }

    #[must_use]
    pub const fn as_nanos(self) -> u64 {
        self.nanos
    }

    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.nanos / 1_000_000
    }

    /// Time elapsed since `earlier`, or zero if `earlier` is in the future (clocks handed
    /// to a node never go backwards, but a timestamp from elsewhere may be ahead).
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.nanos.saturating_sub(earlier.nanos))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, duration: Duration) -> Instant {
        let nanos = u64::try_from(duration.as_nanos()).expect("duration fits in u64 nanos");
        Instant {
            nanos: self.nanos.checked_add(nanos).expect("instant overflow"),
        }
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, duration: Duration) -> Instant {
        let nanos = u64::try_from(duration.as_nanos()).expect("duration fits in u64 nanos");
        Instant {
            nanos: self.nanos.saturating_sub(nanos),
        }
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.nanos / 1_000_000;
        let micros = (self.nanos / 1_000) % 1_000;
        write!(f, "{millis}.{micros:03}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic() {
        let t = Instant::from_millis(10);
        assert_eq!((t + Duration::from_millis(5)).as_millis(), 15);
        assert_eq!((t - Duration::from_millis(50)), Instant::ZERO);
        assert_eq!(
            Instant::from_millis(3).saturating_duration_since(Instant::from_millis(5)),
            Duration::ZERO
        );
        assert_eq!(t.to_string(), "10.000ms");
    }
}
