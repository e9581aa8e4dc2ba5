//! # replikv-check: consistency checkers over recorded histories
//!
//! A history is what clients saw: for each operation, when it was invoked, when it
//! completed and with what result. The checkers here decide whether a history could have
//! come from a system with a given property. They are deliberately separate from what they
//! check: they read the one history format (see [`history`]) written by the simulator and
//! by live test runs, and know nothing about how replikv works inside.
//!
//! One property per module, each citing its definition and saying exactly how it is
//! decided from a history and what a history cannot show:
//! - [`linearizability`]: per-key registers, Herlihy & Wing (searched per key, with a
//!   budget; an exhausted budget is `Unknown`, never `Valid`).
//! - [`read_your_writes`], [`monotonic_reads`], [`monotonic_writes`],
//!   [`writes_follow_reads`]: Terry et al.'s session guarantees; [`consistent_prefix`]:
//!   DDIA's consistent prefix reads. These tell writes apart by value (unique per key)
//!   and judge the database's write order only by what a history proves
//!   (observations.rs).
//! - [`durability`]: no acknowledged write lost, for registers and for sets, with an
//!   exact count; [`convergence`]: replicas' final states are equal.
//!
//! [`check_all`] runs every checker that applies to a history of a given [`Model`]; the
//! simulator and `replikv check` call it.

pub mod budget;
pub mod consistent_prefix;
pub mod convergence;
pub mod durability;
pub mod history;
pub mod linearizability;
pub mod monotonic_reads;
pub mod monotonic_writes;
mod observations;
pub mod read_your_writes;
mod session;
pub mod verdict;
pub mod writes_follow_reads;

pub use budget::Budget;
pub use consistent_prefix::check_consistent_prefix;
pub use convergence::{check_convergence, differing_keys};
pub use durability::{
    DurabilityReport, LostWrite, check_register_durability, check_set_durability,
    lost_register_writes, lost_set_writes,
};
pub use history::{Function, History, HistoryError, Operation, OperationType};
pub use linearizability::check_registers;
pub use monotonic_reads::check_monotonic_reads;
pub use monotonic_writes::check_monotonic_writes;
pub use read_your_writes::check_read_your_writes;
pub use verdict::{Verdict, Violation};
pub use writes_follow_reads::check_writes_follow_reads;

use observations::Observations;

/// A session checker over resolved observations, with its property's name.
type SessionCheck = (&'static str, fn(&Observations<'_>) -> Verdict);

/// Every property a checker here decides, in the order [`check_all`] reports them.
pub const PROPERTIES: [&str; 8] = [
    linearizability::PROPERTY,
    read_your_writes::PROPERTY,
    monotonic_reads::PROPERTY,
    monotonic_writes::PROPERTY,
    writes_follow_reads::PROPERTY,
    consistent_prefix::PROPERTY,
    durability::PROPERTY,
    convergence::PROPERTY,
];

/// The session guarantees among [`PROPERTIES`]: each is judged per process (session).
pub const SESSION_PROPERTIES: [&str; 5] = [
    read_your_writes::PROPERTY,
    monotonic_reads::PROPERTY,
    monotonic_writes::PROPERTY,
    writes_follow_reads::PROPERTY,
    consistent_prefix::PROPERTY,
];

/// What a history's operations operate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// One register per key: read, write, cas, delete.
    Register,
    /// One grow-only set per key: `write` adds its value, `read` returns the set as an
    /// array.
    Set,
}

/// One checker's verdict, with the property's name.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedVerdict {
    pub property: &'static str,
    pub verdict: Verdict,
}

/// Runs every checker that applies to a history of `model`: for registers,
/// linearizability (within `budget`), the five session guarantees and durability; for
/// sets, durability. Convergence needs replica states, not a history: call
/// [`check_convergence`].
#[must_use]
pub fn check_all(history: &History, model: Model, budget: &Budget) -> Vec<NamedVerdict> {
    let named = |property, verdict| NamedVerdict { property, verdict };
    match model {
        Model::Set => vec![named(durability::PROPERTY, check_set_durability(history))],
        Model::Register => {
            let mut verdicts = vec![named(
                linearizability::PROPERTY,
                check_registers(history, budget),
            )];
            let session_checks: [SessionCheck; 5] = [
                (read_your_writes::PROPERTY, read_your_writes::check),
                (monotonic_reads::PROPERTY, monotonic_reads::check),
                (monotonic_writes::PROPERTY, monotonic_writes::check),
                (writes_follow_reads::PROPERTY, writes_follow_reads::check),
                (consistent_prefix::PROPERTY, consistent_prefix::check),
            ];
            match Observations::new(history) {
                Ok(observations) => {
                    for (property, check) in session_checks {
                        verdicts.push(named(property, check(&observations)));
                    }
                    let durability = durability::register_report(&observations).verdict();
                    verdicts.push(named(durability::PROPERTY, durability));
                }
                Err(error) => {
                    for (property, _) in session_checks {
                        verdicts.push(named(property, Verdict::input_error(&error)));
                    }
                    verdicts.push(named(durability::PROPERTY, Verdict::input_error(&error)));
                }
            }
            verdicts
        }
    }
}
