//! `replikv cluster up`: a local cluster of real server processes, for trying replikv.
//!
//! Starts `--nodes` child processes of this very executable (`replikv server`), each a
//! full node with its own data directory under `--data-dir` (`n1`, `n2`, ...) and its
//! log file beside it (`n1.log`, ...), on loopback: node i serves RESP on
//! `base-port + i - 1`, HTTP on that port plus 1000, and talks to its peers on the
//! RESP port plus 10000. It waits until
//! the nodes agree on a leader (asking each over RESP with `INFO`), prints the
//! endpoints and how to connect, then supervises: a child that dies (say, `kill -9`'d to
//! watch a failover) is reported and the others go on; on Ctrl-C or SIGTERM it sends
//! SIGTERM to every child (a graceful shutdown), waits a bounded time, and kills what
//! is left. Children are killed on every exit path, including errors.
//!
//! Restarting with the same `--data-dir` brings the same cluster back with its data.

use clap::{Args, Subcommand};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Longest `cluster up` waits for a leader.
const LEADER_WAIT: Duration = Duration::from_secs(30);
/// Longest a child may take to stop after SIGTERM before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// Most nodes of a local cluster.
const NODES_MAX: u16 = 9;
/// Peer ports are RESP ports plus this.
const PEER_PORT_OFFSET: u16 = 10_000;
/// HTTP ports are RESP ports plus this.
const HTTP_PORT_OFFSET: u16 = 1_000;

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Start a local cluster of server processes and supervise it until Ctrl-C.
    Up(UpArgs),
}

#[derive(Debug, Args)]
struct UpArgs {
    /// How many nodes (processes).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// RESP port of node 1; node i uses base-port + i - 1, and that plus 10000 for peers.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Where the nodes keep their data (one subdirectory per node) and logs.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
    /// The commit mode of the cluster's group.
    #[arg(long, default_value = "majority")]
    commit_mode: String,
    /// Whether the nodes run their log's fsync beside their node loop (`replikv server
    /// --pipelined-fsync`): auto, on or off; by default each node's own default.
    #[arg(long, value_name = "auto|on|off")]
    pipelined_fsync: Option<String>,
}

pub fn run(args: &ClusterArgs) -> ExitCode {
    let ClusterCommand::Up(up) = &args.command;
    match cluster_up(up) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("replikv cluster up: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The children, killed when this is dropped (every exit path).
struct Children(Vec<(u16, Child)>);

impl Children {
    fn any_exited(&mut self) -> Option<u16> {
        self.0
            .iter_mut()
            .find_map(|(node, child)| (!matches!(child.try_wait(), Ok(None))).then_some(*node))
    }

    /// Prints, once each, the nodes that exited (killed, crashed or stopped): the
    /// others go on, as a real cluster would.
    fn report_exits(&mut self, reported: &mut Vec<u16>) {
        for (node, child) in &mut self.0 {
            if reported.contains(node) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("node {node} exited ({status}); the other nodes go on");
                reported.push(*node);
            }
        }
    }

    /// SIGTERM to all, then wait (bounded), then SIGKILL what is left.
    fn stop(&mut self) {
        for (_, child) in &self.0 {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_WAIT;
        for (node, child) in &mut self.0 {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                eprintln!("node {node} did not stop within {STOP_WAIT:?}: killing it");
            }
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Node `node`'s RESP and peer ports.
fn ports(up: &UpArgs, node: u16) -> Result<(u16, u16), String> {
    let resp = up.base_port.checked_add(node - 1);
    let peer = resp.and_then(|port| port.checked_add(PEER_PORT_OFFSET));
    let http = resp.and_then(|port| port.checked_add(HTTP_PORT_OFFSET));
    match (resp, peer, http) {
        (Some(resp), Some(peer), Some(_)) => Ok((resp, peer)),
        _ => Err(format!(
            "--base-port {} leaves no room for {} nodes",
            up.base_port, up.nodes
        )),
    }
}

fn spawn_node(up: &UpArgs, node: u16, executable: &Path) -> Result<Child, String> {
    let (resp, peer) = ports(up, node)?;
    let log_path = up.data_dir.join(format!("n{node}.log"));
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|error| format!("{}: {error}", log_path.display()))?;
    let log_for_stdout = log.try_clone().map_err(|error| error.to_string())?;
    let mut command = Command::new(executable);
    command
        .arg("server")
        .args(["--node-id", &node.to_string()])
        .args(["--peer-address", &format!("127.0.0.1:{peer}")])
        .args(["--resp-address", &format!("127.0.0.1:{resp}")])
        .args([
            "--http-address",
            &format!("127.0.0.1:{}", resp + HTTP_PORT_OFFSET),
        ])
        .arg("--data-dir")
        .arg(up.data_dir.join(format!("n{node}")))
        .args(["--commit-mode", &up.commit_mode]);
    if let Some(mode) = &up.pipelined_fsync {
        command.args(["--pipelined-fsync", mode]);
    }
    for other in (1..=up.nodes).filter(|other| *other != node) {
        let (_, other_peer) = ports(up, other)?;
        command.args(["--peer", &format!("{other}=127.0.0.1:{other_peer}")]);
    }
    command
        .stdin(Stdio::null())
        .stdout(log_for_stdout)
        .stderr(log)
        .spawn()
        .map_err(|error| format!("starting node {node}: {error}"))
}

/// One node's role and leader id, from `INFO`.
fn ask_node(resp_port: u16) -> Option<(String, u64)> {
    let address = format!("127.0.0.1:{resp_port}");
    let mut connection = crate::password::probe_connection(&address, Duration::from_millis(500))?;
    let info: String = redis::cmd("INFO").query(&mut connection).ok()?;
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::to_owned)
    };
    Some((field("role")?, field("leader_id")?.parse().ok()?))
}

fn wait_for_leader(up: &UpArgs, children: &mut Children) -> Result<u16, String> {
    let deadline = Instant::now() + LEADER_WAIT;
    while Instant::now() < deadline {
        if let Some(node) = children.any_exited() {
            let log = up.data_dir.join(format!("n{node}.log"));
            return Err(format!("node {node} exited; see {}", log.display()));
        }
        let mut leaders = Vec::new();
        for node in 1..=up.nodes {
            let (resp, _) = ports(up, node)?;
            leaders.push(ask_node(resp).map(|(_, leader)| leader));
        }
        let first = leaders[0];
        if let Some(leader) = first.filter(|leader| *leader != 0)
            && leaders.iter().all(|known| *known == first)
        {
            return u16::try_from(leader).map_err(|_| "impossible leader id".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("no leader agreed on within {LEADER_WAIT:?}"))
}

fn cluster_up(up: &UpArgs) -> Result<(), String> {
    if !(1..=NODES_MAX).contains(&up.nodes) {
        return Err(format!("--nodes must be 1..={NODES_MAX}"));
    }
    ports(up, up.nodes)?;
    fs::create_dir_all(&up.data_dir)
        .map_err(|error| format!("{}: {error}", up.data_dir.display()))?;
    let executable = std::env::current_exe().map_err(|error| error.to_string())?;
    let mut children = Children(Vec::new());
    for node in 1..=up.nodes {
        children.0.push((node, spawn_node(up, node, &executable)?));
    }
    let leader = wait_for_leader(up, &mut children)?;
    print_endpoints(up, leader)?;
    let mut reported = Vec::new();
    let stopped_by = replikv_server::wait_for_signal_or(Duration::from_millis(200), || {
        children.report_exits(&mut reported);
        reported.len() == children.0.len()
    })
    .map_err(|error| error.to_string())?;
    match stopped_by {
        Some(signal) => println!("{signal}: stopping the cluster"),
        None => eprintln!("every node exited"),
    }
    children.stop();
    Ok(())
}

fn print_endpoints(up: &UpArgs, leader: u16) -> Result<(), String> {
    println!(
        "replikv cluster up: {} nodes, commit mode {}, data in {}",
        up.nodes,
        up.commit_mode,
        up.data_dir.display()
    );
    for node in 1..=up.nodes {
        let (resp, peer) = ports(up, node)?;
        let role = if node == leader { "leader" } else { "follower" };
        println!(
            "  node {node}: RESP 127.0.0.1:{resp}  HTTP 127.0.0.1:{}  peers 127.0.0.1:{peer}  ({role})  log {}",
            resp + HTTP_PORT_OFFSET,
            up.data_dir.join(format!("n{node}.log")).display()
        );
    }
    let (first, _) = ports(up, 1)?;
    println!("connect with: redis-cli -p {first}   (any node accepts any command)");
    println!(
        "or HTTP:      curl -X PUT --data-binary v 127.0.0.1:{}/v1/kv/k; curl 127.0.0.1:{}/v1/status",
        first + HTTP_PORT_OFFSET,
        first + HTTP_PORT_OFFSET
    );
    if crate::password::client_password().is_some() {
        println!(
            "REPLIKV_CLIENT_PASSWORD is set: the nodes require it (redis-cli -a \"$REPLIKV_CLIENT_PASSWORD\", \
             curl -H \"Authorization: Bearer $REPLIKV_CLIENT_PASSWORD\")"
        );
    }
    println!(
        "Ctrl-C stops every node; `replikv cluster up` again with the same --data-dir restarts them."
    );
    Ok(())
}
