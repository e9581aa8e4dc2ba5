//! The peer transport: how nodes of one cluster talk to each other over TCP.
//!
//! **Frames.** Every message travels in a length-delimited frame (`tokio-util`'s codec,
//! a 4-byte big-endian length, then the bytes), encoded with **postcard**. Postcard was
//! chosen over bincode because its wire format is specified and stable across its 1.x
//! releases (a mixed-version cluster must agree on bytes), its varint integers keep
//! Raft's small numbers small, and it is actively maintained, where bincode's 2.x line
//! has been discontinued. A frame longer than [`PEER_FRAME_SIZE_MAX_BYTES`] is refused
//! by the codec before it is buffered, and bytes that do not decode as a [`PeerFrame`]
//! close the connection with a logged reason: a peer speaking garbage costs a
//! reconnect, never a panic. Values inside are re-validated on decode (keys and values
//! check their limits in `Deserialize`).
//!
//! **Connections.** Each node keeps one outgoing connection per peer, used only for
//! sending, bound to the node's own listen IP (so that nodes can live on different
//! addresses or network namespaces and the peer sees the address it expects), and
//! accepts incoming connections, used only for receiving. Outgoing connections
//! reconnect with capped exponential backoff. Each has a bounded queue
//! ([`PEER_QUEUE_MAX`]); when it is full, or while the peer is unreachable, messages
//! are dropped and counted: Raft retransmits what matters.
//!
//! **Handshake** (`handshake.rs`) before any message: magic, protocol version, cluster
//! name, sender and addressee ids, and a proof of the shared cluster secret (HMAC over
//! the acceptor's fresh nonce) when one is configured.
//!
//! **Address book** (`address_book.rs`): the peers a node talks to change while it
//! runs. A member added to the configuration gets a queue and an outgoing connection
//! when the node learns its address (from the replicated log); a removed one has its
//! queue dropped, which ends its connection. [`PeerSenders`] is that book: the queues by
//! peer, each with the address its connection dials, bounded by `PEERS_MAX`.
//!
//! **Forwarding.** Any node accepts any client request. A node that is not the leader
//! forwards the request, under its original request id, to the leader it knows
//! ([`PeerFrame::Forward`]); the leader serves it locally (never forwarding it again: one
//! hop at most) and sends the reply back over its own outgoing connection
//! ([`PeerFrame::ForwardReply`]). Forwards waiting for a reply are bounded
//! ([`FORWARDS_PENDING_MAX`]).
//!
//! **Testing faults** (`faults.rs`): with `--testing-faults`, [`PeerSenders::send`]
//! passes replication messages through a seeded fault hook (per-link delay, loss,
//! duplication, reordering) set at run time by the admin API. Off by default: then the
//! hook does not exist and costs one check of an empty `OnceLock`.

pub mod address_book;
pub mod faults;
mod handshake;
mod transport;

pub use address_book::AddressBook;
pub use handshake::{
    Authenticator, CLUSTER_NAME_SIZE_MAX_BYTES, Handshake, PROTOCOL_MAGIC, PROTOCOL_VERSION,
};
pub use transport::{PeerTransportConfig, run_listener, spawn_outgoing};

use replikv_core::error::{Error, Result};
use replikv_core::{NodeId, Reply, Request, RequestId};
use replikv_replication::single_leader::Message;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use tokio::sync::{mpsc, oneshot};

/// Largest frame a peer may send: an append carries up to `append_size_max_bytes` of
/// entries plus one entry of any size (a log record of at most
/// `LOG_RECORD_SIZE_MAX_BYTES`); a snapshot chunk is smaller. The server checks its
/// replication settings against this bound when it starts.
pub const PEER_FRAME_SIZE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// Most frames queued for one peer.
pub const PEER_QUEUE_MAX: usize = 4096;

/// Most forwarded requests waiting for the leader's reply on one node.
pub const FORWARDS_PENDING_MAX: usize = 16 * 1024;

/// What one node sends another once the handshake is done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// A message of the replication protocol.
    Raft(Message),
    /// A client request this node cannot serve, for the leader.
    Forward {
        forward_id: u64,
        request_id: RequestId,
        request: Request,
    },
    /// The leader's reply to a forwarded request.
    ForwardReply { forward_id: u64, reply: Reply },
}

/// The sending side of the transport: one bounded queue per peer (with the address its
/// connection dials), and the forwards waiting for their reply. Peers come and go while
/// the node runs (see `address_book.rs`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct PeerSenders {
    inner: Arc<SendersInner>,
}

#[derive(Debug)]
struct SendersInner {
    queues: RwLock<BTreeMap<NodeId, PeerQueue>>,
    dropped: AtomicU64,
    next_forward_id: AtomicU64,
    forwards: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// The testing fault hook, set once at start with `--testing-faults`.
    faults: OnceLock<faults::FaultInjector<PeerFrame>>,
}

impl SendersInner {
    /// Puts a frame in its peer's queue; `false` (and counted) if it was dropped.
    fn enqueue(&self, to: NodeId, frame: PeerFrame) -> bool {
        let queues = self
            .queues
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sent = queues
            .get(&to)
            .is_some_and(|queue| queue.sender.try_send(frame).is_ok());
        if !sent {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }
}

impl faults::Deliver<PeerFrame> for SendersInner {
    fn deliver(&self, to: NodeId, frame: PeerFrame) -> bool {
        self.enqueue(to, frame)
    }
}

/// One peer's queue and the address its outgoing connection dials.
#[derive(Debug)]
struct PeerQueue {
    sender: mpsc::Sender<PeerFrame>,
    address: SocketAddr,
}

/// The receiving ends of new peer queues, for the outgoing connections to drain.
pub type PeerReceivers = BTreeMap<NodeId, (SocketAddr, mpsc::Receiver<PeerFrame>)>;

impl PeerSenders {
    /// Creates the queues for `peers`; returns the receivers for the outgoing
    /// connections to drain.
    #[must_use]
    pub fn new(peers: &[(NodeId, SocketAddr)]) -> (PeerSenders, PeerReceivers) {
        let senders = PeerSenders {
            inner: Arc::new(SendersInner {
                queues: RwLock::new(BTreeMap::new()),
                dropped: AtomicU64::new(0),
                next_forward_id: AtomicU64::new(1),
                forwards: Mutex::new(HashMap::new()),
                faults: OnceLock::new(),
            }),
        };
        let mut receivers = BTreeMap::new();
        for (peer, address) in peers {
            if let Some(receiver) = senders.add_peer(*peer, *address) {
                receivers.insert(*peer, (*address, receiver));
            }
        }
        (senders, receivers)
    }

    /// Adds a queue for `peer` dialing `address`; returns its receiving end for a new
    /// outgoing connection. `None` if the peer is already known at that address. A
    /// known peer at another address gets a new queue (its old connection ends).
    pub fn add_peer(&self, peer: NodeId, address: SocketAddr) -> Option<mpsc::Receiver<PeerFrame>> {
        let mut queues = self.queues_mut();
        if queues
            .get(&peer)
            .is_some_and(|queue| queue.address == address)
        {
            return None;
        }
        let (sender, receiver) = mpsc::channel(PEER_QUEUE_MAX);
        queues.insert(peer, PeerQueue { sender, address });
        Some(receiver)
    }

    /// Forgets `peer`: its queue is dropped, which ends its outgoing connection once
    /// the frames already queued are written. `true` if it was known.
    pub fn remove_peer(&self, peer: NodeId) -> bool {
        self.queues_mut().remove(&peer).is_some()
    }

    /// The known peers and their addresses, in id order.
    #[must_use]
    pub fn peer_addresses(&self) -> BTreeMap<NodeId, SocketAddr> {
        self.queues()
            .iter()
            .map(|(peer, queue)| (*peer, queue.address))
            .collect()
    }

    /// Whether `peer` is known (the handshake refuses unknown senders).
    #[must_use]
    pub fn knows(&self, peer: NodeId) -> bool {
        self.queues().contains_key(&peer)
    }

    fn queues(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<NodeId, PeerQueue>> {
        // A panic while holding this lock would be a bug of ours; the map stays usable.
        self.inner
            .queues
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn queues_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<NodeId, PeerQueue>> {
        self.inner
            .queues
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a replication message; drops and counts it if the queue is full.
    pub fn send_raft(&self, to: NodeId, message: Message) {
        if !self.send(to, PeerFrame::Raft(message)) {
            tracing::trace!(%to, "peer queue full or unknown peer: message dropped");
        }
    }

    /// Queues a frame; `false` (and counted) if it was dropped. With testing faults
    /// enabled, a replication message first meets its link's faults (`faults.rs`): a
    /// lost one counts as sent, as on a real network.
    pub fn send(&self, to: NodeId, frame: PeerFrame) -> bool {
        if let Some(injector) = self.inner.faults.get()
            && matches!(frame, PeerFrame::Raft(_))
        {
            return self.send_with_faults(injector, to, frame);
        }
        self.inner.enqueue(to, frame)
    }

    fn send_with_faults(
        &self,
        injector: &faults::FaultInjector<PeerFrame>,
        to: NodeId,
        frame: PeerFrame,
    ) -> bool {
        let Some(delays) = injector.fate(to) else {
            return self.inner.enqueue(to, frame);
        };
        let Some((last, others)) = delays.split_last() else {
            return true; // lost on the wire
        };
        for delay in others {
            self.send_after(injector, to, frame.clone(), *delay);
        }
        self.send_after(injector, to, frame, *last)
    }

    fn send_after(
        &self,
        injector: &faults::FaultInjector<PeerFrame>,
        to: NodeId,
        frame: PeerFrame,
        delay: std::time::Duration,
    ) -> bool {
        if delay.is_zero() {
            return self.inner.enqueue(to, frame);
        }
        let inner: Weak<SendersInner> = Arc::downgrade(&self.inner);
        let deliver: Weak<dyn faults::Deliver<PeerFrame>> = inner;
        let delayed = injector.delay(to, frame, delay, deliver);
        if !delayed {
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        delayed
    }

    /// Turns the testing fault hook on (perfect links until faults are set), seeded
    /// with `seed`; its delay lines run on `runtime`. `false` if it was already on.
    pub fn enable_faults(&self, seed: u64, runtime: tokio::runtime::Handle) -> bool {
        self.inner
            .faults
            .set(faults::FaultInjector::new(seed, runtime))
            .is_ok()
    }

    /// The testing fault hook, when the server started with `--testing-faults`.
    #[must_use]
    pub fn faults(&self) -> Option<&faults::FaultInjector<PeerFrame>> {
        self.inner.faults.get()
    }

    /// Frames dropped so far.
    #[must_use]
    pub fn messages_dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Sends `request` to `leader`. `Err` if it certainly was not sent.
    pub fn forward(
        &self,
        leader: NodeId,
        request_id: RequestId,
        request: Request,
    ) -> Result<PendingForward> {
        let forward_id = self.inner.next_forward_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        {
            let mut forwards = self.forwards();
            if forwards.len() >= FORWARDS_PENDING_MAX {
                return Err(Error::Overloaded(format!(
                    "{FORWARDS_PENDING_MAX} forwarded requests pending"
                )));
            }
            forwards.insert(forward_id, sender);
        }
        let pending = PendingForward {
            senders: self.clone(),
            forward_id,
            receiver: Some(receiver),
        };
        let frame = PeerFrame::Forward {
            forward_id,
            request_id,
            request,
        };
        if self.send(leader, frame) {
            Ok(pending)
        } else {
            Err(Error::Unavailable(format!(
                "cannot reach leader {leader} to forward the request"
            )))
        }
    }

    /// A forwarded request's reply arrived.
    pub fn complete_forward(&self, forward_id: u64, reply: Reply) {
        if let Some(sender) = self.forwards().remove(&forward_id) {
            let _ = sender.send(reply);
        }
    }

    fn forwards(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Reply>>> {
        // A panic while holding this lock would be a bug of ours; the map stays usable.
        self.inner
            .forwards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A forwarded request waiting for its reply; dropping it forgets the forward.
#[derive(Debug)]
pub struct PendingForward {
    senders: PeerSenders,
    forward_id: u64,
    receiver: Option<oneshot::Receiver<Reply>>,
}

impl PendingForward {
    /// The leader's reply; `None` if it can no longer come.
    pub async fn reply(mut self) -> Option<Reply> {
        let receiver = self.receiver.take()?;
        receiver.await.ok()
    }
}

impl Drop for PendingForward {
    fn drop(&mut self) {
        self.senders.forwards().remove(&self.forward_id);
    }
}

/// Encodes a frame for the wire.
pub fn encode_frame<T: Serialize>(frame: &T) -> Result<Vec<u8>> {
    postcard::to_stdvec(frame).map_err(|error| Error::InvalidInput(format!("encode: {error}")))
}

/// Decodes a frame from the wire; anything malformed is an error, never a panic.
pub fn decode_frame<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|error| Error::InvalidInput(format!("decode: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use replikv_core::{ClientId, Key, LogPosition, Term, Value};

    #[test]
    fn frames_round_trip() {
        let frames = vec![
            PeerFrame::Raft(Message::Vote {
                term: Term(3),
                last: LogPosition::new(2, 9),
                transfer: true,
            }),
            PeerFrame::Forward {
                forward_id: 7,
                request_id: RequestId {
                    client: ClientId(5),
                    sequence: 1,
                },
                request: Request::Put {
                    key: Key::new("k").unwrap(),
                    value: Value::new("v").unwrap(),
                },
            },
        ];
        for frame in frames {
            let bytes = encode_frame(&frame).unwrap();
            assert_eq!(decode_frame::<PeerFrame>(&bytes).unwrap(), frame);
        }
    }

    #[test]
    fn garbage_and_invalid_keys_do_not_decode() {
        assert!(decode_frame::<PeerFrame>(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode_frame::<PeerFrame>(&[]).is_err());
        // A forward whose key is empty: the key's own validation refuses it.
        let mut bytes = encode_frame(&PeerFrame::Forward {
            forward_id: 1,
            request_id: RequestId {
                client: ClientId(1),
                sequence: 1,
            },
            request: Request::Delete {
                key: Key::new("k").unwrap(),
            },
        })
        .unwrap();
        let length_at = bytes.len() - 2;
        assert_eq!(bytes[length_at], 1, "the key's length byte");
        bytes[length_at] = 0;
        bytes.pop();
        assert!(decode_frame::<PeerFrame>(&bytes).is_err());
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        let (senders, _receivers) = PeerSenders::new(&[(NodeId(2), address)]);
        let heartbeat = || Message::PreVoteResponse {
            term: Term(1),
            granted: false,
        };
        for _ in 0..PEER_QUEUE_MAX {
            senders.send_raft(NodeId(2), heartbeat());
        }
        assert_eq!(senders.messages_dropped(), 0);
        senders.send_raft(NodeId(2), heartbeat());
        senders.send_raft(NodeId(9), heartbeat());
        assert_eq!(senders.messages_dropped(), 2);
    }

    #[test]
    fn testing_faults_touch_only_replication_messages_of_the_faulty_link() {
        use faults::{LinkFault, LinkFaults};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], 1));
        let (senders, receivers) = PeerSenders::new(&[(NodeId(2), address), (NodeId(3), address)]);
        let mut queues: Vec<_> = receivers.into_values().map(|(_, queue)| queue).collect();
        assert!(senders.faults().is_none(), "off by default");
        assert!(senders.enable_faults(9, runtime.handle().clone()));
        assert!(!senders.enable_faults(9, runtime.handle().clone()), "once");
        let certain = |fault: LinkFault| LinkFaults {
            peers: BTreeMap::from([(2, fault)]),
            ..LinkFaults::default()
        };
        let heartbeat = || Message::PreVoteResponse {
            term: Term(1),
            granted: false,
        };
        let injector = senders.faults().unwrap();
        let lose = certain(LinkFault {
            loss_ratio: 1.0,
            ..LinkFault::default()
        });
        injector.set_link_faults(lose).unwrap();
        senders.send_raft(NodeId(2), heartbeat());
        senders.send_raft(NodeId(3), heartbeat());
        let reply = PeerFrame::ForwardReply {
            forward_id: 1,
            reply: Reply::Failed(Error::Unavailable("x".into())),
        };
        assert!(senders.send(NodeId(2), reply));
        assert!(
            matches!(queues[0].try_recv(), Ok(PeerFrame::ForwardReply { .. })),
            "only the forward reply reaches peer 2"
        );
        assert!(queues[0].try_recv().is_err());
        assert!(queues[1].try_recv().is_ok(), "peer 3's link is perfect");
        let double = certain(LinkFault {
            duplicate_ratio: 1.0,
            ..LinkFault::default()
        });
        injector.set_link_faults(double).unwrap();
        senders.send_raft(NodeId(2), heartbeat());
        assert!(queues[0].try_recv().is_ok() && queues[0].try_recv().is_ok());
        let counters = &injector.counters;
        assert_eq!(counters.lost.load(Ordering::Relaxed), 1);
        assert_eq!(counters.duplicated.load(Ordering::Relaxed), 1);
        assert_eq!(senders.messages_dropped(), 0);
    }

    #[test]
    fn peers_are_added_moved_and_removed() {
        let first = SocketAddr::from(([127, 0, 0, 1], 1));
        let second = SocketAddr::from(([127, 0, 0, 1], 2));
        let (senders, receivers) = PeerSenders::new(&[(NodeId(2), first)]);
        assert_eq!(receivers.len(), 1);
        assert!(
            senders.add_peer(NodeId(2), first).is_none(),
            "already known"
        );
        let mut moved = senders.add_peer(NodeId(2), second).expect("a new address");
        assert_eq!(senders.peer_addresses().get(&NodeId(2)), Some(&second));
        let (_, mut old) = receivers.into_values().next().unwrap();
        assert!(old.is_closed(), "the old connection's queue is closed");
        assert!(old.try_recv().is_err());
        assert!(senders.send(
            NodeId(2),
            PeerFrame::ForwardReply {
                forward_id: 1,
                reply: Reply::Failed(Error::Unavailable("x".into())),
            }
        ));
        assert!(moved.try_recv().is_ok());
        assert!(senders.knows(NodeId(2)));
        assert!(senders.remove_peer(NodeId(2)));
        assert!(!senders.knows(NodeId(2)));
        assert!(moved.is_closed(), "removal ends the connection");
        assert!(!senders.remove_peer(NodeId(2)));
    }
}
