//! One replikv node in the test process, the server the client tests talk to: port-0
//! listeners bound before the node starts (no port races), short election timeouts so
//! it leads quickly, and an optional client password.

use replikv_server::{RunningServer, ServerConfig};

/// Starts node 1 of a one-node cluster with its data under `directory`.
pub async fn start_node(directory: &std::path::Path, password: Option<&str>) -> RunningServer {
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let resp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = ServerConfig {
        node_id: 1,
        data_dir: directory.join("n1"),
        peers: vec![format!("1={}", peer.local_addr().unwrap())],
        http_address: Some("127.0.0.1:0".parse().unwrap()),
        election_timeout_ms_min: 100,
        election_timeout_ms_max: 200,
        heartbeat_interval_ms: 30,
        client_password: password.map(str::to_owned),
        ..ServerConfig::default()
    };
    RunningServer::start_with_listeners(&config, peer, resp)
        .await
        .unwrap()
}
