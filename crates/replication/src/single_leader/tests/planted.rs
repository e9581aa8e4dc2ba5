//! Planted bugs that the run-wide observer must catch.
//!
//! A checker that never fails proves nothing. Here a node is made to forget its vote
//! when it restarts (`FORGET_VOTE_ON_OPEN`, compiled in tests only), the bug that lets
//! two leaders share a term. The node's own assertions cannot see it (a follower with no
//! vote is a fine state) and no instant shows two leaders; the cluster harness's
//! [`RaftObserver`](crate::single_leader::RaftObserver) must stop the script at the
//! restart. The same script without the bug passes, so the failure is the bug's.

use super::cluster::Cluster;
use crate::single_leader::node::FORGET_VOTE_ON_OPEN;

/// Elects n1 in t1 with n2's vote, then crashes and restarts n2.
fn elect_then_restart_a_voter(forget_vote: bool) {
    let (mut cluster, _) = Cluster::create("cluster nodes=3 seed=8");
    for command in ["timeout n1", "stabilize", "crash n2"] {
        cluster.run(command);
    }
    FORGET_VOTE_ON_OPEN.set(forget_vote);
    cluster.run("restart n2");
    FORGET_VOTE_ON_OPEN.set(false);
    cluster.run("stabilize");
}

#[test]
fn restarting_a_voter_with_its_vote_passes() {
    elect_then_restart_a_voter(false);
}

#[test]
#[should_panic(expected = "the vote of n2 in t1 changed from Some(NodeId(1)) to None")]
fn a_vote_forgotten_on_restart_is_caught() {
    elect_then_restart_a_voter(true);
}
