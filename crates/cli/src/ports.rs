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
//! So the ports come from outside the ephemeral range, which the kernel never hands out
//! by itself: the `PORTS_IN_ROTATION` ports just below it, or, when the range starts too
//! low for that, the ports just above it. (A range covering nearly every port leaves no
//! such room; then the rotation lies inside it, the race is back, and a warning says so.)
//! Every process of this user that starts nodes draws them from one counter in a small
//! file, `/tmp/replikv-loopback-ports-<uid>`, advanced under an exclusive file lock:
//! processes running at once get distinct ports, and a port comes round again only
//! after a whole rotation of later draws. A port something else listens on (a program
//! that chose it by hand) fails the bind check and is skipped. The file is opened
//! without following symbolic links and used only if it is a regular file of this
//! user; when it cannot be used (or locked, read or written), a per-process counter
//! seeded by the process id stands in, which keeps ports distinct within the process.
//!
//! The file is shared by `src/` and the integration tests (`tests/support`), which
//! include it by path: the binary crate has no library to import it from. Its tests live
//! in `ports_tests.rs`, beside the binary only, so that they run once.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;

/// How many ports the rotation holds: far more than all the nodes a test run keeps
/// alive at once, so a port is never handed out again while its first holder runs.
pub(crate) const PORTS_IN_ROTATION: u16 = 8_192;

/// The fewest ports a rotation outside the ephemeral range may have.
pub(crate) const PORTS_IN_ROTATION_MIN: u16 = 1_024;

/// The ephemeral range when the kernel does not say (Linux's default).
const EPHEMERAL_RANGE_DEFAULT: (u16, u16) = (32_768, 60_999);

/// The lowest port a rotation may use (below are well-known and privileged ports).
pub(crate) const ROTATION_FIRST_MIN: u16 = 10_000;

/// How many candidates one draw checks before it gives up.
const DRAW_ATTEMPTS_MAX: u16 = 256;

/// A run of ports handed out round robin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rotation {
    pub first: u16,
    pub count: u16,
    /// No room outside the ephemeral range: the kernel may hand these ports out too.
    pub inside_ephemeral_range: bool,
}

/// A loopback port outside the ephemeral range that no other process drawing from the
/// rotation holds and nothing listened on when it was drawn.
pub fn free_port() -> Result<u16, String> {
    let rotation = rotation_for(ephemeral_range());
    if rotation.inside_ephemeral_range {
        warn_inside_ephemeral_range();
    }
    let mut counter = Counter::open();
    let candidates = std::iter::from_fn(|| {
        let draw = counter.next();
        let offset = u16::try_from(draw % u64::from(rotation.count)).expect("below count");
        Some(rotation.first + offset)
    });
    first_free(candidates.take(usize::from(DRAW_ATTEMPTS_MAX))).ok_or_else(|| {
        format!(
            "no free loopback port in {}..{} after {DRAW_ATTEMPTS_MAX} attempts",
            rotation.first,
            u32::from(rotation.first) + u32::from(rotation.count)
        )
    })
}

/// The first of `candidates` that a listener on 127.0.0.1 can bind right now.
pub(crate) fn first_free(candidates: impl Iterator<Item = u16>) -> Option<u16> {
    candidates
        .into_iter()
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
}

/// The kernel's ephemeral port range (first and last port), if it says.
pub(crate) fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut ends = text.split_whitespace().map(|end| end.parse::<u16>().ok());
    Some((ends.next()??, ends.next()??))
}

/// Where the rotation lies for an ephemeral range (`None`: unknown, Linux's default is
/// assumed): just below the range, else just above it, else inside it (flagged).
pub(crate) fn rotation_for(ephemeral: Option<(u16, u16)>) -> Rotation {
    let (low, high) = ephemeral.unwrap_or(EPHEMERAL_RANGE_DEFAULT);
    let below_first = low
        .saturating_sub(PORTS_IN_ROTATION)
        .max(ROTATION_FIRST_MIN);
    if low >= below_first + PORTS_IN_ROTATION_MIN {
        return Rotation {
            first: below_first,
            count: low - below_first,
            inside_ephemeral_range: false,
        };
    }
    let above_first = high.saturating_add(1).max(ROTATION_FIRST_MIN);
    let above_count = (u16::MAX - above_first).min(PORTS_IN_ROTATION);
    if above_count >= PORTS_IN_ROTATION_MIN {
        return Rotation {
            first: above_first,
            count: above_count,
            inside_ephemeral_range: false,
        };
    }
    Rotation {
        first: ROTATION_FIRST_MIN,
        count: PORTS_IN_ROTATION,
        inside_ephemeral_range: true,
    }
}

fn warn_inside_ephemeral_range() {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        eprintln!(
            "replikv: net.ipv4.ip_local_port_range leaves no room for test ports outside \
             it; ports may collide with outgoing connections"
        );
    });
}

/// The draw counter: shared through a file, or private to this process.
enum Counter {
    Shared(File),
    Private,
}

impl Counter {
    fn open() -> Counter {
        match open_counter_file() {
            Some(file) => Counter::Shared(file),
            None => Counter::Private,
        }
    }

    /// The next draw. A shared counter that fails turns private for good.
    fn next(&mut self) -> u64 {
        if let Counter::Shared(file) = self {
            match advance_shared(file) {
                Ok(draw) => return draw,
                Err(_) => *self = Counter::Private,
            }
        }
        advance_private()
    }
}

/// The counter file, opened without following a symbolic link, if it is a regular file
/// of this user.
fn open_counter_file() -> Option<File> {
    let user = nix::unistd::geteuid().as_raw();
    // Not `TMPDIR`: processes given a temporary directory of their own (the bench tests
    // do) must still draw from the one counter of this user.
    let directory = PathBuf::from("/tmp");
    let directory = if directory.is_dir() {
        directory
    } else {
        std::env::temp_dir()
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(directory.join(format!("replikv-loopback-ports-{user}")))
        .ok()?;
    let metadata = file.metadata().ok()?;
    (metadata.is_file() && metadata.uid() == user).then_some(file)
}

fn advance_shared(file: &mut File) -> std::io::Result<u64> {
    file.lock()?;
    let result = read_and_advance(file);
    let unlocked = file.unlock();
    let draw = result?;
    unlocked?;
    Ok(draw)
}

fn read_and_advance(file: &mut File) -> std::io::Result<u64> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_string(&mut text)?;
    // An empty or damaged counter starts from the process id, not from zero, so that
    // two fresh starts do not begin at the same port.
    let draw = text
        .trim()
        .parse::<u64>()
        .unwrap_or_else(|_| process_seed());
    let next = draw.wrapping_add(1);
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(next.to_string().as_bytes())?;
    file.flush()?;
    Ok(draw)
}

fn advance_private() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    process_seed().wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn process_seed() -> u64 {
    // Spread process ids over the rotation: consecutive ids land far apart.
    u64::from(std::process::id().wrapping_mul(2_654_435_761) >> 16)
}
