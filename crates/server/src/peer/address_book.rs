//! The address book: which peer address each member of the configuration listens on,
//! learned while the node runs, through the replicated log.
//!
//! **The problem.** The replication group's configuration (voters and learners) lives in
//! the log and changes while nodes run, but a configuration names node *ids*; to talk to
//! a member a node needs its peer *address*. The founding members are in every node's
//! `peers` setting. A member added later is not: someone must tell every node where it
//! listens — the nodes running now, a node restarted next week, and a node seeded from
//! a snapshot that never saw the log entries of the change.
//!
//! **The answer: control-plane data in the replicated state.** The admin endpoint that
//! adds a member first writes its address under a reserved system key,
//! `\0replikv/member/<id>` (the id in decimal, the value the address as text), with an
//! ordinary replicated `Put`, and only once that write is committed asks for the
//! `AddLearner` change. Because the address is ordinary replicated state it has every
//! property we need for free: it is committed before any node can see the member in a
//! configuration, it is in every node's store, it survives restarts (the store is
//! durable), and a snapshot carries it to a new node like any other key. After a
//! `Remove` the endpoint deletes the key. This is the cluster's first piece of the
//! "Raft-replicated control plane" of DESIGN.md: the data plane's replication carries
//! the cluster's own metadata, under a prefix clients cannot touch.
//!
//! Alternatives considered: carrying addresses inside the configuration entry would
//! change the replication crate's log format and store schema for what is a
//! transport concern; gossip between nodes would not reach a node restarted later
//! without a durable copy of its own. The reserved key needs neither.
//!
//! **Reserved keys.** Every key that starts with [`RESERVED_KEY_PREFIX`] (`\0replikv/`)
//! belongs to the cluster. The client APIs (RESP and HTTP) refuse such keys with a clear
//! error ([`check_client_key`]); a leading NUL byte keeps the namespace out of the way of
//! any printable key.
//!
//! **Reconciling.** Each node runs [`run_reconciler`]: every [`RECONCILE_INTERVAL`] it
//! compares the configuration in force on it (a status query to the node loop) with its
//! address book ([`PeerSenders`]). A member without an address is looked up with a
//! *local follower read* of its reserved key — no network round trip, no leader needed;
//! if this node has not applied the write yet, the next round finds it. A found address
//! gets a queue and an outgoing connection (and the handshake then accepts that peer's
//! incoming connection). A peer that is no longer in the configuration is forgotten: its
//! queue is dropped and its connection ends. A node that knows no configuration yet (one
//! started with `--join`, not yet added) keeps its configured peers: it must answer the
//! leader that adds it. A configured peer's address is never overridden by the key: the
//! key only fills gaps. The book is bounded by `PEERS_MAX`.
//!
//! **Registering oneself.** The founding members' addresses are in the nodes' `peers`
//! settings, not in the store, so a node that joins later with only some of them as
//! peers could not find the others. So every member also writes its *own* address
//! under its key, once, when it finds the key missing or different from the address it
//! listens on (a local read, then an ordinary write forwarded to the leader, tried
//! again in later rounds until it is committed). A node that listens on an unspecified
//! address (`0.0.0.0`) cannot tell where it is reachable and registers nothing.

use super::transport::spawn_one_outgoing;
use super::{PeerSenders, PeerTransportConfig};
use crate::config::PEERS_MAX;
use crate::node_loop::NodeHandle;
use replikv_core::error::{Error, Result};
use replikv_core::kv::ReadConsistency;
use replikv_core::{Key, NodeId, Reply, Request, RequestId, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Every key with this prefix belongs to the cluster, not to clients.
pub const RESERVED_KEY_PREFIX: &[u8] = b"\0replikv/";

/// A member's peer address lives under this prefix, followed by its id in decimal.
pub const MEMBER_KEY_PREFIX: &[u8] = b"\0replikv/member/";

/// How often a node compares its configuration with its address book.
pub const RECONCILE_INTERVAL: Duration = Duration::from_millis(200);

/// Longest text of an address stored under a member key.
const ADDRESS_TEXT_SIZE_MAX_BYTES: usize = 128;

/// The reserved key holding `member`'s peer address.
#[must_use]
pub fn member_key(member: NodeId) -> Key {
    let mut bytes = MEMBER_KEY_PREFIX.to_vec();
    bytes.extend_from_slice(member.0.to_string().as_bytes());
    // A prefix and at most 20 digits: far below the key size limit.
    Key::new(bytes).expect("a member key is a valid key")
}

/// Refuses a key a client may not read or write: the reserved prefix.
pub fn check_client_key(key: &[u8]) -> Result<()> {
    if key.starts_with(RESERVED_KEY_PREFIX) {
        return Err(Error::InvalidInput(
            "keys starting with \"\\0replikv/\" are reserved for the cluster's own data".into(),
        ));
    }
    Ok(())
}

/// Parses the value stored under a member key.
pub fn parse_member_address(value: &[u8]) -> Result<SocketAddr> {
    if value.len() > ADDRESS_TEXT_SIZE_MAX_BYTES {
        return Err(Error::InvalidInput("member address too long".into()));
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| {
            let text = String::from_utf8_lossy(value);
            Error::InvalidInput(format!("member address {text:?} is not host:port"))
        })
}

/// The live address book: the transport's queues plus what is needed to open new
/// connections. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AddressBook {
    senders: PeerSenders,
    transport: Arc<PeerTransportConfig>,
    shutdown: watch::Receiver<bool>,
    /// Where this node listens for peers; `None` if that is an unspecified address.
    own_address: Option<SocketAddr>,
    /// Whether this node's own key holds `own_address` (committed).
    registered: Arc<AtomicBool>,
    /// Whether a registration is running (at most one at a time).
    registering: Arc<AtomicBool>,
}

impl AddressBook {
    #[must_use]
    pub fn new(
        senders: PeerSenders,
        transport: Arc<PeerTransportConfig>,
        shutdown: watch::Receiver<bool>,
        own_address: SocketAddr,
    ) -> AddressBook {
        AddressBook {
            senders,
            transport,
            shutdown,
            own_address: (!own_address.ip().is_unspecified()).then_some(own_address),
            registered: Arc::new(AtomicBool::new(false)),
            registering: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts talking to `peer` at `address` (nothing if already so). Refused beyond
    /// `PEERS_MAX` peers, and for this node itself.
    pub fn learn(&self, peer: NodeId, address: SocketAddr) -> Result<()> {
        if peer == self.transport.id {
            return Err(Error::InvalidInput("a node is not its own peer".into()));
        }
        let known = self.senders.peer_addresses();
        if !known.contains_key(&peer) && known.len() >= PEERS_MAX {
            return Err(Error::Overloaded(format!("at most {PEERS_MAX} peers")));
        }
        if let Some(receiver) = self.senders.add_peer(peer, address) {
            tracing::info!(%peer, %address, "peer added to the address book");
            spawn_one_outgoing(&self.transport, peer, address, receiver, &self.shutdown);
        }
        Ok(())
    }

    /// Stops talking to `peer` and forgets it.
    pub fn forget(&self, peer: NodeId) {
        if self.senders.remove_peer(peer) {
            tracing::info!(%peer, "peer removed from the address book");
        }
    }

    /// One round: see the module documentation.
    pub async fn reconcile(&self, node: &NodeHandle) {
        let Some(status) = node.status().await else {
            return;
        };
        let replication = &status.replication;
        if replication.voters.is_empty() {
            return; // no configuration yet: a joining node keeps its configured peers
        }
        let mut members: BTreeSet<NodeId> = replication
            .voters
            .iter()
            .chain(&replication.learners)
            .copied()
            .collect();
        if members.remove(&self.transport.id) && status.leader.is_some() {
            self.spawn_registration(node);
        }
        let known = self.senders.peer_addresses();
        for peer in known.keys().filter(|peer| !members.contains(peer)) {
            self.forget(*peer);
        }
        for member in members.iter().filter(|member| !known.contains_key(member)) {
            match lookup_member_address(node, *member).await {
                Ok(Some(address)) => {
                    if let Err(error) = self.learn(*member, address) {
                        tracing::warn!(%member, %error, "cannot add the member's address");
                    }
                }
                Ok(None) => tracing::debug!(%member, "member address not applied here yet"),
                Err(error) => tracing::warn!(%member, %error, "member address unreadable"),
            }
        }
    }
}

impl AddressBook {
    /// Registers this node's own address in a task of its own (a write may wait up to
    /// the request timeout, which must not hold up the reconciling rounds).
    fn spawn_registration(&self, node: &NodeHandle) {
        if self.own_address.is_none()
            || self.registered.load(Ordering::Relaxed)
            || self.registering.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let (book, node) = (self.clone(), node.clone());
        tokio::spawn(async move {
            book.register(&node).await;
            book.registering.store(false, Ordering::Release);
        });
    }

    /// Writes this node's own address under its key unless it is there already; see
    /// the module documentation.
    async fn register(&self, node: &NodeHandle) {
        let Some(own_address) = self.own_address else {
            return;
        };
        let id = self.transport.id;
        match lookup_member_address(node, id).await {
            Ok(Some(address)) if address == own_address => {
                self.registered.store(true, Ordering::Relaxed);
                return;
            }
            Ok(_) => {}
            Err(error) => return tracing::debug!(%error, "own address unreadable for now"),
        }
        let request_id = RequestId {
            client: NodeHandle::new_client_id(),
            sequence: 1,
        };
        let Ok(value) = Value::new(own_address.to_string().into_bytes()) else {
            return; // an address's text is far below the value size limit
        };
        let request = Request::Put {
            key: member_key(id),
            value,
        };
        match node.request(request_id, request).await {
            Reply::Written { .. } => {
                tracing::info!(node = %id, address = %own_address, "own peer address registered");
                self.registered.store(true, Ordering::Relaxed);
            }
            other => tracing::debug!(?other, "registering the own address: retried later"),
        }
    }
}

/// Reads `member`'s address from this node's own store (a follower read: local, no
/// leader needed). `None` if the key is absent here (not applied yet, or removed).
pub async fn lookup_member_address(
    node: &NodeHandle,
    member: NodeId,
) -> Result<Option<SocketAddr>> {
    let request_id = RequestId {
        client: NodeHandle::new_client_id(),
        sequence: 1,
    };
    let request = Request::Get {
        key: member_key(member),
        consistency: ReadConsistency::Follower,
    };
    match node.request_local(request_id, request).await {
        Reply::Read {
            value: Some(value), ..
        } => parse_member_address(value.as_bytes()).map(Some),
        Reply::Read { value: None, .. } => Ok(None),
        Reply::Failed(error) => Err(error),
        other => Err(Error::InvalidInput(format!("unexpected reply {other:?}"))),
    }
}

/// Reconciles the address book with the configuration until shutdown.
pub async fn run_reconciler(book: AddressBook, node: NodeHandle) {
    let mut shutdown = book.shutdown.clone();
    let stopping = async move {
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    };
    let rounds = async {
        let mut interval = tokio::time::interval(RECONCILE_INTERVAL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            book.reconcile(&node).await;
        }
    };
    tokio::select! {
        () = rounds => {}
        () = stopping => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_keys_are_reserved_and_client_keys_are_not() {
        let key = member_key(NodeId(42));
        assert_eq!(key.as_bytes(), b"\0replikv/member/42");
        assert!(check_client_key(key.as_bytes()).is_err());
        assert!(check_client_key(b"\0replikv/anything").is_err());
        for allowed in [&b"replikv/member/1"[..], b"\0replikv", b"\0other/x", b"k"] {
            assert!(check_client_key(allowed).is_ok(), "{allowed:?}");
        }
    }

    #[test]
    fn member_addresses_parse_or_fail_clearly() {
        let address = SocketAddr::from(([127, 0, 0, 1], 17004));
        assert_eq!(parse_member_address(b"127.0.0.1:17004").unwrap(), address);
        assert_eq!(
            parse_member_address(b" 127.0.0.1:17004\n").unwrap(),
            address
        );
        for bad in [
            &b""[..],
            b"nowhere",
            b"127.0.0.1",
            b"\xff\xfe",
            &[b'1'; 200],
        ] {
            assert!(parse_member_address(bad).is_err(), "{bad:?}");
        }
    }
}
