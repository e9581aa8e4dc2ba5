//! `replikv status`, `get`, `put`, `del` and `cas`: the cluster from a shell, through the
//! `replikv-client` library (leader discovery, idempotent retries, session tokens).
//!
//! Each command is one short-lived client, so the session guarantees hold within one
//! command only; what these commands add over `curl` is that they find the leader,
//! retry safely and say clearly what happened. Endpoints (HTTP addresses) come from
//! `--endpoints a,b,c` or, by default, from the `endpoints` files that the nodes of a
//! local `replikv cluster up` wrote under `--data-dir` (`./data/*/endpoints`, the
//! `http=` line). When the cluster requires a client password, these commands (and
//! `replikv member`) send `REPLIKV_CLIENT_PASSWORD` as a bearer token.
//!
//! Exit codes, so that scripts can branch: 0 success; 1 a definite "no" (`get` of an
//! absent key, a `cas` that did not swap); 2 an error, with the reason on stderr and,
//! for a write, whether it may have been applied.

use clap::Args;
use replikv_client::{BlockingClient, CasOutcome, ClientError, ClientOptions, Consistency};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Most `endpoints` files read from a data directory.
const DATA_DIRECTORIES_MAX: usize = 64;

/// Where the cluster is.
#[derive(Debug, Args)]
pub struct Connection {
    /// The nodes' HTTP addresses, comma-separated (host:port). Default: read from the
    /// `endpoints` files under --data-dir.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// The data directory of a local `replikv cluster up`, whose nodes' `endpoints`
    /// files name their HTTP addresses.
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key (UTF-8; the RESP API takes binary keys).
    key: String,
    /// linearizable (leader), lease (leader), follower or session (any node).
    #[arg(long, default_value = "linearizable", value_parser = parse_consistency)]
    consistency: Consistency,
    /// Also print the version and the position read at (to stderr).
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key (UTF-8; the RESP API takes binary keys).
    key: String,
    /// The value.
    value: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    /// The key (UTF-8; the RESP API takes binary keys).
    key: String,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Debug, Args)]
pub struct CasArgs {
    /// The key (UTF-8; the RESP API takes binary keys).
    key: String,
    /// The new value.
    new: String,
    /// Swap only if the key holds this value.
    #[arg(long, conflicts_with_all = ["absent", "if_version"], required_unless_present_any = ["absent", "if_version"])]
    expected: Option<String>,
    /// Swap only if the key is absent.
    #[arg(long)]
    absent: bool,
    /// Swap only if the key's version is still this (0: never written).
    #[arg(long, conflicts_with = "absent")]
    if_version: Option<u64>,
    #[command(flatten)]
    connection: Connection,
}

fn parse_consistency(text: &str) -> Result<Consistency, String> {
    text.parse()
}

/// The HTTP endpoints named in the `endpoints` files of `data_dir`'s subdirectories,
/// in directory-name order.
pub fn endpoints_in(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut directories: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .take(DATA_DIRECTORIES_MAX)
        .collect();
    directories.sort();
    directories
        .iter()
        .filter_map(|directory| {
            let file = directory.join(replikv_server::server::ENDPOINTS_FILE_NAME);
            http_endpoint(&std::fs::read_to_string(file).ok()?)
        })
        .collect()
}

/// The `http=` line of an `endpoints` file.
fn http_endpoint(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("http="))
        .map(|address| address.trim().to_owned())
        .filter(|address| !address.is_empty())
}

fn connect(connection: &Connection) -> Result<BlockingClient, String> {
    let endpoints = if connection.endpoints.is_empty() {
        endpoints_in(&connection.data_dir)
    } else {
        connection.endpoints.clone()
    };
    if endpoints.is_empty() {
        return Err(format!(
            "no endpoints: pass --endpoints host:port,... or run this where `replikv \
             cluster up` keeps its data (no endpoints files with an http address under {})",
            connection.data_dir.display()
        ));
    }
    let options = ClientOptions {
        password: crate::password::client_password(),
        ..ClientOptions::default()
    };
    BlockingClient::new(&endpoints, options).map_err(|error| error.to_string())
}

/// Prints `error` for command `name` and returns exit code 2.
fn failed(name: &str, error: &str) -> ExitCode {
    eprintln!("replikv {name}: {error}");
    ExitCode::from(2)
}

fn client_error(name: &str, error: &ClientError) -> ExitCode {
    let consequence = if error.outcome_unknown() {
        " (the write may or may not have been applied; it was applied at most once)"
    } else {
        ""
    };
    failed(name, &format!("{error}{consequence}"))
}

pub fn status(args: &StatusArgs) -> ExitCode {
    let client = match connect(&args.connection) {
        Ok(client) => client,
        Err(error) => return failed("status", &error),
    };
    let status = client.status();
    print!("{}", status.table());
    if status.reachable().next().is_none() {
        return failed("status", "no node answered");
    }
    ExitCode::SUCCESS
}

pub fn get(args: &GetArgs) -> ExitCode {
    let client = match connect(&args.connection) {
        Ok(client) => client,
        Err(error) => return failed("get", &error),
    };
    match client.get(&args.key, args.consistency) {
        Ok(Some(read)) => {
            let mut stdout = std::io::stdout().lock();
            let written = stdout
                .write_all(&read.value)
                .and_then(|()| stdout.write_all(b"\n"));
            if let Err(error) = written {
                return failed("get", &error.to_string());
            }
            if args.verbose {
                eprintln!(
                    "version {} at position {} from {}",
                    read.version, read.position, read.served_by
                );
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("(absent)");
            ExitCode::from(1)
        }
        Err(error) => client_error("get", &error),
    }
}

pub fn put(args: &PutArgs) -> ExitCode {
    let client = match connect(&args.connection) {
        Ok(client) => client,
        Err(error) => return failed("put", &error),
    };
    match client.put(&args.key, &args.value) {
        Ok(written) => {
            println!("OK version {} at {}", written.version, written.position);
            ExitCode::SUCCESS
        }
        Err(error) => client_error("put", &error),
    }
}

pub fn del(args: &DelArgs) -> ExitCode {
    let client = match connect(&args.connection) {
        Ok(client) => client,
        Err(error) => return failed("del", &error),
    };
    match client.delete(&args.key) {
        Ok(written) => {
            println!("OK version {} at {}", written.version, written.position);
            ExitCode::SUCCESS
        }
        Err(error) => client_error("del", &error),
    }
}

pub fn cas(args: &CasArgs) -> ExitCode {
    let client = match connect(&args.connection) {
        Ok(client) => client,
        Err(error) => return failed("cas", &error),
    };
    let outcome = match args.if_version {
        Some(version) => client.compare_and_set_version(&args.key, version, &args.new),
        None => client.compare_and_set(&args.key, args.expected.as_deref(), &args.new),
    };
    match outcome {
        Ok(CasOutcome::Swapped(written)) => {
            println!(
                "swapped: version {} at {}",
                written.version, written.position
            );
            ExitCode::SUCCESS
        }
        Ok(CasOutcome::Differs) => {
            println!("not swapped: the current value (or version) differs");
            ExitCode::from(1)
        }
        Ok(CasOutcome::Absent) => {
            println!("not swapped: the key is absent");
            ExitCode::from(1)
        }
        Err(error) => client_error("cas", &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_address_is_read_from_an_endpoints_file() {
        let text = "resp=127.0.0.1:7001\npeer=127.0.0.1:17001\nhttp=127.0.0.1:8001\n";
        assert_eq!(http_endpoint(text).as_deref(), Some("127.0.0.1:8001"));
        assert_eq!(http_endpoint("resp=127.0.0.1:7001\n"), None);
        assert_eq!(http_endpoint("http=\n"), None);
    }

    #[test]
    fn endpoints_are_gathered_from_a_data_directory_in_order() {
        let directory = tempfile::tempdir().unwrap();
        for (node, http) in [("n2", Some("b:2")), ("n1", Some("a:1")), ("n3", None)] {
            let node_dir = directory.path().join(node);
            std::fs::create_dir(&node_dir).unwrap();
            let mut text = String::from("resp=x:1\n");
            if let Some(http) = http {
                text.push_str(&format!("http={http}\n"));
            }
            std::fs::write(node_dir.join("endpoints"), text).unwrap();
        }
        std::fs::write(directory.path().join("n1.log"), "a log, not a node").unwrap();
        assert_eq!(endpoints_in(directory.path()), ["a:1", "b:2"]);
        assert!(endpoints_in(&directory.path().join("missing")).is_empty());
    }
}
