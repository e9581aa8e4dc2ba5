//! Mechanical checks of ARCHITECTURE.md's invariants; each test names the invariant.

use replikv_tidy::{files_with_extension, repository_root};
use std::fs;
use std::path::Path;

/// Crates whose code must stay sans-IO and deterministic: no async runtime, no sockets, no
/// wall clock, no threads, no unseeded randomness. (The storage crate does file I/O through
/// its disk module only; the simulator owns virtual time.)
const DETERMINISTIC_CRATES: &[&str] = &["core", "storage", "sim", "replication"];

/// Crates that must not depend on an async runtime. The checkers may read the monotonic
/// clock, for their search time budget only.
const SYNCHRONOUS_CRATES: &[&str] = &["core", "storage", "sim", "check", "replication"];

/// Source patterns that would break determinism in those crates.
const FORBIDDEN_IN_DETERMINISTIC_CODE: &[&str] = &[
    "tokio",
    "std::net",
    "SystemTime",
    "Instant::now",
    "thread::spawn",
    "thread_rng",
    "rand::rng()",
    "from_os_rng",
    "from_entropy",
];

fn relative(path: &Path) -> String {
    path.strip_prefix(repository_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn rust_files() -> Vec<std::path::PathBuf> {
    files_with_extension(&repository_root().join("crates"), ".rs")
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut missing = Vec::new();
    for path in rust_files() {
        let text = fs::read_to_string(&path).unwrap();
        let first = text.lines().find(|line| !line.trim().is_empty());
        if !first.is_some_and(|line| line.starts_with("//!")) {
            missing.push(relative(&path));
        }
    }
    assert!(
        missing.is_empty(),
        "files without a leading //! doc: {missing:#?}"
    );
}

#[test]
fn synchronous_crates_have_no_async_runtime_dependency() {
    for name in SYNCHRONOUS_CRATES {
        let manifest = repository_root()
            .join("crates")
            .join(name)
            .join("Cargo.toml");
        let text = fs::read_to_string(&manifest).unwrap();
        for forbidden in ["tokio", "async-std", "smol", "mio"] {
            assert!(
                !text.contains(forbidden),
                "{} depends on {forbidden}",
                relative(&manifest)
            );
        }
    }
}

#[test]
fn deterministic_crates_read_no_clock_socket_thread_or_entropy() {
    let mut violations = Vec::new();
    for name in DETERMINISTIC_CRATES {
        let source = repository_root().join("crates").join(name).join("src");
        for path in files_with_extension(&source, ".rs") {
            let text = fs::read_to_string(&path).unwrap();
            for (number, line) in text.lines().enumerate() {
                for pattern in FORBIDDEN_IN_DETERMINISTIC_CODE {
                    if line.contains(pattern) && !line.trim_start().starts_with("//") {
                        violations.push(format!("{}:{}: {pattern}", relative(&path), number + 1));
                    }
                }
            }
        }
    }
    assert!(violations.is_empty(), "non-determinism: {violations:#?}");
}

#[test]
fn file_system_access_in_storage_goes_through_the_disk_module() {
    let source = repository_root().join("crates/storage/src");
    let mut violations = Vec::new();
    for path in files_with_extension(&source, ".rs") {
        if path.ends_with("disk/os.rs") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let code_uses_fs = text
            .lines()
            .any(|line| line.contains("std::fs") && !line.trim_start().starts_with("//"));
        if code_uses_fs {
            violations.push(relative(&path));
        }
    }
    assert!(
        violations.is_empty(),
        "std::fs outside disk/os.rs: {violations:#?}"
    );
}

#[test]
fn checkers_depend_on_nothing_they_check() {
    let manifest = repository_root().join("crates/check/Cargo.toml");
    let text = fs::read_to_string(&manifest).unwrap();
    let dependencies = text
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .unwrap_or_default();
    assert!(
        !dependencies.contains("replikv-"),
        "{} must depend only on the history format, not on replikv's crates",
        relative(&manifest)
    );
}

#[test]
fn no_test_is_ignored() {
    let attribute = ["#[", "ignore"].concat();
    let offenders: Vec<String> = rust_files()
        .into_iter()
        .filter(|path| fs::read_to_string(path).unwrap().contains(&attribute))
        .map(|path| relative(&path))
        .collect();
    assert!(offenders.is_empty(), "ignored tests: {offenders:#?}");
}

#[test]
fn source_files_stay_under_a_thousand_lines() {
    let long: Vec<String> = rust_files()
        .into_iter()
        .filter_map(|path| {
            let lines = fs::read_to_string(&path).unwrap().lines().count();
            (lines > 1000).then(|| format!("{}: {lines} lines", relative(&path)))
        })
        .collect();
    assert!(long.is_empty(), "split these files: {long:#?}");
}

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    let readme = fs::read_to_string(repository_root().join("README.md")).unwrap();
    let ci = fs::read_to_string(repository_root().join(".ci/run")).unwrap();
    assert!(
        readme.contains("scripts/test"),
        "README names no test command"
    );
    assert!(
        readme.contains("scripts/setup"),
        "README names no setup command"
    );
    let ci_commands: Vec<&str> = ci
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert_eq!(
        ci_commands.last(),
        Some(&"scripts/test"),
        ".ci/run must end by calling the README's test command"
    );
}
