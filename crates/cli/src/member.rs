//! `replikv member list|add|promote|remove`: grow and shrink a running cluster.
//!
//! A thin client of the HTTP admin routes (`replikv_server::http`'s `members.rs`): every
//! subcommand is one HTTP request to one node, which forwards the change to the leader.
//! The usual way to add a node is two steps: start it with `replikv server --join`
//! (it waits, disrupting nobody), then `replikv member add ID PEER_ADDRESS` makes it a
//! learner that catches up from the log or a snapshot, and `replikv member promote ID`
//! makes it a voter once it caught up (`add --voter` does both, waiting until it can).
//!
//! The node to talk to is `--http host:port`; without it, the first node of a local
//! `replikv cluster up` in `./data`, whose HTTP address the server wrote to
//! `data/n1/endpoints`. The answer is printed as JSON; an error prints the status and
//! the server's reason and exits non-zero.
//!
//! HTTP goes through `reqwest` (rustls, no OpenSSL), the well-kept client the client
//! library uses too, on a current-thread tokio runtime built for the one request.

use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Longest one admin request may take: `add --voter` waits up to 30 s for the learner
/// to catch up, on top of the change's own commit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where `cluster up` keeps node 1's data by default.
const DEFAULT_NODE_DIR: &str = "data/n1";

/// Arguments of `replikv member`.
#[derive(Debug, Args)]
pub struct MemberArgs {
    #[command(subcommand)]
    command: MemberCommand,
    /// A node's HTTP address (default: node 1 of a local `cluster up` in ./data).
    #[arg(long, global = true)]
    http: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum MemberCommand {
    /// Show voters, learners and their peer addresses.
    List,
    /// Add a node (started with `replikv server --join`) as a learner.
    Add {
        /// The new node's id.
        id: u64,
        /// Where the new node listens for peers (its --peer-address).
        peer_address: SocketAddr,
        /// Promote it to voter once it caught up (waits up to 30 s).
        #[arg(long)]
        voter: bool,
    },
    /// Make a learner a voter (refused while it lags behind).
    Promote { id: u64 },
    /// Remove a voter or a learner.
    Remove { id: u64 },
}

/// One admin request: method, path, optional JSON body.
#[derive(Debug, PartialEq, Eq)]
struct AdminRequest {
    method: reqwest::Method,
    path: String,
    body: Option<serde_json::Value>,
}

fn admin_request(command: &MemberCommand) -> AdminRequest {
    let (method, path, body) = match command {
        MemberCommand::List => (reqwest::Method::GET, "/v1/admin/members".to_string(), None),
        MemberCommand::Add {
            id,
            peer_address,
            voter,
        } => (
            reqwest::Method::POST,
            "/v1/admin/members".to_string(),
            Some(serde_json::json!({
                "id": id,
                "peer_address": peer_address.to_string(),
                "voter": voter,
            })),
        ),
        MemberCommand::Promote { id } => (
            reqwest::Method::POST,
            format!("/v1/admin/members/{id}/promote"),
            None,
        ),
        MemberCommand::Remove { id } => (
            reqwest::Method::DELETE,
            format!("/v1/admin/members/{id}"),
            None,
        ),
    };
    AdminRequest { method, path, body }
}

/// Reads the HTTP address a node wrote to `node_dir/endpoints`.
fn http_endpoint(node_dir: &Path) -> Result<SocketAddr, String> {
    let path = node_dir.join(replikv_server::server::ENDPOINTS_FILE_NAME);
    let text = std::fs::read_to_string(&path).map_err(|error| {
        format!(
            "{}: {error} (is `replikv cluster up` running here? else pass --http)",
            path.display()
        )
    })?;
    text.lines()
        .find_map(|line| line.strip_prefix("http="))
        .and_then(|address| address.trim().parse().ok())
        .ok_or_else(|| format!("{}: no http= line", path.display()))
}

pub fn run(args: &MemberArgs) -> ExitCode {
    match run_request(args) {
        Ok(body) => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("replikv member: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run_request(args: &MemberArgs) -> Result<String, String> {
    let address = match args.http {
        Some(address) => address,
        None => http_endpoint(Path::new(DEFAULT_NODE_DIR))?,
    };
    let request = admin_request(&args.command);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(send(address, request))
}

async fn send(address: SocketAddr, request: AdminRequest) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|error| error.to_string())?;
    let url = format!("http://{address}{}", request.path);
    let mut builder = client.request(request.method, &url);
    if let Some(password) = crate::password::client_password() {
        builder = builder.bearer_auth(password);
    }
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let response = builder
        .send()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|error| format!("{url}: {error}"))?;
    if !status.is_success() {
        return Err(format!("{status}: {}", text.trim()));
    }
    // Pretty-print JSON answers; anything else as it came.
    Ok(serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|json| serde_json::to_string_pretty(&json).ok())
        .unwrap_or(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_map_to_admin_routes() {
        let address: SocketAddr = "127.0.0.1:17004".parse().unwrap();
        let cases = [
            (MemberCommand::List, "GET", "/v1/admin/members", None),
            (
                MemberCommand::Add {
                    id: 4,
                    peer_address: address,
                    voter: true,
                },
                "POST",
                "/v1/admin/members",
                Some(
                    serde_json::json!({"id": 4, "peer_address": "127.0.0.1:17004", "voter": true}),
                ),
            ),
            (
                MemberCommand::Promote { id: 4 },
                "POST",
                "/v1/admin/members/4/promote",
                None,
            ),
            (
                MemberCommand::Remove { id: 2 },
                "DELETE",
                "/v1/admin/members/2",
                None,
            ),
        ];
        for (command, method, path, body) in cases {
            let request = admin_request(&command);
            assert_eq!(request.method.as_str(), method, "{command:?}");
            assert_eq!(request.path, path);
            assert_eq!(request.body, body);
        }
    }

    #[test]
    fn the_default_node_is_read_from_its_endpoints_file() {
        let directory = tempfile::tempdir().unwrap();
        assert!(http_endpoint(directory.path()).is_err(), "no file");
        let file = directory.path().join("endpoints");
        std::fs::write(&file, "resp=127.0.0.1:7001\npeer=127.0.0.1:17001\n").unwrap();
        assert!(http_endpoint(directory.path()).is_err(), "no http line");
        std::fs::write(
            &file,
            "resp=127.0.0.1:7001\npeer=127.0.0.1:17001\nhttp=127.0.0.1:8001\n",
        )
        .unwrap();
        assert_eq!(
            http_endpoint(directory.path()).unwrap(),
            "127.0.0.1:8001".parse::<SocketAddr>().unwrap()
        );
    }
}
