//! Why a leader gives up its lease when it sends TimeoutNow, shown by planting the bug.
//!
//! The script `transfer_lease.txt` shows a cut-off old leader refusing to serve a lease
//! read from its lease once it sent TimeoutNow, although by its own clock the lease has
//! not run out. Here the same story runs twice: as written, and with
//! `KEEP_LEASE_ON_TRANSFER` (compiled in tests only), a leader that keeps its lease. With
//! the bug the old leader answers the read with the value the new leader has already
//! overwritten and acknowledged: a stale read, exactly what the lease argument of
//! `transfer.rs` rules out. Without it the read is not served at all. So the renounce is
//! what makes the difference, and the test can fail.

use super::cluster::Cluster;
use crate::single_leader::transfer::KEEP_LEASE_ON_TRANSFER;

/// n1 leads with a lease, transfers to n3, is cut off right after n3 campaigns; n3 wins
/// with n2 and overwrites k; then n1 gets a lease read. Returns n1's answer lines to it.
fn lease_read_after_transfer(keep_lease: bool) -> Vec<String> {
    let (mut cluster, _) = Cluster::create("cluster nodes=3 seed=7 lease");
    KEEP_LEASE_ON_TRANSFER.set(keep_lease);
    let mut out = Vec::new();
    for command in [
        "timeout n1",
        "stabilize",
        "put n1 k 1",
        "stabilize",
        "get-lease n1 k",
        "stabilize",
        "transfer n1 to n3",
        "deliver n3",
        "partition n1 | n2 n3",
        "stabilize",
        "put n3 k 2",
        "stabilize",
        "get-lease n1 k",
    ] {
        out = cluster.run(command);
    }
    KEEP_LEASE_ON_TRANSFER.set(false);
    assert!(
        out.iter().any(|line| line == "request c1#5 -> n1"),
        "{out:?}"
    );
    out.into_iter()
        .filter(|line| line.starts_with("n1 reply c1#5"))
        .collect()
}

#[test]
fn a_leader_that_sent_timeout_now_serves_no_lease_read() {
    assert_eq!(lease_read_after_transfer(false), Vec::<String>::new());
}

#[test]
fn keeping_the_lease_across_a_transfer_serves_a_stale_read() {
    assert_eq!(
        lease_read_after_transfer(true),
        vec!["n1 reply c1#5: read 1 v1".to_owned()]
    );
}
