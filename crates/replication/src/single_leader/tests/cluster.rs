//! The script harness: a few Raft nodes, a held-message network, a virtual clock.
//!
//! Commands (node names are `n1`, `n2`, ...):
//!
//! - `cluster nodes=N seed=S [lease] [mode=M] [chunk=BYTES] [retain=N] [segment=BYTES]
//!   [sync=N] [pending=N]`: the first command; builds N nodes on fresh simulated disks.
//!   The options enable lease reads, set the commit mode (`majority` by default; `all`,
//!   `async`, `semi-sync-first-1`, ...), the snapshot chunk size,
//!   `log_retained_entries_max`, the log's segment size, `store_sync_entries` (small
//!   values make compaction and snapshots happen early) and `pending_requests_max`. `spare=K` makes the last K nodes spares: they are opened
//!   with `RaftNode::open_joining` (members of nothing until a change adds them), and the
//!   founding configuration is the other N − K nodes.
//! - `timeout nX`: moves the clock to nX's next deadline (election or heartbeat) and
//!   ticks it. `tick nX` ticks at the current time; `advance MS` moves the clock only.
//! - `deliver [nX]`: delivers the messages in flight (to nX only, if given), once; the
//!   answers stay in flight. `stabilize` delivers until nothing is in flight.
//! - `partition nA nB | nC`: messages across the cut are dropped on delivery; `heal`.
//! - `put nX K V`, `delete nX K`, `cas nX K EXPECTED|- NEW`, `casv nX K vN NEW` (on
//!   version N), `get nX K`, `get-local nX K`, `acquire nX NAME cH ttl=MS`,
//!   `renew|release nX NAME cH #TOKEN`, `put-fenced nX K V LEASE #TOKEN`:
//!   client requests. A key or value written `x*N` is the text `x` repeated to N bytes
//!   (for the largest keys and values); the traces abbreviate long ones. Requests come
//!   from client c1 with increasing sequences, unless they end with `id=cC#S`: then they
//!   carry exactly that request id (a retry repeats its id). `get-local` and
//!   `get-follower` are follower reads, `get-lease` a lease read, `get-session` a session
//!   read with the harness client's token: the highest position of any reply so far
//!   (printed with the request), or the one `token I@T` set.
//! - `change nX add-learner|promote|add-voter|remove nY`: a membership change request
//!   to nX (with `id=cC#S` too). `members nX`: nX's configuration as it sees it. A node
//!   whose configuration changes prints it (`config voters [..] learners [..]`).
//! - `lag nX`: nX's replication status (positions, and on a leader each follower's lag).
//! - `crash nX` (unsynced writes are lost), `restart nX`; `wipe nX` crashes nX and gives
//!   it a fresh empty disk (a new follower, once restarted).
//! - `force-commit nX I`: marks index I committed on nX alone, as a lossy commit mode's
//!   old leader could have told it; the committed-log observer is switched off from then
//!   on (the script forces a divergence on purpose).
//! - `stats nX`: nX's snapshot and compaction counters.
//! - `inject nA -> nB accepted=I`: a hand-made append acknowledgement in nB's term.
//! - `status`: every node's state; `log nX`: its log positions.
//! - `transfer nX to nY` (or `transfer nX` for any voter): a leadership transfer
//!   request sent to nX; `transfer-stats nX` prints its transfer counters;
//!   `timeout-now nA -> nB t=T last=I@T` delivers a hand-made TimeoutNow at once.
//!
//! After every command each running node is flushed (so durable acknowledgements go out
//! in the same command), and every node whose state changed prints its new state.
//!
//! With the cluster option `pipelined`, nodes are flushed the way the server does it:
//! `start_flush`, whose sync stays outstanding (`nX sync S started`) until the command
//! `synced nX` runs it and hands it back (`handle_sync_completed`), then flushes nX again.
//! Whatever waits for that sync (acknowledgements, the leader's own durable copy) is
//! visible in between; `crash nX` drops an outstanding sync unrun.

use super::format;
use crate::single_leader::message::{AppendResult, Message};
use crate::single_leader::{RaftConfig, RaftNode, RaftObserver};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use replikv_core::kv::{MembershipChange, ReadConsistency};
use replikv_core::replica::{ClusterObserver, Output, PendingSync, Replica};
use replikv_core::{
    ClientId, ExpireCondition, Expiry, Instant, Key, LogIndex, LogPosition, NodeId, Request,
    RequestId, Value, Version,
};
use replikv_storage::disk::Disk;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Bound on `stabilize` rounds: a script that needs more has a livelock.
const STABILIZE_ROUNDS_MAX: usize = 100;

pub(super) struct Cluster {
    ids: Vec<NodeId>,
    nodes: BTreeMap<NodeId, Option<RaftNode>>,
    disks: BTreeMap<NodeId, Disk>,
    seed: u64,
    random: ChaCha8Rng,
    now: Instant,
    in_flight: Vec<(NodeId, NodeId, Message)>,
    /// Pairs that cannot talk, both directions listed.
    cut: BTreeSet<(NodeId, NodeId)>,
    next_sequence: u64,
    summaries: BTreeMap<NodeId, String>,
    out: Vec<String>,
    /// Checks the cross-node invariants over the whole script.
    observer: RaftObserver,
    /// Off once a script forced a divergence (`force-commit`).
    observer_enabled: bool,
    /// Every node's configuration.
    config: RaftConfig,
    /// The session token of the harness's client: the highest position replied.
    token: LogPosition,
    /// Nodes opened as joiners (`spare=K`).
    spares: BTreeSet<NodeId>,
    /// Every node's configuration as last printed.
    memberships: BTreeMap<NodeId, String>,
    /// Flushes with `start_flush`, syncs completed by `synced nX` (option `pipelined`).
    pipelined: bool,
    outstanding_syncs: BTreeMap<NodeId, VecDeque<PendingSync>>,
}

/// A configuration as scripts print it.
fn membership_text(voters: &[NodeId], learners: &[NodeId]) -> String {
    format!(
        "voters {} learners {}",
        format::ids(voters),
        format::ids(learners)
    )
}

fn node_id(word: &str) -> NodeId {
    let number = word.strip_prefix('n').and_then(|n| n.parse().ok());
    NodeId(number.unwrap_or_else(|| panic!("not a node name: {word:?}")))
}

/// `x*N` is `x` repeated to N bytes (truncated to exactly N); anything else is itself.
fn expand(word: &str) -> Vec<u8> {
    let Some((unit, count)) = word.split_once('*') else {
        return word.as_bytes().to_vec();
    };
    let count: usize = count
        .parse()
        .unwrap_or_else(|_| panic!("expected x*<count>, got {word:?}"));
    assert!(!unit.is_empty(), "empty unit in {word:?}");
    unit.bytes().cycle().take(count).collect()
}

/// `I@T`: the log position of index I, term T (as positions print).
fn parse_position(word: &str) -> LogPosition {
    let (index, term) = word
        .split_once('@')
        .and_then(|(index, term)| Some((index.parse().ok()?, term.parse().ok()?)))
        .unwrap_or_else(|| panic!("expected a position I@T, got {word:?}"));
    LogPosition::new(term, index)
}

/// `id=cC#S`: the request id of client C, sequence S.
fn request_id(word: &str) -> RequestId {
    let parsed = word
        .strip_prefix("id=c")
        .and_then(|rest| rest.split_once('#'))
        .and_then(|(client, sequence)| Some((client.parse().ok()?, sequence.parse().ok()?)));
    let (client, sequence) = parsed.unwrap_or_else(|| panic!("expected id=cC#S, got {word:?}"));
    RequestId {
        client: ClientId(client),
        sequence,
    }
}

fn number_after(word: &str, prefix: &str) -> u64 {
    word.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected {prefix}<number>, got {word:?}"))
}

impl Cluster {
    pub(super) fn create(command: &str) -> (Cluster, Vec<String>) {
        let words: Vec<&str> = command.split_whitespace().collect();
        assert!(
            words.len() >= 3 && words[0] == "cluster",
            "a script starts with `cluster nodes=N seed=S [options]`"
        );
        let count = number_after(words[1], "nodes=");
        let seed = number_after(words[2], "seed=");
        let mut config = RaftConfig::default();
        let mut spare_count = 0;
        let mut pipelined = false;
        for word in &words[3..] {
            if *word == "lease" {
                config.lease_reads_enabled = true;
                continue;
            }
            if *word == "pipelined" {
                pipelined = true;
                continue;
            }
            let (name, text) = word.split_once('=').expect("option=value");
            if name == "mode" {
                config.commit_mode = text.parse().expect("a commit mode");
                continue;
            }
            let value = number_after(word, &format!("{name}="));
            match name {
                "chunk" => config.snapshot_chunk_size_max_bytes = value as usize,
                "retain" => config.log_retained_entries_max = value,
                "segment" => config.log_options.segment_size_max_bytes = value,
                "sync" => {
                    // A fixed interval: the scripts count on when the store syncs.
                    config.store_sync_entries = value;
                    config.store_sync_entries_max = value;
                }
                "pending" => config.pending_requests_max = value as usize,
                "spare" => spare_count = value,
                _ => panic!("unknown cluster option {word:?}"),
            }
        }
        let ids: Vec<NodeId> = (1..=count).map(NodeId).collect();
        assert!(spare_count < count, "at least one founding node");
        let spares: BTreeSet<NodeId> = ids[(count - spare_count) as usize..]
            .iter()
            .copied()
            .collect();
        let founders: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|id| !spares.contains(id))
            .collect();
        let memberships = ids
            .iter()
            .map(|id| {
                let voters = if spares.contains(id) {
                    Vec::new()
                } else {
                    founders.clone()
                };
                (*id, membership_text(&voters, &[]))
            })
            .collect();
        let mut cluster = Cluster {
            ids: ids.clone(),
            nodes: BTreeMap::new(),
            disks: ids.iter().map(|id| (*id, Disk::simulated())).collect(),
            seed,
            random: ChaCha8Rng::seed_from_u64(seed),
            now: Instant::ZERO,
            in_flight: Vec::new(),
            cut: BTreeSet::new(),
            next_sequence: 1,
            summaries: BTreeMap::new(),
            out: Vec::new(),
            observer: RaftObserver::default(),
            observer_enabled: true,
            config,
            token: LogPosition::ZERO,
            spares,
            memberships,
            pipelined,
            outstanding_syncs: BTreeMap::new(),
        };
        for id in ids {
            cluster.start(id);
        }
        cluster.report_changes();
        let out = std::mem::take(&mut cluster.out);
        (cluster, out)
    }

    fn start(&mut self, id: NodeId) {
        let peers = self
            .ids
            .iter()
            .copied()
            .filter(|peer| *peer != id && !self.spares.contains(peer))
            .collect();
        let node_seed = self.seed.wrapping_mul(1000).wrapping_add(id.0);
        let (disk, config) = (self.disks[&id].clone(), self.config.clone());
        let mut node = if self.spares.contains(&id) {
            RaftNode::open_joining(id, disk, node_seed, config)
        } else {
            RaftNode::open(id, peers, disk, node_seed, config)
        }
        .expect("node opens");
        node.handle_tick(self.now).expect("tick");
        self.nodes.insert(id, Some(node));
        self.drain(id);
    }

    fn node(&mut self, id: NodeId) -> &mut RaftNode {
        self.nodes
            .get_mut(&id)
            .and_then(Option::as_mut)
            .unwrap_or_else(|| panic!("{id} is not running"))
    }

    pub(super) fn run(&mut self, command: &str) -> Vec<String> {
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["timeout", node] => self.timeout(node_id(node)),
            ["tick", node] => {
                let now = self.now;
                self.node(node_id(node)).handle_tick(now).expect("tick");
                self.drain(node_id(node));
            }
            ["wall", node, unix_ms] => {
                let unix_ms: u64 = unix_ms.parse().expect("Unix milliseconds");
                self.node(node_id(node)).set_wall_clock(unix_ms);
            }
            ["advance", millis] => {
                let millis: u64 = millis.parse().expect("milliseconds");
                self.now = self.now + Duration::from_millis(millis);
                self.out.push(format!("time {}", self.now));
            }
            ["deliver"] => self.deliver(None),
            ["deliver", node] => self.deliver(Some(node_id(node))),
            ["stabilize"] => self.stabilize(),
            ["partition", rest @ ..] => self.partition(rest),
            ["heal"] => self.cut.clear(),
            ["crash", node] => self.crash(node_id(node)),
            ["restart", node] => self.start(node_id(node)),
            ["wipe", node] => {
                self.crash(node_id(node));
                self.disks.insert(node_id(node), Disk::simulated());
                self.out.push(format!("{node} wiped: a fresh empty disk"));
            }
            ["force-commit", node, index] => {
                let index = LogIndex(index.parse().expect("an index"));
                let now = self.now;
                self.node(node_id(node)).force_commit(now, index);
                self.observer_enabled = false;
                self.out
                    .push(format!("{node} forced commit {index}; observer off"));
            }
            ["stats", node] => self.print_stats(node_id(node)),
            ["transfer-stats", node] => self.print_transfer_stats(node_id(node)),
            ["timeout-now", from, "->", to, term, last] => {
                let message = Message::TimeoutNow {
                    term: replikv_core::Term(number_after(term, "t=")),
                    last: parse_position(last.strip_prefix("last=").expect("last=I@T")),
                };
                self.inject_message(node_id(from), node_id(to), message);
            }
            ["inject", from, "->", to, accepted] => {
                self.inject(node_id(from), node_id(to), accepted);
            }
            ["status"] => self.status(),
            ["lag", node] => self.lag(node_id(node)),
            ["members", node] => self.members(node_id(node)),
            ["token", position] => self.token = parse_position(position),
            ["log", node] => self.print_log(node_id(node)),
            ["synced", node] => self.complete_sync(node_id(node)),
            _ => self.request(&words),
        }
        self.flush_all();
        self.report_changes();
        self.check_invariants();
        std::mem::take(&mut self.out)
    }

    fn timeout(&mut self, id: NodeId) {
        let deadline = self
            .node(id)
            .poll_timeout()
            .expect("nodes always have a deadline");
        self.now = self.now.max(deadline);
        self.out.push(format!("time {}", self.now));
        let now = self.now;
        self.node(id).handle_tick(now).expect("tick");
        self.drain(id);
    }

    fn request(&mut self, words: &[&str]) {
        let (words, explicit_id) = match words.split_last() {
            Some((last, rest)) if last.starts_with("id=") => (rest, Some(request_id(last))),
            _ => (words, None),
        };
        let key = |word: &str| Key::new(expand(word)).expect("key");
        let value = |word: &str| Value::new(expand(word)).expect("value");
        let (node, request) = match words {
            ["put", node, k, v] => (
                node,
                Request::Put {
                    key: key(k),
                    value: value(v),
                },
            ),
            ["delete", node, k] => (node, Request::Delete { key: key(k) }),
            ["cas", node, k, expected, new] => {
                let expected = (*expected != "-").then(|| value(expected));
                let request = Request::CompareAndSet {
                    key: key(k),
                    expected,
                    new: value(new),
                };
                (node, request)
            }
            ["casv", node, k, expected, new] => {
                let request = Request::CompareAndSetVersion {
                    key: key(k),
                    expected: Version(number_after(expected, "v")),
                    new: value(new),
                };
                (node, request)
            }
            ["acquire", node, name, holder, ttl] => {
                let request = Request::AcquireLease {
                    name: key(name),
                    holder: ClientId(number_after(holder, "c")),
                    ttl_ms: number_after(ttl, "ttl="),
                };
                (node, request)
            }
            ["renew" | "release", node, name, holder, token] => {
                let (name, holder) = (key(name), ClientId(number_after(holder, "c")));
                let token = number_after(token, "#");
                let request = if words[0] == "renew" {
                    Request::RenewLease {
                        name,
                        holder,
                        token,
                    }
                } else {
                    Request::ReleaseLease {
                        name,
                        holder,
                        token,
                    }
                };
                (node, request)
            }
            ["put-fenced", node, k, v, lease, token] => {
                let request = Request::PutFenced {
                    key: key(k),
                    value: value(v),
                    lease: key(lease),
                    token: number_after(token, "#"),
                };
                (node, request)
            }
            ["transfer", node, "to", target] => {
                let to = Some(node_id(target));
                (node, Request::TransferLeadership { to })
            }
            ["transfer", node] => (node, Request::TransferLeadership { to: None }),
            ["change", node, kind, target] => {
                let target = node_id(target);
                let change = match *kind {
                    "add-learner" => MembershipChange::AddLearner(target),
                    "promote" => MembershipChange::PromoteLearner(target),
                    "add-voter" => MembershipChange::AddVoter(target),
                    "remove" => MembershipChange::Remove(target),
                    _ => panic!("unknown membership change {kind:?}"),
                };
                (node, Request::ChangeMembership { change })
            }
            ["put-expiring", node, k, v, expiry, rest @ ..] => {
                let expected_version = rest.first().map(|word| Version(number_after(word, "if=v")));
                let request = Request::PutWithExpiry {
                    key: key(k),
                    value: value(v),
                    expected_version,
                    expiry: parse_expiry(expiry),
                };
                (node, request)
            }
            ["expire", node, k, expiry, rest @ ..] => {
                let condition = match rest.first().copied() {
                    None => ExpireCondition::Always,
                    Some("nx") => ExpireCondition::IfNone,
                    Some("xx") => ExpireCondition::IfSome,
                    Some("gt") => ExpireCondition::IfLater,
                    Some("lt") => ExpireCondition::IfEarlier,
                    Some(other) => panic!("unknown expire condition {other:?}"),
                };
                let request = Request::Expire {
                    key: key(k),
                    expiry: parse_expiry(expiry),
                    condition,
                };
                (node, request)
            }
            [kind @ ("ttl" | "ttl-local"), node, k] => {
                let consistency = if *kind == "ttl" {
                    ReadConsistency::Linearizable
                } else {
                    ReadConsistency::Follower
                };
                let request = Request::GetWithExpiry {
                    key: key(k),
                    consistency,
                };
                (node, request)
            }
            ["get", node, k] => {
                let consistency = ReadConsistency::Linearizable;
                (
                    node,
                    Request::Get {
                        key: key(k),
                        consistency,
                    },
                )
            }
            [
                kind @ ("get-local" | "get-follower" | "get-lease" | "get-session"),
                node,
                k,
            ] => {
                let consistency = match *kind {
                    "get-lease" => ReadConsistency::Lease,
                    "get-session" => ReadConsistency::Session { token: self.token },
                    _ => ReadConsistency::Follower,
                };
                (
                    node,
                    Request::Get {
                        key: key(k),
                        consistency,
                    },
                )
            }
            _ => panic!("unknown command: {}", words.join(" ")),
        };
        let id = node_id(node);
        let request_id = explicit_id.unwrap_or_else(|| {
            self.next_sequence += 1;
            RequestId {
                client: ClientId(1),
                sequence: self.next_sequence - 1,
            }
        });
        if let Request::Get {
            consistency: ReadConsistency::Session { token },
            ..
        } = &request
        {
            self.out
                .push(format!("request {request_id} -> {id} token={token}"));
        } else {
            self.out.push(format!("request {request_id} -> {id}"));
        }
        let now = self.now;
        self.node(id)
            .handle_request(now, request_id, request)
            .expect("request");
        self.drain(id);
    }

    /// Collects a node's outputs: sends go in flight, replies are printed.
    fn drain(&mut self, id: NodeId) {
        while let Some(output) = self.node(id).poll_output() {
            match output {
                Output::Send { to, message } => {
                    self.out
                        .push(format!("{id} -> {to} {}", format::message(&message)));
                    self.in_flight.push((id, to, message));
                }
                Output::Reply { request_id, reply } => {
                    if let Some(position) = reply.position() {
                        self.token = self.token.max(position);
                    }
                    self.out.push(format!(
                        "{id} reply {request_id}: {}",
                        format::reply(&reply)
                    ));
                }
                Output::Discarded { writes } => {
                    for write in writes {
                        self.out.push(format!(
                            "{id} discarded {} at {}: {:?}={:?}{}",
                            write.request_id,
                            write.position,
                            write.key,
                            write.value,
                            if write.certain { "" } else { " (uncertain)" }
                        ));
                    }
                }
            }
        }
    }

    fn deliver(&mut self, only: Option<NodeId>) {
        let (now_messages, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(_, to, _)| only.is_none_or(|only| only == *to));
        self.in_flight = later;
        for (from, to, message) in now_messages {
            let reason = if self.nodes[&to].is_none() {
                Some("down")
            } else if self.cut.contains(&(from, to)) {
                Some("partition")
            } else {
                None
            };
            if let Some(reason) = reason {
                let text = format::message(&message);
                self.out
                    .push(format!("drop {from} -> {to} {text} ({reason})"));
                continue;
            }
            let now = self.now;
            self.node(to)
                .handle_message(now, from, message)
                .expect("message");
            self.drain(to);
        }
    }

    fn stabilize(&mut self) {
        for _ in 0..STABILIZE_ROUNDS_MAX {
            if self.in_flight.is_empty() {
                return;
            }
            self.deliver(None);
            self.flush_all();
        }
        panic!("stabilize: messages still in flight after {STABILIZE_ROUNDS_MAX} rounds");
    }

    fn partition(&mut self, words: &[&str]) {
        let split = words.iter().position(|word| *word == "|").expect("a `|`");
        let left: Vec<NodeId> = words[..split].iter().map(|w| node_id(w)).collect();
        let right: Vec<NodeId> = words[split + 1..].iter().map(|w| node_id(w)).collect();
        for a in &left {
            for b in &right {
                self.cut.insert((*a, *b));
                self.cut.insert((*b, *a));
            }
        }
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes.insert(id, None);
        self.outstanding_syncs.remove(&id);
        let Disk::Simulated(disk) = &self.disks[&id] else {
            unreachable!("scripts use simulated disks")
        };
        let report = disk.crash(&mut self.random);
        self.out.push(format!(
            "{id} crashed: {} unsynced writes lost, {} torn",
            report.writes_lost, report.writes_torn
        ));
    }

    fn inject(&mut self, from: NodeId, to: NodeId, accepted: &str) {
        let matched = LogIndex(number_after(accepted, "accepted="));
        let term = self.node(to).term();
        let message = Message::AppendResponse {
            term,
            result: AppendResult::Accepted { matched },
            read_sequence: 0,
        };
        self.inject_message(from, to, message);
    }

    /// Delivers a hand-made message at once.
    fn inject_message(&mut self, from: NodeId, to: NodeId, message: Message) {
        self.out.push(format!(
            "inject {from} -> {to} {}",
            format::message(&message)
        ));
        let now = self.now;
        self.node(to)
            .handle_message(now, from, message)
            .expect("message");
        self.drain(to);
    }

    fn print_transfer_stats(&mut self, id: NodeId) {
        let stats = self.node(id).stats().clone();
        self.out.push(format!(
            "{id} transfer stats: started={} completed={} aborted={} writes refused={} \
             elections started={} timeout-now ignored={} stale messages={} pre-votes={} \
             lease reads served={} fallback={}",
            stats.transfers_started,
            stats.transfers_completed,
            stats.transfers_aborted,
            stats.transfer_writes_refused,
            stats.transfer_elections_started,
            stats.timeout_now_ignored,
            stats.stale_messages,
            stats.pre_votes_started,
            stats.lease_reads_served,
            stats.lease_reads_fallback
        ));
    }

    fn flush_all(&mut self) {
        for id in self.ids.clone() {
            if self.nodes[&id].is_none() {
                continue;
            }
            let now = self.now;
            if !self.pipelined {
                self.node(id).handle_flush(now).expect("flush");
            } else if let Some(pending) = self.node(id).start_flush(now).expect("flush") {
                self.out
                    .push(format!("{id} sync {} started", pending.sequence()));
                self.outstanding_syncs
                    .entry(id)
                    .or_default()
                    .push_back(pending);
            }
            self.drain(id);
        }
    }

    /// `synced nX`: runs nX's oldest outstanding sync and hands it back.
    fn complete_sync(&mut self, id: NodeId) {
        let pending = self
            .outstanding_syncs
            .get_mut(&id)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| panic!("{id} has no outstanding sync"));
        let completed = pending.run();
        self.out
            .push(format!("{id} sync {} completed", completed.sequence));
        let now = self.now;
        self.node(id)
            .handle_sync_completed(now, completed)
            .expect("sync completed");
        self.drain(id);
    }

    fn summary(node: &RaftNode) -> String {
        let leader = node.leader().map_or("none".to_owned(), |l| l.to_string());
        format!(
            "{} {} leader={leader} last={} commit={} applied={}",
            node.role_name(),
            node.term(),
            node.log().last_position(),
            node.commit_index().0,
            node.applied_index().0
        )
    }

    fn report_changes(&mut self) {
        for id in self.ids.clone() {
            let summary = match &self.nodes[&id] {
                Some(node) => Cluster::summary(node),
                None => "down".to_owned(),
            };
            if self.summaries.get(&id) != Some(&summary) {
                self.out.push(format!("{id}: {summary}"));
                self.summaries.insert(id, summary);
            }
            let Some(node) = &self.nodes[&id] else {
                continue;
            };
            let membership = node.membership();
            let text = membership_text(&membership.voters, &membership.learners);
            if self.memberships.get(&id) != Some(&text) {
                self.out.push(format!("{id}: config {text}"));
                self.memberships.insert(id, text);
            }
        }
    }

    fn members(&mut self, id: NodeId) {
        let now = self.now;
        let node = self.node(id);
        let membership = node.membership();
        let text = membership_text(&membership.voters, &membership.learners);
        let pending = node
            .pending_membership_change()
            .map_or("none".to_owned(), |index| index.to_string());
        let lossy = node.replication_status(now).lossy;
        self.out.push(format!(
            "{id} members: {text} pending={pending} lossy={lossy}"
        ));
    }

    fn status(&mut self) {
        for id in self.ids.clone() {
            let summary = self.summaries.get(&id).cloned().unwrap_or_default();
            let state = match &self.nodes[&id] {
                Some(node) => format!(" state={:?}", node.visible_state().expect("state")),
                None => String::new(),
            };
            self.out.push(format!("{id}: {summary}{state}"));
        }
    }

    fn lag(&mut self, id: NodeId) {
        let now = self.now;
        let status = self.node(id).replication_status(now);
        self.out.push(format!(
            "{id} status: {} last={} commit={} applied={}",
            status.term, status.last, status.commit.0, status.applied
        ));
        for lag in status.followers.into_iter().flatten() {
            let silence = lag
                .since_last_ack
                .map_or("never".to_owned(), |silence| format!("{silence:?}"));
            let learner = if lag.voter { "" } else { " (learner)" };
            self.out.push(format!(
                "  {}{learner} matched={} lag={} entries, last ack {silence} ago",
                lag.follower, lag.matched.0, lag.lag_entries
            ));
        }
    }

    fn print_log(&mut self, id: NodeId) {
        let node = self.node(id);
        let log = node.log();
        let mut positions = Vec::new();
        let mut index = log.first_index();
        while index <= log.last_position().index {
            let term = log.term_at(index).expect("in the log");
            positions.push(format!("{}@{}", index.0, term.0));
            index = index.next();
        }
        let compacted = log.first_index().previous().expect("first index >= 1");
        let line = if compacted == LogIndex::ZERO {
            format!("{id} log: {}", positions.join(" "))
        } else {
            let term = log.term_at(compacted).expect("the compacted position");
            let prefix = format!("compacted..{}@{}", compacted.0, term.0);
            format!("{id} log: {prefix} {}", positions.join(" "))
        };
        self.out.push(line.trim_end().to_owned());
    }

    fn print_stats(&mut self, id: NodeId) {
        let stats = self.node(id).stats().clone();
        self.out.push(format!(
            "{id} stats: snapshots started={} sent={} installed={} needed={} chunks sent={} \
             installed={} bytes sent={} installed={} compacted={} truncated={}",
            stats.snapshots_started,
            stats.snapshots_sent,
            stats.snapshots_installed,
            stats.snapshots_needed,
            stats.snapshot_chunks_sent,
            stats.snapshot_chunks_installed,
            stats.snapshot_bytes_sent,
            stats.snapshot_bytes_installed,
            stats.entries_compacted,
            stats.entries_truncated
        ));
    }

    pub(super) fn check_invariants(&mut self) {
        if !self.observer_enabled {
            return;
        }
        let running: Vec<&RaftNode> = self.nodes.values().flatten().collect();
        if let Err(violation) = self.observer.observe(&running) {
            panic!("cluster invariant violated: {violation}");
        }
    }
}

/// `px=N` (relative), `pxat=N` (absolute), `keepttl` or `persist`.
fn parse_expiry(word: &str) -> Expiry {
    match word {
        "keepttl" => Expiry::Keep,
        "persist" => Expiry::Clear,
        _ if word.starts_with("pxat=") => Expiry::AtUnixMs(number_after(word, "pxat=")),
        _ => Expiry::AfterMs(number_after(word, "px=")),
    }
}
