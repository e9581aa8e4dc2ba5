//! The client password, for every subcommand that talks to a cluster.
//!
//! A cluster started with `REPLIKV_CLIENT_PASSWORD` (or `--client-password`) refuses
//! clients that do not present it: RESP connections must `AUTH`, HTTP requests carry
//! `Authorization: Bearer`. The client-side subcommands (`status`, `get`, `put`, `del`,
//! `cas`, `member`, `bench`) and `cluster up`'s leader probe read the same environment
//! variable — never a flag, since a flag shows in every local user's process list — so
//! that one `export` makes the whole toolbox work against a protected cluster.

use std::time::Duration;

/// The client password from `REPLIKV_CLIENT_PASSWORD`, when set and not empty.
pub fn client_password() -> Option<String> {
    std::env::var("REPLIKV_CLIENT_PASSWORD")
        .ok()
        .filter(|password| !password.is_empty())
}

/// A blocking RESP connection to `address` (`host:port`) for short probes, with
/// `timeout` on connecting and on every reply, authenticated when a password is set.
pub fn probe_connection(address: &str, timeout: Duration) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://{address}/")).ok()?;
    let mut connection = client.get_connection_with_timeout(timeout).ok()?;
    connection.set_read_timeout(Some(timeout)).ok()?;
    if let Some(password) = client_password() {
        redis::cmd("AUTH")
            .arg(password)
            .query::<()>(&mut connection)
            .ok()?;
    }
    Some(connection)
}
