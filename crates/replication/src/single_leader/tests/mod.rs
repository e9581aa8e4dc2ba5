//! Data-driven tests of the Raft node, in the spirit of toydb's goldenscripts.
//!
//! Each file in `scripts/` is a scenario: lines starting with `>` are commands for a tiny
//! in-crate cluster harness ([`cluster::Cluster`]), and the lines after a command are what
//! it printed: messages sent and dropped, client replies, and the nodes whose role, term,
//! log, commit or applied index changed. The expected output is checked in; a change in
//! behaviour shows up as a readable diff. `UPDATE_SCRIPTS=1 cargo test -p
//! replikv-replication` rewrites the files with the actual output (review the diff!).
//! Lines starting with `#` are comments and are kept.
//!
//! The harness has no dependency on the simulator: a global virtual clock that moves
//! only when a command says so, a network that holds messages until `deliver`, explicit
//! partitions, and simulated disks that lose unsynced writes on `crash`. See
//! `cluster.rs` for the commands. `robustness.rs` feeds a node absurd peer messages.

mod cluster;
mod command;
mod expiry;
mod format;
mod open;
mod pipeline;
mod planted;
mod reads;
mod robustness;
mod snapshot;
mod transfer;

use cluster::Cluster;
use std::fs;
use std::path::{Path, PathBuf};

/// Runs every command of `text` and returns the text with the actual outputs.
fn run_script(text: &str) -> String {
    let mut cluster: Option<Cluster> = None;
    let mut out = String::new();
    for line in text.lines() {
        if let Some(command) = line.strip_prefix("> ") {
            out.push_str(line);
            out.push('\n');
            let lines = match cluster.as_mut() {
                Some(cluster) => cluster.run(command),
                None => {
                    let (created, lines) = Cluster::create(command);
                    cluster = Some(created);
                    lines
                }
            };
            for output in lines {
                out.push_str(&output);
                out.push('\n');
            }
        } else if line.starts_with('#') || line.trim().is_empty() {
            out.push_str(line);
            out.push('\n');
        }
    }
    if let Some(mut cluster) = cluster {
        cluster.check_invariants();
    }
    out
}

fn scripts_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/single_leader/tests/scripts")
}

fn check_script(name: &str) {
    let path = scripts_directory().join(format!("{name}.txt"));
    let text = fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
    let actual = run_script(&text);
    if std::env::var_os("UPDATE_SCRIPTS").is_some() {
        fs::write(&path, &actual).expect("script rewritten");
        return;
    }
    assert!(
        actual == text,
        "{name}.txt differs from its actual output (UPDATE_SCRIPTS=1 rewrites it):\n{}",
        first_difference(&text, &actual)
    );
}

fn first_difference(expected: &str, actual: &str) -> String {
    let expected_lines: Vec<&str> = expected.lines().collect();
    let actual_lines: Vec<&str> = actual.lines().collect();
    let line = expected_lines
        .iter()
        .zip(&actual_lines)
        .position(|(a, b)| a != b)
        .unwrap_or(expected_lines.len().min(actual_lines.len()));
    format!(
        "line {}:\n  expected: {:?}\n  actual:   {:?}",
        line + 1,
        expected_lines.get(line),
        actual_lines.get(line)
    )
}

#[test]
fn every_script_is_tested() {
    let mut names: Vec<String> = fs::read_dir(scripts_directory())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut listed: Vec<String> = SCRIPTS.iter().map(|name| format!("{name}.txt")).collect();
    listed.sort();
    assert_eq!(names, listed, "every script in scripts/ has a test");
}

/// Declares one test per script and the list `every_script_is_tested` compares with the
/// folder (one name per line, trailing comma: merges stay line-sized).
macro_rules! script_tests {
    ($($name:ident,)*) => {
        const SCRIPTS: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check_script(stringify!($name));
            }
        )*
    };
}

script_tests!(
    election,
    pre_vote,
    check_quorum,
    replication,
    pipelined_sync,
    backtracking,
    commit_current_term,
    read_index,
    restart,
    pipeline_recovery,
    largest_command,
    commit_all,
    commit_semi_sync_first,
    snapshot_install,
    snapshot_resume,
    snapshot_leader_change,
    compaction_lag,
    snapshot_divergence,
    lease_read,
    session_read,
    replication_lag,
    idempotent_retry,
    compare_and_set_version,
    leases,
    transfer,
    transfer_lagging,
    transfer_partitioned,
    transfer_lease,
    transfer_membership,
    membership_learner,
    membership_snapshot,
    membership_remove,
    membership_remove_leader,
    membership_pending,
    membership_revert,
    membership_restart,
    membership_commit_mode,
    expiry,
    expiry_conditions,
    expiry_failover,
    expiry_transfer,
    retry_when_full,
);
