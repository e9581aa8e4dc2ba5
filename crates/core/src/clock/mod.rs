//! Logical clocks: how replicas order events without trusting each other's wall clocks.
//!
//! Placeholder until the clocks land: Lamport clock, hybrid logical clock, version
//! vectors and dotted version vectors with siblings.
