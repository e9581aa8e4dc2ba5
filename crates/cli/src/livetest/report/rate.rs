//! The rate plot under the latency plot: throughput over time per outcome, as in
//! Jepsen's rate plot, on the same time axis and with the same fault shading.
//!
//! Every operation of the history counts (sampling thins only the latency plot's
//! points), in the bucket of its completion — an operation that never completed, in the
//! bucket of its invocation. Buckets have one round width (1, 2 or 5 times a power of
//! ten seconds, about sixty of them across the run), and each outcome is a step line of
//! operations per second, so a fault shows as the ok line dropping while the info or fail
//! line rises. An outcome that never occurred draws no line.

use super::frame::{Frame, LEGEND_LEFT, PLOT_LEFT, PLOT_RIGHT, plot_border, plot_heading, y_title};
use super::latency::outcome_colour;
use super::points::{NS_PER_SECOND, OUTCOMES, Rates, outcome_name};
use super::scale::{LinearScale, format_tick, nice_step};
use super::svg::{Svg, number};
use std::fmt::Write;

/// About how many throughput ticks the y axis has.
const RATE_TICKS_TARGET: usize = 4;

/// A bucket width in words: "1 s", "200 ms", "50 µs".
#[must_use]
pub(super) fn bucket_label(bucket_ns: u64) -> String {
    let nanoseconds = bucket_ns as f64;
    for (unit, size) in [("s", NS_PER_SECOND), ("ms", 1e6), ("µs", 1e3)] {
        if nanoseconds >= size {
            let value = nanoseconds / size;
            let text = if (value - value.round()).abs() < 1e-6 {
                format!("{}", value.round() as u64)
            } else {
                format!("{value:.2}").trim_end_matches('0').to_string()
            };
            return format!("{text} {unit}");
        }
    }
    format!("{bucket_ns} ns")
}

/// Draws the rate plot, its legend and the time axis title.
pub(super) fn draw(svg: &mut Svg, frame: &Frame<'_>, rates: &Rates) {
    let layout = frame.layout;
    let (top, bottom) = (layout.rate_top, layout.rate_bottom);
    let heading = format!(
        "Throughput per outcome, in {} buckets of completion time",
        bucket_label(rates.bucket_ns)
    );
    plot_heading(svg, top - 8.0, &heading);
    let highest = rates
        .per_outcome
        .iter()
        .flatten()
        .fold(0.0f64, |highest, rate| highest.max(*rate));
    let ceiling = if highest > 0.0 {
        let step = nice_step(highest / RATE_TICKS_TARGET as f64);
        (highest / step).ceil() * step
    } else {
        1.0
    };
    let y = LinearScale::new((0.0, ceiling), (bottom, top));
    frame.shade_faults(svg, top, bottom);
    rate_grid(svg, &y);
    frame.time_grid(svg, top, bottom);
    svg.open_group("class=\"rates\" fill=\"none\" stroke-width=\"1.6\"");
    for (index, outcome) in OUTCOMES.iter().enumerate() {
        if rates.totals[index] == 0 {
            continue;
        }
        let mut coordinates = String::new();
        for (bucket, rate) in rates.per_outcome[index].iter().enumerate() {
            let start_ns = frame
                .clock
                .origin_ns
                .saturating_add((bucket as u64).saturating_mul(rates.bucket_ns));
            let end_ns = start_ns.saturating_add(rates.bucket_ns);
            let height = number(y.map(*rate));
            let (left, right) = (number(frame.x_of(start_ns)), number(frame.x_of(end_ns)));
            let _ = write!(coordinates, "{left},{height} {right},{height} ");
        }
        svg.raw(&format!(
            "<polyline class=\"rate\" data-type=\"{}\" stroke=\"{}\" points=\"{}\"/>\n",
            outcome_name(*outcome),
            outcome_colour(*outcome),
            coordinates.trim_end()
        ));
    }
    svg.close_group();
    plot_border(svg, top, bottom);
    y_title(svg, top, bottom, "operations per second");
    frame.time_axis(svg, bottom);
    frame.time_title(svg);
    legend(svg, top, rates);
}

/// Horizontal grid lines and labels at round throughputs.
fn rate_grid(svg: &mut Svg, y: &LinearScale) {
    let step = y.tick_step(RATE_TICKS_TARGET);
    svg.open_group("class=\"rate-grid\"");
    for tick in y.ticks(RATE_TICKS_TARGET) {
        let height = y.map(tick);
        svg.line(
            (PLOT_LEFT, height),
            (PLOT_RIGHT, height),
            "stroke=\"#e3e3e3\"",
        );
        svg.line(
            (PLOT_LEFT - 4.0, height),
            (PLOT_LEFT, height),
            "stroke=\"#555\"",
        );
        let attributes = "class=\"rate-tick\" text-anchor=\"end\"";
        svg.text(
            PLOT_LEFT - 6.0,
            height + 3.5,
            attributes,
            &format_tick(tick, step),
        );
    }
    svg.close_group();
}

/// One line sample per outcome that occurred.
fn legend(svg: &mut Svg, top: f64, rates: &Rates) {
    let mut row = top + 14.0;
    svg.open_group("class=\"legend\"");
    svg.text(LEGEND_LEFT, row, "font-weight=\"bold\"", "ops/s");
    for (index, outcome) in OUTCOMES.iter().enumerate() {
        if rates.totals[index] == 0 {
            continue;
        }
        row += 16.0;
        let attributes = format!("stroke=\"{}\" stroke-width=\"2\"", outcome_colour(*outcome));
        svg.line(
            (LEGEND_LEFT, row - 4.0),
            (LEGEND_LEFT + 12.0, row - 4.0),
            &attributes,
        );
        svg.text(LEGEND_LEFT + 18.0, row, "", outcome_name(*outcome));
    }
    svg.close_group();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_widths_read_in_their_unit() {
        assert_eq!(bucket_label(1_000_000_000), "1 s");
        assert_eq!(bucket_label(500_000_000), "500 ms");
        assert_eq!(bucket_label(2_000_000_000), "2 s");
        assert_eq!(bucket_label(50_000), "50 µs");
        assert_eq!(bucket_label(7), "7 ns");
        assert_eq!(bucket_label(1_250_000), "1.25 ms");
    }
}
