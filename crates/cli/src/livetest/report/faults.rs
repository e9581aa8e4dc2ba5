//! Fault windows: what the nemesis did and when, as `replikv test` records them in
//! `faults.jsonl` next to the history, and how the picture groups them into lanes.
//!
//! One JSON object per line, on the history's clock (nanoseconds since the run started):
//!
//! ```text
//! {"kind": "kill-leader", "target": "n2", "start_ns": 5000000000, "end_ns": 10000000000}
//! {"kind": "pause", "target": "n3", "start_ns": 20000000000, "end_ns": null}
//! ```
//!
//! `end_ns` is null (or absent) for a fault that lasted to the end of the run. The file
//! comes from outside this process, so reading it never panics and never grows without
//! bound: lines are at most [`LINE_MAX_BYTES`] long, there are at most
//! [`FAULT_WINDOWS_READ_MAX`] windows, and an error names the 1-based line it is about.
//! Extra fields are allowed, so the recorder may add some without breaking old readers.
//!
//! The picture gives each kind of fault its own lane (a row of bars above the latency
//! plot) and its own shading colour, in order of first appearance; kinds past
//! [`LANES_MAX`]` - 1` share a last lane, so that a file with many kinds still draws.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read};

/// Longest line of a faults file, in bytes.
pub(super) const LINE_MAX_BYTES: usize = 64 * 1024;

/// Most fault windows read from one file.
pub(super) const FAULT_WINDOWS_READ_MAX: usize = 100_000;

/// Most lanes (kinds of fault shown apart) in the picture.
pub(super) const LANES_MAX: usize = 8;

/// The name of the lane shared by the kinds past the others.
pub(super) const OTHER_KINDS_LANE: &str = "other faults";

/// A fault window for the picture: `start_ns`/`end_ns` on the history's clock (end None =
/// lasted to the end of the run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWindow {
    pub kind: String,
    pub target: String,
    pub start_ns: u64,
    #[serde(default)]
    pub end_ns: Option<u64>,
}

impl FaultWindow {
    /// Checks that the window does not end before it starts.
    pub fn validate(&self) -> Result<(), String> {
        match self.end_ns {
            Some(end_ns) if end_ns < self.start_ns => Err(format!(
                "the {} window ends at {end_ns} ns, before it starts at {} ns",
                self.kind, self.start_ns
            )),
            _ => Ok(()),
        }
    }
}

/// Reads faults.jsonl (one FaultWindow per line; errors name the line).
pub fn read_fault_windows(mut reader: impl BufRead) -> Result<Vec<FaultWindow>, String> {
    let mut windows = Vec::new();
    let mut line = Vec::new();
    for line_number in 1.. {
        line.clear();
        let limit = (LINE_MAX_BYTES + 1) as u64;
        let read = Read::take(&mut reader, limit)
            .read_until(b'\n', &mut line)
            .map_err(|error| format!("faults line {line_number}: {error}"))?;
        if read == 0 {
            break;
        }
        if line.len() > LINE_MAX_BYTES {
            return Err(format!(
                "faults line {line_number}: longer than {LINE_MAX_BYTES} bytes"
            ));
        }
        let text = std::str::from_utf8(&line)
            .map_err(|error| format!("faults line {line_number}: not UTF-8: {error}"))?;
        if text.trim().is_empty() {
            continue;
        }
        if windows.len() == FAULT_WINDOWS_READ_MAX {
            return Err(format!(
                "faults line {line_number}: more than {FAULT_WINDOWS_READ_MAX} fault windows"
            ));
        }
        let window: FaultWindow = serde_json::from_str(text)
            .map_err(|error| format!("faults line {line_number}: {error}"))?;
        window
            .validate()
            .map_err(|message| format!("faults line {line_number}: {message}"))?;
        windows.push(window);
    }
    Ok(windows)
}

/// The lanes of the picture: each lane's name, and each window's lane index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Lanes {
    pub(super) names: Vec<String>,
    pub(super) lane_of_window: Vec<usize>,
    pub(super) windows_per_lane: Vec<usize>,
}

impl Lanes {
    /// One lane per kind in order of first appearance, the last shared past [`LANES_MAX`].
    #[must_use]
    pub(super) fn assign(windows: &[FaultWindow]) -> Lanes {
        let mut kinds: Vec<&str> = Vec::new();
        for window in windows {
            if !kinds.contains(&window.kind.as_str()) {
                kinds.push(&window.kind);
            }
        }
        let overflowing = kinds.len() > LANES_MAX;
        let named = if overflowing {
            LANES_MAX - 1
        } else {
            kinds.len()
        };
        let mut names: Vec<String> = kinds[..named].iter().map(|kind| kind.to_string()).collect();
        if overflowing {
            names.push(OTHER_KINDS_LANE.to_string());
        }
        let mut windows_per_lane = vec![0; names.len()];
        let lane_of_window = windows
            .iter()
            .map(|window| {
                let position = kinds[..named].iter().position(|kind| *kind == window.kind);
                let lane = position.unwrap_or(named);
                windows_per_lane[lane] += 1;
                lane
            })
            .collect();
        Lanes {
            names,
            lane_of_window,
            windows_per_lane,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(kind: &str, start_ns: u64, end_ns: Option<u64>) -> FaultWindow {
        FaultWindow {
            kind: kind.to_string(),
            target: "n1".to_string(),
            start_ns,
            end_ns,
        }
    }

    #[test]
    fn reads_windows_skipping_blank_lines() {
        let text = "{\"kind\":\"pause\",\"target\":\"n1\",\"start_ns\":5,\"end_ns\":9}\n\n\
                    {\"kind\":\"kill\",\"target\":\"n2\",\"start_ns\":7,\"end_ns\":null,\"extra\":1}\n\
                    {\"kind\":\"kill\",\"target\":\"n3\",\"start_ns\":8}";
        let windows = read_fault_windows(text.as_bytes()).unwrap();
        assert_eq!(
            windows,
            [
                window("pause", 5, Some(9)),
                FaultWindow {
                    target: "n2".into(),
                    ..window("kill", 7, None)
                },
                FaultWindow {
                    target: "n3".into(),
                    ..window("kill", 8, None)
                },
            ]
        );
    }

    #[test]
    fn malformed_lines_are_errors_that_name_the_line() {
        let good = "{\"kind\":\"pause\",\"target\":\"n1\",\"start_ns\":5,\"end_ns\":9}";
        let cases = [
            ("not json", 3),
            ("{\"kind\":\"pause\",\"target\":\"n1\"}", 3),
            ("{\"kind\":\"pause\",\"target\":\"n1\",\"start_ns\":-5}", 3),
            (
                "{\"kind\":\"pause\",\"target\":\"n1\",\"start_ns\":9,\"end_ns\":5}",
                3,
            ),
            ("{\"kind\":7,\"target\":\"n1\",\"start_ns\":1}", 3),
        ];
        for (bad, line) in cases {
            let text = format!("{good}\n\n{bad}\n{good}\n");
            let error = read_fault_windows(text.as_bytes()).unwrap_err();
            assert!(
                error.starts_with(&format!("faults line {line}: ")),
                "{bad}: {error}"
            );
        }
        let mut invalid_utf8 = format!("{good}\n").into_bytes();
        invalid_utf8.extend_from_slice(b"{\"kind\":\"\xff\"}\n");
        let error = read_fault_windows(invalid_utf8.as_slice()).unwrap_err();
        assert!(error.starts_with("faults line 2: not UTF-8"), "{error}");
    }

    #[test]
    fn an_overlong_line_is_refused_without_reading_it_whole() {
        let long = format!("\n{}", "x".repeat(LINE_MAX_BYTES * 3));
        let error = read_fault_windows(long.as_bytes()).unwrap_err();
        assert_eq!(
            error,
            format!("faults line 2: longer than {LINE_MAX_BYTES} bytes")
        );
    }

    #[test]
    fn lanes_follow_first_appearance_and_share_the_last_past_the_bound() {
        let windows: Vec<FaultWindow> = ["b", "a", "b", "c"]
            .iter()
            .map(|kind| window(kind, 0, None))
            .collect();
        let lanes = Lanes::assign(&windows);
        assert_eq!(lanes.names, ["b", "a", "c"]);
        assert_eq!(lanes.lane_of_window, [0, 1, 0, 2]);
        assert_eq!(lanes.windows_per_lane, [2, 1, 1]);

        let many: Vec<FaultWindow> = (0..LANES_MAX + 2)
            .map(|index| window(&format!("kind{index}"), 0, None))
            .collect();
        let lanes = Lanes::assign(&many);
        assert_eq!(lanes.names.len(), LANES_MAX);
        assert_eq!(lanes.names[LANES_MAX - 1], OTHER_KINDS_LANE);
        assert_eq!(lanes.windows_per_lane[LANES_MAX - 1], 3);
        assert_eq!(lanes.lane_of_window[LANES_MAX + 1], LANES_MAX - 1);
    }
}
