//! # replikv-sim (placeholder until the simulator lands)
