//! End-to-end: `replikv bench` against a cluster it starts and against a RESP endpoint.
//!
//! The first test is CI's short benchmark run: `replikv bench --start 1 --duration-s 2
//! --json` must start a node, drive load through it, stop it and print one JSON line
//! whose figures make sense (operations done, no errors, percentiles ordered, reads
//! and writes both present). The second starts a single `replikv server` itself (RESP
//! port 0, read back from its `endpoints` file), waits until it leads, and points
//! `replikv bench --resp` at it, the way a user measures Redis; it also asks for the
//! SVG histogram and checks the file. The third interrupts a 60-second run with SIGINT
//! (Ctrl-C) and checks that bench stops at once, says why, and stops its node and
//! removes its temporary directory (each test gives bench its own `TMPDIR` and finds it
//! empty afterwards). Every wait polls a condition with a deadline.

mod support;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

fn bench_command(arguments: &[&str], temporary: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_replikv"));
    command
        .arg("bench")
        .args(arguments)
        .args(["--warmup-s", "0", "--clients", "8", "--json"])
        .env("TMPDIR", temporary);
    command
}

fn bench(arguments: &[&str]) -> serde_json::Value {
    bench_with_password(arguments, None)
}

/// Runs bench with `REPLIKV_CLIENT_PASSWORD` set (the nodes it starts inherit it).
fn bench_with_password(arguments: &[&str], password: Option<&str>) -> serde_json::Value {
    let temporary = tempfile::tempdir().unwrap();
    let mut command = bench_command(arguments, temporary.path());
    command.env_remove("REPLIKV_CLIENT_PASSWORD");
    if let Some(password) = password {
        command.env("REPLIKV_CLIENT_PASSWORD", password);
    }
    let output: Output = command.args(["--duration-s", "2"]).output().unwrap();
    assert_left_nothing(temporary.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

/// The temporary cluster's directory is removed once its nodes are stopped.
fn assert_left_nothing(temporary: &Path) {
    let left: Vec<_> = std::fs::read_dir(temporary).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn check_figures(report: &serde_json::Value) {
    let number = |field: &str| {
        report[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{field} in {report}"))
    };
    assert!(number("ops") > 0, "{report}");
    assert_eq!(number("errors"), 0, "{report}");
    assert_eq!(
        number("reads") + number("writes"),
        number("ops"),
        "{report}"
    );
    assert!(number("reads") > 0 && number("writes") > 0, "{report}");
    let percentiles = ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"].map(number);
    assert!(percentiles.is_sorted(), "{report}");
    assert!(report["ops_per_sec"].as_f64().unwrap() > 0.0, "{report}");
    assert_eq!(report["clients"], 8);
}

#[test]
fn bench_starts_a_cluster_and_reports_json() {
    let report = bench(&["--start", "1"]);
    check_figures(&report);
    assert_eq!(report["system"], "replikv-majority-1");
}

/// Nodes started with a client password refuse unauthenticated commands (NOAUTH):
/// every operation would count as an error if bench did not authenticate.
#[test]
fn bench_authenticates_when_the_cluster_requires_a_password() {
    let report = bench_with_password(&["--start", "1"], Some("bench-secret"));
    check_figures(&report);
}

/// A single node serving RESP, killed when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn leads(address: std::net::SocketAddr) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://{address}/")) else {
        return false;
    };
    let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    let info: String = redis::cmd("INFO")
        .query(&mut connection)
        .unwrap_or_default();
    info.lines().any(|line| line == "role:leader")
}

#[test]
fn bench_measures_any_resp_endpoint_and_draws_the_histogram() {
    let directory = tempfile::tempdir().unwrap();
    let data_dir = directory.path().join("n1");
    let peer = format!("127.0.0.1:{}", support::free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_replikv"))
        .arg("server")
        .args(["--node-id", "1", "--peer-address", &peer])
        .args(["--resp-address", "127.0.0.1:0", "--commit-mode", "async"])
        .arg("--data-dir")
        .arg(&data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _node = Node(child);
    let start = Instant::now();
    let address = loop {
        if let Some(address) = replikv_server::server::read_resp_endpoint(&data_dir)
            && leads(address)
        {
            break address;
        }
        assert!(start.elapsed() < DEADLINE, "the node never led");
        std::thread::sleep(Duration::from_millis(20));
    };
    let svg = directory.path().join("latency.svg");
    let endpoint = address.to_string();
    let report = bench(&[
        "--resp",
        &endpoint,
        "--read-ratio",
        "0.9",
        "--histogram",
        svg.to_str().unwrap(),
    ]);
    check_figures(&report);
    assert_eq!(report["system"], format!("resp:{endpoint}"));
    assert_eq!(report["op_mix"], "read90_write10");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(
        picture.starts_with("<svg ") && picture.contains("p99"),
        "{picture}"
    );
}

#[test]
fn ctrl_c_stops_the_cluster_and_removes_its_data() {
    let temporary = tempfile::tempdir().unwrap();
    let mut child = bench_command(&["--start", "1"], temporary.path())
        .args(["--duration-s", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The signal handlers are in place before the temporary directory is made, so
    // waiting for the node's endpoints file means the signal cannot kill bench outright.
    let start = Instant::now();
    while !started_a_node(temporary.path()) {
        assert!(start.elapsed() < DEADLINE, "bench never started a node");
        assert!(child.try_wait().unwrap().is_none(), "bench exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap());
    kill(pid, Signal::SIGINT).unwrap();
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("bench did not stop within {DEADLINE:?} of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success());
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_left_nothing(temporary.path());
}

fn started_a_node(temporary: &Path) -> bool {
    std::fs::read_dir(temporary)
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| entry.path().join("n1").join("endpoints").exists())
}
