//! The closed loop: `clients` connections, each with one request outstanding.
//!
//! All connections are opened first (a target that cannot be reached fails the run
//! before any clock starts). Then each connection runs as a tokio task that sends its
//! workload's next operation, waits for the reply, and sends the next: a closed loop,
//! so the offered load is whatever the server can absorb at that concurrency, which is
//! what "throughput at C clients" means. Operations that start during the warm-up are
//! sent but not counted. After the warm-up, a success records its latency in the task's
//! own histogram (merged at the end: no shared lock on the hot path) and marks the
//! millisecond it completed in a shared array of flags; the longest run of unmarked
//! milliseconds is the longest time the whole system went without a success — the
//! figure a failover or a stall shows. An error reply is counted and the connection
//! goes on; a broken connection is counted, and the task reconnects after a short pause
//! until the run ends. Every request is bounded by the run's end, so a server that
//! stops answering cannot hold the benchmark past its duration.
//!
//! Time here is the wall clock (`std::time::Instant`): this is a measuring tool run
//! against real processes, not protocol code, and it is the one place the rule against
//! clocks does not apply.

use super::histogram::Histogram;
use super::resp::{Connection, Reply};
use super::workload::{Operation, Workload, WorkloadSpec};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

/// Most connections.
pub const CLIENTS_MAX: usize = 4096;
/// Longest measured duration.
pub const DURATION_MAX_S: u64 = 3600;
/// Longest warm-up.
pub const WARMUP_MAX_S: u64 = 600;
/// Pause before a broken connection is reopened.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Longest the initial connections may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One run's settings.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// host:port of a RESP endpoint.
    pub address: String,
    pub clients: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub workload: WorkloadSpec,
    /// Draw a progress bar on stderr (only if it is a terminal).
    pub progress: bool,
}

impl RunSpec {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=CLIENTS_MAX).contains(&self.clients) {
            return Err(format!("--clients must be 1..={CLIENTS_MAX}"));
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(DURATION_MAX_S) {
            return Err(format!("--duration-s must be 1..={DURATION_MAX_S}"));
        }
        if self.warmup > Duration::from_secs(WARMUP_MAX_S) {
            return Err(format!("--warmup-s must be 0..={WARMUP_MAX_S}"));
        }
        self.workload.validate()
    }
}

/// What a run measured (after the warm-up).
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub histogram: Histogram,
    pub reads: u64,
    pub writes: u64,
    pub errors: u64,
    pub measured_secs: f64,
    pub longest_gap_ms: u64,
    pub first_error: Option<String>,
}

impl RunResult {
    /// Successful operations.
    pub fn ops(&self) -> u64 {
        self.histogram.count()
    }

    fn absorb(&mut self, other: RunResult) {
        self.histogram.merge(&other.histogram);
        self.reads += other.reads;
        self.writes += other.writes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// What every task shares.
#[derive(Debug)]
struct Shared {
    measure_from: Instant,
    end: Instant,
    /// One flag per measured millisecond: did any operation succeed in it?
    succeeded_in_millisecond: Vec<AtomicBool>,
    /// Successes so far, for the progress bar.
    successes: AtomicU64,
}

/// SIGINT and SIGTERM, listened for from the moment this is made: a signal that
/// arrives before the run starts (say, while a cluster starts) still ends the run.
#[derive(Debug)]
pub struct Interrupts {
    interrupt: Signal,
    terminate: Signal,
}

impl Interrupts {
    pub fn listen(runtime: &Runtime) -> Result<Interrupts, String> {
        let _context = runtime.enter();
        let listen = |kind| signal(kind).map_err(|error| format!("signals: {error}"));
        Ok(Interrupts {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
        })
    }

    pub async fn received(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "interrupted (SIGINT)",
            _ = self.terminate.recv() => "terminated (SIGTERM)",
        }
    }
}

/// The runtime the benchmark runs on: two worker threads (the machines it targets are
/// small, and the server under test needs the rest).
pub fn new_runtime() -> Result<Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| error.to_string())
}

/// Runs the benchmark; blocks until it is over or a signal in `interrupts` arrives (an
/// error then: a cut-short run has no figures worth printing).
pub fn run(
    runtime: &Runtime,
    spec: &RunSpec,
    interrupts: Option<&mut Interrupts>,
) -> Result<RunResult, String> {
    spec.validate()?;
    runtime.block_on(async {
        let Some(interrupts) = interrupts else {
            return run_async(spec).await;
        };
        tokio::select! {
            result = run_async(spec) => result,
            reason = interrupts.received() => Err(reason.into()),
        }
    })
}

async fn connect_all(spec: &RunSpec) -> Result<Vec<Connection>, String> {
    let mut connections = Vec::with_capacity(spec.clients);
    for _ in 0..spec.clients {
        let connecting = Connection::connect(&spec.address);
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| format!("connecting to {}: timed out", spec.address))?
            .map_err(|error| format!("connecting to {}: {error}", spec.address))?;
        connections.push(connection);
    }
    Ok(connections)
}

async fn run_async(spec: &RunSpec) -> Result<RunResult, String> {
    let connections = connect_all(spec).await?;
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let milliseconds = usize::try_from(spec.duration.as_millis()).expect("bounded") + 1;
    let shared = Arc::new(Shared {
        measure_from,
        end: measure_from + spec.duration,
        succeeded_in_millisecond: (0..milliseconds).map(|_| AtomicBool::new(false)).collect(),
        successes: AtomicU64::new(0),
    });
    let mut tasks = Vec::with_capacity(spec.clients);
    for (number, connection) in connections.into_iter().enumerate() {
        let workload = Workload::new(&spec.workload, number as u64);
        let task = client_loop(spec.address.clone(), connection, workload, shared.clone());
        tasks.push(tokio::spawn(task));
    }
    let progress = tokio::spawn(show_progress(spec.progress, start, shared.clone()));
    let mut result = RunResult::default();
    for task in tasks {
        result.absorb(task.await.map_err(|error| error.to_string())?);
    }
    progress.abort();
    result.measured_secs = spec.duration.as_secs_f64();
    result.longest_gap_ms = longest_gap_ms(&shared.succeeded_in_millisecond);
    Ok(result)
}

/// The longest run of milliseconds without a success.
fn longest_gap_ms(flags: &[AtomicBool]) -> u64 {
    let (mut longest, mut current) = (0u64, 0u64);
    for flag in flags {
        if flag.load(Ordering::Relaxed) {
            current = 0;
        } else {
            current += 1;
            longest = longest.max(current);
        }
    }
    longest
}

/// One connection's closed loop until the run's end.
async fn client_loop(
    address: String,
    connection: Connection,
    mut workload: Workload,
    shared: Arc<Shared>,
) -> RunResult {
    let mut result = RunResult::default();
    let mut connection = Some(connection);
    while Instant::now() < shared.end {
        let Some(open) = connection.as_mut() else {
            tokio::time::sleep_until((Instant::now() + RECONNECT_PAUSE).min(shared.end)).await;
            connection = Connection::connect(&address).await.ok();
            continue;
        };
        let operation = workload.next_operation();
        let is_read = matches!(operation, Operation::Get { .. });
        let started = Instant::now();
        let arguments: [&[u8]; 3] = match &operation {
            Operation::Get { key } => [b"GET", key.as_bytes(), b""],
            Operation::Set { key, value } => [b"SET", key.as_bytes(), value],
        };
        let sent = open.command(&arguments[..if is_read { 2 } else { 3 }]);
        let Ok(reply) = tokio::time::timeout_at(shared.end, sent).await else {
            break;
        };
        let finished = Instant::now();
        let measured = started >= shared.measure_from;
        let failure = match reply {
            Ok(Reply::Ok) => None,
            Ok(Reply::Error(message)) => Some(message),
            Err(error) => {
                connection = None;
                Some(error.to_string())
            }
        };
        if !measured {
            continue;
        }
        match failure {
            None => record_success(&mut result, &shared, started, finished, is_read),
            Some(message) => {
                result.errors += 1;
                result.first_error.get_or_insert(message);
            }
        }
    }
    result
}

fn record_success(
    result: &mut RunResult,
    shared: &Shared,
    started: Instant,
    finished: Instant,
    is_read: bool,
) {
    let latency_us = u64::try_from((finished - started).as_micros()).unwrap_or(u64::MAX);
    result.histogram.record(latency_us);
    if is_read {
        result.reads += 1;
    } else {
        result.writes += 1;
    }
    let millisecond = (finished - shared.measure_from).as_millis();
    if let Some(flag) = usize::try_from(millisecond)
        .ok()
        .and_then(|index| shared.succeeded_in_millisecond.get(index))
    {
        flag.store(true, Ordering::Relaxed);
    }
    shared.successes.fetch_add(1, Ordering::Relaxed);
}

/// A progress bar on stderr (a terminal only), ticking until aborted.
async fn show_progress(enabled: bool, start: Instant, shared: Arc<Shared>) {
    if !enabled || !std::io::stderr().is_terminal() {
        return;
    }
    let total_ms = (shared.end - start).as_millis() as u64;
    let bar = indicatif::ProgressBar::new(total_ms);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
        .expect("a valid template");
    bar.set_style(style);
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        ticker.tick().await;
        let now = Instant::now();
        bar.set_position((now - start).as_millis() as u64);
        let phase = if now < shared.measure_from {
            "warm-up"
        } else {
            "measuring"
        };
        let successes = shared.successes.load(Ordering::Relaxed);
        bar.set_message(format!("{phase}: {successes} ops"));
        if now >= shared.end {
            bar.finish_and_clear();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_gap_counts_the_longest_run_of_silent_milliseconds() {
        let flags = |pattern: &str| -> Vec<AtomicBool> {
            pattern.chars().map(|c| AtomicBool::new(c == '1')).collect()
        };
        assert_eq!(longest_gap_ms(&flags("1111")), 0);
        assert_eq!(longest_gap_ms(&flags("1001000111")), 3);
        assert_eq!(longest_gap_ms(&flags("0011")), 2);
        assert_eq!(longest_gap_ms(&flags("0000")), 4);
    }

    #[test]
    fn limits_are_enforced() {
        let spec = RunSpec {
            address: "127.0.0.1:1".into(),
            clients: 1,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            workload: WorkloadSpec {
                keys: 10,
                value_size_bytes: 10,
                read_ratio: 0.5,
                seed: 1,
            },
            progress: false,
        };
        assert!(spec.validate().is_ok());
        let bad = [
            RunSpec {
                clients: 0,
                ..spec.clone()
            },
            RunSpec {
                clients: CLIENTS_MAX + 1,
                ..spec.clone()
            },
            RunSpec {
                duration: Duration::ZERO,
                ..spec.clone()
            },
            RunSpec {
                duration: Duration::from_secs(DURATION_MAX_S + 1),
                ..spec.clone()
            },
            RunSpec {
                warmup: Duration::from_secs(WARMUP_MAX_S + 1),
                ..spec.clone()
            },
        ];
        for spec in bad {
            assert!(spec.validate().is_err(), "{spec:?}");
        }
    }

    /// A fake RESP server on a thread answering every command with `reply`; the
    /// workload's keys and values hold no `*`, so each `*` starts one command.
    fn fake_server(reply: &'static [u8]) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 4096];
                    while let Ok(read) = stream.read(&mut buffer) {
                        let commands = buffer[..read].iter().filter(|byte| **byte == b'*').count();
                        if read == 0 || stream.write_all(&reply.repeat(commands)).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    fn one_second_against(address: String) -> RunResult {
        let spec = RunSpec {
            address,
            clients: 2,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            workload: WorkloadSpec {
                keys: 10,
                value_size_bytes: 8,
                read_ratio: 0.5,
                seed: 1,
            },
            progress: false,
        };
        run(&new_runtime().unwrap(), &spec, None).unwrap()
    }

    #[test]
    fn successes_and_error_replies_are_counted_apart() {
        let served = one_second_against(fake_server(b"+OK\r\n"));
        assert!(served.ops() > 0 && served.errors == 0, "{served:?}");
        assert_eq!(served.reads + served.writes, served.ops());
        assert!(served.longest_gap_ms < 1000, "{served:?}");
        let refused = one_second_against(fake_server(b"-ERR no\r\n"));
        assert_eq!(refused.ops(), 0);
        assert!(refused.errors > 0);
        assert_eq!(refused.first_error.as_deref(), Some("ERR no"));
        assert_eq!(
            refused.longest_gap_ms, 1001,
            "every measured millisecond was silent"
        );
    }

    #[test]
    fn an_unreachable_target_fails_the_run() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let spec = RunSpec {
            address,
            clients: 2,
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            workload: WorkloadSpec {
                keys: 1,
                value_size_bytes: 1,
                read_ratio: 0.0,
                seed: 1,
            },
            progress: false,
        };
        let error = run(&new_runtime().unwrap(), &spec, None).unwrap_err();
        assert!(error.contains("connecting to"), "{error}");
    }
}
