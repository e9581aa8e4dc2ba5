//! End-to-end: a running cluster grows under write load and shrinks, with real
//! `replikv server` processes and the `replikv member` CLI.
//!
//! The story the issue names — "a new member added under write load catches up from a
//! snapshot" — told the way an operator would: three nodes whose logs are cut into tiny
//! segments (so every node compacts its log while the writes pour in), a writer thread
//! that keeps putting keys through one node, a fourth node started with `--join`,
//! `replikv member add` to make it a learner, `replikv member promote` (retried while
//! the leader says the learner still lags), then the writer stops. Every acknowledged
//! write must be readable on the new node with a follower read once it applied the
//! leader's commit index, and the new node must have installed a snapshot (its log
//! could not start at index 1: the leader had compacted it). Finally a founder is
//! removed with `replikv member remove`, killed, and the cluster keeps writing.
//!
//! Ports: peer ports are picked by binding port 0 and releasing it just before the
//! child binds it (the child sets `SO_REUSEADDR`); RESP and HTTP ports are chosen by the
//! children (port 0) and read back from the `endpoints` file. Every wait polls a
//! condition with a deadline.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// Log segments this small make every node compact while the test writes.
const LOG_SEGMENT_SIZE_MAX_BYTES: &str = "4096";

/// The log is compacted only up to the store's durable position: frequent store syncs
/// keep that position close behind the writes (the server's default, 1,024, would hold
/// back all of this test's few hundred writes).
const STORE_SYNC_ENTRIES: &str = "64";

/// Writes acknowledged before node 4 is started: several segments' worth.
const WRITES_BEFORE_JOIN: usize = 400;

struct Node {
    id: u64,
    peer_port: u16,
    child: Option<Child>,
    resp: SocketAddr,
    http: SocketAddr,
}

impl Drop for Node {
    fn drop(&mut self) {
        support::stop_child(&mut self.child);
    }
}

/// Starts node `id`; `founders` are the peers (`id=address`); `join` for a new node.
fn start_node(directory: &Path, id: u64, peer_port: u16, founders: &[String], join: bool) -> Node {
    let data_dir = directory.join(format!("n{id}"));
    let log_path = directory.join(format!("n{id}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_replikv"));
    command
        .arg("server")
        .args(["--node-id", &id.to_string()])
        .args(["--peer-address", &format!("127.0.0.1:{peer_port}")])
        .args(["--resp-address", "127.0.0.1:0"])
        .args(["--http-address", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--election-timeout-ms-min", "300"])
        .args(["--election-timeout-ms-max", "600"])
        .args(["--heartbeat-interval-ms", "50"])
        .args(["--log-segment-size-max-bytes", LOG_SEGMENT_SIZE_MAX_BYTES])
        .args(["--store-sync-entries", STORE_SYNC_ENTRIES]);
    for peer in founders {
        command.args(["--peer", peer]);
    }
    if join {
        command.arg("--join");
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let (resp, http) = loop {
        if let (Some(resp), Some(http)) = (
            support::endpoint(&data_dir, "resp"),
            support::endpoint(&data_dir, "http"),
        ) {
            break (resp, http);
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "node {id} exited: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        assert!(start.elapsed() < DEADLINE, "node {id} never started");
        std::thread::sleep(Duration::from_millis(10));
    };
    Node {
        id,
        peer_port,
        child: Some(child),
        resp,
        http,
    }
}

/// `GET /v1/status` of a node, as JSON (`None` if it does not answer now).
fn status(node: &Node) -> Option<serde_json::Value> {
    let mut stream = TcpStream::connect(node.http).ok()?;
    stream.set_read_timeout(Some(DEADLINE)).ok()?;
    let request = "GET /v1/status HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).ok()?;
    let mut output = String::new();
    stream.read_to_string(&mut output).ok()?;
    let (_, body) = output.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

fn number(status: &serde_json::Value, field: &str) -> u64 {
    status[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {status}"))
}

/// The id every given node names as leader, once they agree.
fn wait_for_leader(nodes: &[&Node]) -> u64 {
    let start = Instant::now();
    loop {
        let named: Vec<Option<u64>> = nodes
            .iter()
            .map(|node| status(node).and_then(|status| status["leader"].as_u64()))
            .collect();
        if let Some(Some(leader)) = named.first()
            && named.iter().all(|other| *other == Some(*leader))
        {
            return *leader;
        }
        assert!(start.elapsed() < DEADLINE, "no agreed leader: {named:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `replikv member ...` against `node`.
fn member(node: &Node, arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replikv"))
        .arg("member")
        .args(arguments)
        .args(["--http", &node.http.to_string()])
        .output()
        .unwrap()
}

fn connect(address: SocketAddr) -> redis::Connection {
    let client = redis::Client::open(format!("redis://{address}/")).unwrap();
    let connection = client.get_connection_with_timeout(DEADLINE).unwrap();
    connection.set_read_timeout(Some(DEADLINE)).unwrap();
    connection
}

/// A thread that writes `w0`, `w1`, ... through one node until told to stop, keeping
/// the acknowledged ones (an error is not an acknowledgement).
struct Writer {
    acknowledged: Arc<Mutex<Vec<usize>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Writer {
    fn start(address: SocketAddr) -> Writer {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (acknowledged, stop) = (Arc::clone(&acknowledged), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut connection = connect(address);
                let mut next = 0;
                while !stop.load(Ordering::Relaxed) {
                    let result: redis::RedisResult<()> = redis::cmd("SET")
                        .arg(format!("w{next}"))
                        .arg(next)
                        .query(&mut connection);
                    if result.is_ok() {
                        acknowledged.lock().unwrap().push(next);
                    }
                    next += 1;
                }
            })
        };
        Writer {
            acknowledged,
            stop,
            thread,
        }
    }

    fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    fn wait_for(&self, count: usize) {
        let start = Instant::now();
        while self.count() < count {
            assert!(
                start.elapsed() < DEADLINE,
                "writes stalled at {}",
                self.count()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop(self) -> Vec<usize> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.acknowledged.lock().unwrap().clone()
    }
}

/// Runs `replikv member ...` until it succeeds, retrying while the answer is a
/// conflict of the moment (409: a learner still behind, a change pending) or a
/// transient one (503 no leader, 504 unknown outcome: every change is idempotent, so a
/// retry is harmless); any other failure fails the test. Returns stdout.
fn member_until_done(through: &Node, arguments: &[&str]) -> String {
    let start = Instant::now();
    loop {
        let output = member(through, arguments);
        if output.status.success() {
            return String::from_utf8_lossy(&output.stdout).into_owned();
        }
        let error = String::from_utf8_lossy(&output.stderr);
        assert!(
            ["409", "503", "504"]
                .iter()
                .any(|code| error.contains(code)),
            "member {arguments:?} failed: {error}"
        );
        assert!(start.elapsed() < DEADLINE, "member {arguments:?}: {error}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `node` applied at least `index`.
fn wait_for_applied(node: &Node, index: u64) {
    let start = Instant::now();
    loop {
        if status(node).is_some_and(|status| number(&status, "applied_index") >= index) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "node {} never applied {index}",
            node.id
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn get(connection: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(connection).unwrap()
}

/// Starts node 4 with `--join` while `writer` goes on, adds it as a learner and
/// promotes it through the CLI (through other nodes: forwarded to the leader).
fn join_node_4(directory: &Path, port: u16, founders: &[String], nodes: &[Node]) -> Node {
    let joining = start_node(directory, 4, port, founders, true);
    assert_eq!(status(&joining).unwrap()["leader"], serde_json::Value::Null);
    let address = format!("127.0.0.1:{}", joining.peer_port);
    let added = member_until_done(&nodes[1], &["add", "4", &address]);
    assert!(added.contains("\"learners\""), "{added}");
    let promoted = member_until_done(&nodes[2], &["promote", "4"]);
    assert!(promoted.contains("\"voters\""), "{promoted}");
    let listed = member(&joining, &["list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains(&address),
        "node 4 knows its own address: {listed}"
    );
    joining
}

/// Every acknowledged write is on `joining`, read with follower reads once it applied
/// the highest commit index any node reports; and it got there through a snapshot.
fn check_caught_up_from_a_snapshot(joining: &Node, nodes: &[Node], acknowledged: &[usize]) {
    let commit = nodes
        .iter()
        .filter_map(|node| Some(number(&status(node)?, "commit_index")))
        .max()
        .unwrap();
    wait_for_applied(joining, commit);
    let mut on_new_node = connect(joining.resp);
    let _: () = redis::cmd("READCONSISTENCY")
        .arg("follower")
        .query(&mut on_new_node)
        .unwrap();
    for value in acknowledged {
        let key = format!("w{value}");
        assert_eq!(
            get(&mut on_new_node, &key),
            Some(value.to_string()),
            "{key}"
        );
    }
    let joined_status = status(joining).unwrap();
    assert!(
        number(&joined_status, "snapshots_installed") >= 1,
        "node 4 caught up without a snapshot: {joined_status}"
    );
    assert_eq!(joined_status["voters"], serde_json::json!([1, 2, 3, 4]));
}

/// Removes a founder that does not lead, stops it, and keeps writing.
fn remove_a_founder_and_keep_writing(nodes: &mut Vec<Node>, joining: &Node, leader: u64) {
    let removed = nodes.iter().position(|node| node.id != leader).unwrap();
    let removed_id = nodes[removed].id.to_string();
    member_until_done(joining, &["remove", &removed_id]);
    drop(nodes.remove(removed));
    let writer = Writer::start(joining.resp);
    writer.wait_for(50);
    let acknowledged = writer.stop();
    let last = *acknowledged.last().unwrap();
    let mut on_founder = connect(nodes[0].resp);
    assert_eq!(
        get(&mut on_founder, &format!("w{last}")),
        Some(last.to_string())
    );
    let voters = status(joining).unwrap()["voters"].clone();
    assert_eq!(voters.as_array().unwrap().len(), 3, "{voters}");
}

#[test]
fn a_member_added_under_write_load_catches_up_from_a_snapshot() {
    let directory = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..4).map(|_| support::free_port()).collect();
    let founders: Vec<String> = (0..3)
        .map(|index| format!("{}=127.0.0.1:{}", index + 1, ports[index]))
        .collect();
    let mut nodes: Vec<Node> = (0..3)
        .map(|index| {
            let id = index as u64 + 1;
            start_node(directory.path(), id, ports[index], &founders, false)
        })
        .collect();
    let leader = wait_for_leader(&nodes.iter().collect::<Vec<_>>());
    let writer = Writer::start(nodes[0].resp);
    writer.wait_for(WRITES_BEFORE_JOIN);

    let joining = join_node_4(directory.path(), ports[3], &founders, &nodes);
    writer.wait_for(writer.count() + 50);
    let acknowledged = writer.stop();
    check_caught_up_from_a_snapshot(&joining, &nodes, &acknowledged);

    remove_a_founder_and_keep_writing(&mut nodes, &joining, leader);
}
