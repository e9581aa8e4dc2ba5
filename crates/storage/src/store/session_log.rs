//! The durable form of the client sessions: large base chunks plus one delta per commit.
//!
//! The store keeps its client sessions in memory ([`SessionTable`](super::session)) and
//! writes the ones that changed when its apply transaction commits, in the same
//! transaction as the applied position. Format 4 of the store wrote each changed session
//! as its own row of a `sessions` table: one redb B-tree insert per session, and since
//! nearly every write comes from a different client, that was one insert per write, about
//! a sixth of all the work of a replicated write in the simulator's throughput bench
//! (2026-11-22 profile). Format 5 writes them in bulk instead, in two tables:
//!
//! - `session_chunks`: the *base*, every session as of the last fold, in client order,
//!   in chunks of at most [`SESSION_CHUNK_SESSIONS_MAX`] sessions, keyed 0, 1, 2, ...;
//! - `session_deltas`: since the last fold, one record per commit (a *delta*) holding the
//!   sessions that changed in it — the new record of each client recorded, a removal for
//!   each client evicted — keyed by an increasing sequence number.
//!
//! So a commit costs one redb insert however many sessions changed. Opening the store
//! (or reloading after a failed commit) reads the base and replays the deltas in sequence
//! order; the result is exactly the set of sessions the last commit held, and since the
//! eviction order is a function of that set (ordered by each session's log index), the
//! order is exact too.
//!
//! **Folding.** Deltas accumulate, and replaying them costs time on opening; so when one
//! more delta would take their bytes beyond those of the live sessions (or beyond
//! [`SESSION_FOLD_FLOOR_BYTES`], whichever is larger) or their number beyond
//! [`SESSION_DELTAS_MAX`], the commit *folds* instead: it rewrites the base from memory,
//! in chunks, and drops every delta, in the same transaction. The bytes written for folds
//! are then at most about those written for deltas, so the amortized cost per commit
//! stays a few large inserts; and a commit that changed about as many sessions as are
//! live (a long interval between commits) writes the base alone.
//!
//! **Crash safety** is unchanged: deltas and folds are written in the transaction that
//! records the applied position, so whatever a crash keeps, base plus deltas are the
//! sessions of the applied position on disk.
//!
//! **Encoding.** A chunk and a delta are both a *session batch*: `count (4) | entries`,
//! each entry `client (8) | length (1) | session record` (the record of
//! `ClientSession::encode`, `length` bytes; length 0 is a removal, which a chunk never
//! holds), clients strictly increasing, big-endian. Everything is checked on reading; a
//! batch that does not decode is [`Error::Corruption`](replikv_core::error::Error).

use super::encoding::{corruption, storage_error};
use super::session::{CLIENT_SESSIONS_LIMIT, ClientSession, SESSION_RECORD_SIZE_MAX_BYTES};
use redb::{ReadableTable, Table, TableDefinition};
use replikv_core::error::Result;

/// Chunk number to a batch of sessions: the base.
pub(super) const SESSION_CHUNKS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("session_chunks");
/// Sequence number to a delta: the sessions that changed in one commit.
pub(super) const SESSION_DELTAS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("session_deltas");

/// Most sessions in one base chunk.
pub const SESSION_CHUNK_SESSIONS_MAX: usize = 1024;

/// Most entries in one delta; a commit that changed more sessions writes several.
pub const SESSION_DELTA_ENTRIES_MAX: usize = 4 * 1024;

/// Deltas at which the next commit folds them into the base.
pub const SESSION_DELTAS_MAX: u64 = 1024;

/// Delta bytes below which no fold happens, however few sessions are live.
pub const SESSION_FOLD_FLOOR_BYTES: usize = 64 * 1024;

/// Most bytes of one entry of a session batch.
const ENTRY_SIZE_MAX_BYTES: usize = 8 + 1 + SESSION_RECORD_SIZE_MAX_BYTES;

/// Bytes of a batch's header.
const HEADER_SIZE_BYTES: usize = 4;

/// When a commit folds the deltas into the base (the constants above; tests lower them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FoldLimits {
    /// Deltas at which the next commit folds, 1 to [`SESSION_DELTAS_MAX`].
    pub deltas_max: u64,
    /// Delta bytes below which no fold happens.
    pub floor_bytes: usize,
}

impl Default for FoldLimits {
    fn default() -> FoldLimits {
        FoldLimits {
            deltas_max: SESSION_DELTAS_MAX,
            floor_bytes: SESSION_FOLD_FLOOR_BYTES,
        }
    }
}

/// What the deltas table holds since the last fold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct DeltaLog {
    /// Sequence number of the next delta.
    pub next_sequence: u64,
    /// Deltas stored.
    pub count: u64,
    /// Their bytes.
    pub size_bytes: usize,
}

impl DeltaLog {
    /// Whether a commit that changed `changed` sessions should fold (rewrite the base of
    /// `live_sessions` sessions and drop the deltas) rather than add its delta: when its
    /// delta would reach [`FoldLimits::deltas_max`] deltas or take their bytes beyond
    /// the live sessions' (a delta about as large as the base is not worth keeping).
    pub(super) fn needs_fold(
        &self,
        changed: usize,
        live_sessions: usize,
        limits: FoldLimits,
    ) -> bool {
        let pieces = changed.div_ceil(SESSION_DELTA_ENTRIES_MAX) as u64;
        let delta_bytes = HEADER_SIZE_BYTES * (pieces as usize) + changed * ENTRY_SIZE_MAX_BYTES;
        let live_bytes = live_sessions * ENTRY_SIZE_MAX_BYTES;
        self.count + pieces > limits.deltas_max
            || self.size_bytes + delta_bytes > live_bytes.max(limits.floor_bytes)
    }
}

/// One entry of a session batch: a client and its session, or its removal.
pub(super) type BatchEntry = (u64, Option<ClientSession>);

/// Encodes a session batch of at most [`SESSION_DELTA_ENTRIES_MAX`] entries, clients
/// strictly increasing.
pub(super) fn encode_batch<'a>(
    entries: impl ExactSizeIterator<Item = (u64, Option<&'a ClientSession>)>,
) -> Vec<u8> {
    let count = entries.len();
    assert!(
        count <= SESSION_DELTA_ENTRIES_MAX,
        "session batch of {count}"
    );
    let mut bytes = Vec::with_capacity(HEADER_SIZE_BYTES + count * ENTRY_SIZE_MAX_BYTES);
    bytes.extend_from_slice(&u32::try_from(count).expect("bounded").to_be_bytes());
    let mut previous = None;
    for (client, session) in entries {
        assert!(previous < Some(client), "session batch in client order");
        previous = Some(client);
        bytes.extend_from_slice(&client.to_be_bytes());
        match session {
            Some(session) => {
                debug_assert_eq!(session.client.0, client);
                let length_at = bytes.len();
                bytes.push(0);
                let length = session.encode_into(&mut bytes);
                bytes[length_at] = u8::try_from(length).expect("a session record is small");
            }
            None => bytes.push(0),
        }
    }
    bytes
}

/// Decodes a session batch (`what` names it in errors): at most
/// [`SESSION_DELTA_ENTRIES_MAX`] entries, clients strictly increasing, removals only if
/// `removals` allows them.
pub(super) fn decode_batch(bytes: &[u8], what: &str, removals: bool) -> Result<Vec<BatchEntry>> {
    let bad = |detail: &str| corruption(format!("{what}: {detail}"));
    let (count, mut rest) = bytes
        .split_first_chunk::<HEADER_SIZE_BYTES>()
        .ok_or_else(|| bad("no header"))?;
    let count = u32::from_be_bytes(*count) as usize;
    if count > SESSION_DELTA_ENTRIES_MAX {
        return Err(bad(&format!("{count} entries")));
    }
    let mut entries: Vec<BatchEntry> = Vec::with_capacity(count);
    for _ in 0..count {
        let (client, after) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| bad("truncated entry"))?;
        let client = u64::from_be_bytes(*client);
        let (&length, after) = after.split_first().ok_or_else(|| bad("truncated entry"))?;
        let length = usize::from(length);
        if after.len() < length {
            return Err(bad("truncated record"));
        }
        let (record, after) = after.split_at(length);
        rest = after;
        if entries.last().is_some_and(|(last, _)| *last >= client) {
            return Err(bad(&format!("client {client} out of order")));
        }
        let session = match length {
            0 if removals => None,
            0 => return Err(bad(&format!("removal of client {client}"))),
            _ => Some(ClientSession::decode(client, record)?),
        };
        entries.push((client, session));
    }
    if !rest.is_empty() {
        return Err(bad(&format!("{} bytes after the last entry", rest.len())));
    }
    Ok(entries)
}

/// The sessions the base chunks and deltas hold (base first, then every delta in
/// sequence order, each replacing or removing the sessions it names), at most
/// [`CLIENT_SESSIONS_LIMIT`], and what the deltas table holds.
pub(super) fn load(
    chunks: &impl ReadableTable<u64, &'static [u8]>,
    deltas: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<(Vec<ClientSession>, DeltaLog)> {
    let too_many = || corruption(format!("more than {CLIENT_SESSIONS_LIMIT} sessions"));
    let mut sessions = std::collections::BTreeMap::new();
    for (expected, item) in (0u64..).zip(chunks.iter().map_err(storage_error)?) {
        let (number, bytes) = item.map_err(storage_error)?;
        if number.value() != expected {
            return Err(corruption(format!("session chunk {expected} missing")));
        }
        let what = format!("session chunk {expected}");
        for (client, session) in decode_batch(bytes.value(), &what, false)? {
            if sessions
                .insert(client, session.expect("no removal"))
                .is_some()
            {
                return Err(corruption(format!("client {client} in two chunks")));
            }
        }
        if sessions.len() > CLIENT_SESSIONS_LIMIT {
            return Err(too_many());
        }
    }
    let mut log = DeltaLog::default();
    for item in deltas.iter().map_err(storage_error)? {
        let (sequence, bytes) = item.map_err(storage_error)?;
        log.count += 1;
        if log.count > SESSION_DELTAS_MAX {
            return Err(corruption(format!("more than {SESSION_DELTAS_MAX} deltas")));
        }
        let what = format!("session delta {}", sequence.value());
        for (client, session) in decode_batch(bytes.value(), &what, true)? {
            match session {
                Some(session) => sessions.insert(client, session),
                None => sessions.remove(&client),
            };
        }
        if sessions.len() > CLIENT_SESSIONS_LIMIT {
            return Err(too_many());
        }
        log.size_bytes += bytes.value().len();
        log.next_sequence = sequence
            .value()
            .checked_add(1)
            .ok_or_else(|| corruption(format!("session delta sequence {}", sequence.value())))?;
    }
    Ok((sessions.into_values().collect(), log))
}

/// Appends one delta per [`SESSION_DELTA_ENTRIES_MAX`] of `changed` (clients strictly
/// increasing) to `deltas`, and records it in `log`.
pub(super) fn append_deltas(
    deltas: &mut Table<u64, &'static [u8]>,
    log: &mut DeltaLog,
    changed: &[(u64, Option<&ClientSession>)],
) -> Result<()> {
    for piece in changed.chunks(SESSION_DELTA_ENTRIES_MAX) {
        let bytes = encode_batch(piece.iter().copied());
        deltas
            .insert(log.next_sequence, bytes.as_slice())
            .map_err(storage_error)?;
        log.next_sequence += 1;
        log.count += 1;
        log.size_bytes += bytes.len();
    }
    Ok(())
}

/// [`rewrite`] in `transaction`'s session tables: a fresh base (an upgrade, an install).
pub(super) fn rewrite_in(
    transaction: &redb::WriteTransaction,
    sessions: &[ClientSession],
) -> Result<DeltaLog> {
    let mut chunks = transaction
        .open_table(SESSION_CHUNKS)
        .map_err(storage_error)?;
    let mut deltas = transaction
        .open_table(SESSION_DELTAS)
        .map_err(storage_error)?;
    rewrite(&mut chunks, &mut deltas, sessions)
}

/// Folds: rewrites the base as `sessions` (in client order) in chunks of
/// [`SESSION_CHUNK_SESSIONS_MAX`], and drops every delta.
pub(super) fn rewrite(
    chunks: &mut Table<u64, &'static [u8]>,
    deltas: &mut Table<u64, &'static [u8]>,
    sessions: &[ClientSession],
) -> Result<DeltaLog> {
    assert!(sessions.len() <= CLIENT_SESSIONS_LIMIT);
    let mut written = 0u64;
    for chunk in sessions.chunks(SESSION_CHUNK_SESSIONS_MAX) {
        let bytes = encode_batch(
            chunk
                .iter()
                .map(|session| (session.client.0, Some(session))),
        );
        chunks
            .insert(written, bytes.as_slice())
            .map_err(storage_error)?;
        written += 1;
    }
    chunks
        .retain_in(written.., |_, _| false)
        .map_err(storage_error)?;
    deltas.retain(|_, _| false).map_err(storage_error)?;
    Ok(DeltaLog::default())
}
