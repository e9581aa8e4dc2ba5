//! # replikv-storage: where replicated state becomes durable
//!
//! Three layers, each usable on its own:
//!
//! - [`disk`]: a small file-system interface with two implementations, the real one
//!   (`std::fs`, `pwrite`, `fdatasync`) and a simulated one that keeps unsynced writes apart
//!   from durable ones and, on a simulated crash, loses or tears them. Everything above runs
//!   unchanged over either, which is how the simulator puts the real storage code through
//!   power failures.
//! - [`log`]: the replication log, written by us because it is the subject of the project:
//!   append-only segment files of length-prefixed, crc32c-checksummed records indexed by log
//!   position, with group commit, suffix and prefix truncation, and recovery that cuts a
//!   torn tail but refuses to skip a corrupt record in the middle.
//! - [`store`]: the applied key-value state with per-key versions, kept in redb (an
//!   embedded, crash-safe B-tree engine) over the same disk interface, with consistent
//!   snapshots that do not block writers.
//!
//! Architecture invariant: storage is synchronous and single-owner. A replica owns its log
//! and its store; nothing here spawns threads or uses async.

pub mod disk;
pub mod log;
pub mod store;
