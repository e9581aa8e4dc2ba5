//! The frame both plots share: the page layout, the time axis, the fault windows (bars
//! in their lanes above the plots, and shading across each plot) and the colours.
//!
//! The latency and rate plots sit one above the other on one time axis, as in Jepsen's
//! reports, so that a reader can follow a fault from its lane down through the latency
//! spike it caused to the throughput dip. Everything that depends on where a plot is on
//! the page is computed once in [`Layout`]; everything that depends on time goes through
//! [`Frame::x`], so the shading of a window is at the same x in every plot and in its
//! lane. A window without an end lasted to the end of the run and is drawn to the right
//! edge; windows are drawn in file order, each with a tooltip (an SVG `<title>`, no
//! script) giving its kind, target and times.

use super::FaultWindow;
use super::faults::Lanes;
use super::points::Clock;
use super::scale::{LinearScale, format_tick};
use super::svg::{Svg, escape, number, shorten};

/// Page width in pixels.
pub(super) const WIDTH: f64 = 1200.0;
/// Left edge of the plots (room for the y tick labels and axis title).
pub(super) const PLOT_LEFT: f64 = 80.0;
/// Right edge of the plots.
pub(super) const PLOT_RIGHT: f64 = 985.0;
/// Left edge of the legend column.
pub(super) const LEGEND_LEFT: f64 = 1005.0;

/// Title, subtitle and the latency plot's heading.
const HEADER_HEIGHT: f64 = 76.0;
const LANE_HEIGHT: f64 = 15.0;
const LANES_GAP: f64 = 10.0;
/// Height of the latency plot, including its "no reply" band at the top.
const LATENCY_HEIGHT: f64 = 420.0;
/// Height of the band at the top of the latency plot for operations that never completed.
pub(super) const NO_REPLY_BAND_HEIGHT: f64 = 24.0;
/// Between the plots: the latency plot's time labels and the rate plot's heading.
const PLOTS_GAP: f64 = 58.0;
const RATE_HEIGHT: f64 = 190.0;
/// Below the rate plot: its time labels, the axis title and a note line.
const FOOTER_HEIGHT: f64 = 62.0;

/// Longest lane name and window target drawn, in characters.
pub(super) const LABEL_CHARACTERS_MAX: usize = 28;
/// Approximate width of one character of a 9-pixel label (to decide whether it fits).
const SMALL_CHARACTER_WIDTH: f64 = 5.5;

/// About how many time ticks the axis has.
const TIME_TICKS_TARGET: usize = 12;

/// Colours of the fault kinds, by lane; chosen apart from the outcome colours.
const LANE_COLOURS: [&str; 8] = [
    "#9467bd", "#8c564b", "#2ca02c", "#d62728", "#17becf", "#bcbd22", "#e377c2", "#7f7f7f",
];

/// The colour of lane `lane`.
#[must_use]
pub(super) fn lane_colour(lane: usize) -> &'static str {
    LANE_COLOURS[lane % LANE_COLOURS.len()]
}

/// Where everything is on the page (y coordinates grow downwards).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Layout {
    pub(super) latency_heading: f64,
    pub(super) lanes_top: f64,
    pub(super) latency_top: f64,
    pub(super) latency_bottom: f64,
    pub(super) rate_top: f64,
    pub(super) rate_bottom: f64,
    pub(super) height: f64,
}

impl Layout {
    /// The layout for `lanes` fault lanes.
    #[must_use]
    pub(super) fn new(lanes: usize) -> Layout {
        let lanes_top = HEADER_HEIGHT;
        let lanes_height = if lanes == 0 {
            0.0
        } else {
            lanes as f64 * LANE_HEIGHT + LANES_GAP
        };
        let latency_top = lanes_top + lanes_height;
        let latency_bottom = latency_top + LATENCY_HEIGHT;
        let rate_top = latency_bottom + PLOTS_GAP;
        let rate_bottom = rate_top + RATE_HEIGHT;
        Layout {
            latency_heading: HEADER_HEIGHT - 8.0,
            lanes_top,
            latency_top,
            latency_bottom,
            rate_top,
            rate_bottom,
            height: rate_bottom + FOOTER_HEIGHT,
        }
    }
}

/// The shared frame: layout, time axis and the fault windows drawn.
#[derive(Debug)]
pub(super) struct Frame<'a> {
    pub(super) layout: Layout,
    pub(super) clock: Clock,
    /// Seconds since the clock's origin to pixels.
    pub(super) x: LinearScale,
    pub(super) faults: &'a [FaultWindow],
    pub(super) lanes: Lanes,
}

impl<'a> Frame<'a> {
    #[must_use]
    pub(super) fn new(clock: Clock, faults: &'a [FaultWindow]) -> Frame<'a> {
        let lanes = Lanes::assign(faults);
        Frame {
            layout: Layout::new(lanes.names.len()),
            clock,
            x: LinearScale::new((0.0, clock.span_seconds()), (PLOT_LEFT, PLOT_RIGHT)),
            faults,
            lanes,
        }
    }

    /// The x of an instant on the history's clock.
    #[must_use]
    pub(super) fn x_of(&self, instant_ns: u64) -> f64 {
        self.x.map(self.clock.seconds(instant_ns))
    }

    /// The left and right x of a fault window (an open window reaches the right edge).
    #[must_use]
    pub(super) fn window_span(&self, window: &FaultWindow) -> (f64, f64) {
        let left = self.x_of(window.start_ns);
        let right = window.end_ns.map_or(PLOT_RIGHT, |end_ns| self.x_of(end_ns));
        (left, right.max(left))
    }

    /// Shades every fault window across a plot from `top` to `bottom`.
    pub(super) fn shade_faults(&self, svg: &mut Svg, top: f64, bottom: f64) {
        svg.open_group("class=\"fault-shading\" fill-opacity=\"0.13\"");
        for (window, lane) in self.faults.iter().zip(&self.lanes.lane_of_window) {
            let (left, right) = self.window_span(window);
            // At least a pixel wide, so that a very short fault stays visible.
            let attributes = format!(
                "class=\"fault-shade\" data-kind=\"{}\" fill=\"{}\"",
                escape(&window.kind),
                lane_colour(*lane)
            );
            svg.rect(
                left,
                top,
                (right - left).max(1.0),
                bottom - top,
                &attributes,
            );
        }
        svg.close_group();
    }

    /// The fault lanes above the latency plot: one row per kind, a bar per window.
    pub(super) fn draw_lanes(&self, svg: &mut Svg) {
        if self.lanes.names.is_empty() {
            return;
        }
        svg.open_group("class=\"fault-lanes\"");
        for (lane, name) in self.lanes.names.iter().enumerate() {
            let top = self.layout.lanes_top + lane as f64 * LANE_HEIGHT;
            svg.rect(
                PLOT_LEFT,
                top + 1.0,
                PLOT_RIGHT - PLOT_LEFT,
                LANE_HEIGHT - 2.0,
                "fill=\"#f2f2f2\"",
            );
            let label = format!(
                "{} ×{}",
                shorten(name, LABEL_CHARACTERS_MAX),
                self.lanes.windows_per_lane[lane]
            );
            let attributes = format!("font-size=\"10\" fill=\"{}\"", lane_colour(lane));
            svg.text(LEGEND_LEFT, top + LANE_HEIGHT - 4.0, &attributes, &label);
        }
        for (window, lane) in self.faults.iter().zip(&self.lanes.lane_of_window) {
            self.draw_lane_bar(svg, window, *lane);
        }
        svg.close_group();
    }

    fn draw_lane_bar(&self, svg: &mut Svg, window: &FaultWindow, lane: usize) {
        let top = self.layout.lanes_top + lane as f64 * LANE_HEIGHT + 1.0;
        let (left, right) = self.window_span(window);
        let width = (right - left).max(1.0);
        let end = window
            .end_ns
            .map_or("the end".to_string(), |end_ns| self.time_label(end_ns));
        let tooltip = format!(
            "{} {}: {} to {}",
            window.kind,
            window.target,
            self.time_label(window.start_ns),
            end
        );
        svg.raw(&format!(
            "<rect class=\"fault-bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" \
             fill-opacity=\"0.8\"><title>{}</title></rect>\n",
            number(left),
            number(top),
            number(width),
            number(LANE_HEIGHT - 2.0),
            lane_colour(lane),
            escape(&tooltip),
        ));
        let target = shorten(&window.target, LABEL_CHARACTERS_MAX);
        let text_width = target.chars().count() as f64 * SMALL_CHARACTER_WIDTH + 4.0;
        if !target.is_empty() && text_width <= width {
            let baseline = top + LANE_HEIGHT - 5.0;
            svg.text(
                left + 2.0,
                baseline,
                "font-size=\"9\" fill=\"white\"",
                &target,
            );
        }
    }

    /// An instant as seconds on the axis, for tooltips.
    fn time_label(&self, instant_ns: u64) -> String {
        format!("{:.3} s", self.clock.seconds(instant_ns))
    }

    /// Vertical grid lines at the time ticks, from `top` to `bottom`.
    pub(super) fn time_grid(&self, svg: &mut Svg, top: f64, bottom: f64) {
        svg.open_group("class=\"time-grid\" stroke=\"#e3e3e3\" stroke-width=\"1\"");
        for tick in self.x.ticks(TIME_TICKS_TARGET) {
            let x = self.x.map(tick);
            svg.line((x, top), (x, bottom), "");
        }
        svg.close_group();
    }

    /// Time tick marks and labels under a plot whose bottom edge is at `bottom`.
    pub(super) fn time_axis(&self, svg: &mut Svg, bottom: f64) {
        let step = self.x.tick_step(TIME_TICKS_TARGET);
        svg.open_group("class=\"time-axis\" text-anchor=\"middle\"");
        for tick in self.x.ticks(TIME_TICKS_TARGET) {
            let x = self.x.map(tick);
            svg.line((x, bottom), (x, bottom + 4.0), "stroke=\"#555\"");
            svg.text(x, bottom + 16.0, "", &format_tick(tick, step));
        }
        svg.close_group();
    }

    /// The time axis title under the rate plot.
    pub(super) fn time_title(&self, svg: &mut Svg) {
        let title = if self.clock.origin_ns == 0 {
            "time since the run started (s)"
        } else {
            "time since the first event (s)"
        };
        let centre = (PLOT_LEFT + PLOT_RIGHT) / 2.0;
        let attributes = "text-anchor=\"middle\" font-size=\"12\"";
        svg.text(centre, self.layout.rate_bottom + 36.0, attributes, title);
    }
}

/// A plot's border, drawn last so that it lies over the shading and the points.
pub(super) fn plot_border(svg: &mut Svg, top: f64, bottom: f64) {
    svg.rect(
        PLOT_LEFT,
        top,
        PLOT_RIGHT - PLOT_LEFT,
        bottom - top,
        "fill=\"none\" stroke=\"#777\" stroke-width=\"1\"",
    );
}

/// A y axis title, written upwards along the left margin of a plot.
pub(super) fn y_title(svg: &mut Svg, top: f64, bottom: f64, title: &str) {
    let (x, y) = (PLOT_LEFT - 52.0, (top + bottom) / 2.0);
    let attributes = format!(
        "text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 {} {})\"",
        number(x),
        number(y)
    );
    svg.text(x, y, &attributes, title);
}

/// A plot's heading, with its baseline at `baseline`.
pub(super) fn plot_heading(svg: &mut Svg, baseline: f64, heading: &str) {
    svg.text(
        PLOT_LEFT,
        baseline,
        "font-size=\"12\" font-weight=\"bold\"",
        heading,
    );
}
