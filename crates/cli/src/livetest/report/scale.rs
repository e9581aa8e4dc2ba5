//! Axes of the timeline picture: a linear scale (time, throughput) and a logarithmic one
//! (latency), each mapping data values to pixel positions and choosing its tick marks.
//!
//! Both follow the usual plotting conventions, because readers' eyes are trained on them:
//! linear ticks fall on "nice" round steps (1, 2 or 5 times a power of ten) so that about
//! a target number of them fit, and logarithmic ticks fall on every power of ten with
//! unlabelled minor ticks at 2..9 times it (and 2 and 5 labelled too when the axis spans
//! a single decade, so that it never shows only two numbers). Tick lists are bounded and
//! strictly increasing, and positions are monotonic in the values, whatever the domain:
//! the tests check these laws on random domains. Values outside a scale's domain are
//! clamped to its edge rather than drawn outside the plot.

/// Most ticks a linear scale produces, whatever target it is asked for.
const LINEAR_TICKS_MAX: usize = 100;

/// Lowest and highest powers of ten a logarithmic scale may span.
pub(super) const DECADE_MIN: i32 = -6;
pub(super) const DECADE_MAX: i32 = 12;

/// The smallest "nice" number (1, 2 or 5 times a power of ten) at least `raw`.
#[must_use]
pub(super) fn nice_step(raw: f64) -> f64 {
    assert!(
        raw.is_finite() && raw > 0.0,
        "a step must be positive: {raw}"
    );
    let power = 10f64.powf(raw.log10().floor());
    for multiple in [1.0, 2.0, 5.0, 10.0] {
        let step = multiple * power;
        // Tolerate rounding in `powf`: a raw value of exactly 0.3 must give 0.5, not 1.
        if step >= raw * (1.0 - 1e-9) {
            return step;
        }
    }
    10.0 * power
}

/// Formats a tick value with as many decimals as `step` needs (none for whole steps).
#[must_use]
pub(super) fn format_tick(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        // At most nine decimals: steps smaller than a nanosecond are never asked for.
        ((-step.log10() - 1e-9).ceil() as usize).min(9)
    };
    let text = format!("{value:.decimals$}");
    // "-0" reads as a sign error.
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text[1..].to_string()
    } else {
        text
    }
}

/// A linear map from a data domain onto a pixel range (the range may run backwards, as
/// a y axis does).
#[derive(Clone, Copy, Debug)]
pub(super) struct LinearScale {
    domain_start: f64,
    domain_end: f64,
    range_start: f64,
    range_end: f64,
}

impl LinearScale {
    /// A scale; an empty domain is widened to one unit so that it still maps.
    #[must_use]
    pub(super) fn new(domain: (f64, f64), range: (f64, f64)) -> LinearScale {
        let (domain_start, mut domain_end) = domain;
        assert!(domain_start.is_finite() && domain_end.is_finite());
        assert!(range.0.is_finite() && range.1.is_finite());
        if domain_end <= domain_start {
            domain_end = domain_start + 1.0;
        }
        LinearScale {
            domain_start,
            domain_end,
            range_start: range.0,
            range_end: range.1,
        }
    }

    /// The pixel position of `value`, clamped to the range.
    #[must_use]
    pub(super) fn map(&self, value: f64) -> f64 {
        let clamped = value.clamp(self.domain_start, self.domain_end);
        let fraction = (clamped - self.domain_start) / (self.domain_end - self.domain_start);
        self.range_start + fraction * (self.range_end - self.range_start)
    }

    /// The distance between ticks when about `target` of them should fit.
    #[must_use]
    pub(super) fn tick_step(&self, target: usize) -> f64 {
        let target = target.clamp(1, LINEAR_TICKS_MAX) as f64;
        let step = nice_step((self.domain_end - self.domain_start) / target);
        // Never more ticks than the bound, even if rounding made the step too small.
        let count = (self.domain_end - self.domain_start) / step;
        if count > LINEAR_TICKS_MAX as f64 {
            nice_step(step * 2.0)
        } else {
            step
        }
    }

    /// Tick values at multiples of [`Self::tick_step`] inside the domain, increasing.
    #[must_use]
    pub(super) fn ticks(&self, target: usize) -> Vec<f64> {
        let step = self.tick_step(target);
        let first = (self.domain_start / step).ceil();
        let mut ticks = Vec::new();
        for index in 0..=LINEAR_TICKS_MAX {
            // Multiply rather than add, so that rounding errors do not accumulate.
            let value = (first + index as f64) * step;
            if value > self.domain_end + step * 1e-9 {
                break;
            }
            ticks.push(value);
        }
        ticks
    }
}

/// One tick of a logarithmic axis: its value, and its label when it has one.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct LogTick {
    pub(super) value: f64,
    pub(super) label: Option<String>,
}

/// A logarithmic map from whole powers of ten `10^decade_min ..= 10^decade_max` onto a
/// pixel range.
#[derive(Clone, Copy, Debug)]
pub(super) struct LogScale {
    decade_min: i32,
    decade_max: i32,
    range_start: f64,
    range_end: f64,
}

impl LogScale {
    /// The scale covering the positive values `minimum..=maximum`, widened to whole decades
    /// (at least one) and bounded to [`DECADE_MIN`]..=[`DECADE_MAX`].
    #[must_use]
    pub(super) fn covering(minimum: f64, maximum: f64, range: (f64, f64)) -> LogScale {
        assert!(minimum > 0.0 && maximum >= minimum, "{minimum}..{maximum}");
        let decade_min = (minimum.log10().floor() as i32).clamp(DECADE_MIN, DECADE_MAX - 1);
        let decade_max = (maximum.log10().ceil() as i32).clamp(decade_min + 1, DECADE_MAX);
        LogScale {
            decade_min,
            decade_max,
            range_start: range.0,
            range_end: range.1,
        }
    }

    /// The smallest and largest values of the domain.
    #[must_use]
    pub(super) fn domain(&self) -> (f64, f64) {
        (10f64.powi(self.decade_min), 10f64.powi(self.decade_max))
    }

    /// The pixel position of `value`, clamped to the domain (zero maps to the bottom).
    #[must_use]
    pub(super) fn map(&self, value: f64) -> f64 {
        let (low, high) = self.domain();
        let exponent = value.clamp(low, high).log10();
        let fraction =
            (exponent - f64::from(self.decade_min)) / f64::from(self.decade_max - self.decade_min);
        self.range_start + fraction * (self.range_end - self.range_start)
    }

    /// Every power of ten (labelled) and the 2..9 multiples between them, increasing.
    #[must_use]
    pub(super) fn ticks(&self) -> Vec<LogTick> {
        let single_decade = self.decade_max - self.decade_min == 1;
        let mut ticks = Vec::new();
        for decade in self.decade_min..=self.decade_max {
            let power = 10f64.powi(decade);
            let labelled_step = if decade < 0 { power } else { 1.0 };
            ticks.push(LogTick {
                value: power,
                label: Some(format_tick(power, labelled_step)),
            });
            if decade == self.decade_max {
                break;
            }
            for multiple in 2..=9 {
                let value = f64::from(multiple) * power;
                let labelled = single_decade && (multiple == 2 || multiple == 5);
                ticks.push(LogTick {
                    value,
                    label: labelled.then(|| format_tick(value, labelled_step)),
                });
            }
        }
        ticks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        let cases = [
            (0.3, 0.5),
            (1.0, 1.0),
            (1.2, 2.0),
            (4.9, 5.0),
            (5.1, 10.0),
            (0.0011, 0.002),
            (730.0, 1000.0),
        ];
        for (raw, expected) in cases {
            let step = nice_step(raw);
            assert!((step - expected).abs() < expected * 1e-9, "{raw}: {step}");
        }
    }

    #[test]
    fn tick_labels_have_the_decimals_of_their_step() {
        assert_eq!(format_tick(10.0, 5.0), "10");
        assert_eq!(format_tick(2.5, 0.5), "2.5");
        assert_eq!(format_tick(0.001, 0.001), "0.001");
        assert_eq!(format_tick(-0.0, 0.5), "0.0");
        assert_eq!(format_tick(1e4, 1.0), "10000");
    }

    #[test]
    fn log_ticks_label_every_decade_and_two_and_five_in_a_single_one() {
        let scale = LogScale::covering(0.2, 30.0, (400.0, 0.0));
        let labels: Vec<String> = scale.ticks().into_iter().filter_map(|t| t.label).collect();
        assert_eq!(labels, ["0.1", "1", "10", "100"]);
        let single = LogScale::covering(1.5, 9.0, (100.0, 0.0));
        let labels: Vec<String> = single.ticks().into_iter().filter_map(|t| t.label).collect();
        assert_eq!(labels, ["1", "2", "5", "10"]);
        assert_eq!(single.map(1.0), 100.0);
        assert_eq!(single.map(10.0), 0.0);
        assert_eq!(single.map(0.0), 100.0, "zero is clamped to the bottom");
    }

    proptest! {
        #[test]
        fn linear_ticks_increase_inside_the_domain(
            start in -1e9f64..1e9,
            length in 1e-6f64..1e9,
            target in 0usize..200,
        ) {
            let scale = LinearScale::new((start, start + length), (50.0, 950.0));
            let ticks = scale.ticks(target);
            prop_assert!(!ticks.is_empty() || length < scale.tick_step(target));
            prop_assert!(ticks.len() <= LINEAR_TICKS_MAX + 1);
            for pair in ticks.windows(2) {
                prop_assert!(pair[0] < pair[1]);
                prop_assert!(scale.map(pair[0]) <= scale.map(pair[1]));
            }
            for tick in &ticks {
                let slack = scale.tick_step(target) * 1e-6;
                prop_assert!(*tick >= start - slack && *tick <= start + length + slack);
                let position = scale.map(*tick);
                prop_assert!((50.0..=950.0).contains(&position));
            }
        }

        #[test]
        fn log_ticks_increase_and_map_monotonically(
            low_exponent in -8.0f64..13.0,
            extra_exponent in 0.0f64..10.0,
        ) {
            let low = 10f64.powf(low_exponent);
            let high = 10f64.powf(low_exponent + extra_exponent);
            let scale = LogScale::covering(low, high, (500.0, 20.0));
            let ticks = scale.ticks();
            prop_assert!(ticks.len() >= 10);
            prop_assert!(ticks.iter().filter(|tick| tick.label.is_some()).count() >= 2);
            for pair in ticks.windows(2) {
                prop_assert!(pair[0].value < pair[1].value);
                prop_assert!(scale.map(pair[0].value) > scale.map(pair[1].value));
            }
            let (domain_low, domain_high) = scale.domain();
            prop_assert!(domain_low <= low.max(10f64.powi(DECADE_MIN)) * (1.0 + 1e-9));
            prop_assert!(domain_high >= high.min(10f64.powi(DECADE_MAX)) * (1.0 - 1e-9));
        }
    }
}
