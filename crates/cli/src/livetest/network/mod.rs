//! Real network partitions for live tests: one network namespace per node, joined by
//! veth links to a bridge, with firewall rules inside the namespaces cutting links.
//!
//! `replikv test` runs real server processes and must be able to cut them apart the
//! way a broken switch would: a partitioned node keeps running, its sockets stay open,
//! and its packets to the other side simply vanish. On Linux, as root, that is done
//! without touching the machine's real networks:
//!
//! ```text
//!            root namespace: bridge rkv-KEY-br, 10.213.N.1/24 (the test process)
//!              |                     |                     |
//!        rkv-KEY-h0            rkv-KEY-h1            rkv-KEY-h2      (veth host ends)
//!              |                     |                     |
//!   [ns rkv-KEY-TAG-0]    [ns rkv-KEY-TAG-1]    [ns rkv-KEY-TAG-2]
//!     eth0 10.213.N.2       eth0 10.213.N.3       eth0 10.213.N.4    (+ lo up)
//! ```
//!
//! A server started through [`NodeNetwork::command_in_namespace`] binds its node's
//! address; peers reach each other through the bridge, and the test process, sitting on
//! the bridge's `.1`, reaches every node. [`NodeNetwork::partition`] installs drop rules
//! in each namespace for the peers it is cut from (see `partition.rs` for why only
//! arriving packets are dropped and why established connections are cut too);
//! [`NodeNetwork::heal`] flushes them. The kernel has no `netem` here, so latency, loss
//! and reordering come from the server's own fault hook instead (`--testing-faults`).
//!
//! Clean-up is the other half of the job. Names carry a prefix and a run key
//! (`naming.rs`), a live run registers itself, and everything a network made is removed
//! by [`NodeNetwork::destroy`], by `Drop` if the caller forgot or unwound, and, after a
//! crash (`kill -9`, power loss of the test process), by [`remove_leftovers`], which
//! deletes every prefixed object no live run owns. Rules live only inside the
//! namespaces, so deleting a namespace deletes its rules: no rule is ever added to the
//! root namespace's tables, and there is none to leak. Processes still running inside a
//! namespace keep its network stack alive after the name is removed; the caller stops
//! its servers first, and `destroy` reports any it finds.
//!
//! Two runs at once are safe: different run tags give different names, and each
//! network picks, under a lock, a /24 that overlaps no network the machine already has
//! (including the other run's bridge).

mod commands;
mod naming;
mod partition;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;

pub use naming::{NODE_COUNT_MAX, PREFIX, key_of as run_key, registry_directory};

/// A private network of `node_count` namespaces; see the module documentation.
#[derive(Debug)]
pub struct NodeNetwork {
    key: String,
    tag: String,
    node_count: usize,
    subnet: naming::Subnet,
    /// Namespaces created so far (all of them once `create` returned).
    namespaces: Vec<String>,
    /// Links created in the root namespace: the bridge, then the host-side veth ends.
    links: Vec<String>,
    /// Whether the registry holds our key (cleared first thing on tear-down).
    registered: bool,
    /// The components of the current partition (empty: healed).
    components: Vec<Vec<usize>>,
    torn_down: bool,
}

/// Whether this process runs as root (effective user id 0), from `/proc/self/status`.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|line| line.starts_with("Uid:"))?;
            let effective = line.split_whitespace().nth(2)?;
            Some(effective == "0")
        })
        .unwrap_or(false)
}

impl NodeNetwork {
    /// Ok when this process can build namespaces (root, `ip`, `iptables` present); Err
    /// says why not.
    pub fn available() -> Result<(), String> {
        if !cfg!(target_os = "linux") {
            return Err("network namespaces need Linux".into());
        }
        if !is_root() {
            return Err("network namespaces need root (effective user id 0)".into());
        }
        commands::ip(&["netns", "list"])
            .map_err(|error| format!("`ip netns` does not work: {error}"))?;
        commands::run("iptables-restore", &["--version"])
            .map_err(|error| format!("iptables is missing (apt-get install iptables): {error}"))?;
        Ok(())
    }

    /// One namespace per node, a bridge in the root namespace, a veth per node; node i
    /// gets `.(i + 2)` in a private /24 (host side `.1`). Names carry `run_tag` and
    /// [`PREFIX`] so leftovers can be found. Loopback is up inside each namespace.
    pub fn create(run_tag: &str, node_count: usize) -> Result<NodeNetwork, String> {
        if !(1..=NODE_COUNT_MAX).contains(&node_count) {
            return Err(format!(
                "node count {node_count} outside 1..={NODE_COUNT_MAX}"
            ));
        }
        Self::available()?;
        let key = naming::key_of(run_tag);
        let mut network = NodeNetwork {
            key: key.clone(),
            tag: naming::sanitized_tag(run_tag),
            node_count,
            subnet: naming::Subnet {
                address: Ipv4Addr::UNSPECIFIED,
                prefix_length: 24,
            },
            namespaces: Vec::new(),
            links: Vec::new(),
            registered: false,
            components: Vec::new(),
            torn_down: false,
        };
        // On any error, `network` is dropped here and removes what it made.
        network.create_bridge()?;
        for node_index in 0..node_count {
            network.create_node(node_index)?;
        }
        Ok(network)
    }

    /// Under the registry lock: claims the key, removes a crashed run's debris of the
    /// same key, picks the subnet and brings the bridge up with the host address.
    fn create_bridge(&mut self) -> Result<(), String> {
        let _lock = naming::lock_registry()?;
        if naming::is_owned(&self.key) {
            return Err(format!(
                "a live run already owns network key {} (same run tag?)",
                self.key
            ));
        }
        naming::register(&self.key)?;
        self.registered = true;
        remove_objects(&objects_of_key(&self.key))?;
        let used = naming::networks_in_use()?;
        self.subnet = naming::choose_subnet(&self.key, &used)
            .ok_or("no free /24 in 10.213.0.0/16 or 172.29.0.0/16")?;
        let bridge = naming::bridge_name(&self.key);
        commands::ip(&["link", "add", "name", &bridge, "type", "bridge"])?;
        self.links.push(bridge.clone());
        let host_address = format!("{}/24", self.subnet.host(1));
        commands::ip(&["addr", "add", &host_address, "dev", &bridge])?;
        commands::ip(&["link", "set", &bridge, "up"])?;
        Ok(())
    }

    /// Node `node_index`'s namespace, veth pair, address and firewall chain.
    fn create_node(&mut self, node_index: usize) -> Result<(), String> {
        let namespace = naming::namespace_name(&self.key, &self.tag, node_index);
        let host_link = naming::host_link_name(&self.key, node_index);
        let node_link = naming::node_link_name(&self.key, node_index);
        commands::ip(&["netns", "add", &namespace])?;
        self.namespaces.push(namespace.clone());
        commands::ip(&[
            "link", "add", "name", &host_link, "type", "veth", "peer", "name", &node_link,
        ])?;
        self.links.push(host_link.clone());
        commands::ip(&["link", "set", &node_link, "netns", &namespace])?;
        commands::ip(&["link", "set", &host_link, "master", &self.links[0]])?;
        commands::ip(&["link", "set", &host_link, "up"])?;
        let address = format!("{}/24", self.node_address(node_index));
        let inside = |args: &[&str]| {
            let mut full = vec!["-n", namespace.as_str()];
            full.extend_from_slice(args);
            commands::ip(&full)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&["link", "set", &node_link, "name", "eth0"])?;
        inside(&["addr", "add", &address, "dev", "eth0"])?;
        inside(&["link", "set", "eth0", "up"])?;
        commands::iptables_restore_in(&namespace, &partition::setup_script())?;
        Ok(())
    }

    /// How many nodes the network has.
    pub fn node_count(&self) -> usize {
        self.node_count
    }

    /// Node `node_index`'s address (it owns it inside its namespace).
    pub fn node_address(&self, node_index: usize) -> IpAddr {
        assert!(
            node_index < self.node_count,
            "node {node_index} out of range"
        );
        let host = u8::try_from(node_index + 2).expect("NODE_COUNT_MAX keeps hosts below 255");
        IpAddr::V4(self.subnet.host(host))
    }

    /// The host side's address (the bridge), from which the test process reaches nodes.
    pub fn host_address(&self) -> IpAddr {
        IpAddr::V4(self.subnet.host(1))
    }

    /// Node `node_index`'s namespace name (for `ip netns exec` by hand).
    pub fn namespace(&self, node_index: usize) -> &str {
        &self.namespaces[node_index]
    }

    /// A Command that runs `program` inside node `node_index`'s namespace (`ip netns
    /// exec`, which then execs `program`: the child's pid is the program's own).
    pub fn command_in_namespace(&self, node_index: usize, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.namespace(node_index)])
            .arg(program);
        command
    }

    /// Cut every link between nodes not in a common component (a node may be in two
    /// components: a bridge). The test process (host side) still reaches every node.
    /// Replaces any earlier partition.
    pub fn partition(&mut self, components: &[Vec<usize>]) -> Result<(), String> {
        partition::validate(components, self.node_count)?;
        let cuts = partition::cut_peers(components, self.node_count);
        for (node_index, peers) in cuts.iter().enumerate() {
            let sources: Vec<Ipv4Addr> = peers
                .iter()
                .map(|peer| self.subnet.host(u8::try_from(peer + 2).expect("bounded")))
                .collect();
            let script = partition::rules_script(&sources);
            commands::iptables_restore_in(&self.namespaces[node_index], &script)?;
        }
        self.components = components.to_vec();
        Ok(())
    }

    /// Removes every cut: all nodes reach each other again.
    pub fn heal(&mut self) -> Result<(), String> {
        let script = partition::rules_script(&[]);
        for namespace in &self.namespaces {
            commands::iptables_restore_in(namespace, &script)?;
        }
        self.components.clear();
        Ok(())
    }

    /// The components of the partition in force (empty when healed).
    pub fn components(&self) -> &[Vec<usize>] {
        &self.components
    }

    /// Removes every namespace, link and rule it made (also done by Drop, best effort).
    pub fn destroy(mut self) -> Result<(), String> {
        self.tear_down()
    }

    /// Removes what was made, continuing past errors; reports the first error and any
    /// process still inside a namespace.
    fn tear_down(&mut self) -> Result<(), String> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        if self.registered {
            naming::unregister(&self.key);
        }
        let mut errors = Vec::new();
        for namespace in &self.namespaces {
            if let Ok(pids) = commands::ip(&["netns", "pids", namespace])
                && !pids.trim().is_empty()
            {
                let pids = pids.split_whitespace().collect::<Vec<_>>().join(" ");
                errors.push(format!("processes still in {namespace}: {pids}"));
            }
        }
        let mut objects: Vec<String> = self.links.iter().rev().cloned().collect();
        objects.extend(self.namespaces.iter().cloned());
        if let Err(error) = remove_objects(&objects) {
            errors.push(error);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

impl Drop for NodeNetwork {
    fn drop(&mut self) {
        if let Err(error) = self.tear_down() {
            eprintln!("replikv: cleaning up test network {}: {error}", self.key);
        }
    }
}

/// Deletes each named link or namespace that still exists (a name that is already gone
/// is fine), continuing past errors; the first error is returned.
fn remove_objects(names: &[String]) -> Result<(), String> {
    let namespaces = commands::ip(&["netns", "list"]).unwrap_or_default();
    let is_namespace = |name: &str| {
        namespaces
            .lines()
            .any(|line| line.split_whitespace().next() == Some(name))
    };
    let mut first_error = None;
    // Links first: deleting a host-side veth end deletes its pair, even if a process
    // still holds the namespace; then the namespaces, which takes their rules along.
    let (namespace_names, link_names): (Vec<&String>, Vec<&String>) =
        names.iter().partition(|name| is_namespace(name));
    for name in link_names {
        let exists = commands::ip(&["link", "show", "dev", name]).is_ok();
        if exists && let Err(error) = commands::ip(&["link", "delete", "dev", name]) {
            first_error.get_or_insert(error);
        }
    }
    for name in namespace_names {
        if let Err(error) = commands::ip(&["netns", "delete", name]) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Every prefixed namespace or link carrying `key`.
fn objects_of_key(key: &str) -> Vec<String> {
    naming::prefixed_objects()
        .into_iter()
        .filter(|name| naming::key_in_name(name) == Some(key))
        .collect()
}

/// Names of namespaces and links with our prefix that no live run owns: a crashed
/// earlier run's debris (no iptables rule is ever added outside our namespaces). Used by
/// tests and by a startup sweep.
pub fn leftovers() -> Vec<String> {
    naming::prefixed_objects()
        .into_iter()
        .filter(|name| !naming::key_in_name(name).is_some_and(naming::is_owned))
        .collect()
}

/// The run tag `replikv test` gives the network of the run with process id
/// `process_id`, so that a caller holding the pid can look for what it left behind.
pub fn run_tag_of_process(process_id: u32) -> String {
    format!("t{process_id}")
}

/// Names of namespaces and links with our prefix made for `run_tag`, owned or not
/// (a test's check that its own network is gone, unaffected by concurrent runs).
pub fn leftovers_of(run_tag: &str) -> Vec<String> {
    objects_of_key(&naming::key_of(run_tag))
}

/// Deletes every leftover (see [`leftovers`]) and the registrations of dead runs.
pub fn remove_leftovers() -> Result<(), String> {
    let _lock = naming::lock_registry()?;
    for key in naming::stale_registrations() {
        naming::unregister(&key);
    }
    remove_objects(&leftovers())
}
