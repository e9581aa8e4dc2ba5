//! What a benchmark run prints and draws: a table, one JSON line, an SVG histogram.
//!
//! A [`Report`] is the run's figures flattened into the fields `../shared/tools/loadgen`
//! prints (`ops_per_sec`, `p50_us`, ..., `max_gap_ms`), so the two tools' outputs can be
//! compared line by line and fed to the same scripts. The table is for a person; the
//! JSON line (`--json`) is for scripts and CI; the SVG (`--histogram`) is the latency
//! distribution on a logarithmic axis with the p50/p99/p99.9 marks, written as plain SVG
//! text so it needs no drawing library and opens in any browser.

use super::histogram::Histogram;
use super::runner::RunResult;
use super::workload::WorkloadSpec;
use serde::Serialize;
use std::fmt::Write as _;

/// One run's figures, in loadgen's field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// What was measured: `replikv-majority-3`, `resp:127.0.0.1:6380`, ...
    pub system: String,
    pub op_mix: String,
    pub clients: usize,
    /// Successful operations after the warm-up.
    pub ops: u64,
    pub reads: u64,
    pub writes: u64,
    pub secs: f64,
    pub ops_per_sec: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub errors: u64,
    /// Longest time without any success, milliseconds.
    pub max_gap_ms: u64,
    pub value_bytes: usize,
    pub keys: u64,
    pub first_error: Option<String>,
}

impl Report {
    pub fn new(system: &str, clients: usize, workload: &WorkloadSpec, run: &RunResult) -> Report {
        let histogram = &run.histogram;
        let ops_per_sec = if run.measured_secs > 0.0 {
            run.ops() as f64 / run.measured_secs
        } else {
            0.0
        };
        Report {
            system: system.into(),
            op_mix: workload.op_mix(),
            clients,
            ops: run.ops(),
            reads: run.reads,
            writes: run.writes,
            secs: run.measured_secs,
            ops_per_sec: (ops_per_sec * 10.0).round() / 10.0,
            p50_us: histogram.percentile_us(50.0),
            p90_us: histogram.percentile_us(90.0),
            p99_us: histogram.percentile_us(99.0),
            p999_us: histogram.percentile_us(99.9),
            max_us: histogram.max_us(),
            mean_us: (histogram.mean_us() * 10.0).round() / 10.0,
            errors: run.errors,
            max_gap_ms: run.longest_gap_ms,
            value_bytes: workload.value_size_bytes,
            keys: workload.keys,
            first_error: run.first_error.clone(),
        }
    }

    /// One JSON line (no trailing newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    /// A table for a person: the setup on one line, then the figures.
    pub fn to_table(&self) -> String {
        let headers = [
            "system",
            "ops/s",
            "p50_us",
            "p90_us",
            "p99_us",
            "p99.9_us",
            "max_us",
            "errors",
            "max_gap_ms",
        ];
        let values = [
            self.system.clone(),
            format!("{:.1}", self.ops_per_sec),
            self.p50_us.to_string(),
            self.p90_us.to_string(),
            self.p99_us.to_string(),
            self.p999_us.to_string(),
            self.max_us.to_string(),
            self.errors.to_string(),
            self.max_gap_ms.to_string(),
        ];
        let mut table = format!(
            "{} ops in {:.1} s: {}, {} clients, {}-byte values, {} keys\n",
            self.ops, self.secs, self.op_mix, self.clients, self.value_bytes, self.keys
        );
        let widths: Vec<usize> = headers
            .iter()
            .zip(&values)
            .map(|(header, value)| header.len().max(value.len()))
            .collect();
        for row in [headers.map(String::from).to_vec(), values.to_vec()] {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:>width$}"))
                .collect();
            table.push_str(cells.join("  ").trim_end());
            table.push('\n');
        }
        if let Some(error) = &self.first_error {
            let _ = writeln!(table, "first error: {error}");
        }
        table
    }
}

/// Bars in the SVG histogram.
const SVG_BINS: usize = 60;
const SVG_WIDTH: f64 = 800.0;
const SVG_HEIGHT: f64 = 400.0;
const SVG_MARGIN: f64 = 50.0;

/// The latency histogram as an SVG document: bars over a log10 microsecond axis, with
/// vertical marks at p50, p99 and p99.9.
pub fn histogram_svg(title: &str, histogram: &Histogram) -> String {
    let buckets = histogram.buckets();
    let low = (histogram.min_us().max(1) as f64).log10().floor();
    let high = ((histogram.max_us().max(1) + 1) as f64)
        .log10()
        .ceil()
        .max(low + 1.0);
    let plot_width = SVG_WIDTH - 2.0 * SVG_MARGIN;
    let plot_height = SVG_HEIGHT - 2.0 * SVG_MARGIN;
    let x_of =
        |value_us: f64| SVG_MARGIN + (value_us.max(1.0).log10() - low) / (high - low) * plot_width;
    let mut bins = [0u64; SVG_BINS];
    for (_, top, count) in &buckets {
        let position = (x_of(*top as f64) - SVG_MARGIN) / plot_width * SVG_BINS as f64;
        bins[(position as usize).min(SVG_BINS - 1)] += count;
    }
    let tallest = bins.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SVG_WIDTH}\" height=\"{SVG_HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{SVG_MARGIN}\" y=\"25\" font-size=\"14\">{}</text>\n",
        escape(title)
    );
    let bar_width = plot_width / SVG_BINS as f64;
    for (index, count) in bins.iter().enumerate().filter(|(_, count)| **count > 0) {
        let height = *count as f64 / tallest * plot_height;
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{height:.1}\" fill=\"steelblue\"><title>{count}</title></rect>",
            SVG_MARGIN + index as f64 * bar_width,
            SVG_HEIGHT - SVG_MARGIN - height,
            bar_width - 1.0,
        );
    }
    let axis_y = SVG_HEIGHT - SVG_MARGIN;
    let _ = writeln!(
        svg,
        "<line x1=\"{SVG_MARGIN}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"black\"/>",
        SVG_WIDTH - SVG_MARGIN
    );
    for exponent in (low as i32)..=(high as i32) {
        let x = x_of(10f64.powi(exponent));
        let _ = writeln!(
            svg,
            "<text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{} µs</text>",
            axis_y + 18.0,
            10u64.pow(exponent.max(0) as u32)
        );
    }
    let marks = [("p50", 50.0), ("p99", 99.0), ("p99.9", 99.9)];
    for (index, (name, percentile)) in marks.iter().enumerate() {
        let value = histogram.percentile_us(*percentile);
        let x = x_of(value as f64);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{SVG_MARGIN}\" x2=\"{x:.1}\" y2=\"{axis_y}\" stroke=\"firebrick\" stroke-dasharray=\"4 3\"/>\n<text x=\"{:.1}\" y=\"{}\" fill=\"firebrick\">{name} {value} µs</text>",
            x + 3.0,
            SVG_MARGIN + 14.0 * (index as f64 + 1.0)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_run() -> (WorkloadSpec, RunResult) {
        let workload = WorkloadSpec {
            keys: 1000,
            value_size_bytes: 100,
            read_ratio: 0.5,
            seed: 1,
        };
        let mut histogram = Histogram::new();
        for value in 1..=100 {
            histogram.record(value);
        }
        let run = RunResult {
            histogram,
            reads: 60,
            writes: 40,
            errors: 2,
            measured_secs: 4.0,
            longest_gap_ms: 7,
            first_error: Some("ERR busy".into()),
        };
        (workload, run)
    }

    #[test]
    fn json_has_loadgen_field_names_and_exact_figures() {
        let (workload, run) = sample_run();
        let report = Report::new("resp:127.0.0.1:6380", 8, &workload, &run);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        let expected = serde_json::json!({
            "system": "resp:127.0.0.1:6380", "op_mix": "read50_write50", "clients": 8,
            "ops": 100, "reads": 60, "writes": 40, "secs": 4.0, "ops_per_sec": 25.0,
            "p50_us": 50, "p90_us": 90, "p99_us": 99, "p999_us": 100, "max_us": 100,
            "mean_us": 50.5, "errors": 2, "max_gap_ms": 7, "value_bytes": 100, "keys": 1000,
            "first_error": "ERR busy",
        });
        assert_eq!(json, expected);
        assert!(!report.to_json().contains('\n'));
    }

    #[test]
    fn table_lines_up_headers_and_values() {
        let (workload, run) = sample_run();
        let table = Report::new("replikv-majority-3", 8, &workload, &run).to_table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "100 ops in 4.0 s: read50_write50, 8 clients, 100-byte values, 1000 keys"
        );
        assert_eq!(
            lines[1],
            "            system  ops/s  p50_us  p90_us  p99_us  p99.9_us  max_us  errors  max_gap_ms"
        );
        assert_eq!(
            lines[2],
            "replikv-majority-3   25.0      50      90      99       100     100       2           7"
        );
        assert_eq!(lines[3], "first error: ERR busy");
    }

    #[test]
    fn svg_draws_bars_axis_and_marks() {
        let (_, run) = sample_run();
        let svg = histogram_svg("a <title>", &run.histogram);
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt;title&gt;"));
        assert!(svg.contains("p50 50 µs") && svg.contains("p99.9 100 µs"));
        let bars = svg.matches("fill=\"steelblue\"").count();
        assert!((2..=SVG_BINS).contains(&bars), "{bars}");
        let empty = histogram_svg("empty", &Histogram::new());
        assert_eq!(empty.matches("fill=\"steelblue\"").count(), 0);
    }
}
