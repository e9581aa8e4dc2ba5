//! The testing fault hook through its admin route: off unless `--testing-faults`; total
//! loss to one follower makes it lag and clearing lets it catch up; a link latency shows
//! up in every write's commit latency and goes away when cleared.

use super::support::{Cluster, DEADLINE, body, http, query, start_cluster};
use std::time::{Duration, Instant};

const ROUTE: &str = "/v1/admin/testing/link-faults";

fn put_faults(cluster: &Cluster, node: usize, json: &str) -> String {
    let (status, response) = http(cluster.http(node), "PUT", ROUTE, "", json);
    assert_eq!(status, 200, "{response}");
    body(&response).to_string()
}

fn clear_faults(cluster: &Cluster, node: usize) {
    let (status, response) = http(cluster.http(node), "DELETE", ROUTE, "", "");
    assert_eq!(status, 200, "{response}");
}

fn applied_index(cluster: &Cluster, node: usize) -> u64 {
    let status = cluster
        .runtime
        .block_on(cluster.servers[node].node().status());
    status.unwrap().applied.0
}

fn commit_index(cluster: &Cluster, node: usize) -> u64 {
    let status = cluster
        .runtime
        .block_on(cluster.servers[node].node().status());
    status.unwrap().commit.0
}

/// Fastest of `count` writes through `node`.
fn fastest_write(cluster: &Cluster, node: usize, count: usize) -> Duration {
    let mut connection = cluster.client(node);
    (0..count)
        .map(|round| {
            let started = Instant::now();
            let _: () = query(&mut connection, &["SET", "timed", &round.to_string()]).unwrap();
            started.elapsed()
        })
        .min()
        .unwrap()
}

#[test]
fn the_route_is_absent_without_testing_faults_and_checks_its_input_with_them() {
    let cluster = start_cluster(1, |_| {});
    for method in ["GET", "PUT", "DELETE"] {
        let (status, response) = http(cluster.http(0), method, ROUTE, "", "{}");
        assert_eq!(status, 404, "{method}: {response}");
    }
    cluster.shutdown();

    let cluster = start_cluster(1, |config| config.testing_faults = true);
    for bad in [
        r#"{"default": {"loss_ratio": 2.0}}"#,
        r#"{"default": {"latency_ms": 10001}}"#,
        r#"{"peers": {"0": {}}}"#,
        r#"{"defualt": {}}"#,
        "not json",
    ] {
        let (status, response) = http(cluster.http(0), "PUT", ROUTE, "", bad);
        assert_eq!(status, 400, "{bad}: {response}");
    }
    let answer = put_faults(&cluster, 0, r#"{"peers": {"2": {"jitter_ms": 5}}}"#);
    assert!(answer.contains(r#""jitter_ms":5"#), "{answer}");
    clear_faults(&cluster, 0);
    let (_, response) = http(cluster.http(0), "GET", ROUTE, "", "");
    assert!(!body(&response).contains(r#""jitter_ms":5"#), "{response}");
    cluster.shutdown();
}

#[test]
fn total_loss_to_one_follower_makes_it_lag_and_clearing_recovers_it() {
    let cluster = start_cluster(3, |config| config.testing_faults = true);
    let leader = cluster.wait_for_leader();
    let follower = (leader + 1) % 3;
    let peer_id = cluster.servers[follower].id.0;
    put_faults(
        &cluster,
        leader,
        &format!(r#"{{"peers": {{"{peer_id}": {{"loss_ratio": 1.0}}}}}}"#),
    );
    let mut connection = cluster.client(leader);
    for round in 0..20 {
        let _: () = query(&mut connection, &["SET", "lagging", &round.to_string()]).unwrap();
    }
    // The other follower applies everything; the cut-off one misses (nearly) all.
    let committed = commit_index(&cluster, leader);
    let other = (leader + 2) % 3;
    let start = Instant::now();
    while applied_index(&cluster, other) < committed {
        assert!(start.elapsed() < DEADLINE, "the healthy follower lagged");
        std::thread::sleep(Duration::from_millis(10));
    }
    let applied = applied_index(&cluster, follower);
    assert!(
        applied + 10 < committed,
        "the cut-off follower kept up: {applied} of {committed}"
    );
    let (_, response) = http(cluster.http(leader), "GET", ROUTE, "", "");
    assert!(!body(&response).contains(r#""lost":0"#), "{response}");
    let (_, metrics) = http(cluster.http(leader), "GET", "/metrics", "", "");
    let lost = metrics
        .lines()
        .find_map(|line| line.strip_prefix(r#"replikv_testing_link_faults_total{effect="lost"} "#))
        .and_then(|count| count.parse::<u64>().ok());
    assert!(lost.is_some_and(|lost| lost > 0), "{metrics}");

    clear_faults(&cluster, leader);
    let start = Instant::now();
    while applied_index(&cluster, follower) < committed {
        assert!(start.elapsed() < DEADLINE, "the follower never caught up");
        std::thread::sleep(Duration::from_millis(10));
    }
    cluster.shutdown();
}

#[test]
fn link_latency_shows_up_as_commit_latency_until_cleared() {
    const LATENCY: Duration = Duration::from_millis(300);
    let cluster = start_cluster(3, |config| config.testing_faults = true);
    let leader = cluster.wait_for_leader();
    assert!(fastest_write(&cluster, leader, 5) < LATENCY);
    let answer = put_faults(&cluster, leader, r#"{"default": {"latency_ms": 300}}"#);
    assert!(answer.contains(r#""latency_ms":300"#), "{answer}");
    assert!(
        fastest_write(&cluster, leader, 3) >= LATENCY,
        "a write committed faster than its replication messages travel"
    );
    clear_faults(&cluster, leader);
    assert!(fastest_write(&cluster, leader, 5) < LATENCY);
    cluster.shutdown();
}
