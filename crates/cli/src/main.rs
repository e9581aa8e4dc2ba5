//! The `replikv` command: one binary for the server, a local cluster, client commands,
//! the simulator and the history checker. Each subcommand lives in its own module and is
//! a thin shell over a library crate; no replication logic lives here.

mod bench;
mod check;
mod client_commands;
mod cluster;
mod livetest;
mod member;
mod node_process;
mod password;
mod ports;
#[cfg(test)]
mod ports_tests;
mod server;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The process-wide allocator: mimalloc. Every request allocates a few dozen small,
/// short-lived buffers (decoded commands, keys, values, replies); glibc's malloc and
/// free cost about three times as many instructions per call (measured on the
/// simulator benchmark, which uses the same allocator: crates/sim/benches/raft.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// replikv: a replicated key-value database with selectable replication models.
#[derive(Debug, Parser)]
#[command(name = "replikv", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a recorded history against consistency properties.
    Check(check::CheckArgs),
    /// Run the deterministic simulator over one seed or a range of seeds.
    Sim(sim::SimArgs),
    /// Run one node of a cluster in this process.
    Server(server::ServerArgs),
    /// Start a local cluster of server processes.
    Cluster(cluster::ClusterArgs),
    /// Grow and shrink a running cluster: list, add, promote and remove members.
    Member(member::MemberArgs),
    /// Show every node's role, term, positions, the leader and its followers' lag.
    Status(client_commands::StatusArgs),
    /// Read a key (exit code 1 if it is absent).
    Get(client_commands::GetArgs),
    /// Write a key.
    Put(client_commands::PutArgs),
    /// Delete a key.
    Del(client_commands::DelArgs),
    /// Compare-and-set a key (exit code 1 if it did not swap).
    Cas(client_commands::CasArgs),
    /// Measure throughput and latency of a local cluster or any RESP endpoint.
    Bench(bench::BenchArgs),
    /// Jepsen-style test: run a workload against real processes while injecting faults,
    /// then check the recorded history (exit 0 valid, 1 violation, 2 unknown).
    Test(livetest::TestArgs),
    /// Draw a run's timeline picture (SVG) from its history and fault windows.
    Report(livetest::report::command::ReportArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(arguments) => check::run(&arguments),
        Command::Sim(args) => sim::run(&args),
        Command::Server(args) => server::run(&args),
        Command::Cluster(args) => cluster::run(&args),
        Command::Member(args) => member::run(&args),
        Command::Status(args) => client_commands::status(&args),
        Command::Get(args) => client_commands::get(&args),
        Command::Put(args) => client_commands::put(&args),
        Command::Del(args) => client_commands::del(&args),
        Command::Cas(args) => client_commands::cas(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Test(args) => livetest::run(&args),
        Command::Report(args) => livetest::report::command::run(&args),
    }
}
