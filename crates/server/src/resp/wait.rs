//! `WAIT numreplicas timeout`: how many replicas hold this connection's last write.
//!
//! Redis's WAIT blocks until the connection's last write has reached at least
//! `numreplicas` replicas or `timeout` milliseconds pass, and answers how many it
//! reached; it never fails a write, it only reports. replikv keeps the same contract.
//! The connection remembers the log position of its last write (from the
//! `Reply::Written` or a swapped `Reply::CompareAndSet`); a connection that wrote
//! nothing waits for position zero, which every replica holds.
//!
//! Who counts depends on where the connection is. **On the leader** the answer is
//! exact: the followers (voters and learners alike) whose matched index, the highest
//! index known durable on them and matching the leader's log, is at least the write's.
//! **On a follower** the node does not know the others' progress, so it answers what it
//! can prove: once its commit index covers the write and the commit mode is not lossy
//! with the current voters, a write is durable on at least a majority of the voters, so
//! on at least a majority minus one replicas (the leader is not a replica); before
//! that, or in a lossy mode, zero. That is a lower bound: a follower connection asking
//! for more than a majority minus one waits until its timeout and then answers the
//! bound. Clients that need exact counts run WAIT on the leader (`INFO replication`
//! names it).
//!
//! One edge is left as it is: in a lossy commit mode a failover may discard the write;
//! its log slot is then reused, and a follower's matched index can pass it though the
//! write is gone (the discard is logged and counted in `writes_discarded`).
//!
//! The wait polls the node's status, starting at [`POLL_INTERVAL_MIN`] and backing off
//! to [`POLL_INTERVAL_MAX`]; a timeout of 0 (Redis: forever) and any longer timeout are
//! capped at [`WAIT_TIMEOUT_MAX_MS`], so a connection never waits unboundedly.

use super::codec::Response;
use super::commands::arity_error;
use super::session::Session;
use crate::node_loop::NodeStatus;
use bytes::Bytes;
use replikv_core::LogPosition;
use replikv_replication::single_leader::commit::election_quorum;
use std::time::Duration;

/// Longest a WAIT blocks; a timeout of 0 (forever) means this.
pub const WAIT_TIMEOUT_MAX_MS: u64 = 60_000;

/// First and longest pause between two status polls.
pub const POLL_INTERVAL_MIN: Duration = Duration::from_millis(1);
pub const POLL_INTERVAL_MAX: Duration = Duration::from_millis(25);

/// Runs `WAIT numreplicas timeout`.
pub async fn execute(session: &Session, arguments: &[Bytes]) -> Response {
    let [replicas, timeout_ms] = arguments else {
        return arity_error("wait");
    };
    let Some(replicas) = parse_count(replicas) else {
        return Response::error("value is not an integer or out of range");
    };
    let Some(timeout_ms) = parse_count(timeout_ms) else {
        return Response::error("timeout is not an integer or out of range");
    };
    let timeout_ms = match timeout_ms {
        0 => WAIT_TIMEOUT_MAX_MS,
        given => given.min(WAIT_TIMEOUT_MAX_MS),
    };
    let position = session.last_write.unwrap_or(LogPosition::ZERO);
    let node = session.keyspaces.default_group();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(timeout_ms);
    let mut interval = POLL_INTERVAL_MIN;
    loop {
        let count = node
            .status()
            .await
            .map_or(0, |status| replicas_holding(&status, position));
        let now = tokio::time::Instant::now();
        if count >= replicas || now >= deadline {
            return Response::Integer(i64::try_from(count).unwrap_or(i64::MAX));
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(POLL_INTERVAL_MAX);
    }
}

/// A non-negative integer argument.
fn parse_count(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// How many replicas are known to hold `position`; see the module documentation.
#[must_use]
pub fn replicas_holding(status: &NodeStatus, position: LogPosition) -> u64 {
    let count = match &status.replication.followers {
        Some(followers) => followers
            .iter()
            .filter(|follower| follower.matched >= position.index)
            .count(),
        None if !status.replication.lossy && status.commit >= position.index => {
            election_quorum(status.replication.voters.len()).saturating_sub(1)
        }
        None => 0,
    };
    u64::try_from(count).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_non_negative_decimal_integers() {
        assert_eq!(parse_count(b"0"), Some(0));
        assert_eq!(parse_count(b"250"), Some(250));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.5",
            b" 1",
            b"99999999999999999999999",
        ] {
            assert_eq!(parse_count(bad), None, "{bad:?}");
        }
    }
}
