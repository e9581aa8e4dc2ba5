//! Client authentication: RESP AUTH (and HELLO's AUTH option) and HTTP bearer tokens.

use super::support::{DEADLINE, QUIT, body, exchange, http, query, start_cluster};
use std::io::{Read, Write};

const PASSWORD: &str = "open sesame";

#[test]
fn resp_clients_must_authenticate_when_a_password_is_configured() {
    let cluster = start_cluster(1, |config| config.client_password = Some(PASSWORD.into()));
    cluster.wait_for_leader();
    let address = cluster.resp(0);
    // Before AUTH: PING works, data commands and INFO do not; then wrong passwords,
    // then the right one (both forms), and the connection is served.
    let input = [
        &b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nINFO\r\n"[..],
        b"*2\r\n$4\r\nAUTH\r\n$5\r\nguess\r\n",
        b"*3\r\n$4\r\nAUTH\r\n$5\r\nadmin\r\n$11\r\nopen sesame\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$11\r\nopen sesame\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        QUIT,
    ]
    .concat();
    let text = String::from_utf8_lossy(&exchange(address, &input, usize::MAX)).into_owned();
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    let noauth = "-NOAUTH Authentication required.\r\n";
    let expected =
        format!("+PONG\r\n{noauth}{noauth}{wrongpass}{wrongpass}{noauth}+OK\r\n$-1\r\n+OK\r\n");
    assert_eq!(text, expected);
    // HELLO without AUTH is refused; HELLO 3 AUTH authenticates and switches to RESP3.
    let input = [
        &b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"[..],
        b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$5\r\nguess\r\n",
        b"*5\r\n$5\r\nHELLO\r\n$1\r\n3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$11\r\nopen sesame\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        QUIT,
    ]
    .concat();
    let text = String::from_utf8_lossy(&exchange(address, &input, usize::MAX)).into_owned();
    assert!(text.starts_with("-NOAUTH HELLO must be called"), "{text:?}");
    assert!(text.contains(wrongpass), "{text:?}");
    assert!(
        text.contains("%7\r\n"),
        "a RESP3 map once authenticated: {text:?}"
    );
    assert!(text.ends_with("_\r\n+OK\r\n"), "a RESP3 null: {text:?}");
    // A Redis client library with the password in its URL just works.
    let mut connection = cluster.client_with(0, Some(PASSWORD));
    let _: () = query(&mut connection, &["SET", "k", "v"]).unwrap();
    let read: Option<String> = query(&mut connection, &["GET", "k"]).unwrap();
    assert_eq!(read.as_deref(), Some("v"));
    let mut anonymous = cluster.client(0);
    let error = query::<Option<String>>(&mut anonymous, &["GET", "k"]).unwrap_err();
    assert!(
        error.to_string().contains("Authentication required"),
        "{error}"
    );
    cluster.shutdown();
}

#[test]
fn an_unauthenticated_connection_cannot_make_the_node_buffer_a_large_request() {
    let cluster = start_cluster(1, |config| config.client_password = Some(PASSWORD.into()));
    cluster.wait_for_leader();
    let value_size_bytes = 200_000;
    let head = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${value_size_bytes}\r\n");
    // Unauthenticated: an incomplete request over 64 KiB is an error, then a close.
    let mut stream = std::net::TcpStream::connect(cluster.resp(0)).unwrap();
    let _ = stream.write_all(&[head.as_bytes(), &vec![b'v'; 100_000]].concat());
    // The node closes with some of our bytes unread, so the kernel may reset the
    // connection and drop the error line: a reset counts as the close, a timeout not.
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut received = Vec::new();
    let closed = loop {
        let mut buffer = [0u8; 4096];
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(read) => received.extend_from_slice(&buffer[..read]),
            Err(error) => break error.kind() == std::io::ErrorKind::ConnectionReset,
        }
    };
    assert!(
        closed,
        "the node waited for the rest of an unauthenticated request"
    );
    let text = String::from_utf8_lossy(&received);
    let error = "-ERR Protocol error: request larger than 65536 bytes\r\n";
    assert!(text.is_empty() || text == error, "{text:?}");
    // Authenticated: the same request, complete, is served.
    let auth = b"*2\r\n$4\r\nAUTH\r\n$11\r\nopen sesame\r\n";
    let request = [
        &auth[..],
        head.as_bytes(),
        &vec![b'v'; value_size_bytes],
        b"\r\n",
        QUIT,
    ]
    .concat();
    let output = exchange(cluster.resp(0), &request, usize::MAX);
    assert_eq!(output, b"+OK\r\n+OK\r\n+OK\r\n");
    cluster.shutdown();
}

#[test]
fn without_a_password_auth_is_an_error_and_nothing_is_required() {
    let cluster = start_cluster(1, |_| {});
    cluster.wait_for_leader();
    let input = [
        &b"*2\r\n$4\r\nAUTH\r\n$1\r\nx\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"[..],
        QUIT,
    ]
    .concat();
    let text = String::from_utf8_lossy(&exchange(cluster.resp(0), &input, usize::MAX)).into_owned();
    assert!(
        text.starts_with("-ERR AUTH <password> called without any password configured"),
        "{text:?}"
    );
    assert!(text.ends_with("$-1\r\n+OK\r\n"), "{text:?}");
    let (status, _) = http(cluster.http(0), "GET", "/metrics", "", b"");
    assert_eq!(status, 200);
    cluster.shutdown();
}

#[test]
fn http_requests_need_the_bearer_token_on_every_route() {
    let cluster = start_cluster(1, |config| config.client_password = Some(PASSWORD.into()));
    cluster.wait_for_leader();
    let address = cluster.http(0);
    let good = format!("Authorization: Bearer {PASSWORD}\r\n");
    let wrong = "Authorization: Bearer open sesamE\r\n";
    let basic = "Authorization: Basic b3BlbiBzZXNhbWU=\r\n";
    for (method, path) in [
        ("GET", "/v1/kv/k"),
        ("PUT", "/v1/kv/k"),
        ("DELETE", "/v1/kv/k"),
        ("GET", "/v1/status"),
        ("GET", "/metrics"),
    ] {
        for headers in ["", wrong, basic] {
            let (status, response) = http(address, method, path, headers, b"v");
            assert_eq!(status, 401, "{method} {path} with {headers:?}: {response}");
            assert!(response.contains("www-authenticate: Bearer"), "{response}");
        }
    }
    let (status, _) = http(address, "PUT", "/v1/kv/k", &good, b"v");
    assert_eq!(status, 200);
    let lower_case = format!("authorization: bearer {PASSWORD}\r\n");
    assert_eq!(http(address, "GET", "/v1/kv/k", &lower_case, b"").0, 200);
    let (status, response) = http(address, "GET", "/v1/kv/k", &good, b"");
    assert_eq!((status, body(&response)), (200, "v"));
    let (status, response) = http(address, "GET", "/metrics", &good, b"");
    assert_eq!(status, 200);
    let refused = r#"replikv_client_requests_total{api="http",command="GET /v1/kv/{key}",outcome="unauthorized"} 3"#;
    assert!(response.contains(refused), "{response}");
    cluster.shutdown();
}
