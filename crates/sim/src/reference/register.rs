//! A correct, durable, single-node register served in an N-node cluster.
//!
//! Node 1 serves every request; every other node answers `NotLeader { leader: n1 }`, so
//! clients exercise their redirect path. Node 1 keeps the registers in memory and logs
//! every change to `register.log` on its disk before acknowledging it:
//!
//! ```text
//! record = length: u32 LE | crc32c(length bytes ++ payload): u32 LE | payload
//! payload = tag: u8 (0 value, 1 deleted) | version: u64 LE | key length: u32 LE | key
//!           | (tag 0) value length: u32 LE | value
//! ```
//!
//! A record holds the key's state after the change, so replaying the log in order
//! rebuilds the registers. Group commit: requests are applied and logged as they arrive,
//! but every reply — reads included, since a read may observe an unsynced write — waits
//! in `pending_replies` until [`Replica::handle_flush`] has synced the log. A crash before
//! the sync loses the batch and nobody was told it happened.
//!
//! Recovery reads the log from the start and stops at the first record that is
//! incomplete, has a bad checksum or a zero length (a lost write reads back as zeros).
//! Everything from there on was written after the last sync, so it was never
//! acknowledged, and the file is cut there (and the cut synced) before new appends. A
//! record whose checksum matches but whose payload does not parse is corruption, not a
//! torn write, and recovery refuses to start.
//!
//! With [`Acknowledgement::BeforeSync`] the same code replies at once instead of after
//! the sync; that is the deliberately broken `AckBeforeSync` model of
//! [`crate::reference::broken`].

use crate::node::NodeSetup;
use crate::reference::NoMessage;
use replikv_core::error::{Error, Result};
use replikv_core::limits::LOG_RECORD_SIZE_MAX_BYTES;
use replikv_core::replica::{Output, Replica};
use replikv_core::{Instant, Key, NodeId, Reply, Request, RequestId, Value, Version};
use replikv_storage::disk::{Disk, File};
use std::collections::{BTreeMap, VecDeque};

/// The node that serves.
pub const SERVING_NODE: NodeId = NodeId(1);

/// The log file's name on the serving node's disk.
pub const LOG_FILE_NAME: &str = "register.log";

const HEADER_BYTES: usize = 8;
const TAG_VALUE: u8 = 0;
const TAG_DELETED: u8 = 1;

/// When replies are released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acknowledgement {
    /// After the sync that makes the request's effects durable (correct).
    AfterSync,
    /// As soon as the request is applied in memory (broken: a crash loses acknowledged
    /// writes).
    BeforeSync,
}

/// One key's state: its value (absent after a delete) and its version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entry {
    value: Option<Value>,
    version: Version,
}

/// The serving node's log file and where the next record goes.
#[derive(Debug)]
struct Log {
    file: File,
    end_offset: u64,
    unsynced: bool,
}

/// A register node; see the module documentation.
#[derive(Debug)]
pub struct Register {
    id: NodeId,
    acknowledgement: Acknowledgement,
    log: Option<Log>,
    entries: BTreeMap<Key, Entry>,
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
        let mut register = Register {
            id: setup.id,
            acknowledgement,
            log: None,
            entries: BTreeMap::new(),
            pending_replies: Vec::new(),
            outputs: VecDeque::new(),
        };
        if setup.id == SERVING_NODE {
            let (log, entries) = recover(&setup.disk)?;
            register.log = Some(log);
            register.entries = entries;
        }
        Ok(register)
    }

    fn serve(&mut self, request: Request) -> Result<Reply> {
        let key = request.key().clone();
        let entry = self.entries.get(&key).cloned().unwrap_or_default();
        let reply = match request {
            Request::Get { .. } => Reply::Read {
                value: entry.value,
                version: entry.version,
            },
            Request::Put { value, .. } => self.write(key, Some(value), entry.version)?,
            Request::Delete { .. } => self.write(key, None, entry.version)?,
            Request::CompareAndSet { expected, new, .. } => {
                if entry.value == expected {
                    let Reply::Written { version } = self.write(key, Some(new), entry.version)?
                    else {
                        unreachable!("write replies Written")
                    };
                    Reply::CompareAndSet {
                        swapped: true,
                        version,
                    }
                } else {
                    Reply::CompareAndSet {
                        swapped: false,
                        version: entry.version,
                    }
                }
            }
        };
        Ok(reply)
    }

    /// Logs and applies a new state of `key`.
    fn write(&mut self, key: Key, value: Option<Value>, previous: Version) -> Result<Reply> {
        let version = Version(previous.0 + 1);
        let record = encode_record(&key, value.as_ref(), version)?;
        let log = self.log.as_mut().expect("only the serving node writes");
        log.file.write_all_at(log.end_offset, &record)?;
        log.end_offset += record.len() as u64;
        log.unsynced = true;
        self.entries.insert(key, Entry { value, version });
        Ok(Reply::Written { version })
    }
}

impl Replica for Register {
    type Message = NoMessage;

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
        let reply = self.serve(request)?;
        match self.acknowledgement {
            Acknowledgement::AfterSync => self.pending_replies.push((request_id, reply)),
            Acknowledgement::BeforeSync => {
                self.outputs.push_back(Output::Reply { request_id, reply })
            }
        }
        Ok(())
    }

    fn handle_tick(&mut self, _now: Instant) -> Result<()> {
        Ok(())
    }

    fn handle_flush(&mut self, _now: Instant) -> Result<()> {
        if let Some(log) = &mut self.log
            && log.unsynced
        {
            log.file.sync_data()?;
            log.unsynced = false;
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
            .entries
            .iter()
            .filter_map(|(key, entry)| Some((key.clone(), entry.value.clone()?)))
            .collect())
    }

    fn check_cluster_invariants(replicas: &[&Register]) -> std::result::Result<(), String> {
        for replica in replicas {
            if replica.id != SERVING_NODE && !replica.entries.is_empty() {
                return Err(format!("{} holds registers but does not serve", replica.id));
            }
        }
        Ok(())
    }
}

/// Opens the log (making its name durable), replays it, and cuts a torn tail.
fn recover(disk: &Disk) -> Result<(Log, BTreeMap<Key, Entry>)> {
    let file = disk.open(LOG_FILE_NAME)?;
    disk.sync_directory("")?;
    let length = usize::try_from(file.len()?)
        .map_err(|_| Error::Corruption("register log larger than memory".into()))?;
    let mut bytes = vec![0; length];
    file.read_exact_at(0, &mut bytes)?;
    let mut entries = BTreeMap::new();
    let mut offset = 0;
    while let Some((payload, next)) = next_record(&bytes, offset) {
        let (key, entry) = decode_payload(payload).map_err(|message| {
            Error::Corruption(format!("register log record at byte {offset}: {message}"))
        })?;
        entries.insert(key, entry);
        offset = next;
    }
    if offset < bytes.len() {
        file.set_len(offset as u64)?;
        file.sync_data()?;
    }
    let log = Log {
        file,
        end_offset: offset as u64,
        unsynced: false,
    };
    Ok((log, entries))
}

/// The payload of the intact record at `offset` and the offset after it, or `None` at
/// the end of the intact prefix (end of file, torn or zeroed record, bad checksum).
fn next_record(bytes: &[u8], offset: usize) -> Option<(&[u8], usize)> {
    let header = bytes.get(offset..offset.checked_add(HEADER_BYTES)?)?;
    let length_bytes: [u8; 4] = header[..4].try_into().expect("4 bytes");
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let length = u32::from_le_bytes(length_bytes) as usize;
    if length == 0 || length > LOG_RECORD_SIZE_MAX_BYTES {
        return None;
    }
    let start = offset + HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(length)?)?;
    let expected = crc32c::crc32c_append(crc32c::crc32c(&length_bytes), payload);
    (crc == expected).then_some((payload, start + length))
}

fn encode_record(key: &Key, value: Option<&Value>, version: Version) -> Result<Vec<u8>> {
    let mut payload = Vec::with_capacity(32 + key.as_bytes().len());
    payload.push(if value.is_some() {
        TAG_VALUE
    } else {
        TAG_DELETED
    });
    payload.extend_from_slice(&version.0.to_le_bytes());
    put_bytes(&mut payload, key.as_bytes());
    if let Some(value) = value {
        put_bytes(&mut payload, value.as_bytes());
    }
    if payload.len() > LOG_RECORD_SIZE_MAX_BYTES {
        return Err(Error::InvalidInput("register record too large".into()));
    }
    let length_bytes = u32::try_from(payload.len())
        .expect("bounded above")
        .to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&length_bytes), &payload);
    let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
    record.extend_from_slice(&length_bytes);
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(&payload);
    Ok(record)
}

fn put_bytes(buffer: &mut Vec<u8>, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).expect("keys and values are bounded");
    buffer.extend_from_slice(&length.to_le_bytes());
    buffer.extend_from_slice(bytes);
}

/// Reads a payload; an error names what is malformed.
fn decode_payload(payload: &[u8]) -> std::result::Result<(Key, Entry), String> {
    let mut reader = Reader { bytes: payload };
    let tag = reader.take(1)?[0];
    let version = Version(u64::from_le_bytes(
        reader.take(8)?.try_into().expect("8 bytes"),
    ));
    let key = Key::new(reader.take_prefixed()?).map_err(|e| e.to_string())?;
    let value = match tag {
        TAG_VALUE => Some(Value::new(reader.take_prefixed()?).map_err(|e| e.to_string())?),
        TAG_DELETED => None,
        other => return Err(format!("unknown tag {other}")),
    };
    if !reader.bytes.is_empty() {
        return Err(format!("{} trailing bytes", reader.bytes.len()));
    }
    Ok((key, Entry { value, version }))
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
        self.take(length as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use replikv_core::ClientId;
    use replikv_storage::disk::SimDisk;

    fn setup(disk: &SimDisk) -> NodeSetup {
        NodeSetup {
            id: SERVING_NODE,
            peers: vec![NodeId(2), NodeId(3)],
            disk: Disk::Simulated(disk.clone()),
            seed: 0,
        }
    }

    fn put(register: &mut Register, sequence: u64, key: &str, value: &str) {
        let request_id = RequestId {
            client: ClientId(0),
            sequence,
        };
        let request = Request::Put {
            key: Key::new(key).unwrap(),
            value: Value::new(value).unwrap(),
        };
        register
            .handle_request(Instant::ZERO, request_id, request)
            .unwrap();
    }

    fn state(register: &Register) -> Vec<(String, String)> {
        let state = register.visible_state().unwrap();
        state
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let key = Key::new("k1").unwrap();
        let value = Value::new("42").unwrap();
        for value in [Some(&value), None] {
            let record = encode_record(&key, value, Version(7)).unwrap();
            let (payload, next) = next_record(&record, 0).unwrap();
            assert_eq!(next, record.len());
            let (decoded_key, entry) = decode_payload(payload).unwrap();
            assert_eq!(
                (decoded_key, entry.value.as_ref(), entry.version),
                (key.clone(), value, Version(7))
            );
            for cut in 0..record.len() {
                assert!(next_record(&record[..cut], 0).is_none(), "torn at {cut}");
            }
            for bit in 0..record.len() * 8 {
                let mut flipped = record.clone();
                flipped[bit / 8] ^= 1 << (bit % 8);
                assert!(next_record(&flipped, 0).is_none(), "bit {bit} flipped");
            }
        }
        assert!(next_record(&[0; 64], 0).is_none(), "zeros are not a record");
    }

    #[test]
    fn replies_wait_for_the_sync_and_synced_writes_survive_a_crash() {
        let disk = SimDisk::new();
        let mut register = Register::open(setup(&disk)).unwrap();
        put(&mut register, 1, "k1", "1");
        assert_eq!(register.poll_output(), None, "no reply before the sync");
        let syncs = disk.sync_count();
        register.handle_flush(Instant::ZERO).unwrap();
        assert_eq!(disk.sync_count(), syncs + 1);
        assert!(matches!(register.poll_output(), Some(Output::Reply { .. })));
        put(&mut register, 2, "k2", "2");
        let mut random = ChaCha8Rng::seed_from_u64(1);
        disk.crash(&mut random);
        drop(register);
        let recovered = Register::open(setup(&disk)).unwrap();
        let state = state(&recovered);
        assert!(
            state.contains(&("k1".into(), "1".into())),
            "synced write kept"
        );
        assert!(state.len() <= 2);
    }

    #[test]
    fn recovery_cuts_torn_tails_under_many_crashes() {
        for seed in 0..200 {
            let disk = SimDisk::new();
            let mut random = ChaCha8Rng::seed_from_u64(seed);
            let mut acknowledged: BTreeMap<String, String> = BTreeMap::new();
            for round in 0..5u64 {
                let mut register = Register::open(setup(&disk)).unwrap();
                let recovered: BTreeMap<String, String> = state(&register).into_iter().collect();
                for (key, value) in &acknowledged {
                    // Later unacknowledged writes may have survived too, but never an
                    // older value than the acknowledged one.
                    let now: u64 = recovered[key].parse().unwrap();
                    assert!(
                        now >= value.parse::<u64>().unwrap(),
                        "seed {seed}: {key} went back"
                    );
                }
                for write in 0..6u64 {
                    let value = (round * 100 + write).to_string();
                    let key = format!("k{}", write % 3);
                    put(&mut register, write, &key, &value);
                    if write % 2 == 1 {
                        register.handle_flush(Instant::ZERO).unwrap();
                        for sequence in [write - 1, write] {
                            let key = format!("k{}", sequence % 3);
                            acknowledged.insert(key, (round * 100 + sequence).to_string());
                        }
                    }
                }
                put(&mut register, 9, "k0", &(round * 100 + 50).to_string());
                disk.crash(&mut random);
            }
        }
    }

    #[test]
    fn a_checksummed_but_malformed_record_is_corruption() {
        let disk = SimDisk::new();
        let file = Disk::Simulated(disk.clone()).open(LOG_FILE_NAME).unwrap();
        let payload = [9u8, 1, 2];
        let length_bytes = (payload.len() as u32).to_le_bytes();
        let crc = crc32c::crc32c_append(crc32c::crc32c(&length_bytes), &payload);
        let mut record = length_bytes.to_vec();
        record.extend_from_slice(&crc.to_le_bytes());
        record.extend_from_slice(&payload);
        file.write_all_at(0, &record).unwrap();
        let error = Register::open(setup(&disk)).unwrap_err();
        assert!(matches!(error, Error::Corruption(_)), "{error:?}");
    }

    #[test]
    fn other_nodes_redirect_to_the_serving_node() {
        let disk = SimDisk::new();
        let mut node = Register::open(NodeSetup {
            id: NodeId(2),
            ..setup(&disk)
        })
        .unwrap();
        put(&mut node, 1, "k", "v");
        let Some(Output::Reply { reply, .. }) = node.poll_output() else {
            panic!("expected a reply")
        };
        assert_eq!(
            reply,
            Reply::Failed(Error::NotLeader {
                leader: Some(SERVING_NODE)
            })
        );
        assert!(
            !Disk::Simulated(disk).exists(LOG_FILE_NAME).unwrap(),
            "idle nodes do not touch the disk"
        );
    }
}
