//! The transport's tasks: one outgoing connection per peer, and the listener that
//! accepts the peers' connections and hands what they say to the node.
//!
//! An outgoing task owns its peer's queue. It connects from the node's own listen IP,
//! runs the caller's half of the handshake, then writes queued frames, feeding as many
//! as are ready before one flush (batching without delay). Any error closes the
//! connection and the task reconnects after a backoff that doubles from
//! [`RECONNECT_BACKOFF_MIN`] up to [`RECONNECT_BACKOFF_MAX`], and resets once a
//! handshake succeeds. Frames that pile up meanwhile stay in the bounded queue, and
//! whatever does not fit is dropped by the sender. The task ends when its queue closes:
//! the peer was removed from the address book (or moved to another address, which
//! starts a new task), or the node is stopping.
//!
//! An incoming connection runs the acceptor's half of the handshake, then reads frames
//! until the peer closes or misbehaves (a frame above the size limit, bytes that do not
//! decode): the reason is logged and the connection closed. Forwarded client requests
//! are served by separate tasks, at most [`FORWARDS_SERVED_PER_CONNECTION_MAX`] at once
//! per connection, so a slow write never holds up the replication messages behind it.

use super::handshake::{HANDSHAKE_FRAME_SIZE_MAX_BYTES, Handshake, fresh_nonce};
use super::{
    Authenticator, PEER_FRAME_SIZE_MAX_BYTES, PeerFrame, PeerSenders, decode_frame, encode_frame,
};
use crate::node_loop::NodeHandle;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use replikv_core::error::{Error, Result};
use replikv_core::{NodeId, Reply};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// First pause before a reconnect.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(20);
/// Longest pause between reconnects.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Longest a connect or a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Most forwarded requests served at once for one incoming connection.
pub const FORWARDS_SERVED_PER_CONNECTION_MAX: usize = 1024;

/// What the transport needs to know about this node and its cluster.
#[derive(Clone, Debug)]
pub struct PeerTransportConfig {
    pub id: NodeId,
    /// The IP outgoing connections are bound to: the node's own peer listen IP.
    pub local_ip: IpAddr,
    pub authenticator: Authenticator,
}

type PeerFramed = Framed<TcpStream, LengthDelimitedCodec>;

fn framed(stream: TcpStream) -> PeerFramed {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(HANDSHAKE_FRAME_SIZE_MAX_BYTES)
        .new_codec();
    Framed::new(stream, codec)
}

async fn send_handshake(framed: &mut PeerFramed, message: &Handshake) -> Result<()> {
    let bytes = encode_frame(message)?;
    framed.send(Bytes::from(bytes)).await.map_err(Error::from)
}

async fn receive_handshake(framed: &mut PeerFramed) -> Result<Handshake> {
    match framed.next().await {
        Some(Ok(bytes)) => decode_frame(&bytes),
        Some(Err(error)) => Err(Error::from(error)),
        None => Err(Error::Unavailable("closed during the handshake".into())),
    }
}

/// Spawns one outgoing connection task per peer, each draining its queue.
pub fn spawn_outgoing(
    config: &Arc<PeerTransportConfig>,
    receivers: super::PeerReceivers,
    shutdown: &watch::Receiver<bool>,
) {
    for (peer, (address, receiver)) in receivers {
        spawn_one_outgoing(config, peer, address, receiver, shutdown);
    }
}

/// Spawns the outgoing connection task of one peer; it ends when `receiver`'s queue
/// closes or at shutdown.
pub fn spawn_one_outgoing(
    config: &Arc<PeerTransportConfig>,
    peer: NodeId,
    address: SocketAddr,
    receiver: mpsc::Receiver<PeerFrame>,
    shutdown: &watch::Receiver<bool>,
) {
    let config = Arc::clone(config);
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = run_outgoing(config, peer, address, receiver) => {}
            () = wait_for_shutdown(shutdown) => {}
        }
    });
}

async fn wait_for_shutdown(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

async fn run_outgoing(
    config: Arc<PeerTransportConfig>,
    peer: NodeId,
    address: SocketAddr,
    mut queue: mpsc::Receiver<PeerFrame>,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    loop {
        if queue.is_closed() {
            tracing::info!(%peer, %address, "peer forgotten: its connection ends");
            return;
        }
        match connect(&config, peer, address).await {
            Ok(mut framed) => {
                backoff = RECONNECT_BACKOFF_MIN;
                tracing::info!(%peer, %address, "peer connection established");
                match write_frames(&mut framed, &mut queue).await {
                    Ok(()) => return, // the queue closed: peer removed, or the node stops
                    Err(error) => tracing::info!(%peer, %error, "peer connection lost"),
                }
            }
            Err(error) => tracing::debug!(%peer, %address, %error, "cannot connect to peer"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
    }
}

async fn connect(
    config: &PeerTransportConfig,
    peer: NodeId,
    address: SocketAddr,
) -> Result<PeerFramed> {
    let socket = if address.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if config.local_ip.is_ipv4() == address.is_ipv4() {
        socket.bind(SocketAddr::new(config.local_ip, 0))?;
    }
    let handshake = async {
        let stream = socket.connect(address).await?;
        stream.set_nodelay(true)?;
        let mut framed = framed(stream);
        let authenticator = &config.authenticator;
        send_handshake(&mut framed, &authenticator.hello(config.id, peer)).await?;
        let Handshake::Challenge { nonce } = receive_handshake(&mut framed).await? else {
            return Err(Error::InvalidInput("expected a challenge".into()));
        };
        let mac = authenticator.proof(&nonce, config.id, peer);
        send_handshake(&mut framed, &Handshake::Proof { mac }).await?;
        match receive_handshake(&mut framed).await? {
            Handshake::Welcome => Ok(framed),
            Handshake::Rejected { reason } => {
                tracing::warn!(%peer, %reason, "peer refused our handshake");
                Err(Error::Unavailable(format!("refused: {reason}")))
            }
            _ => Err(Error::InvalidInput("unexpected handshake message".into())),
        }
    };
    let mut framed = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| Error::Unavailable("handshake timed out".into()))??;
    framed
        .codec_mut()
        .set_max_frame_length(PEER_FRAME_SIZE_MAX_BYTES);
    Ok(framed)
}

/// Writes frames until the connection fails (`Err`) or the queue closes (`Ok`).
async fn write_frames(
    framed: &mut PeerFramed,
    queue: &mut mpsc::Receiver<PeerFrame>,
) -> Result<()> {
    /// Most frames fed before one flush.
    const FRAMES_PER_FLUSH_MAX: usize = 256;
    while let Some(frame) = queue.recv().await {
        framed.feed(encode_bytes(&frame)?).await?;
        let mut fed = 1;
        while fed < FRAMES_PER_FLUSH_MAX {
            match queue.try_recv() {
                Ok(frame) => framed.feed(encode_bytes(&frame)?).await?,
                Err(_) => break,
            }
            fed += 1;
        }
        SinkExt::<Bytes>::flush(framed).await?;
    }
    Ok(())
}

fn encode_bytes(frame: &PeerFrame) -> Result<Bytes> {
    let bytes = encode_frame(frame)?;
    if bytes.len() > PEER_FRAME_SIZE_MAX_BYTES {
        // Our own frame too big would be a configuration bug checked at startup.
        return Err(Error::InvalidInput(format!(
            "frame of {} bytes exceeds the peer frame limit",
            bytes.len()
        )));
    }
    Ok(Bytes::from(bytes))
}

/// Accepts peer connections until shutdown.
pub async fn run_listener(
    listener: TcpListener,
    config: Arc<PeerTransportConfig>,
    node: NodeHandle,
    senders: PeerSenders,
    shutdown: watch::Receiver<bool>,
) {
    let accept_loop = async {
        loop {
            match listener.accept().await {
                Ok((stream, remote)) => {
                    let config = Arc::clone(&config);
                    let (node, senders) = (node.clone(), senders.clone());
                    // An incoming connection ends at shutdown too: a node stopped
                    // inside a process that goes on (tests, embedding) must not leave
                    // its peers writing into a connection nobody reads.
                    let stopping = wait_for_shutdown(shutdown.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            result = serve_incoming(stream, &config, node, senders) => {
                                if let Err(reason) = result {
                                    tracing::info!(%remote, %reason, "peer connection closed");
                                }
                            }
                            () = stopping => {}
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting a peer connection failed");
                    tokio::time::sleep(RECONNECT_BACKOFF_MIN).await;
                }
            }
        }
    };
    tokio::select! {
        () = accept_loop => {}
        () = wait_for_shutdown(shutdown.clone()) => {}
    }
}

async fn accept_handshake(
    stream: TcpStream,
    config: &PeerTransportConfig,
    senders: &PeerSenders,
) -> Result<(NodeId, PeerFramed)> {
    stream.set_nodelay(true)?;
    let mut framed = framed(stream);
    let hello = receive_handshake(&mut framed).await?;
    // The address book as it is now: a member added while running is known here once
    // this node learned its address.
    let known: Vec<NodeId> = senders.peer_addresses().into_keys().collect();
    let authenticator = &config.authenticator;
    let from = match authenticator.check_hello(&hello, config.id, &known) {
        Ok(from) => from,
        Err(reason) => return reject(framed, reason).await,
    };
    let nonce = fresh_nonce();
    send_handshake(&mut framed, &Handshake::Challenge { nonce }).await?;
    let Handshake::Proof { mac } = receive_handshake(&mut framed).await? else {
        return reject(framed, "expected a proof".into()).await;
    };
    if !authenticator.verify(&mac, &nonce, from, config.id) {
        return reject(framed, format!("{from} failed to prove the cluster secret")).await;
    }
    send_handshake(&mut framed, &Handshake::Welcome).await?;
    framed
        .codec_mut()
        .set_max_frame_length(PEER_FRAME_SIZE_MAX_BYTES);
    Ok((from, framed))
}

async fn reject<T>(mut framed: PeerFramed, reason: String) -> Result<T> {
    tracing::warn!(%reason, "refusing a peer connection");
    let _ = send_handshake(
        &mut framed,
        &Handshake::Rejected {
            reason: reason.clone(),
        },
    )
    .await;
    Err(Error::InvalidInput(format!("handshake refused: {reason}")))
}

/// Serves one incoming connection; returns why it ended.
async fn serve_incoming(
    stream: TcpStream,
    config: &PeerTransportConfig,
    node: NodeHandle,
    senders: PeerSenders,
) -> std::result::Result<(), String> {
    let (from, mut framed) = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        accept_handshake(stream, config, &senders),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|error| error.to_string())?;
    tracing::debug!(%from, "peer connected");
    let forwards = Arc::new(Semaphore::new(FORWARDS_SERVED_PER_CONNECTION_MAX));
    while let Some(bytes) = framed.next().await {
        let bytes = bytes.map_err(|error| format!("{from}: {error}"))?;
        let frame: PeerFrame = decode_frame(&bytes)
            .map_err(|error| format!("{from} sent an undecodable frame: {error}"))?;
        match frame {
            PeerFrame::Raft(message) => node.deliver(from, message),
            PeerFrame::ForwardReply { forward_id, reply } => {
                senders.complete_forward(forward_id, reply);
            }
            PeerFrame::Forward {
                forward_id,
                request_id,
                request,
            } => {
                let Ok(permit) = Arc::clone(&forwards).try_acquire_owned() else {
                    let error = Error::Overloaded("too many forwarded requests".into());
                    let reply = PeerFrame::ForwardReply {
                        forward_id,
                        reply: Reply::Failed(error),
                    };
                    senders.send(from, reply);
                    continue;
                };
                let (node, senders) = (node.clone(), senders.clone());
                tokio::spawn(async move {
                    let reply = node.request_local(request_id, request).await;
                    senders.send(from, PeerFrame::ForwardReply { forward_id, reply });
                    drop(permit);
                });
            }
        }
    }
    Err(format!("{from} closed the connection"))
}
