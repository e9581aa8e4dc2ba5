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
//! Network faults need the nodes in namespaces of their own (root, `ip netns`,
//! iptables: `network/`): `partition-majority` (alias `partition`: two random halves),
//! `isolate-leader` (the leader alone on one side) and `bridge` (two halves that both
//! reach one node). Firewall rules cut the links for the window and are flushed at its
//! end; the test process still reaches every node. When namespaces cannot be built,
//! [`parse_faults`] names the network faults as not injectable, with the reason, and
//! the run goes on with the others. `link-faults` sets a drawn latency, jitter, loss,
//! duplication and reordering on every node's outgoing links for the window, through
//! the servers' own fault hook (`link_faults.rs`; the nodes then run with
//! `--testing-faults`).

use super::cluster::LiveCluster;
use super::link_faults;
use super::recorder::Recorder;
use rand::seq::{IndexedRandom, SliceRandom};
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
    /// Cut the nodes into two random halves (needs the namespace network).
    PartitionMajority,
    /// Cut the leader off from every other node (needs the namespace network).
    IsolateLeader,
    /// Two halves that both see one bridge node (needs the namespace network).
    Bridge,
    /// Latency, loss, duplication and reordering on every link (the server's hook).
    LinkFaults,
    /// A drawn wall-clock offset on every node (the server's testing clock offset).
    ClockSkew,
}

/// Every fault, in the order of the documentation.
const FAULTS: [Fault; 10] = [
    Fault::Kill,
    Fault::KillLeader,
    Fault::Pause,
    Fault::PauseLeader,
    Fault::StrandLeader,
    Fault::PartitionMajority,
    Fault::IsolateLeader,
    Fault::Bridge,
    Fault::LinkFaults,
    Fault::ClockSkew,
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
            Fault::PartitionMajority => "partition-majority",
            Fault::IsolateLeader => "isolate-leader",
            Fault::Bridge => "bridge",
            Fault::LinkFaults => "link-faults",
            Fault::ClockSkew => "clock-skew",
        }
    }

    fn parse(name: &str) -> Option<Fault> {
        let name = if name == "partition" {
            "partition-majority"
        } else {
            name
        };
        FAULTS.into_iter().find(|fault| fault.name() == name)
    }

    /// Whether the fault cuts the network (and so needs the namespaces).
    pub fn is_network(self) -> bool {
        matches!(
            self,
            Fault::PartitionMajority | Fault::IsolateLeader | Fault::Bridge
        )
    }

    /// Whether the fault needs the servers' testing admin routes (`--testing-faults`).
    pub fn needs_testing_faults(self) -> bool {
        matches!(self, Fault::LinkFaults | Fault::ClockSkew)
    }

    fn targets_leader(self) -> bool {
        matches!(
            self,
            Fault::KillLeader | Fault::PauseLeader | Fault::StrandLeader | Fault::IsolateLeader
        )
    }
}

/// The faults a `--faults` list asks for, and the messages for those that cannot be
/// injected (network faults when `network` says why namespaces cannot be built); an
/// unknown name is an error. `none` or an empty list: no faults.
pub fn parse_faults(
    text: &str,
    network: &Result<(), String>,
) -> Result<(Vec<Fault>, Vec<String>), String> {
    let mut faults = Vec::new();
    let mut skipped = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() || name == "none" {
            continue;
        }
        let fault = Fault::parse(name).ok_or_else(|| {
            let known: Vec<&str> = FAULTS.iter().map(|fault| fault.name()).collect();
            format!("unknown fault {name:?} (known: {}, none)", known.join(", "))
        })?;
        match network {
            Err(why) if fault.is_network() => {
                skipped.push(format!("{name}: cannot be injected: {why}"));
            }
            _ if !faults.contains(&fault) => faults.push(fault),
            _ => {}
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
        let size = locked.size();
        drop(locked);
        let injected = if fault == Fault::LinkFaults {
            let faults = link_faults::draw(&mut random);
            degrade_links(&faults, spec.interval, cluster, recorder)
        } else if fault == Fault::ClockSkew {
            skew_clocks(spec.interval, cluster, recorder, &mut random)
        } else if fault.is_network() {
            let cut = components(fault, size, target, &mut random);
            cut_network(fault, &cut, spec.interval, cluster, recorder)
        } else {
            inject(fault, target, spec.interval, cluster, recorder)
        };
        if let Err(error) = injected {
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
    let window = recorder.fault_started(fault.name(), &format!("n{target}"));
    match fault {
        Fault::Pause | Fault::PauseLeader => lock().pause(target),
        Fault::Kill | Fault::KillLeader => lock().kill(target),
        Fault::StrandLeader => others.iter().for_each(|node| lock().kill(*node)),
        Fault::PartitionMajority
        | Fault::IsolateLeader
        | Fault::Bridge
        | Fault::LinkFaults
        | Fault::ClockSkew => {
            unreachable!("network, link and clock faults have their own functions")
        }
    }
    let mut restarted = Ok(());
    if fault == Fault::StrandLeader {
        wait(recorder, duration / 2);
        let mut locked = lock();
        locked.kill(target);
        for node in &others {
            restarted = restarted.and(locked.restart(*node));
        }
        drop(locked);
        wait(recorder, duration / 2);
    } else {
        wait(recorder, duration);
    }
    let healed = match fault {
        Fault::Pause | Fault::PauseLeader => {
            lock().resume(target);
            Ok(())
        }
        _ => lock().restart(target),
    };
    // The window closes whatever failed: an open window would shade the rest of the run.
    recorder.fault_ended(window);
    restarted.and(healed)
}

/// The components a network fault cuts the nodes `1..=size` into: the target alone
/// (`isolate-leader`), two random halves (`partition-majority`), or two random halves
/// both joined to the target (`bridge`).
fn components(fault: Fault, size: u16, target: u16, random: &mut ChaCha8Rng) -> Vec<Vec<u16>> {
    let mut others: Vec<u16> = (1..=size).filter(|node| *node != target).collect();
    others.shuffle(random);
    match fault {
        Fault::IsolateLeader => vec![vec![target], others],
        Fault::Bridge => {
            let half = others.len() / 2;
            let mut left = others[..half].to_vec();
            let mut right = others[half..].to_vec();
            left.push(target);
            right.push(target);
            vec![left, right]
        }
        _ => {
            others.push(target);
            others.shuffle(random);
            let half = others.len() / 2;
            vec![others[..half].to_vec(), others[half..].to_vec()]
        }
    }
}

/// Sets `faults` on every running node's links for `duration` (less if the run stops),
/// clears them and records the window.
fn degrade_links(
    faults: &serde_json::Value,
    duration: Duration,
    cluster: &Mutex<LiveCluster>,
    recorder: &Recorder,
) -> Result<(), String> {
    let addresses = cluster.lock().expect("cluster lock").http_addresses();
    let window = recorder.fault_started(Fault::LinkFaults.name(), "all links");
    let mut result = Ok(());
    for address in &addresses {
        result = result.and(link_faults::apply(*address, Some(faults)));
    }
    wait(recorder, duration);
    for address in &addresses {
        result = result.and(link_faults::apply(*address, None));
    }
    recorder.fault_ended(window);
    result
}

/// Gives every running node a drawn wall-clock offset for `duration` (less if the run
/// stops), sets them back to 0 and records the window (its target lists the offsets).
fn skew_clocks(
    duration: Duration,
    cluster: &Mutex<LiveCluster>,
    recorder: &Recorder,
    random: &mut ChaCha8Rng,
) -> Result<(), String> {
    let addresses = cluster.lock().expect("cluster lock").http_addresses();
    let offsets: Vec<i64> = addresses
        .iter()
        .map(|_| link_faults::draw_clock_offset_ms(random))
        .collect();
    let described: Vec<String> = addresses
        .iter()
        .zip(&offsets)
        .map(|(address, offset)| format!("{address} {offset:+} ms"))
        .collect();
    let window = recorder.fault_started(Fault::ClockSkew.name(), &described.join(","));
    let mut result = Ok(());
    for (address, offset) in addresses.iter().zip(&offsets) {
        result = result.and(link_faults::set_clock_offset(*address, *offset));
    }
    wait(recorder, duration);
    for address in &addresses {
        result = result.and(link_faults::set_clock_offset(*address, 0));
    }
    recorder.fault_ended(window);
    result
}

/// `n1,n2|n3`: the components of a partition.
fn describe(components: &[Vec<u16>]) -> String {
    let named: Vec<String> = components
        .iter()
        .map(|component| {
            let nodes: Vec<String> = component.iter().map(|node| format!("n{node}")).collect();
            nodes.join(",")
        })
        .collect();
    named.join("|")
}

/// Cuts the network into `cut` for `duration` (less if the run stops), heals it and
/// records the window.
fn cut_network(
    fault: Fault,
    cut: &[Vec<u16>],
    duration: Duration,
    cluster: &Mutex<LiveCluster>,
    recorder: &Recorder,
) -> Result<(), String> {
    let window = recorder.fault_started(fault.name(), &describe(cut));
    let cutting = cluster.lock().expect("cluster lock").partition(cut);
    if cutting.is_ok() {
        wait(recorder, duration);
    }
    let healed = cluster.lock().expect("cluster lock").heal_network();
    recorder.fault_ended(window);
    cutting.and(healed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lists_parse_and_name_what_cannot_be_injected() {
        let no_network: Result<(), String> = Err("not root".into());
        let (faults, skipped) =
            parse_faults("kill-leader, pause,kill-leader", &no_network).unwrap();
        assert_eq!(faults, vec![Fault::KillLeader, Fault::Pause]);
        assert!(skipped.is_empty());
        let (faults, skipped) = parse_faults("pause,isolate-leader", &no_network).unwrap();
        assert_eq!(faults, vec![Fault::Pause]);
        assert_eq!(
            skipped,
            vec!["isolate-leader: cannot be injected: not root".to_string()]
        );
        let (faults, skipped) = parse_faults("partition,bridge", &Ok(())).unwrap();
        assert_eq!(faults, vec![Fault::PartitionMajority, Fault::Bridge]);
        assert!(skipped.is_empty());
        assert_eq!(parse_faults("none", &Ok(())).unwrap().0, Vec::new());
        assert!(parse_faults("explode", &Ok(())).is_err());
    }

    #[test]
    fn partitions_cover_every_node() {
        let mut random = ChaCha8Rng::seed_from_u64(3);
        for fault in [
            Fault::PartitionMajority,
            Fault::IsolateLeader,
            Fault::Bridge,
        ] {
            for size in 3..=5u16 {
                let cut = components(fault, size, 2, &mut random);
                assert_eq!(cut.len(), 2, "{fault:?}");
                let mut nodes: Vec<u16> = cut.concat();
                nodes.sort_unstable();
                nodes.dedup();
                assert_eq!(nodes, (1..=size).collect::<Vec<_>>(), "{fault:?} {cut:?}");
                let in_both = cut[0].iter().filter(|node| cut[1].contains(node)).count();
                assert_eq!(in_both, usize::from(fault == Fault::Bridge), "{cut:?}");
            }
        }
        assert_eq!(
            components(Fault::IsolateLeader, 3, 2, &mut random)[0],
            vec![2]
        );
        assert_eq!(describe(&[vec![1, 2], vec![3]]), "n1,n2|n3");
    }
}
