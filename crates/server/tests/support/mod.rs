//! Starting small clusters in-process, and talking to them over raw sockets: the
//! scaffolding every in-process server test shares (`node.rs`, `http_request_ids.rs`,
//! `operations/`), so that a change to how nodes start is made in one place. Each test
//! binary uses part of it, hence the `dead_code` allowance.
#![allow(dead_code)]

use replikv_core::NodeId;
use replikv_server::peer::{Handshake, decode_frame, encode_frame};
use replikv_server::{RunningServer, ServerConfig};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(20);
pub const SECRET: &str = "correct horse battery staple";

pub struct Cluster {
    pub runtime: tokio::runtime::Runtime,
    pub servers: Vec<RunningServer>,
    _directory: tempfile::TempDir,
}

/// A cluster of `nodes`, each configured by `configure` after the common settings.
pub fn start_cluster(nodes: u64, configure: impl Fn(&mut ServerConfig)) -> Cluster {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let directory = tempfile::tempdir().unwrap();
    let listeners: Vec<(TcpListener, TcpListener)> = (0..nodes)
        .map(|_| {
            let peer = TcpListener::bind("127.0.0.1:0").unwrap();
            let resp = TcpListener::bind("127.0.0.1:0").unwrap();
            (peer, resp)
        })
        .collect();
    let peers: Vec<String> = listeners
        .iter()
        .enumerate()
        .map(|(index, (peer, _))| format!("{}={}", index + 1, peer.local_addr().unwrap()))
        .collect();
    let mut servers = Vec::new();
    for (index, (peer, resp)) in listeners.into_iter().enumerate() {
        let mut config = ServerConfig {
            node_id: index as u64 + 1,
            data_dir: directory.path().join(format!("n{}", index + 1)),
            peers: peers.clone(),
            cluster_secret: Some(SECRET.into()),
            http_address: Some("127.0.0.1:0".parse().unwrap()),
            heartbeat_interval_ms: 50,
            ..ServerConfig::default()
        };
        configure(&mut config);
        let server = runtime
            .block_on(RunningServer::start_with_listeners(&config, peer, resp))
            .unwrap();
        servers.push(server);
    }
    Cluster {
        runtime,
        servers,
        _directory: directory,
    }
}

impl Cluster {
    pub fn resp(&self, index: usize) -> SocketAddr {
        self.servers[index].resp_address
    }

    pub fn http(&self, index: usize) -> SocketAddr {
        self.servers[index].http_address.unwrap()
    }

    /// A Redis connection to node `index`; `password` sends AUTH first.
    pub fn client_with(&self, index: usize, password: Option<&str>) -> redis::Connection {
        let address = self.resp(index);
        let url = match password {
            Some(password) => format!("redis://:{password}@{address}/"),
            None => format!("redis://{address}/"),
        };
        let client = redis::Client::open(url).unwrap();
        let connection = client.get_connection_with_timeout(DEADLINE).unwrap();
        connection.set_read_timeout(Some(DEADLINE)).unwrap();
        connection
    }

    pub fn client(&self, index: usize) -> redis::Connection {
        self.client_with(index, None)
    }

    /// The index of the node all others agree leads, once they do.
    pub fn wait_for_leader(&self) -> usize {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            let leaders: Vec<Option<NodeId>> = self
                .servers
                .iter()
                .map(|server| {
                    let status = self.runtime.block_on(server.node().status()).unwrap();
                    status.leader
                })
                .collect();
            if let Some(leader) = leaders[0]
                && leaders.iter().all(|known| *known == Some(leader))
                && let Some(index) = self.servers.iter().position(|s| s.id == leader)
            {
                return index;
            }
            std::thread::yield_now();
        }
        panic!("no leader within {DEADLINE:?}");
    }

    pub fn shutdown(self) {
        for server in self.servers {
            self.runtime.block_on(server.shutdown()).unwrap();
        }
    }
}

pub fn query<T: redis::FromRedisValue>(
    connection: &mut redis::Connection,
    words: &[&str],
) -> redis::RedisResult<T> {
    let mut command = redis::cmd(words[0]);
    for word in &words[1..] {
        command.arg(*word);
    }
    command.query(connection)
}

/// The QUIT command: the server answers `+OK` and closes.
pub const QUIT: &[u8] = b"*1\r\n$4\r\nQUIT\r\n";

/// Sends raw bytes and reads until `expected` bytes arrived or the peer closed.
pub fn exchange(address: SocketAddr, input: &[u8], expected: usize) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // The server may close before reading everything (an oversized frame): ignore.
    let _ = stream.write_all(input);
    read_until_closed(&mut stream, expected)
}

/// Reads until `expected` bytes arrived or the peer closed (or reset).
pub fn read_until_closed(stream: &mut TcpStream, expected: usize) -> Vec<u8> {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut output = Vec::new();
    let mut buffer = [0u8; 4096];
    while output.len() < expected {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => output.extend_from_slice(&buffer[..read]),
        }
    }
    output
}

/// One HTTP/1.1 exchange over a fresh connection: the status code and the raw response.
pub fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: impl AsRef<[u8]>,
) -> (u16, String) {
    let body = body.as_ref();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    let request = [head.as_bytes(), body].concat();
    let output = exchange(address, &request, usize::MAX);
    let text = String::from_utf8_lossy(&output).into_owned();
    let status = text
        .get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// The body of an HTTP response.
pub fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// Sends one peer frame (a big-endian u32 length, then the postcard bytes).
pub fn send_frame(stream: &mut TcpStream, message: &Handshake) {
    let bytes = encode_frame(message).unwrap();
    let length = u32::try_from(bytes.len()).unwrap().to_be_bytes();
    stream.write_all(&[&length[..], &bytes].concat()).unwrap();
}

/// Reads one peer frame and decodes it as a handshake message.
pub fn read_frame(stream: &mut TcpStream) -> Handshake {
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut bytes = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut bytes).unwrap();
    decode_frame(&bytes).unwrap()
}
