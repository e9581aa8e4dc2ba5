//! What the end-to-end tests with real `replikv` processes share: free loopback ports,
//! the addresses a node wrote into its data directory's `endpoints` file, and stopping
//! a child process for good. Each test binary uses part of it, hence the `dead_code`
//! allowance.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;

/// The binary's port rotation (see its module doc), shared by path: the `replikv`
/// package has no library to import it from.
#[path = "../../src/ports.rs"]
mod ports;

/// A loopback port below the ephemeral range that no other test holds (see `ports`).
pub fn free_port() -> u16 {
    ports::free_port().unwrap()
}

/// The address named `name` (`resp`, `http`, `peer`) in the `endpoints` file a node
/// wrote into `data_dir`, once it did.
pub fn endpoint(data_dir: &Path, name: &str) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(data_dir.join("endpoints")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .and_then(|address| address.parse().ok())
}

/// Kills (`SIGKILL`) and reaps `child` if it is still there.
pub fn stop_child(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
