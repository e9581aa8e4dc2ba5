//! INFO's replication section: role, leader, term, positions, members, follower lag.

use super::support::{query, start_cluster};
use super::wait::wait;

/// The `field:value` lines of INFO's text.
fn info_fields(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(field, value)| (field.to_owned(), value.to_owned()))
        .collect()
}

#[test]
fn info_replication_names_positions_members_and_each_followers_lag() {
    let cluster = start_cluster(3, |_| {});
    let leader = cluster.wait_for_leader();
    let mut on_leader = cluster.client(leader);
    let _: () = query(&mut on_leader, &["SET", "k", "v"]).unwrap();
    assert_eq!(wait(&mut on_leader, 2, 10_000), 2);
    let text: String = query(&mut on_leader, &["INFO", "replication"]).unwrap();
    let fields = info_fields(&text);
    let leader_id = cluster.servers[leader].id.0.to_string();
    assert_eq!(fields["role"], "leader");
    assert_eq!(fields["leader_id"], leader_id);
    assert_eq!(fields["voters"], "1,2,3");
    assert_eq!(fields["learners"], "");
    assert_eq!(fields["lossy"], "0");
    assert_eq!(fields["connected_followers"], "2");
    let commit: u64 = fields["commit_index"].parse().unwrap();
    assert!(commit >= 2, "{text}");
    for server in &cluster.servers {
        if server.id.0.to_string() != leader_id {
            let line = &fields[&format!("follower_{}", server.id.0)];
            assert!(line.starts_with("voter=1,matched="), "{line}");
            assert!(line.contains(",lag_entries="), "{line}");
        }
    }
    let follower = (leader + 1) % 3;
    let text: String = query(&mut cluster.client(follower), &["INFO"]).unwrap();
    let fields = info_fields(&text);
    assert_eq!(fields["role"], "follower");
    assert_eq!(fields["leader_id"], leader_id);
    assert_eq!(fields["connected_followers"], "0");
    assert!(!fields.keys().any(|field| field.starts_with("follower_")));
    cluster.shutdown();
}
