//! `replikv server`: run one node of a cluster in this process.
//!
//! Settings come from `--config FILE.toml` (see `replikv_server::config` for the keys)
//! and/or flags; a flag overrides the file. The cluster secret is read from the
//! environment (`REPLIKV_CLUSTER_SECRET`) or the file, never from a flag, so that it
//! does not show in the process list. The client password comes from
//! `REPLIKV_CLIENT_PASSWORD` (preferred), `--client-password` or the file. Logs go to
//! stderr (`RUST_LOG` filters them, `info` by default). The process runs until SIGTERM or Ctrl-C, then shuts down
//! gracefully; it exits non-zero if the node cannot start or its storage fails.

use clap::Args;
use replikv_server::ServerConfig;
use replikv_server::config::PipelinedFsync;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Flags of `replikv server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A TOML file with the node's settings; flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// This node's id (1 or more, unique in the cluster).
    #[arg(long)]
    node_id: Option<u64>,
    /// Where peers connect (outgoing peer connections bind this IP).
    #[arg(long)]
    peer_address: Option<SocketAddr>,
    /// The Redis-protocol address (port 0: any free port, written to DATA_DIR/endpoints).
    #[arg(long)]
    resp_address: Option<SocketAddr>,
    /// The HTTP API's address (none: no HTTP API).
    #[arg(long)]
    http_address: Option<SocketAddr>,
    /// The data directory (locked while the node runs).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Another member, as id=host:port (its peer address); repeat for each.
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// The cluster's name; peers of another cluster are refused.
    #[arg(long)]
    cluster_name: Option<String>,
    /// majority, all, async, "semi-sync any K" or "semi-sync first K".
    #[arg(long)]
    commit_mode: Option<String>,
    #[arg(long)]
    election_timeout_ms_min: Option<u64>,
    #[arg(long)]
    election_timeout_ms_max: Option<u64>,
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// Serve lease reads from the leader's lease (trusts the clock-drift bound).
    #[arg(long)]
    lease_reads: bool,
    /// How long a client request may wait before its outcome is reported unknown.
    #[arg(long)]
    request_timeout_ms: Option<u64>,
    /// Start as a new node that waits to be added (`replikv member add`); `--peer`
    /// names the existing members. Ignored when the data directory holds state.
    #[arg(long)]
    join: bool,
    /// The log's segment size: the log is compacted by whole segments.
    #[arg(long)]
    log_segment_size_max_bytes: Option<u64>,
    /// Applied entries between two durable store commits (the log holds them back from
    /// compaction until then).
    #[arg(long)]
    store_sync_entries: Option<u64>,
    /// How far that interval may stretch while the durable commits write few pages (a
    /// small working set); equal to `--store-sync-entries`, it never stretches.
    #[arg(long)]
    store_sync_entries_max: Option<u64>,
    /// Run the log's fsync on a thread beside the node loop, which handles the next batch
    /// meanwhile: auto (on with peers, off alone; the default), on or off (see
    /// `pipelined_fsync` in the README).
    #[arg(long, value_name = "auto|on|off")]
    pipelined_fsync: Option<PipelinedFsync>,
    /// The password clients must present (RESP AUTH, HTTP bearer token). Prefer the
    /// environment variable REPLIKV_CLIENT_PASSWORD: a flag shows in the process list.
    #[arg(long)]
    client_password: Option<String>,
    /// Live tests only: enable the peer transport's fault hook, set at run time through
    /// `PUT /v1/admin/testing/link-faults` (delay, loss, duplication, reordering), and the
    /// runtime clock offset (`PUT /v1/admin/testing/clock-offset`).
    #[arg(long)]
    testing_faults: bool,
    /// The fault hook's random seed (repeatable fault decisions).
    #[arg(long)]
    testing_faults_seed: Option<u64>,
    /// Milliseconds added to this node's wall clock for key expiry (tests: clock skew).
    #[arg(long, allow_hyphen_values = true)]
    testing_clock_offset_ms: Option<i64>,
}

fn override_with<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}

impl ServerArgs {
    fn config(&self) -> Result<ServerConfig, String> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| format!("{}: {error}", path.display()))?;
                ServerConfig::from_toml(&text).map_err(|error| error.to_string())?
            }
            None => ServerConfig::default(),
        };
        override_with(&mut config.node_id, self.node_id);
        override_with(&mut config.peer_address, self.peer_address);
        override_with(&mut config.resp_address, self.resp_address);
        override_with(&mut config.data_dir, self.data_dir.clone());
        if self.http_address.is_some() {
            config.http_address = self.http_address;
        }
        if !self.peers.is_empty() {
            config.peers.clone_from(&self.peers);
        }
        override_with(&mut config.cluster_name, self.cluster_name.clone());
        override_with(&mut config.commit_mode, self.commit_mode.clone());
        override_with(
            &mut config.election_timeout_ms_min,
            self.election_timeout_ms_min,
        );
        override_with(
            &mut config.election_timeout_ms_max,
            self.election_timeout_ms_max,
        );
        override_with(
            &mut config.heartbeat_interval_ms,
            self.heartbeat_interval_ms,
        );
        override_with(&mut config.request_timeout_ms, self.request_timeout_ms);
        config.lease_reads_enabled |= self.lease_reads;
        config.join |= self.join;
        config.testing_faults |= self.testing_faults;
        override_with(&mut config.testing_faults_seed, self.testing_faults_seed);
        override_with(
            &mut config.testing_clock_offset_ms,
            self.testing_clock_offset_ms,
        );
        override_with(
            &mut config.log_segment_size_max_bytes,
            self.log_segment_size_max_bytes,
        );
        override_with(&mut config.store_sync_entries, self.store_sync_entries);
        override_with(
            &mut config.store_sync_entries_max,
            self.store_sync_entries_max,
        );
        override_with(&mut config.pipelined_fsync, self.pipelined_fsync);
        if let Ok(secret) = std::env::var("REPLIKV_CLUSTER_SECRET") {
            config.cluster_secret = Some(secret);
        }
        if let Ok(password) = std::env::var("REPLIKV_CLIENT_PASSWORD") {
            config.client_password = Some(password);
        }
        if self.client_password.is_some() {
            config.client_password.clone_from(&self.client_password);
        }
        Ok(config)
    }
}

pub fn run(args: &ServerArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let config = match args.config() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("replikv server: {error}");
            return ExitCode::from(2);
        }
    };
    match replikv_server::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("replikv server: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Command {
        #[command(flatten)]
        server: ServerArgs,
    }

    #[test]
    fn the_client_password_flag_overrides_the_environment_and_the_file() {
        let command = Command::parse_from(["replikv", "--client-password", "from the flag"]);
        let config = command.server.config().unwrap();
        assert_eq!(config.client_password.as_deref(), Some("from the flag"));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn testing_faults_are_off_unless_asked_for_and_take_a_seed() {
        let plain = Command::parse_from(["replikv"]).server.config().unwrap();
        assert!(!plain.testing_faults);
        let command =
            Command::parse_from(["replikv", "--testing-faults", "--testing-faults-seed", "42"]);
        let config = command.server.config().unwrap();
        assert!(config.testing_faults);
        assert_eq!(config.testing_faults_seed, 42);
    }
}
