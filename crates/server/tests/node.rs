//! In-process tests of the server: real sockets, real disks, three nodes in one process.
//!
//! Each test starts nodes with [`RunningServer::start_with_listeners`] on listeners bound
//! to port 0 beforehand, so the nodes learn each other's ports without a race, and talks
//! to them like the outside world does: a real Redis client (`redis` crate) for the
//! happy paths, raw TCP bytes for the malformed ones (malformed RESP, peers that send
//! garbage, oversized frames, a wrong cluster secret). Conditions are polled with a
//! deadline, never slept for. What the tests establish: replication through any node,
//! RESP2 and RESP3, and that no bad input panics or wedges a node.

mod support;

use replikv_core::NodeId;
use replikv_server::peer::{Authenticator, Handshake};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;
use support::{Cluster, DEADLINE, QUIT, SECRET, exchange, http, query, read_frame, send_frame};

fn start_cluster(nodes: u64) -> Cluster {
    start_cluster_with(nodes, 5000)
}

fn start_cluster_with(nodes: u64, request_timeout_ms: u64) -> Cluster {
    support::start_cluster(nodes, |config| {
        config.request_timeout_ms = request_timeout_ms;
        config.election_timeout_ms_min = 300;
        config.election_timeout_ms_max = 600;
    })
}

/// Whether the peer closed the connection (reads end) within the deadline.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) => return error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

/// Runs the caller's side of the handshake as node 2 calling node 1, with `secret`.
fn handshake(address: SocketAddr, secret: &str) -> (TcpStream, Handshake) {
    let mut stream = TcpStream::connect(address).unwrap();
    let authenticator = Authenticator::new("replikv".into(), Some(secret.as_bytes().to_vec()));
    send_frame(&mut stream, &authenticator.hello(NodeId(2), NodeId(1)));
    let Handshake::Challenge { nonce } = read_frame(&mut stream) else {
        panic!("expected a challenge");
    };
    let mac = authenticator.proof(&nonce, NodeId(2), NodeId(1));
    send_frame(&mut stream, &Handshake::Proof { mac });
    let answer = read_frame(&mut stream);
    (stream, answer)
}

#[test]
fn writes_through_any_node_are_read_from_every_node() {
    let cluster = start_cluster(3);
    let leader = cluster.wait_for_leader();
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let mut writer = cluster.client(follower);
    let mut reader = cluster.client(other);
    let _: () = query(&mut writer, &["SET", "colour", "blue"]).unwrap();
    let read: Option<String> = query(&mut reader, &["GET", "colour"]).unwrap();
    assert_eq!(read.as_deref(), Some("blue"));
    assert_eq!(query::<i64>(&mut reader, &["INCRBY", "n", "5"]).unwrap(), 5);
    assert_eq!(query::<i64>(&mut writer, &["DECR", "n"]).unwrap(), 4);
    assert_eq!(
        query::<i64>(&mut writer, &["CAS", "colour", "blue", "red"]).unwrap(),
        1
    );
    assert_eq!(
        query::<i64>(&mut writer, &["CAS", "colour", "blue", "x"]).unwrap(),
        0
    );
    assert_eq!(
        query::<i64>(&mut writer, &["CAS", "absent", "blue", "x"]).unwrap(),
        -1
    );
    let values: Vec<Option<String>> =
        query(&mut reader, &["MGET", "colour", "n", "absent"]).unwrap();
    assert_eq!(values, vec![Some("red".into()), Some("4".into()), None]);
    // Session reads on a follower see the connection's own writes at once.
    let mut session = cluster.client(follower);
    let _: () = query(&mut session, &["READCONSISTENCY", "session"]).unwrap();
    for round in 0..20 {
        let value = round.to_string();
        let _: () = query(&mut session, &["SET", "mine", &value]).unwrap();
        let read: Option<String> = query(&mut session, &["GET", "mine"]).unwrap();
        assert_eq!(read, Some(value), "read-your-writes on a follower");
    }
    // Follower reads on every node converge on the same value.
    for index in 0..3 {
        let mut connection = cluster.client(index);
        let _: () = query(&mut connection, &["READCONSISTENCY", "follower"]).unwrap();
        let start = Instant::now();
        loop {
            let read: Option<String> = query(&mut connection, &["GET", "colour"]).unwrap();
            if read.as_deref() == Some("red") {
                break;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "node {index} never applied the write"
            );
        }
    }
    cluster.shutdown();
}

#[test]
fn hello_3_switches_the_connection_to_resp3() {
    let cluster = start_cluster(1);
    cluster.wait_for_leader();
    let address = cluster.servers[0].resp_address;
    let output = exchange(
        address,
        &[
            &b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"[..],
            QUIT,
        ]
        .concat(),
        10_000,
    );
    let text = String::from_utf8_lossy(&output);
    assert!(text.starts_with("%7\r\n"), "a RESP3 map: {text:?}");
    assert!(
        text.ends_with("_\r\n+OK\r\n"),
        "a RESP3 null for the absent key: {text:?}"
    );
    let config_get = b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$4\r\nsave\r\n";
    let input = [&b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"[..], config_get, QUIT].concat();
    let output = exchange(address, &input, 14);
    assert_eq!(
        output, b"$-1\r\n*0\r\n+OK\r\n",
        "a new connection speaks RESP2"
    );
    cluster.shutdown();
}

#[test]
fn bad_client_input_gets_errors_and_never_wedges_the_node() {
    let cluster = start_cluster(1);
    cluster.wait_for_leader();
    let address = cluster.servers[0].resp_address;
    // Unknown command and wrong arity: an error, and the connection goes on.
    let output = exchange(
        address,
        &[
            &b"*1\r\n$5\r\nBOGUS\r\n*1\r\n$3\r\nGET\r\n*1\r\n$4\r\nPING\r\n"[..],
            QUIT,
        ]
        .concat(),
        10_000,
    );
    let text = String::from_utf8_lossy(&output);
    assert!(text.starts_with("-ERR unknown command 'BOGUS'"), "{text:?}");
    assert!(
        text.contains("-ERR wrong number of arguments for 'get' command\r\n"),
        "{text:?}"
    );
    assert!(text.ends_with("+PONG\r\n+OK\r\n"), "{text:?}");
    // Malformed RESP: an error, then the connection is closed.
    let output = exchange(address, b"*1\r\n$x\r\nPING\r\n", 10_000);
    assert!(String::from_utf8_lossy(&output).starts_with("-ERR Protocol error"));
    let output = exchange(address, b"HELLO\r\n", 10_000);
    assert!(String::from_utf8_lossy(&output).starts_with("-ERR Protocol error"));
    // An oversized key or value: an error reply, nothing written.
    let mut connection = cluster.client(0);
    let huge_key = "k".repeat(replikv_core::limits::KEY_SIZE_MAX_BYTES + 1);
    let error = query::<()>(&mut connection, &["SET", &huge_key, "v"]).unwrap_err();
    assert!(error.to_string().contains("exceeds the limit"), "{error}");
    let huge_value = "v".repeat(replikv_core::limits::VALUE_SIZE_MAX_BYTES + 1);
    assert!(query::<()>(&mut connection, &["SET", "k", &huge_value]).is_err());
    assert!(query::<()>(&mut connection, &["SET", "k", "v", "EX", "0"]).is_err());
    let _: () = query(&mut connection, &["SET", "k", "v"]).unwrap();
    assert_eq!(
        query::<Option<String>>(&mut connection, &["GET", "k"])
            .unwrap()
            .as_deref(),
        Some("v")
    );
    cluster.shutdown();
}

#[test]
fn peers_that_speak_garbage_or_lack_the_secret_are_disconnected() {
    let cluster = start_cluster(3);
    cluster.wait_for_leader();
    let node_1 = cluster.servers[0].peer_address;
    // An HTTP request on the peer port: its first four bytes are an absurd length.
    let mut stream = TcpStream::connect(node_1).unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(closed_by_peer(&mut stream));
    // A well-sized frame of garbage instead of a hello.
    let mut stream = TcpStream::connect(node_1).unwrap();
    stream.write_all(&[0, 0, 0, 3, 0xff, 0xfe, 0xfd]).unwrap();
    assert!(closed_by_peer(&mut stream));
    // The wrong secret: refused with a reason, then closed.
    let (mut stream, answer) = handshake(node_1, "a guess");
    assert!(
        matches!(answer, Handshake::Rejected { ref reason } if reason.contains("secret")),
        "{answer:?}"
    );
    assert!(closed_by_peer(&mut stream));
    // The right secret, then an oversized frame, then garbage: disconnected each time.
    let (mut stream, answer) = handshake(node_1, SECRET);
    assert_eq!(answer, Handshake::Welcome);
    stream
        .write_all(&(64u32 * 1024 * 1024).to_be_bytes())
        .unwrap();
    assert!(closed_by_peer(&mut stream));
    let (mut stream, _) = handshake(node_1, SECRET);
    stream
        .write_all(&[0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff])
        .unwrap();
    assert!(closed_by_peer(&mut stream));
    // The cluster still replicates.
    let mut connection = cluster.client(0);
    let _: () = query(&mut connection, &["SET", "still", "here"]).unwrap();
    let mut other = cluster.client(2);
    assert_eq!(
        query::<Option<String>>(&mut other, &["GET", "still"])
            .unwrap()
            .as_deref(),
        Some("here")
    );
    cluster.shutdown();
}

#[test]
fn a_data_directory_is_locked_while_a_node_runs() {
    let directory = tempfile::tempdir().unwrap();
    let lock = replikv_server::server::lock_data_dir(directory.path()).unwrap();
    let error = replikv_server::server::lock_data_dir(directory.path()).unwrap_err();
    assert!(
        error.to_string().contains("in use by another process"),
        "{error}"
    );
    drop(lock);
    replikv_server::server::lock_data_dir(directory.path()).unwrap();
}

#[test]
fn the_http_api_serves_keys_and_status() {
    let cluster = start_cluster(3);
    let leader = cluster.wait_for_leader();
    let follower = cluster.servers[(leader + 1) % 3].http_address.unwrap();
    let other = cluster.servers[(leader + 2) % 3].http_address.unwrap();
    let (status, text) = http(follower, "PUT", "/v1/kv/city", "", "Paris");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("x-replikv-version: 1\r\n"), "{text}");
    let (status, text) = http(other, "GET", "/v1/kv/city", "", "");
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("\r\n\r\nParis"), "{text}");
    let (status, _) = http(other, "DELETE", "/v1/kv/city", "", "");
    assert_eq!(status, 200);
    let (status, _) = http(follower, "GET", "/v1/kv/city", "", "");
    assert_eq!(status, 404);
    let (status, _) = http(
        other,
        "GET",
        "/v1/kv/city",
        "x-replikv-consistency: eventual\r\n",
        "",
    );
    assert_eq!(status, 400);
    let huge_key = "k".repeat(replikv_core::limits::KEY_SIZE_MAX_BYTES + 1);
    let (status, _) = http(other, "PUT", &format!("/v1/kv/{huge_key}"), "", "v");
    assert_eq!(status, 400);
    let leader_http = cluster.servers[leader].http_address.unwrap();
    let (status, text) = http(leader_http, "GET", "/v1/status", "", "");
    assert_eq!(status, 200, "{text}");
    let json = text.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(json["role"], "leader");
    assert_eq!(json["followers"].as_array().unwrap().len(), 2);
    assert_eq!(json["voters"].as_array().unwrap().len(), 3);
    assert_eq!(json["lossy"], false);
    cluster.shutdown();
}

#[test]
fn leadership_moves_where_the_admin_endpoint_says() {
    let cluster = start_cluster(3);
    let leader = cluster.wait_for_leader();
    let target = (leader + 1) % 3;
    let through = cluster.servers[(leader + 2) % 3].http_address.unwrap();
    let target_id = cluster.servers[target].node().id().0;
    let (status, text) = http(
        through,
        "POST",
        "/v1/admin/transfer-leadership",
        "",
        target_id.to_string(),
    );
    assert_eq!(status, 200, "{text}");
    assert!(text.contains(&format!("\"leader\":{target_id}")), "{text}");
    assert_eq!(cluster.wait_for_leader(), target);
    let (status, text) = http(through, "POST", "/v1/admin/transfer-leadership", "", "x");
    assert_eq!(status, 400, "{text}");
    let mut client = cluster.client(leader);
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("transfer")
        .query(&mut client)
        .unwrap();
    cluster.shutdown();
}

#[test]
fn a_write_without_a_quorum_reports_an_unknown_outcome() {
    let mut cluster = start_cluster_with(3, 1000);
    let leader = cluster.wait_for_leader();
    let mut connection = cluster.client(leader);
    let _: () = query(&mut connection, &["SET", "before", "1"]).unwrap();
    // Stop both followers: the leader can still accept a write, never commit it.
    let leader_id = cluster.servers[leader].id;
    let servers = std::mem::take(&mut cluster.servers);
    for server in servers {
        if server.id == leader_id {
            cluster.servers.push(server);
        } else {
            cluster.runtime.block_on(server.shutdown()).unwrap();
        }
    }
    let error = query::<()>(&mut connection, &["SET", "after", "1"]).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("UNKNOWN"), "{text}");
    // Either the leader stepped down ("outcome unknown: leadership lost before commit")
    // or the request timed out first ("unknown outcome"): both say the write may exist.
    assert!(
        text.contains("outcome unknown") || text.contains("unknown outcome"),
        "{text}"
    );
    // A read cannot be confirmed either; it is certainly not a write, so: unavailable.
    let error = query::<Option<String>>(&mut connection, &["GET", "before"]).unwrap_err();
    assert!(error.to_string().contains("UNAVAILABLE"), "{error}");
    cluster.shutdown();
}

#[test]
fn a_leader_that_stops_gracefully_hands_its_leadership_over() {
    let mut cluster = start_cluster(3);
    let leader = cluster.wait_for_leader();
    let stopped = cluster.servers.remove(leader);
    cluster.runtime.block_on(stopped.shutdown()).unwrap();
    // A transfer, not an election after a timeout: the new leader campaigned on the old
    // one's TimeoutNow.
    let leader = cluster.wait_for_leader();
    let status = cluster
        .runtime
        .block_on(cluster.servers[leader].node().status())
        .unwrap();
    assert_eq!(status.stats.transfer_elections_started, 1, "{status:?}");
    let mut connection = cluster.client(1 - leader);
    let _: () = query(&mut connection, &["SET", "after", "handover"]).unwrap();
    cluster.shutdown();
}
