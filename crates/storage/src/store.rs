//! The state store (placeholder until it lands).
