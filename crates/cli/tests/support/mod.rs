//! What the end-to-end tests with real `replikv` processes share: free loopback ports,
//! the addresses a node wrote into its data directory's `endpoints` file, and stopping
//! a child process for good. Each test binary uses part of it, hence the `dead_code`
//! allowance.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Child;

/// A loopback port nothing listens on right now (the OS picked it for a listener that
/// is closed again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
