//! Everything a run can be told: the cluster's shape, the workload, and the faults.
//!
//! A simulation is a pure function of its [`SimulationOptions`] (which include the seed)
//! and of the replica factory. That is why the options are one plain, comparable value:
//! a failing run prints them, and the replay command rebuilds exactly the same value from
//! the command-line flags (`--faults`, `--nodes`, `--clients`, `--duration-seconds`).
//!
//! Faults come in named presets ([`FaultPreset`]) so that a seed sweep, the command line
//! and a bug report all mean the same fault mix by the same word:
//!
//! - `none`: a reliable network with small delays; nothing crashes.
//! - `network`: lost, duplicated, delayed and reordered messages, and partitions of every
//!   shape (symmetric, asymmetric, bridge, isolate-one).
//! - `crashes`: process crashes that lose or tear unsynced writes, restarts, and pauses
//!   (a garbage-collection stall or SIGSTOP).
//! - `everything`: all of the above plus clock skew and drift.
//!
//! Every rate is expressed as a range of intervals between faults rather than as a
//! probability per step, so the fault density does not depend on how busy the cluster is.
//! Every queue the faults create (messages in flight, inputs held for a paused node) has a
//! bound here too.

use rand::Rng;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Largest cluster the simulator builds: node ids must stay small and the per-step
/// invariant checks linear.
pub const NODES_MAX: usize = 64;

/// Largest number of client processes.
pub const CLIENTS_MAX: usize = 1024;

/// Longest virtual run (duration plus quiet period).
pub const RUN_DURATION_MAX: Duration = Duration::from_secs(24 * 3600);

/// An inclusive range of durations, sampled uniformly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
}

impl DurationRange {
    #[must_use]
    pub const fn new(min: Duration, max: Duration) -> DurationRange {
        DurationRange { min, max }
    }

    #[must_use]
    pub const fn millis(min: u64, max: u64) -> DurationRange {
        DurationRange::new(Duration::from_millis(min), Duration::from_millis(max))
    }

    #[must_use]
    pub const fn micros(min: u64, max: u64) -> DurationRange {
        DurationRange::new(Duration::from_micros(min), Duration::from_micros(max))
    }

    /// A uniformly random duration within the range, at nanosecond resolution.
    pub fn sample(&self, random: &mut impl Rng) -> Duration {
        debug_assert!(self.min <= self.max);
        let min = nanos(self.min);
        let max = nanos(self.max);
        Duration::from_nanos(random.random_range(min..=max))
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).expect("durations are bounded by RUN_DURATION_MAX")
}

/// Partitions: one at a time, started after a random interval, healed after a random
/// duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionOptions {
    /// Time from the previous heal (or the start) to the next partition.
    pub interval: DurationRange,
    /// How long a partition lasts.
    pub duration: DurationRange,
}

/// Crashes: a random running node loses power (unsynced writes are lost or torn) and is
/// restarted from its disk later.
///
/// A crash strikes either between two inputs, or inside one: the node's disk is armed
/// (`SimDisk::schedule_crash`) to fail just before one of its next few mutating
/// operations, which is where a real power cut finds half-done work (a write without its
/// sync, a recovery halfway through cutting a torn tail). An armed crash that has not
/// struck after `armed_wait` (an idle node) strikes between inputs instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrashOptions {
    /// Time between two crashes (several nodes may be down at once).
    pub interval: DurationRange,
    /// How long a crashed node stays down.
    pub downtime: DurationRange,
    /// Probability that a crash (or a restart) arms the disk instead of striking at once.
    pub inside_call_probability: f64,
    /// An armed disk fails before one of its next `0..=this` mutating operations.
    pub armed_operations_max: u64,
    /// How long an armed crash may wait for its operation.
    pub armed_wait: Duration,
}

/// Pauses: a random running node stops (no input, no timer) and resumes later with the
/// inputs that arrived meanwhile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PauseOptions {
    pub interval: DurationRange,
    pub duration: DurationRange,
    /// Inputs held for a paused node; later ones are dropped and counted.
    pub held_inputs_max: usize,
}

/// Per-node clocks: `node time = virtual time + offset`, never going backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOptions {
    /// Offsets are drawn within plus or minus this.
    pub skew_max: Duration,
    /// Every `drift_interval`, each offset moves by up to this much (zero: fixed offsets).
    pub drift_step_max: Duration,
    pub drift_interval: Duration,
}

/// Every fault the simulator can inject, with its rate and range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultOptions {
    /// Probability that a peer message is lost.
    pub message_drop_probability: f64,
    /// Probability that a peer message is delivered twice (each copy with its own delay).
    pub message_duplicate_probability: f64,
    /// Delay of a peer message; a wide range reorders messages.
    pub message_delay: DurationRange,
    /// Peer messages in flight at once; beyond this they are dropped and counted.
    pub messages_in_flight_max: usize,
    pub partitions: Option<PartitionOptions>,
    pub crashes: Option<CrashOptions>,
    pub pauses: Option<PauseOptions>,
    pub clocks: ClockOptions,
}

/// The named fault mixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultPreset {
    None,
    Network,
    Crashes,
    Everything,
}

impl FaultPreset {
    pub const ALL: [FaultPreset; 4] = [
        FaultPreset::None,
        FaultPreset::Network,
        FaultPreset::Crashes,
        FaultPreset::Everything,
    ];

    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FaultPreset::None => "none",
            FaultPreset::Network => "network",
            FaultPreset::Crashes => "crashes",
            FaultPreset::Everything => "everything",
        }
    }

    #[must_use]
    pub fn options(self) -> FaultOptions {
        match self {
            FaultPreset::None => FaultOptions::none(),
            FaultPreset::Network => FaultOptions::network(),
            FaultPreset::Crashes => FaultOptions::crashes(),
            FaultPreset::Everything => FaultOptions::everything(),
        }
    }
}

impl fmt::Display for FaultPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for FaultPreset {
    type Err = String;
    fn from_str(name: &str) -> Result<FaultPreset, String> {
        FaultPreset::ALL
            .into_iter()
            .find(|preset| preset.name() == name)
            .ok_or_else(|| {
                format!(
                    "unknown fault preset {name:?} (expected none, network, crashes or everything)"
                )
            })
    }
}

const NO_CLOCK_FAULTS: ClockOptions = ClockOptions {
    skew_max: Duration::ZERO,
    drift_step_max: Duration::ZERO,
    drift_interval: Duration::from_secs(1),
};

impl FaultOptions {
    /// A reliable network with small delays, no partitions, crashes, pauses or skew.
    #[must_use]
    pub fn none() -> FaultOptions {
        FaultOptions {
            message_drop_probability: 0.0,
            message_duplicate_probability: 0.0,
            message_delay: DurationRange::micros(100, 1_000),
            messages_in_flight_max: 100_000,
            partitions: None,
            crashes: None,
            pauses: None,
            clocks: NO_CLOCK_FAULTS,
        }
    }

    /// Lost, duplicated, reordered messages and partitions of every shape.
    #[must_use]
    pub fn network() -> FaultOptions {
        FaultOptions {
            message_drop_probability: 0.05,
            message_duplicate_probability: 0.03,
            message_delay: DurationRange::micros(100, 20_000),
            messages_in_flight_max: 10_000,
            partitions: Some(PartitionOptions {
                interval: DurationRange::millis(200, 3_000),
                duration: DurationRange::millis(50, 2_000),
            }),
            ..FaultOptions::none()
        }
    }

    /// Crashes with restarts, and pauses.
    #[must_use]
    pub fn crashes() -> FaultOptions {
        FaultOptions {
            crashes: Some(CrashOptions {
                interval: DurationRange::millis(200, 3_000),
                downtime: DurationRange::millis(10, 2_000),
                inside_call_probability: 0.5,
                armed_operations_max: 8,
                armed_wait: Duration::from_millis(200),
            }),
            pauses: Some(PauseOptions {
                interval: DurationRange::millis(200, 4_000),
                duration: DurationRange::millis(1, 1_000),
                held_inputs_max: 1_024,
            }),
            ..FaultOptions::none()
        }
    }

    /// The network faults, the process faults, and clock skew with drift.
    #[must_use]
    pub fn everything() -> FaultOptions {
        FaultOptions {
            crashes: FaultOptions::crashes().crashes,
            pauses: FaultOptions::crashes().pauses,
            clocks: ClockOptions {
                skew_max: Duration::from_millis(250),
                drift_step_max: Duration::from_millis(20),
                drift_interval: Duration::from_millis(500),
            },
            ..FaultOptions::network()
        }
    }

    /// The preset these options equal, if any (used to print a replay command).
    #[must_use]
    pub fn preset(&self) -> Option<FaultPreset> {
        FaultPreset::ALL
            .into_iter()
            .find(|preset| preset.options() == *self)
    }

    fn validate(&self) -> Result<(), String> {
        let probability = 0.0..=1.0;
        if !probability.contains(&self.message_drop_probability)
            || !probability.contains(&self.message_duplicate_probability)
        {
            return Err("message probabilities must lie within 0..=1".into());
        }
        let mut ranges = vec![("message delay", self.message_delay)];
        if let Some(partitions) = &self.partitions {
            ranges.push(("partition interval", partitions.interval));
            ranges.push(("partition duration", partitions.duration));
        }
        if let Some(crashes) = &self.crashes {
            ranges.push(("crash interval", crashes.interval));
            ranges.push(("crash downtime", crashes.downtime));
            let wait = crashes.armed_wait;
            ranges.push(("armed crash wait", DurationRange::new(wait, wait)));
            if !probability.contains(&crashes.inside_call_probability) {
                return Err("the inside-call crash probability must lie within 0..=1".into());
            }
        }
        if let Some(pauses) = &self.pauses {
            ranges.push(("pause interval", pauses.interval));
            ranges.push(("pause duration", pauses.duration));
        }
        for (name, range) in ranges {
            validate_range(name, range)?;
        }
        if self.messages_in_flight_max == 0 {
            return Err("messages_in_flight_max must be positive".into());
        }
        if self.clocks.skew_max > Duration::from_secs(3600) || self.clocks.drift_interval.is_zero()
        {
            return Err(
                "clock skew must be at most an hour and the drift interval positive".into(),
            );
        }
        Ok(())
    }
}

fn validate_range(name: &str, range: DurationRange) -> Result<(), String> {
    if range.min > range.max || range.max > RUN_DURATION_MAX {
        return Err(format!("{name}: invalid range {range:?}"));
    }
    Ok(())
}

/// How the workload's reads ask to be served (the final reads are always linearizable:
/// they judge durability).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ReadMode {
    /// Linearizable reads, sent like writes (to the leader hint).
    #[default]
    Linearizable,
    /// Lease reads, sent like writes.
    Lease,
    /// Follower reads, each sent to the client's home replica.
    Follower,
    /// Session reads, each sent to a random node with the client's token: the highest
    /// log position of any reply it received (kept across a change of process id).
    Session,
}

/// Most retries of a write with an unknown outcome ([`WorkloadOptions::unknown_retries_max`]).
pub const UNKNOWN_RETRIES_LIMIT: u32 = 8;

/// The register workload the client processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadOptions {
    /// How many distinct keys (`k0`, `k1`, ...) the clients touch.
    pub keys: usize,
    /// Every write goes to a key never written before (`k0`, `k1`, ... in order, at most
    /// `keys` of them), and reads to keys already written; once every key is used,
    /// clients only read. Then every acknowledged write is judged by a final read of its
    /// own key, and the durability checker sees every loss, which exact loss accounting
    /// needs. Requires zero cas and delete weights.
    pub fresh_key_per_write: bool,
    /// Relative weights of the operation kinds.
    pub read_weight: u32,
    pub write_weight: u32,
    pub cas_weight: u32,
    pub delete_weight: u32,
    /// Pause between an operation's completion and the next one of the same client.
    pub think_time: DurationRange,
    /// Client-side timeout of one operation, across its redirects.
    pub timeout: Duration,
    /// Attempts of one operation (the first plus redirects after `NotLeader` or a
    /// refused connection).
    pub attempts_max: u32,
    /// Wait before retrying at a random node when no leader hint was given.
    pub retry_backoff: DurationRange,
    /// Times a write whose outcome is unknown (a timeout, an indeterminate reply) is
    /// retried on another node under the same request id, each with a fresh timeout,
    /// before it is recorded as `info`. The nodes apply a request id once, so a retry is
    /// the same operation, not a second one.
    pub unknown_retries_max: u32,
    /// Network delay between a client and a node, each way.
    pub client_latency: DurationRange,
    /// Bound on the history's length; clients stop issuing operations beyond it.
    pub operations_max: usize,
    /// How the workload's reads ask to be served.
    pub reads: ReadMode,
}

impl Default for WorkloadOptions {
    fn default() -> WorkloadOptions {
        WorkloadOptions {
            keys: 3,
            fresh_key_per_write: false,
            read_weight: 4,
            write_weight: 3,
            cas_weight: 2,
            delete_weight: 1,
            think_time: DurationRange::millis(0, 20),
            timeout: Duration::from_millis(500),
            attempts_max: 4,
            retry_backoff: DurationRange::millis(1, 20),
            unknown_retries_max: 2,
            client_latency: DurationRange::micros(50, 1_000),
            operations_max: 1_000_000,
            reads: ReadMode::Linearizable,
        }
    }
}

/// One simulation run, fully described.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimulationOptions {
    /// The only source of randomness of the run.
    pub seed: u64,
    /// Replicas, with ids 1..=nodes.
    pub nodes: usize,
    /// Client processes running the workload concurrently.
    pub clients: usize,
    /// How long faults and the workload run (virtual time).
    pub duration: Duration,
    /// After `duration`, every fault is healed and the cluster runs this long without
    /// new random operations (halfway through, every client reads every key once)
    /// before final states are compared.
    pub quiet_period: Duration,
    pub faults: FaultOptions,
    pub workload: WorkloadOptions,
    /// Time from a node's first unflushed input to its `handle_flush` (the group-commit
    /// window; inputs arriving meanwhile join the same batch).
    pub flush_latency: DurationRange,
    /// How long a pipelined group commit's sync takes, from the `start_flush` that hands
    /// it out to the `handle_sync_completed` that takes it back; inputs arriving
    /// meanwhile are handled, and wait for the next sync.
    pub sync_latency: DurationRange,
    /// The share of flushes, in percent, done pipelined (`start_flush`, the sync
    /// completing after `sync_latency`, as a server with `pipelined_fsync` on does); the
    /// others call `handle_flush`, as a node alone does in effect and every node does at
    /// shutdown. The mix also covers a synchronous flush that finds a sync outstanding.
    pub pipelined_flush_percent: u8,
    /// Whether a node may send a message to itself (no strategy needs to so far).
    pub allow_self_messages: bool,
    /// Print every event to standard error (also `REPLIKV_SIM_TRACE=1`).
    pub trace: bool,
}

impl SimulationOptions {
    /// The defaults every command-line run and seed sweep starts from: 3 nodes, 5
    /// clients, 10 virtual seconds, and the given faults.
    #[must_use]
    pub fn new(seed: u64, faults: FaultPreset) -> SimulationOptions {
        SimulationOptions {
            seed,
            nodes: 3,
            clients: 5,
            duration: Duration::from_secs(10),
            quiet_period: Duration::from_secs(2),
            faults: faults.options(),
            workload: WorkloadOptions::default(),
            flush_latency: DurationRange::micros(0, 2_000),
            sync_latency: DurationRange::micros(0, 1_000),
            pipelined_flush_percent: 50,
            allow_self_messages: false,
            trace: false,
        }
    }

    /// The same run with every latency at zero: peer messages, client links and group
    /// commits take no virtual time (think time is the workload's business). Virtual
    /// time then advances only through timers and think time, so a run measures the
    /// replicas' own work per operation, the throughput bar's setting.
    #[must_use]
    pub fn with_zero_latency(mut self) -> SimulationOptions {
        self.faults.message_delay = DurationRange::micros(0, 0);
        self.workload.client_latency = DurationRange::micros(0, 0);
        self.flush_latency = DurationRange::micros(0, 0);
        self.sync_latency = DurationRange::micros(0, 0);
        self
    }

    /// Checks every bound; a run refuses options that fail this.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=NODES_MAX).contains(&self.nodes) {
            return Err(format!("nodes must lie within 1..={NODES_MAX}"));
        }
        if !(1..=CLIENTS_MAX).contains(&self.clients) {
            return Err(format!("clients must lie within 1..={CLIENTS_MAX}"));
        }
        if self.duration + self.quiet_period > RUN_DURATION_MAX {
            return Err(format!("a run lasts at most {RUN_DURATION_MAX:?}"));
        }
        let workload = &self.workload;
        if workload.unknown_retries_max > UNKNOWN_RETRIES_LIMIT {
            return Err(format!("unknown_retries_max above {UNKNOWN_RETRIES_LIMIT}"));
        }
        let rounds = 1 + workload.unknown_retries_max;
        let slowest_reply = workload.client_latency.max * 2 + workload.timeout * rounds;
        if self.quiet_period <= slowest_reply {
            return Err(format!(
                "the quiet period ({:?}) must outlast a client timeout plus latency ({slowest_reply:?}) so every operation completes",
                self.quiet_period
            ));
        }
        if workload.keys == 0 || workload.keys > 1_000 || workload.attempts_max == 0 {
            return Err("the workload needs 1..=1000 keys and at least one attempt".into());
        }
        let weights = [
            workload.read_weight,
            workload.write_weight,
            workload.cas_weight,
            workload.delete_weight,
        ];
        if weights.iter().all(|weight| *weight == 0) || weights.iter().any(|w| *w > 1_000) {
            return Err("operation weights must lie within 0..=1000, not all zero".into());
        }
        if workload.fresh_key_per_write && (workload.cas_weight > 0 || workload.delete_weight > 0) {
            return Err("a fresh key per write allows only reads and writes".into());
        }
        for (name, range) in [
            ("think time", workload.think_time),
            ("retry backoff", workload.retry_backoff),
            ("client latency", workload.client_latency),
            ("flush latency", self.flush_latency),
            ("sync latency", self.sync_latency),
        ] {
            validate_range(name, range)?;
        }
        if self.pipelined_flush_percent > 100 {
            return Err("pipelined_flush_percent must lie within 0..=100".into());
        }
        self.faults.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn presets_round_trip_through_their_names_and_validate() {
        for preset in FaultPreset::ALL {
            assert_eq!(preset.name().parse::<FaultPreset>(), Ok(preset));
            assert_eq!(preset.options().preset(), Some(preset));
            SimulationOptions::new(7, preset).validate().unwrap();
        }
        assert!("most".parse::<FaultPreset>().is_err());
    }

    #[test]
    fn invalid_options_are_refused() {
        let valid = SimulationOptions::new(1, FaultPreset::Everything);
        let mut options = valid;
        options.nodes = 0;
        assert!(options.validate().is_err());
        let mut options = valid;
        options.quiet_period = Duration::from_millis(100);
        assert!(options.validate().is_err());
        let mut options = valid;
        options.faults.message_drop_probability = 1.5;
        assert!(options.validate().is_err());
        let mut options = valid;
        options.workload.think_time = DurationRange::millis(5, 1);
        assert!(options.validate().is_err());
    }

    #[test]
    fn samples_stay_within_their_range() {
        let mut random = ChaCha8Rng::seed_from_u64(3);
        let range = DurationRange::micros(10, 20);
        for _ in 0..1_000 {
            let sample = range.sample(&mut random);
            assert!(range.min <= sample && sample <= range.max);
        }
        let point = DurationRange::millis(4, 4);
        assert_eq!(point.sample(&mut random), Duration::from_millis(4));
    }
}
