//! # replikv-sim: the deterministic simulator
//!
//! The simulator is replikv's main safety net, after TigerBeetle's VOPR and FoundationDB's
//! simulation testing: a whole cluster, its clients and every fault the real world has run
//! in one thread, on virtual time, driven by one seed. Any bug it finds replays
//! bit-for-bit from that seed, under a debugger if need be.
//!
//! ## The event loop
//!
//! A run ([`run::run`], or [`run::simulate`] which also runs the checkers) holds a queue of
//! events ordered by virtual time and, among equal times, by the order they were scheduled
//! ([`queue`]). It pops the earliest, jumps virtual time to it, and handles it: a peer
//! message arriving, a client request or reply arriving, a replica's timer, a group-commit
//! flush, a fault. Replicas are driven only through the sans-IO
//! [`Replica`](replikv_core::replica::Replica) trait, exactly as the server will drive
//! them: `handle_message`, `handle_request` and `handle_tick` feed inputs, outputs are
//! drained with `poll_output` after every input, a flush closes each batch
//! (`handle_flush`, or `start_flush` with its sync completed after a random latency), and
//! `poll_timeout` says when to tick next, so idle stretches cost nothing. Nothing in the
//! simulator assumes a leader; replicas come from a factory closure
//! (`Fn(NodeSetup) -> Result<N>`) that is called again, with the same disk, on restart.
//!
//! After every event the simulator shows the running replicas to the strategy's run-wide
//! observer (`Replica::Observer`, which checks cross-replica invariants over the whole
//! run, across crashes and restarts) and checks its own rules (see [`node`]); the first violation
//! stops the run with the seed and the time. At the end, the history the clients recorded
//! ([`clients`]) and the replicas' final states go to the checkers of `replikv_check`
//! ([`checking`]) for the properties the model claims (linearizability, the session
//! guarantees, durability, convergence); any verdict other than valid fails the run.
//! [`models`] names the models the command line and the sweeps know.
//!
//! ## The fault model
//!
//! - Network ([`network`]): per-message loss, duplication and random delay (which
//!   reorders), a bound on messages in flight, and partitions: symmetric, asymmetric,
//!   bridge and isolate-one, started at random and healed after a random duration.
//! - Storage: every node has a simulated disk (`replikv_storage::disk::SimDisk`) that keeps
//!   unsynced writes apart. A crash calls `SimDisk::crash` first (unsynced writes are lost,
//!   kept or torn at random), then drops the replica so its destructors cannot write
//!   through their dead handles, and drops messages addressed to it; a restart rebuilds
//!   the replica from the same disk. Half the crashes are armed instead
//!   (`SimDisk::schedule_crash`) and strike inside one of the node's next disk
//!   operations — in the middle of a batch, a sync, or recovery itself.
//! - Processes: pauses (a GC stall, SIGSTOP): the node hears nothing and fires no timer
//!   until it resumes, then receives the held inputs (bounded).
//! - Time ([`clock`]): each node reads virtual time plus its own offset (within a skew
//!   bound, fixed or drifting), never going backwards.
//!
//! Rates and ranges live in [`options::FaultOptions`], with the presets `none`,
//! `network`, `crashes` and `everything`; [`faults`] schedules them. At the end of the
//! fault phase every fault heals and the cluster runs a quiet period; halfway through it
//! every client reads every key once (final reads, for the durability checker), and at
//! its end the replicas' states are compared (for the convergence checker).
//!
//! Beside the random schedule, a test can direct a run ([`director`]): it sees the
//! replicas after every event and orders faults aimed at one node (crash the leader now,
//! isolate this member), and reads every replica at the end. [`failover`] is one such
//! director for Raft: it crashes the leader and times the first write a new leader
//! commits. [`SimulationOptions::with_zero_latency`] removes every latency, for
//! throughput measurements.
//!
//! ## Determinism, and how to replay
//!
//! Every random choice comes from ChaCha8 generators seeded from the run's seed (one
//! stream per concern); maps are ordered (`BTreeMap`); there is no wall clock and no
//! thread. Every event is folded into a trace hash ([`trace`]); the determinism test runs
//! one seed twice and requires identical hashes and histories.
//!
//! A failing run prints its seed, its options and the command that replays it, e.g.
//!
//! ```text
//! cargo run -p replikv -- sim --model register --seed 1234 --faults everything
//! REPLIKV_SEED=1234 cargo test -p replikv-sim --test sweep_register
//! ```
//!
//! Add `--trace` (or `REPLIKV_SIM_TRACE=1`) to print every event. The seed sweeps in
//! `tests/` run many seeds per fault preset; `REPLIKV_SIM_SEEDS=N` runs more, and
//! `REPLIKV_SEED=S` runs just one.
//!
//! ## Reference models
//!
//! [`mod@reference`] holds a correct durable register and deliberately broken models. They
//! prove the harness: the register must pass every seed, the broken ones must be caught.
//! The register stores its changes in the real replication log of `replikv_storage`, so
//! the storage faults above reach the log's group commit, segment rollover and recovery
//! in every sweep.

pub mod checking;
pub mod clients;
pub mod clock;
pub mod director;
pub mod discards;
pub mod failover;
pub mod faults;
pub mod membership;
pub mod models;
pub mod network;
pub mod node;
pub mod options;
pub mod queue;
pub mod reference;
pub mod report;
pub mod run;
pub mod trace;

pub use checking::Properties;
pub use director::{DIRECTOR_CLIENT_ID, Directive, Director, DirectorReply, NoDirector};
pub use models::Model;
pub use node::NodeSetup;
pub use options::{
    DurationRange, FaultOptions, FaultPreset, ReadMode, SimulationOptions, WorkloadOptions,
};
pub use report::{Failure, FailureKind, RunReport, RunStats, replay_command};
pub use run::{run, run_directed, simulate, simulate_directed};
