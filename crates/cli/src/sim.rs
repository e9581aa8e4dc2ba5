//! `replikv sim`: run the deterministic simulator from the command line.
//!
//! A thin shell over `replikv_sim`: it builds [`SimulationOptions`] from the flags (every
//! flag it does not receive keeps the library's default, so the replay command a failing
//! run prints rebuilds exactly the same options), runs one seed or a range of seeds,
//! prints one summary line per seed, and stops at the first failing seed with the full
//! failure report and its replay command. `--history FILE` writes the history of the
//! last run (the failing one, if any) as JSON lines for `replikv check`; `--trace` prints
//! every event of every run to standard error.

use clap::Args;
use replikv_sim::discards::describe_acknowledged_discards;
use replikv_sim::{FaultPreset, Model, SimulationOptions};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Most seeds one invocation runs.
const SEEDS_MAX: u64 = 1_000_000;

/// Flags of `replikv sim`.
/// Most discarded writes listed per seed.
const DISCARD_LINES_MAX: usize = 10;

#[derive(Debug, Args)]
pub struct SimArgs {
    /// The model to simulate: raft-majority, raft-all, raft-semi-sync-any-1,
    /// raft-semi-sync-first-1, raft-async, raft-semi-sync-any-1-of-5 (five nodes whatever
    /// --nodes says), raft-lease, raft-session, raft-follower-reads, raft-compacting,
    /// raft-membership (five nodes whatever --nodes says, configuration changes all run
    /// long), register, local-only or ack-before-sync.
    #[arg(long, value_parser = parse_model)]
    pub model: Model,
    /// The (first) seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How many consecutive seeds to run, starting at --seed.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// Fault preset: none, network, crashes or everything.
    #[arg(long, default_value = "everything", value_parser = parse_preset)]
    pub faults: FaultPreset,
    /// Virtual seconds of workload and faults (before the quiet period).
    #[arg(long)]
    pub duration_seconds: Option<u64>,
    /// Number of replicas.
    #[arg(long)]
    pub nodes: Option<usize>,
    /// Number of concurrent client processes.
    #[arg(long)]
    pub clients: Option<usize>,
    /// Write the last run's history (JSON lines) to this file.
    #[arg(long)]
    pub history: Option<PathBuf>,
    /// Print every event to standard error.
    #[arg(long)]
    pub trace: bool,
}

fn parse_model(name: &str) -> Result<Model, String> {
    name.parse()
}

fn parse_preset(name: &str) -> Result<FaultPreset, String> {
    name.parse()
}

impl SimArgs {
    /// The options of the run with `seed`.
    #[must_use]
    pub fn options(&self, seed: u64) -> SimulationOptions {
        let mut options = SimulationOptions::new(seed, self.faults);
        if let Some(seconds) = self.duration_seconds {
            options.duration = Duration::from_secs(seconds);
        }
        if let Some(nodes) = self.nodes {
            options.nodes = nodes;
        }
        if let Some(clients) = self.clients {
            options.clients = clients;
        }
        options.trace = self.trace;
        options
    }
}

/// Runs the seeds; exit code 0 if all pass, 1 at the first failing seed, 2 on bad flags
/// or an unwritable history file.
pub fn run(args: &SimArgs) -> ExitCode {
    if args.seeds == 0 || args.seeds > SEEDS_MAX {
        eprintln!("--seeds must lie within 1..={SEEDS_MAX}");
        return ExitCode::from(2);
    }
    let Some(last) = args.seed.checked_add(args.seeds - 1) else {
        eprintln!("--seed plus --seeds overflows");
        return ExitCode::from(2);
    };
    if let Err(message) = args.options(args.seed).validate() {
        eprintln!("invalid options: {message}");
        return ExitCode::from(2);
    }
    for seed in args.seed..=last {
        let report = args.model.simulate(&args.options(seed));
        println!("{}", report.summary());
        let discards = describe_acknowledged_discards(
            &report.history,
            &report.discarded_writes,
            DISCARD_LINES_MAX,
        );
        for line in discards {
            println!("{line}");
        }
        let is_last = seed == last || !report.passed();
        if let Some(path) = args.history.as_ref().filter(|_| is_last)
            && let Err(error) = write_history(path, &report.history)
        {
            eprintln!("cannot write the history to {}: {error}", path.display());
            return ExitCode::from(2);
        }
        if let Some(text) = report.failure_report(args.model.name(), None) {
            eprintln!("{text}");
            return ExitCode::FAILURE;
        }
    }
    println!("{} seed(s) passed", args.seeds);
    ExitCode::SUCCESS
}

fn write_history(path: &PathBuf, history: &replikv_check::History) -> std::io::Result<()> {
    let mut writer = BufWriter::new(File::create(path)?);
    history.write_jsonl(&mut writer)?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(flags: &[&str]) -> Result<SimArgs, clap::Error> {
        let arguments = std::iter::once("sim").chain(flags.iter().copied());
        Command::try_parse_from(arguments).map(|command| command.sim)
    }

    #[test]
    fn flags_build_the_options_a_replay_command_names() {
        let args = parse(&[
            "--model",
            "register",
            "--seed",
            "42",
            "--faults",
            "crashes",
            "--nodes",
            "5",
            "--clients",
            "2",
            "--duration-seconds",
            "3",
        ])
        .unwrap();
        let options = args.options(42);
        let command = replikv_sim::replay_command("register", &options).unwrap();
        assert_eq!(
            command,
            "cargo run -p replikv -- sim --model register --seed 42 --faults crashes --nodes 5 --clients 2 --duration-seconds 3"
        );
        let defaults = parse(&["--model", "local-only"]).unwrap();
        assert_eq!(
            defaults.options(0),
            SimulationOptions::new(0, FaultPreset::Everything)
        );
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!(parse(&["--model", "raft-ish"]).is_err());
        assert!(parse(&["--model", "register", "--faults", "some"]).is_err());
        assert!(parse(&[]).is_err(), "--model is required");
    }
}
