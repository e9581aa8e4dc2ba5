//! What the picture plots, computed from a history before anything is drawn: the clock
//! (where the time axis starts and ends), the points of the latency plot grouped into
//! classes of function × outcome and sampled to a bound, and the throughput buckets.
//!
//! Sampling keeps the picture small (a browser draws 50,000 points; it chokes on
//! millions) without hiding what matters. A plain "every k-th operation" would thin the
//! rare classes as much as the common ones, yet the rare ones — failures, unknown
//! outcomes during a fault — are what a reader looks for. So the budget is shared out
//! like water filling: the classes are visited from the smallest up, each may take an
//! equal share of what is left, a class that fits its share is drawn whole and leaves the
//! rest to the others, and a class that does not is drawn at exactly its share of points,
//! evenly spaced in history order: operation `i` of a class of `n` with a quota of `q` is
//! drawn when `i·q mod n < q` — every k-th for k = n/q, and for a fractional n/q the
//! same spacing Bresenham's line has (an integer k would draw only half the points of a
//! class just over its share). The result is deterministic, never over the budget, and a
//! picture that was sampled says so. Throughput is counted from every operation, sampled
//! or not.
//!
//! Time: the x axis starts at 0 ns on the history's clock — the run's start for `replikv
//! test` and the simulator — unless the clock is plainly absolute (the first event is
//! later than ten times the run's length), in which case it starts at the first event.

use super::FaultWindow;
use super::scale::nice_step;
use replikv_check::{Function, History, OperationType};

/// The functions, in the order of the legend.
pub(super) const FUNCTIONS: [Function; 4] = [
    Function::Read,
    Function::Write,
    Function::Cas,
    Function::Delete,
];

/// The outcomes, in the order of the legend (and of drawing: the rarer on top).
pub(super) const OUTCOMES: [OperationType; 3] =
    [OperationType::Ok, OperationType::Fail, OperationType::Info];

/// About how many throughput buckets the rate plot has.
const RATE_BUCKETS_TARGET: f64 = 60.0;

/// Most throughput buckets, whatever the rounding.
const RATE_BUCKETS_MAX: u64 = 200;

/// The shortest time axis, in nanoseconds (a history of one instant still draws).
const SPAN_MIN_NS: u64 = 1_000_000;

/// Nanoseconds per second.
pub(super) const NS_PER_SECOND: f64 = 1e9;

#[must_use]
pub(super) fn function_name(function: Function) -> &'static str {
    match function {
        Function::Read => "read",
        Function::Write => "write",
        Function::Cas => "cas",
        Function::Delete => "delete",
    }
}

#[must_use]
pub(super) fn outcome_name(outcome: OperationType) -> &'static str {
    match outcome {
        OperationType::Ok => "ok",
        OperationType::Fail => "fail",
        OperationType::Info => "info",
    }
}

fn function_index(function: Function) -> usize {
    FUNCTIONS.iter().position(|f| *f == function).unwrap_or(0)
}

fn outcome_index(outcome: OperationType) -> usize {
    OUTCOMES.iter().position(|o| *o == outcome).unwrap_or(0)
}

/// The time axis: which instant of the history's clock is x = 0, and where it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Clock {
    pub(super) origin_ns: u64,
    pub(super) end_ns: u64,
}

impl Clock {
    /// The axis covering every operation (to its completion) and every fault window.
    #[must_use]
    pub(super) fn covering(history: &History, faults: &[FaultWindow]) -> Clock {
        let starts = history
            .operations
            .iter()
            .map(|operation| operation.invoke)
            .chain(faults.iter().map(|window| window.start_ns));
        let ends = history
            .operations
            .iter()
            .map(|operation| operation.complete.unwrap_or(operation.invoke))
            .chain(faults.iter().map(|w| w.end_ns.unwrap_or(w.start_ns)));
        let Some(earliest) = starts.min() else {
            return Clock {
                origin_ns: 0,
                end_ns: SPAN_MIN_NS,
            };
        };
        let latest = ends.max().unwrap_or(earliest).max(earliest);
        let absolute = earliest / 10 > latest - earliest;
        // An origin at the very end of the clock leaves room for the minimal span (a
        // history whose only operation is at u64::MAX drew an empty axis and panicked).
        let origin_ns = if absolute {
            earliest.min(u64::MAX - SPAN_MIN_NS)
        } else {
            0
        };
        Clock {
            origin_ns,
            end_ns: latest.max(origin_ns.saturating_add(SPAN_MIN_NS)),
        }
    }

    /// Seconds since the origin (instants before it are at zero).
    #[must_use]
    pub(super) fn seconds(&self, instant_ns: u64) -> f64 {
        instant_ns.saturating_sub(self.origin_ns) as f64 / NS_PER_SECOND
    }

    /// The length of the axis in seconds.
    #[must_use]
    pub(super) fn span_seconds(&self) -> f64 {
        self.seconds(self.end_ns)
    }
}

/// One point of the latency plot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Point {
    pub(super) invoke_ns: u64,
    /// `None`: the operation never completed (drawn at the top edge).
    pub(super) latency_ns: Option<u64>,
}

/// The operations of one function × outcome class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Class {
    pub(super) function: Function,
    pub(super) outcome: OperationType,
    /// Operations of the class in the history.
    pub(super) total: usize,
    /// How many of them are drawn, evenly spaced (at most `total`).
    pub(super) quota: usize,
    pub(super) drawn: Vec<Point>,
}

/// The latency plot's points, by class in legend order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Points {
    pub(super) classes: Vec<Class>,
}

impl Points {
    /// The classes of `history`, with at most `points_max` points drawn in all.
    #[must_use]
    pub(super) fn collect(history: &History, points_max: usize) -> Points {
        let class_index =
            |function, outcome| function_index(function) * OUTCOMES.len() + outcome_index(outcome);
        let mut classes: Vec<Class> = FUNCTIONS
            .iter()
            .flat_map(|function| {
                OUTCOMES.iter().map(|outcome| Class {
                    function: *function,
                    outcome: *outcome,
                    total: 0,
                    quota: 0,
                    drawn: Vec::new(),
                })
            })
            .collect();
        for operation in &history.operations {
            classes[class_index(operation.f, operation.kind)].total += 1;
        }
        share_budget(&mut classes, points_max);
        let mut seen = vec![0usize; classes.len()];
        for operation in &history.operations {
            let index = class_index(operation.f, operation.kind);
            let class = &mut classes[index];
            if is_drawn(seen[index], class.quota, class.total) {
                class.drawn.push(Point {
                    invoke_ns: operation.invoke,
                    latency_ns: operation
                        .complete
                        .map(|complete| complete.saturating_sub(operation.invoke)),
                });
            }
            seen[index] += 1;
        }
        Points { classes }
    }

    /// Operations in the history.
    #[must_use]
    pub(super) fn total(&self) -> usize {
        self.classes.iter().map(|class| class.total).sum()
    }

    /// Points drawn.
    #[must_use]
    pub(super) fn drawn(&self) -> usize {
        self.classes.iter().map(|class| class.drawn.len()).sum()
    }

    /// The smallest and largest latency among the drawn points that completed.
    #[must_use]
    pub(super) fn latency_range_ns(&self) -> Option<(u64, u64)> {
        let latencies = self
            .classes
            .iter()
            .flat_map(|class| class.drawn.iter().filter_map(|point| point.latency_ns));
        latencies.fold(None, |range, latency| match range {
            None => Some((latency, latency)),
            Some((low, high)) => Some((low.min(latency), high.max(latency))),
        })
    }
}

/// Sets each class's quota so that at most `points_max` points are drawn (water
/// filling from the smallest class up; see the module doc).
fn share_budget(classes: &mut [Class], points_max: usize) {
    let mut order: Vec<usize> = (0..classes.len()).collect();
    order.sort_by_key(|index| (classes[*index].total, *index));
    let mut budget = points_max;
    let count = classes.len();
    for (visited, index) in order.iter().enumerate() {
        let class = &mut classes[*index];
        let share = budget / (count - visited);
        class.quota = class.total.min(share);
        budget -= class.quota;
    }
}

/// Whether operation `position` of a class of `total` with a `quota` is drawn: exactly
/// `quota` of the positions `0..total` are, evenly spaced, the first one included.
fn is_drawn(position: usize, quota: usize, total: usize) -> bool {
    debug_assert!(position < total && quota <= total);
    (position as u128 * quota as u128) % (total as u128) < quota as u128
}

/// Throughput per outcome in fixed-width buckets of completion time.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Rates {
    pub(super) bucket_ns: u64,
    /// Operations per second, per outcome (in [`OUTCOMES`] order) and bucket.
    pub(super) per_outcome: [Vec<f64>; 3],
    /// Operations of each outcome in the history.
    pub(super) totals: [usize; 3],
}

impl Rates {
    /// Counts every operation at its completion (an unfinished one at its invocation).
    #[must_use]
    pub(super) fn count(history: &History, clock: &Clock) -> Rates {
        let span_ns = clock.end_ns - clock.origin_ns;
        let bucket_seconds = nice_step(clock.span_seconds() / RATE_BUCKETS_TARGET);
        let bucket_ns = ((bucket_seconds * NS_PER_SECOND).round() as u64)
            .max(span_ns.div_ceil(RATE_BUCKETS_MAX))
            .max(1);
        let buckets = span_ns.div_ceil(bucket_ns).max(1) as usize;
        let mut counts = [vec![0u64; buckets], vec![0; buckets], vec![0; buckets]];
        let mut totals = [0; 3];
        for operation in &history.operations {
            let at = operation.complete.unwrap_or(operation.invoke);
            let offset = at.saturating_sub(clock.origin_ns);
            let bucket = ((offset / bucket_ns) as usize).min(buckets - 1);
            counts[outcome_index(operation.kind)][bucket] += 1;
            totals[outcome_index(operation.kind)] += 1;
        }
        let seconds = bucket_ns as f64 / NS_PER_SECOND;
        let per_outcome = counts.map(|row| row.iter().map(|n| *n as f64 / seconds).collect());
        Rates {
            bucket_ns,
            per_outcome,
            totals,
        }
    }
}

/// The latency quantiles drawn over the latency plot, with their names.
pub(super) const QUANTILES: [(f64, &str); 2] = [(0.5, "p50"), (0.99, "p99")];

/// Latency quantiles of the ok operations, per bucket of invocation time (the latency
/// plot's x), from every operation, sampled or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Quantiles {
    pub(super) bucket_ns: u64,
    /// Per quantile of [`QUANTILES`] and bucket: the latency, if any ok operation was
    /// invoked in the bucket.
    pub(super) per_quantile: [Vec<Option<u64>>; 2],
}

impl Quantiles {
    /// Nearest-rank quantiles in buckets of `bucket_ns` (the rate plot's).
    #[must_use]
    pub(super) fn compute(history: &History, clock: &Clock, bucket_ns: u64) -> Quantiles {
        assert!(bucket_ns > 0);
        let buckets = (clock.end_ns - clock.origin_ns).div_ceil(bucket_ns).max(1) as usize;
        let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); buckets];
        for operation in &history.operations {
            if operation.kind != OperationType::Ok {
                continue;
            }
            if let Some(complete) = operation.complete {
                let offset = operation.invoke.saturating_sub(clock.origin_ns);
                let bucket = ((offset / bucket_ns) as usize).min(buckets - 1);
                latencies[bucket].push(complete.saturating_sub(operation.invoke));
            }
        }
        for bucket in &mut latencies {
            bucket.sort_unstable();
        }
        let per_quantile = QUANTILES.map(|(quantile, _)| {
            latencies
                .iter()
                .map(|sorted| nearest_rank(sorted, quantile))
                .collect()
        });
        Quantiles {
            bucket_ns,
            per_quantile,
        }
    }
}

/// The nearest-rank `quantile` of `sorted` (none of an empty list).
fn nearest_rank(sorted: &[u64], quantile: f64) -> Option<u64> {
    debug_assert!(sorted.is_sorted() && (0.0..=1.0).contains(&quantile));
    let rank = ((quantile * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use replikv_check::Operation;

    fn operation(
        f: Function,
        kind: OperationType,
        invoke: u64,
        complete: Option<u64>,
    ) -> Operation {
        Operation {
            process: 0,
            key: "k".into(),
            f,
            value: serde_json::Value::Null,
            ok: None,
            kind,
            invoke,
            complete,
        }
    }

    #[test]
    fn small_classes_are_drawn_whole_and_large_ones_every_kth() {
        let mut operations = Vec::new();
        for index in 0..1000 {
            operations.push(operation(
                Function::Read,
                OperationType::Ok,
                index,
                Some(index + 5),
            ));
        }
        for index in 0..30 {
            operations.push(operation(Function::Write, OperationType::Info, index, None));
        }
        let history = History { operations };
        let points = Points::collect(&history, 130);
        let reads = &points.classes[0];
        let infos = &points.classes[OUTCOMES.len() + 2];
        assert_eq!((infos.total, infos.quota, infos.drawn.len()), (30, 30, 30));
        assert_eq!(
            (reads.total, reads.quota, reads.drawn.len()),
            (1000, 100, 100)
        );
        assert_eq!(reads.drawn[1].invoke_ns, 10, "every 10th, from the first");
        assert_eq!(reads.drawn[0].latency_ns, Some(5));
        assert_eq!(infos.drawn[0].latency_ns, None);
        assert_eq!(points.drawn(), 130);
        assert_eq!(points.total(), 1030);
        assert_eq!(Points::collect(&history, 130), points, "deterministic");
    }

    proptest::proptest! {
        #[test]
        fn exactly_the_quota_is_drawn_evenly(total in 1usize..3000, quota_seed in 0usize..3000) {
            let quota = quota_seed % (total + 1);
            let drawn: Vec<usize> = (0..total).filter(|i| is_drawn(*i, quota, total)).collect();
            proptest::prop_assert_eq!(drawn.len(), quota);
            if quota > 0 {
                proptest::prop_assert_eq!(drawn[0], 0);
                // Gaps differ by at most one position: evenly spaced.
                let gap_max = total.div_ceil(quota);
                for pair in drawn.windows(2) {
                    proptest::prop_assert!(pair[1] - pair[0] <= gap_max);
                    proptest::prop_assert!(pair[1] - pair[0] >= total / quota);
                }
            }
        }
    }

    #[test]
    fn the_clock_starts_at_zero_unless_it_is_plainly_absolute() {
        let relative = History {
            operations: vec![operation(
                Function::Read,
                OperationType::Ok,
                2_000,
                Some(9_000_000),
            )],
        };
        let clock = Clock::covering(&relative, &[]);
        assert_eq!((clock.origin_ns, clock.end_ns), (0, 9_000_000));
        let epoch = 1_700_000_000_000_000_000;
        let absolute = History {
            operations: vec![operation(
                Function::Read,
                OperationType::Ok,
                epoch,
                Some(epoch + 5),
            )],
        };
        let clock = Clock::covering(&absolute, &[]);
        assert_eq!(clock.origin_ns, epoch);
        assert_eq!(clock.end_ns, epoch + SPAN_MIN_NS);
        let empty = Clock::covering(&History::default(), &[]);
        assert_eq!((empty.origin_ns, empty.end_ns), (0, SPAN_MIN_NS));
    }

    #[test]
    fn quantiles_are_nearest_rank_of_the_ok_operations_per_bucket() {
        let second = 1_000_000_000;
        let millisecond = 1_000_000;
        // Bucket 0: ok latencies 1..=100 ms, plus a slow failure that must not count.
        let mut operations: Vec<Operation> = (1..=100)
            .map(|ms| {
                operation(
                    Function::Read,
                    OperationType::Ok,
                    ms,
                    Some(ms + ms * millisecond),
                )
            })
            .collect();
        operations.push(operation(
            Function::Read,
            OperationType::Fail,
            5,
            Some(5 + second),
        ));
        // Bucket 2: a single ok operation; bucket 1 has none.
        let lone = 2 * second + 7;
        operations.push(operation(
            Function::Write,
            OperationType::Ok,
            lone,
            Some(lone + 3 * millisecond),
        ));
        let history = History { operations };
        let clock = Clock {
            origin_ns: 0,
            end_ns: 3 * second,
        };
        let quantiles = Quantiles::compute(&history, &clock, second);
        let p50 = &quantiles.per_quantile[0];
        let p99 = &quantiles.per_quantile[1];
        assert_eq!(p50, &[Some(50 * millisecond), None, Some(3 * millisecond)]);
        assert_eq!(p99, &[Some(99 * millisecond), None, Some(3 * millisecond)]);
        assert_eq!(nearest_rank(&[], 0.5), None);
    }

    #[test]
    fn rates_count_every_operation_in_its_bucket() {
        let second = 1_000_000_000;
        let operations = (0..60)
            .map(|index| {
                let kind = if index % 3 == 0 {
                    OperationType::Fail
                } else {
                    OperationType::Ok
                };
                operation(
                    Function::Write,
                    kind,
                    index * second,
                    Some(index * second + 10),
                )
            })
            .collect();
        let history = History { operations };
        let clock = Clock::covering(&history, &[]);
        let rates = Rates::count(&history, &clock);
        assert_eq!(rates.bucket_ns, second);
        assert_eq!(rates.totals, [40, 20, 0]);
        let ok_sum: f64 = rates.per_outcome[0].iter().sum();
        assert!((ok_sum - 40.0).abs() < 1e-9);
        assert_eq!(rates.per_outcome[1][0], 1.0);
        assert_eq!(rates.per_outcome[1][1], 0.0);
    }
}
