//! A tiny durable value that is replaced atomically: Raft's hard state and the like.
//!
//! A replica must remember a few small facts across crashes exactly: the current term, the
//! candidate it voted for in that term, the position of the last entry compacted out of
//! the log. Losing the newest value is a safety bug (a node that forgets its vote can vote
//! twice in one term), and so is reading a half-written one. A [`MetadataFile`] keeps one
//! such value, at most [`METADATA_SIZE_MAX_BYTES`] long, in a file of two fixed slots.
//!
//! Each slot is `checksum | marker | sequence | length | value`, the checksum (crc32c)
//! covering everything after it. [`MetadataFile::store`] writes the new value with the next
//! sequence number to slot 0, syncs, then writes the same bytes to slot 1 and syncs again.
//! Recovery reads both slots and takes the valid one with the higher sequence number:
//!
//! - power fails while slot 0 is written: slot 0 is torn (the checksum fails) and slot 1
//!   still holds the previous value, which is right, since `store` had not returned;
//! - power fails while slot 1 is written: slot 0 already holds the new value durably;
//! - after `store` returned, both slots hold the new value, so silent decay of either one
//!   (a flipped bit) still leaves the newest value readable: one bad slot never rolls the
//!   value back. Both slots bad is reported as [`Error::Corruption`].
//!
//! Writing both slots costs two syncs per store instead of one; these values change once
//! per election, not once per request, and never rolling back is worth it. A first store
//! that was torn before slot 1 was ever written leaves "no value", as if it never began.
//!
//! Opening a metadata file syncs it before reading it: after a process crash (rather than
//! a power failure) the operating system may still hold a write that never reached the
//! disk, and a value must not be believed, and acted upon, before it is durable.

use crate::disk::{Disk, File, parent_directory};
use replikv_core::Error;
use replikv_core::error::Result;

/// Largest value a metadata file holds, in bytes.
pub const METADATA_SIZE_MAX_BYTES: usize = 4000;

const SLOT_SIZE_BYTES: u64 = 4096;
const SLOT_HEADER_SIZE_BYTES: usize = 20;
const SLOT_MARKER: [u8; 4] = *b"rkvM";
const _: () = assert!(SLOT_HEADER_SIZE_BYTES + METADATA_SIZE_MAX_BYTES <= SLOT_SIZE_BYTES as usize);

/// One small value, durable and atomically replaced; see the module documentation.
#[derive(Debug)]
pub struct MetadataFile {
    name: String,
    file: File,
    sequence: u64,
    value: Option<Vec<u8>>,
    failed: bool,
}

/// What one slot holds.
#[derive(Debug, PartialEq, Eq)]
enum Slot {
    /// Not one byte of the slot was ever written.
    Absent,
    /// Written, but the checksum or framing fails (torn or decayed).
    Invalid,
    Valid {
        sequence: u64,
        value: Vec<u8>,
    },
}

impl MetadataFile {
    /// Opens (creating if needed) the metadata file `name` on `disk` and reads its value.
    pub fn open(disk: &Disk, name: &str) -> Result<MetadataFile> {
        let existed = disk.exists(name)?;
        let file = disk.open(name)?;
        if !existed {
            disk.sync_directory(parent_directory(name))?;
        }
        file.sync_data()?;
        let length_bytes = file.len()?;
        let slots = [
            read_slot(&file, 0, length_bytes)?,
            read_slot(&file, 1, length_bytes)?,
        ];
        let (sequence, value) = choose_slot(name, slots)?;
        Ok(MetadataFile {
            name: name.to_owned(),
            file,
            sequence,
            value,
            failed: false,
        })
    }

    /// The value last stored, or `None` if none ever was.
    #[must_use]
    pub fn load(&self) -> Option<Vec<u8>> {
        self.value.clone()
    }

    /// Replaces the value; durable when this returns. After an I/O error the file refuses
    /// further stores (the state of the disk is unknown until it is reopened).
    pub fn store(&mut self, value: &[u8]) -> Result<()> {
        if value.len() > METADATA_SIZE_MAX_BYTES {
            return Err(Error::InvalidInput(format!(
                "metadata value of {} bytes above the {METADATA_SIZE_MAX_BYTES}-byte limit",
                value.len()
            )));
        }
        if self.failed {
            return Err(Error::Io(format!(
                "metadata file {} failed earlier; reopen it",
                self.name
            )));
        }
        let sequence = self.sequence + 1;
        let encoded = encode_slot(sequence, value);
        let result = self.write_both_slots(&encoded);
        if result.is_err() {
            self.failed = true;
        }
        result?;
        self.sequence = sequence;
        self.value = Some(value.to_vec());
        Ok(())
    }

    fn write_both_slots(&self, encoded: &[u8]) -> Result<()> {
        for slot in 0..2 {
            self.file.write_all_at(slot * SLOT_SIZE_BYTES, encoded)?;
            self.file.sync_data()?;
        }
        Ok(())
    }
}

fn encode_slot(sequence: u64, value: &[u8]) -> Vec<u8> {
    let length = u32::try_from(value.len()).expect("bounded by METADATA_SIZE_MAX_BYTES");
    let mut encoded = Vec::with_capacity(SLOT_HEADER_SIZE_BYTES + value.len());
    encoded.extend_from_slice(&[0; 4]);
    encoded.extend_from_slice(&SLOT_MARKER);
    encoded.extend_from_slice(&sequence.to_le_bytes());
    encoded.extend_from_slice(&length.to_le_bytes());
    encoded.extend_from_slice(value);
    let checksum = crc32c::crc32c(&encoded[4..]);
    encoded[..4].copy_from_slice(&checksum.to_le_bytes());
    encoded
}

fn read_slot(file: &File, slot: u64, file_length_bytes: u64) -> Result<Slot> {
    let start = slot * SLOT_SIZE_BYTES;
    if file_length_bytes <= start {
        return Ok(Slot::Absent);
    }
    let length = (file_length_bytes - start).min(SLOT_SIZE_BYTES);
    let mut bytes = vec![0; usize::try_from(length).expect("at most one slot")];
    file.read_exact_at(start, &mut bytes)?;
    Ok(decode_slot(&bytes))
}

fn decode_slot(bytes: &[u8]) -> Slot {
    let Some(header) = bytes.get(..SLOT_HEADER_SIZE_BYTES) else {
        return Slot::Invalid;
    };
    let checksum = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let sequence = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    let length = u32::from_le_bytes(header[16..20].try_into().expect("4 bytes"));
    let Some(end) = usize::try_from(length)
        .ok()
        .filter(|&length| length <= METADATA_SIZE_MAX_BYTES)
        .map(|length| SLOT_HEADER_SIZE_BYTES + length)
    else {
        return Slot::Invalid;
    };
    match bytes.get(4..end) {
        Some(covered) if crc32c::crc32c(covered) == checksum && header[4..8] == SLOT_MARKER => {
            Slot::Valid {
                sequence,
                value: bytes[SLOT_HEADER_SIZE_BYTES..end].to_vec(),
            }
        }
        _ => Slot::Invalid,
    }
}

/// The value to believe given both slots; see the module documentation.
fn choose_slot(name: &str, slots: [Slot; 2]) -> Result<(u64, Option<Vec<u8>>)> {
    match slots {
        [
            Slot::Valid {
                sequence: first,
                value: first_value,
            },
            Slot::Valid {
                sequence: second,
                value: second_value,
            },
        ] => {
            if first == second && first_value != second_value {
                return Err(Error::Corruption(format!(
                    "metadata file {name}: both slots claim sequence {first} with different values"
                )));
            }
            Ok(if first >= second {
                (first, Some(first_value))
            } else {
                (second, Some(second_value))
            })
        }
        [Slot::Valid { sequence, value }, _] | [_, Slot::Valid { sequence, value }] => {
            Ok((sequence, Some(value)))
        }
        // Slot 1 is written only after slot 0 is synced: a torn first store.
        [_, Slot::Absent] => Ok((0, None)),
        [Slot::Absent | Slot::Invalid, Slot::Invalid] => Err(Error::Corruption(format!(
            "metadata file {name}: both slots fail their checksums"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::SimDisk;
    use crate::log::tests::crash_unless_struck;

    const NAME: &str = "meta/hard_state";

    #[test]
    fn fresh_store_reopen_on_both_disks() {
        let directory = tempfile::tempdir().unwrap();
        for disk in [Disk::os(directory.path()).unwrap(), Disk::simulated()] {
            let mut file = MetadataFile::open(&disk, NAME).unwrap();
            assert_eq!(file.load(), None);
            file.store(b"term 1").unwrap();
            file.store(b"term 2, voted for 3").unwrap();
            file.store(b"").unwrap();
            file.store(b"term 3").unwrap();
            assert_eq!(file.load().as_deref(), Some(&b"term 3"[..]));
            let reopened = MetadataFile::open(&disk, NAME).unwrap();
            assert_eq!(reopened.load().as_deref(), Some(&b"term 3"[..]));
        }
    }

    #[test]
    fn oversized_values_are_refused() {
        let mut file = MetadataFile::open(&Disk::simulated(), NAME).unwrap();
        let too_big = vec![1; METADATA_SIZE_MAX_BYTES + 1];
        assert!(matches!(file.store(&too_big), Err(Error::InvalidInput(_))));
        file.store(&too_big[1..]).unwrap();
        assert_eq!(file.load().unwrap().len(), METADATA_SIZE_MAX_BYTES);
    }

    /// Power fails before each disk operation of a store in turn, and once after it
    /// returned, under many crash outcomes: the value read back is the old one or the new
    /// one (the new one if the store returned), never an error and never anything else. A
    /// store cut short refuses further stores until the file is reopened.
    #[test]
    fn crash_at_every_step_of_a_store_keeps_old_or_new() {
        const NEW: &[u8] = b"new value!";
        for previous in [None, Some(&b"old value"[..])] {
            let prepared = || {
                let sim = SimDisk::new();
                let mut file = MetadataFile::open(&Disk::Simulated(sim.clone()), NAME).unwrap();
                if let Some(previous) = previous {
                    file.store(previous).unwrap();
                }
                (sim, file)
            };
            let (sim, mut file) = prepared();
            let before = sim.mutation_count();
            file.store(NEW).unwrap();
            let operations = sim.mutation_count() - before;
            assert_eq!(operations, 4, "a write and a sync per slot");
            let mut values_seen = std::collections::BTreeSet::new();
            for crash_at in 0..=operations {
                for seed in 0..24 {
                    let (sim, mut file) = prepared();
                    sim.schedule_crash(crash_at, seed);
                    let stored = file.store(NEW).is_ok();
                    let struck = crash_unless_struck(&sim, seed);
                    let context = format!("crash at {crash_at}, seed {seed}");
                    assert_eq!(stored, !struck, "{context}");
                    if struck {
                        let error = file.store(b"x").unwrap_err().to_string();
                        assert!(error.contains("failed earlier"), "{context}: {error}");
                    }
                    let disk = Disk::Simulated(sim);
                    let value = MetadataFile::open(&disk, NAME).unwrap().load();
                    if stored {
                        assert_eq!(value.as_deref(), Some(NEW), "{context}");
                    } else {
                        assert!(
                            value.as_deref() == previous || value.as_deref() == Some(NEW),
                            "{context}: {value:?}"
                        );
                    }
                    values_seen.insert(value);
                }
            }
            // Both outcomes of an interrupted store happen, or the test proves little.
            assert_eq!(values_seen.len(), 2, "{values_seen:?}");
        }
    }

    #[test]
    fn one_decayed_slot_never_rolls_the_value_back() {
        for offset in 0..(SLOT_HEADER_SIZE_BYTES as u64 + 5) {
            for slot in 0..2 {
                let sim = SimDisk::new();
                let disk = Disk::Simulated(sim.clone());
                let mut file = MetadataFile::open(&disk, NAME).unwrap();
                file.store(b"vote 1").unwrap();
                file.store(b"vote 2").unwrap();
                sim.corrupt_bit(NAME, slot * SLOT_SIZE_BYTES + offset, 3)
                    .unwrap();
                let value = MetadataFile::open(&disk, NAME).unwrap().load();
                assert_eq!(value.as_deref(), Some(&b"vote 2"[..]), "offset {offset}");
            }
        }
    }

    #[test]
    fn both_slots_decayed_is_corruption() {
        let sim = SimDisk::new();
        let disk = Disk::Simulated(sim.clone());
        let mut file = MetadataFile::open(&disk, NAME).unwrap();
        file.store(b"vote").unwrap();
        sim.corrupt_bit(NAME, 21, 0).unwrap();
        sim.corrupt_bit(NAME, SLOT_SIZE_BYTES + 2, 5).unwrap();
        let error = MetadataFile::open(&disk, NAME).unwrap_err();
        assert!(matches!(error, Error::Corruption(_)), "{error}");
    }

    /// Two slots and the value expected from them (`None`: corruption).
    type SlotCase = ([Slot; 2], Option<Option<&'static [u8]>>);

    #[test]
    fn slot_choice_table() {
        let valid = |sequence: u64, value: &[u8]| Slot::Valid {
            sequence,
            value: value.to_vec(),
        };
        let cases: Vec<SlotCase> = vec![
            ([Slot::Absent, Slot::Absent], Some(None)),
            ([Slot::Invalid, Slot::Absent], Some(None)),
            ([valid(1, b"a"), Slot::Absent], Some(Some(b"a"))),
            ([valid(2, b"b"), valid(1, b"a")], Some(Some(b"b"))),
            ([valid(1, b"a"), valid(2, b"b")], Some(Some(b"b"))),
            ([valid(2, b"b"), valid(2, b"b")], Some(Some(b"b"))),
            ([Slot::Invalid, valid(1, b"a")], Some(Some(b"a"))),
            ([valid(2, b"b"), valid(2, b"c")], None),
            ([Slot::Invalid, Slot::Invalid], None),
        ];
        for (slots, expected) in cases {
            let description = format!("{slots:?}");
            let chosen = choose_slot(NAME, slots).ok().map(|(_, value)| value);
            assert_eq!(
                chosen.as_ref().map(|value| value.as_deref()),
                expected,
                "{description}"
            );
        }
    }
}
