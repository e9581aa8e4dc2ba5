//! A blocking face of [`Client`], for programs without an async runtime (the `replikv`
//! command line, scripts, tests that drive processes).
//!
//! It owns a single-threaded tokio runtime and runs each call to completion on it, so
//! its behavior (discovery, retries, session token) is exactly the async client's; it
//! only trades concurrency for simplicity. Do not call it from inside an async runtime
//! (blocking a runtime's thread on another runtime panics in tokio): use [`Client`]
//! there.

use crate::{CasOutcome, Client, ClientOptions, ClusterStatus, Consistency, Result};
use crate::{ClientError, LogPosition, Versioned, Written};

/// [`Client`], blocking; see the module documentation.
#[derive(Debug)]
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl BlockingClient {
    /// See [`Client::new`].
    pub fn new(endpoints: &[impl AsRef<str>], options: ClientOptions) -> Result<BlockingClient> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| ClientError::Config(format!("runtime: {error}")))?;
        let client = {
            // reqwest's client must be built inside a runtime context.
            let _entered = runtime.enter();
            Client::new(endpoints, options)?
        };
        Ok(BlockingClient { runtime, client })
    }

    /// The async client inside.
    #[must_use]
    pub fn inner(&self) -> &Client {
        &self.client
    }

    /// See [`Client::session_position`].
    #[must_use]
    pub fn session_position(&self) -> LogPosition {
        self.client.session_position()
    }

    /// See [`Client::get`].
    pub fn get(&self, key: &str, consistency: Consistency) -> Result<Option<Versioned>> {
        self.runtime.block_on(self.client.get(key, consistency))
    }

    /// See [`Client::put`].
    pub fn put(&self, key: &str, value: impl AsRef<[u8]>) -> Result<Written> {
        self.runtime.block_on(self.client.put(key, value))
    }

    /// See [`Client::delete`].
    pub fn delete(&self, key: &str) -> Result<Written> {
        self.runtime.block_on(self.client.delete(key))
    }

    /// See [`Client::compare_and_set`].
    pub fn compare_and_set(
        &self,
        key: &str,
        expected: Option<&str>,
        new: &str,
    ) -> Result<CasOutcome> {
        self.runtime
            .block_on(self.client.compare_and_set(key, expected, new))
    }

    /// See [`Client::compare_and_set_version`].
    pub fn compare_and_set_version(
        &self,
        key: &str,
        expected: u64,
        new: impl AsRef<[u8]>,
    ) -> Result<CasOutcome> {
        self.runtime
            .block_on(self.client.compare_and_set_version(key, expected, new))
    }

    /// See [`Client::status`].
    #[must_use]
    pub fn status(&self) -> ClusterStatus {
        self.runtime.block_on(self.client.status())
    }
}
