//! How long a `raft-majority` cluster is without a leader that commits: a stopwatch from
//! the leader's crash to the first client write committed by a new leader.
//!
//! The issue's failover bar reads "with default settings, from leader crash to the first
//! committed write on a new leader, median under 1.5 election timeouts across 1,000
//! seeds". [`FailoverStopwatch`] is the [`Director`] that measures one seed: it waits
//! until a leader is established (every node follows it in its term) at or after
//! `crash_after`, crashes it, and then, after every event, reads each new leader's
//! newly committed entries (only those, so the cost per event stays small) until one is
//! a client write of the new leader's own term. The time between the two events, in
//! virtual time, is the failover time. The old leader stays down, so the new leader is
//! elected by the two survivors alone, the common case of a crashed leader.
//!
//! The stopwatch therefore includes everything a client waits for: the followers'
//! election timeouts (measured from their last contact with the old leader), the pre-vote
//! and vote rounds, the new leader's no-op, and the time clients need to find the new
//! leader (a refused connection, a redirect) and get a write committed. [`measure`]
//! runs one seed of the defaults (3 nodes, 5 clients, `none` faults) and returns it.

use crate::director::{Directive, Director};
use crate::models::raft_factory;
use crate::options::{FaultPreset, SimulationOptions};
use crate::run::run_directed;
use replikv_core::replica::Replica;
use replikv_core::{Instant, LogIndex, NodeId, Term};
use replikv_replication::single_leader::{Command, RaftConfig, RaftNode};
use std::collections::BTreeMap;
use std::time::Duration;

/// Most entries (and payload bytes) read from a node's log per event while looking for
/// the first write.
const ENTRIES_READ_MAX: usize = 256;
const READ_SIZE_MAX_BYTES: usize = 1 << 20;

/// Crashes the leader and times the first write a new leader commits.
#[derive(Debug)]
pub struct FailoverStopwatch {
    /// The leader is crashed at the first event at or after this time when one is
    /// established.
    pub crash_after: Duration,
    /// The crashed leader, its term and when it crashed.
    pub crashed: Option<(NodeId, Term, Instant)>,
    /// Per node, the last committed index already read.
    read_up_to: BTreeMap<NodeId, LogIndex>,
    /// Crash to first write committed by a new leader, once seen.
    pub failover: Option<Duration>,
    /// An entry that could not be read or decoded (a bug, reported by [`measure`]).
    pub error: Option<String>,
}

impl FailoverStopwatch {
    #[must_use]
    pub fn new(crash_after: Duration) -> FailoverStopwatch {
        FailoverStopwatch {
            crash_after,
            crashed: None,
            read_up_to: BTreeMap::new(),
            failover: None,
            error: None,
        }
    }

    /// Whether `node`, leading after the crash, newly committed a write of its term.
    fn committed_a_write(&mut self, node: &RaftNode) -> Result<bool, String> {
        let commit = node.commit_index();
        let read_up_to = self.read_up_to.entry(node.id()).or_insert(commit);
        if commit <= *read_up_to {
            return Ok(false);
        }
        let from = read_up_to.next();
        let entries = node
            .log()
            .read_range(from, ENTRIES_READ_MAX, READ_SIZE_MAX_BYTES)
            .map_err(|error| format!("{}: reading {from}: {error}", node.id()))?;
        for entry in entries {
            if entry.position.index > commit {
                break;
            }
            *read_up_to = entry.position.index;
            let command = Command::decode(&entry.payload)
                .map_err(|error| format!("{}: entry {}: {error}", node.id(), entry.position))?;
            if entry.position.term == node.term() && matches!(command, Command::Write { .. }) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Director<RaftNode> for FailoverStopwatch {
    fn after_event(
        &mut self,
        now: Instant,
        nodes: &[Option<&RaftNode>],
        directives: &mut Vec<Directive>,
    ) {
        if self.failover.is_some() || self.error.is_some() {
            return;
        }
        let Some((old_leader, old_term, crashed_at)) = self.crashed else {
            if now >= Instant::ZERO + self.crash_after
                && let Some((leader, term)) = established_leader(nodes)
            {
                self.crashed = Some((leader, term, now));
                directives.push(Directive::Crash(leader));
            }
            return;
        };
        for node in nodes.iter().flatten() {
            if node.id() == old_leader || !node.is_leader() || node.term() <= old_term {
                continue;
            }
            match self.committed_a_write(node) {
                Ok(true) => {
                    self.failover = Some(now.saturating_duration_since(crashed_at));
                    return;
                }
                Ok(false) => {}
                Err(error) => self.error = Some(error),
            }
        }
    }
}

/// Runs one seed with the default Raft configuration and simulator defaults (3 nodes,
/// 5 clients, `none` faults), crashes the leader about one virtual second in, and
/// returns the failover time; an error if the run failed or no new leader committed a
/// write before the end of the fault phase (2.5 virtual seconds, so at least five
/// maximum election timeouts after the crash).
pub fn measure(seed: u64) -> Result<Duration, String> {
    let mut options = SimulationOptions::new(seed, FaultPreset::None);
    options.duration = Duration::from_millis(2_500);
    options.quiet_period = Duration::from_secs(1);
    // The stopwatch watches the first write a new leader commits: no client needs to
    // retry an unknown write under its old id (and the short quiet period allows none).
    options.workload.unknown_retries_max = 0;
    let factory = raft_factory(RaftConfig::default());
    let mut stopwatch = FailoverStopwatch::new(Duration::from_secs(1));
    let report = run_directed(&options, factory, &mut stopwatch);
    if let Some(failure) = &report.failure {
        return Err(format!("seed {seed}: {failure}"));
    }
    if let Some(error) = stopwatch.error {
        return Err(format!("seed {seed}: {error}"));
    }
    stopwatch
        .failover
        .ok_or_else(|| format!("seed {seed}: no new leader committed a write"))
}

/// The established leader of a Raft cluster: every running node follows it in its term.
/// For directors that act once a cluster settled.
#[must_use]
pub fn established_leader(nodes: &[Option<&RaftNode>]) -> Option<(NodeId, Term)> {
    let leader = nodes.iter().flatten().find(|node| node.is_leader())?;
    let (id, term) = (leader.id(), leader.term());
    let followed = nodes
        .iter()
        .all(|node| node.is_some_and(|n| n.term() == term && n.leader() == Some(id)));
    followed.then_some((id, term))
}
