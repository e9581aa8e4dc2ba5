//! Unit tests of the client processes: scheduling, redirects, retries under the same
//! request id, session tokens and the history they record.

use super::*;
use crate::options::FaultPreset;
use rand::SeedableRng;
use replikv_core::{LogPosition, Version};

fn clients(count: usize) -> Clients {
    clients_retrying(count, 0)
}

fn clients_retrying(count: usize, unknown_retries_max: u32) -> Clients {
    let mut options = SimulationOptions::new(1, FaultPreset::None);
    options.clients = count;
    options.workload.unknown_retries_max = unknown_retries_max;
    Clients::new(&options, ChaCha8Rng::seed_from_u64(1))
}

/// Starts operations on client 0 until one is a write; returns its first send and
/// the full actions.
fn start_write(clients: &mut Clients, now: Instant) -> (Vec<ClientAction>, Ticket) {
    for _ in 0..100 {
        let actions = clients.start(0, now);
        let (ticket, _, _, request) = sent(&actions);
        if request.is_write() {
            return (actions, ticket);
        }
        clients.reply(ticket, success_for(&request), now).unwrap();
    }
    panic!("no write in 100 operations");
}

#[test]
fn an_unknown_write_is_retried_under_its_request_id_and_is_one_operation() {
    let at = Instant::from_millis;
    let mut clients = clients_retrying(1, 2);
    let (actions, first) = start_write(&mut clients, at(0));
    let (_, first_node, id, request) = sent(&actions);
    let operations_before = clients.history.operations.len();
    // The timeout fires: the same request id goes to another node, with a new
    // timeout; the stale first timeout is then ignored.
    let retry = clients.timeout(0, first.operation, at(500));
    let (second, second_node, second_id, second_request) = sent(&retry);
    assert_eq!((second_id, &second_request), (id, &request));
    assert_ne!(second_node, first_node);
    assert_eq!(second.attempt, 2);
    assert!(clients.timeout(0, first.operation, at(600)).is_empty());
    // An indeterminate answer retries once more; then a certain failure of the
    // latest attempt cannot make the operation `fail`.
    let unknown = Reply::Failed(Error::Indeterminate("leadership lost".into()));
    let third = sent(&clients.reply(second, unknown.clone(), at(700)).unwrap()).0;
    let refused = Reply::Failed(Error::Unavailable("no quorum".into()));
    clients.reply(third, refused, at(800)).unwrap();
    let operation = &clients.history.operations[operations_before];
    assert_eq!(operation.kind, OperationType::Info);
    assert_eq!(operation.invoke, 0, "invoked with the first attempt");
    assert_eq!(clients.stats().unknown_retries, 2);
    // A late success of an earlier attempt acknowledges the operation.
    let (actions, first) = start_write(&mut clients, at(900));
    let written = success_for(&sent(&actions).3);
    let retry = clients.timeout(0, first.operation, at(1400));
    let (second, ..) = sent(&retry);
    clients.reply(first, written.clone(), at(1450)).unwrap();
    let last = clients.history.operations.last().unwrap();
    assert_eq!(
        (last.kind, last.complete),
        (OperationType::Ok, Some(1_450_000_000))
    );
    assert!(clients.reply(second, written, at(1460)).unwrap().is_empty());
    // Out of retries, a timeout records `info`.
    let (_, first) = start_write(&mut clients, at(2000));
    let second = sent(&clients.timeout(0, first.operation, at(2500))).0;
    let third = sent(&clients.timeout(0, second.operation, at(3000))).0;
    assert_eq!(clients.timeout(0, third.operation, at(3500)).len(), 1);
    assert_eq!(
        clients.history.operations.last().unwrap().kind,
        OperationType::Info
    );
}

fn sent(actions: &[ClientAction]) -> (Ticket, NodeId, RequestId, Request) {
    match &actions[0] {
        ClientAction::Send {
            ticket,
            node,
            request_id,
            request,
            ..
        } => (*ticket, *node, *request_id, request.clone()),
        other => panic!("expected a send, got {other:?}"),
    }
}

fn success_for(request: &Request) -> Reply {
    match request {
        Request::Get { .. } => Reply::Read {
            value: Some(Value::new("7").unwrap()),
            version: Version(1),
            position: LogPosition::ZERO,
        },
        Request::Put { .. } | Request::Delete { .. } => Reply::Written {
            version: Version(1),
            position: LogPosition::ZERO,
        },
        Request::CompareAndSet { .. } | Request::CompareAndSetVersion { .. } => {
            Reply::CompareAndSet {
                swapped: true,
                version: Version(1),
                position: LogPosition::ZERO,
            }
        }
        other => panic!("the workload never sends {other:?}"),
    }
}

#[test]
fn replies_become_ok_fail_and_info_with_a_new_process_after_info() {
    let mut clients = clients(1);
    let at = Instant::from_millis;
    let (ticket, _, id, request) = sent(&clients.start(0, at(0)));
    assert_eq!(id.client, ClientId(0));
    clients.reply(ticket, success_for(&request), at(1)).unwrap();
    let (ticket, _, _, _) = sent(&clients.start(0, at(2)));
    let refused = Reply::Failed(Error::Unavailable("no quorum".into()));
    clients.reply(ticket, refused, at(3)).unwrap();
    let (ticket, _, _, _) = sent(&clients.start(0, at(4)));
    let unknown = Reply::Failed(Error::Indeterminate("lost leadership".into()));
    clients.reply(ticket, unknown, at(5)).unwrap();
    let (_, _, id, _) = sent(&clients.start(0, at(6)));
    assert_eq!(
        id.client,
        ClientId(1),
        "info moves the client to a new process"
    );
    let (history, stats) = clients.finish();
    let kinds: Vec<OperationType> = history.operations.iter().map(|o| o.kind).collect();
    use OperationType::{Fail, Info, Ok};
    assert_eq!(kinds, [Ok, Fail, Info, Info]);
    assert_eq!(history.operations[3].complete, None);
    assert_eq!(history.operations[3].process, 1);
    assert_eq!(
        (
            stats.operations_ok,
            stats.operations_failed,
            stats.operations_unknown
        ),
        (1, 1, 2)
    );
}

#[test]
fn redirects_follow_hints_and_timeouts_ignore_late_replies() {
    let mut clients = clients(1);
    let at = Instant::from_millis;
    let actions = clients.start(0, at(0));
    let (ticket, _, id, request) = sent(&actions);
    let hint = Reply::Failed(Error::NotLeader {
        leader: Some(NodeId(2)),
    });
    let retry = clients.reply(ticket, hint, at(1)).unwrap();
    let (second, node, second_id, _) = sent(&retry);
    assert_eq!((node, second_id, second.attempt), (NodeId(2), id, 2));
    assert!(
        clients
            .reply(ticket, success_for(&request), at(2))
            .unwrap()
            .is_empty()
    );
    let ClientAction::Timeout {
        operation, at: due, ..
    } = actions[1]
    else {
        panic!("expected a timeout")
    };
    assert_eq!(due, at(500));
    assert_eq!(clients.timeout(0, operation, due).len(), 1);
    assert!(
        clients
            .reply(second, success_for(&request), at(501))
            .unwrap()
            .is_empty()
    );
    assert_eq!(clients.stats().late_replies, 2);
    let (history, _) = clients.finish();
    assert_eq!(history.operations.len(), 1);
    assert_eq!(history.operations[0].kind, OperationType::Info);
}

#[test]
fn a_mismatched_reply_is_an_error_and_values_are_unique() {
    let mut clients = clients(3);
    let mut written = std::collections::BTreeSet::new();
    for round in 0..200u64 {
        let client = (round % 3) as usize;
        let (ticket, _, _, request) = sent(&clients.start(client, Instant::from_millis(round)));
        if let Request::Put { value, .. }
        | Request::CompareAndSet { new: value, .. }
        | Request::CompareAndSetVersion { new: value, .. } = &request
        {
            assert!(written.insert(value.clone()), "written values are unique");
        }
        let wrong = match request {
            Request::Get { .. } => Reply::Written {
                version: Version(1),
                position: LogPosition::ZERO,
            },
            _ => Reply::Read {
                value: None,
                version: Version(0),
                position: LogPosition::ZERO,
            },
        };
        assert!(
            clients
                .reply(ticket, wrong, Instant::from_millis(round))
                .is_err()
        );
        let due = Instant::from_millis(round + 500);
        assert_eq!(clients.timeout(client, ticket.operation, due).len(), 1);
    }
    assert!(written.len() > 50);
}

/// The sweeps really exercise retries: under crashes and partitions some writes time
/// out and are retried under their request id on raft-majority (and the runs pass),
/// while a model that does not deduplicate is never retried.
#[test]
fn raft_runs_retry_unknown_writes_and_pass() {
    use crate::models::Model;
    let mut retried = 0;
    for seed in 1..=3 {
        let mut options = SimulationOptions::new(seed, FaultPreset::Everything);
        options.duration = std::time::Duration::from_secs(5);
        let report = Model::RaftMajority.simulate(&options);
        assert!(report.passed(), "seed {seed}: {:?}", report.failure);
        retried += report.stats.clients.unknown_retries;
        let register = Model::Register.simulate(&options);
        assert_eq!(register.stats.clients.unknown_retries, 0);
    }
    assert!(retried > 0, "no write was retried in three faulty runs");
}

#[test]
fn session_reads_carry_the_highest_position_seen_across_processes() {
    let mut options = SimulationOptions::new(1, FaultPreset::None);
    options.clients = 1;
    options.workload.reads = ReadMode::Session;
    options.workload.read_weight = 1;
    // An unknown outcome must end the operation here (no retry under the same id).
    options.workload.unknown_retries_max = 0;
    let mut clients = Clients::new(&options, ChaCha8Rng::seed_from_u64(5));
    let mut expected = LogPosition::ZERO;
    let mut sessions_seen = 0;
    for round in 0..200u64 {
        let at = Instant::from_millis(round);
        let (ticket, _, id, request) = sent(&clients.start(0, at));
        if let Request::Get {
            consistency: ReadConsistency::Session { token },
            ..
        } = &request
        {
            assert_eq!(*token, expected, "round {round}");
            sessions_seen += 1;
        }
        if round % 7 == 3 {
            // An unknown outcome: a new process, same token.
            let unknown = Reply::Failed(Error::Indeterminate("lost".into()));
            clients.reply(ticket, unknown, at).unwrap();
            assert_ne!(sent(&clients.start(0, at)).2.client, id.client);
            let deadline = at + options.workload.timeout;
            clients.timeout(0, ticket.operation + 1, deadline);
            continue;
        }
        // Positions go up and down: the token keeps the highest.
        let position = LogPosition::new(1 + round % 3, round * 5 % 17);
        let reply = match success_for(&request) {
            Reply::Read { value, version, .. } => Reply::Read {
                value,
                version,
                position,
            },
            Reply::Written { version, .. } => Reply::Written { version, position },
            Reply::CompareAndSet {
                swapped, version, ..
            } => Reply::CompareAndSet {
                swapped,
                version,
                position,
            },
            Reply::Failed(error) => Reply::Failed(error),
            other => panic!("the workload never gets {other:?}"),
        };
        clients.reply(ticket, reply, at).unwrap();
        expected = expected.max(position);
    }
    assert!(sessions_seen > 20, "{sessions_seen} session reads");
}

#[test]
fn values_map_to_json() {
    assert_eq!(value_to_json(&Value::new("42").unwrap()), Json::from(42));
    assert_eq!(value_to_json(&Value::new("x").unwrap()), Json::from("x"));
}
