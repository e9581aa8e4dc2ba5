//! `replikv test`: Jepsen-style tests of real server processes.
//!
//! The simulator proves the protocols on virtual time; this proves the binaries, on a
//! real kernel, with real sockets, disks and signals. A run is the classic Jepsen loop:
//!
//! 1. **Cluster** ([`cluster`]): start N `replikv server` processes on loopback (or take
//!    the RESP addresses of a running cluster with `--endpoints`; then no process
//!    faults can be injected) and wait until they agree on a leader.
//! 2. **Clients** ([`client`], [`workload`]): `--clients` concurrent closed-loop clients
//!    on tokio, each one operation at a time with a timeout, record every operation with
//!    its invoke and complete times and an honest outcome (ok / fail / info) into the
//!    **recorder** ([`recorder`]), which owns the run's one clock.
//! 3. **Nemesis** ([`nemesis`]), on its own thread: alternating quiet and faulty
//!    intervals, `kill -9` and restart, SIGSTOP and SIGCONT, of the leader or a random
//!    node, `strand-leader` (the followers killed, then the lone leader: a
//!    partitioned-away leader's fate, without root), network partitions when the nodes
//!    run in namespaces of their own ([`network`], root only), and degraded links
//!    ([`link_faults`]); every fault window is recorded.
//! 4. **Stop**: at `--time-limit-s`, at `--operations-max`, or on Ctrl-C / SIGTERM. Then
//!    heal everything (resume, restart), wait for a leader, and read every key one last
//!    time (linearizably, through any node) so that lost acknowledged writes show; then
//!    stop the nodes (they are also stopped by `Drop` on every other exit path).
//! 5. **Check** ([`summary`]): `replikv_check::check_all` with the workload's model,
//!    the verdicts printed as `replikv check` prints them, operation counts and
//!    availability inside and outside fault windows; `history.jsonl`, `faults.jsonl`,
//!    `summary.txt`, `summary.json`, `timeline.svg` ([`report`]: the latency of every
//!    operation over time, fault windows shaded) and the node logs stay in `--output`.
//!    The exit code is `replikv check`'s: 0 valid, 1 a violation, 2 undecided or the
//!    run went wrong.
//!
//! Limits: the nodes run in process groups of their own (so a terminal's Ctrl-C reaches
//! only this command, which then heals and checks before stopping them); if this
//! command is itself killed with SIGKILL, nothing can stop them and they must be
//! stopped by hand (their pids are in `pids.txt` in the output directory, written as
//! each node starts).
//!
//! The checkers know nothing of how replikv works: a violation here is the real
//! database breaking a promise (or the test lying — which is why outcomes are classified
//! conservatively: anything not certainly refused is `info`).

pub mod client;
pub mod cluster;
pub mod link_faults;
pub mod nemesis;
// The network's API is fuller than `replikv test` uses (its own tests use the rest).
#[allow(dead_code, unused_imports)]
pub mod network;
pub mod recorder;
pub mod report;
pub mod summary;
pub mod workload;

use crate::bench::runner::{Interrupts, new_runtime};
use crate::check::EXIT_UNKNOWN_OR_BAD_INPUT;
use clap::Args;
use cluster::LiveCluster;
use network::NodeNetwork;
use recorder::Recorder;
use replikv_check::{
    Budget, Function, History, NamedVerdict, check_all, check_register_durability,
};
use std::io::IsTerminal;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use summary::Summary;
use workload::{KEYS_MAX, KeySpace, Workload, WorkloadKind};

/// Most concurrent clients.
const CLIENTS_MAX: u64 = 256;
/// Longest run, in seconds (a day).
const TIME_LIMIT_S_MAX: u64 = 24 * 60 * 60;
/// Longest wait for a leader, at the start and after healing.
const LEADER_WAIT: Duration = Duration::from_secs(30);
/// Longest the final reads may take, all keys together.
const FINAL_READS_WAIT: Duration = Duration::from_secs(30);

/// Flags of `replikv test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// What the clients do: registers, grow-only sets, or session reads on followers.
    #[arg(long, value_enum, default_value = "register")]
    workload: WorkloadKind,
    /// Nodes of the local cluster to start.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Test a running cluster instead: its nodes' RESP addresses, comma-separated (no
    /// process faults then).
    #[arg(long, value_delimiter = ',', conflicts_with = "nodes")]
    endpoints: Vec<String>,
    /// The started cluster's commit mode (majority, all, async, "semi-sync any K", ...).
    #[arg(long, default_value = "majority")]
    commit_mode: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=CLIENTS_MAX))]
    clients: u64,
    /// Keys the operations spread over.
    #[arg(long, default_value_t = 5)]
    keys: usize,
    /// Faults, comma-separated: kill, kill-leader, pause, pause-leader, strand-leader,
    /// partition-majority, isolate-leader, bridge (these three need root), link-faults,
    /// clock-skew, or none.
    #[arg(long, default_value = "kill,kill-leader,pause,pause-leader")]
    faults: String,
    /// Seconds without a fault, then seconds with one, alternating.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    fault_interval_s: u64,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=TIME_LIMIT_S_MAX))]
    time_limit_s: u64,
    /// Stop after this many operations.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    operations_max: Option<u64>,
    /// A client gives up waiting for a reply after this long (outcome unknown).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    operation_timeout_ms: u64,
    /// Give up the checkers' search after this many seconds (verdict: unknown).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=TIME_LIMIT_S_MAX))]
    check_timeout_s: u64,
    /// Seed of the workload and the fault schedule (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Where the history, fault windows, summary and node logs go
    /// (default `./replikv-test/<UTC timestamp>`).
    #[arg(long)]
    output: Option<PathBuf>,
}

/// Runs `replikv test`; the exit code is the summary's (2 when it could not run).
pub fn run(arguments: &TestArgs) -> ExitCode {
    match run_test(arguments) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("replikv test: {message}");
            ExitCode::from(EXIT_UNKNOWN_OR_BAD_INPUT)
        }
    }
}

/// The system under test: a cluster this run started, or given addresses.
struct Target {
    cluster: Option<Arc<Mutex<LiveCluster>>>,
    /// The index in `nodes` of the leader at the start, when known.
    leader: Option<usize>,
    nodes: Vec<SocketAddr>,
    keys: KeySpace,
}

fn start_target(
    arguments: &TestArgs,
    output: &Path,
    seed: u64,
    faults: &[nemesis::Fault],
) -> Result<Target, String> {
    if !arguments.endpoints.is_empty() {
        let mut nodes = Vec::new();
        for endpoint in &arguments.endpoints {
            let address = endpoint
                .to_socket_addrs()
                .map_err(|error| format!("--endpoints {endpoint}: {error}"))?
                .next()
                .ok_or_else(|| format!("--endpoints {endpoint}: no address"))?;
            nodes.push(address);
        }
        let keys = KeySpace {
            prefix: format!("replikv-test-{seed}-"),
            count: arguments.keys,
        };
        return Ok(Target {
            leader: None,
            cluster: None,
            nodes,
            keys,
        });
    }
    let testing_faults = faults.iter().any(|fault| fault.needs_testing_faults());
    let network = if faults.iter().any(|fault| fault.is_network()) {
        let tag = network::run_tag_of_process(std::process::id());
        Some(NodeNetwork::create(&tag, usize::from(arguments.nodes))?)
    } else {
        None
    };
    let (nodes, commit_mode) = (arguments.nodes, &arguments.commit_mode);
    let mut cluster = LiveCluster::start(output, nodes, commit_mode, network, testing_faults)?;
    let leader = cluster.wait_for_leader(LEADER_WAIT)?;
    Ok(Target {
        leader: Some(usize::from(leader) - 1),
        keys: KeySpace {
            prefix: String::new(),
            count: arguments.keys,
        },
        nodes: cluster.resp_addresses(),
        cluster: Some(Arc::new(Mutex::new(cluster))),
    })
}

fn run_test(arguments: &TestArgs) -> Result<u8, String> {
    if !(1..=KEYS_MAX).contains(&arguments.keys) {
        return Err(format!("--keys must be 1..={KEYS_MAX}"));
    }
    let network_available = NodeNetwork::available();
    let (faults, skipped) = nemesis::parse_faults(&arguments.faults, &network_available)?;
    for message in &skipped {
        eprintln!("replikv test: {message}");
    }
    let seed = arguments.seed.unwrap_or_else(seed_from_clock);
    let output = arguments.output.clone().unwrap_or_else(default_output);
    std::fs::create_dir_all(&output).map_err(|error| format!("{}: {error}", output.display()))?;
    let runtime = new_runtime()?;
    let mut interrupts = Interrupts::listen(&runtime)?;
    eprintln!(
        "replikv test: workload {:?}, seed {seed}, output {}",
        arguments.workload,
        output.display()
    );
    let target = start_target(arguments, &output, seed, &faults)?;
    let mut problems = Vec::new();
    if target.cluster.is_none() && !faults.is_empty() {
        eprintln!("replikv test: process faults need a cluster this command starts: none injected");
    }
    let recorder = Arc::new(Recorder::new(arguments.clients, arguments.operations_max));
    let nemesis = target
        .cluster
        .clone()
        .filter(|_| !faults.is_empty())
        .map(|cluster| {
            let spec = nemesis::NemesisSpec {
                faults,
                interval: Duration::from_secs(arguments.fault_interval_s),
                seed,
            };
            let recorder = recorder.clone();
            std::thread::spawn(move || nemesis::run(&spec, &cluster, &recorder))
        });
    runtime.block_on(run_clients(
        arguments,
        &target,
        seed,
        &recorder,
        &mut interrupts,
    ));
    if let Some(nemesis) = nemesis {
        problems.extend(
            nemesis
                .join()
                .map_err(|_| "the nemesis panicked".to_string())?,
        );
    }
    if let Some(cluster) = &target.cluster {
        problems.extend(heal(&mut cluster.lock().expect("cluster lock")));
    }
    let final_reads_from = recorder.operation_count();
    problems.extend(runtime.block_on(final_reads(arguments, &target, &recorder)));
    if let Some(cluster) = &target.cluster {
        cluster.lock().expect("cluster lock").stop();
    }
    let check_timeout = Duration::from_secs(arguments.check_timeout_s);
    let judged = Judged {
        kind: arguments.workload,
        check_timeout,
        final_reads_from,
    };
    finish(&judged, &output, &recorder, problems)
}

/// Resumes and restarts every node and waits for a leader; returns what went wrong.
fn heal(cluster: &mut LiveCluster) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(error) = cluster.check_alive() {
        problems.push(error);
    }
    let healed = cluster
        .heal()
        .and_then(|()| cluster.wait_for_leader(LEADER_WAIT));
    if let Err(error) = healed {
        problems.push(format!("after healing: {error}"));
    }
    problems
}

/// Runs the clients until the time limit, the operation bound or a signal.
async fn run_clients(
    arguments: &TestArgs,
    target: &Target,
    seed: u64,
    recorder: &Arc<Recorder>,
    interrupts: &mut Interrupts,
) {
    let counter = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for number in 0..arguments.clients {
        let workload = Workload::new(
            arguments.workload,
            target.keys.clone(),
            seed,
            number,
            counter.clone(),
        );
        let spec = client::ClientSpec {
            number,
            first_node: first_node(arguments.workload, target, number),
            kind: arguments.workload,
            nodes: target.nodes.clone(),
            operation_timeout: Duration::from_millis(arguments.operation_timeout_ms),
        };
        tasks.push(tokio::spawn(client::run(spec, workload, recorder.clone())));
    }
    let time_limit = Duration::from_secs(arguments.time_limit_s);
    let progress = tokio::spawn(show_progress(recorder.clone(), time_limit));
    let bounded = async {
        while !recorder.stopping() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = tokio::time::sleep(time_limit) => {}
        () = bounded => {}
        reason = interrupts.received() => {
            eprintln!("replikv test: {reason}: stopping, healing and checking what was recorded");
        }
    }
    recorder.stop();
    for task in tasks {
        let _ = task.await;
    }
    progress.abort();
}

/// The node client `number` starts on: round robin, except that session clients are
/// pinned to followers (where session guarantees take work) when the leader is known.
fn first_node(kind: WorkloadKind, target: &Target, number: u64) -> usize {
    let nodes = target.nodes.len();
    let spread = usize::try_from(number).unwrap_or(0);
    match target.leader {
        Some(leader) if kind == WorkloadKind::Session && nodes > 1 => {
            let followers: Vec<usize> = (0..nodes).filter(|node| *node != leader).collect();
            followers[spread % followers.len()]
        }
        _ => spread % nodes,
    }
}

/// A progress bar on stderr (a terminal only).
async fn show_progress(recorder: Arc<Recorder>, time_limit: Duration) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let bar = indicatif::ProgressBar::new(time_limit.as_secs());
    let style = indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
        .expect("a valid template");
    bar.set_style(style);
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    while !recorder.stopping() {
        ticker.tick().await;
        bar.set_position(started.elapsed().as_secs());
        bar.set_message(format!("{} ops", recorder.operation_count()));
    }
    bar.finish_and_clear();
}

/// Reads every key once more after healing; returns the keys no read reached.
async fn final_reads(arguments: &TestArgs, target: &Target, recorder: &Recorder) -> Vec<String> {
    let (keys, nodes) = (&target.keys, &target.nodes);
    let deadline = tokio::time::Instant::now() + FINAL_READS_WAIT;
    let timeout = Duration::from_millis(arguments.operation_timeout_ms);
    let mut problems = Vec::new();
    for key in 0..keys.count {
        let key = keys.name(key);
        if !client::final_read(arguments.workload, &key, nodes, recorder, timeout, deadline).await {
            problems.push(format!("no final read of {key} succeeded"));
        }
    }
    problems
}

/// How a run's history is judged.
#[derive(Clone, Copy, Debug)]
struct Judged {
    kind: WorkloadKind,
    check_timeout: Duration,
    /// The index of the first final read (after healing) in the history.
    final_reads_from: usize,
}

impl Judged {
    /// Every checker's verdict. For the session workload, durability is judged by the
    /// final (linearizable) reads only: a session read from a lagging follower after a
    /// key's last write is stale by design, and would look exactly like a lost write.
    fn verdicts(&self, history: &History, budget: &Budget) -> Vec<NamedVerdict> {
        let mut verdicts = check_all(history, self.kind.model(), budget);
        if self.kind == WorkloadKind::Session {
            let durable_view = History {
                operations: history
                    .operations
                    .iter()
                    .enumerate()
                    .filter(|(index, operation)| {
                        *index >= self.final_reads_from || operation.f != Function::Read
                    })
                    .map(|(_, operation)| operation.clone())
                    .collect(),
            };
            for named in &mut verdicts {
                if named.property == replikv_check::durability::PROPERTY {
                    named.verdict = check_register_durability(&durable_view);
                }
            }
        }
        verdicts
    }
}

/// Writes the files, checks the history, prints and writes the summary.
fn finish(
    judged: &Judged,
    output: &Path,
    recorder: &Recorder,
    problems: Vec<String>,
) -> Result<u8, String> {
    recorder.write_files(output)?;
    let elapsed_s = recorder.now_ns() as f64 / 1e9;
    let history = recorder.history();
    let budget = Budget {
        steps_max: None,
        deadline: Some(Instant::now() + judged.check_timeout),
    };
    let verdicts = judged.verdicts(&history, &budget);
    let kind = judged.kind;
    let summary = Summary::new(
        &history,
        recorder.faults(),
        verdicts,
        |property| kind.judges(property),
        problems,
        elapsed_s,
    );
    let text = summary.text();
    print!("{text}");
    let write = |name: &str, contents: String| {
        let path = output.join(name);
        std::fs::write(&path, contents).map_err(|error| format!("{}: {error}", path.display()))
    };
    write("summary.txt", text)?;
    write("summary.json", format!("{}\n", summary.json()))?;
    let title = format!("replikv test --workload {}", kind.name());
    let timeline = report::render_timeline_svg(&history, &summary.faults, &title);
    write("timeline.svg", timeline)?;
    Ok(summary.exit_code())
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `./replikv-test/<YYYYMMDDTHHMMSSZ>`.
fn default_output() -> PathBuf {
    let seconds = seed_from_clock();
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let (year, month, day) = civil_from_days(days);
    let of_day = seconds % 86_400;
    PathBuf::from("replikv-test").join(format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    ))
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use replikv_check::{Operation, OperationType};

    fn operation(
        process: u64,
        f: Function,
        value: serde_json::Value,
        times: (u64, u64),
    ) -> Operation {
        Operation {
            process,
            key: "k0".into(),
            f,
            value,
            ok: None,
            kind: OperationType::Ok,
            invoke: times.0,
            complete: Some(times.1),
        }
    }

    /// Runs the recorder → files → checkers → summary path over `operations`.
    fn judge(kind: WorkloadKind, operations: Vec<Operation>) -> (u8, String) {
        let recorder = Recorder::new(2, None);
        let final_reads_from = operations.len() - 1;
        for operation in operations {
            recorder.record(operation);
        }
        let directory = tempfile::tempdir().unwrap();
        let judged = Judged {
            kind,
            check_timeout: Duration::from_secs(10),
            final_reads_from,
        };
        let code = finish(&judged, directory.path(), &recorder, Vec::new());
        let summary = std::fs::read_to_string(directory.path().join("summary.txt")).unwrap();
        (code.unwrap(), summary)
    }

    #[test]
    fn a_stale_read_after_an_acknowledged_write_is_a_violation() {
        let history = |stale: serde_json::Value| {
            vec![
                operation(0, Function::Write, serde_json::json!(1), (10, 20)),
                operation(0, Function::Write, serde_json::json!(2), (30, 40)),
                operation(1, Function::Read, stale, (50, 60)),
            ]
        };
        let (code, summary) = judge(WorkloadKind::Register, history(serde_json::json!(1)));
        assert_eq!(code, crate::check::EXIT_VIOLATION, "{summary}");
        assert!(summary.contains("linearizability: VIOLATED"), "{summary}");
        assert!(summary.contains("result: VIOLATION"), "{summary}");
        let (code, summary) = judge(WorkloadKind::Register, history(serde_json::json!(2)));
        assert_eq!(code, crate::check::EXIT_VALID, "{summary}");
        // Session reads may be stale for other processes: not judged there (the final
        // read, linearizable, still must see the last write).
        let mut session = history(serde_json::json!(1));
        session.push(operation(2, Function::Read, serde_json::json!(2), (70, 80)));
        let (code, summary) = judge(WorkloadKind::Session, session);
        assert_eq!(code, crate::check::EXIT_VALID, "{summary}");
    }

    #[test]
    fn a_lost_acknowledged_add_is_a_violation() {
        let adds = vec![
            operation(0, Function::Write, serde_json::json!(1), (10, 20)),
            operation(0, Function::Write, serde_json::json!(2), (30, 40)),
            operation(1, Function::Read, serde_json::json!([2]), (50, 60)),
        ];
        let (code, summary) = judge(WorkloadKind::Set, adds);
        assert_eq!(code, crate::check::EXIT_VIOLATION, "{summary}");
        assert!(summary.contains("durability: VIOLATED"), "{summary}");
    }

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_414), (2025, 11, 22));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
