//! The history format shared by the simulator, live test runs and `replikv check`.
//!
//! JSON lines, one completed operation each (DESIGN.md fixes it):
//!
//! ```text
//! {"process": 3, "key": "k1", "f": "read"|"write"|"cas"|"delete",
//!  "value": <written value> | [expected, new] for cas | <value read, null = absent>,
//!  "ok": true|false (cas only: swapped or not),
//!  "type": "ok"|"fail"|"info", "invoke": <ns>, "complete": <ns or null>}
//! ```
//!
//! `ok` means the operation happened with that result; `fail` means it certainly did not
//! happen; `info` means the outcome is unknown (timed out, connection lost): a write may
//! or may not have taken effect, at any time after its invocation. Times are nanoseconds
//! on one clock shared by all processes of the run (virtual time in the simulator).
//!
//! Parsing validates what checkers rely on and reports the line of the first problem.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::{BufRead, Write};

/// What an operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Function {
    /// Read the key; `value` is what was read (`null`: absent).
    Read,
    /// Write `value` to the key.
    Write,
    /// Compare-and-set: `value` is `[expected, new]`; `ok` says whether it swapped.
    Cas,
    /// Delete the key (afterwards it reads as absent).
    Delete,
}

/// How an operation ended, as far as its client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OperationType {
    /// It happened, with the recorded result.
    Ok,
    /// It certainly did not happen.
    Fail,
    /// Unknown: it may or may not have happened.
    Info,
}

/// One completed operation of a history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub process: u64,
    pub key: String,
    pub f: Function,
    #[serde(default)]
    pub value: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(rename = "type")]
    pub kind: OperationType,
    pub invoke: u64,
    pub complete: Option<u64>,
}

/// A whole history, in the order its lines were written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub operations: Vec<Operation>,
}

/// A history line that cannot be used, with its 1-based line number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "history line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for HistoryError {}

impl Operation {
    /// The `[expected, new]` pair of a cas operation.
    #[must_use]
    pub fn cas_values(&self) -> Option<(&serde_json::Value, &serde_json::Value)> {
        match (self.f, &self.value) {
            (Function::Cas, serde_json::Value::Array(pair)) if pair.len() == 2 => {
                Some((&pair[0], &pair[1]))
            }
            _ => None,
        }
    }

    /// Checks the rules every checker relies on.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(complete) = self.complete
            && complete < self.invoke
        {
            return Err(format!(
                "completes at {complete} before it is invoked at {}",
                self.invoke
            ));
        }
        if self.complete.is_none() && self.kind != OperationType::Info {
            return Err("only an info operation may lack a completion time".into());
        }
        if self.f == Function::Cas && self.cas_values().is_none() {
            return Err("a cas value must be [expected, new]".into());
        }
        if self.f == Function::Cas && self.kind == OperationType::Ok && self.ok.is_none() {
            return Err("a completed cas must say whether it swapped (\"ok\")".into());
        }
        Ok(())
    }
}

impl History {
    /// Reads JSON lines; blank lines are skipped.
    pub fn read_jsonl(reader: impl BufRead) -> Result<History, HistoryError> {
        let mut operations = Vec::new();
        for (index, line) in reader.lines().enumerate() {
            let line_number = index + 1;
            let error = |message: String| HistoryError {
                line: line_number,
                message,
            };
            let line = line.map_err(|e| error(e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let operation: Operation =
                serde_json::from_str(&line).map_err(|e| error(e.to_string()))?;
            operation.validate().map_err(error)?;
            operations.push(operation);
        }
        Ok(History { operations })
    }

    /// Checks every operation with [`Operation::validate`], for histories built in
    /// memory rather than read with [`History::read_jsonl`] (which validates as it reads).
    /// The error's `line` is the operation's 1-based position in the history.
    pub fn validate(&self) -> Result<(), HistoryError> {
        for (index, operation) in self.operations.iter().enumerate() {
            operation.validate().map_err(|message| HistoryError {
                line: index + 1,
                message,
            })?;
        }
        Ok(())
    }

    /// Writes JSON lines, one operation each.
    pub fn write_jsonl(&self, mut writer: impl Write) -> std::io::Result<()> {
        for operation in &self.operations {
            serde_json::to_writer(&mut writer, operation)?;
            writer.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
{"process": 0, "key": "k1", "f": "write", "value": 1, "type": "ok", "invoke": 10, "complete": 20}
{"process": 1, "key": "k1", "f": "cas", "value": [1, 2], "ok": true, "type": "ok", "invoke": 15, "complete": 30}
{"process": 2, "key": "k1", "f": "read", "value": null, "type": "info", "invoke": 40, "complete": null}
"#;

    #[test]
    fn round_trips() {
        let history = History::read_jsonl(SAMPLE.as_bytes()).unwrap();
        assert_eq!(history.operations.len(), 3);
        assert_eq!(history.operations[1].ok, Some(true));
        assert_eq!(history.operations[2].complete, None);
        let mut written = Vec::new();
        history.write_jsonl(&mut written).unwrap();
        assert_eq!(History::read_jsonl(written.as_slice()).unwrap(), history);
    }

    #[test]
    fn rejects_invalid_lines_with_their_number() {
        let bad = "{\"process\":0,\"key\":\"k\",\"f\":\"cas\",\"value\":1,\"type\":\"ok\",\"ok\":true,\"invoke\":1,\"complete\":2}";
        let error = History::read_jsonl(format!("\n{bad}\n").as_bytes()).unwrap_err();
        assert_eq!(error.line, 2);
        let backwards = "{\"process\":0,\"key\":\"k\",\"f\":\"read\",\"type\":\"ok\",\"invoke\":5,\"complete\":2}";
        assert!(History::read_jsonl(backwards.as_bytes()).is_err());
        let unfinished = "{\"process\":0,\"key\":\"k\",\"f\":\"read\",\"type\":\"ok\",\"invoke\":5,\"complete\":null}";
        assert!(History::read_jsonl(unfinished.as_bytes()).is_err());
        assert!(History::read_jsonl("not json".as_bytes()).is_err());
    }
}
