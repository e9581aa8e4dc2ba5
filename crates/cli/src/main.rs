//! The `replikv` command: one binary for the server, a local cluster, client commands,
//! the simulator and the history checker. Each subcommand lives in its own module and is
//! a thin shell over a library crate; no replication logic lives here.

use clap::Parser;
use std::process::ExitCode;

/// replikv: a replicated key-value database with selectable replication models.
#[derive(Debug, Parser)]
#[command(name = "replikv", version, about)]
struct Cli {}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    ExitCode::SUCCESS
}
