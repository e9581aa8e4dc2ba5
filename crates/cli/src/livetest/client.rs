//! A test client: a closed loop of operations over one RESP connection, recorded.
//!
//! Each client runs one operation at a time, as a Jepsen process does: take the time
//! (invoke), send the command, wait for the reply at most `--operation-timeout-ms`, take
//! the time (complete), and record the operation with an honest outcome:
//!
//! - `ok`: the server answered with a result (a CAS that did not swap is `ok` with
//!   `ok: false`: it happened, and compared unequal);
//! - `fail`: the server refused in a way that says the operation was not applied —
//!   `ERR` (invalid), `UNAVAILABLE` (no leader), `OVERLOADED` (a full queue);
//! - `info`: anything else — `UNKNOWN`, `IOERR`, an unexpected reply, a timeout, a lost
//!   connection. The operation may have taken effect, at any time after its invocation.
//!
//! After an `info` the client's process may still be "executing" that operation forever,
//! so it never issues another one under the same process number: it takes a fresh
//! number from the recorder and a fresh connection (a new session on the server too).
//! A `fail` keeps both. A client that cannot connect waits a little and tries again (no
//! operation was invoked, so nothing is recorded). After an `info` or a failed connection
//! `register` and `set` clients move to the next node, `session` clients stay pinned to
//! theirs. Clients run until the recorder
//! says stop; [`final_read`] is the check's last word on each key, after healing.

use super::recorder::Recorder;
use super::workload::{Invocation, Workload, WorkloadKind, interpret};
use crate::bench::resp::{Connection, ReplyValue};
use replikv_check::{Operation, OperationType};
use serde_json::Value as Json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Longest a connection attempt (and its setup commands) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause before connecting again after a failed attempt.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// How an operation ended: its result (and, for CAS, whether it swapped), a certain
/// failure, or an unknown outcome; the strings say why.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ok(Json, Option<bool>),
    Fail(String),
    Info(String),
}

/// Whether an error reply says the command was certainly not applied.
pub fn refusal_is_certain(message: &str) -> bool {
    let prefix = message.split_whitespace().next().unwrap_or_default();
    matches!(prefix, "ERR" | "UNAVAILABLE" | "OVERLOADED")
}

/// What one client needs.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub number: u64,
    /// The index in `nodes` of the node it connects to first (a session client's for
    /// good).
    pub first_node: usize,
    pub kind: WorkloadKind,
    pub nodes: Vec<SocketAddr>,
    pub operation_timeout: Duration,
}

/// Connects to `address` and runs the workload's setup commands.
async fn connect(kind: WorkloadKind, address: SocketAddr) -> Option<Connection> {
    let connecting = async {
        let mut connection = Connection::connect(&address.to_string()).await.ok()?;
        if let Some(setup) = kind.connection_setup() {
            let arguments: Vec<&[u8]> = setup.iter().map(Vec::as_slice).collect();
            if let ReplyValue::Error(_) = connection.request(&arguments).await.ok()? {
                return None;
            }
        }
        Some(connection)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .ok()
        .flatten()
}

/// Sends one invocation and classifies what came back.
pub async fn execute(
    connection: &mut Connection,
    kind: WorkloadKind,
    invocation: &Invocation,
    timeout: Duration,
) -> Outcome {
    let arguments: Vec<&[u8]> = invocation.command.iter().map(Vec::as_slice).collect();
    match tokio::time::timeout(timeout, connection.request(&arguments)).await {
        Err(_) => Outcome::Info(format!("no reply within {timeout:?}")),
        Ok(Err(error)) => Outcome::Info(format!("connection: {error}")),
        Ok(Ok(ReplyValue::Error(message))) if refusal_is_certain(&message) => {
            Outcome::Fail(message)
        }
        Ok(Ok(ReplyValue::Error(message))) => Outcome::Info(message),
        Ok(Ok(reply)) => interpret(kind, invocation, &reply),
    }
}

/// The history entry of an invocation with its outcome.
pub fn operation(
    process: u64,
    invocation: &Invocation,
    outcome: &Outcome,
    invoke: u64,
    complete: u64,
) -> Operation {
    let (kind, value, ok) = match outcome {
        Outcome::Ok(value, ok) => (OperationType::Ok, value.clone(), *ok),
        Outcome::Fail(_) => (OperationType::Fail, invocation.value.clone(), None),
        Outcome::Info(_) => (OperationType::Info, invocation.value.clone(), None),
    };
    Operation {
        process,
        key: invocation.key.clone(),
        f: invocation.f,
        value,
        ok,
        kind,
        invoke,
        complete: Some(complete.max(invoke)),
    }
}

/// Runs one client until the recorder says stop.
pub async fn run(spec: ClientSpec, mut workload: Workload, recorder: Arc<Recorder>) {
    assert!(!spec.nodes.is_empty());
    let mut process = spec.number;
    assert!(spec.first_node < spec.nodes.len());
    let mut node = spec.first_node;
    let mut connection: Option<Connection> = None;
    while !recorder.stopping() {
        let Some(open) = connection.as_mut() else {
            connection = connect(spec.kind, spec.nodes[node]).await;
            if connection.is_none() {
                if spec.kind != WorkloadKind::Session {
                    node = (node + 1) % spec.nodes.len();
                }
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
            continue;
        };
        let invocation = workload.next();
        let invoke = recorder.now_ns();
        let outcome = execute(open, spec.kind, &invocation, spec.operation_timeout).await;
        let complete = recorder.now_ns();
        recorder.record(operation(process, &invocation, &outcome, invoke, complete));
        match &outcome {
            Outcome::Ok(result, _) => workload.observe(&invocation, result),
            Outcome::Fail(_) => {}
            Outcome::Info(_) => {
                process = recorder.new_process();
                connection = None;
                if spec.kind != WorkloadKind::Session {
                    node = (node + 1) % spec.nodes.len();
                }
            }
        }
    }
}

/// Reads `key` linearizably through any node, retrying until an `ok` read or
/// `deadline`; records every attempt under fresh processes. Returns whether one was ok.
pub async fn final_read(
    kind: WorkloadKind,
    key: &str,
    nodes: &[SocketAddr],
    recorder: &Recorder,
    timeout: Duration,
    deadline: tokio::time::Instant,
) -> bool {
    let invocation = Workload::read(key);
    let mut attempt = 0usize;
    while tokio::time::Instant::now() < deadline {
        let address = nodes[attempt % nodes.len()];
        attempt += 1;
        let Some(mut connection) = connect(WorkloadKind::Register, address).await else {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            continue;
        };
        let process = recorder.new_process();
        let invoke = recorder.now_ns();
        let outcome = execute(&mut connection, kind, &invocation, timeout).await;
        let complete = recorder.now_ns();
        recorder.record(operation(process, &invocation, &outcome, invoke, complete));
        if matches!(outcome, Outcome::Ok(..)) {
            return true;
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified_by_prefix() {
        for certain in ["ERR bad", "UNAVAILABLE no leader", "OVERLOADED full"] {
            assert!(refusal_is_certain(certain), "{certain}");
        }
        for unknown in ["UNKNOWN timed out", "IOERR disk", "WEIRD", ""] {
            assert!(!refusal_is_certain(unknown), "{unknown}");
        }
    }

    #[test]
    fn unknown_outcomes_keep_their_argument() {
        let invocation = Workload::read("k1");
        let info = operation(4, &invocation, &Outcome::Info("timeout".into()), 10, 5);
        assert_eq!(info.kind, OperationType::Info);
        assert_eq!(info.complete, Some(10));
        assert!(info.validate().is_ok());
    }
}
