//! Starting and stopping one node: the order in which the pieces come up and go down.
//!
//! **Start.** Validate the configuration; create the data directory and take an
//! exclusive lock on its `LOCK` file (`flock` through `std::fs::File::try_lock`, stable
//! since Rust 1.89, so no crate is needed: two processes never open one directory, and
//! the kernel releases the lock when a process dies, even by `kill -9`); open the
//! replica from the directory's durable state (the default keyspace's group lives in
//! `default/`; with `join` and no state yet, as a node waiting to be added); bind the peer, RESP and (if configured) HTTP listeners (port 0 picks a free port); write the
//! bound addresses to `endpoints` in the data directory (so that tests and scripts learn
//! the ports without guessing); start the node loop thread, the outgoing peer
//! connections, the address book's reconciler (`peer/address_book.rs`: members added
//! while running) and the listeners.
//!
//! **Stop** ([`RunningServer::shutdown`], on SIGTERM or Ctrl-C): a leader first hands
//! its leadership to the most caught-up voter (a leadership transfer, bounded by one
//! maximum election timeout), so the cluster does not wait an election timeout for a
//! node that was stopped on purpose; then stop accepting and
//! close connections (a watch channel every task selects on), then ask the node loop to
//! flush and stop, and wait for it. Nothing acknowledged depends on the shutdown being
//! graceful: a write is acknowledged only once durable, so `kill -9` is always safe, and
//! a restart with the same directory recovers.
//!
//! If the node loop stops on its own (its storage failed), [`RunningServer::stopped`]
//! returns its error and the process should exit non-zero.

use crate::auth::ClientAuth;
use crate::config::{ServerConfig, ValidConfig};
use crate::keyspace::Keyspaces;
use crate::node_loop::{self, LoopCounters, NodeHandle};
use crate::peer::{self, AddressBook, Authenticator, PeerSenders, PeerTransportConfig};
use crate::resp;
use replikv_core::error::{Error, Result};
use replikv_core::{NodeId, Reply, Request, RequestId};
use replikv_replication::single_leader::RaftNode;
use replikv_storage::disk::Disk;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// The lock file in a data directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// Where a running node writes its bound addresses (`resp=...`, `peer=...` lines).
pub const ENDPOINTS_FILE_NAME: &str = "endpoints";

/// The default keyspace's group directory inside the data directory.
pub const DEFAULT_GROUP_DIRECTORY: &str = "default";

/// A node that is up; see the module documentation.
#[derive(Debug)]
pub struct RunningServer {
    pub id: NodeId,
    pub resp_address: SocketAddr,
    pub peer_address: SocketAddr,
    pub http_address: Option<SocketAddr>,
    node: NodeHandle,
    shutdown: watch::Sender<bool>,
    loop_done: Option<oneshot::Receiver<Result<()>>>,
    /// Held for the process's life: the data directory's exclusive lock.
    _lock: fs::File,
}

/// Takes the data directory's exclusive lock.
pub fn lock_data_dir(data_dir: &Path) -> Result<fs::File> {
    fs::create_dir_all(data_dir)?;
    let path = data_dir.join(LOCK_FILE_NAME);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(Error::Unavailable(format!(
            "data directory {} is in use by another process",
            data_dir.display()
        ))),
        Err(fs::TryLockError::Error(error)) => Err(Error::from(error)),
    }
}

fn write_endpoints(
    data_dir: &Path,
    resp: SocketAddr,
    peer: SocketAddr,
    http: Option<SocketAddr>,
) -> Result<()> {
    let temporary = data_dir.join(format!("{ENDPOINTS_FILE_NAME}.tmp"));
    let mut text = format!("resp={resp}\npeer={peer}\n");
    if let Some(http) = http {
        text.push_str(&format!("http={http}\n"));
    }
    fs::write(&temporary, text)?;
    fs::rename(&temporary, data_dir.join(ENDPOINTS_FILE_NAME))?;
    Ok(())
}

/// Reads the RESP address a node wrote to its data directory, if it did.
#[must_use]
pub fn read_resp_endpoint(data_dir: &Path) -> Option<SocketAddr> {
    let text = fs::read_to_string(data_dir.join(ENDPOINTS_FILE_NAME)).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("resp="))
        .and_then(|address| address.parse().ok())
}

impl RunningServer {
    /// Starts a node; see the module documentation.
    pub async fn start(config: &ServerConfig) -> Result<RunningServer> {
        let peer_listener = bind(config.peer_address)?;
        let resp_listener = bind(config.resp_address)?;
        RunningServer::start_with_listeners(config, peer_listener, resp_listener).await
    }

    /// Starts a node on listeners bound by the caller (the configured addresses are
    /// then ignored, except the peers'): tests bind port 0 first, so that nodes in one
    /// process learn each other's ports without a race.
    pub async fn start_with_listeners(
        config: &ServerConfig,
        peer_listener: std::net::TcpListener,
        resp_listener: std::net::TcpListener,
    ) -> Result<RunningServer> {
        let valid = config.validate()?;
        let data_dir = valid.config.data_dir.clone();
        let lock = lock_data_dir(&data_dir)?;
        let node = open_node(&valid, data_dir.join(DEFAULT_GROUP_DIRECTORY)).await?;
        peer_listener.set_nonblocking(true)?;
        resp_listener.set_nonblocking(true)?;
        let peer_listener = TcpListener::from_std(peer_listener)?;
        let resp_listener = TcpListener::from_std(resp_listener)?;
        let http_listener = match valid.config.http_address {
            Some(address) => Some(TcpListener::from_std(bind(address)?)?),
            None => None,
        };
        let http_address = http_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let peer_address = peer_listener.local_addr()?;
        let resp_address = resp_listener.local_addr()?;

        let (senders, receivers) = PeerSenders::new(&valid.peers);
        if valid.config.testing_faults {
            let seed = valid.config.testing_faults_seed;
            senders.enable_faults(seed, tokio::runtime::Handle::current());
            tracing::warn!(node = %valid.id, seed, "testing faults enabled: the link-fault admin route is on");
        }
        let (input_sender, input_receiver) =
            std::sync::mpsc::sync_channel(valid.config.input_queue_max);
        let counters = Arc::new(LoopCounters::default());
        counters.testing_faults.store(
            valid.config.testing_faults,
            std::sync::atomic::Ordering::Relaxed,
        );
        counters.clock_offset_ms.store(
            valid.config.testing_clock_offset_ms,
            std::sync::atomic::Ordering::Relaxed,
        );
        let (done_sender, done_receiver) = oneshot::channel();
        let commit_mode = valid.raft.commit_mode.describe(valid.peers.len() + 1);
        node_loop::spawn(
            node,
            (input_receiver, input_sender.clone()),
            senders.clone(),
            Arc::clone(&counters),
            node_loop::LoopOptions {
                commit_mode,
                pipelined_fsync: valid.config.pipelined_fsync.enabled(valid.peers.len()),
            },
            done_sender,
        )?;
        let handle = NodeHandle::new(
            valid.id,
            input_sender,
            senders.clone(),
            valid.request_timeout,
            counters,
        )
        .with_size_limits(
            valid.config.key_size_max_bytes,
            valid.config.value_size_max_bytes,
        );

        let (shutdown, shutdown_receiver) = watch::channel(false);
        let transport = transport_config(&valid, peer_address);
        peer::spawn_outgoing(&transport, receivers, &shutdown_receiver);
        let book = AddressBook::new(
            senders.clone(),
            Arc::clone(&transport),
            shutdown_receiver.clone(),
            peer_address,
        );
        tokio::spawn(peer::address_book::run_reconciler(book, handle.clone()));
        tokio::spawn(peer::run_listener(
            peer_listener,
            transport,
            handle.clone(),
            senders,
            shutdown_receiver.clone(),
        ));
        spawn_client_apis(
            &valid,
            &handle,
            resp_listener,
            http_listener,
            shutdown_receiver,
        );
        write_endpoints(&data_dir, resp_address, peer_address, http_address)?;
        tracing::info!(node = %valid.id, %resp_address, %peer_address, "node started");
        Ok(RunningServer {
            id: valid.id,
            resp_address,
            peer_address,
            http_address,
            node: handle,
            shutdown,
            loop_done: Some(done_receiver),
            _lock: lock,
        })
    }

    /// The handle the APIs use.
    #[must_use]
    pub fn node(&self) -> &NodeHandle {
        &self.node
    }

    /// Waits until the node loop stops on its own; its result (`Err`: storage failed).
    pub async fn stopped(&mut self) -> Result<()> {
        match self.loop_done.as_mut() {
            None => std::future::pending().await,
            Some(done) => {
                let result = done.await.unwrap_or(Ok(()));
                self.loop_done = None;
                result
            }
        }
    }

    /// Stops accepting, closes connections, then flushes and stops the node loop.
    pub async fn shutdown(mut self) -> Result<()> {
        self.hand_over_leadership().await;
        let _ = self.shutdown.send(true);
        let node = self.node.clone();
        // `shutdown` may wait for room in a full input queue: off the async threads.
        let _ = tokio::task::spawn_blocking(move || node.shutdown()).await;
        let result = match self.loop_done.take() {
            Some(done) => done.await.unwrap_or(Ok(())),
            None => Ok(()),
        };
        tracing::info!(node = %self.id, "node stopped");
        result
    }

    /// A leader that stops gracefully first hands its leadership to the most caught-up
    /// voter (Raft's leadership transfer): the cluster goes on at once instead of
    /// waiting an election timeout for the silence to be noticed. Bounded by the
    /// transfer's own deadline (one maximum election timeout); any failure only means
    /// the ordinary election follows.
    async fn hand_over_leadership(&self) {
        let leads = self.node.status().await.is_some_and(|status| {
            status.leader == Some(self.id) && status.replication.voters.len() > 1
        });
        if !leads {
            return;
        }
        let request_id = RequestId {
            client: NodeHandle::new_client_id(),
            sequence: 1,
        };
        let request = Request::TransferLeadership { to: None };
        match self.node.request_local(request_id, request).await {
            Reply::LeadershipTransferred { leader, term } => {
                tracing::info!(node = %self.id, %leader, %term, "leadership handed over before stopping");
            }
            other => tracing::info!(node = %self.id, ?other, "leadership not handed over"),
        }
    }
}

fn transport_config(valid: &ValidConfig, peer_address: SocketAddr) -> Arc<PeerTransportConfig> {
    Arc::new(PeerTransportConfig {
        id: valid.id,
        local_ip: peer_address.ip(),
        authenticator: Authenticator::new(
            valid.config.cluster_name.clone(),
            valid.config.cluster_secret.clone().map(String::into_bytes),
        ),
    })
}

/// Starts the client APIs: RESP, and HTTP if it has a listener.
fn spawn_client_apis(
    valid: &ValidConfig,
    handle: &NodeHandle,
    resp_listener: TcpListener,
    http_listener: Option<TcpListener>,
    shutdown: watch::Receiver<bool>,
) {
    let keyspaces = Keyspaces::new(handle.clone());
    let auth = ClientAuth::new(valid.config.client_password.as_deref());
    if let Some(listener) = http_listener {
        let (keyspaces, shutdown) = (keyspaces.clone(), shutdown.clone());
        let auth = auth.clone();
        tokio::spawn(crate::http::run_listener(
            listener, keyspaces, auth, shutdown,
        ));
    }
    tokio::spawn(resp::run_listener(resp_listener, keyspaces, auth, shutdown));
}

/// Binds a listener with `SO_REUSEADDR`, so that a node restarted right after a crash
/// can bind its ports again while its old connections linger in `TIME_WAIT`.
fn bind(address: SocketAddr) -> Result<std::net::TcpListener> {
    /// Connections waiting to be accepted.
    const BACKLOG: u32 = 1024;
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    Ok(socket.listen(BACKLOG)?.into_std()?)
}

async fn open_node(valid: &ValidConfig, directory: PathBuf) -> Result<RaftNode> {
    let id = valid.id;
    let peers: Vec<NodeId> = valid.peers.iter().map(|(id, _)| *id).collect();
    let raft = valid.raft.clone();
    let seed: u64 = rand::random();
    let join = valid.config.join;
    tokio::task::spawn_blocking(move || {
        let joining = join && !holds_state(&directory)?;
        let disk = Disk::os(directory)?;
        if joining {
            tracing::info!(node = %id, "joining: waiting to be added to the cluster");
            RaftNode::open_joining(id, disk, seed, raft)
        } else {
            RaftNode::open(id, peers, disk, seed, raft)
        }
    })
    .await
    .map_err(|error| Error::Io(format!("opening the node panicked: {error}")))?
}

/// Whether a group directory holds any state: then `join` is ignored (a restart).
fn holds_state(directory: &Path) -> Result<bool> {
    match fs::read_dir(directory) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(Error::from(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_group_directory_with_something_in_it_holds_state() {
        let directory = tempfile::tempdir().unwrap();
        let group = directory.path().join(DEFAULT_GROUP_DIRECTORY);
        assert!(!holds_state(&group).unwrap(), "missing");
        fs::create_dir(&group).unwrap();
        assert!(!holds_state(&group).unwrap(), "empty");
        fs::write(group.join("log-0"), b"x").unwrap();
        assert!(holds_state(&group).unwrap(), "a restart: join is ignored");
    }
}
