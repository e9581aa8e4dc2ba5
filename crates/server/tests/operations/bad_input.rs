//! Bad input from clients and peers: a clear error or a clean close, and the node
//! serves the next client.
//!
//! `tests/node.rs` already covers an unknown command, GET's arity, a bad bulk length,
//! an inline command, keys and values over the core limits, an HTTP request and a
//! garbage frame on the peer port, a wrong cluster secret and an oversized peer frame.
//! This file adds the rest of the list: bad type bytes, negative and huge
//! lengths, truncated frames, every command's arity, the configurable size limits
//! (RESP and HTTP), oversized HTTP bodies, and an old protocol version or a foreign
//! cluster in the peer handshake.

use super::support::{
    Cluster, QUIT, exchange, http, query, read_frame, read_until_closed, send_frame, start_cluster,
};
use replikv_core::NodeId;
use replikv_server::peer::{Authenticator, Handshake, PROTOCOL_VERSION};
use std::io::Write;
use std::net::{Shutdown, TcpStream};

/// The node still serves a fresh client: a write and a read through the Redis crate.
fn still_serves(cluster: &Cluster, round: &str) {
    let mut connection = cluster.client(0);
    let _: () = query(&mut connection, &["SET", "alive", round]).unwrap();
    let read: Option<String> = query(&mut connection, &["GET", "alive"]).unwrap();
    assert_eq!(read.as_deref(), Some(round));
}

#[test]
fn malformed_resp_gets_an_error_or_a_clean_close() {
    let cluster = start_cluster(1, |_| {});
    cluster.wait_for_leader();
    let cases: &[&[u8]] = &[
        b"!oops\r\n",
        b"\x00\x01\x02\x03\r\n",
        b"*-5\r\n",
        b"*1\r\n$-7\r\n",
        b"*1\r\n:5\r\n",
        b"*2147483648\r\n",
        b"*99999999999999999999\r\n",
        b"*1\r\n$18446744073709551616\r\n",
        b"*1\r\n$99999999999\r\nPING\r\n",
        b"*2\r\n$3\r\nGET\r\n$1",
        b"*1\r\n$4\r\nPI",
    ];
    for (index, case) in cases.iter().enumerate() {
        let mut stream = TcpStream::connect(cluster.resp(0)).unwrap();
        stream.write_all(case).unwrap();
        // Whatever the server makes of it, ending the input ends the connection.
        stream.shutdown(Shutdown::Write).unwrap();
        let output = read_until_closed(&mut stream, usize::MAX);
        let text = String::from_utf8_lossy(&output);
        // An error line (the decoder's, or an unknown command for the integer
        // argument), then the close: never a success, never silence.
        assert!(text.starts_with("-ERR "), "case {index} {case:?}: {text:?}");
        assert_eq!(text.matches("\r\n").count(), 1, "one reply: {text:?}");
        still_serves(&cluster, &index.to_string());
    }
    cluster.shutdown();
}

#[test]
fn every_commands_wrong_arity_is_an_error_and_the_connection_goes_on() {
    let cluster = start_cluster(1, |_| {});
    cluster.wait_for_leader();
    let mut connection = cluster.client(0);
    let cases: &[&[&str]] = &[
        &["SET", "k"],
        &["GET"],
        &["GET", "a", "b"],
        &["DEL"],
        &["EXISTS"],
        &["MGET"],
        &["MSET", "k"],
        &["MSET", "a", "1", "b"],
        &["APPEND", "k"],
        &["STRLEN"],
        &["CAS", "k", "a"],
        &["INCR"],
        &["INCRBY", "k"],
        &["DECRBY", "k", "1", "2"],
        &["ECHO"],
        &["SELECT"],
        &["AUTH"],
        &["WAIT", "1"],
        &["READCONSISTENCY", "a", "b"],
    ];
    for words in cases {
        let error = query::<redis::Value>(&mut connection, words).unwrap_err();
        let expected = format!(
            "wrong number of arguments for '{}' command",
            words[0].to_ascii_lowercase()
        );
        assert!(error.to_string().contains(&expected), "{words:?}: {error}");
    }
    let refused: &[(&[&str], &str)] = &[
        (&["NOSUCH"], "unknown command 'NOSUCH'"),
        (&["FLUSHALL"], "unknown command 'FLUSHALL'"),
        (&["CONFIG", "SET", "x", "y"], "CONFIG supports GET only"),
        (&["SET", "k", "v", "NX", "XX"], "syntax error"),
    ];
    for (words, expected) in refused {
        let error = query::<redis::Value>(&mut connection, words).unwrap_err();
        assert!(error.to_string().contains(expected), "{words:?}: {error}");
    }
    assert!(query::<i64>(&mut connection, &["INCRBY", "k", "nope"]).is_err());
    let _: () = query(&mut connection, &["SET", "k", "v"]).unwrap();
    let read: Option<String> = query(&mut connection, &["GET", "k"]).unwrap();
    assert_eq!(read.as_deref(), Some("v"));
    // A pipeline with errors in the middle keeps its order.
    let output = exchange(
        cluster.resp(0),
        &[
            &b"*1\r\n$3\r\nGET\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nNOPE\r\n"[..],
            QUIT,
        ]
        .concat(),
        usize::MAX,
    );
    let text = String::from_utf8_lossy(&output);
    assert!(text.starts_with("-ERR wrong number"), "{text:?}");
    assert!(
        text.contains("\r\n+PONG\r\n-ERR unknown command 'NOPE'"),
        "{text:?}"
    );
    assert!(text.ends_with("+OK\r\n"), "{text:?}");
    cluster.shutdown();
}

#[test]
fn configured_size_limits_refuse_oversized_keys_values_and_bodies() {
    let cluster = start_cluster(1, |config| {
        config.key_size_max_bytes = 16;
        config.value_size_max_bytes = 64;
    });
    cluster.wait_for_leader();
    let mut connection = cluster.client(0);
    let long_key = "k".repeat(17);
    let long_value = "v".repeat(65);
    let cases: &[&[&str]] = &[
        &["SET", &long_key, "v"],
        &["SET", "k", &long_value],
        &["GET", &long_key],
        &["MSET", "first", "1", "k", &long_value],
        &["CAS", "k", "v", &long_value],
        &["SET", "k", &long_value, "NX"],
    ];
    for words in cases {
        let error = query::<redis::Value>(&mut connection, words).unwrap_err();
        assert!(error.to_string().contains("exceeds the limit"), "{error}");
    }
    // MSET checked every pair before writing any.
    let first: Option<String> = query(&mut connection, &["GET", "first"]).unwrap();
    assert_eq!(first, None);
    // APPEND past the limit: refused, the value unchanged.
    let at_limit = "v".repeat(64);
    let _: () = query(&mut connection, &["SET", "k", &at_limit]).unwrap();
    assert!(query::<i64>(&mut connection, &["APPEND", "k", "x"]).is_err());
    let read: Option<String> = query(&mut connection, &["GET", "k"]).unwrap();
    assert_eq!(read.as_deref(), Some(at_limit.as_str()));
    // HTTP: over the configured limit 400, over the core limit 413; then served.
    let address = cluster.http(0);
    let (status, response) = http(address, "PUT", "/v1/kv/k", "", long_value.as_bytes());
    assert_eq!(status, 400, "{response}");
    let path = format!("/v1/kv/{long_key}");
    assert_eq!(http(address, "PUT", &path, "", b"v").0, 400);
    let huge = vec![b'x'; replikv_core::limits::VALUE_SIZE_MAX_BYTES + 1];
    assert_eq!(http(address, "PUT", "/v1/kv/k", "", &huge).0, 413);
    assert_eq!(http(address, "PUT", "/v1/kv/k", "", b"small").0, 200);
    // Malformed HTTP: a clean 400 (or close), and the node goes on.
    let output = exchange(address, b"NOT HTTP AT ALL\r\n\r\n", usize::MAX);
    let text = String::from_utf8_lossy(&output);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 400"),
        "{text:?}"
    );
    still_serves(&cluster, "after bodies");
    cluster.shutdown();
}

/// Sends `hello` to node 1's peer port; the answer, then whether the node closed.
fn greet(cluster: &Cluster, hello: &Handshake) -> (Handshake, bool) {
    let mut stream = TcpStream::connect(cluster.servers[0].peer_address).unwrap();
    send_frame(&mut stream, hello);
    let answer = read_frame(&mut stream);
    let closed = read_until_closed(&mut stream, usize::MAX).is_empty();
    (answer, closed)
}

#[test]
fn peers_with_an_old_protocol_or_another_cluster_are_refused_with_a_reason() {
    let cluster = start_cluster(3, |_| {});
    cluster.wait_for_leader();
    let authenticator = Authenticator::new("replikv".into(), None);
    let Handshake::Hello {
        magic,
        cluster: name,
        ..
    } = authenticator.hello(NodeId(2), NodeId(1))
    else {
        panic!("a hello");
    };
    let hello = |version: u32, cluster_name: &str, to: u64| Handshake::Hello {
        magic,
        version,
        cluster: cluster_name.into(),
        from: NodeId(2),
        to: NodeId(to),
    };
    let cases = [
        (hello(PROTOCOL_VERSION - 1, &name, 1), "version"),
        (hello(PROTOCOL_VERSION + 7, &name, 1), "version"),
        (hello(PROTOCOL_VERSION, "another", 1), "cluster"),
    ];
    for (message, reason_word) in cases {
        let (answer, closed) = greet(&cluster, &message);
        assert!(
            matches!(&answer, Handshake::Rejected { reason } if reason.contains(reason_word)),
            "{message:?}: {answer:?}"
        );
        assert!(closed, "{message:?}: the connection is closed");
    }
    // A frame cut short, then the connection closed: nothing breaks.
    let mut stream = TcpStream::connect(cluster.servers[0].peer_address).unwrap();
    stream.write_all(&[0, 0, 0, 100, 1, 2, 3]).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert!(read_until_closed(&mut stream, usize::MAX).is_empty());
    // The cluster still replicates.
    let mut writer = cluster.client(0);
    let _: () = query(&mut writer, &["SET", "still", "here"]).unwrap();
    let mut reader = cluster.client(2);
    let read: Option<String> = query(&mut reader, &["GET", "still"]).unwrap();
    assert_eq!(read.as_deref(), Some("here"));
    cluster.shutdown();
}
