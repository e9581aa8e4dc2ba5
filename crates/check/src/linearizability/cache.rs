//! The memo of configurations the search has already explored.
//!
//! Lowe's refinement of the Wing & Gong search ("Testing for linearizability", 2017),
//! as Porcupine implements it, remembers every configuration it has fully explored: the
//! set of operations linearized so far plus the register's state. Two different orders
//! of the same operations that end in the same state have the same future, so the second
//! one is cut immediately. This memo is what turns an exponential search into a roughly
//! linear one on the histories real systems produce.
//!
//! A configuration's linearized set is stored compactly. The search linearizes an
//! operation only once every operation that real-time precedes it is linearized, so the
//! set of linearized `ok` operations is "every operation before the first unlinearized
//! one, plus some of the operations invoked before that one completed" — a prefix and a
//! short window whose width is the history's concurrency, not its length. Operations of
//! unknown outcome (`info`) have no completion and can stay unlinearized for ever, so
//! they are kept apart in a plain bitset of their own.
//!
//! The memo's total size is bounded; the search reports `Unknown` rather than exhaust
//! the machine's memory.

use super::model::{RegisterOp, ValueId};
use crate::budget::Exhausted;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast hash for the memo's word slices (SipHash, the default, resists collision
/// attacks that do not matter here and took a tenth of the search's time). Eight bytes at
/// a time are folded in by a multiply, then the result is mixed with the SplitMix64
/// finalizer so that every output bit depends on every input bit.
#[derive(Debug, Default)]
pub(crate) struct WordHasher {
    state: u64,
}

impl WordHasher {
    fn fold(&mut self, word: u64) {
        self.state = (self.state.rotate_left(23) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.fold(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
        }
        let mut last = [0_u8; 8];
        let remainder = chunks.remainder();
        last[..remainder.len()].copy_from_slice(remainder);
        self.fold(u64::from_le_bytes(last) ^ (remainder.len() as u64) << 56);
    }

    fn write_usize(&mut self, value: usize) {
        self.fold(value as u64);
    }

    fn finish(&self) -> u64 {
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }
}

/// The most 32-bit words the memo may hold (256 MiB) before the search gives up.
const CACHE_WORDS_MAX: usize = 64 << 20;

/// Per-entry overhead counted against the bound (allocation and table slot).
const ENTRY_OVERHEAD_WORDS: usize = 8;

/// Visited configurations, each encoded as a word slice.
#[derive(Debug, Default)]
pub(crate) struct ConfigurationCache {
    visited: HashSet<Box<[u32]>, BuildHasherDefault<WordHasher>>,
    words: usize,
}

impl ConfigurationCache {
    /// Records `configuration`; `Ok(true)` if it was new.
    pub(crate) fn insert(&mut self, configuration: &[u32]) -> Result<bool, Exhausted> {
        if self.visited.contains(configuration) {
            return Ok(false);
        }
        self.words += configuration.len() + ENTRY_OVERHEAD_WORDS;
        if self.words > CACHE_WORDS_MAX {
            return Err(Exhausted::Memory);
        }
        self.visited.insert(configuration.into());
        Ok(true)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.visited.len()
    }
}

/// A set of operation indices as a bitset.
#[derive(Clone, Debug)]
pub(crate) struct Bitset {
    words: Vec<u64>,
}

impl Bitset {
    pub(crate) fn new(bits: usize) -> Bitset {
        Bitset {
            words: vec![0; bits.div_ceil(64)],
        }
    }

    pub(crate) fn contains(&self, bit: usize) -> bool {
        self.words[bit / 64] & (1 << (bit % 64)) != 0
    }

    pub(crate) fn insert(&mut self, bit: usize) {
        debug_assert!(!self.contains(bit));
        self.words[bit / 64] |= 1 << (bit % 64);
    }

    pub(crate) fn remove(&mut self, bit: usize) {
        debug_assert!(self.contains(bit));
        self.words[bit / 64] &= !(1 << (bit % 64));
    }

    /// The first bit at or after `from` that is not set (`bits` if none).
    pub(crate) fn first_unset_from(&self, from: usize, bits: usize) -> usize {
        let mut word_index = from / 64;
        let mut word =
            !self.words.get(word_index).copied().unwrap_or(0) >> (from % 64) << (from % 64);
        loop {
            if word != 0 {
                let bit = word_index * 64 + word.trailing_zeros() as usize;
                return bit.min(bits);
            }
            word_index += 1;
            match self.words.get(word_index) {
                Some(next) => word = !next,
                None => return bits,
            }
        }
    }

    /// Appends the words as pairs of u32.
    pub(crate) fn encode_into(&self, out: &mut Vec<u32>) {
        for word in &self.words {
            out.push(*word as u32);
            out.push((*word >> 32) as u32);
        }
    }
}

/// Which operations are linearized, encoded compactly for the memo.
#[derive(Debug)]
pub(crate) struct LinearizedSet {
    /// For each operation: its index among `ok` operations or among `info` ones.
    slot: Vec<(bool, usize)>,
    ok: Bitset,
    pub(crate) ok_count: usize,
    info: Bitset,
    /// For `ok` operation i: the first `ok` operation invoked after i completed.
    window_end: Vec<usize>,
    first_unlinearized_ok: usize,
}

impl LinearizedSet {
    pub(crate) fn new(ops: &[RegisterOp]) -> LinearizedSet {
        let mut slot = Vec::with_capacity(ops.len());
        let (mut ok_count, mut info_count) = (0, 0);
        let mut ok_invokes = Vec::new();
        let mut ok_completes = Vec::new();
        for op in ops {
            if let Some(complete) = op.complete {
                slot.push((true, ok_count));
                ok_count += 1;
                ok_invokes.push(op.invoke);
                ok_completes.push(complete);
            } else {
                slot.push((false, info_count));
                info_count += 1;
            }
        }
        debug_assert!(
            ok_invokes.is_sorted(),
            "operations come in invocation order"
        );
        let window_end = ok_completes
            .iter()
            .map(|complete| ok_invokes.partition_point(|invoke| invoke <= complete))
            .collect();
        LinearizedSet {
            slot,
            ok: Bitset::new(ok_count),
            ok_count,
            info: Bitset::new(info_count),
            window_end,
            first_unlinearized_ok: 0,
        }
    }

    pub(crate) fn insert(&mut self, op: u32) {
        match self.slot[op as usize] {
            (true, index) => {
                self.ok.insert(index);
                if index == self.first_unlinearized_ok {
                    self.first_unlinearized_ok = self.ok.first_unset_from(index, self.ok_count);
                }
            }
            (false, index) => self.info.insert(index),
        }
    }

    pub(crate) fn remove(&mut self, op: u32) {
        match self.slot[op as usize] {
            (true, index) => {
                self.ok.remove(index);
                self.first_unlinearized_ok = self.first_unlinearized_ok.min(index);
            }
            (false, index) => self.info.remove(index),
        }
    }

    /// Encodes (this set, `state`, whether a consumer is awaited) as memo words: state,
    /// the flag, first unlinearized `ok` operation, the `info` bitset, then the
    /// linearized `ok` operations in the window.
    pub(crate) fn encode(&self, state: ValueId, awaiting_consumer: bool, out: &mut Vec<u32>) {
        out.clear();
        let first = self.first_unlinearized_ok;
        out.push(state);
        out.push(u32::from(awaiting_consumer));
        out.push(u32::try_from(first).expect("fewer than 2^32 operations"));
        self.info.encode_into(out);
        if first < self.ok_count {
            for index in first + 1..self.window_end[first] {
                if self.ok.contains(index) {
                    out.push(u32::try_from(index).expect("fewer than 2^32 operations"));
                }
            }
            debug_assert!(
                (self.window_end[first]..self.ok_count).all(|index| !self.ok.contains(index)),
                "the linearized set is closed under real-time precedence"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_unset_skips_set_bits_across_words() {
        let mut set = Bitset::new(130);
        for bit in 0..70 {
            set.insert(bit);
        }
        assert_eq!(set.first_unset_from(0, 130), 70);
        assert_eq!(set.first_unset_from(5, 130), 70);
        assert_eq!(set.first_unset_from(100, 130), 100);
        for bit in 70..130 {
            set.insert(bit);
        }
        assert_eq!(set.first_unset_from(0, 130), 130);
        set.remove(3);
        assert_eq!(set.first_unset_from(0, 130), 3);
        assert_eq!(set.first_unset_from(4, 130), 130);
    }

    #[test]
    fn the_cache_remembers_configurations() {
        let mut cache = ConfigurationCache::default();
        assert_eq!(cache.insert(&[1, 2, 3]), Ok(true));
        assert_eq!(cache.insert(&[1, 2, 3]), Ok(false));
        assert_eq!(cache.insert(&[1, 2]), Ok(true));
        assert_eq!(cache.len(), 2);
    }
}
