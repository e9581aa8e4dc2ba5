//! Starting one `replikv server` child process: what `replikv bench --start` and
//! `replikv test` share.
//!
//! Both tools run throwaway local clusters of this very executable. What they have in
//! common is small but easy to get subtly wrong, so it lives here once: how a node's
//! command line is built from its id, its own addresses and its peers' addresses
//! ([`NodeSpec`]); where its stderr goes (a log file, appended to, so a node restarted
//! on the same data directory keeps one log of all its lives); how a free port is found
//! (bind port 0 and release it just before the child binds it: a small race, acceptable
//! for local tests); and how a node is asked whom it believes leads (`INFO`'s
//! `leader_id`, over a short-lived blocking connection with a timeout, so a paused or
//! dead node costs a bounded wait).
//!
//! What differs stays with each tool: bench starts a cluster once and stops it; the live
//! test kills, pauses and restarts its nodes, so it keeps every node's [`NodeSpec`] to
//! start the same node again, and puts each child in its own process group so that a
//! Ctrl-C in the terminal reaches the test (which heals, checks and then stops the nodes)
//! rather than killing the nodes under it.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Everything needed to start (and start again) one node.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// The node's id, 1-based.
    pub node: u16,
    /// Its data directory (kept across restarts).
    pub data_dir: PathBuf,
    /// Where its stderr is appended.
    pub log_path: PathBuf,
    /// Its peer address.
    pub peer_address: SocketAddr,
    /// Its RESP address (port 0: the node picks one and writes it to its `endpoints`).
    pub resp_address: SocketAddr,
    /// Every member's peer address, by id (index + 1), this node's included.
    pub members: Vec<SocketAddr>,
    /// The commit mode (`majority`, `async`, ...).
    pub commit_mode: String,
    /// Start the child in a process group of its own (immune to the terminal's Ctrl-C).
    pub own_process_group: bool,
    /// More flags for `replikv server` (e.g. `--testing-faults`, `--http-address`).
    pub extra_arguments: Vec<String>,
}

impl NodeSpec {
    /// The spec of node `node` of a loopback cluster whose members listen for peers on
    /// `peer_ports`, with its data in `directory/n{node}` and its log in
    /// `directory/n{node}.log`.
    pub fn loopback(
        directory: &Path,
        node: u16,
        peer_ports: &[u16],
        resp_port: u16,
        commit_mode: &str,
    ) -> NodeSpec {
        let members: Vec<SocketAddr> = peer_ports
            .iter()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], *port)))
            .collect();
        let resp_address = SocketAddr::from(([127, 0, 0, 1], resp_port));
        NodeSpec::new(directory, node, members, resp_address, commit_mode)
    }

    /// The spec of node `node` of a cluster whose members listen for peers at
    /// `members` (by id), with its data in `directory/n{node}` and its log in
    /// `directory/n{node}.log`.
    pub fn new(
        directory: &Path,
        node: u16,
        members: Vec<SocketAddr>,
        resp_address: SocketAddr,
        commit_mode: &str,
    ) -> NodeSpec {
        assert!(usize::from(node) >= 1 && usize::from(node) <= members.len());
        NodeSpec {
            node,
            data_dir: directory.join(format!("n{node}")),
            log_path: directory.join(format!("n{node}.log")),
            peer_address: members[usize::from(node) - 1],
            resp_address,
            members,
            commit_mode: commit_mode.to_string(),
            own_process_group: false,
            extra_arguments: Vec::new(),
        }
    }

    /// Starts the node as a child of `executable` (this very binary).
    pub fn spawn(&self, executable: &Path) -> Result<Child, String> {
        self.spawn_with(Command::new(executable))
    }

    /// Starts the node with `command` (this binary, or a wrapper that runs it, such as
    /// `ip netns exec NAMESPACE replikv`), adding the node's arguments.
    pub fn spawn_with(&self, mut command: Command) -> Result<Child, String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|error| format!("{}: {error}", self.log_path.display()))?;
        command
            .arg("server")
            .args(["--node-id", &self.node.to_string()])
            .args(["--peer-address", &self.peer_address.to_string()])
            .args(["--resp-address", &self.resp_address.to_string()])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--commit-mode", &self.commit_mode])
            .args(&self.extra_arguments);
        for (index, address) in self.members.iter().enumerate() {
            let other = index + 1;
            if other != usize::from(self.node) {
                command.args(["--peer", &format!("{other}={address}")]);
            }
        }
        if self.own_process_group {
            command.process_group(0);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|error| format!("starting node {}: {error}", self.node))
    }

    /// The last `lines` lines of the node's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let mut tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.reverse();
        tail.join("\n")
    }
}

/// The leader id a node reports over `INFO` (0: none known; `None`: no answer within
/// `timeout`).
pub fn ask_leader(address: SocketAddr, timeout: Duration) -> Option<u64> {
    let mut connection = crate::password::probe_connection(&address.to_string(), timeout)?;
    let info: String = redis::cmd("INFO").query(&mut connection).ok()?;
    info.lines()
        .find_map(|line| line.strip_prefix("leader_id:"))
        .and_then(|id| id.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_specs_name_every_member() {
        let spec = NodeSpec::loopback(Path::new("/tmp/x"), 2, &[1001, 1002, 1003], 0, "async");
        assert_eq!(spec.peer_address.port(), 1002);
        assert_eq!(spec.members.len(), 3);
        assert_eq!(spec.data_dir, Path::new("/tmp/x/n2"));
        assert_eq!(spec.log_path, Path::new("/tmp/x/n2.log"));
        assert_eq!(spec.commit_mode, "async");
    }
}
