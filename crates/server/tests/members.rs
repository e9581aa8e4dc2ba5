//! In-process tests of the membership admin routes and the address book: real sockets,
//! real disks, several nodes in one process.
//!
//! What they establish: the cluster's reserved keys (`\0replikv/...`, where members'
//! peer addresses live) are refused to clients through both RESP and HTTP; and a node
//! started with `join` is added as a learner through `POST /v1/admin/members` on a
//! *follower* (forwarded to the leader), learns the data, is promoted (node 5 is added
//! as a voter in one request), and once removed
//! through `DELETE` every other node forgets its address (the address book follows the
//! configuration); a founder restarted in between learns the address again from its
//! own store. Every wait polls a condition with a deadline.

use replikv_core::NodeId;
use replikv_server::peer::address_book::lookup_member_address;
use replikv_server::{RunningServer, ServerConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn config(id: u64, directory: &Path, peers: &[String], join: bool) -> ServerConfig {
    ServerConfig {
        node_id: id,
        data_dir: directory.join(format!("n{id}")),
        peers: peers.to_vec(),
        http_address: Some("127.0.0.1:0".parse().unwrap()),
        election_timeout_ms_min: 300,
        election_timeout_ms_max: 600,
        heartbeat_interval_ms: 50,
        join,
        ..ServerConfig::default()
    }
}

fn start(
    runtime: &tokio::runtime::Runtime,
    config: &ServerConfig,
    peer: TcpListener,
) -> RunningServer {
    let resp = TcpListener::bind("127.0.0.1:0").unwrap();
    runtime
        .block_on(RunningServer::start_with_listeners(config, peer, resp))
        .unwrap()
}

/// One HTTP/1.1 exchange over a fresh connection: the status code and the body.
fn http(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut output = Vec::new();
    stream.read_to_end(&mut output).unwrap();
    let text = String::from_utf8_lossy(&output).into_owned();
    let status = text
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    (status, body.to_string())
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {body:?}"))
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn leader_of(runtime: &tokio::runtime::Runtime, server: &RunningServer) -> Option<NodeId> {
    runtime.block_on(server.node().status())?.leader
}

#[test]
fn reserved_keys_are_refused_through_resp_and_http() {
    let runtime = runtime();
    let directory = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = start(&runtime, &config(1, directory.path(), &[], false), peer);
    wait_until("the single node leads", || {
        leader_of(&runtime, &server) == Some(NodeId(1))
    });

    let client = redis::Client::open(format!("redis://{}/", server.resp_address)).unwrap();
    let mut connection = client.get_connection_with_timeout(DEADLINE).unwrap();
    for command in [
        vec!["SET", "\0replikv/member/1", "127.0.0.1:1"],
        vec!["GET", "\0replikv/member/1"],
        vec!["DEL", "\0replikv/anything"],
    ] {
        let mut cmd = redis::cmd(command[0]);
        for argument in &command[1..] {
            cmd.arg(*argument);
        }
        let result: redis::RedisResult<redis::Value> = cmd.query(&mut connection);
        let error = result.expect_err("a reserved key is refused");
        assert!(error.to_string().contains("reserved"), "{error}");
    }
    let _: () = redis::cmd("SET")
        .arg("replikv/member/1")
        .arg("an ordinary key")
        .query(&mut connection)
        .unwrap();

    let http_address = server.http_address.unwrap();
    for method in ["GET", "PUT", "DELETE"] {
        let (status, body) = http(http_address, method, "/v1/kv/%00replikv%2Fmember%2F1", "x");
        assert_eq!(status, 400, "{method}: {body}");
        assert!(body.contains("reserved"), "{body}");
    }
    let (status, body) = http(http_address, "GET", "/v1/kv/replikv%2Fmember%2F1", "");
    assert_eq!((status, body.as_str()), (200, "an ordinary key"));
    runtime.block_on(server.shutdown()).unwrap();
}

/// Three founders and two nodes started with `join`, in one process.
struct Scenario {
    runtime: tokio::runtime::Runtime,
    directory: tempfile::TempDir,
    servers: Vec<RunningServer>,
    /// Peer addresses, by index (node id - 1).
    addresses: Vec<SocketAddr>,
    founders: Vec<String>,
    leader: NodeId,
    /// The index of a founder that does not lead: admin requests go through it.
    follower: usize,
}

impl Scenario {
    fn start() -> Scenario {
        let runtime = runtime();
        let directory = tempfile::tempdir().unwrap();
        let listeners: Vec<TcpListener> = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addresses: Vec<SocketAddr> =
            listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let founders: Vec<String> = (0..3)
            .map(|index| format!("{}={}", index + 1, addresses[index]))
            .collect();
        let mut servers = Vec::new();
        for (index, listener) in listeners.into_iter().enumerate() {
            let id = index as u64 + 1;
            let config = config(id, directory.path(), &founders, id >= 4);
            servers.push(start(&runtime, &config, listener));
        }
        wait_until("a founder leads", || {
            let leader = leader_of(&runtime, &servers[0]);
            leader.is_some() && (1..3).all(|index| leader_of(&runtime, &servers[index]) == leader)
        });
        let leader = leader_of(&runtime, &servers[0]).unwrap();
        let follower = (0..3).find(|index| servers[*index].id != leader).unwrap();
        Scenario {
            runtime,
            directory,
            servers,
            addresses,
            founders,
            leader,
            follower,
        }
    }

    /// The HTTP address admin requests go through (a follower: they are forwarded).
    fn through(&self) -> SocketAddr {
        self.servers[self.follower].http_address.unwrap()
    }

    fn lookup(&self, index: usize, member: NodeId) -> Option<SocketAddr> {
        let node = self.servers[index].node();
        self.runtime
            .block_on(lookup_member_address(node, member))
            .unwrap()
    }

    fn add_node_4_as_a_learner(&self) {
        let through = self.through();
        let (status, _) = http(through, "PUT", "/v1/kv/before", "joined");
        assert_eq!(status, 200);
        let waiting = leader_of(&self.runtime, &self.servers[3]);
        assert_eq!(waiting, None, "the joining node disrupts nobody");
        let bad = r#"{"id": 0, "peer_address": "127.0.0.1:1"}"#;
        assert_eq!(http(through, "POST", "/v1/admin/members", bad).0, 400);
        let body = format!(r#"{{"id": 4, "peer_address": "{}"}}"#, self.addresses[3]);
        let (status, text) = http(through, "POST", "/v1/admin/members", &body);
        assert_eq!(status, 200, "{text}");
        assert_eq!(json(&text)["learners"], serde_json::json!([4]));

        let joined = self.servers[3].http_address.unwrap();
        wait_until("node 4 applied the data", || {
            let (status, body) = http(joined, "GET", "/v1/kv/before", "");
            status == 200 && body == "joined"
        });
        let (status, text) = http(through, "GET", "/v1/admin/members", "");
        assert_eq!(status, 200, "{text}");
        let members = json(&text);
        assert_eq!(members["addresses"]["4"], self.addresses[3].to_string());
        assert_eq!(members["learners"], serde_json::json!([4]));
        // Every member registers its own address, founders included: node 4, which
        // has only its configured peers' addresses, finds all of them in its store.
        wait_until("every member's address is in node 4's store", || {
            (0..4).all(|index| {
                self.lookup(3, NodeId(index as u64 + 1)) == Some(self.addresses[index])
            })
        });
    }

    /// A founder restarted from its data directory learns node 4's address again from
    /// its own store: the address survives restarts. (This restart inside the process
    /// also caught incoming peer connections outliving their node's shutdown: the
    /// leader kept writing into the dead node's connection and never reconnected.)
    fn restart_a_founder(&mut self) {
        let restarted = (0..3)
            .find(|index| *index != self.follower && self.servers[*index].id != self.leader)
            .unwrap();
        let old = self.servers.remove(restarted);
        let id = old.id.0;
        self.runtime.block_on(old.shutdown()).unwrap();
        let mut again = config(id, self.directory.path(), &self.founders, false);
        again.peer_address = self.addresses[restarted];
        again.resp_address = "127.0.0.1:0".parse().unwrap();
        let server = self.runtime.block_on(RunningServer::start(&again)).unwrap();
        self.servers.insert(restarted, server);
        wait_until("the restarted founder knows node 4's address", || {
            let known = self.servers[restarted].node().peer_addresses();
            known.get(&NodeId(4)) == Some(&self.addresses[3])
        });
    }

    fn promote_node_4_and_refuse_mistakes(&self) {
        let joined = self.servers[3].http_address.unwrap();
        let (status, text) = http(joined, "POST", "/v1/admin/members/4/promote", "");
        assert_eq!(status, 200, "{text}");
        assert_eq!(json(&text)["voters"], serde_json::json!([1, 2, 3, 4]));
        let through = self.through();
        let again = format!(r#"{{"id": 1, "peer_address": "{}"}}"#, self.addresses[3]);
        let (status, text) = http(through, "POST", "/v1/admin/members", &again);
        assert_eq!(status, 409, "a voter is not added again: {text}");
        let untouched = self.lookup(0, NodeId(1));
        assert_ne!(
            untouched,
            Some(self.addresses[3]),
            "its address is untouched"
        );
        let (status, _) = http(through, "POST", "/v1/admin/members/9/promote", "");
        assert_eq!(status, 400, "9 is not a learner");
    }

    /// Node 5 in one request: a learner, promoted once it caught up.
    fn add_node_5_as_a_voter(&self) {
        let body = format!(
            r#"{{"id": 5, "peer_address": "{}", "voter": true}}"#,
            self.addresses[4]
        );
        let (status, text) = http(self.through(), "POST", "/v1/admin/members", &body);
        assert_eq!(status, 200, "{text}");
        assert_eq!(json(&text)["voters"], serde_json::json!([1, 2, 3, 4, 5]));
    }

    fn remove_node_4(&self) {
        let through = self.through();
        let (status, text) = http(through, "DELETE", "/v1/admin/members/4", "");
        assert_eq!(status, 200, "{text}");
        assert_eq!(json(&text)["voters"], serde_json::json!([1, 2, 3, 5]));
        wait_until("every other node forgot node 4", || {
            self.servers
                .iter()
                .filter(|server| server.id != NodeId(4))
                .all(|server| !server.node().peer_addresses().contains_key(&NodeId(4)))
        });
        let (status, _) = http(through, "PUT", "/v1/kv/after", "removed");
        assert_eq!(status, 200, "the cluster keeps writing");
    }

    fn shutdown(self) {
        for server in self.servers {
            self.runtime.block_on(server.shutdown()).unwrap();
        }
    }
}

/// Adds node 4 through a follower, promotes it, adds node 5 as a voter, removes node
/// 4; checks what every node knows at each step.
#[test]
fn a_joining_node_is_added_promoted_and_removed_over_http() {
    let mut scenario = Scenario::start();
    scenario.add_node_4_as_a_learner();
    scenario.restart_a_founder();
    scenario.promote_node_4_and_refuse_mistakes();
    scenario.add_node_5_as_a_voter();
    scenario.remove_node_4();
    scenario.shutdown();
}
