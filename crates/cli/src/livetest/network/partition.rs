//! Which links a partition cuts, and the firewall rules that cut them.
//!
//! A partition is given as components: lists of node indexes that can still talk among
//! themselves. Two nodes stay connected when some component holds both; every other
//! pair is cut. A node may sit in two components (a bridge node, as in Jepsen's
//! "bridge" nemesis: it sees both sides while the sides do not see each other), and a
//! node named in no component is cut from everyone.
//!
//! The cut is made inside the node namespaces, never in the root namespace: node `i`'s
//! chain [`CHAIN`] drops every packet arriving from each peer it is cut from. Because
//! the cut is symmetric, both ends hold a rule, so both directions are dropped. Only
//! `INPUT` is filtered: dropping in `OUTPUT` would make the sender's system calls fail
//! at once with `EPERM`, which a real partition never does; dropping on arrival makes
//! packets vanish silently, as on a broken wire, so TCP retransmits and times out. The
//! rules match addresses, not connection state, so an established connection is cut as
//! surely as a new one. The host side (`.1`) is never named, so the test process keeps
//! reaching every node. Healing flushes the chain.

use std::fmt::Write;
use std::net::Ipv4Addr;

/// The chain, in each node namespace's `filter` table, that holds the partition rules.
pub const CHAIN: &str = "RKV-PARTITION";

/// Checks that every index in `components` names one of `node_count` nodes.
pub fn validate(components: &[Vec<usize>], node_count: usize) -> Result<(), String> {
    for component in components {
        if let Some(index) = component.iter().find(|index| **index >= node_count) {
            return Err(format!(
                "partition names node {index}, but the network has {node_count} nodes"
            ));
        }
    }
    Ok(())
}

/// Whether nodes `first` and `second` share a component.
pub fn connected(components: &[Vec<usize>], first: usize, second: usize) -> bool {
    components
        .iter()
        .any(|component| component.contains(&first) && component.contains(&second))
}

/// For each node, the peers it is cut from.
pub fn cut_peers(components: &[Vec<usize>], node_count: usize) -> Vec<Vec<usize>> {
    (0..node_count)
        .map(|node| {
            (0..node_count)
                .filter(|peer| *peer != node && !connected(components, node, *peer))
                .collect()
        })
        .collect()
}

/// The `iptables-restore --noflush` script that creates [`CHAIN`] and hooks it into
/// `INPUT` (run once per namespace, when it is made).
pub fn setup_script() -> String {
    format!("*filter\n:{CHAIN} - [0:0]\n-I INPUT -j {CHAIN}\nCOMMIT\n")
}

/// The script that replaces [`CHAIN`]'s rules with drops of packets from `sources`
/// (an empty list heals).
pub fn rules_script(sources: &[Ipv4Addr]) -> String {
    let mut script = format!("*filter\n-F {CHAIN}\n");
    for source in sources {
        let _ = writeln!(script, "-A {CHAIN} -s {source}/32 -j DROP");
    }
    script.push_str("COMMIT\n");
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_follow_the_components() {
        // Isolating node 0 of three.
        let isolate = [vec![0], vec![1, 2]];
        assert_eq!(cut_peers(&isolate, 3), vec![vec![1, 2], vec![0], vec![0]]);
        // A bridge: node 1 sees both sides, 0 and 2 do not see each other.
        let bridge = [vec![0, 1], vec![1, 2]];
        assert_eq!(cut_peers(&bridge, 3), vec![vec![2], vec![], vec![0]]);
        // Everyone together: nothing cut. A node in no component: cut from all.
        assert_eq!(cut_peers(&[vec![0, 1, 2]], 3), vec![Vec::<usize>::new(); 3]);
        assert_eq!(
            cut_peers(&[vec![0, 1]], 3),
            vec![vec![2], vec![2], vec![0, 1]]
        );
    }

    #[test]
    fn cuts_are_symmetric_for_any_components() {
        let cases: [&[Vec<usize>]; 4] = [
            &[vec![0], vec![1, 2, 3, 4]],
            &[vec![0, 1], vec![1, 2], vec![3]],
            &[vec![4, 2], vec![0, 3, 2]],
            &[],
        ];
        for components in cases {
            let cuts = cut_peers(components, 5);
            for (node, peers) in cuts.iter().enumerate() {
                for peer in peers {
                    assert!(cuts[*peer].contains(&node), "{components:?}: {node}/{peer}");
                }
            }
        }
    }

    #[test]
    fn out_of_range_nodes_are_refused_and_scripts_name_the_chain() {
        assert!(validate(&[vec![0, 3]], 3).is_err());
        assert!(validate(&[vec![0, 2], vec![1]], 3).is_ok());
        let script = rules_script(&[Ipv4Addr::new(10, 213, 1, 3)]);
        assert_eq!(
            script,
            "*filter\n-F RKV-PARTITION\n-A RKV-PARTITION -s 10.213.1.3/32 -j DROP\nCOMMIT\n"
        );
        assert!(setup_script().contains("-I INPUT -j RKV-PARTITION"));
    }
}
