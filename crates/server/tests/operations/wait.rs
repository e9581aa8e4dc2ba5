//! `WAIT numreplicas timeout` through a real Redis client.

use super::support::{query, start_cluster};

pub fn wait(connection: &mut redis::Connection, replicas: u64, timeout_ms: u64) -> i64 {
    redis::cmd("WAIT")
        .arg(replicas)
        .arg(timeout_ms)
        .query(connection)
        .unwrap()
}

#[test]
fn wait_counts_the_replicas_holding_the_connections_last_write() {
    let mut cluster = start_cluster(3, |_| {});
    let leader = cluster.wait_for_leader();
    let mut on_leader = cluster.client(leader);
    let _: () = query(&mut on_leader, &["SET", "k", "1"]).unwrap();
    // Both followers get the write: the leader counts them exactly.
    assert_eq!(wait(&mut on_leader, 2, 10_000), 2);
    // More than there are: the timeout passes and the count is answered.
    assert_eq!(wait(&mut on_leader, 3, 50), 2);
    assert_eq!(wait(&mut on_leader, 0, 0), 2);
    // On a follower: once committed, at least a majority minus one (here 1) replicas.
    let follower = (leader + 1) % 3;
    let mut on_follower = cluster.client(follower);
    let _: () = query(&mut on_follower, &["SET", "k", "2"]).unwrap();
    assert_eq!(wait(&mut on_follower, 1, 10_000), 1);
    assert_eq!(
        wait(&mut on_follower, 2, 50),
        1,
        "a lower bound on a follower"
    );
    // Bad arguments.
    for words in [
        &["WAIT", "1"][..],
        &["WAIT", "x", "10"],
        &["WAIT", "1", "-5"],
    ] {
        assert!(query::<i64>(&mut on_leader, words).is_err(), "{words:?}");
    }
    // A follower stops: the next write reaches one replica only.
    let stopped = cluster.servers.remove((leader + 2) % 3);
    cluster.runtime.block_on(stopped.shutdown()).unwrap();
    let _: () = query(&mut on_leader, &["SET", "k", "3"]).unwrap();
    assert_eq!(wait(&mut on_leader, 2, 200), 1);
    cluster.shutdown();
}
