//! # replikv-check: consistency checkers over recorded histories
//!
//! A history is what clients saw: for each operation, when it was invoked, when it
//! completed and with what result. The checkers here decide whether a history could have
//! come from a system with a given property. They are deliberately separate from what they
//! check: they read the one history format (see [`history`]) written by the simulator and
//! by live test runs, and know nothing about how replikv works inside.
//!
//! One property per module, each citing its definition.

pub mod budget;
pub mod history;
pub mod linearizability;
pub mod verdict;

pub use budget::Budget;
pub use history::{Function, History, HistoryError, Operation, OperationType};
pub use linearizability::check_registers;
pub use verdict::{Verdict, Violation};
