//! Client sessions: what makes a retried write apply once.
//!
//! A client that sends a write and hears nothing back (a timeout, a leader that lost its
//! leadership after proposing) cannot know whether the write took effect, so it retries
//! under the same [`RequestId`]. Both attempts may reach the log: the first through the
//! old leader, the second through the new one. The state machine must apply the request
//! once and give every attempt the same answer. This module is the state machine's
//! memory for that, kept in redb beside the data so that it is made durable,
//! snapshotted and installed exactly like the data it protects:
//!
//! - per client, the highest request sequence applied, the log index it was applied at
//!   and its outcome ([`ClientSession`]; on disk as base chunks plus one delta per
//!   commit, [`super::session_log`]; formats 2 to 4 kept one row per client
//!   in a table `sessions`, which opening such a store converts);
//! - in memory only, the same sessions ordered by that log index, for eviction (rebuilt
//!   from the stored sessions when the store opens; format 2 of the store kept it in a
//!   table `session_order` too, which opening a format-2 store drops).
//!
//! **In memory first.** Every client write reads and updates its client's session, and
//! with many clients those were three or four redb B-tree operations per write, most of
//! the cost of applying one (2026-11-22 profile: three quarters of the store's apply).
//! So the store keeps its sessions in memory (`SessionTable`, bounded like the table)
//! and applies against them; the sessions that changed since the last commit are marked
//! dirty, and `SessionTable::flush` writes them, in client order, as one delta record
//! into the open apply transaction just before it commits, in the same transaction as
//! the applied position.
//! Whatever a crash keeps, the sessions on disk are those of the applied position on
//! disk, and re-applying the log from there rebuilds the rest, as for the data. The
//! memory copy is loaded when the store opens and reloaded from the committed tables after
//! an install or a failed apply or commit (which lose the open transaction).
//!
//! Applying a write with request id (client, sequence):
//!
//! - `sequence` equal to the session's: a retry of the last applied request. Nothing is
//!   applied; the stored outcome is the answer.
//! - `sequence` below the session's: the client has since moved on to a later request.
//!   Nothing is applied and the answer is [`WriteOutcome::Superseded`], which a client
//!   sees as an *unknown* outcome: this attempt did nothing, but an earlier attempt of
//!   the same request may have applied, and its outcome is no longer kept. A client that
//!   issues one request at a time never sees it (an earlier attempt can never be
//!   committed after a later request: it is either before it in every leader's log or
//!   truncated away).
//! - otherwise the write is applied and the session records it.
//!
//! **Bounded.** At most `client_sessions_max` clients are remembered
//! ([`StoreOptions`](super::StoreOptions)); a new client beyond that evicts the client
//! whose last applied write is the oldest (lowest log index). Eviction is a function of
//! the log alone, so every replica evicts the same clients at the same entry, which is
//! what keeps replicas identical: `client_sessions_max` must therefore be the same on
//! every replica of a cluster. **What eviction means for a client**: once evicted, the
//! store has forgotten its last request, so a retry of that request arriving afterwards
//! is applied again (a put twice, a compare-and-set re-evaluated). Idempotency holds
//! only for retries that arrive while the client is among the `client_sessions_max`
//! most recently writing clients; a client that retries promptly is safe unless that
//! many other clients wrote in between.
//!
//! A session record is `sequence (8) | index (8) | outcome`, big-endian, where an outcome
//! is `1 | version (8)` (written), `2 | swapped (1) | version (8)` (compare-and-set),
//! `3 | granted (1) | has holder (1) | holder (8) | token (8)` (lease),
//! `4 | latest token (8)` (fenced) or `5` (too many leases); every decoder refuses what
//! it does not understand with [`Error::Corruption`].

use super::encoding::{corruption, storage_error};
use super::session_log::{self, FoldLimits, SESSION_CHUNKS, SESSION_DELTAS};
use super::write::WriteOutcome;
use redb::{ReadableTable, TableDefinition};
use replikv_core::error::{Error, Result};
use replikv_core::{ClientId, LogIndex, RequestId, Version};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

/// Client id to its session record: where formats 2 to 4 kept the sessions. Only opened
/// to be converted when a store is upgraded.
pub(super) const SESSIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("sessions");
/// Log index of a client's last applied write to the client id: the eviction order as
/// format 2 of the store kept it. Only opened to be dropped when a store is upgraded.
pub(super) const SESSION_ORDER: TableDefinition<u64, u64> = TableDefinition::new("session_order");
/// Where a snapshot install stages the sessions (client id to session record) before
/// they replace the live ones.
pub(super) const STAGING_SESSIONS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("staging_sessions");

/// Default of [`StoreOptions::client_sessions_max`](super::StoreOptions).
pub const CLIENT_SESSIONS_DEFAULT: usize = 1024;

/// Most client sessions a store may be configured to keep. All of them travel in the
/// last chunk of a snapshot, so this many records must fit in one chunk.
pub const CLIENT_SESSIONS_LIMIT: usize = 64 * 1024;

/// Most bytes of one encoded session record.
pub const SESSION_RECORD_SIZE_MAX_BYTES: usize = 8 + 8 + 19;

const OUTCOME_WRITTEN: u8 = 1;
const OUTCOME_COMPARE_AND_SET: u8 = 2;
const OUTCOME_LEASE: u8 = 3;
const OUTCOME_FENCED: u8 = 4;
const OUTCOME_TOO_MANY_LEASES: u8 = 5;

/// What the store remembers of one client: its last applied request and the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSession {
    pub client: ClientId,
    /// The highest sequence applied for this client.
    pub sequence: u64,
    /// The log index that request was applied at.
    pub index: LogIndex,
    /// Its outcome, the answer to every retry.
    pub outcome: WriteOutcome,
}

impl ClientSession {
    /// The record stored under the client's id.
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(SESSION_RECORD_SIZE_MAX_BYTES);
        self.encode_into(&mut bytes);
        bytes
    }

    /// Appends the record to `bytes`; returns its length.
    pub(super) fn encode_into(&self, bytes: &mut Vec<u8>) -> usize {
        let start = bytes.len();
        bytes.extend_from_slice(&self.sequence.to_be_bytes());
        bytes.extend_from_slice(&self.index.0.to_be_bytes());
        match self.outcome {
            WriteOutcome::Written { version } => {
                bytes.push(OUTCOME_WRITTEN);
                bytes.extend_from_slice(&version.0.to_be_bytes());
            }
            WriteOutcome::CompareAndSet { swapped, version } => {
                bytes.push(OUTCOME_COMPARE_AND_SET);
                bytes.push(u8::from(swapped));
                bytes.extend_from_slice(&version.0.to_be_bytes());
            }
            WriteOutcome::Lease {
                granted,
                holder,
                token,
            } => {
                bytes.push(OUTCOME_LEASE);
                bytes.push(u8::from(granted));
                bytes.push(u8::from(holder.is_some()));
                bytes.extend_from_slice(&holder.map_or(0, |holder| holder.0).to_be_bytes());
                bytes.extend_from_slice(&token.to_be_bytes());
            }
            WriteOutcome::Fenced { latest_token } => {
                bytes.push(OUTCOME_FENCED);
                bytes.extend_from_slice(&latest_token.to_be_bytes());
            }
            WriteOutcome::TooManyLeases => bytes.push(OUTCOME_TOO_MANY_LEASES),
            WriteOutcome::Superseded { .. } => {
                unreachable!("a superseded request is never recorded")
            }
        }
        let length = bytes.len() - start;
        debug_assert!(length <= SESSION_RECORD_SIZE_MAX_BYTES);
        length
    }

    pub(super) fn decode(client: u64, bytes: &[u8]) -> Result<ClientSession> {
        let bad = || corruption(format!("session record of c{client}: {bytes:?}"));
        let (sequence, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
        let (index, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
        let outcome = match rest {
            [OUTCOME_WRITTEN, version @ ..] => WriteOutcome::Written {
                version: Version(u64::from_be_bytes(version.try_into().map_err(|_| bad())?)),
            },
            [OUTCOME_COMPARE_AND_SET, swapped @ (0 | 1), version @ ..] => {
                WriteOutcome::CompareAndSet {
                    swapped: *swapped == 1,
                    version: Version(u64::from_be_bytes(version.try_into().map_err(|_| bad())?)),
                }
            }
            [
                OUTCOME_LEASE,
                granted @ (0 | 1),
                present @ (0 | 1),
                numbers @ ..,
            ] => {
                let numbers: &[u8; 16] = numbers.try_into().map_err(|_| bad())?;
                let (holder, token) = numbers.split_at(8);
                let holder = u64::from_be_bytes(holder.try_into().expect("8 bytes"));
                WriteOutcome::Lease {
                    granted: *granted == 1,
                    holder: (*present == 1).then_some(ClientId(holder)),
                    token: u64::from_be_bytes(token.try_into().expect("8 bytes")),
                }
            }
            [OUTCOME_FENCED, token @ ..] => WriteOutcome::Fenced {
                latest_token: u64::from_be_bytes(token.try_into().map_err(|_| bad())?),
            },
            [OUTCOME_TOO_MANY_LEASES] => WriteOutcome::TooManyLeases,
            _ => return Err(bad()),
        };
        Ok(ClientSession {
            client: ClientId(client),
            sequence: u64::from_be_bytes(*sequence),
            index: LogIndex(u64::from_be_bytes(*index)),
            outcome,
        })
    }
}

/// What the sessions say about a request before it is applied.
pub(super) enum Verdict {
    /// Apply it (a new request, or a client not remembered).
    Apply,
    /// Do not apply it; answer this.
    Answer(WriteOutcome),
}

/// Decides a request against its client's session.
pub(super) fn verdict(session: Option<&ClientSession>, request_id: RequestId) -> Verdict {
    match session {
        Some(session) if request_id.sequence == session.sequence => {
            Verdict::Answer(session.outcome)
        }
        Some(session) if request_id.sequence < session.sequence => {
            Verdict::Answer(WriteOutcome::Superseded {
                latest_sequence: session.sequence,
            })
        }
        _ => Verdict::Apply,
    }
}

/// Stale entries the eviction order may hold beyond as many as there are sessions
/// before they are dropped.
const ORDER_SLACK: usize = 64;

/// Hashes client ids for the in-memory sessions, without entropy and cheaply (the
/// standard SipHash cost a tenth of applying a write): the ids are mixed together and
/// the result is put through the SplitMix64 finalizer, which spreads every input bit
/// over the whole hash, so ids with equal low bits do not collide. No stronger than
/// SipHash with fixed keys was against chosen ids, which is what it replaces.
#[derive(Default)]
pub(super) struct ClientIdHasher {
    state: u64,
}

impl Hasher for ClientIdHasher {
    fn finish(&self) -> u64 {
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(u64::from(*byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.state = self.state.rotate_left(23) ^ value;
    }
}

/// The sessions of a store, kept in memory ahead of redb: applying a write reads and
/// records its client's session here, and [`SessionTable::flush`] writes the sessions
/// that changed into redb in the transaction that records the applied position, when the
/// store commits. See the module documentation.
#[derive(Debug, Default)]
pub(super) struct SessionTable {
    /// Client id to its session (hashed without entropy: nothing here depends on the
    /// map's order, and nothing may depend on entropy).
    by_client: HashMap<u64, ClientSession, BuildHasherDefault<ClientIdHasher>>,
    /// Log index and client of every session recorded, oldest first: the eviction order.
    /// An entry whose client has since recorded a later session or been evicted is stale
    /// and skipped; stale entries are dropped once they outnumber the live ones (so the
    /// queue holds at most twice the sessions, plus [`ORDER_SLACK`]).
    order: VecDeque<(LogIndex, ClientId)>,
    /// Clients whose session changed (recorded or evicted) since the last flush, in the
    /// order they changed, maybe more than once (sorted and deduplicated at the flush).
    /// Bounded by the writes of one apply transaction (every commit flushes): each adds
    /// its client and the clients it evicted (one, unless `client_sessions_max` was
    /// lowered since the store was last opened).
    dirty: Vec<u64>,
    /// What the durable deltas table holds since the last fold.
    deltas: session_log::DeltaLog,
}

impl SessionTable {
    /// The sessions the durable tables hold (base chunks and deltas, see
    /// [`session_log`](super::session_log)); refuses two sessions at one log index as
    /// [`Error::Corruption`].
    pub(super) fn load(
        chunks: &impl ReadableTable<u64, &'static [u8]>,
        deltas: &impl ReadableTable<u64, &'static [u8]>,
    ) -> Result<SessionTable> {
        let (sessions, log) = session_log::load(chunks, deltas)?;
        let mut table = SessionTable {
            deltas: log,
            ..SessionTable::default()
        };
        let mut order: Vec<(LogIndex, ClientId)> = sessions
            .iter()
            .map(|session| (session.index, session.client))
            .collect();
        order.sort_unstable();
        if let Some(pair) = order.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(corruption(format!("two sessions at index {}", pair[0].0.0)));
        }
        table.order = order.into();
        table.by_client.reserve(sessions.len());
        for session in sessions {
            table.by_client.insert(session.client.0, session);
        }
        Ok(table)
    }

    /// Refuses, as corruption, a loaded session recorded at an index past `applied`.
    pub(super) fn check_indexes_at_most(&self, applied: LogIndex) -> Result<()> {
        let latest = self.by_client.values().map(|session| session.index).max();
        match latest {
            Some(index) if index > applied => Err(corruption(format!(
                "a client session at index {} lies past the applied index {}",
                index.0, applied.0
            ))),
            _ => Ok(()),
        }
    }

    /// The sessions of the state `transaction` holds.
    pub(super) fn load_from(transaction: &redb::WriteTransaction) -> Result<SessionTable> {
        let chunks = transaction
            .open_table(SESSION_CHUNKS)
            .map_err(storage_error)?;
        let deltas = transaction
            .open_table(SESSION_DELTAS)
            .map_err(storage_error)?;
        SessionTable::load(&chunks, &deltas)
    }

    /// The session of `client`, if remembered.
    pub(super) fn get(&self, client: ClientId) -> Option<&ClientSession> {
        self.by_client.get(&client.0)
    }

    /// Every session, in client order.
    pub(super) fn all(&self) -> Vec<ClientSession> {
        let mut all: Vec<ClientSession> = self.by_client.values().copied().collect();
        all.sort_unstable_by_key(|session| session.client);
        all
    }

    /// Whether sessions changed since the last flush.
    pub(super) fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Records that `session` was applied (replacing its client's earlier session), then
    /// evicts the oldest sessions beyond `sessions_max`.
    pub(super) fn record(&mut self, session: ClientSession, sessions_max: usize) {
        assert!(sessions_max >= 1);
        assert!(
            self.order
                .back()
                .is_none_or(|(newest, _)| *newest < session.index),
            "sessions advance with the log, one per log index"
        );
        self.by_client.insert(session.client.0, session);
        self.order.push_back((session.index, session.client));
        self.dirty.push(session.client.0);
        while self.by_client.len() > sessions_max {
            let (index, oldest) = self.order.pop_front().expect("order holds every session");
            if !self.is_live(index, oldest) {
                continue;
            }
            assert_ne!(
                oldest, session.client,
                "the newest session is never evicted"
            );
            self.by_client.remove(&oldest.0);
            self.dirty.push(oldest.0);
        }
        if self.order.len() > 2 * self.by_client.len() + ORDER_SLACK {
            let by_client = &self.by_client;
            self.order.retain(|(index, client)| {
                by_client
                    .get(&client.0)
                    .is_some_and(|live| live.index == *index)
            });
            debug_assert_eq!(self.order.len(), self.by_client.len());
        }
    }

    /// Whether the order's entry (`index`, `client`) is its client's current session.
    fn is_live(&self, index: LogIndex, client: ClientId) -> bool {
        self.by_client
            .get(&client.0)
            .is_some_and(|session| session.index == index)
    }

    /// Writes the sessions that changed since the last flush into `transaction` as one
    /// delta (a record for each remembered one, a removal for each evicted one, in client
    /// order), or folds every session into a new base instead if the deltas would outgrow
    /// `limits`, and forgets that the sessions changed ([`session_log`](super::session_log)).
    pub(super) fn flush(
        &mut self,
        transaction: &redb::WriteTransaction,
        limits: FoldLimits,
    ) -> Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        let changed: Vec<(u64, Option<&ClientSession>)> = dirty
            .iter()
            .map(|client| (*client, self.by_client.get(client)))
            .collect();
        let mut deltas = transaction
            .open_table(SESSION_DELTAS)
            .map_err(storage_error)?;
        if self
            .deltas
            .needs_fold(changed.len(), self.by_client.len(), limits)
        {
            let mut chunks = transaction
                .open_table(SESSION_CHUNKS)
                .map_err(storage_error)?;
            self.deltas = session_log::rewrite(&mut chunks, &mut deltas, &self.all())?;
        } else {
            session_log::append_deltas(&mut deltas, &mut self.deltas, &changed)?;
        }
        Ok(())
    }

    /// Entries of the eviction order, stale ones included.
    #[cfg(test)]
    pub(super) fn order_length(&self) -> usize {
        self.order.len()
    }

    /// What the deltas table holds, as far as this table knows.
    #[cfg(test)]
    pub(super) fn delta_log(&self) -> session_log::DeltaLog {
        self.deltas
    }
}

/// Every session of a sessions table, in client order.
pub(super) fn all_sessions(
    sessions: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Vec<ClientSession>> {
    let mut all = Vec::new();
    for item in sessions.iter().map_err(storage_error)? {
        let (client, record) = item.map_err(storage_error)?;
        all.push(ClientSession::decode(client.value(), record.value())?);
        if all.len() > CLIENT_SESSIONS_LIMIT {
            return Err(corruption(format!(
                "more than {CLIENT_SESSIONS_LIMIT} sessions"
            )));
        }
    }
    Ok(all)
}

/// Checks sessions received in a snapshot chunk: at most [`CLIENT_SESSIONS_LIMIT`],
/// clients strictly increasing, indexes distinct, non-zero and not after `last_index`,
/// and outcomes that can be recorded.
pub(super) fn check_sessions(sessions: &[ClientSession], last_index: LogIndex) -> Result<()> {
    let invalid = |detail: String| Err(Error::InvalidInput(format!("snapshot sessions: {detail}")));
    if sessions.len() > CLIENT_SESSIONS_LIMIT {
        return invalid(format!("{} sessions", sessions.len()));
    }
    let mut indexes = std::collections::BTreeSet::new();
    for pair in sessions.windows(2) {
        if pair[0].client >= pair[1].client {
            return invalid(format!("client {} out of order", pair[1].client));
        }
    }
    for session in sessions {
        if session.index == LogIndex::ZERO || session.index > last_index {
            return invalid(format!("{} at index {}", session.client, session.index.0));
        }
        if !indexes.insert(session.index) {
            return invalid(format!("index {} twice", session.index.0));
        }
        if matches!(session.outcome, WriteOutcome::Superseded { .. }) {
            return invalid(format!("{} records a superseded outcome", session.client));
        }
    }
    Ok(())
}
