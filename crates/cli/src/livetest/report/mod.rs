//! The timeline report of a live test: one self-contained SVG picture of what happened
//! during the run, modelled on Jepsen's latency and rate plots.
//!
//! A checker's verdict says whether a run was correct; it does not say what the run
//! looked like. The picture does: the top plot has one point per operation at its
//! invocation time and the height of its latency (log scale), coloured by outcome and
//! shaped by function, with the operations that never got a reply along the top edge and
//! the p50 and p99 latency of the ok operations as lines over them; the bottom plot has
//! throughput per outcome over time. Above them, each kind of fault has a
//! lane with a bar per fault window, and every window is shaded across both plots, so
//! cause and effect line up on one time axis: the leader is killed, writes time out, the
//! ok rate drops to zero for an election timeout and recovers.
//!
//! The module is pure: [`render_timeline_svg`] takes a history and fault windows and
//! returns the SVG text; [`read_fault_windows`] parses `faults.jsonl` from any reader; the
//! `replikv report` subcommand ([`command`]) is the only part that touches files. The SVG
//! is written by hand (see `svg.rs`; no dependency, no script, no external font) and
//! bounded: at most [`POINTS_MAX`] points (see `points.rs` for how the rest are sampled,
//! deterministically, and the picture says so), [`FAULT_WINDOWS_DRAWN_MAX`] fault windows
//! and labels of bounded length, so a picture stays under a few megabytes whatever the
//! run. Everything that comes from the files — the title, fault kinds and targets — is
//! escaped.
//!
//! Layout of the code: `scale.rs` (linear and log axes and their ticks), `svg.rs` (the
//! writer and escaping), `points.rs` (clock, classes, sampling, throughput buckets),
//! `faults.rs` (the fault window type, its file format, lanes), `frame.rs` (layout, time
//! axis, fault lanes and shading), `latency.rs` and `rate.rs` (the two plots), `command.rs`
//! (`replikv report`).

pub mod command;
mod faults;
mod frame;
mod latency;
mod points;
mod rate;
mod scale;
mod svg;
#[cfg(test)]
mod tests;

pub use faults::{FaultWindow, read_fault_windows};

use frame::{Frame, PLOT_LEFT, WIDTH};
use points::{Clock, Points, Quantiles, Rates};
use replikv_check::History;
use svg::Svg;

/// Most operations drawn as points; past it the latency plot is sampled.
pub const POINTS_MAX: usize = 50_000;

/// Most fault windows drawn (the first ones of the list); past it the picture says so.
pub const FAULT_WINDOWS_DRAWN_MAX: usize = 2_000;

/// Longest title drawn, in characters.
const TITLE_CHARACTERS_MAX: usize = 120;

/// The report: a self-contained SVG (no scripts, no external fonts) with
/// (1) latency of every operation (y, log scale ms) at its invoke time (x, seconds), point
///     shape/colour by function (read/write/cas/delete) and outcome (ok/fail/info; info ops
///     that never completed drawn at the top edge), fault windows shaded and labelled by kind,
///     a legend, axis ticks and labels;
/// (2) below it, throughput over time (ops/s per 1 s or adaptive bucket) per outcome, same
///     x axis and shading (Jepsen's rate plot).
///
/// Bounded: past [`POINTS_MAX`] operations the points are sampled deterministically (evenly
/// spaced, about every k-th of the larger classes) and the picture says so; past [`FAULT_WINDOWS_DRAWN_MAX`]
/// fault windows only the first are drawn, and the picture says so too.
#[must_use]
pub fn render_timeline_svg(history: &History, faults: &[FaultWindow], title: &str) -> String {
    render_with_bound(history, faults, title, POINTS_MAX)
}

/// [`render_timeline_svg`] with another point bound (tests use a small one).
fn render_with_bound(
    history: &History,
    faults: &[FaultWindow],
    title: &str,
    points_max: usize,
) -> String {
    let faults_drawn = &faults[..faults.len().min(FAULT_WINDOWS_DRAWN_MAX)];
    let clock = Clock::covering(history, faults_drawn);
    let points = Points::collect(history, points_max);
    let rates = Rates::count(history, &clock);
    let quantiles = Quantiles::compute(history, &clock, rates.bucket_ns);
    let frame = Frame::new(clock, faults_drawn);
    let mut svg = Svg::new(WIDTH, frame.layout.height);
    header(&mut svg, title, &points, faults.len());
    frame.draw_lanes(&mut svg);
    latency::draw(&mut svg, &frame, &points, &quantiles);
    rate::draw(&mut svg, &frame, &rates);
    svg.finish()
}

/// The title and the subtitle: what the picture shows, and what it leaves out.
fn header(svg: &mut Svg, title: &str, points: &Points, fault_windows: usize) {
    let title = svg::shorten(title, TITLE_CHARACTERS_MAX);
    svg.text(PLOT_LEFT, 26.0, "class=\"title\" font-size=\"17\"", &title);
    let mut subtitle = format!(
        "{} operations, {} fault windows",
        grouped(points.total()),
        grouped(fault_windows)
    );
    if points.drawn() < points.total() {
        subtitle.push_str(&format!(
            " — sampled: {} of {} operations drawn (evenly spaced in the larger classes; \
             throughput counts all)",
            grouped(points.drawn()),
            grouped(points.total())
        ));
    }
    if fault_windows > FAULT_WINDOWS_DRAWN_MAX {
        subtitle.push_str(&format!(
            " — only the first {} fault windows drawn",
            grouped(FAULT_WINDOWS_DRAWN_MAX)
        ));
    }
    let attributes = "class=\"subtitle\" font-size=\"11\" fill=\"#555\"";
    svg.text(PLOT_LEFT, 45.0, attributes, &subtitle);
}

/// A count with thousands separators: 1234567 → "1,234,567".
#[must_use]
fn grouped(count: usize) -> String {
    let digits = count.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}
