//! The replication log (placeholder until it lands).
