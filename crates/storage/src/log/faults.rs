//! Deterministic fault injection: stop a multi-step disk operation after its n-th step.
//!
//! The simulated disk already decides what an unsynced write looks like after a power
//! failure; what it cannot do by itself is stop the log *between* two steps of one
//! operation (after the old segment's sync but before the new segment's creation, after
//! removing half of the segments a truncation drops). An [`IoBudget`] does that: every
//! step that changes the disk (write, length change, sync, creation, removal) first takes
//! one unit from the budget, and when the budget is empty the step fails with an I/O
//! error instead of running. The log then refuses further work, as it does after any I/O
//! error, and the test crashes the simulated disk and reopens. Walking the budget from 0
//! upwards visits every point at which power can fail inside the operation.

use std::io;

/// How many more disk-changing steps may run; unlimited unless set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct IoBudget {
    remaining: Option<u64>,
}

impl IoBudget {
    pub fn new(steps_max: Option<u64>) -> IoBudget {
        IoBudget {
            remaining: steps_max,
        }
    }

    pub fn unlimited() -> IoBudget {
        IoBudget::default()
    }

    /// Takes one step from the budget, or fails if none is left.
    pub fn step(&mut self) -> io::Result<()> {
        match &mut self.remaining {
            None => Ok(()),
            Some(0) => Err(io::Error::other("injected fault: I/O budget exhausted")),
            Some(remaining) => {
                *remaining -= 1;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_runs_out_after_its_steps() {
        let mut budget = IoBudget::new(Some(2));
        assert!(budget.step().is_ok());
        assert!(budget.step().is_ok());
        assert!(budget.step().is_err());
        assert!(budget.step().is_err());
        let mut unlimited = IoBudget::unlimited();
        for _ in 0..1000 {
            assert!(unlimited.step().is_ok());
        }
    }
}
