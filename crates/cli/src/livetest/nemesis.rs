//! The nemesis: faults injected on a schedule, each one recorded as a window.
//!
//! Jepsen's name for the adversary. This one works on processes: `kill` / `kill-leader`
//! (`kill -9` a random node or the current leader; at the end of the window the node
//! restarts on its data directory, so what it had not fsynced is gone and recovery must
//! cope) and `pause` / `pause-leader` (SIGSTOP, then SIGCONT: the node is frozen with its
//! sockets open, peers and clients see only silence — the hard case for leases and
//! timeouts). The schedule alternates `--fault-interval-s` without a fault and
//! `--fault-interval-s` with one; each fault is drawn from `--faults` with the run's
//! seeded generator, and its target is the node the majority names as leader (for the
//! `-leader` faults, or a random node when none is named) or a random node.
//!
//! Every window goes to the recorder (kind, target, start, end on the run's clock), so
//! the summary can compare availability inside and outside faults and `faults.jsonl`
//! lets a reader line faults up with the history. When the run stops, a fault in
//! progress is healed at once and its window closed; [`run`] returns what it noticed on
//! the way (a node that exited by itself is a finding, not a fault we injected).
//!
//! `strand-leader` is the process-only stand-in for "partition the leader away, then
//! lose it": every follower is killed with `kill -9` (the leader is alone, as if cut
//! off: pausing them would not do, since the leader's messages would wait in their
//! sockets' receive buffers and be delivered on SIGCONT), half the window later the
//! leader is killed too and the followers restarted (they elect a leader among
//! themselves, without whatever the old leader wrote alone), and at the end of the
//! window the old leader restarts and rejoins as a follower. In `majority` mode nothing
//! the lone leader did can have been acknowledged; in `async` mode it acknowledged
//! writes no one else has, and they are gone: the checkers must say so (this is how the
//! issue's "async loses writes" bar is shown without root).
//!
//! Network faults (`partition-majority`, `isolate-leader`, `bridge`) and transport
//! faults (`link-faults`) need the network layer of `replikv test` (namespaces, the
//! transport's fault endpoint), which this build does not have: [`parse_faults`] names
//! them as not injectable, with the reason, and the run goes on with the others.

use super::cluster::LiveCluster;
use super::recorder::Recorder;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a waiting nemesis looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// A fault the nemesis can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` a random node, restart it at the end of the window.
    Kill,
    /// `kill -9` the leader, restart it at the end of the window.
    KillLeader,
    /// SIGSTOP a random node, SIGCONT at the end of the window.
    Pause,
    /// SIGSTOP the leader, SIGCONT at the end of the window.
    PauseLeader,
    /// Kill every follower, then the lone leader; restart the followers, then it.
    StrandLeader,
}

/// Fault names that exist but cannot be injected by this build.
const NOT_INJECTABLE: [&str; 5] = [
    "partition",
    "partition-majority",
    "isolate-leader",
    "bridge",
    "link-faults",
];

impl Fault {
    /// The fault's name on the command line and in `faults.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::KillLeader => "kill-leader",
            Fault::Pause => "pause",
            Fault::PauseLeader => "pause-leader",
            Fault::StrandLeader => "strand-leader",
        }
    }

    fn parse(name: &str) -> Option<Fault> {
        [
            Fault::Kill,
            Fault::KillLeader,
            Fault::Pause,
            Fault::PauseLeader,
            Fault::StrandLeader,
        ]
        .into_iter()
        .find(|fault| fault.name() == name)
    }

    fn targets_leader(self) -> bool {
        matches!(
            self,
            Fault::KillLeader | Fault::PauseLeader | Fault::StrandLeader
        )
    }
}

/// The faults a `--faults` list asks for, and the messages for those that cannot be
/// injected; an unknown name is an error. `none` or an empty list: no faults.
pub fn parse_faults(text: &str) -> Result<(Vec<Fault>, Vec<String>), String> {
    let mut faults = Vec::new();
    let mut skipped = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() || name == "none" {
            continue;
        }
        if let Some(fault) = Fault::parse(name) {
            if !faults.contains(&fault) {
                faults.push(fault);
            }
        } else if NOT_INJECTABLE.contains(&name) {
            skipped.push(format!(
                "{name}: cannot be injected: network faults need the namespace network layer, \
                 which this build of replikv test does not have"
            ));
        } else {
            return Err(format!(
                "unknown fault {name:?} (known: kill, kill-leader, pause, pause-leader, \
                 strand-leader, none)"
            ));
        }
    }
    Ok((faults, skipped))
}

/// Sleeps `duration` unless the run stops first; returns whether it is stopping.
fn wait(recorder: &Recorder, duration: Duration) -> bool {
    let until = Instant::now() + duration;
    while Instant::now() < until {
        if recorder.stopping() {
            return true;
        }
        std::thread::sleep(STOP_POLL.min(until.saturating_duration_since(Instant::now())));
    }
    recorder.stopping()
}

/// The schedule's settings.
#[derive(Clone, Debug)]
pub struct NemesisSpec {
    pub faults: Vec<Fault>,
    pub interval: Duration,
    pub seed: u64,
}

/// Runs the schedule until the recorder says stop; returns what it noticed.
pub fn run(
    spec: &NemesisSpec,
    cluster: &Mutex<LiveCluster>,
    recorder: &Arc<Recorder>,
) -> Vec<String> {
    let mut random = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut findings = Vec::new();
    loop {
        if wait(recorder, spec.interval) {
            break;
        }
        let Some(fault) = spec.faults.choose(&mut random).copied() else {
            continue;
        };
        let mut locked = cluster.lock().expect("cluster lock");
        if let Err(error) = locked.check_alive() {
            findings.push(error);
        }
        let leader = fault.targets_leader().then(|| locked.leader()).flatten();
        let target = leader.unwrap_or_else(|| random.random_range(1..=locked.size()));
        drop(locked);
        if let Err(error) = inject(fault, target, spec.interval, cluster, recorder) {
            findings.push(format!("{} of node {target}: {error}", fault.name()));
        }
    }
    findings
}

/// Injects one fault on `target`, lasting `duration` (less if the run stops), heals it
/// and records its window.
fn inject(
    fault: Fault,
    target: u16,
    duration: Duration,
    cluster: &Mutex<LiveCluster>,
    recorder: &Recorder,
) -> Result<(), String> {
    let lock = || cluster.lock().expect("cluster lock");
    let others: Vec<u16> = (1..=lock().size()).filter(|node| *node != target).collect();
    // The window opens before the fault and closes after the healing: every operation
    // the fault could have touched is inside it.
    let window = recorder.fault_started(fault.name(), target);
    match fault {
        Fault::Kill | Fault::KillLeader | Fault::StrandLeader => {}
        Fault::Pause | Fault::PauseLeader => lock().pause(target),
    }
    match fault {
        Fault::Kill | Fault::KillLeader => lock().kill(target),
        Fault::StrandLeader => others.iter().for_each(|node| lock().kill(*node)),
        Fault::Pause | Fault::PauseLeader => {}
    }
    if fault == Fault::StrandLeader {
        wait(recorder, duration / 2);
        let mut locked = lock();
        locked.kill(target);
        for node in &others {
            locked.restart(*node)?;
        }
        drop(locked);
        wait(recorder, duration / 2);
    } else {
        wait(recorder, duration);
    }
    let healed = match fault {
        Fault::Kill | Fault::KillLeader | Fault::StrandLeader => lock().restart(target),
        Fault::Pause | Fault::PauseLeader => {
            lock().resume(target);
            Ok(())
        }
    };
    recorder.fault_ended(window);
    healed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_name_what_cannot_be_injected() {
        let (faults, skipped) = parse_faults("kill-leader, pause,kill-leader").unwrap();
        assert_eq!(faults, vec![Fault::KillLeader, Fault::Pause]);
        assert!(skipped.is_empty());
        let (faults, skipped) = parse_faults("pause,isolate-leader").unwrap();
        assert_eq!(faults, vec![Fault::Pause]);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].starts_with("isolate-leader"));
        assert_eq!(parse_faults("none").unwrap().0, Vec::new());
        assert!(parse_faults("explode").is_err());
    }
}
