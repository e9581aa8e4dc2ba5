//! Keys, values, versions, and the client requests and replies every strategy serves.
//!
//! A key maps to a value and a per-key [`Version`] that increases with every write to that
//! key. Versions let a client reject a write based on a stale read ("reject the write
//! whose version is smaller than the server expects", in the seeds' words) through
//! compare-and-set. Sizes are checked here, where bytes become keys and values, against
//! [`crate::limits`].

use crate::error::{Error, Result};
use crate::expiry::{ExpireCondition, Expiry};
use crate::id::{ClientId, NodeId};
use crate::limits::{KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use crate::position::{LogPosition, Term};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A key: 1 to [`KEY_SIZE_MAX_BYTES`] arbitrary bytes. Deserializing checks the limits
/// too, so a key decoded from a peer's message is as valid as one built by [`Key::new`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>")]
pub struct Key(Vec<u8>);

/// A value: 0 to [`VALUE_SIZE_MAX_BYTES`] arbitrary bytes, checked on deserialization.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>")]
pub struct Value(Vec<u8>);

impl TryFrom<Vec<u8>> for Key {
    type Error = Error;
    fn try_from(bytes: Vec<u8>) -> Result<Key> {
        Key::new(bytes)
    }
}

impl TryFrom<Vec<u8>> for Value {
    type Error = Error;
    fn try_from(bytes: Vec<u8>) -> Result<Value> {
        Value::new(bytes)
    }
}

/// The number of writes a key has seen; 0 means the key was never written.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Version(pub u64);

impl Key {
    /// Checks the size limits and wraps the bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Key> {
        let bytes = bytes.into();
        if bytes.is_empty() {
            return Err(Error::InvalidInput("empty key".into()));
        }
        if bytes.len() > KEY_SIZE_MAX_BYTES {
            return Err(Error::InvalidInput(format!(
                "key of {} bytes exceeds the limit of {KEY_SIZE_MAX_BYTES} bytes",
                bytes.len()
            )));
        }
        Ok(Key(bytes))
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Value {
    /// Checks the size limit and wraps the bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Value> {
        let bytes = bytes.into();
        if bytes.len() > VALUE_SIZE_MAX_BYTES {
            return Err(Error::InvalidInput(format!(
                "value of {} bytes exceeds the limit of {VALUE_SIZE_MAX_BYTES} bytes",
                bytes.len()
            )));
        }
        Ok(Value(bytes))
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

fn write_escaped(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for chunk in bytes.utf8_chunks() {
        f.write_str(chunk.valid())?;
        for byte in chunk.invalid() {
            write!(f, "\\x{byte:02x}")?;
        }
    }
    Ok(())
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.0)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.0)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(f, &self.0)
    }
}

/// How fresh a read must be, chosen per request. Strategies document which levels they
/// serve and how; a level a strategy cannot serve is rejected with
/// [`Error::InvalidInput`], never silently weakened (serving a *stronger* level instead is
/// allowed: a lease read may fall back to a linearizable one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadConsistency {
    /// The read reflects every write acknowledged before it began (the default).
    #[default]
    Linearizable,
    /// Linearizable as long as the strategy's stated clock-drift assumption holds: the
    /// leader serves from its own state while it holds a time-bounded lease, without a
    /// round trip to its followers.
    Lease,
    /// Served by whichever replica receives it, from its own state: possibly stale, but
    /// always a state the replica's history went through (consistent prefix).
    Follower,
    /// Read-your-writes and monotonic reads through a session token: the replica serves
    /// the read only once its state includes the log position `token` (the highest
    /// [`Reply`] position the client has seen), else it waits a bounded time and
    /// redirects.
    Session { token: LogPosition },
}

/// A client operation on one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Request {
    Get {
        key: Key,
        consistency: ReadConsistency,
    },
    Put {
        key: Key,
        value: Value,
    },
    Delete {
        key: Key,
    },
    /// Write `new` only if the current value equals `expected` (`None`: key absent).
    CompareAndSet {
        key: Key,
        expected: Option<Value>,
        new: Value,
    },
    /// Write `new` only if the key's version is still `expected` (0: never written; a
    /// deleted key keeps counting): a write based on a stale read is rejected. Answered
    /// by [`Reply::CompareAndSet`].
    CompareAndSetVersion {
        key: Key,
        expected: Version,
        new: Value,
    },
    /// Take the lease `name` for `holder` for `ttl_ms` milliseconds, unless another
    /// holder has it. A grant carries a fencing token larger than every earlier one of
    /// the lease. Answered by [`Reply::Lease`].
    AcquireLease {
        name: Key,
        holder: ClientId,
        ttl_ms: u64,
    },
    /// Restart the lease's time to live; only its holder, with its current token.
    RenewLease {
        name: Key,
        holder: ClientId,
        token: u64,
    },
    /// Give the lease up; only its holder, with its current token.
    ReleaseLease {
        name: Key,
        holder: ClientId,
        token: u64,
    },
    /// [`Request::Put`] guarded by a fencing token: refused (certainly not applied) if
    /// `token` is not the latest token granted for lease `lease`.
    PutFenced {
        key: Key,
        value: Value,
        lease: Key,
        token: u64,
    },
    /// [`Request::Delete`] guarded by a fencing token, like [`Request::PutFenced`].
    DeleteFenced {
        key: Key,
        lease: Key,
        token: u64,
    },
    /// An operator's request: hand leadership of the group to voter `to` (`None`: the
    /// leader picks the most caught-up voter), quickly and without losing anything
    /// (Raft's leadership transfer). Not a key-value operation: it has no key and
    /// changes no data. A strategy without leaders refuses it with
    /// [`Error::InvalidInput`]. Answered by [`Reply::LeadershipTransferred`] once the
    /// target leads, or by an error that says why not (not a voter, another transfer
    /// in progress, timed out).
    TransferLeadership {
        to: Option<NodeId>,
    },
    /// Change the replication group's configuration by one node (an administrative
    /// request, keyless). Answered by [`Reply::Membership`] with the configuration after
    /// the change, once it is committed. Strategies without configurations refuse it with
    /// [`Error::InvalidInput`].
    ChangeMembership {
        change: MembershipChange,
    },
    /// Redis's `SET` with its options: write `value` with the time to live `expiry` (a
    /// relative time counts from the stamp of the log entry, see [`crate::expiry`]),
    /// only if the key's version is still `expected_version` when given (0: absent or
    /// never written; an expired key counts as deleted). Answered by
    /// [`Reply::Written`] without `expected_version`, else by [`Reply::CompareAndSet`].
    PutWithExpiry {
        key: Key,
        value: Value,
        expected_version: Option<Version>,
        expiry: Expiry,
    },
    /// The `EXPIRE` family and `PERSIST`: give a present key the expiry `expiry` if
    /// `condition` allows it. Changes no value and no version (unless the new expiry is
    /// already past: the key is then deleted). Answered by [`Reply::CompareAndSet`]:
    /// `swapped` says whether the expiry was changed; an absent key is never changed.
    /// `PERSIST` is `Expiry::Clear` under [`ExpireCondition::IfSome`].
    Expire {
        key: Key,
        expiry: Expiry,
        condition: ExpireCondition,
    },
    /// [`Request::Get`] that also returns the key's expiry time: answered by
    /// [`Reply::ReadWithExpiry`]. `TTL`, `PTTL` and HTTP `GET` use it.
    GetWithExpiry {
        key: Key,
        consistency: ReadConsistency,
    },
}

/// One change of a replication group's configuration; see [`Request::ChangeMembership`].
/// A change already in effect (adding a node that is already a learner, removing a node
/// that is not a member) succeeds without doing anything, so a retry is harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipChange {
    /// Add a node that receives the log but neither votes nor counts for commits.
    AddLearner(NodeId),
    /// Make a learner a voter, once it has caught up with the log.
    PromoteLearner(NodeId),
    /// Add a voter directly, without catching up as a learner first (the new voter
    /// counts at once, so writes may stall until it caught up).
    AddVoter(NodeId),
    /// Remove a voter or a learner (the leader included).
    Remove(NodeId),
}

impl MembershipChange {
    /// The node the change is about.
    #[must_use]
    pub fn node(self) -> NodeId {
        match self {
            MembershipChange::AddLearner(node)
            | MembershipChange::PromoteLearner(node)
            | MembershipChange::AddVoter(node)
            | MembershipChange::Remove(node) => node,
        }
    }
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MembershipChange::AddLearner(node) => write!(f, "add-learner {node}"),
            MembershipChange::PromoteLearner(node) => write!(f, "promote {node}"),
            MembershipChange::AddVoter(node) => write!(f, "add-voter {node}"),
            MembershipChange::Remove(node) => write!(f, "remove {node}"),
        }
    }
}

impl Request {
    /// The key the request is about; `None` for an administrative request about the
    /// group rather than a key ([`Request::ChangeMembership`],
    /// [`Request::TransferLeadership`]).
    #[must_use]
    pub fn key(&self) -> Option<&Key> {
        match self {
            Request::Get { key, .. }
            | Request::Put { key, .. }
            | Request::Delete { key }
            | Request::CompareAndSet { key, .. }
            | Request::CompareAndSetVersion { key, .. }
            | Request::PutFenced { key, .. }
            | Request::DeleteFenced { key, .. }
            | Request::PutWithExpiry { key, .. }
            | Request::Expire { key, .. }
            | Request::GetWithExpiry { key, .. } => Some(key),
            Request::AcquireLease { name, .. }
            | Request::RenewLease { name, .. }
            | Request::ReleaseLease { name, .. } => Some(name),
            Request::ChangeMembership { .. } | Request::TransferLeadership { .. } => None,
        }
    }

    /// Whether the request may change the key-value state (and so needs replication). A
    /// leadership transfer changes who leads, not the data: not a write.
    #[must_use]
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Request::Get { .. }
                | Request::GetWithExpiry { .. }
                | Request::TransferLeadership { .. }
        )
    }
}

/// The answer to a [`Request`]. Every success carries a log `position`: for a read, the
/// applied position its state was read at; for a write, the position of the log entry
/// that made it. A client keeps the highest one it has seen as its session token
/// ([`ReadConsistency::Session`]). Strategies that serve no session reads (the
/// simulator's reference models) answer [`LogPosition::ZERO`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Reply {
    /// A read's result: the value (absent: `None`) and the key's version.
    Read {
        value: Option<Value>,
        version: Version,
        position: LogPosition,
    },
    /// A put or delete took effect; the key's new version.
    Written {
        version: Version,
        position: LogPosition,
    },
    /// A compare-and-set was decided: swapped or not, and the key's version after it.
    CompareAndSet {
        swapped: bool,
        version: Version,
        position: LogPosition,
    },
    /// A lease request was decided: whether it succeeded, the lease's holder (`None`:
    /// nobody) and latest fencing token after it, and the request's log position.
    Lease {
        granted: bool,
        holder: Option<ClientId>,
        token: u64,
        position: LogPosition,
    },
    /// A [`Request::TransferLeadership`] succeeded: `leader` leads the group in `term`.
    LeadershipTransferred { leader: NodeId, term: Term },
    /// The group's configuration after a [`Request::ChangeMembership`]: voters and
    /// learners in id order, and the log position of the entry that made it.
    Membership {
        voters: Vec<NodeId>,
        learners: Vec<NodeId>,
        position: LogPosition,
    },
    /// The request failed; the error says whether it may still have taken effect.
    Failed(Error),
    /// A [`Request::GetWithExpiry`]'s result: [`Reply::Read`] and the key's expiry time
    /// (`None`: none, or the key is absent), in Unix milliseconds.
    ReadWithExpiry {
        value: Option<Value>,
        version: Version,
        expires_at_unix_ms: Option<u64>,
        position: LogPosition,
    },
}

impl Reply {
    /// The log position a successful reply carries (`None` for a failure, and for a
    /// leadership transfer, which names no log entry).
    #[must_use]
    pub fn position(&self) -> Option<LogPosition> {
        match self {
            Reply::Read { position, .. }
            | Reply::Written { position, .. }
            | Reply::CompareAndSet { position, .. }
            | Reply::Lease { position, .. }
            | Reply::Membership { position, .. }
            | Reply::ReadWithExpiry { position, .. } => Some(*position),
            Reply::LeadershipTransferred { .. } | Reply::Failed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced() {
        assert!(Key::new(Vec::new()).is_err());
        assert!(Key::new(vec![b'k'; KEY_SIZE_MAX_BYTES]).is_ok());
        assert!(Key::new(vec![b'k'; KEY_SIZE_MAX_BYTES + 1]).is_err());
        assert!(Value::new(Vec::new()).is_ok());
        assert!(Value::new(vec![0; VALUE_SIZE_MAX_BYTES + 1]).is_err());
    }

    #[test]
    fn deserialization_enforces_limits() {
        use serde::de::value::{Error as DeError, SeqDeserializer};
        let empty = SeqDeserializer::<_, DeError>::new(Vec::<u8>::new().into_iter());
        assert!(Key::deserialize(empty).is_err());
        let fine = SeqDeserializer::<_, DeError>::new(b"k".to_vec().into_iter());
        assert_eq!(Key::deserialize(fine).unwrap(), Key::new("k").unwrap());
        let huge = vec![0u8; VALUE_SIZE_MAX_BYTES + 1];
        let huge = SeqDeserializer::<_, DeError>::new(huge.into_iter());
        assert!(Value::deserialize(huge).is_err());
    }

    #[test]
    fn debug_escapes_non_utf8() {
        let key = Key::new(vec![b'a', 0xff, b'b']).unwrap();
        assert_eq!(format!("{key:?}"), "a\\xffb");
    }
}
