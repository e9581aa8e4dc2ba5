//! A cluster with a client password: the client's `ClientOptions::password` goes out
//! as a bearer token on every request, discovery included, and a client without it (or
//! with a wrong one) gets a definite refusal — never an "unknown outcome" and never a
//! retry loop, since nothing ran.

use replikv_client::{Client, ClientError, ClientOptions, Consistency};
use replikv_server::{RunningServer, ServerConfig};

const PASSWORD: &str = "correct horse battery staple";

async fn start_node(directory: &std::path::Path) -> RunningServer {
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
        client_password: Some(PASSWORD.into()),
        ..ServerConfig::default()
    };
    RunningServer::start_with_listeners(&config, peer, resp)
        .await
        .unwrap()
}

fn options(password: Option<&str>) -> ClientOptions {
    ClientOptions {
        attempts_max: 20,
        backoff_initial_ms: 10,
        backoff_max_ms: 100,
        password: password.map(str::to_owned),
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_opens_the_cluster_and_its_absence_is_a_definite_refusal() {
    let directory = tempfile::tempdir().unwrap();
    let node = start_node(directory.path()).await;
    let endpoint = node.http_address.unwrap().to_string();

    let client = Client::new(&[&endpoint], options(Some(PASSWORD))).unwrap();
    let written = client.put("k", "v").await.unwrap();
    assert_eq!(written.version, 1);
    let read = client.get("k", Consistency::Linearizable).await.unwrap();
    assert_eq!(read.unwrap().value, b"v");

    for password in [None, Some("wrong")] {
        let stranger = Client::new(&[&endpoint], options(password)).unwrap();
        let error = stranger.put("k", "intruder").await.unwrap_err();
        assert!(matches!(error, ClientError::Invalid(_)), "{error}");
        assert!(!error.outcome_unknown(), "{error}");
    }
    let read = client.get("k", Consistency::Linearizable).await.unwrap();
    assert_eq!(read.unwrap().version, 1, "a refused write was applied");
    node.shutdown().await.unwrap();
}
