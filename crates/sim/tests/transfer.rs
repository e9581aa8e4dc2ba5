//! Leadership transfers under random faults, and how fast one is.
//!
//! A transfer is the one Raft feature that deliberately elects a leader while the old one
//! is alive and holding its lease, so it deserves the simulator's whole battery: every
//! checker (linearizability, session guarantees, durability, convergence) and the
//! run-wide invariants observer, on runs whose director keeps asking the cluster to move
//! its leadership while random faults strike.
//!
//! [`TransferDirector`] orders a transfer every [`TRANSFER_INTERVAL`] through
//! [`Directive::Request`], the same path a client (the server's admin endpoint) takes,
//! rotating through four shapes: to the next voter after the leader, to whoever the
//! leader picks (`to: None`), through a follower (which must answer `NotLeader` with its
//! hint; the director then retries at the hint, as a client would), and to the leader
//! itself (answered at once). It checks every answer against what it saw: a success
//! must name the node it saw leading the claimed term, and the target that was asked
//! for. Transfer requests and answers stay out of the clients' history; clients keep
//! writing and reading meanwhile, and a write refused because a transfer is in progress
//! is a `fail` the checkers accept (it certainly did not happen).
//!
//! The sweeps run `raft-majority` (writes, ReadIndex reads) and `raft-lease` (lease reads,
//! whose safety across a transfer is the subtle part: see
//! `replikv_replication::single_leader`'s `transfer.rs`) under the four fault presets.
//! `REPLIKV_SIM_SEEDS=N` widens them, `REPLIKV_SEED=S` replays one seed.
//!
//! [`TransferStopwatch`] measures the figure of the brief: in a healthy cluster, the
//! time from the transfer request to the first client write the target commits as the
//! new leader, in election timeouts (`election_timeout_ms_min`). It includes the
//! request's way to the leader, the catch-up, TimeoutNow, the vote round, the new
//! leader's no-op, and the clients finding the new leader.

#[path = "support/sweep.rs"]
mod sweep;

use replikv_core::error::Error;
use replikv_core::replica::Replica;
use replikv_core::{Instant, LogIndex, NodeId, Reply, Request, Term};
use replikv_replication::single_leader::{Command, RaftConfig, RaftNode};
use replikv_sim::director::DirectorReply;
use replikv_sim::models::{raft_factory, raft_lease_config};
use replikv_sim::{Directive, Director, FaultPreset, Model, RunReport, simulate_directed};
use std::collections::BTreeMap;
use std::time::Duration;

/// Seeds per preset and model in the normal test run.
const SWEEP_SEEDS: u64 = 150;

/// Seeds of the stopwatch in the normal test run (1,000 by hand).
const STOPWATCH_SEEDS: u64 = 100;

/// A transfer is ordered this long after the previous one was answered or given up.
const TRANSFER_INTERVAL: Duration = Duration::from_millis(600);

/// A request unanswered this long is given up (its node crashed with it).
const REQUEST_GIVE_UP: Duration = Duration::from_secs(2);

/// Most leaderships remembered for checking the answers' claims.
const LEADERS_REMEMBERED_MAX: usize = 4096;

/// The shapes of request the director rotates through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// To the leader, naming the next voter after it.
    ToNext,
    /// To the leader, naming no target.
    ToAny,
    /// To a follower: answered `NotLeader`, then retried at the hint.
    ViaFollower,
    /// To the leader, naming itself.
    ToItself,
}

const SHAPES: [Shape; 4] = [
    Shape::ToNext,
    Shape::ToAny,
    Shape::ViaFollower,
    Shape::ToItself,
];

/// The director's request in flight.
#[derive(Clone, Debug)]
struct Pending {
    tag: u64,
    to: Option<NodeId>,
    sent: Instant,
}

/// How the transfers of a sweep ended, from the director's side, and what the nodes
/// counted.
#[derive(Clone, Copy, Debug, Default)]
struct Outcomes {
    ordered: u64,
    transferred: u64,
    redirected: u64,
    unavailable: u64,
    indeterminate: u64,
    other_failures: u64,
    given_up: u64,
    /// Sums of the nodes' `RaftStats` at the end of each run.
    started: u64,
    completed: u64,
    aborted: u64,
    transfer_elections: u64,
    writes_refused: u64,
}

impl Outcomes {
    fn add(&mut self, other: &Outcomes) {
        self.ordered += other.ordered;
        self.transferred += other.transferred;
        self.redirected += other.redirected;
        self.unavailable += other.unavailable;
        self.indeterminate += other.indeterminate;
        self.other_failures += other.other_failures;
        self.given_up += other.given_up;
        self.started += other.started;
        self.completed += other.completed;
        self.aborted += other.aborted;
        self.transfer_elections += other.transfer_elections;
        self.writes_refused += other.writes_refused;
    }
}

/// Orders transfers all run long and checks their answers; see the module documentation.
#[derive(Debug)]
struct TransferDirector {
    next_at: Instant,
    tags: u64,
    /// Requests of the rotation ordered so far (retries after a redirect excluded).
    rotation: u64,
    pending: Option<Pending>,
    /// A redirected request to send again: node, target.
    retry: Option<(NodeId, Option<NodeId>)>,
    /// The leader seen in each term.
    leaders: BTreeMap<Term, NodeId>,
    outcomes: Outcomes,
    /// Answers that contradict what the director saw.
    errors: Vec<String>,
}

impl TransferDirector {
    fn new() -> TransferDirector {
        TransferDirector {
            next_at: Instant::ZERO + TRANSFER_INTERVAL,
            tags: 0,
            rotation: 0,
            pending: None,
            retry: None,
            leaders: BTreeMap::new(),
            outcomes: Outcomes::default(),
            errors: Vec::new(),
        }
    }

    fn note_leaders(&mut self, nodes: &[Option<&RaftNode>]) {
        for node in nodes.iter().flatten().filter(|node| node.is_leader()) {
            let leader = *self.leaders.entry(node.term()).or_insert(node.id());
            if leader != node.id() {
                let text = format!("two leaders of {}: {leader} and {}", node.term(), node.id());
                self.errors.push(text);
            }
        }
        while self.leaders.len() > LEADERS_REMEMBERED_MAX {
            self.leaders.pop_first();
        }
    }

    fn order(
        &mut self,
        now: Instant,
        node: NodeId,
        to: Option<NodeId>,
        directives: &mut Vec<Directive>,
    ) {
        self.tags += 1;
        self.outcomes.ordered += 1;
        self.pending = Some(Pending {
            tag: self.tags,
            to,
            sent: now,
        });
        let request = Request::TransferLeadership { to };
        directives.push(Directive::Request {
            node,
            tag: self.tags,
            request,
        });
    }

    /// Orders the next transfer of the rotation, if a leader is in sight.
    fn order_next(
        &mut self,
        now: Instant,
        nodes: &[Option<&RaftNode>],
        directives: &mut Vec<Directive>,
    ) {
        let Some(leader) = nodes
            .iter()
            .flatten()
            .filter(|node| node.is_leader())
            .max_by_key(|node| node.term())
        else {
            self.next_at = now + Duration::from_millis(50);
            return;
        };
        let ids: Vec<NodeId> = (1..=nodes.len() as u64).map(NodeId).collect();
        let after =
            |id: NodeId| ids[(ids.iter().position(|x| *x == id).expect("a node") + 1) % ids.len()];
        let leader_id = leader.id();
        let shape = SHAPES[(self.rotation % SHAPES.len() as u64) as usize];
        self.rotation += 1;
        let (node, to) = match shape {
            Shape::ToNext => (leader_id, Some(after(leader_id))),
            Shape::ToAny => (leader_id, None),
            Shape::ViaFollower => (after(leader_id), Some(after(after(leader_id)))),
            Shape::ToItself => (leader_id, Some(leader_id)),
        };
        self.order(now, node, to, directives);
    }

    /// Checks a success against the leaders seen and the target asked for.
    fn check_success(
        &mut self,
        pending: &Pending,
        reply: &DirectorReply,
        leader: NodeId,
        term: Term,
    ) {
        if self.leaders.get(&term).is_some_and(|seen| *seen != leader) {
            let seen = self.leaders[&term];
            self.errors
                .push(format!("{reply:?}: {seen} led {term}, not {leader}"));
        }
        match pending.to {
            Some(to) if to != leader => {
                self.errors
                    .push(format!("{reply:?}: asked for {to}, got {leader}"));
            }
            None if leader == reply.node => {
                self.errors
                    .push(format!("{reply:?}: `to: None` left {leader} leading"));
            }
            _ => {}
        }
    }
}

impl Director<RaftNode> for TransferDirector {
    fn after_event(
        &mut self,
        now: Instant,
        nodes: &[Option<&RaftNode>],
        directives: &mut Vec<Directive>,
    ) {
        self.note_leaders(nodes);
        if let Some(pending) = &self.pending
            && now.saturating_duration_since(pending.sent) >= REQUEST_GIVE_UP
        {
            self.pending = None;
            self.outcomes.given_up += 1;
            self.next_at = now + TRANSFER_INTERVAL;
        }
        if self.pending.is_some() {
            return;
        }
        if let Some((node, to)) = self.retry.take() {
            self.order(now, node, to, directives);
            return;
        }
        if now >= self.next_at {
            self.order_next(now, nodes, directives);
        }
    }

    fn on_reply(&mut self, now: Instant, reply: DirectorReply) {
        let Some(pending) = self.pending.take_if(|pending| pending.tag == reply.tag) else {
            return; // given up already
        };
        self.next_at = now + TRANSFER_INTERVAL;
        match &reply.reply {
            Reply::LeadershipTransferred { leader, term } => {
                self.outcomes.transferred += 1;
                self.check_success(&pending, &reply, *leader, *term);
            }
            Reply::Failed(Error::NotLeader { leader }) => {
                self.outcomes.redirected += 1;
                if let Some(leader) = leader {
                    self.retry = Some((*leader, pending.to));
                }
            }
            Reply::Failed(Error::Unavailable(_)) => self.outcomes.unavailable += 1,
            Reply::Failed(Error::Indeterminate(_)) => self.outcomes.indeterminate += 1,
            Reply::Failed(_) => self.outcomes.other_failures += 1,
            other => self.errors.push(format!("{other:?} answers a transfer")),
        }
    }

    fn finish(&mut self, _now: Instant, nodes: &[Option<&RaftNode>]) {
        for node in nodes.iter().flatten() {
            let stats = node.stats();
            self.outcomes.started += stats.transfers_started;
            self.outcomes.completed += stats.transfers_completed;
            self.outcomes.aborted += stats.transfers_aborted;
            self.outcomes.transfer_elections += stats.transfer_elections_started;
            self.outcomes.writes_refused += stats.transfer_writes_refused;
        }
    }
}

/// The two models a transfer sweep runs.
#[derive(Clone, Copy, Debug)]
enum Variant {
    Majority,
    Lease,
}

impl Variant {
    fn model(self) -> Model {
        match self {
            Variant::Majority => Model::RaftMajority,
            Variant::Lease => Model::RaftLease,
        }
    }
}

/// Runs one seed of `variant` under `preset` with the transfer director.
fn run_seed(variant: Variant, preset: FaultPreset, seed: u64) -> (RunReport, TransferDirector) {
    let model = variant.model();
    let config = match variant {
        Variant::Majority => RaftConfig::default(),
        Variant::Lease => raft_lease_config(),
    };
    let options = model.adjust_options(&sweep::sweep_options(seed, preset));
    let mut director = TransferDirector::new();
    let report = simulate_directed(
        &options,
        &model.properties(),
        raft_factory(config),
        &mut director,
    );
    (report, director)
}

/// Runs the sweep's seeds, panics with the first failure's report (replay: `REPLIKV_SEED`),
/// and returns the summed outcomes.
fn sweep_transfers(variant: Variant, preset: FaultPreset) -> Outcomes {
    let mut total = Outcomes::default();
    for seed in sweep::seeds(SWEEP_SEEDS) {
        let (report, director) = run_seed(variant, preset, seed);
        let name = format!("{} with transfers", variant.model().name());
        if let Some(text) = report.failure_report(&name, Some("transfer")) {
            // The `replikv sim` command would run the model without the director.
            let text: Vec<&str> = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("replay: "))
                .collect();
            panic!("{}", text.join("\n"));
        }
        assert!(
            director.errors.is_empty(),
            "seed {seed} ({variant:?}, {preset:?}): {:?}",
            director.errors
        );
        total.add(&director.outcomes);
    }
    println!("{variant:?} {preset:?}: {total:?}");
    assert!(total.ordered > 0 && total.started > 0, "{total:?}");
    assert!(
        total.completed + total.aborted <= total.started,
        "{total:?}"
    );
    total
}

#[test]
fn transfers_without_faults_all_succeed() {
    for variant in [Variant::Majority, Variant::Lease] {
        let total = sweep_transfers(variant, FaultPreset::None);
        // Without faults every request is answered with success, except the one
        // redirect of each `ViaFollower` request.
        assert_eq!(
            total.unavailable + total.indeterminate + total.other_failures,
            0,
            "{total:?}"
        );
        assert_eq!(total.given_up, 0, "{total:?}");
        assert!(
            total.transferred >= total.ordered - total.redirected,
            "{total:?}"
        );
        assert!(total.transfer_elections >= total.completed, "{total:?}");
        // A transfer to the leader itself succeeds without starting one.
        assert!(total.transferred > total.started, "{total:?}");
    }
}

#[test]
fn transfers_under_network_faults_keep_every_guarantee() {
    for variant in [Variant::Majority, Variant::Lease] {
        let total = sweep_transfers(variant, FaultPreset::Network);
        assert!(total.completed > 0, "{total:?}");
    }
}

#[test]
fn transfers_under_crashes_keep_every_guarantee() {
    for variant in [Variant::Majority, Variant::Lease] {
        let total = sweep_transfers(variant, FaultPreset::Crashes);
        assert!(total.completed > 0, "{total:?}");
    }
}

#[test]
fn transfers_under_every_fault_keep_every_guarantee() {
    for variant in [Variant::Majority, Variant::Lease] {
        let total = sweep_transfers(variant, FaultPreset::Everything);
        assert!(total.completed > 0, "{total:?}");
    }
}

/// Times one transfer in a healthy cluster: from the request to the first client write
/// of the target's new term that the target commits.
#[derive(Debug, Default)]
struct TransferStopwatch {
    /// When the request was ordered, the target, and the term it replaces.
    ordered: Option<(Instant, NodeId, Term)>,
    /// The target's committed entries already read.
    read_up_to: Option<LogIndex>,
    elapsed: Option<Duration>,
    error: Option<String>,
}

impl TransferStopwatch {
    /// Whether the target, leading a later term, newly committed a write of its term.
    fn target_committed_a_write(&mut self, node: &RaftNode) -> bool {
        let commit = node.commit_index();
        let read_up_to = self.read_up_to.get_or_insert(commit);
        if commit <= *read_up_to {
            return false;
        }
        let entries = match node.log().read_range(read_up_to.next(), 256, 1 << 20) {
            Ok(entries) => entries,
            Err(error) => {
                self.error = Some(format!("reading {}'s log: {error}", node.id()));
                return false;
            }
        };
        for entry in entries
            .iter()
            .filter(|entry| entry.position.index <= commit)
        {
            *read_up_to = entry.position.index;
            let is_write = matches!(Command::decode(&entry.payload), Ok(Command::Write { .. }));
            if is_write && entry.position.term == node.term() {
                return true;
            }
        }
        false
    }
}

impl Director<RaftNode> for TransferStopwatch {
    fn after_event(
        &mut self,
        now: Instant,
        nodes: &[Option<&RaftNode>],
        directives: &mut Vec<Directive>,
    ) {
        if self.elapsed.is_some() || self.error.is_some() {
            return;
        }
        let Some((ordered_at, target, old_term)) = self.ordered else {
            if now >= Instant::from_millis(1_000)
                && let Some((leader, term)) = replikv_sim::failover::established_leader(nodes)
            {
                let target = NodeId(leader.0 % nodes.len() as u64 + 1);
                self.ordered = Some((now, target, term));
                let request = Request::TransferLeadership { to: Some(target) };
                directives.push(Directive::Request {
                    node: leader,
                    tag: 1,
                    request,
                });
            }
            return;
        };
        let Some(node) = nodes.iter().flatten().find(|node| node.id() == target) else {
            return;
        };
        if node.is_leader() && node.term() > old_term && self.target_committed_a_write(node) {
            self.elapsed = Some(now.saturating_duration_since(ordered_at));
        }
    }

    fn on_reply(&mut self, _now: Instant, reply: DirectorReply) {
        if !matches!(reply.reply, Reply::LeadershipTransferred { .. }) {
            self.error = Some(format!("the transfer failed: {reply:?}"));
        }
    }
}

/// One seed of the stopwatch: 3 nodes, 5 clients, no faults, the default Raft settings.
fn measure_transfer(seed: u64) -> Result<Duration, String> {
    let mut options = sweep::sweep_options(seed, FaultPreset::None);
    options.duration = Duration::from_millis(2_500);
    options.quiet_period = Duration::from_secs(1);
    // As in the failover stopwatch: no client retries an unknown write under its old
    // id (the short quiet period allows none).
    options.workload.unknown_retries_max = 0;
    let options = Model::RaftMajority.adjust_options(&options);
    let mut stopwatch = TransferStopwatch::default();
    let factory = raft_factory(RaftConfig::default());
    let report = simulate_directed(
        &options,
        &Model::RaftMajority.properties(),
        factory,
        &mut stopwatch,
    );
    if let Some(failure) = &report.failure {
        return Err(format!("seed {seed}: {failure}"));
    }
    if let Some(error) = stopwatch.error {
        return Err(format!("seed {seed}: {error}"));
    }
    stopwatch
        .elapsed
        .ok_or_else(|| format!("seed {seed}: the target committed no write"))
}

#[test]
fn a_transfer_commits_on_the_target_far_within_one_election_timeout() {
    let mut times: Vec<Duration> = sweep::seeds(STOPWATCH_SEEDS)
        .into_iter()
        .map(|seed| measure_transfer(seed).unwrap_or_else(|error| panic!("{error}")))
        .collect();
    times.sort_unstable();
    let timeout = Duration::from_millis(RaftConfig::default().election_timeout_ms_min);
    let median = times[times.len() / 2];
    let p99 = times[times.len() * 99 / 100];
    let in_timeouts = |time: Duration| time.as_secs_f64() / timeout.as_secs_f64();
    println!(
        "transfer to first write on the target over {} seeds: p50 {median:?} ({:.3} election \
         timeouts), p99 {p99:?} ({:.3}), max {:?}",
        times.len(),
        in_timeouts(median),
        in_timeouts(p99),
        times[times.len() - 1]
    );
    assert!(in_timeouts(median) < 0.5, "{times:?}");
}
