//! Expiry under clock skew, randomized: three nodes whose wall clocks disagree by up to
//! five seconds apply random expiring writes, expiry changes and plain writes, with the
//! leader's sweep running. Two properties, checked for every seed:
//!
//! - **Convergence**: once every entry is applied everywhere, every replica reports the
//!   same value, version and expiry time for every key (expiry times are computed from
//!   the leader's stamps, never from the applying node's clock);
//! - **No resurrection**: a linearizable read on the leader never shows a key whose
//!   expiry time is at or before the leader's clock.

use super::cluster::Cluster;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const KEYS: u64 = 3;
const BASE_UNIX_MS: u64 = 1_000_000;

/// The reply texts in `lines` (what follows `reply c1#N: `).
fn replies(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| line.contains(" reply c"))
        .filter_map(|line| line.split_once(": ").map(|(_, reply)| reply.to_owned()))
        .collect()
}

/// The `expires=` time of a read reply, if the key is present and expires.
fn expires_at(reply: &str) -> Option<u64> {
    if reply.starts_with("read absent") {
        return None;
    }
    reply.split("expires=").nth(1)?.parse().ok()
}

fn random_write(random: &mut ChaCha8Rng, step: u64) -> String {
    let key = random.random_range(0..KEYS);
    let ttl = random.random_range(1..1_500u64);
    match random.random_range(0..5u8) {
        0 | 1 => format!("put-expiring n1 k{key} v{step} px={ttl}"),
        2 => format!("expire n1 k{key} px={ttl}"),
        3 => format!("expire n1 k{key} px={ttl} gt"),
        _ => format!("put n1 k{key} v{step}"),
    }
}

fn run_seed(seed: u64) {
    let mut random = ChaCha8Rng::seed_from_u64(seed);
    let (mut cluster, _) = Cluster::create(&format!("cluster nodes=3 seed={seed}"));
    let skews: Vec<i64> = (0..3)
        .map(|_| random.random_range(-5_000..=5_000))
        .collect();
    let mut elapsed_ms = 0;
    let set_walls = |cluster: &mut Cluster, elapsed_ms: u64| {
        for (index, skew) in skews.iter().enumerate() {
            let wall = (BASE_UNIX_MS + elapsed_ms).saturating_add_signed(*skew);
            cluster.run(&format!("wall n{} {wall}", index + 1));
        }
        (BASE_UNIX_MS + elapsed_ms).saturating_add_signed(skews[0])
    };
    set_walls(&mut cluster, 0);
    cluster.run("timeout n1");
    cluster.run("stabilize");
    for step in 0..40 {
        elapsed_ms += random.random_range(0..300);
        let leader_wall = set_walls(&mut cluster, elapsed_ms);
        cluster.run(&random_write(&mut random, step));
        cluster.run("advance 100");
        cluster.run("tick n1");
        cluster.run("stabilize");
        let key = random.random_range(0..KEYS);
        let mut lines = cluster.run(&format!("ttl n1 k{key}"));
        lines.extend(cluster.run("stabilize"));
        for reply in replies(&lines) {
            if let Some(expires_at) = expires_at(&reply) {
                assert!(
                    expires_at > leader_wall,
                    "seed {seed} step {step}: k{key} read as present ({reply}) \
                     at leader time {leader_wall}"
                );
            }
        }
    }
    // Let every entry apply everywhere (heartbeats carry the commit index), then read
    // every key on every node at the same wall time.
    for _ in 0..3 {
        cluster.run("advance 100");
        cluster.run("tick n1");
        cluster.run("stabilize");
    }
    for index in 0..3 {
        cluster.run(&format!(
            "wall n{} {}",
            index + 1,
            BASE_UNIX_MS + elapsed_ms
        ));
    }
    for key in 0..KEYS {
        let seen: Vec<Vec<String>> = (1..=3)
            .map(|node| replies(&cluster.run(&format!("ttl-local n{node} k{key}"))))
            .collect();
        assert!(
            seen.iter()
                .all(|replies| replies == &seen[0] && replies.len() == 1),
            "seed {seed}: replicas disagree on k{key}: {seen:?}"
        );
    }
}

#[test]
fn replicas_agree_on_expiry_under_clock_skew_and_never_resurrect_keys() {
    for seed in 0..12 {
        run_seed(seed);
    }
}
