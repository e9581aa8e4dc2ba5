//! How much work a search may do before it gives up with `Unknown`.
//!
//! Deciding linearizability is NP-complete (Gibbons & Korach 1997), so a search over a
//! hostile history can run for ever. Every search is therefore metered: it counts its
//! steps against an optional maximum and, every so often, compares the monotonic clock
//! with an optional deadline. Reading the clock is the one non-deterministic thing this
//! crate does, and it only decides *whether* a search stops early, never what a finished
//! search concludes: with `deadline: None` every verdict is a pure function of the
//! history and the step limit.

use std::time::Instant;

/// Limits on a search. The default has no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// The most search steps (configurations tried) over the whole check.
    pub steps_max: Option<u64>,
    /// The monotonic time after which the search stops.
    pub deadline: Option<Instant>,
}

impl Budget {
    /// No limit: the search runs to its conclusion.
    #[must_use]
    pub fn unlimited() -> Budget {
        Budget::default()
    }

    /// At most `steps_max` steps, no deadline (deterministic).
    #[must_use]
    pub fn steps(steps_max: u64) -> Budget {
        Budget {
            steps_max: Some(steps_max),
            deadline: None,
        }
    }
}

/// How often (in steps) a meter reads the clock.
const STEPS_PER_CLOCK_READ: u64 = 1024;

/// Why a meter stopped a search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exhausted {
    Steps,
    Deadline,
    /// The memo of visited configurations outgrew its bound.
    Memory,
}

impl Exhausted {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Exhausted::Steps => "the step budget ran out",
            Exhausted::Deadline => "the time budget ran out",
            Exhausted::Memory => "the search's memory bound was reached",
        }
    }
}

/// Counts the steps of a search against a [`Budget`].
#[derive(Debug)]
pub(crate) struct Meter {
    budget: Budget,
    pub(crate) steps: u64,
}

impl Meter {
    pub(crate) fn new(budget: Budget) -> Meter {
        Meter { budget, steps: 0 }
    }

    /// Records one step; fails once the budget is spent.
    pub(crate) fn tick(&mut self) -> Result<(), Exhausted> {
        self.steps += 1;
        if self
            .budget
            .steps_max
            .is_some_and(|steps_max| self.steps > steps_max)
        {
            return Err(Exhausted::Steps);
        }
        if self.steps.is_multiple_of(STEPS_PER_CLOCK_READ) {
            self.check_deadline()?;
        }
        Ok(())
    }

    /// Fails if the deadline has passed (reads the clock).
    pub(crate) fn check_deadline(&self) -> Result<(), Exhausted> {
        match self.budget.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(Exhausted::Deadline),
            _ => Ok(()),
        }
    }

    /// A meter for a sub-search: at most `steps_max` more steps, and never past this
    /// meter's own limits.
    pub(crate) fn child(&self, steps_max: u64) -> Meter {
        let remaining = self
            .budget
            .steps_max
            .map_or(u64::MAX, |limit| limit.saturating_sub(self.steps));
        Meter::new(Budget {
            steps_max: Some(steps_max.min(remaining)),
            deadline: self.budget.deadline,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_limit_is_exact() {
        let mut meter = Meter::new(Budget::steps(3));
        assert!(meter.tick().is_ok());
        assert!(meter.tick().is_ok());
        assert!(meter.tick().is_ok());
        assert_eq!(meter.tick(), Err(Exhausted::Steps));
    }

    #[test]
    fn a_past_deadline_stops_the_search() {
        let budget = Budget {
            steps_max: None,
            deadline: Some(Instant::now()),
        };
        let mut meter = Meter::new(budget);
        let mut outcome = Ok(());
        for _ in 0..STEPS_PER_CLOCK_READ {
            outcome = meter.tick();
        }
        assert_eq!(outcome, Err(Exhausted::Deadline));
    }

    #[test]
    fn a_child_never_outlives_its_parent() {
        let mut parent = Meter::new(Budget::steps(10));
        for _ in 0..8 {
            parent.tick().unwrap();
        }
        let mut child = parent.child(100);
        assert!(child.tick().is_ok());
        assert!(child.tick().is_ok());
        assert_eq!(child.tick(), Err(Exhausted::Steps));
    }
}
