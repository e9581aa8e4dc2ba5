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

use crate::budget::Exhausted;
use std::collections::HashSet;

/// The most 32-bit words the memo may hold (256 MiB) before the search gives up.
const CACHE_WORDS_MAX: usize = 64 << 20;

/// Per-entry overhead counted against the bound (allocation and table slot).
const ENTRY_OVERHEAD_WORDS: usize = 8;

/// Visited configurations, each encoded as a word slice.
#[derive(Debug, Default)]
pub(crate) struct ConfigurationCache {
    visited: HashSet<Box<[u32]>>,
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
