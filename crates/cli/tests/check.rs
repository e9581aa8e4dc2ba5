//! Runs the built `replikv check` on history files and checks what it prints and how it
//! exits: 0 for a good history, 1 with the witness lines for a bad one, 2 with the line
//! number for a malformed one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn histories() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../check/tests/histories")
}

fn replikv_check(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replikv"))
        .arg("check")
        .args(arguments)
        .output()
        .expect("the replikv binary runs")
}

fn check_history(file: &Path, model: &str) -> Output {
    replikv_check(&[
        "--history",
        file.to_str().unwrap(),
        "--model",
        model,
        "--timeout-seconds",
        "60",
    ])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_good_history_exits_zero_with_every_property_valid() {
    let output = check_history(
        &histories().join("good_sequential_register.jsonl"),
        "register",
    );
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    for property in [
        "linearizability",
        "read-your-writes",
        "monotonic-reads",
        "monotonic-writes",
        "writes-follow-reads",
        "consistent-prefix",
        "durability",
    ] {
        assert!(
            stdout.contains(&format!("{property}: valid")),
            "{property} missing:\n{stdout}"
        );
    }
    for property in ["read-your-writes", "consistent-prefix"] {
        assert!(
            stdout.contains(&format!(
                "{property}: valid (in the sessions of all 2 processes)"
            )),
            "{stdout}"
        );
    }
}

#[test]
fn a_bad_history_exits_one_and_prints_the_witness_as_history_lines() {
    let file = histories().join("bad_monotonic_reads_back_in_time.jsonl");
    let output = check_history(&file, "register");
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("monotonic-reads: VIOLATED"), "{stdout}");
    assert!(stdout.contains("in the session of process 1;"), "{stdout}");
    assert!(stdout.contains("read-your-writes: valid"), "{stdout}");
    let witness_lines: Vec<&str> = stdout
        .lines()
        .skip_while(|line| !line.starts_with("monotonic-reads"))
        .skip(3)
        .take_while(|line| line.starts_with("    {"))
        .map(str::trim)
        .collect();
    let history = std::fs::read_to_string(&file).unwrap();
    let compact: Vec<String> = history.lines().map(|line| line.replace(' ', "")).collect();
    assert_eq!(witness_lines.len(), 4, "{stdout}");
    for line in witness_lines {
        let reparsed: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            compact.iter().any(
                |original| serde_json::from_str::<serde_json::Value>(original).unwrap() == reparsed
            ),
            "witness line {line} is not in the history"
        );
    }
}

#[test]
fn a_set_history_with_lost_writes_exits_one() {
    let output = check_history(
        &histories().join("bad_set_two_acknowledged_writes_lost.jsonl"),
        "set",
    );
    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 acknowledged writes lost"), "{stdout}");
}

#[test]
fn a_malformed_history_exits_two_naming_the_line() {
    let directory = std::env::temp_dir().join(format!("replikv-check-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let file = directory.join("malformed.jsonl");
    std::fs::write(
        &file,
        "{\"process\":0,\"key\":\"x\",\"f\":\"write\",\"value\":1,\"type\":\"ok\",\"invoke\":0,\"complete\":10}\n\
         {\"process\":0,\"key\":\"x\",\"f\":\"read\",\"type\":\"ok\",\"invoke\":20}\n",
    )
    .unwrap();
    let output = check_history(&file, "register");
    std::fs::remove_dir_all(&directory).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_missing_file_and_an_input_the_checkers_cannot_judge_exit_two() {
    let missing = check_history(Path::new("/nonexistent/history.jsonl"), "register");
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing.stderr).contains("cannot open"));
    let duplicate = check_history(
        &histories().join("bad_input_duplicate_written_value.jsonl"),
        "register",
    );
    assert_eq!(
        duplicate.status.code(),
        Some(2),
        "{}",
        text(&duplicate.stdout)
    );
    assert!(text(&duplicate.stdout).contains("written by two operations"));
}
