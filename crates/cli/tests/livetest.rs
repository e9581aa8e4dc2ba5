//! End-to-end: `replikv test` against real processes, with faults, for each workload.
//!
//! Each test runs the command as a user would — a 3-node cluster in `majority` mode,
//! `kill-leader`, `pause` and `link-faults` faults every 2 seconds, a bounded time —
//! and checks what it promises: exit code 0 (every judged property holds), a summary that counts a fair
//! number of `ok` operations and at least one fault window, a history and fault file
//! that parse, and no server process left behind (every pid the run ever started, from
//! its `pids.txt`, is gone once the command has returned, and so is every namespace
//! and link it made). The run's own checkers are
//! what these tests lean on; the unit tests in `src/livetest/mod.rs` prove those catch
//! a hand-made violation (exit 1), and the last test here shows the whole pipeline
//! catching a real one: in `async` mode, a leader left alone and then lost
//! (`strand-leader`) takes acknowledged writes with it, and one of at most three runs
//! must exit 1 (whether a short window exposes the loss is a matter of timing). The
//! runs go one at a time (they time faults in seconds, and parallel runs on two cores
//! starve each other), each well under 40 s. Ctrl-C (SIGINT) ends a long run early,
//! and it still heals, checks and stops every process it started. As root (CI), the
//! nodes also run in network namespaces and partitions are cut: majority mode stays
//! valid, async mode with the leader isolated loses writes and the run says so; without
//! root that test says so and checks only that the run went on without partitions.

#[allow(dead_code, unused_imports)]
#[path = "../src/livetest/network/mod.rs"]
mod network;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Fewest `ok` operations a run must complete to count as having tested anything.
const OK_OPERATIONS_MIN: u64 = 100;

/// One live run at a time: each starts a cluster and times its faults in seconds, and
/// runs in parallel on two cores starve each other (a lone leader's short window passes
/// without a write, a start-up outlasts its deadline) and race for free ports.
static LIVE_RUN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`LIVE_RUN`] (a panicking test leaves it usable).
fn one_live_run_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    LIVE_RUN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run_test(workload: &str, time_limit_s: &str) -> tempfile::TempDir {
    let flags = ["--faults", "kill-leader,pause,link-faults"];
    let (output, stdout) = run_expecting(workload, time_limit_s, &flags, &[0]);
    assert!(stdout.contains("result: valid"), "{stdout}");
    output
}

/// Runs `replikv test` with `extra` flags and checks its exit code and that it left
/// no process behind; returns the output directory and what it printed (stdout, then
/// stderr).
fn run_expecting(
    workload: &str,
    time_limit_s: &str,
    extra: &[&str],
    exit_codes: &[i32],
) -> (tempfile::TempDir, String) {
    let _running = one_live_run_at_a_time();
    let output = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_replikv"));
    command.args([
        "test",
        "--workload",
        workload,
        "--time-limit-s",
        time_limit_s,
    ]);
    for default in [
        ["--fault-interval-s", "2"],
        ["--clients", "4"],
        ["--seed", "5"],
    ] {
        if !extra.contains(&default[0]) {
            command.args(default);
        }
    }
    let child = command
        .args(extra)
        .arg("--output")
        .arg(output.path())
        .env_remove("REPLIKV_CLIENT_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The run names its network after its process id: whatever it built under that
    // name must be gone once it has returned (its iptables rules live only inside its
    // namespaces, so they go with them).
    let run_tag = network::run_tag_of_process(child.id());
    let result = child.wait_with_output().unwrap();
    let network_left = network::leftovers_of(&run_tag);
    assert!(
        network_left.is_empty(),
        "the run left namespaces or links behind: {network_left:?}"
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_nothing_left(output.path());
    let code = result.status.code().unwrap_or(-1);
    assert!(
        exit_codes.contains(&code),
        "replikv test --workload {workload} {extra:?} exited {code}:\n{stdout}\n{stderr}"
    );
    (output, format!("{stdout}\n{stderr}"))
}

/// Every server process the run started has exited.
fn assert_nothing_left(output: &Path) {
    let pids = std::fs::read_to_string(output.join("pids.txt")).unwrap();
    let pids: Vec<i32> = pids.lines().map(|line| line.parse().unwrap()).collect();
    assert!(pids.len() >= 3, "{pids:?}");
    for pid in pids {
        assert_eq!(
            kill(Pid::from_raw(pid), None),
            Err(Errno::ESRCH),
            "server process {pid} survived the run"
        );
    }
}

fn check_summary(output: &Path, functions: &[&str]) {
    let text = std::fs::read_to_string(output.join("summary.json")).unwrap();
    let summary: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut ok = 0;
    for function in functions {
        let count = summary["operations"][function]["ok"].as_u64();
        let count = count.unwrap_or_else(|| panic!("{function} in {summary}"));
        assert!(count > 0, "no ok {function}: {summary}");
        ok += count;
    }
    assert!(ok > OK_OPERATIONS_MIN, "{summary}");
    assert!(summary["fault_windows"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(summary["exit_code"], 0, "{summary}");
    let faults = std::fs::read_to_string(output.join("faults.jsonl")).unwrap();
    for line in faults.lines() {
        let window: serde_json::Value = serde_json::from_str(line).unwrap();
        let (start, end) = (window["start_ns"].as_u64(), window["end_ns"].as_u64());
        assert!(start.unwrap() <= end.unwrap(), "{window}");
        let kinds = ["kill-leader", "pause", "link-faults"];
        assert!(
            kinds.contains(&window["kind"].as_str().unwrap()),
            "{window}"
        );
    }
    let timeline = std::fs::read_to_string(output.join("timeline.svg")).unwrap();
    assert!(timeline.starts_with("<svg") || timeline.starts_with("<?xml"));
    assert!(timeline.trim_end().ends_with("</svg>"));
    let history = std::fs::read(output.join("history.jsonl")).unwrap();
    let history = replikv_check::History::read_jsonl(history.as_slice()).unwrap();
    assert!(history.operations.len() as u64 > OK_OPERATIONS_MIN);
}

#[test]
fn register_workload_with_kills_and_pauses_is_linearizable() {
    let output = run_test("register", "12");
    check_summary(output.path(), &["read", "write", "cas"]);
}

#[test]
fn set_workload_loses_no_acknowledged_add() {
    let output = run_test("set", "9");
    check_summary(output.path(), &["read", "write"]);
}

#[test]
fn session_workload_keeps_its_session_guarantees() {
    let output = run_test("session", "9");
    check_summary(output.path(), &["read", "write"]);
}

/// Most runs a loss test makes before it concludes the checker misses the loss.
const LOSS_RUNS_MAX: u64 = 3;

/// Runs `replikv test` with `flags` (an `async` cluster and a fault that loses writes a
/// lone leader acknowledged) until a run's checker reports the loss, each run with its
/// own seed; fails if none of [`LOSS_RUNS_MAX`] runs does. A loss shows only if clients
/// wrote to the lone leader in its short window (check-quorum soon makes it step down)
/// and a later read exposes it: one run can miss it on a loaded machine (CI saw one in
/// about ten), three in a row are very unlikely to. A run that finds nothing must still
/// be valid. `needs_network`: the fault is a partition (`None`-path: not root).
fn find_the_lost_writes(flags: &[&str], time_limit_s: &str, needs_network: bool) {
    let mut missed = Vec::new();
    for run in 0..LOSS_RUNS_MAX {
        let seed = (11 + run).to_string();
        let mut flags = flags.to_vec();
        flags.extend(["--seed", &seed]);
        let printed = if needs_network {
            match run_with_partitions(&flags, time_limit_s, 1) {
                Some(printed) => printed,
                None => return,
            }
        } else {
            run_expecting("register", time_limit_s, &flags, &[0, 1]).1
        };
        if printed.contains("result: VIOLATION") {
            assert!(printed.contains("linearizability: VIOLATED"), "{printed}");
            return;
        }
        assert!(printed.contains("result: valid"), "{printed}");
        missed.push(printed);
    }
    panic!(
        "none of {LOSS_RUNS_MAX} runs found the lost writes:\n{}",
        missed.join("\n---\n")
    );
}

#[test]
fn async_mode_loses_acknowledged_writes_and_the_checker_says_so() {
    let flags = ["--commit-mode", "async", "--faults", "strand-leader"];
    find_the_lost_writes(&flags, "14", false);
}

#[test]
fn ctrl_c_stops_early_and_still_heals_cleans_up_and_checks() {
    let _running = one_live_run_at_a_time();
    let output = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_replikv"))
        .args(["test", "--workload", "register", "--time-limit-s", "120"])
        .args([
            "--faults",
            "pause",
            "--fault-interval-s",
            "1",
            "--clients",
            "2",
        ])
        .arg("--output")
        .arg(output.path())
        .env_remove("REPLIKV_CLIENT_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once every node is up (each writes its endpoints file when listening).
    let deadline = Instant::now() + Duration::from_secs(30);
    let started = |node: u16| output.path().join(format!("n{node}/endpoints")).exists();
    while !(1..=3).all(started) {
        assert!(Instant::now() < deadline, "the cluster did not start");
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "replikv test ended before its cluster started: {:?}",
            child.wait_with_output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let interrupted = Instant::now();
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGINT,
    )
    .unwrap();
    let result = child.wait_with_output().unwrap();
    assert!(
        interrupted.elapsed() < Duration::from_secs(60),
        "did not stop early"
    );
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stderr.contains("interrupted (SIGINT)"), "{stderr}");
    assert!(stdout.contains("result: valid"), "{stdout}");
    assert!(output.path().join("history.jsonl").exists());
    assert_nothing_left(output.path());
}

#[test]
fn clock_skew_sets_and_clears_every_nodes_clock_offset() {
    // A failed admin request is a problem of the run, which then exits 2: exit 0 says
    // every offset was set and cleared.
    let flags = ["--faults", "clock-skew", "--fault-interval-s", "1"];
    let (output, printed) = run_expecting("register", "6", &flags, &[0]);
    assert!(printed.contains("result: valid"), "{printed}");
    let faults = std::fs::read_to_string(output.path().join("faults.jsonl")).unwrap();
    let windows: Vec<serde_json::Value> = faults
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        !windows.is_empty(),
        "no clock-skew window in 6 s:\n{printed}"
    );
    for window in windows {
        assert_eq!(window["kind"], "clock-skew", "{window}");
        // One drawn offset per node, e.g. "127.0.0.1:4101 -1234 ms,...".
        let target = window["target"].as_str().unwrap();
        assert_eq!(target.matches(" ms").count(), 3, "{window}");
    }
}

/// Runs with network faults; `None` when namespaces cannot be built here (not root, no
/// `ip netns` or iptables): the run said why and went on without them.
fn run_with_partitions(flags: &[&str], time_limit_s: &str, exit_code: i32) -> Option<String> {
    let (output, printed) = run_expecting("register", time_limit_s, flags, &[0, exit_code]);
    let faults = std::fs::read_to_string(output.path().join("faults.jsonl")).unwrap();
    if faults.trim().is_empty() {
        assert!(printed.contains("cannot be injected"), "{printed}");
        assert!(printed.contains("result: valid"), "{printed}");
        eprintln!("network path not available here: ran without partitions\n{printed}");
        return None;
    }
    eprintln!("network path ran: nodes in namespaces, partitions cut with iptables");
    // Every namespace, link and rule was removed (an error would be reported).
    assert!(!printed.contains("removing the test network"), "{printed}");
    Some(printed)
}

#[test]
fn partitions_keep_majority_mode_linearizable() {
    let flags = ["--faults", "isolate-leader,partition-majority,bridge"];
    if let Some(printed) = run_with_partitions(&flags, "9", 0) {
        assert!(printed.contains("result: valid"), "{printed}");
    }
}

#[test]
fn async_mode_with_the_leader_isolated_loses_writes_and_the_checker_says_so() {
    // Six one-second isolations, eight clients: each leaves writes only the isolated
    // leader acknowledged, which a later read shows gone.
    let flags = [
        "--commit-mode",
        "async",
        "--faults",
        "isolate-leader",
        "--fault-interval-s",
        "1",
        "--clients",
        "8",
    ];
    find_the_lost_writes(&flags, "12", true);
}
