//! A correct, durable, single-node register served in an N-node cluster, kept on the real
//! replication log.
//!
//! Node 1 serves every request; every other node answers `NotLeader { leader: n1 }`, so
//! clients exercise their redirect path. Node 1 keeps the registers in memory (key to
//! value and version) and records every change as one entry of a
//! [`replikv_storage::log::Log`] on its disk: term 1 (one node serves forever, so there
//! is never a second term), consecutive indexes from 1, and as payload the key's state
//! *after* the change:
//!
//! ```text
//! payload = state: u8 (0 deleted, 1 value) | version: u64 LE | key length: u32 LE | key
//!           | (state 1) value length: u32 LE | value
//! ```
//!
//! Because an entry holds a state and not an operation, replaying the log in order
//! rebuilds the registers, and replay needs no knowledge of compare-and-set or deletes.
//!
//! Why the real log and not a file of our own: the register exists to prove the
//! simulator, and the simulator exists to put the real storage code through power
//! failures. With the register on the log, every crash of a sweep (between calls, or
//! armed to strike inside a sync, a segment rollover, or recovery cutting a torn tail)
//! lands in `replikv_storage::log`, and an acknowledged write the log loses is a
//! durability verdict with a seed. The segments are kept small
//! ([`LOG_SEGMENT_SIZE_MAX_BYTES`]) so that a five-second run rolls over several times.
//!
//! Group commit: requests are applied and appended as they arrive (the log only buffers
//! them in memory), but every reply — reads included, since a read may observe an
//! unsynced write — waits in `pending_replies` until [`Replica::handle_flush`] has called
//! [`Log::sync`], which writes the whole batch with one write and one `sync_data`. A crash
//! before the sync loses the batch, and nobody was told it happened. A request the log
//! refuses (its bound on unsynced bytes is reached) is answered at once with that error:
//! it certainly did not happen, so the answer reveals nothing unsynced.
//!
//! Recovery is [`Log::open`], which cuts a torn tail and refuses mid-log damage, then a
//! replay of every entry in bounded batches. The log checks its framing; the replay
//! checks the meaning: a payload that does not decode, a term other than 1, or a version
//! that does not follow the key's previous one is [`Error::Corruption`], returned, never
//! a panic, since those bytes came from a disk.
//!
//! With [`Acknowledgement::BeforeSync`] the same code replies at once instead of after
//! the sync; that is the deliberately broken `AckBeforeSync` model of
//! [`crate::reference::broken`].

use crate::node::NodeSetup;
use crate::reference::NoMessage;
use replikv_core::error::{Error, Outcome, Result};
use replikv_core::replica::{ClusterObserver, Output, Replica};
use replikv_core::{
    Instant, Key, LogPosition, NodeId, Reply, Request, RequestId, Term, Value, Version,
};
use replikv_storage::log::{Entry, Log, LogOptions};
use std::collections::{BTreeMap, VecDeque};

/// The node that serves.
pub const SERVING_NODE: NodeId = NodeId(1);

/// The term of every entry the register logs.
pub const LOG_TERM: Term = Term(1);

/// Segment size of the register's log: small, so that the simulator's crashes also land
/// in segment rollovers, and recovery reads many segments.
pub const LOG_SEGMENT_SIZE_MAX_BYTES: u64 = 16 * 1024;

/// Most entries, and payload bytes, read from the log at a time during replay.
const REPLAY_BATCH_ENTRIES_MAX: usize = 1024;
const REPLAY_BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

const STATE_DELETED: u8 = 0;
const STATE_VALUE: u8 = 1;

/// When replies are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acknowledgement {
    /// After the sync that makes the request's effects durable (correct).
    AfterSync,
    /// As soon as the request is applied in memory (broken: a crash loses acknowledged
    /// writes).
    BeforeSync,
}

/// The options of the register's log.
#[must_use]
pub fn log_options() -> LogOptions {
    LogOptions {
        segment_size_max_bytes: LOG_SEGMENT_SIZE_MAX_BYTES,
        ..LogOptions::default()
    }
}

/// One key's state: its value (absent after a delete) and its version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KeyState {
    value: Option<Value>,
    version: Version,
}

/// The payload of one log entry: a key and its state after a change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Change {
    key: Key,
    state: KeyState,
}

impl Change {
    fn encode(&self) -> Vec<u8> {
        let key = self.key.as_bytes();
        let value = self.state.value.as_ref().map(Value::as_bytes);
        let mut payload = Vec::with_capacity(21 + key.len() + value.map_or(0, <[u8]>::len));
        payload.push(if value.is_some() {
            STATE_VALUE
        } else {
            STATE_DELETED
        });
        payload.extend_from_slice(&self.state.version.0.to_le_bytes());
        put_prefixed(&mut payload, key);
        if let Some(value) = value {
            put_prefixed(&mut payload, value);
        }
        payload
    }

    /// Reads a payload; an error names what is malformed. Never panics.
    fn decode(payload: &[u8]) -> std::result::Result<Change, String> {
        let mut reader = Reader { bytes: payload };
        let tag = reader.take(1)?[0];
        let version = Version(u64::from_le_bytes(
            reader.take(8)?.try_into().expect("8 bytes"),
        ));
        let key = Key::new(reader.take_prefixed()?).map_err(|error| error.to_string())?;
        let value = match tag {
            STATE_VALUE => {
                Some(Value::new(reader.take_prefixed()?).map_err(|error| error.to_string())?)
            }
            STATE_DELETED => None,
            other => return Err(format!("unknown state tag {other}")),
        };
        if !reader.bytes.is_empty() {
            return Err(format!("{} trailing bytes", reader.bytes.len()));
        }
        Ok(Change {
            key,
            state: KeyState { value, version },
        })
    }
}

fn put_prefixed(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).expect("keys and values are bounded");
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> std::result::Result<&'a [u8], String> {
        if self.bytes.len() < count {
            return Err(format!(
                "needs {count} more bytes, has {}",
                self.bytes.len()
            ));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn take_prefixed(&mut self) -> std::result::Result<&'a [u8], String> {
        let length = u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes"));
        self.take(usize::try_from(length).map_err(|error| error.to_string())?)
    }
}

/// A register node; see the module documentation.
#[derive(Debug)]
pub struct Register {
    id: NodeId,
    acknowledgement: Acknowledgement,
    /// The serving node's log; `None` on every other node, which never touches its disk.
    log: Option<Log>,
    registers: BTreeMap<Key, KeyState>,
    pending_replies: Vec<(RequestId, Reply)>,
    outputs: VecDeque<Output<NoMessage>>,
}

impl Register {
    /// The correct register: replies after the sync.
    pub fn open(setup: NodeSetup) -> Result<Register> {
        Register::open_with(setup, Acknowledgement::AfterSync)
    }

    /// Builds a node, recovering node 1's registers from its log.
    pub fn open_with(setup: NodeSetup, acknowledgement: Acknowledgement) -> Result<Register> {
        Register::open_with_log_options(setup, acknowledgement, log_options())
    }

    fn open_with_log_options(
        setup: NodeSetup,
        acknowledgement: Acknowledgement,
        options: LogOptions,
    ) -> Result<Register> {
        let mut register = Register {
            id: setup.id,
            acknowledgement,
            log: None,
            registers: BTreeMap::new(),
            pending_replies: Vec::new(),
            outputs: VecDeque::new(),
        };
        if setup.id == SERVING_NODE {
            let log = Log::open(setup.disk, options)?;
            register.registers = replay(&log)?;
            register.log = Some(log);
        }
        Ok(register)
    }

    fn serve(&mut self, request: Request) -> Result<Reply> {
        let Some(key) = request.key().cloned() else {
            return Ok(Reply::Failed(Error::InvalidInput(
                "administrative requests (membership, leadership) are not served by this reference model".into(),
            )));
        };
        let current = self.registers.get(&key).cloned().unwrap_or_default();
        let reply = match request {
            Request::Get { .. } => Reply::Read {
                value: current.value,
                version: current.version,
                position: LogPosition::ZERO,
            },
            Request::Put { value, .. } => Reply::Written {
                version: self.write(key, Some(value), current.version)?,
                position: LogPosition::ZERO,
            },
            Request::Delete { .. } => Reply::Written {
                version: self.write(key, None, current.version)?,
                position: LogPosition::ZERO,
            },
            Request::CompareAndSet { expected, new, .. } => {
                let matches = current.value == expected;
                self.compare_and_set(key, matches, new, current.version)?
            }
            Request::CompareAndSetVersion { expected, new, .. } => {
                let matches = current.version == expected;
                self.compare_and_set(key, matches, new, current.version)?
            }
            Request::AcquireLease { .. }
            | Request::RenewLease { .. }
            | Request::ReleaseLease { .. }
            | Request::PutFenced { .. }
            | Request::DeleteFenced { .. }
            | Request::PutWithExpiry { .. }
            | Request::Expire { .. }
            | Request::GetWithExpiry { .. } => Reply::Failed(Error::InvalidInput(
                "leases and expiry are not served by this reference model".into(),
            )),
            Request::ChangeMembership { .. } | Request::TransferLeadership { .. } => {
                unreachable!("keyless, answered above")
            }
        };
        Ok(reply)
    }

    /// Writes `new` if `matches`, and answers the compare-and-set.
    fn compare_and_set(
        &mut self,
        key: Key,
        matches: bool,
        new: Value,
        version: Version,
    ) -> Result<Reply> {
        if matches {
            let version = self.write(key, Some(new), version)?;
            return Ok(Reply::CompareAndSet {
                swapped: true,
                version,
                position: LogPosition::ZERO,
            });
        }
        Ok(Reply::CompareAndSet {
            swapped: false,
            version,
            position: LogPosition::ZERO,
        })
    }

    /// Logs and applies a new state of `key`; returns its new version. Nothing changes if
    /// the log refuses the entry.
    fn write(&mut self, key: Key, value: Option<Value>, previous: Version) -> Result<Version> {
        let log = self.log.as_mut().expect("only the serving node writes");
        let version = Version(previous.0 + 1);
        let change = Change {
            key,
            state: KeyState { value, version },
        };
        let index = log.last_position().index.next();
        log.append(&[Entry::new(LOG_TERM.0, index.0, change.encode())])?;
        debug_assert_eq!(log.last_position().index, index);
        self.registers.insert(change.key, change.state);
        Ok(version)
    }

    fn reply(&mut self, request_id: RequestId, reply: Reply) {
        match self.acknowledgement {
            Acknowledgement::AfterSync => self.pending_replies.push((request_id, reply)),
            Acknowledgement::BeforeSync => {
                self.outputs.push_back(Output::Reply { request_id, reply });
            }
        }
    }
}

/// Checks, after every event, that only the serving node holds registers. Stateless: the
/// rule is about each instant, so nothing needs remembering between events.
#[derive(Clone, Copy, Debug, Default)]
pub struct RegisterObserver;

impl ClusterObserver<Register> for RegisterObserver {
    fn observe(&mut self, replicas: &[&Register]) -> std::result::Result<(), String> {
        for replica in replicas {
            if replica.id != SERVING_NODE && !replica.registers.is_empty() {
                return Err(format!("{} holds registers but does not serve", replica.id));
            }
        }
        Ok(())
    }
}

impl Replica for Register {
    type Message = NoMessage;
    type Observer = RegisterObserver;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_message(&mut self, _now: Instant, _from: NodeId, message: NoMessage) -> Result<()> {
        match message {}
    }

    fn handle_request(
        &mut self,
        _now: Instant,
        request_id: RequestId,
        request: Request,
    ) -> Result<()> {
        if self.id != SERVING_NODE {
            let reply = Reply::Failed(Error::NotLeader {
                leader: Some(SERVING_NODE),
            });
            self.outputs.push_back(Output::Reply { request_id, reply });
            return Ok(());
        }
        match self.serve(request) {
            Ok(reply) => self.reply(request_id, reply),
            Err(error) if error.outcome() == Outcome::Failed => {
                // Refused before anything changed: safe to say so before any sync.
                let reply = Reply::Failed(error);
                self.outputs.push_back(Output::Reply { request_id, reply });
            }
            Err(error) => return Err(error),
        }
        Ok(())
    }

    fn handle_tick(&mut self, _now: Instant) -> Result<()> {
        Ok(())
    }

    fn handle_flush(&mut self, _now: Instant) -> Result<()> {
        if let Some(log) = &mut self.log {
            let durable = log.sync()?;
            assert_eq!(
                durable,
                log.last_position(),
                "a sync makes everything durable"
            );
        }
        for (request_id, reply) in self.pending_replies.drain(..) {
            self.outputs.push_back(Output::Reply { request_id, reply });
        }
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Output<NoMessage>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        Ok(self
            .registers
            .iter()
            .filter_map(|(key, state)| Some((key.clone(), state.value.clone()?)))
            .collect())
    }
}

/// Rebuilds the registers from every entry of `log`, read in bounded batches.
fn replay(log: &Log) -> Result<BTreeMap<Key, KeyState>> {
    let mut registers = BTreeMap::new();
    let last = log.last_position().index;
    let mut index = log.first_index();
    while index <= last {
        let batch = log.read_range(index, REPLAY_BATCH_ENTRIES_MAX, REPLAY_BATCH_BYTES_MAX)?;
        assert!(!batch.is_empty(), "the log holds entry {index}");
        for entry in batch {
            assert_eq!(entry.position.index, index, "read_range returns in order");
            apply_logged(&mut registers, &entry)?;
            index = index.next();
        }
    }
    Ok(registers)
}

/// Applies one replayed entry, checking that it is a change the register could have made.
fn apply_logged(registers: &mut BTreeMap<Key, KeyState>, entry: &Entry) -> Result<()> {
    let corruption = |detail: String| {
        Error::Corruption(format!("register log entry {}: {detail}", entry.position))
    };
    if entry.position.term != LOG_TERM {
        return Err(corruption(format!("term is not {LOG_TERM}")));
    }
    let change = Change::decode(&entry.payload).map_err(corruption)?;
    let previous = registers
        .get(&change.key)
        .map_or(Version(0), |state| state.version);
    if change.state.version.0 != previous.0 + 1 {
        return Err(corruption(format!(
            "key {} goes from version {} to {}",
            change.key, previous.0, change.state.version.0
        )));
    }
    registers.insert(change.key, change.state);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use replikv_core::ClientId;
    use replikv_core::limits::LOG_RECORD_SIZE_MAX_BYTES;
    use replikv_storage::disk::{Disk, SimDisk};

    fn setup(disk: &SimDisk) -> NodeSetup {
        NodeSetup {
            id: SERVING_NODE,
            peers: vec![NodeId(2), NodeId(3)],
            disk: Disk::Simulated(disk.clone()),
            seed: 0,
        }
    }

    /// Log options that roll over every few entries.
    fn tiny_segments() -> LogOptions {
        LogOptions {
            segment_size_max_bytes: 256,
            ..LogOptions::default()
        }
    }

    fn key(name: &str) -> Key {
        Key::new(name).unwrap()
    }

    fn value(text: &str) -> Value {
        Value::new(text).unwrap()
    }

    fn request_id(sequence: u64) -> RequestId {
        RequestId {
            client: ClientId(0),
            sequence,
        }
    }

    fn put(register: &mut Register, sequence: u64, name: &str, text: &str) {
        let request = Request::Put {
            key: key(name),
            value: value(text),
        };
        let id = request_id(sequence);
        register.handle_request(Instant::ZERO, id, request).unwrap();
    }

    fn drain(register: &mut Register) -> Vec<Reply> {
        std::iter::from_fn(|| register.poll_output())
            .map(|output| match output {
                Output::Reply { reply, .. } => reply,
                Output::Send { message, .. } => match message {},
                Output::Discarded { writes } => panic!("a register discards nothing: {writes:?}"),
            })
            .collect()
    }

    fn change(name: &str, version: u64, text: Option<&str>) -> Change {
        Change {
            key: key(name),
            state: KeyState {
                value: text.map(value),
                version: Version(version),
            },
        }
    }

    #[test]
    fn payloads_round_trip_in_the_documented_format() {
        // Fields: state tag | version u64 LE | key length u32 LE | key | value length | value.
        let cases: [(Change, &[u8]); 3] = [
            (
                change("k1", 7, Some("42")),
                b"\x01\x07\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00k1\x02\x00\x00\x0042",
            ),
            (
                change("k1", 8, None),
                b"\x00\x08\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00k1",
            ),
            (
                change("k", 1, Some("")),
                b"\x01\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00k\x00\x00\x00\x00",
            ),
        ];
        for (change, bytes) in cases {
            assert_eq!(change.encode(), bytes, "{change:?}");
            assert_eq!(Change::decode(bytes), Ok(change));
        }
    }

    #[test]
    fn malformed_payloads_are_errors_and_decoding_is_canonical() {
        for change in [change("key", 3, Some("value")), change("key", 4, None)] {
            let bytes = change.encode();
            for cut in 0..bytes.len() {
                assert!(Change::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Change::decode(&longer).is_err(), "trailing byte");
            let mut unknown = bytes;
            unknown[0] = 2;
            assert!(Change::decode(&unknown).is_err(), "unknown tag");
        }
        let empty_key = b"\x01\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
        assert!(Change::decode(empty_key).is_err(), "empty key");
        let huge_key = b"\x00\x01\0\0\0\0\0\0\0\xff\xff\xff\xff";
        assert!(Change::decode(huge_key).is_err(), "key length past the end");
        // Whatever random bytes decode to must encode back to exactly those bytes.
        let mut random = ChaCha8Rng::seed_from_u64(3);
        let mut decoded = 0;
        for _ in 0..20_000 {
            let length = random.random_range(0..40);
            let mut bytes: Vec<u8> = (0..length).map(|_| random.random_range(0..4)).collect();
            if let Some(tag) = bytes.first_mut() {
                *tag %= 2;
            }
            if let Ok(change) = Change::decode(&bytes) {
                assert_eq!(change.encode(), bytes);
                decoded += 1;
            }
        }
        assert!(decoded > 0, "the random inputs never decoded");
    }

    #[test]
    fn replies_wait_for_the_sync_and_synced_writes_survive_a_crash() {
        let disk = SimDisk::new();
        let mut register = Register::open(setup(&disk)).unwrap();
        put(&mut register, 1, "k1", "1");
        assert_eq!(register.poll_output(), None, "no reply before the sync");
        let syncs = disk.sync_count();
        register.handle_flush(Instant::ZERO).unwrap();
        assert_eq!(disk.sync_count(), syncs + 1, "one sync for the batch");
        assert_eq!(
            drain(&mut register),
            [Reply::Written {
                version: Version(1),
                position: LogPosition::ZERO,
            }]
        );
        register.handle_flush(Instant::ZERO).unwrap();
        assert_eq!(disk.sync_count(), syncs + 1, "an empty batch costs no sync");
        put(&mut register, 2, "k2", "2");
        disk.crash(&mut ChaCha8Rng::seed_from_u64(1));
        drop(register);
        let recovered = Register::open(setup(&disk)).unwrap();
        let state = recovered.visible_state().unwrap();
        assert_eq!(
            state.get(&key("k1")),
            Some(&value("1")),
            "synced write kept"
        );
        assert!(state.len() <= 2);
    }

    #[test]
    fn acknowledging_before_the_sync_replies_at_once() {
        let disk = SimDisk::new();
        let mut register = Register::open_with(setup(&disk), Acknowledgement::BeforeSync).unwrap();
        let syncs = disk.sync_count();
        put(&mut register, 1, "k1", "1");
        assert_eq!(
            drain(&mut register),
            [Reply::Written {
                version: Version(1),
                position: LogPosition::ZERO,
            }]
        );
        assert_eq!(disk.sync_count(), syncs, "replied before the sync");
    }

    #[test]
    fn replay_reads_many_segments_in_batches() {
        let disk = SimDisk::new();
        let open = || {
            let acknowledgement = Acknowledgement::AfterSync;
            Register::open_with_log_options(setup(&disk), acknowledgement, tiny_segments())
        };
        let mut register = open().unwrap();
        let writes = 3 * REPLAY_BATCH_ENTRIES_MAX as u64;
        for write in 0..writes {
            put(
                &mut register,
                write,
                &format!("k{}", write % 7),
                &write.to_string(),
            );
            if write % 100 == 99 {
                register.handle_flush(Instant::ZERO).unwrap();
            }
        }
        register.handle_flush(Instant::ZERO).unwrap();
        let expected = register.registers.clone();
        drop(register);
        let segments = Disk::Simulated(disk.clone()).list("log").unwrap().len();
        assert!(segments > 100, "{segments} segments");
        assert_eq!(open().unwrap().registers, expected);
        assert_eq!(expected[&key("k0")].version, Version(writes.div_ceil(7)));
    }

    #[test]
    fn replay_refuses_entries_the_register_could_not_have_written() {
        let first = change("k", 1, Some("a")).encode();
        let cases = [
            (
                "valid",
                vec![(1, first.clone()), (1, change("k", 2, None).encode())],
            ),
            ("payload that does not decode", vec![(1, vec![9, 1, 2])]),
            ("term other than 1", vec![(2, first.clone())]),
            (
                "first version not 1",
                vec![(1, change("k", 2, None).encode())],
            ),
            (
                "version repeated",
                vec![(1, first.clone()), (1, first.clone())],
            ),
            (
                "version skipped",
                vec![(1, first), (1, change("k", 3, None).encode())],
            ),
        ];
        for (what, payloads) in cases {
            let disk = SimDisk::new();
            let mut log = Log::open(Disk::Simulated(disk.clone()), log_options()).unwrap();
            let entries: Vec<Entry> = (1..)
                .zip(payloads)
                .map(|(index, (term, payload))| Entry::new(term, index, payload))
                .collect();
            log.append(&entries).unwrap();
            log.sync().unwrap();
            drop(log);
            match Register::open(setup(&disk)) {
                Ok(_) => assert_eq!(what, "valid"),
                Err(error) => assert!(
                    what != "valid" && matches!(error, Error::Corruption(_)),
                    "{what}: {error:?}"
                ),
            }
        }
    }

    #[test]
    fn a_write_the_log_refuses_is_answered_at_once_and_changes_nothing() {
        let disk = SimDisk::new();
        let options = LogOptions {
            pending_size_max_bytes: LOG_RECORD_SIZE_MAX_BYTES as u64,
            ..log_options()
        };
        let acknowledgement = Acknowledgement::AfterSync;
        let mut register =
            Register::open_with_log_options(setup(&disk), acknowledgement, options).unwrap();
        // The smallest allowed pending bound holds two maximum-size values, not three.
        let big = "x".repeat(replikv_core::limits::VALUE_SIZE_MAX_BYTES);
        put(&mut register, 1, "k1", &big);
        put(&mut register, 4, "k3", &big);
        put(&mut register, 2, "k2", &big);
        let replies = drain(&mut register);
        assert!(
            matches!(replies[..], [Reply::Failed(Error::Overloaded(_))]),
            "{replies:?}"
        );
        assert!(!register.registers.contains_key(&key("k2")));
        register.handle_flush(Instant::ZERO).unwrap();
        let written = Reply::Written {
            version: Version(1),
            position: LogPosition::ZERO,
        };
        assert_eq!(drain(&mut register), [written.clone(), written]);
        put(&mut register, 3, "k2", &big);
        register.handle_flush(Instant::ZERO).unwrap();
        assert_eq!(
            drain(&mut register),
            [Reply::Written {
                version: Version(1),
                position: LogPosition::ZERO,
            }]
        );
    }

    #[test]
    fn other_nodes_redirect_to_the_serving_node_and_leave_their_disk_alone() {
        let disk = SimDisk::new();
        let mut node = Register::open(NodeSetup {
            id: NodeId(2),
            ..setup(&disk)
        })
        .unwrap();
        put(&mut node, 1, "k", "v");
        let leader = Some(SERVING_NODE);
        assert_eq!(
            drain(&mut node),
            [Reply::Failed(Error::NotLeader { leader })]
        );
        node.handle_flush(Instant::ZERO).unwrap();
        assert_eq!(disk.mutation_count(), 0, "idle nodes do not touch the disk");
        assert_eq!(RegisterObserver.observe(&[&node]), Ok(()));
    }

    /// A random write to one of three keys; `unique` makes the value unique to the run.
    fn random_write(random: &mut ChaCha8Rng, register: &Register, unique: u64) -> Request {
        let key = key(&format!("k{}", random.random_range(0..3)));
        let new = value(&unique.to_string());
        match random.random_range(0..10) {
            0..5 => Request::Put { key, value: new },
            5..7 => Request::Delete { key },
            _ => {
                let current = register.registers.get(&key).and_then(|s| s.value.clone());
                let expected = if random.random_bool(0.7) {
                    current
                } else {
                    Some(value("never written"))
                };
                Request::CompareAndSet { key, expected, new }
            }
        }
    }

    /// The crash scenario of one seed; see the test below. Returns how many crashes struck
    /// inside a call.
    fn crash_repeatedly(seed: u64) -> u64 {
        let disk = SimDisk::new();
        let mut random = ChaCha8Rng::seed_from_u64(seed);
        // states[i]: the registers after the first i changes that may still be on disk.
        let mut states = vec![BTreeMap::new()];
        let mut acknowledged = 0;
        let mut unique = 0;
        let mut struck_inside = 0;
        for _round in 0..8 {
            if random.random_bool(0.5) {
                disk.schedule_crash(random.random_range(0..12), random.random());
            }
            let crashes = disk.crash_count();
            let acknowledgement = Acknowledgement::AfterSync;
            let opened =
                Register::open_with_log_options(setup(&disk), acknowledgement, tiny_segments());
            let mut register = match opened {
                Ok(register) => register,
                Err(error) => {
                    assert_ne!(disk.crash_count(), crashes, "seed {seed}: {error}");
                    struck_inside += 1;
                    continue;
                }
            };
            let Some(found) = states[acknowledged..]
                .iter()
                .position(|state| *state == register.registers)
            else {
                let (registers, changes) = (&register.registers, states.len() - 1);
                panic!(
                    "seed {seed}: recovered {registers:?}, acknowledged {acknowledged} of {changes}"
                )
            };
            states.truncate(acknowledged + found + 1);
            for _ in 0..random.random_range(1..30) {
                let request = random_write(&mut random, &register, unique);
                let id = request_id(unique);
                unique += 1;
                register.handle_request(Instant::ZERO, id, request).unwrap();
                assert_eq!(register.poll_output(), None, "no reply before the sync");
                if register.registers != *states.last().expect("never empty") {
                    states.push(register.registers.clone());
                }
                if random.random_bool(0.25) {
                    if let Err(error) = register.handle_flush(Instant::ZERO) {
                        assert_ne!(disk.crash_count(), crashes, "seed {seed}: {error}");
                        struck_inside += 1;
                        break;
                    }
                    acknowledged = states.len() - 1;
                    let replies = drain(&mut register);
                    assert!(!replies.iter().any(|r| matches!(r, Reply::Failed(_))));
                }
            }
            if disk.crash_count() == crashes {
                disk.crash(&mut random);
            }
        }
        struck_inside
    }

    /// Power fails over and over, between calls and inside them (during a sync, a segment
    /// rollover, or recovery cutting a torn tail), with segments of a few entries. After
    /// every recovery the registers must be exactly the state after some prefix of the
    /// changes made, and that prefix must hold every acknowledged change.
    #[test]
    fn recovery_keeps_a_prefix_that_holds_every_acknowledged_change() {
        let struck_inside: u64 = (0..200).map(crash_repeatedly).sum();
        assert!(struck_inside > 200, "crashes inside calls: {struck_inside}");
    }
}
