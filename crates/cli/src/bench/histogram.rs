//! A bounded latency recorder: a log-bucketed histogram of microseconds.
//!
//! A benchmark records millions of latencies and then asks for a few percentiles, so
//! keeping every sample is wasteful and sorting them is slow. This histogram keeps a
//! fixed array of counters instead, laid out the way HdrHistogram lays its buckets:
//! values below `2 * SUB_BUCKETS` (256 µs) each have a counter of their own and are
//! reported exactly; above that, every power of two is split into `SUB_BUCKETS` (128)
//! equal slices, so a value is reported as the top of its slice, at most 1/128 (0.8 %)
//! above the truth. Values above `VALUE_MAX_US` (one hour) are clamped to it, which
//! bounds the array at a few thousand counters whatever the run does.
//!
//! Percentiles follow the "nearest rank" rule: the q-th percentile of n samples is the
//! smallest recorded value with at least `ceil(q * n)` samples at or below it, so the
//! 50th percentile of 1..=100 is 50 and the maximum is the 100th percentile. The
//! reported figure never exceeds the largest value actually recorded. Histograms merge
//! by adding counters, which is how per-connection recorders become one report.

/// Slices per power of two above the exact range (a power of two).
const SUB_BUCKETS: u64 = 128;
/// log2 of `SUB_BUCKETS`.
const SUB_BUCKET_BITS: u32 = SUB_BUCKETS.trailing_zeros();
/// The largest value recorded as itself; larger ones are clamped to it (one hour).
pub const VALUE_MAX_US: u64 = 3_600_000_000;

/// The counter index of `value` (already clamped).
fn bucket_index(value: u64) -> usize {
    let index = if value < 2 * SUB_BUCKETS {
        value
    } else {
        let exponent = u64::BITS - 1 - value.leading_zeros();
        let shift = exponent - SUB_BUCKET_BITS;
        let mantissa = value >> shift;
        u64::from(shift) * SUB_BUCKETS + mantissa
    };
    usize::try_from(index).expect("bucket indexes are small")
}

/// The largest value that lands in counter `index`.
fn bucket_top(index: usize) -> u64 {
    let index = index as u64;
    if index < 2 * SUB_BUCKETS {
        return index;
    }
    let shift = index / SUB_BUCKETS - 1;
    let mantissa = index - shift * SUB_BUCKETS;
    ((mantissa + 1) << shift) - 1
}

/// A latency histogram in microseconds; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum_us: u128,
    min_us: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; bucket_index(VALUE_MAX_US) + 1],
            count: 0,
            sum_us: 0,
            min_us: u64::MAX,
            max_us: 0,
        }
    }

    /// Records one latency (clamped to `VALUE_MAX_US`).
    pub fn record(&mut self, value_us: u64) {
        let value = value_us.min(VALUE_MAX_US);
        self.counts[bucket_index(value)] += 1;
        self.count += 1;
        self.sum_us += u128::from(value);
        self.min_us = self.min_us.min(value);
        self.max_us = self.max_us.max(value);
    }

    /// Adds every sample of `other` to this one.
    pub fn merge(&mut self, other: &Histogram) {
        assert_eq!(self.counts.len(), other.counts.len());
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.sum_us += other.sum_us;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest recorded value (0 when empty).
    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The smallest recorded value (0 when empty).
    pub fn min_us(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min_us }
    }

    /// The mean of the recorded (clamped) values (0 when empty).
    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.sum_us as f64 / self.count as f64
    }

    /// The nearest-rank `percentile` (0.0..=100.0); 0 when empty.
    pub fn percentile_us(&self, percentile: f64) -> u64 {
        assert!(
            (0.0..=100.0).contains(&percentile),
            "percentile {percentile}"
        );
        if self.count == 0 {
            return 0;
        }
        // Integer arithmetic in parts per million keeps 99.9 exact.
        let parts_per_million = (percentile * 10_000.0).round() as u128;
        let rank = (u128::from(self.count) * parts_per_million).div_ceil(1_000_000);
        let rank = u64::try_from(rank).expect("rank <= count").max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_top(index).min(self.max_us);
            }
        }
        unreachable!("the counters add up to count")
    }

    /// Non-empty buckets as (lowest value, highest value, count), in order: what a
    /// histogram picture draws.
    pub fn buckets(&self) -> Vec<(u64, u64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(index, count)| {
                let low = if index == 0 {
                    0
                } else {
                    bucket_top(index - 1) + 1
                };
                (low, bucket_top(index), *count)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: impl IntoIterator<Item = u64>) -> Histogram {
        let mut histogram = Histogram::new();
        for value in values {
            histogram.record(value);
        }
        histogram
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_are_exact() {
        let histogram = of(1..=100);
        let cases = [
            (0.0, 1),
            (1.0, 1),
            (50.0, 50),
            (90.0, 90),
            (99.0, 99),
            (99.9, 100),
        ];
        for (percentile, expected) in cases {
            assert_eq!(
                histogram.percentile_us(percentile),
                expected,
                "p{percentile}"
            );
        }
        assert_eq!(histogram.percentile_us(100.0), 100);
        assert_eq!((histogram.min_us(), histogram.max_us()), (1, 100));
        assert_eq!(histogram.mean_us(), 50.5);
        assert_eq!(histogram.count(), 100);
    }

    #[test]
    fn p999_of_a_thousand_samples_is_the_999th() {
        let histogram = of(0..1000u64).clone();
        // Values 0..=255 are exact; the 999th smallest is 998, reported within 1/128.
        let p999 = histogram.percentile_us(99.9);
        assert!((998..=998 + 998 / 128).contains(&p999), "{p999}");
        let tail = of((0..1000).map(|value| if value < 999 { 5 } else { 200 }));
        assert_eq!(tail.percentile_us(99.9), 5);
        assert_eq!(tail.percentile_us(100.0), 200);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let histogram = Histogram::new();
        assert_eq!(histogram.percentile_us(50.0), 0);
        assert_eq!((histogram.min_us(), histogram.max_us()), (0, 0));
        assert_eq!(histogram.mean_us(), 0.0);
        assert!(histogram.buckets().is_empty());
    }

    #[test]
    fn buckets_tile_the_range_and_bound_the_error() {
        let mut previous_top = None;
        for index in 0..=bucket_index(VALUE_MAX_US) {
            let top = bucket_top(index);
            if let Some(previous) = previous_top {
                assert!(top > previous, "bucket {index}");
            }
            previous_top = Some(top);
        }
        for value in (0..2_000_000u64).step_by(997).chain([VALUE_MAX_US]) {
            let index = bucket_index(value);
            let top = bucket_top(index);
            assert!(
                top >= value && top - value <= value / SUB_BUCKETS,
                "{value}"
            );
            assert!(index == 0 || bucket_top(index - 1) < value, "{value}");
        }
    }

    #[test]
    fn large_values_are_clamped_and_never_overstated() {
        let histogram = of([1_000_003, u64::MAX]);
        assert_eq!(histogram.max_us(), VALUE_MAX_US);
        assert_eq!(histogram.percentile_us(100.0), VALUE_MAX_US);
        let single = of([1_000_003]);
        assert_eq!(single.percentile_us(50.0), 1_000_003);
    }

    proptest::proptest! {
        /// Every percentile is the exact nearest-rank value or at most 1/128 above it,
        /// never above the maximum, and percentiles never decrease.
        #[test]
        fn percentiles_match_sorting_within_the_bucket_error(
            mut values in proptest::collection::vec(0u64..10_000_000, 1..400),
        ) {
            let histogram = of(values.iter().copied());
            values.sort_unstable();
            let mut previous = 0;
            for tenths in [0usize, 10, 250, 500, 900, 990, 999, 1000] {
                let percentile = tenths as f64 / 10.0;
                let rank = (values.len() * tenths).div_ceil(1000).max(1);
                let exact = values[rank - 1];
                let reported = histogram.percentile_us(percentile);
                proptest::prop_assert!(reported >= exact && reported - exact <= exact / SUB_BUCKETS);
                proptest::prop_assert!(reported <= histogram.max_us() && reported >= previous);
                previous = reported;
            }
            proptest::prop_assert_eq!(histogram.max_us(), *values.last().unwrap());
        }
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut left = of([3, 300, 30_000]);
        let right = of([7, 700_000]);
        left.merge(&right);
        assert_eq!(left, of([3, 300, 30_000, 7, 700_000]));
        let total: u64 = left.buckets().iter().map(|(_, _, count)| count).sum();
        assert_eq!(total, 5);
    }
}
