//! The workload generator: which key, which operation, which value, from a seed.
//!
//! Each connection draws its operations from its own ChaCha generator seeded with the
//! run's seed and the connection's number, so a run's sequence of requests is fixed by
//! its flags (the timing, of course, is not). A key is chosen uniformly from the key
//! space (`bench:0000000042`: fixed width, so every key has the same size); an operation
//! is a GET with probability `read_ratio` and otherwise a SET of a value of exactly
//! `value_size_bytes` printable bytes. The value buffer is filled once per connection
//! and only its first bytes change per write, so generating load costs almost nothing
//! next to the request it feeds.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Most keys in the key space.
pub const KEYS_MAX: u64 = 1_000_000_000;

/// What to generate; validated by [`WorkloadSpec::validate`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// Number of distinct keys (1..=KEYS_MAX).
    pub keys: u64,
    /// Size of every written value.
    pub value_size_bytes: usize,
    /// Fraction of operations that are reads, 0.0..=1.0.
    pub read_ratio: f64,
    /// The run's seed.
    pub seed: u64,
}

impl WorkloadSpec {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=KEYS_MAX).contains(&self.keys) {
            return Err(format!("--keys must be 1..={KEYS_MAX}"));
        }
        let value_max = replikv_core::limits::VALUE_SIZE_MAX_BYTES;
        if !(1..=value_max).contains(&self.value_size_bytes) {
            return Err(format!("--value-size-bytes must be 1..={value_max}"));
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err("--read-ratio must be 0.0..=1.0".into());
        }
        Ok(())
    }

    /// The mix as loadgen names it: `write`, `read` or `read90_write10`.
    pub fn op_mix(&self) -> String {
        let reads_percent = (self.read_ratio * 100.0).round() as u32;
        match reads_percent {
            0 => "write".into(),
            100 => "read".into(),
            _ => format!("read{reads_percent}_write{}", 100 - reads_percent),
        }
    }
}

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation<'a> {
    Get { key: String },
    Set { key: String, value: &'a [u8] },
}

/// One connection's stream of operations.
#[derive(Debug)]
pub struct Workload {
    spec: WorkloadSpec,
    rng: ChaCha8Rng,
    value: Vec<u8>,
    /// Reads happen when a draw from 0..1_000_000 falls below this.
    read_threshold_per_million: u32,
}

impl Workload {
    /// The generator of connection `connection` (spec already validated).
    pub fn new(spec: &WorkloadSpec, connection: u64) -> Workload {
        debug_assert!(spec.validate().is_ok());
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        rng.set_stream(connection);
        let value = (0..spec.value_size_bytes)
            .map(|_| rng.random_range(b'a'..=b'z'))
            .collect();
        Workload {
            spec: spec.clone(),
            rng,
            value,
            read_threshold_per_million: (spec.read_ratio * 1_000_000.0).round() as u32,
        }
    }

    /// The next operation.
    pub fn next_operation(&mut self) -> Operation<'_> {
        let key = format!("bench:{:010}", self.rng.random_range(0..self.spec.keys));
        if self.rng.random_range(0..1_000_000) < self.read_threshold_per_million {
            return Operation::Get { key };
        }
        let stamp = self.rng.random::<u64>().to_le_bytes();
        for (byte, random) in self.value.iter_mut().zip(stamp) {
            *byte = b'a' + random % 26;
        }
        Operation::Set {
            key,
            value: &self.value,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(read_ratio: f64) -> WorkloadSpec {
        WorkloadSpec {
            keys: 100,
            value_size_bytes: 16,
            read_ratio,
            seed: 7,
        }
    }

    fn reads_of(spec: &WorkloadSpec, operations: usize) -> usize {
        let mut workload = Workload::new(spec, 0);
        (0..operations)
            .filter(|_| matches!(workload.next_operation(), Operation::Get { .. }))
            .count()
    }

    #[test]
    fn the_mix_follows_the_read_ratio() {
        assert_eq!(reads_of(&spec(0.0), 10_000), 0);
        assert_eq!(reads_of(&spec(1.0), 10_000), 10_000);
        let reads = reads_of(&spec(0.9), 10_000);
        assert!((8_800..=9_200).contains(&reads), "{reads}");
        let reads = reads_of(&spec(0.5), 10_000);
        assert!((4_800..=5_200).contains(&reads), "{reads}");
    }

    #[test]
    fn keys_stay_in_the_key_space_and_values_have_the_size() {
        let mut workload = Workload::new(&spec(0.5), 3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5_000 {
            let key = match workload.next_operation() {
                Operation::Get { key } => key,
                Operation::Set { key, value } => {
                    assert_eq!(value.len(), 16);
                    assert!(value.iter().all(u8::is_ascii_lowercase));
                    key
                }
            };
            assert_eq!(key.len(), "bench:".len() + 10);
            let number: u64 = key["bench:".len()..].parse().unwrap();
            assert!(number < 100);
            seen.insert(number);
        }
        assert_eq!(seen.len(), 100, "uniform keys cover a small space");
    }

    #[test]
    fn same_seed_and_connection_give_the_same_sequence() {
        let sequence = |seed, connection| {
            let spec = WorkloadSpec { seed, ..spec(0.5) };
            let mut workload = Workload::new(&spec, connection);
            (0..50)
                .map(|_| format!("{:?}", workload.next_operation()))
                .collect::<Vec<_>>()
        };
        assert_eq!(sequence(1, 0), sequence(1, 0));
        assert_ne!(sequence(1, 0), sequence(1, 1));
        assert_ne!(sequence(1, 0), sequence(2, 0));
    }

    #[test]
    fn validation_and_mix_names() {
        assert!(spec(0.5).validate().is_ok());
        assert!(spec(1.5).validate().is_err());
        assert!(
            WorkloadSpec {
                keys: 0,
                ..spec(0.5)
            }
            .validate()
            .is_err()
        );
        let huge = replikv_core::limits::VALUE_SIZE_MAX_BYTES + 1;
        let too_big = WorkloadSpec {
            value_size_bytes: huge,
            ..spec(0.5)
        };
        assert!(too_big.validate().is_err());
        assert_eq!(spec(0.0).op_mix(), "write");
        assert_eq!(spec(1.0).op_mix(), "read");
        assert_eq!(spec(0.9).op_mix(), "read90_write10");
    }
}
