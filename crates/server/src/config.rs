//! A node's configuration: who it is, where it listens, who its peers are, how it
//! replicates.
//!
//! The same structure comes from a TOML file (`replikv server --config node.toml`) or
//! from flags, and the CLI lets flags override the file. Field names are the TOML keys:
//!
//! ```toml
//! node_id = 1
//! peer_address = "127.0.0.1:17001"   # where peers connect; outgoing connections bind its IP
//! resp_address = "127.0.0.1:7001"    # the Redis-protocol port (port 0: any free port)
//! http_address = "127.0.0.1:8001"    # optional: the HTTP API
//! data_dir = "data/n1"
//! peers = ["2=127.0.0.1:17002", "3=127.0.0.1:17003"]
//! cluster_name = "replikv"
//! # cluster_secret = "..."           # peers must prove it (HMAC) to join
//! # client_password = "..."          # clients must AUTH / send a bearer token
//! commit_mode = "majority"           # all, async, semi-sync any K, semi-sync first K
//! election_timeout_ms_min = 300
//! election_timeout_ms_max = 600
//! heartbeat_interval_ms = 75
//! lease_reads_enabled = false
//! store_sync_entries = 4096          # applied entries between two durable store commits
//! store_sync_entries_max = 16384     # ... stretched up to this while the commits stay small
//! pipelined_fsync = "auto"           # the log's fsync beside the node loop: on, off, auto
//! request_timeout_ms = 5000
//! # join = true                      # a new node that waits to be added (see below)
//! # log_segment_size_max_bytes = 67108864  # smaller: compacts (snapshots) sooner
//! key_size_max_bytes = 4096          # at most replikv_core::limits::KEY_SIZE_MAX_BYTES
//! value_size_max_bytes = 1048576     # at most replikv_core::limits::VALUE_SIZE_MAX_BYTES
//! # testing_faults = true            # live tests only: the testing admin routes
//! # testing_faults_seed = 0          # the fault hook's random seed
//! # testing_clock_offset_ms = 0      # skews this node's wall clock for key expiry (tests only)
//! ```
//!
//! `join = true` (`replikv server --join`) starts a node that is not a member yet: it
//! opens with `RaftNode::open_joining`, knows no configuration, never campaigns, and
//! waits until an operator adds it (`replikv member add`); its `peers` name the
//! existing members. A node whose data directory already holds state ignores `join`:
//! that is a restart, and its configuration comes from its log and store.
//!
//! [`ServerConfig::validate`] checks everything a node needs before it touches its data
//! directory, and turns the replication settings into a [`RaftConfig`] checked by the
//! replication crate's own validation. Timeouts default higher than the simulator's:
//! a real disk's fsync and a loaded machine's scheduling add milliseconds the
//! simulator does not have, and a needless election costs more than a slower failover.
//!
//! `store_sync_entries` defaults to [`STORE_SYNC_ENTRIES_DEFAULT`], the replication
//! crate's default (64 there until 2026-11-22). The store is never the source of truth
//! (the log is synced before anything is acknowledged, and a restart re-applies the log
//! from the store's durable position), so the setting trades nothing but re-apply work
//! after a crash and log entries held back from compaction. What it buys is large: every
//! durable store commit writes each B-tree page changed since the last one, and with
//! writes spread over many keys that is about one page write per applied entry at 64;
//! at 1,024 most pages take many writes between two commits. `store_sync_entries_max`
//! (default [`STORE_SYNC_ENTRIES_MAX_DEFAULT`]) lets that interval double while each
//! durable commit writes few pages (a working set that fits in a few B-tree pages), and
//! sends it back to `store_sync_entries` when one writes many (writes scattered over a
//! large keyspace, whose commits grow with the interval).
//!
//! `pipelined_fsync` runs the log's group-commit fsync on a thread of its own while the
//! node loop handles the next batch (see `node_loop.rs`). `auto`, the default, turns it
//! on for a node with peers and off for a node alone, after paired measurements on the
//! 2-core VM (2026-11-22, `scripts/bench-cost`, 64 closed-loop clients):
//!
//! - 3 nodes, `majority`: on is 19–34 % more SETs per second, 22–31 % less CPU per SET
//!   and a lower p99. A follower's loop goes on receiving appends while its fsync runs,
//!   so the cluster syncs fewer, larger batches (128 fsyncs per 1,000 SETs over the three
//!   nodes instead of 178), and the leader sends the next batch to the followers while
//!   its own fsync runs.
//! - 1 node: on is 5–15 % fewer SETs per second. Each fsync covers a few more writes
//!   (34–38 fsyncs per 1,000 SETs instead of 46), but the hand-offs to the sync thread
//!   and back double the context switches (447–529 per 1,000 SETs instead of 213) and
//!   cost more CPU (23–26 ms per 1,000 SETs instead of 19–21) than the overlap wins on a
//!   machine with no idle core to overlap into.

use crate::auth::CLIENT_PASSWORD_SIZE_MAX_BYTES;
use crate::peer::CLUSTER_NAME_SIZE_MAX_BYTES;
use crate::peer::PEER_FRAME_SIZE_MAX_BYTES;
use replikv_core::NodeId;
use replikv_core::error::{Error, Result};
use replikv_core::limits::{KEY_SIZE_MAX_BYTES, LOG_RECORD_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use replikv_replication::single_leader::{CommitMode, RaftConfig};
use replikv_storage::log::{LogOptions, SEGMENT_SIZE_MAX_BYTES_LIMIT};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Applied entries between two durable commits of a server's store, by default: the
/// replication crate's default, where the measurements behind it are.
pub use replikv_replication::single_leader::{
    STORE_SYNC_ENTRIES_DEFAULT, STORE_SYNC_ENTRIES_MAX_DEFAULT,
};
use std::path::PathBuf;
use std::time::Duration;

/// Most peers one node may have.
pub const PEERS_MAX: usize = 64;

/// Longest accepted request timeout.
pub const REQUEST_TIMEOUT_LIMIT_MS: u64 = 600_000;

/// Most inputs waiting for the node loop; beyond, requests are refused (`Overloaded`)
/// and peer messages dropped.
pub const INPUT_QUEUE_LIMIT: usize = 1 << 20;

/// One node's configuration; see the module documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub node_id: u64,
    pub peer_address: SocketAddr,
    pub resp_address: SocketAddr,
    /// The HTTP API's address; none: no HTTP API.
    pub http_address: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// The other members, as `id=host:port` (their peer addresses).
    pub peers: Vec<String>,
    pub cluster_name: String,
    pub cluster_secret: Option<String>,
    /// When set, RESP clients must `AUTH` and HTTP clients send `Authorization: Bearer`.
    pub client_password: Option<String>,
    pub commit_mode: String,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    pub heartbeat_interval_ms: u64,
    pub lease_reads_enabled: bool,
    pub store_sync_entries: u64,
    /// How far the interval between two durable store commits may stretch while they
    /// write few pages (see `RaftConfig::store_sync_entries_max`).
    pub store_sync_entries_max: u64,
    /// The log's fsync on the node's sync thread, overlapping the next batch; see the
    /// module documentation.
    pub pipelined_fsync: PipelinedFsync,
    pub request_timeout_ms: u64,
    pub input_queue_max: usize,
    /// Start as a node waiting to be added to an existing cluster (ignored on restart).
    pub join: bool,
    /// The replication log's segment size; the log is compacted by whole segments, so
    /// this is also how soon a node compacts (and a new member needs a snapshot).
    pub log_segment_size_max_bytes: u64,
    /// Largest key and value a client may send (lower than or equal to the core limits).
    pub key_size_max_bytes: usize,
    pub value_size_max_bytes: usize,
    /// Live tests only: the testing admin routes (`/v1/admin/testing/...`): the peer
    /// transport's fault hook (`link-faults`, see `peer/faults.rs`) and the runtime clock
    /// offset (`clock-offset`). Never on in production.
    pub testing_faults: bool,
    /// The fault hook's random seed, so a run's fault decisions can be repeated.
    pub testing_faults_seed: u64,
    /// Milliseconds added to the wall clock this node uses for key expiry, within
    /// ±[`TESTING_CLOCK_OFFSET_LIMIT_MS`]: a test's clock skew.
    pub testing_clock_offset_ms: i64,
}

/// Whether the log's fsync runs beside the node loop; see the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PipelinedFsync {
    /// On for a node with peers, off for a node alone.
    #[default]
    Auto,
    On,
    Off,
}

impl PipelinedFsync {
    /// Whether a node with `peer_count` peers runs its fsync beside its loop.
    #[must_use]
    pub fn enabled(self, peer_count: usize) -> bool {
        match self {
            PipelinedFsync::Auto => peer_count > 0,
            PipelinedFsync::On => true,
            PipelinedFsync::Off => false,
        }
    }
}

impl std::str::FromStr for PipelinedFsync {
    type Err = Error;

    fn from_str(text: &str) -> Result<PipelinedFsync> {
        match text {
            "auto" => Ok(PipelinedFsync::Auto),
            "on" => Ok(PipelinedFsync::On),
            "off" => Ok(PipelinedFsync::Off),
            _ => invalid(format!(
                "pipelined_fsync {text:?}: expected auto, on or off"
            )),
        }
    }
}

/// Largest testing clock offset, either way (one day).
pub const TESTING_CLOCK_OFFSET_LIMIT_MS: i64 = 86_400_000;

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            node_id: 1,
            peer_address: SocketAddr::from(([127, 0, 0, 1], 17001)),
            resp_address: SocketAddr::from(([127, 0, 0, 1], 7001)),
            http_address: None,
            data_dir: PathBuf::from("data/n1"),
            peers: Vec::new(),
            cluster_name: "replikv".into(),
            cluster_secret: None,
            client_password: None,
            commit_mode: "majority".into(),
            election_timeout_ms_min: 300,
            election_timeout_ms_max: 600,
            heartbeat_interval_ms: 75,
            lease_reads_enabled: false,
            store_sync_entries: STORE_SYNC_ENTRIES_DEFAULT,
            store_sync_entries_max: STORE_SYNC_ENTRIES_MAX_DEFAULT,
            pipelined_fsync: PipelinedFsync::Auto,
            request_timeout_ms: 5000,
            input_queue_max: 16 * 1024,
            join: false,
            log_segment_size_max_bytes: LogOptions::default().segment_size_max_bytes,
            key_size_max_bytes: KEY_SIZE_MAX_BYTES,
            value_size_max_bytes: VALUE_SIZE_MAX_BYTES,
            testing_faults: false,
            testing_faults_seed: 0,
            testing_clock_offset_ms: 0,
        }
    }
}

/// A configuration that passed [`ServerConfig::validate`].
#[derive(Clone, Debug)]
pub struct ValidConfig {
    pub config: ServerConfig,
    pub id: NodeId,
    pub peers: Vec<(NodeId, SocketAddr)>,
    pub raft: RaftConfig,
    pub request_timeout: Duration,
}

fn invalid<T>(text: impl Into<String>) -> Result<T> {
    Err(Error::InvalidInput(text.into()))
}

/// Parses `id=host:port`.
pub fn parse_peer(text: &str) -> Result<(NodeId, SocketAddr)> {
    let Some((id, address)) = text.split_once('=') else {
        return invalid(format!("peer {text:?}: expected id=host:port"));
    };
    let id: u64 = id
        .trim()
        .parse()
        .map_err(|_| Error::InvalidInput(format!("peer {text:?}: the id is not a number")))?;
    let address: SocketAddr = address
        .trim()
        .parse()
        .map_err(|_| Error::InvalidInput(format!("peer {text:?}: bad address")))?;
    if id == 0 {
        return invalid(format!("peer {text:?}: node id 0 is reserved"));
    }
    Ok((NodeId(id), address))
}

impl ServerConfig {
    /// Parses a TOML file's text.
    pub fn from_toml(text: &str) -> Result<ServerConfig> {
        toml::from_str(text).map_err(|error| Error::InvalidInput(format!("config: {error}")))
    }

    /// Checks the configuration; see the module documentation.
    pub fn validate(&self) -> Result<ValidConfig> {
        if self.node_id == 0 {
            return invalid("node_id 0 is reserved");
        }
        let id = NodeId(self.node_id);
        let mut peers = Vec::new();
        for text in &self.peers {
            let (peer, address) = parse_peer(text)?;
            if peer == id {
                continue; // a shared member list may name this node too
            }
            if peers.iter().any(|(known, _)| *known == peer) {
                return invalid(format!("peer {peer} listed twice"));
            }
            peers.push((peer, address));
        }
        if peers.len() > PEERS_MAX {
            return invalid(format!("at most {PEERS_MAX} peers"));
        }
        if self.cluster_name.is_empty() || self.cluster_name.len() > CLUSTER_NAME_SIZE_MAX_BYTES {
            return invalid(format!(
                "cluster_name must be 1..={CLUSTER_NAME_SIZE_MAX_BYTES} bytes"
            ));
        }
        if self.testing_clock_offset_ms.unsigned_abs()
            > TESTING_CLOCK_OFFSET_LIMIT_MS.unsigned_abs()
        {
            return invalid(format!(
                "testing_clock_offset_ms must be within ±{TESTING_CLOCK_OFFSET_LIMIT_MS}"
            ));
        }
        if self.cluster_secret.as_ref().is_some_and(String::is_empty) {
            return invalid("cluster_secret must not be empty when set");
        }
        if self.client_password.as_ref().is_some_and(|password| {
            password.is_empty() || password.len() > CLIENT_PASSWORD_SIZE_MAX_BYTES
        }) {
            return invalid(format!(
                "client_password must be 1..={CLIENT_PASSWORD_SIZE_MAX_BYTES} bytes when set"
            ));
        }
        if !(1..=REQUEST_TIMEOUT_LIMIT_MS).contains(&self.request_timeout_ms) {
            return invalid(format!(
                "request_timeout_ms outside 1..={REQUEST_TIMEOUT_LIMIT_MS}"
            ));
        }
        if !(1..=INPUT_QUEUE_LIMIT).contains(&self.input_queue_max) {
            return invalid(format!("input_queue_max outside 1..={INPUT_QUEUE_LIMIT}"));
        }
        if !(1..=SEGMENT_SIZE_MAX_BYTES_LIMIT).contains(&self.log_segment_size_max_bytes) {
            return invalid(format!(
                "log_segment_size_max_bytes outside 1..={SEGMENT_SIZE_MAX_BYTES_LIMIT}"
            ));
        }
        if !(1..=KEY_SIZE_MAX_BYTES).contains(&self.key_size_max_bytes) {
            return invalid(format!(
                "key_size_max_bytes outside 1..={KEY_SIZE_MAX_BYTES}"
            ));
        }
        if !(1..=VALUE_SIZE_MAX_BYTES).contains(&self.value_size_max_bytes) {
            return invalid(format!(
                "value_size_max_bytes outside 1..={VALUE_SIZE_MAX_BYTES}"
            ));
        }
        let raft = self.raft_config()?;
        raft.commit_mode.validate(peers.len() + 1)?;
        Ok(ValidConfig {
            config: self.clone(),
            id,
            peers,
            raft,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
        })
    }

    fn raft_config(&self) -> Result<RaftConfig> {
        let commit_mode: CommitMode = self.commit_mode.parse()?;
        let raft = RaftConfig {
            commit_mode,
            election_timeout_ms_min: self.election_timeout_ms_min,
            election_timeout_ms_max: self.election_timeout_ms_max,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            lease_reads_enabled: self.lease_reads_enabled,
            store_sync_entries: self.store_sync_entries,
            store_sync_entries_max: self.store_sync_entries_max,
            log_options: LogOptions {
                segment_size_max_bytes: self.log_segment_size_max_bytes,
                ..LogOptions::default()
            },
            ..RaftConfig::default()
        };
        raft.validate()?;
        // One append (its byte limit plus one entry of any size) or one snapshot chunk
        // must fit in a peer frame, with room for the message's own fields.
        let append_bytes = raft.append_size_max_bytes + LOG_RECORD_SIZE_MAX_BYTES;
        let largest = append_bytes.max(raft.snapshot_chunk_size_max_bytes);
        if largest + 64 * 1024 > PEER_FRAME_SIZE_MAX_BYTES {
            return invalid("replication batches would exceed the peer frame size limit");
        }
        Ok(raft)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_validates() {
        let text = r#"
            node_id = 2
            peer_address = "127.0.0.1:17002"
            resp_address = "127.0.0.1:0"
            data_dir = "d"
            peers = ["1=127.0.0.1:17001", "2=127.0.0.1:17002", "3=127.0.0.1:17003"]
            commit_mode = "semi-sync any 1"
        "#;
        let config = ServerConfig::from_toml(text).unwrap();
        let valid = config.validate().unwrap();
        assert_eq!(valid.id, NodeId(2));
        assert_eq!(
            valid.peers.iter().map(|(id, _)| id.0).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(valid.raft.election_timeout_ms_min, 300);
    }

    #[test]
    fn join_and_the_log_segment_size_come_from_toml() {
        let config =
            ServerConfig::from_toml("join = true\nlog_segment_size_max_bytes = 4096").unwrap();
        assert!(config.join);
        let valid = config.validate().unwrap();
        assert_eq!(valid.raft.log_options.segment_size_max_bytes, 4096);
        assert!(!ServerConfig::default().join);
        let zero = ServerConfig {
            log_segment_size_max_bytes: 0,
            ..ServerConfig::default()
        };
        assert!(zero.validate().is_err(), "a zero segment size is refused");
    }

    #[test]
    fn pipelined_fsync_is_on_with_peers_by_default_and_set_by_toml() {
        let auto = ServerConfig::default().pipelined_fsync;
        assert!(auto.enabled(2) && !auto.enabled(0));
        for (text, with_peers, alone) in [("on", true, true), ("off", false, false)] {
            let config = ServerConfig::from_toml(&format!("pipelined_fsync = {text:?}")).unwrap();
            assert_eq!(config.pipelined_fsync.enabled(2), with_peers, "{text}");
            assert_eq!(config.pipelined_fsync.enabled(0), alone, "{text}");
            assert_eq!(
                text.parse::<PipelinedFsync>().unwrap(),
                config.pipelined_fsync
            );
        }
        assert!(ServerConfig::from_toml("pipelined_fsync = \"sometimes\"").is_err());
        let error = "sometimes".parse::<PipelinedFsync>().unwrap_err();
        assert!(error.to_string().contains("auto, on or off"), "{error}");
    }

    #[test]
    fn bad_configurations_are_refused_with_a_reason() {
        assert!(
            ServerConfig::from_toml("node_idd = 1").is_err(),
            "unknown field"
        );
        let cases = [
            ServerConfig {
                node_id: 0,
                ..ServerConfig::default()
            },
            ServerConfig {
                peers: vec!["x".into()],
                ..ServerConfig::default()
            },
            ServerConfig {
                peers: vec!["0=127.0.0.1:1".into()],
                ..ServerConfig::default()
            },
            ServerConfig {
                peers: vec!["2=127.0.0.1:1".into(), "2=127.0.0.1:2".into()],
                ..ServerConfig::default()
            },
            ServerConfig {
                commit_mode: "sometimes".into(),
                ..ServerConfig::default()
            },
            ServerConfig {
                heartbeat_interval_ms: 1000,
                ..ServerConfig::default()
            },
            ServerConfig {
                cluster_name: String::new(),
                ..ServerConfig::default()
            },
            ServerConfig {
                request_timeout_ms: 0,
                ..ServerConfig::default()
            },
            ServerConfig {
                client_password: Some(String::new()),
                ..ServerConfig::default()
            },
            ServerConfig {
                key_size_max_bytes: KEY_SIZE_MAX_BYTES + 1,
                ..ServerConfig::default()
            },
            ServerConfig {
                value_size_max_bytes: 0,
                ..ServerConfig::default()
            },
        ];
        for config in cases {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
