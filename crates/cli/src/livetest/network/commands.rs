//! Running the system's network tools (`ip`, `iptables-restore`) and turning their
//! failures into readable errors.
//!
//! The network layer drives the kernel through the same commands an operator would type
//! rather than through netlink sockets: the commands are stable, every Linux machine
//! that can run namespaces has them, and an error message that quotes the command and
//! its stderr tells the reader exactly what went wrong and how to reproduce it by hand.
//! Each call is a short-lived child process; a few dozen of them build a network, which
//! costs milliseconds, far less than the servers that run inside it take to start.
//!
//! Output is bounded: a tool's stdout is read whole, but the error text quoted back is
//! cut to [`ERROR_TEXT_MAX_BYTES`] so a chatty failure cannot flood a report.

use std::io::Write;
use std::process::{Command, Stdio};

/// The longest piece of a tool's stderr quoted in an error.
pub const ERROR_TEXT_MAX_BYTES: usize = 512;

/// `program args...` as one line, for error messages.
fn describe(program: &str, args: &[&str]) -> String {
    let mut text = program.to_string();
    for arg in args {
        text.push(' ');
        text.push_str(arg);
    }
    text
}

fn truncated(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut end = text.len().min(ERROR_TEXT_MAX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Runs `program args...` with `input` on its stdin (if any); returns its stdout, or an
/// error quoting the command and its stderr.
pub fn run_with_input(program: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|error| format!("`{}`: {error}", describe(program, args)))?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin was piped");
        stdin
            .write_all(input.as_bytes())
            .map_err(|error| format!("`{}`: writing stdin: {error}", describe(program, args)))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|error| format!("`{}`: {error}", describe(program, args)))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            describe(program, args),
            output.status,
            truncated(&output.stderr)
        ))
    }
}

/// Runs `program args...`; returns its stdout or an error quoting its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, String> {
    run_with_input(program, args, None)
}

/// Runs `ip args...`.
pub fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args)
}

/// Feeds an `iptables-restore` script to the `filter` table inside `namespace`, leaving
/// every chain the script does not name as it was (`--noflush`). One call applies the
/// whole script atomically.
pub fn iptables_restore_in(namespace: &str, script: &str) -> Result<String, String> {
    run_with_input(
        "ip",
        &[
            "netns",
            "exec",
            namespace,
            "iptables-restore",
            "-w",
            "--noflush",
        ],
        Some(script),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_is_quoted_with_its_stderr() {
        let error = run("sh", &["-c", "echo broken >&2; exit 3"]).unwrap_err();
        assert!(error.contains("sh -c"), "{error}");
        assert!(error.contains("broken"), "{error}");
        assert_eq!(run("sh", &["-c", "echo fine"]).unwrap(), "fine\n");
    }

    #[test]
    fn stdin_reaches_the_command_and_long_errors_are_cut() {
        let echoed = run_with_input("cat", &[], Some("through stdin")).unwrap();
        assert_eq!(echoed, "through stdin");
        let error = run(
            "sh",
            &["-c", "head -c 5000 /dev/zero | tr '\\0' x >&2; exit 1"],
        )
        .unwrap_err();
        assert!(error.len() < ERROR_TEXT_MAX_BYTES + 100, "{}", error.len());
        assert!(run("replikv-no-such-program", &[]).is_err());
    }
}
