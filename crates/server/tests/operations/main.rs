//! Operations-facing tests of the server: metrics, client authentication, WAIT, bad
//! input, the testing link faults and the pipelined fsync, each against real nodes on
//! loopback in this process.
//!
//! `support.rs` starts clusters on listeners bound to port 0 beforehand (no port races)
//! and talks to them as the outside world does: the `redis` client crate, raw RESP and
//! HTTP bytes over TCP, raw peer frames. Conditions are polled with a deadline, never
//! slept for. One test binary holds every module, so the crate links once.

mod auth;
mod bad_input;
mod info;
mod link_faults;
mod metrics;
mod pipelined_fsync;
#[path = "../support/mod.rs"]
mod support;
mod wait;
