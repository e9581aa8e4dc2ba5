//! End-to-end: the live test's network layer on this machine's kernel — namespaces, a
//! bridge, veth links and iptables partitions — with real `replikv server` processes.
//!
//! The layer lives in the binary crate (`src/livetest/network/`), so this test compiles
//! the same source files as a module of its own. It needs root, `ip netns` and
//! iptables: without them each test prints why and which path ran, and returns (CI runs
//! as root and installs iptables, so there the real path runs and says so).
//!
//! The main test starts a three-node cluster inside three namespaces, lets it elect a
//! leader through the bridge, then isolates the leader: its peers can no longer open a
//! TCP connection to it, while the test process on the host side still can and still
//! gets answers; the two others elect a new leader, which shows that the established
//! peer connections were cut too, not only new ones. Healing brings the old leader back
//! into one agreed cluster. Destroying the network must leave nothing behind. Two more
//! tests check the clean-up paths: `Drop` without `destroy`, and the sweep that removes
//! a crashed run's debris while sparing a live run's objects; one more builds two
//! networks at once. Every wait polls with a
//! deadline.

#[allow(dead_code)]
#[path = "../src/livetest/network/mod.rs"]
mod network;

use network::NodeNetwork;
use redis::Connection;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);
const PEER_PORT: u16 = 17001;
const RESP_PORT: u16 = 7001;

/// Whether the real path can run; prints which path runs either way.
fn namespaces_available(test: &str) -> bool {
    match NodeNetwork::available() {
        Ok(()) => {
            println!("{test}: running with real network namespaces and iptables");
            true
        }
        Err(reason) => {
            println!("{test}: SKIPPED, namespaces unavailable: {reason}");
            false
        }
    }
}

/// A run tag no other test or concurrent run uses.
fn unique_tag(test: &str) -> String {
    format!("t{}{test}", std::process::id())
}

/// Whether a TCP connection from inside node `from`'s namespace to `to` opens within
/// a second (bash's `/dev/tcp`, bounded by `timeout`).
fn reaches(network: &NodeNetwork, from: usize, to: SocketAddr) -> bool {
    let script = format!("exec 3<>/dev/tcp/{}/{}", to.ip(), to.port());
    network
        .command_in_namespace(from, Path::new("timeout"))
        .args(["1", "bash", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("timeout and bash are installed")
        .success()
}

struct Servers {
    children: Vec<Child>,
    _directory: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_servers(network: &NodeNetwork) -> Servers {
    let directory = tempfile::tempdir().unwrap();
    let count = network.node_count();
    let peers: Vec<String> = (0..count)
        .map(|index| format!("{}={}:{PEER_PORT}", index + 1, network.node_address(index)))
        .collect();
    let children = (0..count)
        .map(|index| {
            let address = network.node_address(index);
            let log = std::fs::File::create(directory.path().join(format!("n{index}.log")));
            let mut command =
                network.command_in_namespace(index, Path::new(env!("CARGO_BIN_EXE_replikv")));
            command
                .arg("server")
                .args(["--node-id", &(index + 1).to_string()])
                .args(["--peer-address", &format!("{address}:{PEER_PORT}")])
                .args(["--resp-address", &format!("{address}:{RESP_PORT}")])
                .arg("--data-dir")
                .arg(directory.path().join(format!("n{index}")))
                .args(["--heartbeat-interval-ms", "50"]);
            for peer in &peers {
                command.args(["--peer", peer]);
            }
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log.unwrap())
                .spawn()
                .unwrap()
        })
        .collect();
    Servers {
        children,
        _directory: directory,
    }
}

/// Node `address`'s INFO answer, asked from the host side.
fn info_of(address: IpAddr) -> Option<String> {
    let client = redis::Client::open(format!("redis://{address}:{RESP_PORT}/")).ok()?;
    let mut connection: Connection = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    connection
        .set_read_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    redis::cmd("INFO").query(&mut connection).ok()
}

/// The leader node `address` names in INFO (its index; `None` while it knows none).
fn leader_named_by(address: IpAddr) -> Option<usize> {
    let info = info_of(address)?;
    let leader: usize = info
        .lines()
        .find_map(|line| line.strip_prefix("leader_id:"))?
        .trim()
        .parse()
        .ok()?;
    leader.checked_sub(1)
}

/// Polls until every node in `nodes` names the same leader, which `accept` approves.
fn agreed_leader(network: &NodeNetwork, nodes: &[usize], accept: impl Fn(usize) -> bool) -> usize {
    let start = Instant::now();
    loop {
        let named: Vec<Option<usize>> = nodes
            .iter()
            .map(|node| leader_named_by(network.node_address(*node)))
            .collect();
        if let Some(Some(leader)) = named.first()
            && named.iter().all(|other| *other == Some(*leader))
            && accept(*leader)
        {
            return *leader;
        }
        assert!(start.elapsed() < DEADLINE, "no agreed leader: {named:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn peer_endpoint(network: &NodeNetwork, node: usize) -> SocketAddr {
    SocketAddr::new(network.node_address(node), PEER_PORT)
}

#[test]
fn isolating_the_leader_cuts_its_peers_but_not_the_host_and_healing_rejoins_it() {
    if !namespaces_available("partition test") {
        return;
    }
    let tag = unique_tag("partition");
    let mut network = NodeNetwork::create(&tag, 3).unwrap();
    let servers = start_servers(&network);
    let all = [0, 1, 2];
    let leader = agreed_leader(&network, &all, |_| true);
    let others: Vec<usize> = all.into_iter().filter(|node| *node != leader).collect();
    assert!(reaches(
        &network,
        others[0],
        peer_endpoint(&network, leader)
    ));

    network.partition(&[vec![leader], others.clone()]).unwrap();
    for other in &others {
        assert!(
            !reaches(&network, *other, peer_endpoint(&network, leader)),
            "node {other} still reaches the isolated leader"
        );
        assert!(!reaches(&network, leader, peer_endpoint(&network, *other)));
    }
    assert!(reaches(
        &network,
        others[0],
        peer_endpoint(&network, others[1])
    ));
    let from_host = TcpStream::connect_timeout(&peer_endpoint(&network, leader), DEADLINE);
    assert!(from_host.is_ok(), "the host lost the isolated node");
    let answer = info_of(network.node_address(leader)).unwrap_or_default();
    assert!(
        answer.contains("leader_id:"),
        "the isolated node answers the host"
    );
    // The majority's established connections to the old leader were cut too: it stops
    // hearing heartbeats and elects someone else.
    let new_leader = agreed_leader(&network, &others, |named| named != leader);
    assert!(others.contains(&new_leader));

    network.heal().unwrap();
    assert!(reaches(
        &network,
        others[0],
        peer_endpoint(&network, leader)
    ));
    agreed_leader(&network, &all, |_| true);

    drop(servers);
    network.destroy().unwrap();
    assert_eq!(network::leftovers_of(&tag), Vec::<String>::new());
    let key = network::run_key(&tag);
    assert!(!network::leftovers().iter().any(|name| name.contains(&key)));
}

#[test]
fn dropping_a_network_without_destroy_removes_everything() {
    if !namespaces_available("drop test") {
        return;
    }
    let tag = unique_tag("drop");
    let network = NodeNetwork::create(&tag, 2).unwrap();
    let made = network::leftovers_of(&tag);
    // Two namespaces, two host-side veth ends, one bridge.
    assert_eq!(made.len(), 5, "{made:?}");
    assert!(
        !network::leftovers().iter().any(|name| made.contains(name)),
        "a live network is not a leftover"
    );
    let host = Command::new("ip")
        .args(["-o", "addr", "show"])
        .output()
        .unwrap();
    let host_address = network.host_address().to_string();
    assert!(String::from_utf8_lossy(&host.stdout).contains(&host_address));
    drop(network);
    assert_eq!(network::leftovers_of(&tag), Vec::<String>::new());
}

#[test]
fn two_runs_at_once_get_their_own_names_and_subnets() {
    if !namespaces_available("concurrent test") {
        return;
    }
    let tags = [unique_tag("first"), unique_tag("second")];
    let builders: Vec<_> = tags
        .iter()
        .map(|tag| {
            let tag = tag.clone();
            std::thread::spawn(move || NodeNetwork::create(&tag, 2).unwrap())
        })
        .collect();
    let networks: Vec<NodeNetwork> = builders
        .into_iter()
        .map(|builder| builder.join().unwrap())
        .collect();
    let subnet = |network: &NodeNetwork| match network.host_address() {
        IpAddr::V4(address) => address.octets()[..3].to_vec(),
        IpAddr::V6(_) => unreachable!("the layer uses IPv4"),
    };
    assert_ne!(subnet(&networks[0]), subnet(&networks[1]));
    assert_ne!(networks[0].namespace(0), networks[1].namespace(0));
    // The same tag twice at once is refused, and the refusal removes nothing of the
    // live network.
    assert!(NodeNetwork::create(&tags[0], 1).is_err());
    assert_eq!(network::leftovers_of(&tags[0]).len(), 5);
    for network in networks {
        network.destroy().unwrap();
    }
    for tag in &tags {
        assert_eq!(network::leftovers_of(tag), Vec::<String>::new());
    }
}

/// Runs `ip args...`, asserting it succeeds.
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}");
}

#[test]
fn a_crashed_runs_debris_is_a_leftover_and_the_sweep_removes_it() {
    if !namespaces_available("leftover test") {
        return;
    }
    // Debris as a killed run leaves it: a registration, a namespace, a bridge.
    let tag = unique_tag("crashed");
    let key = network::run_key(&tag);
    let namespace = format!("{}{key}-{tag}-0", network::PREFIX);
    let bridge = format!("{}{key}-br", network::PREFIX);
    let mut owner = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::create_dir_all(network::registry_directory()).unwrap();
    let registration = network::registry_directory().join(&key);
    std::fs::write(&registration, format!("{}\n", owner.id())).unwrap();
    ip(&["netns", "add", &namespace]);
    ip(&["link", "add", "name", &bridge, "type", "bridge"]);

    // While its owner lives, it is not debris, and the sweep spares it.
    assert_eq!(network::leftovers_of(&tag).len(), 2);
    assert!(!network::leftovers().contains(&namespace));
    network::remove_leftovers().unwrap();
    assert_eq!(network::leftovers_of(&tag).len(), 2);

    // The owner dies without cleaning up: now it is.
    owner.kill().unwrap();
    owner.wait().unwrap();
    let leftovers = network::leftovers();
    assert!(leftovers.contains(&namespace), "{leftovers:?}");
    assert!(leftovers.contains(&bridge), "{leftovers:?}");
    network::remove_leftovers().unwrap();
    assert_eq!(network::leftovers_of(&tag), Vec::<String>::new());
    assert!(
        !registration.exists(),
        "the stale registration is removed too"
    );
}
