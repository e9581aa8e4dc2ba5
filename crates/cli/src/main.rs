//! The `replikv` command: one binary for the server, a local cluster, client commands,
//! the simulator and the history checker. Each subcommand lives in its own module and is
//! a thin shell over a library crate; no replication logic lives here.

mod check;
mod cluster;
mod member;
mod server;
mod sim;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

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
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check(arguments) => check::run(&arguments),
        Command::Sim(args) => sim::run(&args),
        Command::Server(args) => server::run(&args),
        Command::Cluster(args) => cluster::run(&args),
        Command::Member(args) => member::run(&args),
    }
}
