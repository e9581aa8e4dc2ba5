//! The latency plot: one point per operation (or per sampled operation) at its
//! invocation time, at the height of its latency on a logarithmic scale in milliseconds,
//! with the operations that never completed in a band along the top edge.
//!
//! As in Jepsen's latency plot, the colour says how the operation ended (ok blue, fail
//! pink, info orange) and the shape says what it was (read ●, write ▲, cas ◆, delete ■),
//! so that "reads kept working, writes timed out during the partition" is visible at a
//! glance. Points of one class are one SVG group whose children are exactly its points,
//! so a test — or a reader with a browser's inspector — can count them. The ok points are
//! drawn first and half transparent, the rarer failures and unknown outcomes on top.
//! Latencies of zero (possible on the simulator's virtual clock) are drawn on the bottom
//! edge; the scale never goes below a nanosecond.
//!
//! Over the points, two step lines give the p50 (solid) and p99 (dashed) latency of the
//! ok operations per bucket of invocation time (the rate plot's buckets), computed from
//! every operation: where a hundred thousand points merge into one cloud, or where the
//! points were sampled, the lines still show how the typical and the tail latency moved
//! (Jepsen draws these quantiles in a plot of their own; one plot keeps them beside the
//! points that make them).

use super::frame::{
    Frame, LEGEND_LEFT, NO_REPLY_BAND_HEIGHT, PLOT_LEFT, PLOT_RIGHT, plot_border, plot_heading,
    y_title,
};
use super::grouped;
use super::points::{OUTCOMES, Points, QUANTILES, Quantiles, function_name, outcome_name};
use super::rate::bucket_label;
use super::scale::LogScale;
use super::svg::{Svg, number};
use replikv_check::{Function, OperationType};
use std::fmt::Write;

/// Nanoseconds per millisecond.
const NS_PER_MILLISECOND: f64 = 1e6;

/// The latency scale's domain when nothing completed, in milliseconds.
const EMPTY_DOMAIN_MS: (f64, f64) = (1.0, 1000.0);

/// The smallest latency drawn, in milliseconds (one nanosecond).
const LATENCY_FLOOR_MS: f64 = 1e-6;

/// The fill colour of an outcome.
#[must_use]
pub(super) fn outcome_colour(outcome: OperationType) -> &'static str {
    match outcome {
        OperationType::Ok => "#2f7fd0",
        OperationType::Fail => "#e0336f",
        OperationType::Info => "#f29a00",
    }
}

fn outcome_opacity(outcome: OperationType) -> &'static str {
    match outcome {
        OperationType::Ok => "0.45",
        OperationType::Fail | OperationType::Info => "0.85",
    }
}

/// The markup of one point of `function`'s shape centred at (x, y).
#[must_use]
pub(super) fn point_markup(function: Function, x: f64, y: f64) -> String {
    let (x_text, y_text) = (number(x), number(y));
    match function {
        Function::Read => format!("<circle cx=\"{x_text}\" cy=\"{y_text}\" r=\"2.3\"/>\n"),
        Function::Write => format!(
            "<path d=\"M{x_text} {}l2.6 4.4h-5.2z\"/>\n",
            number(y - 2.9)
        ),
        Function::Cas => format!(
            "<path d=\"M{x_text} {}l2.8 2.8-2.8 2.8-2.8-2.8z\"/>\n",
            number(y - 2.8)
        ),
        Function::Delete => format!(
            "<path d=\"M{} {}h4.2v4.2h-4.2z\"/>\n",
            number(x - 2.1),
            number(y - 2.1)
        ),
    }
}

/// Draws the latency plot and its legend.
pub(super) fn draw(svg: &mut Svg, frame: &Frame<'_>, points: &Points, quantiles: &Quantiles) {
    let layout = frame.layout;
    let (top, bottom) = (layout.latency_top, layout.latency_bottom);
    let scale_top = top + NO_REPLY_BAND_HEIGHT;
    let (low_ms, high_ms) = points
        .latency_range_ns()
        .map_or(EMPTY_DOMAIN_MS, |(low, high)| {
            (milliseconds(low), milliseconds(high))
        });
    let y = LogScale::covering(low_ms, high_ms, (bottom, scale_top));
    let heading = format!(
        "Latency of every operation at its invocation; lines: p50 and p99 of the ok ones per {}",
        bucket_label(quantiles.bucket_ns)
    );
    plot_heading(svg, layout.latency_heading, &heading);
    let band_attributes = "class=\"no-reply-band\" fill=\"#f6f6f6\"";
    svg.rect(
        PLOT_LEFT,
        top,
        PLOT_RIGHT - PLOT_LEFT,
        NO_REPLY_BAND_HEIGHT,
        band_attributes,
    );
    frame.shade_faults(svg, top, bottom);
    latency_grid(svg, &y);
    frame.time_grid(svg, scale_top, bottom);
    let band_middle = top + NO_REPLY_BAND_HEIGHT / 2.0;
    no_reply_band(svg, scale_top, band_middle);
    draw_points(svg, frame, points, &y, band_middle);
    draw_quantiles(svg, frame, quantiles, &y);
    if points.total() == 0 {
        let centre = ((PLOT_LEFT + PLOT_RIGHT) / 2.0, (scale_top + bottom) / 2.0);
        let attributes = "text-anchor=\"middle\" font-size=\"14\" fill=\"#888\"";
        let note = "no operations in the history";
        svg.text(centre.0, centre.1, attributes, note);
    }
    plot_border(svg, top, bottom);
    y_title(svg, top, bottom, "latency (ms, log scale)");
    frame.time_axis(svg, bottom);
    legend(svg, layout.latency_top, points);
}

/// A latency in milliseconds for the log scale (zero is drawn at the floor).
fn milliseconds(latency_ns: u64) -> f64 {
    (latency_ns as f64 / NS_PER_MILLISECOND).max(LATENCY_FLOOR_MS)
}

/// The dashed line under the band of operations that never replied, and its label.
fn no_reply_band(svg: &mut Svg, scale_top: f64, band_middle: f64) {
    svg.line(
        (PLOT_LEFT, scale_top),
        (PLOT_RIGHT, scale_top),
        "stroke=\"#aaa\" stroke-dasharray=\"3 3\"",
    );
    let attributes = "text-anchor=\"end\" font-size=\"10\" fill=\"#555\"";
    svg.text(PLOT_LEFT - 6.0, band_middle + 3.5, attributes, "no reply");
}

/// The quantile step lines over the points (a gap where a bucket had no ok operation).
fn draw_quantiles(svg: &mut Svg, frame: &Frame<'_>, quantiles: &Quantiles, y: &LogScale) {
    svg.open_group("class=\"quantiles\" fill=\"none\" stroke=\"#222\" stroke-width=\"1.3\"");
    for (index, (_, name)) in QUANTILES.iter().enumerate() {
        let mut path = String::new();
        let mut previous_present = false;
        for (bucket, latency) in quantiles.per_quantile[index].iter().enumerate() {
            let Some(latency_ns) = latency else {
                previous_present = false;
                continue;
            };
            let start_ns = frame
                .clock
                .origin_ns
                .saturating_add((bucket as u64).saturating_mul(quantiles.bucket_ns));
            let left = number(frame.x_of(start_ns));
            let right = number(frame.x_of(start_ns.saturating_add(quantiles.bucket_ns)));
            let height = number(y.map(milliseconds(*latency_ns)));
            let command = if previous_present { 'L' } else { 'M' };
            let _ = write!(path, "{command}{left} {height}L{right} {height}");
            previous_present = true;
        }
        if path.is_empty() {
            continue;
        }
        svg.raw(&format!(
            "<path class=\"quantile\" data-quantile=\"{name}\" {}d=\"{path}\"/>\n",
            quantile_style(name)
        ));
    }
    svg.close_group();
}

/// The p50 line is solid, the p99 line dashed.
fn quantile_style(name: &str) -> &'static str {
    if name == "p50" {
        ""
    } else {
        "stroke-dasharray=\"5 3\" "
    }
}

/// Every drawn point, a group per class: ok first, the rarer outcomes on top.
fn draw_points(svg: &mut Svg, frame: &Frame<'_>, points: &Points, y: &LogScale, band_middle: f64) {
    for outcome in OUTCOMES {
        for class in points
            .classes
            .iter()
            .filter(|class| class.outcome == outcome)
        {
            let attributes = format!(
                "class=\"points\" data-f=\"{}\" data-type=\"{}\" fill=\"{}\" fill-opacity=\"{}\"",
                function_name(class.function),
                outcome_name(outcome),
                outcome_colour(outcome),
                outcome_opacity(outcome)
            );
            svg.open_group(&attributes);
            for point in &class.drawn {
                let x = frame.x_of(point.invoke_ns);
                let height = point
                    .latency_ns
                    .map_or(band_middle, |latency_ns| y.map(milliseconds(latency_ns)));
                svg.raw(&point_markup(class.function, x, height));
            }
            svg.close_group();
        }
    }
}

/// Horizontal grid lines (every decade darker) and the labels of the labelled ticks.
fn latency_grid(svg: &mut Svg, y: &LogScale) {
    svg.open_group("class=\"latency-grid\"");
    for tick in y.ticks() {
        let height = y.map(tick.value);
        let colour = if tick.label.is_some() {
            "#d5d5d5"
        } else {
            "#f0f0f0"
        };
        svg.line(
            (PLOT_LEFT, height),
            (PLOT_RIGHT, height),
            &format!("stroke=\"{colour}\""),
        );
        if let Some(label) = &tick.label {
            svg.line(
                (PLOT_LEFT - 4.0, height),
                (PLOT_LEFT, height),
                "stroke=\"#555\"",
            );
            let attributes = "class=\"latency-tick\" text-anchor=\"end\"";
            svg.text(PLOT_LEFT - 6.0, height + 3.5, attributes, label);
        }
    }
    svg.close_group();
}

/// The legend beside the plot: each function's shape and each outcome's colour, with
/// their counts in the whole history.
fn legend(svg: &mut Svg, top: f64, points: &Points) {
    let row_height = 16.0;
    let mut row = top + 14.0;
    svg.open_group("class=\"legend\"");
    svg.text(LEGEND_LEFT, row, "font-weight=\"bold\"", "operation");
    for function in super::points::FUNCTIONS {
        let total: usize = points
            .classes
            .iter()
            .filter(|class| class.function == function)
            .map(|class| class.total)
            .sum();
        // A function the history never used is left out, unless nothing was used.
        if total == 0 && points.total() > 0 {
            continue;
        }
        row += row_height;
        svg.raw("<g fill=\"#555\">");
        svg.raw(&point_markup(function, LEGEND_LEFT + 5.0, row - 4.0));
        svg.raw("</g>\n");
        let label = format!("{} {}", function_name(function), grouped(total));
        svg.text(LEGEND_LEFT + 14.0, row, "", &label);
    }
    row += row_height * 1.6;
    svg.text(LEGEND_LEFT, row, "font-weight=\"bold\"", "outcome");
    for outcome in OUTCOMES {
        row += row_height;
        let total: usize = points
            .classes
            .iter()
            .filter(|class| class.outcome == outcome)
            .map(|class| class.total)
            .sum();
        svg.raw(&format!(
            "<circle cx=\"{}\" cy=\"{}\" r=\"4\" fill=\"{}\"/>\n",
            number(LEGEND_LEFT + 5.0),
            number(row - 4.0),
            outcome_colour(outcome)
        ));
        let label = format!("{} {}", outcome_name(outcome), grouped(total));
        svg.text(LEGEND_LEFT + 14.0, row, "", &label);
    }
    row += row_height * 1.6;
    svg.text(LEGEND_LEFT, row, "font-weight=\"bold\"", "latency of ok");
    for (_, name) in QUANTILES {
        row += row_height;
        let attributes = format!(
            "stroke=\"#222\" stroke-width=\"1.3\" {}",
            quantile_style(name)
        );
        svg.line(
            (LEGEND_LEFT, row - 4.0),
            (LEGEND_LEFT + 12.0, row - 4.0),
            &attributes,
        );
        svg.text(LEGEND_LEFT + 18.0, row, "", name);
    }
    row += row_height * 1.6;
    let note = "info: outcome unknown";
    svg.text(LEGEND_LEFT, row, "font-size=\"10\" fill=\"#666\"", note);
    svg.close_group();
}
