//! The cluster under test: real `replikv server` processes the test can hurt.
//!
//! [`LiveCluster`] starts N nodes of this very executable on loopback, each with fixed
//! peer and RESP ports (found free at the start and kept for the whole run, so a client
//! pinned to a node finds it again after a restart), its data directory and its log in
//! the run's output directory. The nemesis then uses the four process faults a real
//! operator sees: `kill -9` ([`LiveCluster::kill`], no shutdown at all: whatever was not
//! fsynced is gone), restart on the same data directory ([`LiveCluster::restart`]),
//! SIGSTOP ([`LiveCluster::pause`], the process freezes mid-instruction, its sockets stay
//! open and peers see only silence: the classic "long GC pause") and SIGCONT
//! ([`LiveCluster::resume`]). [`LiveCluster::leader`] asks the running, unpaused nodes
//! over `INFO` whom they follow and takes the majority answer.
//!
//! With a `NodeNetwork` (root, `ip netns`, iptables: see `network/`), each node runs
//! in a network namespace of its own, on its own address, started through `ip netns
//! exec` (which execs the server: the pid is the server's), and the nemesis can cut
//! partitions ([`LiveCluster::partition`], [`LiveCluster::heal_network`]); the network
//! is destroyed after the nodes are stopped.
//!
//! Every pid started is appended to `pids.txt` in the run's directory as it starts.
//! Every child runs in its own process group (a terminal's Ctrl-C reaches only the test,
//! which then heals and checks before stopping the nodes) and is stopped on every exit
//! path: [`LiveCluster::stop`] and `Drop` resume paused children, send SIGTERM, wait a
//! bounded time and SIGKILL the rest, and reap them all. The cluster starts nodes
//! through `crate::node_process`, which `replikv bench --start` uses too.

use super::network::NodeNetwork;
use crate::node_process::{NodeSpec, ask_leader};
use crate::ports::free_port;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Most nodes.
pub const NODES_MAX: u16 = 9;
/// Longest a child may take to stop after SIGTERM before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(5);
/// Longest one `INFO` probe waits.
const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
/// The peer port of a node in its own namespace (its address is its own).
const PEER_PORT: u16 = 17001;
/// The RESP port of a node in its own namespace.
const RESP_PORT: u16 = 7001;
/// The HTTP port of a node in its own namespace (link faults only).
const HTTP_PORT: u16 = 8001;
/// Pause between polls while waiting.
const POLL: Duration = Duration::from_millis(50);

/// One node: how to start it, and its process when it runs.
#[derive(Debug)]
struct Node {
    spec: NodeSpec,
    /// Its HTTP API, when it has one (only for the link-faults nemesis).
    http_address: Option<SocketAddr>,
    child: Option<Child>,
    paused: bool,
}

/// A running local cluster of server processes; stopped when dropped.
#[derive(Debug)]
pub struct LiveCluster {
    executable: PathBuf,
    nodes: Vec<Node>,
    /// `pids.txt` in the run's directory: each pid is appended as its node starts, so a
    /// user can find the nodes even if this process is killed outright.
    pids_path: PathBuf,
    /// The nodes' namespaces, when they run in their own (partitions possible).
    network: Option<NodeNetwork>,
}

impl LiveCluster {
    /// Starts `nodes` nodes in `commit_mode`, data and logs under `directory`: on
    /// loopback, or each in its namespace of `network` (then partitions can be cut).
    pub fn start(
        directory: &Path,
        nodes: u16,
        commit_mode: &str,
        network: Option<NodeNetwork>,
        testing_faults: bool,
    ) -> Result<LiveCluster, String> {
        if !(1..=NODES_MAX).contains(&nodes) {
            return Err(format!("--nodes must be 1..={NODES_MAX}"));
        }
        let executable = std::env::current_exe().map_err(|error| error.to_string())?;
        let (members, resp_addresses) = match &network {
            Some(network) => {
                assert_eq!(network.node_count(), usize::from(nodes));
                let address = |index: u16, port| {
                    SocketAddr::new(network.node_address(usize::from(index)), port)
                };
                let members = (0..nodes).map(|index| address(index, PEER_PORT)).collect();
                let resp = (0..nodes).map(|index| address(index, RESP_PORT)).collect();
                (members, resp)
            }
            None => {
                let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
                let members: Vec<SocketAddr> = (0..nodes)
                    .map(|_| free_port().map(loopback))
                    .collect::<Result<_, _>>()?;
                let resp: Vec<SocketAddr> = (0..nodes)
                    .map(|_| free_port().map(loopback))
                    .collect::<Result<_, _>>()?;
                (members, resp)
            }
        };
        let mut cluster = LiveCluster {
            executable,
            nodes: Vec::new(),
            pids_path: directory.join("pids.txt"),
            network,
        };
        for (index, resp_address) in resp_addresses.into_iter().enumerate() {
            let node = u16::try_from(index + 1).expect("at most NODES_MAX");
            let mut spec =
                NodeSpec::new(directory, node, members.clone(), resp_address, commit_mode);
            spec.own_process_group = true;
            let http_address = if testing_faults {
                let port = match cluster.network {
                    Some(_) => HTTP_PORT,
                    None => free_port()?,
                };
                let address = SocketAddr::new(resp_address.ip(), port);
                spec.extra_arguments = vec![
                    "--testing-faults".into(),
                    "--http-address".into(),
                    address.to_string(),
                ];
                Some(address)
            } else {
                None
            };
            cluster.nodes.push(Node {
                spec,
                http_address,
                child: None,
                paused: false,
            });
            cluster.restart(node)?;
        }
        Ok(cluster)
    }

    /// Cuts the network into `components` (1-based node ids; a node in two is a bridge).
    pub fn partition(&mut self, components: &[Vec<u16>]) -> Result<(), String> {
        let network = self.network.as_mut().ok_or("no network to partition")?;
        let indices: Vec<Vec<usize>> = components
            .iter()
            .map(|component| {
                component
                    .iter()
                    .map(|node| usize::from(*node) - 1)
                    .collect()
            })
            .collect();
        network.partition(&indices)
    }

    /// The HTTP addresses of the nodes that run and have one.
    pub fn http_addresses(&self) -> Vec<SocketAddr> {
        let up = self
            .nodes
            .iter()
            .filter(|node| node.child.is_some() && !node.paused);
        up.filter_map(|node| node.http_address).collect()
    }

    /// Removes every cut (nothing without a network).
    pub fn heal_network(&mut self) -> Result<(), String> {
        self.network.as_mut().map_or(Ok(()), NodeNetwork::heal)
    }

    /// Every node's RESP address, by id (index + 1).
    pub fn resp_addresses(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .map(|node| node.spec.resp_address)
            .collect()
    }

    /// How many nodes the cluster has.
    pub fn size(&self) -> u16 {
        u16::try_from(self.nodes.len()).expect("at most NODES_MAX")
    }

    fn node_mut(&mut self, node: u16) -> &mut Node {
        assert!(node >= 1 && node <= self.size(), "no node {node}");
        &mut self.nodes[usize::from(node) - 1]
    }

    fn signal(child: &Child, signal: Signal) {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// `kill -9` the node (nothing if it is not running).
    pub fn kill(&mut self, node: u16) {
        let node = self.node_mut(node);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// Starts the node again on its data directory (nothing if it runs).
    pub fn restart(&mut self, node: u16) -> Result<(), String> {
        assert!(node >= 1 && node <= self.size(), "no node {node}");
        let executable = self.executable.clone();
        let node = &mut self.nodes[usize::from(node) - 1];
        if node.child.is_none() {
            let child = match &self.network {
                Some(network) => {
                    let index = usize::from(node.spec.node) - 1;
                    let command = network.command_in_namespace(index, &executable);
                    node.spec.spawn_with(command)?
                }
                None => node.spec.spawn(&executable)?,
            };
            // Owned before anything else can fail, so that stop and Drop reach it.
            let pid = child.id();
            node.child = Some(child);
            node.paused = false;
            let mut pids = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.pids_path)
                .map_err(|error| format!("{}: {error}", self.pids_path.display()))?;
            writeln!(pids, "{pid}")
                .map_err(|error| format!("{}: {error}", self.pids_path.display()))?;
        }
        Ok(())
    }

    /// SIGSTOP the node (nothing if it is not running).
    pub fn pause(&mut self, node: u16) {
        let node = self.node_mut(node);
        if let Some(child) = &node.child {
            Self::signal(child, Signal::SIGSTOP);
            node.paused = true;
        }
    }

    /// SIGCONT the node.
    pub fn resume(&mut self, node: u16) {
        let node = self.node_mut(node);
        if let Some(child) = &node.child {
            Self::signal(child, Signal::SIGCONT);
        }
        node.paused = false;
    }

    /// Whether the node runs and is not paused.
    pub fn is_up(&self, node: u16) -> bool {
        let node = &self.nodes[usize::from(node) - 1];
        node.child.is_some() && !node.paused
    }

    /// Resumes every paused node and restarts every killed one.
    pub fn heal(&mut self) -> Result<(), String> {
        self.heal_network()?;
        for node in 1..=self.size() {
            self.resume(node);
            self.restart(node)?;
        }
        Ok(())
    }

    /// The leader most running, unpaused nodes name, if any names one.
    pub fn leader(&self) -> Option<u16> {
        let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
        for node in (1..=self.size()).filter(|node| self.is_up(*node)) {
            let address = self.nodes[usize::from(node) - 1].spec.resp_address;
            if let Some(leader) = ask_leader(address, PROBE_TIMEOUT).filter(|id| *id != 0) {
                *votes.entry(leader).or_default() += 1;
            }
        }
        let (leader, _) = votes.into_iter().max_by_key(|(_, count)| *count)?;
        u16::try_from(leader)
            .ok()
            .filter(|leader| (1..=self.size()).contains(leader))
    }

    /// Waits until every running node names the same leader; errors after `timeout` or
    /// when a node exited by itself.
    pub fn wait_for_leader(&mut self, timeout: Duration) -> Result<u16, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let up: Vec<u16> = (1..=self.size()).filter(|n| self.is_up(*n)).collect();
            let named: Vec<Option<u64>> = up
                .iter()
                .map(|node| {
                    let address = self.nodes[usize::from(*node) - 1].spec.resp_address;
                    ask_leader(address, PROBE_TIMEOUT)
                })
                .collect();
            if let Some(Some(leader)) = named.first().copied()
                && leader != 0
                && named.iter().all(|known| *known == Some(leader))
                && let Ok(leader) = u16::try_from(leader)
            {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(format!("no leader agreed on within {timeout:?}"));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Errors when a node that should run has exited by itself.
    pub fn check_alive(&mut self) -> Result<(), String> {
        for node in &mut self.nodes {
            if let Some(child) = &mut node.child
                && matches!(child.try_wait(), Ok(Some(_)))
            {
                let tail = node.spec.log_tail(5);
                node.child = None;
                return Err(format!("node {} exited by itself: {tail}", node.spec.node));
            }
        }
        Ok(())
    }

    /// Stops every node: SIGCONT, SIGTERM, a bounded wait, SIGKILL; reaps them all.
    pub fn stop(&mut self) {
        for node in &self.nodes {
            if let Some(child) = &node.child {
                Self::signal(child, Signal::SIGCONT);
                Self::signal(child, Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_WAIT;
        for node in &mut self.nodes {
            node.paused = false;
            let Some(mut child) = node.child.take() else {
                continue;
            };
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(network) = self.network.take()
            && let Err(error) = network.destroy()
        {
            eprintln!("replikv test: removing the test network: {error}");
        }
    }
}

impl Drop for LiveCluster {
    fn drop(&mut self) {
        self.stop();
    }
}
