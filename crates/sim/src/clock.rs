//! Per-node clocks: skewed, possibly drifting, never going backwards.
//!
//! Real nodes do not share a clock. Each simulated node reads
//! `virtual time + base + offset`, where `offset` lies within plus or minus the configured
//! skew and `base` equals the skew bound, so a node's time is never negative. With drift
//! enabled, the offset takes a bounded random step at regular intervals. What a node is
//! handed is additionally clamped to never decrease: a monotonic clock may run slow or
//! fast, but it does not jump back, and protocols are entitled to rely on that.
//!
//! Timers are requested in node time ([`replikv_core::replica::Replica::poll_timeout`]);
//! [`NodeClock::virtual_deadline`] converts such a deadline into the virtual instant at
//! which the node's clock will read it, assuming the current offset. If the offset
//! drifts in between, the simulator notices when the timer fires early and re-arms it.
//!
//! A node's **wall clock** (calendar time, for key expiry) is the same skewed clock read
//! as Unix milliseconds from [`SIM_EPOCH_UNIX_MS`]: nodes disagree about the calendar by
//! exactly their skew, which is what the expiry rules must survive (entries carry the
//! leader's stamp; every replica decides the same).

use rand::Rng;

/// The Unix time, in ms, at which every simulated node's clock reads zero (plus its
/// skew): a date in 2027, far from both ends of the range.
pub const SIM_EPOCH_UNIX_MS: u64 = 1_800_000_000_000;

/// The wall clock of a node whose (skewed) clock reads `node_now`.
#[must_use]
pub fn wall_clock_unix_ms(node_now: Instant) -> u64 {
    SIM_EPOCH_UNIX_MS + node_now.as_millis()
}
use replikv_core::Instant;
use std::time::Duration;

/// One node's view of time.
#[derive(Clone, Debug)]
pub struct NodeClock {
    base_nanos: u64,
    skew_max_nanos: i64,
    offset_nanos: i64,
    last: Instant,
}

impl NodeClock {
    /// A clock with a random fixed offset within plus or minus `skew_max`.
    pub fn new(skew_max: Duration, random: &mut impl Rng) -> NodeClock {
        let skew_max_nanos =
            i64::try_from(skew_max.as_nanos()).expect("skew bounded by FaultOptions::validate");
        let offset_nanos = if skew_max_nanos == 0 {
            0
        } else {
            random.random_range(-skew_max_nanos..=skew_max_nanos)
        };
        NodeClock {
            base_nanos: skew_max_nanos.unsigned_abs(),
            skew_max_nanos,
            offset_nanos,
            last: Instant::ZERO,
        }
    }

    /// What the node reads at virtual time `now`.
    pub fn now(&mut self, now: Instant) -> Instant {
        let reading = Instant::from_nanos(self.raw_nanos(now));
        self.last = self.last.max(reading);
        self.last
    }

    /// The virtual instant (not before `now`) at which this clock reaches `deadline`.
    #[must_use]
    pub fn virtual_deadline(&self, deadline: Instant, now: Instant) -> Instant {
        let shift = self.shift_nanos();
        let virtual_nanos = i128::from(deadline.as_nanos()) - i128::from(shift);
        let virtual_nanos = u64::try_from(virtual_nanos.max(0)).unwrap_or(u64::MAX);
        Instant::from_nanos(virtual_nanos).max(now)
    }

    /// Moves the offset by a random step of at most `step_max`, staying within the skew.
    pub fn drift(&mut self, step_max: Duration, random: &mut impl Rng) {
        let step_max = i64::try_from(step_max.as_nanos()).unwrap_or(i64::MAX);
        if step_max == 0 || self.skew_max_nanos == 0 {
            return;
        }
        let step = random.random_range(-step_max..=step_max);
        self.offset_nanos =
            (self.offset_nanos + step).clamp(-self.skew_max_nanos, self.skew_max_nanos);
    }

    /// The current offset from virtual time, in nanoseconds (for traces).
    #[must_use]
    pub fn offset_nanos(&self) -> i64 {
        self.offset_nanos
    }

    fn shift_nanos(&self) -> i64 {
        i64::try_from(self.base_nanos).expect("base bounded by skew") + self.offset_nanos
    }

    fn raw_nanos(&self, now: Instant) -> u64 {
        let shift = self.shift_nanos();
        debug_assert!(shift >= 0, "base absorbs the most negative offset");
        now.as_nanos().saturating_add(shift.unsigned_abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn without_skew_node_time_is_virtual_time() {
        let mut random = ChaCha8Rng::seed_from_u64(1);
        let mut clock = NodeClock::new(Duration::ZERO, &mut random);
        assert_eq!(clock.now(Instant::from_millis(7)), Instant::from_millis(7));
        assert_eq!(
            clock.virtual_deadline(Instant::from_millis(9), Instant::from_millis(7)),
            Instant::from_millis(9)
        );
    }

    #[test]
    fn drifting_clocks_never_go_backwards_and_timers_fire_on_time() {
        let mut random = ChaCha8Rng::seed_from_u64(2);
        let skew = Duration::from_millis(100);
        for _ in 0..20 {
            let mut clock = NodeClock::new(skew, &mut random);
            let mut previous = Instant::ZERO;
            for step in 0..500u64 {
                let now = Instant::from_millis(step);
                let reading = clock.now(now);
                assert!(reading >= previous, "clock went backwards");
                assert!(clock.offset_nanos().unsigned_abs() <= 100_000_000);
                previous = reading;
                let deadline = reading + Duration::from_millis(3);
                let fire_at = clock.virtual_deadline(deadline, now);
                assert!(fire_at >= now);
                assert!(clock.clone().now(fire_at) >= deadline);
                clock.drift(Duration::from_millis(30), &mut random);
            }
        }
    }
}
