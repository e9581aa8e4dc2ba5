//! Lease expiry: turning time into a replicated decision.
//!
//! The lease table is part of the state machine (`replikv_storage::store::lease`): a
//! grant, a renewal, a release and the fencing check of a write are decided in log order
//! by every replica alike. Time cannot be: replicas' clocks differ, and a state machine
//! that read one would diverge. So a lease ends by an **expiry command** in the log, and
//! only the leader proposes it, when the lease's time to live ran out on *its* clock.
//!
//! The leader keeps one timer per held lease. A timer starts at the first flush after
//! the grant or renewal was applied on the leader, which is after the moment the holder
//! sent its request: the holder, counting its lease from when it *sent* the request,
//! always believes it expired no later than the leader does. A new leader restarts the
//! timer of every held lease from its election, since it cannot know how long its
//! predecessor had been counting; so a leader change can only **delay** an expiry, never
//! hasten it. The expiry names the grant's token and the log index of its latest grant or
//! renewal, and the state machine ignores it if the lease was renewed or re-granted in
//! between (an expiry decided before a renewal but ordered after it).
//!
//! A lease is still no guarantee of mutual exclusion on its own: a holder may be paused
//! beyond its expiry and act late. The fencing token is what makes that harmless: every
//! grant's token is the log index of the grant, larger than every earlier token, and a
//! fenced write with a token below the lease's latest is refused by the state machine.

use super::node::{RaftNode, Role};
use replikv_core::error::{Error, Result};
use replikv_core::{Instant, Key, LogIndex, Request};
use replikv_storage::store::{StoreWrite, WriteOutcome};
use std::time::Duration;

/// Longest time to live a lease may ask for (one day).
pub const LEASE_TTL_MAX_MS: u64 = 24 * 60 * 60 * 1000;

/// The leader's clock for one held lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeaseTimer {
    pub(super) token: u64,
    pub(super) renewed_at: LogIndex,
    pub(super) ttl_ms: u64,
    /// When the lease expires on this leader's clock; `None` until the next flush or tick
    /// starts it.
    pub(super) deadline: Option<Instant>,
    /// Whether this leader already proposed the expiry.
    pub(super) expiry_proposed: bool,
}

/// The store write of a lease or fenced request (`None` for any other request), or why
/// the request is refused before it is proposed.
pub(super) fn lease_write(request: &Request) -> Option<Result<StoreWrite>> {
    let write = match request.clone() {
        Request::AcquireLease {
            name,
            holder,
            ttl_ms,
        } => {
            if !(1..=LEASE_TTL_MAX_MS).contains(&ttl_ms) {
                return Some(Err(Error::InvalidInput(format!(
                    "lease time to live {ttl_ms} ms outside 1..={LEASE_TTL_MAX_MS}"
                ))));
            }
            StoreWrite::AcquireLease {
                name,
                holder,
                ttl_ms,
            }
        }
        Request::RenewLease {
            name,
            holder,
            token,
        } => StoreWrite::RenewLease {
            name,
            holder,
            token,
        },
        Request::ReleaseLease {
            name,
            holder,
            token,
        } => StoreWrite::ReleaseLease {
            name,
            holder,
            token,
        },
        Request::PutFenced {
            key,
            value,
            lease,
            token,
        } => StoreWrite::PutFenced {
            key,
            value,
            lease,
            token,
        },
        Request::DeleteFenced { key, lease, token } => {
            StoreWrite::DeleteFenced { key, lease, token }
        }
        _ => return None,
    };
    Some(Ok(write))
}

impl RaftNode {
    /// A new leader's timers: every held lease counts its whole time to live again.
    pub(super) fn restart_lease_timers(&mut self, now: Instant) -> Result<()> {
        let leases = self.store.leases()?;
        let Role::Leader(state) = &mut self.role else {
            return Ok(());
        };
        state.lease_timers.clear();
        for lease in leases.into_iter().filter(|lease| lease.active) {
            let timer = LeaseTimer {
                token: lease.token,
                renewed_at: lease.renewed_at,
                ttl_ms: lease.ttl_ms,
                deadline: Some(now + Duration::from_millis(lease.ttl_ms)),
                expiry_proposed: false,
            };
            state.lease_timers.insert(lease.name, timer);
        }
        Ok(())
    }

    /// Follows applied lease writes on the leader: a grant or renewal (re)starts the
    /// lease's timer, an end (release, expiry) drops it. The timer is rebuilt from the
    /// lease's record as the batch left it. `lease_writes` are the batch's lease writes:
    /// each one's position in the batch (and in `outcomes`) and its lease's name.
    pub(super) fn note_applied_leases(
        &mut self,
        lease_writes: &[(usize, Key)],
        outcomes: &[WriteOutcome],
    ) -> Result<()> {
        if !self.is_leader() {
            return Ok(());
        }
        let mut changed: Vec<Key> = lease_writes
            .iter()
            .filter(|(position, _)| {
                matches!(
                    outcomes[*position],
                    WriteOutcome::Lease { granted: true, .. }
                )
            })
            .map(|(_, name)| name.clone())
            .collect();
        changed.sort();
        changed.dedup();
        for name in changed {
            let record = self.store.lease(&name)?.filter(|record| record.active);
            let state = self.leader_state();
            match record {
                Some(record) => {
                    let timer = LeaseTimer {
                        token: record.token,
                        renewed_at: record.renewed_at,
                        ttl_ms: record.ttl_ms,
                        deadline: None,
                        expiry_proposed: false,
                    };
                    state.lease_timers.insert(name, timer);
                }
                None => {
                    state.lease_timers.remove(&name);
                }
            }
        }
        Ok(())
    }

    /// Starts the timers waiting for a clock, and proposes the expiry of every lease
    /// whose time ran out.
    pub(super) fn expire_leases(&mut self, now: Instant) -> Result<()> {
        let Role::Leader(state) = &mut self.role else {
            return Ok(());
        };
        let mut expired: Vec<(Key, u64, LogIndex)> = Vec::new();
        for (name, timer) in &mut state.lease_timers {
            let deadline = *timer
                .deadline
                .get_or_insert(now + Duration::from_millis(timer.ttl_ms));
            if deadline <= now && !timer.expiry_proposed {
                timer.expiry_proposed = true;
                expired.push((name.clone(), timer.token, timer.renewed_at));
            }
        }
        for (name, token, renewed_at) in expired {
            let write = StoreWrite::ExpireLease {
                name: name.clone(),
                token,
                renewed_at,
            };
            if !self.append_internal(write)? {
                // The log's buffer is full: the timer fires again at a later tick.
                if let Some(timer) = self.leader_state().lease_timers.get_mut(&name) {
                    timer.expiry_proposed = false;
                }
            }
        }
        Ok(())
    }

    /// The earliest lease deadline of this leader, if it leads and has one.
    pub(super) fn next_lease_deadline(&self) -> Option<Instant> {
        let Role::Leader(state) = &self.role else {
            return None;
        };
        state
            .lease_timers
            .values()
            .filter(|timer| !timer.expiry_proposed)
            .filter_map(|timer| timer.deadline)
            .min()
    }

    /// Appends a lease expiry; see [`RaftNode::append_stamped_internal`]. Returns
    /// whether it was appended (`false`: the log's buffer is full).
    fn append_internal(&mut self, write: StoreWrite) -> Result<bool> {
        let appended = self.append_stamped_internal(write)?.is_some();
        if appended {
            self.stats.lease_expiries_proposed += 1;
        }
        Ok(appended)
    }
}
