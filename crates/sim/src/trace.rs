//! The event trace: a fingerprint of everything that happened, and an optional printout.
//!
//! Every event the simulator processes is folded into a 64-bit hash. Two runs of the same
//! seed must end with the same hash; the determinism test asserts exactly that, and a
//! summary prints the hash so a replay can be compared with the original at a glance.
//!
//! **What the hash covers.** The frequent events are fed as a compact structured
//! description, field by field, through [`std::hash::Hasher`] ([`Trace::record_with`]):
//! every popped event with its virtual time (message deliveries with sender, addressee,
//! incarnation and the message; client requests with ticket, request id, node and the
//! request; replies with ticket, node and the reply; client starts and timeouts, timers
//! and flushes with their numbers; faults), and every message a node sends with its
//! network plan. A message is fed by its strategy's `Replica::hash_message` (Raft feeds
//! an append's fields and every entry's payload bytes; rare messages feed their `Debug`
//! text). The rare events — crashes, armed crashes, partitions, discarded writes,
//! directives — are fed as their formatted line ([`Trace::record`]). Formatting every
//! event with `Debug` was exact too, but it was a fifth of a run's time.
//!
//! **The hash function** (`StreamHash`) is seedless and the same on every platform:
//! integers are fed as 64-bit words by value (never as bytes in the machine's order, as
//! `Hasher`'s default methods would), byte strings as little-endian words, each word
//! mixed in by one 64×64→128-bit multiplication. Changing it changes every run's hash
//! (no hash is pinned anywhere: the determinism tests compare a run with its replay).
//!
//! Printing (`--trace`, `REPLIKV_SIM_TRACE=1`) formats a line per event to standard
//! error, separately from the hash: the hash is the same whether a run prints or not.

use std::fmt::{self, Write};
use std::hash::Hasher;

/// The state before anything is written (any constant; the FNV offset basis).
const SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// The multiplier of each mixing step (the 64-bit golden ratio; odd).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// The multiplier of the final step (another odd constant, from MurmurHash3's finalizer).
const FINAL_MULTIPLIER: u64 = 0xff51_afd7_ed55_8ccd;

/// The full 128-bit product of `a` and `b`, its halves xored: one multiplication moves
/// every input bit into the high and the low half of the result.
fn folded_multiply(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// A seedless, platform-independent streaming hash, one word at a time, with two kinds
/// of input:
///
/// - **integers** ([`Hasher::write_u64`] and every other `write_` of an integer) are fed
///   as one 64-bit word each, by value: no bytes, so no byte order, and no buffering.
///   That is the structured fingerprints' input: times, ids, terms, indexes, lengths;
/// - **bytes** ([`Hasher::write`], and text through [`fmt::Write`]) are cut into 8-byte
///   words read little-endian (whatever the machine's order) through an 8-byte buffer,
///   so that a run of byte writes hashes the same however it was split into calls:
///   printing a line and hashing it gives the value that hashing its pieces gives. An
///   integer written after bytes first closes their partial word, with the count of its
///   bytes in the top byte (never used by data: a full word would have gone already),
///   so `"ab"`, 5 and `"ab\0"`, 5 stay apart.
///
/// Each word is mixed in by a [`folded_multiply`] of the state xored with the word (the
/// step of foldhash and wyhash): three or four instructions, where the previous
/// byte-buffered FxHash step copied every integer through the buffer. The result mixes
/// in the count of bytes and ends with one more folding, so that the last words reach
/// every bit. Not for adversaries: for telling two runs apart.
#[derive(Clone, Copy, Debug)]
struct StreamHash {
    state: u64,
    buffer: [u8; 8],
    buffered: usize,
    /// Bytes written (integers not counted).
    length: u64,
}

impl StreamHash {
    fn new() -> StreamHash {
        StreamHash {
            state: SEED,
            buffer: [0; 8],
            buffered: 0,
            length: 0,
        }
    }

    fn mix(&mut self, word: u64) {
        self.state = folded_multiply(self.state ^ word, MULTIPLIER);
    }

    /// Feeds one integer (see the type's documentation).
    #[inline]
    fn integer(&mut self, word: u64) {
        if self.buffered > 0 {
            self.close_partial_word();
        }
        self.mix(word);
    }

    /// Mixes in the buffered bytes, zero-padded, with their count in the top byte.
    fn close_partial_word(&mut self) {
        let mut last = [0; 8];
        last[..self.buffered].copy_from_slice(&self.buffer[..self.buffered]);
        last[7] = u8::try_from(self.buffered).expect("fewer than 8 bytes buffered");
        self.mix(u64::from_le_bytes(last));
        self.buffered = 0;
    }

    fn update(&mut self, mut bytes: &[u8]) {
        self.length += bytes.len() as u64;
        if self.buffered > 0 {
            let take = (8 - self.buffered).min(bytes.len());
            self.buffer[self.buffered..self.buffered + take].copy_from_slice(&bytes[..take]);
            self.buffered += take;
            bytes = &bytes[take..];
            if self.buffered < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.buffer));
            self.buffered = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        self.buffer[..rest.len()].copy_from_slice(rest);
        self.buffered = rest.len();
    }

    fn finish(&self) -> u64 {
        let mut final_state = *self;
        if final_state.buffered > 0 {
            final_state.close_partial_word();
        }
        final_state.mix(self.length);
        folded_multiply(final_state.state, FINAL_MULTIPLIER)
    }
}

impl Hasher for StreamHash {
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
    }

    fn write_u8(&mut self, number: u8) {
        self.integer(u64::from(number));
    }

    fn write_u16(&mut self, number: u16) {
        self.integer(u64::from(number));
    }

    fn write_u32(&mut self, number: u32) {
        self.integer(u64::from(number));
    }

    fn write_u64(&mut self, number: u64) {
        self.integer(number);
    }

    fn write_u128(&mut self, number: u128) {
        self.integer(number as u64);
        self.integer((number >> 64) as u64);
    }

    /// As a `u64`, so that 32- and 64-bit machines agree.
    fn write_usize(&mut self, number: usize) {
        self.integer(number as u64);
    }

    fn write_i8(&mut self, number: i8) {
        self.integer(number as u64);
    }

    fn write_i16(&mut self, number: i16) {
        self.integer(number as u64);
    }

    fn write_i32(&mut self, number: i32) {
        self.integer(number as u64);
    }

    fn write_i64(&mut self, number: i64) {
        self.integer(number as u64);
    }

    fn write_isize(&mut self, number: isize) {
        self.integer(number as u64);
    }

    fn finish(&self) -> u64 {
        StreamHash::finish(self)
    }
}

impl Write for StreamHash {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.update(text.as_bytes());
        Ok(())
    }
}

/// The running fingerprint of a run's events.
#[derive(Debug)]
pub struct Trace {
    hash: StreamHash,
    print: bool,
    line: String,
    events: u64,
}

impl Trace {
    #[must_use]
    pub fn new(print: bool) -> Trace {
        Trace {
            hash: StreamHash::new(),
            print,
            line: String::new(),
            events: 0,
        }
    }

    /// Folds one event's formatted description into the hash (and prints it if asked):
    /// for rare events.
    pub fn record(&mut self, description: fmt::Arguments<'_>) {
        self.events += 1;
        self.hash.write_u8(0);
        if self.print {
            self.line.clear();
            self.line
                .write_fmt(description)
                .expect("writing to a String cannot fail");
            eprintln!("{}", self.line);
            self.hash.update(self.line.as_bytes());
        } else {
            self.hash
                .write_fmt(description)
                .expect("hashing cannot fail");
        }
        self.hash.update(b"\n");
    }

    /// Folds one event into the hash through `feed`, which writes a structured
    /// description of it (see the module documentation); if printing, prints the line
    /// `describe` writes.
    pub fn record_with(
        &mut self,
        feed: impl FnOnce(&mut dyn Hasher),
        describe: impl FnOnce(&mut String) -> fmt::Result,
    ) {
        self.events += 1;
        self.hash.write_u8(1);
        feed(&mut self.hash);
        if self.print {
            self.line.clear();
            describe(&mut self.line).expect("writing to a String cannot fail");
            eprintln!("{}", self.line);
        }
    }

    #[must_use]
    pub fn hash(&self) -> u64 {
        self.hash.finish()
    }

    #[must_use]
    pub fn events(&self) -> u64 {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_does_not_change_the_hash() {
        let mut quiet = Trace::new(false);
        let mut loud = Trace::new(true);
        for trace in [&mut quiet, &mut loud] {
            trace.record(format_args!("{} deliver {:?}", 5, "ping"));
            trace.record(format_args!("tick"));
        }
        assert_eq!(quiet.hash(), loud.hash());
        assert_eq!(quiet.events(), 2);
        let mut other = Trace::new(false);
        other.record(format_args!("tick"));
        other.record(format_args!("{} deliver {:?}", 5, "ping"));
        assert_ne!(other.hash(), quiet.hash(), "order matters");
    }

    #[test]
    fn structured_records_hash_what_they_feed_whether_printed_or_not() {
        let mut quiet = Trace::new(false);
        let mut loud = Trace::new(true);
        for trace in [&mut quiet, &mut loud] {
            trace.record_with(|hasher| hasher.write_u64(7), |line| write!(line, "seven"));
        }
        assert_eq!(quiet.hash(), loud.hash());
        let mut other = Trace::new(false);
        other.record_with(|hasher| hasher.write_u64(8), |line| write!(line, "seven"));
        assert_ne!(
            other.hash(),
            quiet.hash(),
            "the fed data counts, not the line"
        );
        let mut formatted = Trace::new(false);
        formatted.record(format_args!("seven"));
        assert_ne!(formatted.hash(), quiet.hash());
    }

    #[test]
    fn the_hash_ignores_how_bytes_are_split() {
        let text = b"0.250ms deliver n1->n2#3 AppendEntries { term: 7, entries: [] }";
        let mut whole = StreamHash::new();
        whole.update(text);
        for split in [1, 3, 7, 8, 9, 20] {
            let mut pieces = StreamHash::new();
            for piece in text.chunks(split) {
                pieces.update(piece);
            }
            assert_eq!(pieces.finish(), whole.finish(), "split every {split}");
        }
        let mut shorter = StreamHash::new();
        shorter.update(&text[..text.len() - 1]);
        assert_ne!(shorter.finish(), whole.finish());
        let mut zero = StreamHash::new();
        zero.update(b"\0");
        assert_ne!(zero.finish(), StreamHash::new().finish(), "length counts");
    }

    #[test]
    fn integers_are_words_and_close_the_bytes_before_them() {
        let hash = |feed: &dyn Fn(&mut StreamHash)| {
            let mut hasher = StreamHash::new();
            feed(&mut hasher);
            hasher.finish()
        };
        let ab_5_c0 = hash(&|h| {
            h.write(b"ab");
            h.write_u64(5);
            h.write(b"c\0");
        });
        let ab0_5_c = hash(&|h| {
            h.write(b"ab\0");
            h.write_u64(5);
            h.write(b"c");
        });
        assert_ne!(ab_5_c0, ab0_5_c, "bytes before an integer keep their count");
        let five_then_six = hash(&|h| {
            h.write_u64(5);
            h.write_u64(6);
        });
        let six_then_five = hash(&|h| {
            h.write_u64(6);
            h.write_u64(5);
        });
        assert_ne!(five_then_six, six_then_five, "order matters");
        // An integer is its value, whatever its width or the machine's byte order.
        assert_eq!(hash(&|h| h.write_u8(7)), hash(&|h| h.write_u64(7)));
        assert_eq!(hash(&|h| h.write_usize(7)), hash(&|h| h.write_u64(7)));
        assert_ne!(
            hash(&|h| h.write_u64(7)),
            hash(&|h| h.write(&7u64.to_le_bytes())),
            "an integer is not its bytes"
        );
    }

    #[test]
    fn every_bit_of_an_integer_changes_the_hash() {
        let mut hashes = std::collections::BTreeSet::new();
        for bit in 0..64 {
            for number in [0u64, u64::MAX, 0x0123_4567_89ab_cdef] {
                let mut hasher = StreamHash::new();
                hasher.write_u64(number ^ (1 << bit));
                hasher.write_u64(1);
                hashes.insert((number, bit, hasher.finish()));
            }
        }
        let distinct: std::collections::BTreeSet<u64> =
            hashes.iter().map(|&(_, _, hash)| hash).collect();
        assert_eq!(distinct.len(), hashes.len());
    }
}
