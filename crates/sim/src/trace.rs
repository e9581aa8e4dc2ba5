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
//! Printing (`--trace`, `REPLIKV_SIM_TRACE=1`) formats a line per event to standard
//! error, separately from the hash: the hash is the same whether a run prints or not.

use std::fmt::{self, Write};
use std::hash::Hasher;

const SEED: u64 = 0xcbf2_9ce4_8422_2325;
const MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

/// A streaming word-at-a-time hash (the FxHash mixing step): the result depends only on
/// the bytes written, not on how they were split into calls, so printing a line and
/// hashing it gives the same value as hashing its pieces.
#[derive(Clone, Copy, Debug)]
struct StreamHash {
    state: u64,
    buffer: [u8; 8],
    buffered: usize,
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
        self.state = (self.state.rotate_left(5) ^ word).wrapping_mul(MULTIPLIER);
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
        let mut last = [0; 8];
        last[..self.buffered].copy_from_slice(&self.buffer[..self.buffered]);
        final_state.mix(u64::from_le_bytes(last));
        final_state.mix(self.length);
        final_state.state
    }
}

impl Hasher for StreamHash {
    fn write(&mut self, bytes: &[u8]) {
        self.update(bytes);
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
}
