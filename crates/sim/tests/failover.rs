//! The failover bar, checked on a sample: from a leader's crash to the first client
//! write committed by a new leader, the median over seeds must stay under 1.5 election
//! timeouts (the base timeout, `election_timeout_ms_min`, the stricter reading), and
//! every seed must fail over. The full 1,000-seed measurement with p50 and p99 is the
//! `failover` part of `cargo bench -p replikv-sim --bench raft`.

#[path = "support/sweep.rs"]
#[allow(dead_code)]
mod sweep;

use replikv_replication::single_leader::RaftConfig;
use replikv_sim::failover;
use std::time::Duration;

/// Seeds sampled (the bench runs 1,000).
const SEEDS: u64 = 100;

#[test]
fn median_failover_is_under_one_and_a_half_election_timeouts() {
    let mut times: Vec<Duration> = sweep::seeds(SEEDS)
        .into_iter()
        .map(|seed| failover::measure(seed).unwrap_or_else(|error| panic!("{error}")))
        .collect();
    times.sort_unstable();
    let timeout = Duration::from_millis(RaftConfig::default().election_timeout_ms_min);
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "failover over {} seeds: p50 {median:?} ({:.2} election timeouts), max {worst:?}",
        times.len(),
        median.as_secs_f64() / timeout.as_secs_f64()
    );
    assert!(
        median.as_secs_f64() < 1.5 * timeout.as_secs_f64(),
        "{times:?}"
    );
}
