//! The recorder: one clock, the history and the fault windows of a live run.
//!
//! A history is only checkable if every time in it comes from one clock: the
//! linearizability checker orders operations by "completed before invoked", and a fault
//! window is compared with operation times to tell availability inside faults from
//! availability outside. So the recorder owns the run's single clock — a monotonic
//! [`Instant`] taken when the run starts — and every client and the nemesis read the
//! time through it ([`Recorder::now_ns`]), as nanoseconds since that start.
//!
//! Clients hand it completed operations ([`Recorder::record`]) in the DESIGN.md history
//! format of `replikv_check::history`; the nemesis hands it fault windows
//! ([`FaultWindow`], the report's type: kind, target node, start and end). It also hands out process
//! numbers: a client whose operation ended unknown (`info`) must never issue another
//! operation under the same number (Jepsen's rule: that process may still be "doing" the
//! unknown operation forever), so it asks for a fresh one ([`Recorder::new_process`]).
//! The number of recorded operations is bounded by `--operations-max` (and by
//! [`OPERATIONS_LIMIT`]); reaching it ends the run.
//!
//! At the end the recorder writes `history.jsonl` and `faults.jsonl` into the output
//! directory; the history is also handed to the checkers in memory.

pub use super::report::FaultWindow;
use replikv_check::{History, Operation};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The most operations one run records, whatever `--operations-max` says (the history
/// is kept in memory and checked whole).
pub const OPERATIONS_LIMIT: u64 = 2_000_000;

/// The run's clock, history and fault windows, shared by clients and nemesis.
#[derive(Debug)]
pub struct Recorder {
    started: Instant,
    operations: Mutex<Vec<Operation>>,
    faults: Mutex<Vec<FaultWindow>>,
    next_process: AtomicU64,
    operations_max: u64,
    stop: AtomicBool,
}

impl Recorder {
    /// A recorder whose clock starts now; processes `0..clients` are taken by the
    /// clients' first sessions.
    pub fn new(clients: u64, operations_max: Option<u64>) -> Recorder {
        Recorder {
            started: Instant::now(),
            operations: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            next_process: AtomicU64::new(clients),
            operations_max: operations_max
                .unwrap_or(OPERATIONS_LIMIT)
                .min(OPERATIONS_LIMIT),
            stop: AtomicBool::new(false),
        }
    }

    /// Nanoseconds since the run started.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A process number never used before.
    pub fn new_process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    /// Records one completed operation; reaching the operation bound stops the run.
    pub fn record(&self, operation: Operation) {
        debug_assert!(operation.validate().is_ok(), "{operation:?}");
        let mut operations = self.operations.lock().expect("recorder lock");
        operations.push(operation);
        if operations.len() as u64 >= self.operations_max {
            self.stop();
        }
    }

    /// Operations recorded so far.
    pub fn operation_count(&self) -> usize {
        self.operations.lock().expect("recorder lock").len()
    }

    /// Asks every client and the nemesis to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Whether the run should stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Records the start of a fault; returns its index for [`Recorder::fault_ended`].
    pub fn fault_started(&self, kind: &str, target: &str) -> usize {
        let mut faults = self.faults.lock().expect("recorder lock");
        faults.push(FaultWindow {
            kind: kind.to_string(),
            target: target.to_string(),
            start_ns: self.now_ns(),
            end_ns: None,
        });
        faults.len() - 1
    }

    /// Records the end of the fault `index`.
    pub fn fault_ended(&self, index: usize) {
        let now = self.now_ns();
        let mut faults = self.faults.lock().expect("recorder lock");
        let window = faults.get_mut(index).expect("a started fault");
        assert!(window.end_ns.is_none(), "fault {index} ended twice");
        window.end_ns = Some(now);
    }

    /// The history so far, in recording order.
    pub fn history(&self) -> History {
        History {
            operations: self.operations.lock().expect("recorder lock").clone(),
        }
    }

    /// The fault windows so far.
    pub fn faults(&self) -> Vec<FaultWindow> {
        self.faults.lock().expect("recorder lock").clone()
    }

    /// Writes `history.jsonl` and `faults.jsonl` into `directory`.
    pub fn write_files(&self, directory: &Path) -> Result<(), String> {
        let history_path = directory.join("history.jsonl");
        let file = std::fs::File::create(&history_path)
            .map_err(|error| format!("{}: {error}", history_path.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        self.history()
            .write_jsonl(&mut writer)
            .and_then(|()| writer.flush())
            .map_err(|error| format!("{}: {error}", history_path.display()))?;
        let faults_path = directory.join("faults.jsonl");
        let mut text = String::new();
        for window in self.faults() {
            let line = serde_json::to_string(&window).map_err(|error| error.to_string())?;
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(&faults_path, text)
            .map_err(|error| format!("{}: {error}", faults_path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use replikv_check::{Function, OperationType};

    fn read(process: u64, invoke: u64) -> Operation {
        Operation {
            process,
            key: "k".into(),
            f: Function::Read,
            value: serde_json::Value::Null,
            ok: None,
            kind: OperationType::Ok,
            invoke,
            complete: Some(invoke + 1),
        }
    }

    #[test]
    fn processes_are_fresh_and_the_bound_stops_the_run() {
        let recorder = Recorder::new(3, Some(2));
        assert_eq!(recorder.new_process(), 3);
        assert_eq!(recorder.new_process(), 4);
        recorder.record(read(0, 1));
        assert!(!recorder.stopping());
        recorder.record(read(1, 2));
        assert!(recorder.stopping());
        assert_eq!(recorder.history().operations.len(), 2);
    }

    #[test]
    fn writes_history_and_fault_windows() {
        let recorder = Recorder::new(1, None);
        recorder.record(read(0, 5));
        let fault = recorder.fault_started("pause", "n2");
        recorder.fault_ended(fault);
        let directory = tempfile::tempdir().unwrap();
        recorder.write_files(directory.path()).unwrap();
        let history = std::fs::read(directory.path().join("history.jsonl")).unwrap();
        assert_eq!(
            History::read_jsonl(history.as_slice()).unwrap(),
            recorder.history()
        );
        let faults = std::fs::read_to_string(directory.path().join("faults.jsonl")).unwrap();
        let window: FaultWindow = serde_json::from_str(faults.trim()).unwrap();
        assert_eq!(
            (window.kind.as_str(), window.target.as_str()),
            ("pause", "n2")
        );
        assert!(window.end_ns.is_some_and(|end| end >= window.start_ns));
    }
}
