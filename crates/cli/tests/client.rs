//! End-to-end: the `replikv-client` library and the client commands against real server
//! processes, through a leader's `kill -9`.
//!
//! Three `replikv server` processes on loopback (peer ports picked by binding port 0
//! and releasing it; HTTP ports chosen by the children and read back from the
//! `endpoints` file each writes, as in `cluster.rs`). One client, given all three HTTP
//! endpoints, writes through leader discovery; the test checks it found the leader,
//! kills that leader with SIGKILL, and keeps writing: every write must succeed after
//! rediscovery (the client's bounded retries cover the election). It then writes and
//! immediately reads back with session consistency, rotating over the survivors, so
//! that some reads are served by a follower: each must see the client's own write.
//! Finally `replikv status`, `get`, `put`, `cas` and `del` run as commands. Every wait
//! polls a condition with a deadline.

mod support;

use replikv_client::{BlockingClient, CasOutcome, ClientOptions, Consistency};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

struct Node {
    id: u64,
    child: Option<Child>,
    http: String,
}

struct Cluster {
    nodes: Vec<Node>,
    _directory: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            support::stop_child(&mut node.child);
        }
    }
}

fn spawn_node(id: u64, peers: &[String], data_dir: &Path, log: &Path) -> Child {
    let peer_address = peers[usize::try_from(id).unwrap() - 1]
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let log = std::fs::File::create(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_replikv"));
    command
        .arg("server")
        .args(["--node-id", &id.to_string()])
        .args(["--peer-address", &peer_address])
        .args(["--resp-address", "127.0.0.1:0"])
        .args(["--http-address", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--election-timeout-ms-min", "300"])
        .args(["--election-timeout-ms-max", "600"])
        .args(["--heartbeat-interval-ms", "50"]);
    for peer in peers {
        command.args(["--peer", peer]);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn start_cluster(size: u64) -> Cluster {
    let directory = tempfile::tempdir().unwrap();
    let peers: Vec<String> = (1..=size)
        .map(|id| format!("{id}=127.0.0.1:{}", support::free_port()))
        .collect();
    let mut nodes = Vec::new();
    for id in 1..=size {
        let data_dir: PathBuf = directory.path().join(format!("n{id}"));
        let log = directory.path().join(format!("n{id}.log"));
        let mut child = spawn_node(id, &peers, &data_dir, &log);
        let start = Instant::now();
        let http = loop {
            if let Some(http) =
                support::endpoint(&data_dir, "http").map(|address| address.to_string())
            {
                break http;
            }
            let exited = child.try_wait().unwrap();
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(exited.is_none(), "node {id} exited: {log}");
            assert!(start.elapsed() < DEADLINE, "node {id} never started: {log}");
            std::thread::sleep(Duration::from_millis(10));
        };
        nodes.push(Node {
            id,
            child: Some(child),
            http,
        });
    }
    Cluster {
        nodes,
        _directory: directory,
    }
}

impl Cluster {
    fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.http.clone()).collect()
    }

    /// The leader's index, once every running node agrees on it.
    fn wait_for_leader(&self, client: &BlockingClient) -> usize {
        let start = Instant::now();
        loop {
            let status = client.status();
            let running: Vec<_> = status.reachable().collect();
            let leader = status.leader();
            let agreed = leader.is_some()
                && running.len() == self.running()
                && running.iter().all(|node| node.leader == leader);
            if agreed && let Some(index) = self.nodes.iter().position(|n| Some(n.id) == leader) {
                return index;
            }
            assert!(start.elapsed() < DEADLINE, "no agreed leader: {status:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn running(&self) -> usize {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .count()
    }

    /// SIGKILL: no flush, no goodbye.
    fn kill(&mut self, index: usize) {
        let mut child = self.nodes[index].child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Runs `replikv <arguments> --endpoints <all>`.
    fn command(&self, arguments: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_replikv"))
            .args(arguments)
            .args(["--endpoints", &self.endpoints().join(",")])
            .output()
            .unwrap()
    }
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_client_follows_the_leader_through_a_kill_and_reads_its_writes_anywhere() {
    let mut cluster = start_cluster(3);
    let client = BlockingClient::new(&cluster.endpoints(), ClientOptions::default()).unwrap();
    let leader = cluster.wait_for_leader(&client);

    // Writes through discovery go to the leader.
    for index in 0..20 {
        let written = client
            .put(&format!("k{index}"), format!("v{index}"))
            .unwrap();
        assert_eq!(written.version, 1);
    }
    let leader_http = cluster.nodes[leader].http.clone();
    assert_eq!(client.inner().leader_endpoint(), Some(leader_http.clone()));

    // Kill the leader; every further write succeeds after rediscovery.
    cluster.kill(leader);
    for index in 20..40 {
        client
            .put(&format!("k{index}"), format!("v{index}"))
            .unwrap();
    }
    let new_leader = client.inner().leader_endpoint().unwrap();
    assert_ne!(new_leader, leader_http);
    for index in 0..40 {
        let read = client.get(&format!("k{index}"), Consistency::Linearizable);
        let read = read.unwrap().unwrap_or_else(|| panic!("k{index} lost"));
        assert_eq!(read.value, format!("v{index}").into_bytes());
    }

    // Read-your-writes from followers: session reads rotate over the endpoints.
    let mut served_by_a_follower = 0;
    for round in 0..20 {
        let value = format!("round {round}");
        let written = client.put("session", &value).unwrap();
        let read = client
            .get("session", Consistency::Session)
            .unwrap()
            .unwrap();
        assert_eq!(read.value, value.into_bytes(), "round {round}");
        assert!(read.position >= written.position);
        assert!(client.session_position() >= read.position);
        if read.served_by != new_leader {
            served_by_a_follower += 1;
        }
    }
    assert!(
        served_by_a_follower > 0,
        "no session read reached a follower"
    );

    // Compare-and-set through the library.
    let swapped = client.compare_and_set("k0", Some("v0"), "w0").unwrap();
    assert!(matches!(swapped, CasOutcome::Swapped(written) if written.version == 2));
    let refused = client.compare_and_set("k0", Some("v0"), "x").unwrap();
    assert_eq!(refused, CasOutcome::Differs);
    assert_eq!(
        client.compare_and_set("nothing", Some("v"), "x").unwrap(),
        CasOutcome::Absent
    );

    // The commands.
    let status = cluster.command(&["status"]);
    assert!(status.status.success(), "{}", text(&status));
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("unreachable"), "{}", text(&status));
    assert!(stdout.contains("LAG_ENTRIES"), "{}", text(&status));
    let get = cluster.command(&["get", "k1"]);
    assert!(get.status.success(), "{}", text(&get));
    assert_eq!(get.stdout, b"v1\n");
    let put = cluster.command(&["put", "shell", "typed"]);
    assert!(put.status.success(), "{}", text(&put));
    let cas = cluster.command(&["cas", "shell", "retyped", "--expected", "typed"]);
    assert!(cas.status.success(), "{}", text(&cas));
    let cas = cluster.command(&["cas", "shell", "again", "--expected", "typed"]);
    assert_eq!(cas.status.code(), Some(1), "{}", text(&cas));
    let del = cluster.command(&["del", "shell"]);
    assert!(del.status.success(), "{}", text(&del));
    let get = cluster.command(&["get", "shell", "--consistency", "lease"]);
    assert_eq!(get.status.code(), Some(1), "{}", text(&get));
    let bad = cluster.command(&["get", "k1", "--consistency", "eventual"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}
