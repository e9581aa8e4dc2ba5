//! The `link-faults` and `clock-skew` nemeses: latency, loss, duplication and
//! reordering of replication messages through the server's own fault hook, and skewed
//! wall clocks through its testing clock offset.
//!
//! This kernel has no `netem`, so the faults a lossy network causes come from the peer
//! transport itself: a node started with `--testing-faults` accepts `PUT
//! /v1/admin/testing/link-faults` on its HTTP API (a default fault for all its outgoing
//! links) and `DELETE` to make every link perfect again (see
//! `replikv_server::http::testing`). The live test starts its nodes that way when
//! `link-faults` is asked for, and for a fault window sets the same drawn fault on every
//! node, then clears it. A request is a few lines of HTTP/1.1 over a plain socket with a
//! timeout (a paused node must not stall the nemesis), authenticated like every client
//! request when `REPLIKV_CLIENT_PASSWORD` is set.
//!
//! `clock-skew` gives every node a drawn offset of up to ±`CLOCK_SKEW_MAX_MS` on the
//! wall clock it uses (`PUT /v1/admin/testing/clock-offset`), and sets it back to 0 at the
//! end of the window. Replication itself never reads a wall clock (elections and leases
//! run on monotonic time passed into the core), so skew reaches only what is defined by
//! wall time: key expiry, decided by the leader's stamps and judged on reads by the
//! serving node's clock.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The route of the fault hook.
const ROUTE: &str = "/v1/admin/testing/link-faults";
/// The route of the testing clock offset.
const CLOCK_ROUTE: &str = "/v1/admin/testing/clock-offset";
/// Largest clock offset `clock-skew` draws, either way.
pub const CLOCK_SKEW_MAX_MS: i64 = 30_000;
/// Longest one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// Most bytes of an answer read (only its status line matters).
const ANSWER_MAX_BYTES: u64 = 64 * 1024;

/// A fault for every link, drawn from `random`: tens of milliseconds of latency and
/// jitter, a few percent of loss, duplication and reordering.
pub fn draw(random: &mut ChaCha8Rng) -> serde_json::Value {
    serde_json::json!({
        "default": {
            "latency_ms": random.random_range(5..=50u64),
            "jitter_ms": random.random_range(0..=30u64),
            "loss_ratio": random.random_range(0.0..0.2f64),
            "duplicate_ratio": random.random_range(0.0..0.1f64),
            "reorder_ratio": random.random_range(0.0..0.2f64),
            "reorder_delay_ms": random.random_range(10..=100u64),
        }
    })
}

/// A clock offset for one node, drawn from `random`, within ±[`CLOCK_SKEW_MAX_MS`].
pub fn draw_clock_offset_ms(random: &mut ChaCha8Rng) -> i64 {
    random.random_range(-CLOCK_SKEW_MAX_MS..=CLOCK_SKEW_MAX_MS)
}

/// Sets `faults` (`Some`) or clears them (`None`) on the node whose HTTP API is at
/// `address`.
pub fn apply(address: SocketAddr, faults: Option<&serde_json::Value>) -> Result<(), String> {
    let body = faults.map(ToString::to_string).unwrap_or_default();
    let method = if faults.is_some() { "PUT" } else { "DELETE" };
    request(address, method, ROUTE, &body)
}

/// Sets the wall-clock offset of the node whose HTTP API is at `address` (0: none).
pub fn set_clock_offset(address: SocketAddr, offset_ms: i64) -> Result<(), String> {
    let body = serde_json::json!({ "offset_ms": offset_ms }).to_string();
    request(address, "PUT", CLOCK_ROUTE, &body)
}

/// Sends one admin request with a JSON `body`; Ok when the node answers 200.
fn request(address: SocketAddr, method: &str, route: &str, body: &str) -> Result<(), String> {
    let mut request = format!(
        "{method} {route} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(password) = crate::password::client_password() {
        request.push_str(&format!("Authorization: Bearer {password}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let failed = |error: std::io::Error| format!("{method} {address}{route}: {error}");
    let mut stream = TcpStream::connect_timeout(&address, REQUEST_TIMEOUT).map_err(failed)?;
    stream
        .set_read_timeout(Some(REQUEST_TIMEOUT))
        .map_err(failed)?;
    stream
        .set_write_timeout(Some(REQUEST_TIMEOUT))
        .map_err(failed)?;
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut answer = String::new();
    let _ = stream.take(ANSWER_MAX_BYTES).read_to_string(&mut answer);
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(format!("{method} {address}{route}: answered {status:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn drawn_faults_stay_within_the_hooks_limits() {
        let mut random = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            let faults = draw(&mut random);
            let link = &faults["default"];
            assert!(link["latency_ms"].as_u64().unwrap() <= 50);
            for ratio in ["loss_ratio", "duplicate_ratio", "reorder_ratio"] {
                let ratio = link[ratio].as_f64().unwrap();
                assert!((0.0..0.2).contains(&ratio));
            }
        }
    }

    #[test]
    fn drawn_clock_offsets_stay_within_the_bound_and_vary() {
        let mut random = ChaCha8Rng::seed_from_u64(2);
        let offsets: Vec<i64> = (0..100)
            .map(|_| draw_clock_offset_ms(&mut random))
            .collect();
        assert!(
            offsets
                .iter()
                .all(|offset| offset.abs() <= CLOCK_SKEW_MAX_MS)
        );
        assert!(offsets.iter().any(|offset| *offset < 0));
        assert!(offsets.iter().any(|offset| *offset > 0));
    }

    #[test]
    fn an_unreachable_node_is_an_error_not_a_hang() {
        let port = crate::ports::free_port().unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(apply(address, None).is_err());
        assert!(set_clock_offset(address, 5).is_err());
    }
}
