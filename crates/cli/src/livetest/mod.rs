//! `replikv test`: live Jepsen-style runs against real processes, and their report.

pub mod report;
