//! Loopback ports for the `replikv server` processes that tests and benchmarks start.
//!
//! The usual trick, binding port 0 and closing the listener again, races: the kernel
//! takes the port from its *ephemeral* range (`net.ipv4.ip_local_port_range`), the same
//! range every outgoing connection's source port comes from. Between "free a moment
//! ago" and the node's own bind, any client connecting anywhere on the machine may take
//! it; worse, a node killed on purpose leaves its port open for the same reuse while it
//! is down, and its restart then fails with "address already in use". With a dozen live
//! tests running side by side, each opening hundreds of connections, CI hit exactly
//! that.
//!
//! So the ports come from just *below* the ephemeral range, which the kernel never
//! hands out by itself. Every process of this machine that starts nodes draws them from
//! one counter in a small file, `/tmp/replikv-loopback-ports`, advanced under an
//! exclusive file lock: processes running at once get distinct ports, and a port comes
//! round again only after `PORTS_IN_ROTATION` later draws. A port something else
//! listens on (another program chose it by hand) fails the bind check and is skipped.
//!
//! The file is shared by `src/` and the integration tests (`tests/support`), which
//! include it by path: the binary crate has no library to import it from.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;

/// How many ports the rotation holds: far more than all the nodes a test run keeps
/// alive at once, so a port is never handed out again while its first holder runs.
const PORTS_IN_ROTATION: u16 = 8_192;

/// The first ephemeral port when the kernel does not say (Linux's default).
const EPHEMERAL_FIRST_DEFAULT: u16 = 32_768;

/// The lowest port the rotation may use (below are well-known and privileged ports).
const ROTATION_FIRST_MIN: u16 = 10_000;

/// How many candidates one draw checks before it gives up.
const DRAW_ATTEMPTS_MAX: u16 = 256;

/// A loopback port below the ephemeral range that no other process drawing from the
/// rotation holds and nothing listened on when it was drawn.
pub fn free_port() -> Result<u16, String> {
    let (first, count) = rotation();
    let mut counter = Counter::open()?;
    let mut failure = None;
    let candidates = std::iter::from_fn(|| match counter.next() {
        Ok(draw) => Some(first + draw % count),
        Err(error) => {
            failure = Some(error);
            None
        }
    });
    let port = first_free(candidates.take(usize::from(DRAW_ATTEMPTS_MAX)));
    match (port, failure) {
        (Some(port), _) => Ok(port),
        (None, Some(error)) => Err(error),
        (None, None) => Err(format!(
            "no free loopback port in {first}..{} after {DRAW_ATTEMPTS_MAX} attempts",
            first + count
        )),
    }
}

/// The first of `candidates` that a listener on 127.0.0.1 can bind right now.
fn first_free(candidates: impl Iterator<Item = u16>) -> Option<u16> {
    candidates
        .into_iter()
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
}

/// The rotation's first port and its length: the `PORTS_IN_ROTATION` ports just below
/// the ephemeral range, or as many as fit above `ROTATION_FIRST_MIN`.
fn rotation() -> (u16, u16) {
    let ephemeral_first = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(EPHEMERAL_FIRST_DEFAULT);
    let first = ephemeral_first
        .saturating_sub(PORTS_IN_ROTATION)
        .max(ROTATION_FIRST_MIN);
    match ephemeral_first.checked_sub(first) {
        Some(count) if count > 0 => (first, count),
        // An ephemeral range starting very low: use ports above it instead.
        _ => (u16::MAX - PORTS_IN_ROTATION, PORTS_IN_ROTATION),
    }
}

/// The shared draw counter: a decimal number in a file, read and advanced under an
/// exclusive lock. When the file cannot be used (another user's, a read-only
/// directory), a per-process counter seeded by the process id stands in.
enum Counter {
    Shared(File),
    Private,
}

impl Counter {
    fn open() -> Result<Counter, String> {
        // Not `TMPDIR`: processes given a temporary directory of their own (the bench
        // tests do) must still draw from the one machine-wide counter.
        let directory = std::path::Path::new("/tmp");
        let path = if directory.is_dir() {
            directory.join("replikv-loopback-ports")
        } else {
            std::env::temp_dir().join("replikv-loopback-ports")
        };
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(file) => Ok(Counter::Shared(file)),
            Err(_) => Ok(Counter::Private),
        }
    }

    fn next(&mut self) -> Result<u16, String> {
        match self {
            Counter::Shared(file) => {
                advance_shared(file).map_err(|error| format!("the loopback port counter: {error}"))
            }
            Counter::Private => Ok(advance_private()),
        }
    }
}

fn advance_shared(file: &mut File) -> std::io::Result<u16> {
    file.lock()?;
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    // An empty or damaged counter starts from the process id, not from zero, so that
    // two fresh starts do not begin at the same port.
    let draw = text
        .trim()
        .parse::<u16>()
        .unwrap_or_else(|_| process_seed());
    let next = draw.wrapping_add(1);
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(next.to_string().as_bytes())?;
    file.flush()?;
    file.unlock()?;
    Ok(draw)
}

fn advance_private() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    process_seed().wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn process_seed() -> u16 {
    // Spread process ids over the rotation: consecutive ids land far apart.
    (std::process::id().wrapping_mul(2_654_435_761) >> 16) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_lie_below_the_ephemeral_range_and_differ() {
        let (first, count) = rotation();
        assert!(first >= ROTATION_FIRST_MIN);
        assert!(count > 0);
        let ports: Vec<u16> = (0..64).map(|_| free_port().unwrap()).collect();
        for port in &ports {
            assert!(
                (first..first + count).contains(port),
                "{port} outside the rotation"
            );
        }
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            ports.len(),
            "a port was drawn twice: {ports:?}"
        );
    }

    #[test]
    fn a_port_something_listens_on_is_skipped() {
        let held: Vec<TcpListener> = (0..3)
            .map(|_| TcpListener::bind(("127.0.0.1", free_port().unwrap())).unwrap())
            .collect();
        let mut candidates: Vec<u16> = held
            .iter()
            .map(|listener| listener.local_addr().unwrap().port())
            .collect();
        let free = free_port().unwrap();
        candidates.push(free);
        assert_eq!(first_free(candidates.iter().copied()), Some(free));
        assert_eq!(first_free(candidates[..3].iter().copied()), None);
    }
}
