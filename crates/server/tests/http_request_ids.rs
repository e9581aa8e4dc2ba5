//! In-process tests of the HTTP API's request-id headers and compare-and-set routes.
//!
//! Three nodes run in this process on listeners bound to port 0 (as in `node.rs`), and
//! the tests speak raw HTTP/1.1 to them, so that what is checked is exactly what goes
//! over the wire. The point of `x-replikv-client` / `x-replikv-sequence` is that a
//! retried write is applied once: the test sends the same (client, sequence) twice with
//! *different* values, through a follower, and shows the second attempt is answered
//! with the first one's version and position while the stored value stays the first.
//! The compare-and-set routes are checked against RESP's `CAS` answers (swapped,
//! differs, absent), and every malformed header or body is answered 400.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use support::{Cluster, DEADLINE};

fn start_cluster(nodes: u64) -> Cluster {
    support::start_cluster(nodes, |config| {
        config.election_timeout_ms_min = 300;
        config.election_timeout_ms_max = 600;
    })
}

/// An HTTP response: status, headers (lowercase names) and body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(found, _)| found == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One HTTP/1.1 exchange over a fresh connection.
fn http(address: SocketAddr, method: &str, path: &str, headers: &str, body: &str) -> Answer {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut output = Vec::new();
    stream.read_to_end(&mut output).unwrap();
    let text = String::from_utf8_lossy(&output).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_lowercase(), value.to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn id_headers(client: u64, sequence: u64) -> String {
    format!("x-replikv-client: {client}\r\nx-replikv-sequence: {sequence}\r\n")
}

#[test]
fn a_retried_request_id_is_applied_once_and_cas_answers_like_resp() {
    let cluster = start_cluster(3);
    let leader = cluster.wait_for_leader();
    let follower = cluster.http((leader + 1) % 3);
    let other = cluster.http((leader + 2) % 3);

    // The same (client, sequence) twice with different values: answered as the first.
    let client = 0x5eed_0000_0000_0001_u64;
    let first = http(
        follower,
        "PUT",
        "/v1/kv/dedup",
        &id_headers(client, 1),
        "one",
    );
    assert_eq!(first.status, 200, "{first:?}");
    let retry = http(other, "PUT", "/v1/kv/dedup", &id_headers(client, 1), "two");
    assert_eq!(retry.status, 200, "{retry:?}");
    // The first attempt's outcome (version 1), not a second write; its position is
    // that of the retry's own log entry, which the state machine skipped.
    assert_eq!(first.header("x-replikv-version"), Some("1"), "{first:?}");
    assert_eq!(retry.header("x-replikv-version"), Some("1"), "{retry:?}");
    let read = http(other, "GET", "/v1/kv/dedup", "", "");
    assert_eq!((read.status, read.body.as_str()), (200, "one"));
    assert_eq!(read.header("x-replikv-version"), Some("1"));
    // The next sequence is a new write.
    let next = http(
        follower,
        "PUT",
        "/v1/kv/dedup",
        &id_headers(client, 2),
        "two",
    );
    assert_eq!(next.header("x-replikv-version"), Some("2"), "{next:?}");
    let read = http(other, "GET", "/v1/kv/dedup", "", "");
    assert_eq!(read.body, "two");

    // Compare-and-set on values: swapped, differs, absent; a retried swap stays swapped.
    let cas = |expected: &str, new: &str, headers: &str| {
        let body = format!("{{\"expected\": {expected}, \"new\": \"{new}\"}}");
        http(follower, "POST", "/v1/kv/color/cas", headers, &body)
    };
    assert_eq!(cas("\"red\"", "blue", "").status, 404);
    assert_eq!(cas("null", "red", "").status, 200);
    assert_eq!(cas("null", "red", "").status, 409);
    assert_eq!(cas("\"green\"", "blue", "").status, 409);
    let swapped = cas("\"red\"", "blue", &id_headers(client, 3));
    assert_eq!((swapped.status, swapped.body.as_str()), (200, "swapped\n"));
    let retried = cas("\"red\"", "blue", &id_headers(client, 3));
    assert_eq!(retried.status, 200, "a retried swap is answered as swapped");
    assert_eq!(http(other, "GET", "/v1/kv/color", "", "").body, "blue");
    http(other, "DELETE", "/v1/kv/color", "", "");
    assert_eq!(cas("\"blue\"", "red", "").status, 404);

    // Compare-and-set on versions.
    let put = |path: &str| http(other, "PUT", path, "", "v");
    assert_eq!(put("/v1/kv/versioned?if-version=1").status, 409);
    assert_eq!(put("/v1/kv/versioned?if-version=0").status, 200);
    let again = put("/v1/kv/versioned?if-version=1");
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.header("x-replikv-version"), Some("2"));
    assert_eq!(put("/v1/kv/versioned?if-version=1").status, 409);
    assert_eq!(put("/v1/kv/versioned?version=2").status, 400);

    // Malformed ids and bodies: 400, nothing applied.
    for headers in [
        "x-replikv-client: 1\r\n".to_owned(),
        "x-replikv-sequence: 1\r\n".to_owned(),
        id_headers(0, 1),
        "x-replikv-client: 1\r\nx-replikv-sequence: nope\r\n".to_owned(),
    ] {
        let answer = http(follower, "PUT", "/v1/kv/bad", &headers, "v");
        assert_eq!(answer.status, 400, "{headers:?}: {answer:?}");
    }
    assert_eq!(
        http(follower, "POST", "/v1/kv/bad/cas", "", "{").status,
        400
    );
    assert_eq!(http(other, "GET", "/v1/kv/bad", "", "").status, 404);
    cluster.shutdown();
}
