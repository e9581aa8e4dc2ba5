//! The client's retries against a real node, through a proxy that loses answers.
//!
//! A one-node cluster runs in this process (its HTTP API on port 0), and the client
//! talks to it through a small TCP proxy that can swallow the node's answers. That is
//! the situation request ids exist for: the node applied a write, the answer never
//! arrived, the client timed out and retried. The tests show that the retry is answered
//! with the first attempt's outcome (version 1, not a second write), that a client whose
//! every attempt went unanswered reports an unknown outcome, and that one whose every
//! attempt was refused at connect reports "unavailable" (certainly not applied).

mod support;

use replikv_client::{Client, ClientError, ClientOptions, Consistency};
use replikv_server::RunningServer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which answers the proxy loses.
#[derive(Debug, Default)]
struct Losses {
    /// Swallow the answers on the next connection that carries a PUT.
    next_put: AtomicBool,
    /// Swallow every answer.
    all: AtomicBool,
    /// Connections on which answers were swallowed.
    swallowed: AtomicUsize,
}

async fn start_node(directory: &std::path::Path) -> RunningServer {
    support::start_node(directory, None).await
}

/// A proxy to `upstream`; returns its address.
async fn start_proxy(upstream: SocketAddr, losses: Arc<Losses>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let losses = Arc::clone(&losses);
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(upstream).await {
                    relay(client, server, losses).await;
                }
            });
        }
    });
    address
}

/// Copies requests up and answers down, the latter only until the connection starts
/// swallowing (a request the losses select went up).
async fn relay(client: TcpStream, server: TcpStream, losses: Arc<Losses>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let swallowing = Arc::new(AtomicBool::new(false));
    let up = {
        let swallowing = Arc::clone(&swallowing);
        async move {
            let mut buffer = vec![0u8; 64 * 1024];
            while let Ok(read) = client_read.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
                let is_put = buffer[..read].starts_with(b"PUT ");
                let lose = losses.all.load(Ordering::SeqCst)
                    || (is_put && losses.next_put.swap(false, Ordering::SeqCst));
                if lose && !swallowing.swap(true, Ordering::SeqCst) {
                    losses.swallowed.fetch_add(1, Ordering::SeqCst);
                }
                if server_write.write_all(&buffer[..read]).await.is_err() {
                    break;
                }
            }
        }
    };
    let down = async move {
        let mut buffer = vec![0u8; 64 * 1024];
        while let Ok(read) = server_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            if !swallowing.load(Ordering::SeqCst)
                && client_write.write_all(&buffer[..read]).await.is_err()
            {
                break;
            }
        }
    };
    tokio::join!(up, down);
}

fn options() -> ClientOptions {
    ClientOptions {
        attempt_timeout_ms: 1_500,
        attempts_max: 20,
        backoff_initial_ms: 10,
        backoff_max_ms: 100,
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_answer_was_lost_is_retried_and_applied_once() {
    let directory = tempfile::tempdir().unwrap();
    let node = start_node(directory.path()).await;
    let losses = Arc::new(Losses::default());
    let proxy = start_proxy(node.http_address.unwrap(), Arc::clone(&losses)).await;
    let client = Client::new(&[proxy.to_string()], options()).unwrap();

    // Once the node leads (a put succeeds), lose the next put's answer.
    client.put("warm-up", "x").await.unwrap();
    losses.next_put.store(true, Ordering::SeqCst);
    let written = client.put("lost", "first").await.unwrap();
    assert_eq!(losses.swallowed.load(Ordering::SeqCst), 1);
    assert_eq!(
        written.version, 1,
        "the retry was applied as a second write"
    );
    let read = client.get("lost", Consistency::Linearizable).await.unwrap();
    assert_eq!(read.unwrap().version, 1);

    // The next write is a new request: applied.
    let written = client.put("lost", "second").await.unwrap();
    assert_eq!(written.version, 2);

    // Every answer lost: the outcome is unknown (the node did apply it).
    losses.all.store(true, Ordering::SeqCst);
    let few = ClientOptions {
        attempt_timeout_ms: 300,
        attempts_max: 2,
        ..options()
    };
    let impatient = Client::new(&[proxy.to_string()], few).unwrap();
    let error = impatient.put("unknown", "v").await.unwrap_err();
    assert!(error.outcome_unknown(), "{error}");
    assert!(matches!(
        error,
        ClientError::OutcomeUnknown { attempts: 2, .. }
    ));
    losses.all.store(false, Ordering::SeqCst);
    node.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_cluster_nobody_can_connect_to_is_unavailable_not_unknown() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let options = ClientOptions {
        attempts_max: 3,
        backoff_initial_ms: 1,
        ..ClientOptions::default()
    };
    let client = Client::new(&[address.to_string()], options).unwrap();
    let error = client.put("k", "v").await.unwrap_err();
    assert!(!error.outcome_unknown(), "{error}");
    assert!(matches!(
        error,
        ClientError::Unavailable { attempts: 3, .. }
    ));
    let error = client.get("", Consistency::Follower).await.unwrap_err();
    assert!(matches!(error, ClientError::Invalid(_)));
    let status = client.status().await;
    assert!(status.nodes[0].status.is_err());
}
