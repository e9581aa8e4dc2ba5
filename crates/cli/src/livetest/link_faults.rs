//! The `link-faults` nemesis: latency, loss, duplication and reordering of replication
//! messages, through the server's own fault hook.
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

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The route of the fault hook.
const ROUTE: &str = "/v1/admin/testing/link-faults";
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

/// Sets `faults` (`Some`) or clears them (`None`) on the node whose HTTP API is at
/// `address`.
pub fn apply(address: SocketAddr, faults: Option<&serde_json::Value>) -> Result<(), String> {
    let body = faults.map(ToString::to_string).unwrap_or_default();
    let method = if faults.is_some() { "PUT" } else { "DELETE" };
    let mut request = format!(
        "{method} {ROUTE} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(password) = crate::password::client_password() {
        request.push_str(&format!("Authorization: Bearer {password}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    let failed = |error: std::io::Error| format!("{method} {address}{ROUTE}: {error}");
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
        Err(format!("{method} {address}{ROUTE}: answered {status:?}"))
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
    fn an_unreachable_node_is_an_error_not_a_hang() {
        let port = crate::node_process::free_port().unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], port));
        assert!(apply(address, None).is_err());
    }
}
