//! `replikv report`: redraw a run's timeline picture from its files.
//!
//! `replikv test` draws `timeline.svg` itself at the end of a run; this subcommand draws
//! it again from `history.jsonl` and `faults.jsonl` — after a run that was stopped before
//! its report, for a history from `replikv sim --history`, or with another title. It
//! reads both files with a size bound, never trusts them (a malformed line is an error
//! that names it), and writes the picture only when both were read whole. Exit codes
//! follow `replikv check`'s for unusable input: 0 when the picture was written, 2 when a
//! file cannot be read or written.

use super::{FaultWindow, read_fault_windows, render_timeline_svg};
use replikv_check::History;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The largest history file accepted, in bytes (as `replikv check`).
const HISTORY_SIZE_MAX_BYTES: u64 = 4 << 30;

/// The largest faults file accepted, in bytes.
const FAULTS_SIZE_MAX_BYTES: u64 = 256 << 20;

/// Exit code: the picture was written.
const EXIT_WRITTEN: u8 = 0;
/// Exit code: an input file is unusable or the output cannot be written.
const EXIT_BAD_INPUT: u8 = 2;

/// Arguments of `replikv report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// The history file (JSON lines), as `replikv test` or `replikv sim --history` write it.
    #[arg(long)]
    history: PathBuf,
    /// The fault windows (JSON lines: kind, target, start_ns, end_ns), as `replikv test`
    /// writes them to faults.jsonl.
    #[arg(long)]
    faults: Option<PathBuf>,
    /// Where to write the SVG picture.
    #[arg(long, default_value = "timeline.svg")]
    output: PathBuf,
    /// The picture's title (default: the history file's path).
    #[arg(long)]
    title: Option<String>,
}

/// Draws the picture; returns the exit code.
pub fn run(arguments: &ReportArgs) -> ExitCode {
    match draw(arguments) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::from(EXIT_WRITTEN)
        }
        Err(message) => {
            eprintln!("replikv report: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn draw(arguments: &ReportArgs) -> Result<String, String> {
    let history_reader = open_bounded(&arguments.history, HISTORY_SIZE_MAX_BYTES)?;
    let history = History::read_jsonl(history_reader)
        .map_err(|error| format!("{}: {error}", arguments.history.display()))?;
    let faults: Vec<FaultWindow> = match &arguments.faults {
        Some(path) => read_fault_windows(open_bounded(path, FAULTS_SIZE_MAX_BYTES)?)
            .map_err(|error| format!("{}: {error}", path.display()))?,
        None => Vec::new(),
    };
    let title = arguments
        .title
        .clone()
        .unwrap_or_else(|| format!("replikv: {}", arguments.history.display()));
    let picture = render_timeline_svg(&history, &faults, &title);
    std::fs::write(&arguments.output, picture.as_bytes())
        .map_err(|error| format!("cannot write {}: {error}", arguments.output.display()))?;
    Ok(format!(
        "wrote {} ({} operations, {} fault windows, {} bytes)",
        arguments.output.display(),
        history.operations.len(),
        faults.len(),
        picture.len()
    ))
}

/// A buffered reader of `path`, refused if the file is larger than `size_max_bytes`.
fn open_bounded(path: &Path, size_max_bytes: u64) -> Result<BufReader<impl Read>, String> {
    let file =
        File::open(path).map_err(|error| format!("cannot open {}: {error}", path.display()))?;
    let size = file
        .metadata()
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?
        .len();
    if size > size_max_bytes {
        return Err(format!(
            "{} is {size} bytes; at most {size_max_bytes} bytes are accepted",
            path.display()
        ));
    }
    Ok(BufReader::new(file.take(size_max_bytes)))
}
