//! # replikv-tidy: the architecture invariants that a machine can check
//!
//! ARCHITECTURE.md states invariants; the ones that can be checked by reading the tree are
//! checked here, inside `cargo test`, so they cannot rot (the idea comes from
//! rust-analyzer's tidy tests). The checks live in `tests/tidy.rs`; this library only
//! finds the repository's files.

use std::fs;
use std::path::{Path, PathBuf};

/// The repository root (two levels above this crate).
#[must_use]
pub fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate lives at crates/tidy")
        .to_path_buf()
}

/// Every file below `directory` whose name ends with `extension`, skipping build output
/// and hidden directories, sorted.
#[must_use]
pub fn files_with_extension(directory: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![directory.to_path_buf()];
    while let Some(directory) = pending.pop() {
        let Ok(entries) = fs::read_dir(&directory) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if name.ends_with(extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}
