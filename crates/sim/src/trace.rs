//! The event trace: a fingerprint of everything that happened, and an optional printout.
//!
//! Every event the simulator processes is described in one line and folded into a 64-bit
//! FNV-1a hash. Two runs of the same seed must end with the same hash; the determinism
//! test asserts exactly that, and a summary prints the hash so a replay can be compared
//! with the original at a glance. Describing an event writes straight into the hasher
//! (no allocation), so hashing stays on in every run; printing (`--trace`,
//! `REPLIKV_SIM_TRACE=1`) formats the same line to standard error.

use std::fmt::{self, Write};

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over the bytes written to it.
#[derive(Clone, Copy, Debug)]
struct Fnv1a(u64);

impl Fnv1a {
    fn update(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }
}

impl Write for Fnv1a {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.update(text.as_bytes());
        Ok(())
    }
}

/// The running fingerprint of a run's events.
#[derive(Debug)]
pub struct Trace {
    hash: Fnv1a,
    print: bool,
    line: String,
    events: u64,
}

impl Trace {
    #[must_use]
    pub fn new(print: bool) -> Trace {
        Trace {
            hash: Fnv1a(FNV_OFFSET_BASIS),
            print,
            line: String::new(),
            events: 0,
        }
    }

    /// Folds one event's description into the hash (and prints it if asked).
    pub fn record(&mut self, description: fmt::Arguments<'_>) {
        self.events += 1;
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

    #[must_use]
    pub fn hash(&self) -> u64 {
        self.hash.0
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
    fn known_fnv_value() {
        let mut hash = Fnv1a(FNV_OFFSET_BASIS);
        hash.update(b"a");
        assert_eq!(hash.0, 0xaf63_dc4c_8601_ec8c);
    }
}
