//! `replikv bench --start N`: a throwaway local cluster to measure.
//!
//! Starts N child processes of this very executable (`replikv server`), as `replikv
//! cluster up` does, but everything is temporary: the data directories and logs live in
//! a fresh temporary directory that is removed at the end, RESP ports are chosen by the
//! children themselves (port 0, read back from the `endpoints` file each writes into its
//! data directory), and peer ports are found by binding port 0 and releasing it just
//! before the child binds it. It waits (bounded) until every node names the same leader
//! over `INFO` and hands back the leader's RESP address, where the benchmark sends its
//! load (any node accepts any command, but a follower would add a forwarding hop).
//! The children are stopped when the [`LocalCluster`] is dropped, on every exit path:
//! SIGTERM, a bounded wait, then SIGKILL. How one node is started is shared with
//! `replikv test` (`crate::node_process`).

use crate::node_process::{NodeSpec, ask_leader};
use crate::ports::free_port;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

/// Most nodes.
pub const NODES_MAX: u16 = 9;
/// Longest the cluster may take to start and elect a leader.
const START_WAIT: Duration = Duration::from_secs(30);
/// Longest a child may take to stop after SIGTERM before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// Pause between polls while waiting.
const POLL: Duration = Duration::from_millis(20);

/// A running temporary cluster; stopped and deleted when dropped.
#[derive(Debug)]
pub struct LocalCluster {
    children: Vec<Child>,
    leader_resp: SocketAddr,
    // Dropped after the children are stopped (fields drop in order, after `drop`).
    directory: tempfile::TempDir,
}

impl LocalCluster {
    /// Starts `nodes` nodes in `commit_mode` and waits for a leader.
    pub fn start(nodes: u16, commit_mode: &str) -> Result<LocalCluster, String> {
        if !(1..=NODES_MAX).contains(&nodes) {
            return Err(format!("--start must be 1..={NODES_MAX}"));
        }
        let directory = tempfile::Builder::new()
            .prefix("replikv-bench-")
            .tempdir()
            .map_err(|error| format!("temporary directory: {error}"))?;
        let peer_ports = (0..nodes)
            .map(|_| free_port())
            .collect::<Result<Vec<_>, _>>()?;
        let executable = std::env::current_exe().map_err(|error| error.to_string())?;
        let mut cluster = LocalCluster {
            children: Vec::new(),
            leader_resp: SocketAddr::from(([127, 0, 0, 1], 0)),
            directory,
        };
        for node in 1..=nodes {
            let spec =
                NodeSpec::loopback(cluster.directory.path(), node, &peer_ports, 0, commit_mode);
            let child = spec.spawn(&executable)?;
            cluster.children.push(child);
        }
        cluster.leader_resp = cluster.wait_for_leader()?;
        Ok(cluster)
    }

    /// The leader's RESP address.
    pub fn leader_resp(&self) -> SocketAddr {
        self.leader_resp
    }

    fn check_alive(&mut self) -> Result<(), String> {
        for (index, child) in self.children.iter_mut().enumerate() {
            if !matches!(child.try_wait(), Ok(None)) {
                let log = self.directory.path().join(format!("n{}.log", index + 1));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String = text.lines().rev().take(5).collect::<Vec<_>>().join("\n");
                return Err(format!("node {} exited during start-up: {tail}", index + 1));
            }
        }
        Ok(())
    }

    fn wait_for_leader(&mut self) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + START_WAIT;
        while Instant::now() < deadline {
            self.check_alive()?;
            let endpoints: Option<Vec<SocketAddr>> = (1..=self.children.len())
                .map(|node| {
                    let data_dir = self.directory.path().join(format!("n{node}"));
                    replikv_server::server::read_resp_endpoint(&data_dir)
                })
                .collect();
            if let Some(endpoints) = endpoints {
                let leaders: Vec<Option<u64>> = endpoints
                    .iter()
                    .map(|address| ask_leader(*address, Duration::from_millis(500)))
                    .collect();
                if let Some(leader) = leaders[0].filter(|leader| *leader != 0)
                    && leaders.iter().all(|known| *known == Some(leader))
                    && let Some(address) = usize::try_from(leader - 1)
                        .ok()
                        .and_then(|index| endpoints.get(index))
                {
                    return Ok(*address);
                }
            }
            std::thread::sleep(POLL);
        }
        Err(format!("no leader agreed on within {START_WAIT:?}"))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for child in &self.children {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_WAIT;
        for child in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
