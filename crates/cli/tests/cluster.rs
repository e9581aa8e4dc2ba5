//! End-to-end: real `replikv server` processes on loopback, a real Redis client, `kill -9`.
//!
//! This is the promise the README makes, checked the way an operator would: three
//! server processes of the built binary, writes through a follower read back through
//! another node, the leader killed with SIGKILL while a client keeps writing, every
//! acknowledged write still there afterwards, and the killed node restarted from its
//! data directory catching up. Peer ports are picked by binding port 0 and releasing
//! it just before the child binds it (the child sets `SO_REUSEADDR`); RESP ports are
//! chosen by the children themselves (port 0) and read back from the `endpoints` file
//! each writes into its data directory. Every wait polls a condition with a deadline.

mod support;

use redis::Connection;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

struct Node {
    id: u64,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    resp: Option<SocketAddr>,
}

struct Cluster {
    nodes: Vec<Node>,
    _directory: tempfile::TempDir,
}

impl Cluster {
    fn new(size: u64) -> Cluster {
        let directory = tempfile::tempdir().unwrap();
        let nodes = (1..=size)
            .map(|id| Node {
                id,
                peer_port: support::free_port(),
                data_dir: directory.path().join(format!("n{id}")),
                log: directory.path().join(format!("n{id}.log")),
                child: None,
                resp: None,
            })
            .collect();
        let mut cluster = Cluster {
            nodes,
            _directory: directory,
        };
        for index in 0..cluster.nodes.len() {
            cluster.start(index);
        }
        cluster
    }

    fn start(&mut self, index: usize) {
        let peers: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("{}=127.0.0.1:{}", node.id, node.peer_port))
            .collect();
        let log_path = self.nodes[index].log.clone();
        let node = &mut self.nodes[index];
        let _ = std::fs::remove_file(node.data_dir.join("endpoints"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_replikv"));
        command
            .arg("server")
            .args(["--node-id", &node.id.to_string()])
            .args(["--peer-address", &format!("127.0.0.1:{}", node.peer_port)])
            .args(["--resp-address", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(&node.data_dir)
            .args(["--election-timeout-ms-min", "300"])
            .args(["--election-timeout-ms-max", "600"])
            .args(["--heartbeat-interval-ms", "50"]);
        for peer in &peers {
            command.args(["--peer", peer]);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        node.child = Some(child);
        let start = Instant::now();
        node.resp = loop {
            if let Some(address) = replikv_server::server::read_resp_endpoint(&node.data_dir) {
                break Some(address);
            }
            let exited = node.child.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none(),
                "node {} exited: {}",
                node.id,
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            assert!(start.elapsed() < DEADLINE, "node {} never started", node.id);
            std::thread::sleep(Duration::from_millis(10));
        };
    }

    /// SIGKILL: no flush, no goodbye.
    fn kill(&mut self, index: usize) {
        let mut child = self.nodes[index].child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.nodes[index].resp = None;
    }

    fn connect(&self, index: usize) -> Connection {
        let address = self.nodes[index].resp.expect("node running");
        let client = redis::Client::open(format!("redis://{address}/")).unwrap();
        let connection = client.get_connection_with_timeout(DEADLINE).unwrap();
        connection.set_read_timeout(Some(DEADLINE)).unwrap();
        connection
    }

    /// The leader's index once every running node names the same one.
    fn wait_for_leader(&self) -> usize {
        let start = Instant::now();
        loop {
            let named: Vec<Option<u64>> = (0..self.nodes.len())
                .filter(|index| self.nodes[*index].resp.is_some())
                .map(|index| leader_of(&mut self.connect(index)))
                .collect();
            if let Some(Some(leader)) = named.first()
                && named.iter().all(|other| *other == Some(*leader))
            {
                return self
                    .nodes
                    .iter()
                    .position(|node| node.id == *leader)
                    .unwrap();
            }
            assert!(start.elapsed() < DEADLINE, "no agreed leader: {named:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            support::stop_child(&mut node.child);
        }
    }
}

/// The leader a node names in INFO (`None` while it knows none).
fn leader_of(connection: &mut Connection) -> Option<u64> {
    let info: String = redis::cmd("INFO").query(connection).ok()?;
    let leader: u64 = info
        .lines()
        .find_map(|line| line.strip_prefix("leader_id:"))?
        .trim()
        .parse()
        .ok()?;
    (leader != 0).then_some(leader)
}

fn get(connection: &mut Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(connection).unwrap()
}

/// Writes `w0`, `w1`, ... through node `index` until `target` were acknowledged;
/// returns the acknowledged ones. Errors (unavailable, unknown outcome) are not
/// acknowledgements and are skipped.
fn write_until(address: SocketAddr, target: usize, acknowledged: &Mutex<Vec<usize>>) {
    let client = redis::Client::open(format!("redis://{address}/")).unwrap();
    let mut connection = client.get_connection_with_timeout(DEADLINE).unwrap();
    connection.set_read_timeout(Some(DEADLINE)).unwrap();
    let start = Instant::now();
    let mut next = 0;
    while acknowledged.lock().unwrap().len() < target {
        assert!(start.elapsed() < DEADLINE * 2, "writes did not continue");
        let result: redis::RedisResult<()> = redis::cmd("SET")
            .arg(format!("w{next}"))
            .arg(next)
            .query(&mut connection);
        if result.is_ok() {
            acknowledged.lock().unwrap().push(next);
        }
        next += 1;
    }
}

/// SIGTERM: a graceful shutdown that exits successfully.
fn stop_gracefully(cluster: &mut Cluster, index: usize) {
    let mut child = cluster.nodes[index].child.take().unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "SIGTERM did not stop the node");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status}");
}

/// Writes through `writer` (a follower), kills `leader` after 50 acknowledged writes,
/// and goes on until 200 were acknowledged; returns the acknowledged writes.
fn kill_leader_while_writing(cluster: &mut Cluster, leader: usize, writer: usize) -> Vec<usize> {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        let address = cluster.nodes[writer].resp.unwrap();
        std::thread::spawn(move || write_until(address, 200, &acknowledged))
    };
    let start = Instant::now();
    while acknowledged.lock().unwrap().len() < 50 {
        assert!(start.elapsed() < DEADLINE, "writes before the kill stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.kill(leader);
    writer.join().unwrap();
    acknowledged.lock().unwrap().clone()
}

#[test]
fn a_killed_leader_loses_no_acknowledged_write_and_catches_up_after_restart() {
    let mut cluster = Cluster::new(3);
    let leader = cluster.wait_for_leader();
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;

    // Replication through a follower, read through another node.
    let mut through_follower = cluster.connect(follower);
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query(&mut through_follower)
        .unwrap();
    assert_eq!(
        get(&mut cluster.connect(other), "greeting").as_deref(),
        Some("hello")
    );

    // Kill the leader while a client writes through the follower.
    let acknowledged = kill_leader_while_writing(&mut cluster, leader, follower);
    let new_leader = cluster.wait_for_leader();
    assert_ne!(new_leader, leader);

    // Every acknowledged write is there, read linearizably through both survivors.
    for index in [follower, other] {
        let mut connection = cluster.connect(index);
        for value in &acknowledged {
            let key = format!("w{value}");
            assert_eq!(
                get(&mut connection, &key),
                Some(value.to_string()),
                "{key} lost"
            );
        }
    }

    // The killed node restarts from its data directory and catches up.
    cluster.start(leader);
    let mut restarted = cluster.connect(leader);
    let _: () = redis::cmd("READCONSISTENCY")
        .arg("follower")
        .query(&mut restarted)
        .unwrap();
    let last = format!("w{}", acknowledged.last().unwrap());
    let start = Instant::now();
    while get(&mut restarted, &last).is_none() {
        assert!(
            start.elapsed() < DEADLINE,
            "the restarted node never caught up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for value in &acknowledged {
        let key = format!("w{value}");
        assert_eq!(
            get(&mut restarted, &key),
            Some(value.to_string()),
            "{key} on the restarted node"
        );
    }
    assert_eq!(get(&mut restarted, "greeting").as_deref(), Some("hello"));

    stop_gracefully(&mut cluster, leader);
}
