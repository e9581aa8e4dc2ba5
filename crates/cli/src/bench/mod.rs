//! `replikv bench`: throughput and latency percentiles of a RESP endpoint under load.
//!
//! A benchmark answers "how many operations per second, and how long does each take, at
//! this concurrency, this value size, this key space and this read ratio?" The tool runs
//! a closed loop: `--clients` connections, each with exactly one request outstanding,
//! for `--duration-s` seconds after a `--warmup-s` warm-up that is not counted. It
//! measures either a replikv cluster it starts itself (`--start N --commit-mode M`: N
//! server processes with their data in a temporary directory, stopped and deleted at
//! the end) or any RESP endpoint (`--resp host:port`), so Redis is measured by the very
//! same client code and the comparison is fair.
//!
//! The pieces are separate so `replikv test` can reuse them:
//! - [`histogram`]: a bounded log-bucketed latency recorder with exact nearest-rank
//!   percentiles below 256 µs and at most 0.8 % error above;
//! - [`workload`]: the seeded generator of keys, values and the read/write mix;
//! - [`resp`]: a deliberately minimal RESP client (GET/SET, bounded parsing);
//! - [`runner`]: the closed loop on tokio, the warm-up, errors, reconnection, the
//!   longest gap without a success, the progress bar;
//! - [`local_cluster`]: the throwaway cluster behind `--start`;
//! - [`report`]: the table, the JSON line (loadgen's field names) and the SVG histogram.
//!
//! Exit status: 0 when the run completed (errors are figures, not failures, since a
//! benchmark of a failover has errors by design), 1 when it could not run at all.

pub mod histogram;
pub mod local_cluster;
pub mod report;
pub mod resp;
pub mod runner;
pub mod workload;

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Flags of `replikv bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Start a local cluster of this many nodes (temporary data) and measure its leader.
    #[arg(long, conflicts_with = "resp", required_unless_present = "resp")]
    start: Option<u16>,
    /// The commit mode of the cluster started by --start.
    #[arg(long, default_value = "majority", requires = "start")]
    commit_mode: String,
    /// Measure this RESP endpoint instead (host:port; Redis works too).
    #[arg(long)]
    resp: Option<String>,
    /// Concurrent connections, each with one request outstanding.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 1)]
    warmup_s: u64,
    /// Size of each written value.
    #[arg(long, default_value_t = 100)]
    value_size_bytes: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Fraction of operations that are GETs (0.0 to 1.0); the rest are SETs.
    #[arg(long, default_value_t = 0.5)]
    read_ratio: f64,
    /// Seed of the workload generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the latency histogram to this SVG file.
    #[arg(long)]
    histogram: Option<PathBuf>,
}

pub fn run(args: &BenchArgs) -> ExitCode {
    match bench(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("replikv bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &BenchArgs) -> Result<(), String> {
    let spec = runner::RunSpec {
        address: String::new(),
        clients: args.clients,
        duration: Duration::from_secs(args.duration_s),
        warmup: Duration::from_secs(args.warmup_s),
        workload: workload::WorkloadSpec {
            keys: args.keys,
            value_size_bytes: args.value_size_bytes,
            read_ratio: args.read_ratio,
            seed: args.seed,
        },
        progress: true,
    };
    spec.validate()?;
    let runtime = runner::new_runtime()?;
    // From here on, Ctrl-C ends the run through an error, so the cluster is stopped
    // and its temporary directory removed.
    let mut interrupts = runner::Interrupts::listen(&runtime)?;
    // Keeps the cluster (if any) alive until the run is over; dropping it stops it.
    let (_cluster, address, system) = match (&args.start, &args.resp) {
        (Some(nodes), _) => {
            let cluster = local_cluster::LocalCluster::start(*nodes, &args.commit_mode)?;
            let address = cluster.leader_resp().to_string();
            let system = format!("replikv-{}-{nodes}", args.commit_mode.replace(' ', "-"));
            (Some(cluster), address, system)
        }
        (None, Some(address)) => (None, address.clone(), format!("resp:{address}")),
        (None, None) => return Err("give --start N or --resp host:port".into()),
    };
    let spec = runner::RunSpec { address, ..spec };
    let result = runner::run(&runtime, &spec, Some(&mut interrupts))?;
    let report = report::Report::new(&system, args.clients, &spec.workload, &result);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if let Some(path) = &args.histogram {
        let title = format!("{system}: {} clients, {}", args.clients, report.op_mix);
        std::fs::write(path, report::histogram_svg(&title, &result.histogram))
            .map_err(|error| format!("{}: {error}", path.display()))?;
    }
    Ok(())
}
