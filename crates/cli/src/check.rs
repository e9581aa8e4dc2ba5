//! `replikv check`: judge a recorded history with the consistency checkers.
//!
//! Reads a JSON-lines history (the format of replikv-check's `history` module, written
//! by the simulator and by live test runs), runs every checker that applies to the
//! chosen model, and prints one verdict per property (a session guarantee is judged per
//! process, and its verdict says which processes' sessions violate it); for a violation
//! it also prints the
//! smallest set of operations found that shows it, as history lines, ready to be pasted
//! into a test. Exit codes are for scripts: 0 when every property holds, 1 when any is
//! violated (a proof), 2 when nothing is violated but something could not be decided
//! (the time budget ran out) or the input is unusable (the message names the line).
//!
//! The file is read whole, up to a bound, and never trusted: a malformed history is an
//! error message, never a panic.

use replikv_check::{Budget, History, Model, NamedVerdict, SESSION_PROPERTIES, Verdict, check_all};
use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The largest history file accepted, in bytes.
const HISTORY_SIZE_MAX_BYTES: u64 = 4 << 30;

/// The longest search time that may be asked for (a day), in seconds.
const TIMEOUT_SECONDS_MAX: u64 = 24 * 60 * 60;

/// Exit code: every property holds.
pub const EXIT_VALID: u8 = 0;
/// Exit code: a property is violated.
pub const EXIT_VIOLATION: u8 = 1;
/// Exit code: undecided, or the input is unusable.
pub const EXIT_UNKNOWN_OR_BAD_INPUT: u8 = 2;

/// What the operations of a history operate on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelArgument {
    /// One register per key: read, write, cas, delete.
    Register,
    /// One grow-only set per key: write adds a value, read returns them all.
    Set,
}

/// Arguments of `replikv check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The history file (JSON lines, one operation each).
    #[arg(long)]
    history: PathBuf,
    /// What the history's operations operate on.
    #[arg(long, value_enum)]
    model: ModelArgument,
    /// Give up the linearizability search after this many seconds (verdict: unknown).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=TIMEOUT_SECONDS_MAX))]
    timeout_seconds: Option<u64>,
}

/// Runs the check and prints the verdicts; returns the exit code.
pub fn run(arguments: &CheckArgs) -> ExitCode {
    let history = match read_history(arguments) {
        Ok(history) => history,
        Err(message) => {
            eprintln!("replikv check: {message}");
            return ExitCode::from(EXIT_UNKNOWN_OR_BAD_INPUT);
        }
    };
    let budget = Budget {
        steps_max: None,
        deadline: arguments
            .timeout_seconds
            .map(|seconds| Instant::now() + Duration::from_secs(seconds)),
    };
    let model = match arguments.model {
        ModelArgument::Register => Model::Register,
        ModelArgument::Set => Model::Set,
    };
    let verdicts = check_all(&history, model, &budget);
    println!(
        "{} operations from {}",
        history.operations.len(),
        arguments.history.display()
    );
    let processes: BTreeSet<u64> = history
        .operations
        .iter()
        .map(|operation| operation.process)
        .collect();
    for named in &verdicts {
        print_verdict(named, processes.len());
    }
    ExitCode::from(exit_code(&verdicts))
}

fn read_history(arguments: &CheckArgs) -> Result<History, String> {
    let path = arguments.history.display();
    let file =
        File::open(&arguments.history).map_err(|error| format!("cannot open {path}: {error}"))?;
    let size = file
        .metadata()
        .map_err(|error| format!("cannot read {path}: {error}"))?
        .len();
    if size > HISTORY_SIZE_MAX_BYTES {
        return Err(format!(
            "{path} is {size} bytes; histories of at most {HISTORY_SIZE_MAX_BYTES} bytes are accepted"
        ));
    }
    let reader = BufReader::new(file.take(HISTORY_SIZE_MAX_BYTES));
    History::read_jsonl(reader).map_err(|error| format!("{path}: {error}"))
}

fn print_verdict(named: &NamedVerdict, processes: usize) {
    print!("{}", render_verdict(named, processes));
}

/// One property's verdict as `replikv check` prints it (also in `replikv test`'s
/// summary): a line, and for a violation its explanation and the operations that show
/// it as history lines.
pub fn render_verdict(named: &NamedVerdict, processes: usize) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let property = named.property;
    match &named.verdict {
        Verdict::Valid if SESSION_PROPERTIES.contains(&property) => {
            let _ = writeln!(
                text,
                "{property}: valid (in the sessions of all {processes} processes)"
            );
        }
        Verdict::Valid => {
            let _ = writeln!(text, "{property}: valid");
        }
        Verdict::Unknown { reason } => {
            let _ = writeln!(text, "{property}: unknown ({reason})");
        }
        Verdict::Invalid(violation) => {
            let _ = writeln!(text, "{property}: VIOLATED");
            let _ = writeln!(text, "  {}", violation.explanation);
            if !violation.operations.is_empty() {
                let _ = writeln!(text, "  operations that show it:");
            }
            for operation in &violation.operations {
                match serde_json::to_string(operation) {
                    Ok(line) => writeln!(text, "    {line}"),
                    Err(error) => writeln!(text, "    (cannot render operation: {error})"),
                }
                .expect("writing to a String");
            }
        }
    }
    text
}

/// The exit code for a set of verdicts: 0 all valid, 1 any violated, 2 otherwise.
pub fn exit_code(verdicts: &[NamedVerdict]) -> u8 {
    if verdicts.iter().any(|named| named.verdict.is_invalid()) {
        EXIT_VIOLATION
    } else if verdicts.iter().all(|named| named.verdict.is_valid()) {
        EXIT_VALID
    } else {
        EXIT_UNKNOWN_OR_BAD_INPUT
    }
}
