//! Compact, stable text for messages and replies in the script traces.

use crate::single_leader::message::{AppendResult, Command, Message, SnapshotResult, WireEntry};
use replikv_core::Reply;
use replikv_storage::store::StoreWrite;

pub(super) fn message(message: &Message) -> String {
    match message {
        Message::PreVote { term, last } => format!("PreVote {term} last={last}"),
        Message::PreVoteResponse { term, granted } => {
            format!("PreVoteResponse {term} {}", granted_word(*granted))
        }
        Message::Vote {
            term,
            last,
            transfer,
        } => {
            let transfer = if *transfer { " transfer" } else { "" };
            format!("Vote {term} last={last}{transfer}")
        }
        Message::TimeoutNow { term, last } => format!("TimeoutNow {term} last={last}"),
        Message::VoteResponse { term, granted } => {
            format!("VoteResponse {term} {}", granted_word(*granted))
        }
        Message::Append {
            term,
            previous,
            entries,
            commit,
            read_sequence,
        } => {
            let entries: Vec<String> = entries.iter().map(entry).collect();
            format!(
                "Append {term} prev={previous} [{}] commit={} read={read_sequence}",
                entries.join(" "),
                commit.0
            )
        }
        Message::AppendResponse {
            term,
            result,
            read_sequence,
        } => {
            let result = match result {
                AppendResult::Accepted { matched } => format!("accepted={}", matched.0),
                AppendResult::Rejected { next } => format!("rejected next={}", next.0),
                AppendResult::SnapshotNeeded => "snapshot-needed".to_owned(),
            };
            format!("AppendResponse {term} {result} read={read_sequence}")
        }
        Message::InstallSnapshot { .. } | Message::InstallSnapshotResponse { .. } => {
            snapshot_message(message)
        }
    }
}

fn snapshot_message(message: &Message) -> String {
    match message {
        Message::InstallSnapshot { term, chunk } => {
            let chunk = &chunk.0;
            let entries: Vec<String> = chunk
                .entries
                .iter()
                .map(|entry| {
                    let value = entry
                        .value
                        .as_ref()
                        .map_or("-".to_owned(), |value| text(value.as_bytes()));
                    format!(
                        "{}=v{}:{value}",
                        text(entry.key.as_bytes()),
                        entry.version.0
                    )
                })
                .collect();
            let after = chunk
                .after
                .as_ref()
                .map_or("-".to_owned(), |key| text(key.as_bytes()));
            let done = if chunk.done { " done" } else { "" };
            format!(
                "InstallSnapshot {term} at={} after={after} [{}]{done}",
                chunk.position,
                entries.join(" ")
            )
        }
        Message::InstallSnapshotResponse {
            term,
            position,
            result,
        } => {
            let result = match result {
                SnapshotResult::Resume { after } => {
                    let after = after
                        .as_ref()
                        .map_or("-".to_owned(), |key| text(key.as_bytes()));
                    format!("resume after={after}")
                }
                SnapshotResult::Installed => "installed".to_owned(),
            };
            format!("InstallSnapshotResponse {term} at={position} {result}")
        }
        _ => unreachable!("only snapshot messages"),
    }
}

fn granted_word(granted: bool) -> &'static str {
    if granted { "granted" } else { "rejected" }
}

fn entry(entry: &WireEntry) -> String {
    let command = match Command::decode(&entry.payload) {
        Ok(Command::Noop) => "noop".to_owned(),
        Ok(Command::Write {
            write,
            stamp_unix_ms: 0,
            ..
        }) => store_write(&write),
        // A stamp is shown only when a script set a wall clock.
        Ok(Command::Write {
            write,
            stamp_unix_ms,
            ..
        }) => format!("{}@{stamp_unix_ms}", store_write(&write)),
        Ok(Command::Membership { membership, .. }) => {
            format!(
                "config(voters {} learners {})",
                ids(&membership.voters),
                ids(&membership.learners)
            )
        }
        Err(_) => "?".to_owned(),
    };
    format!("{}:{command}", entry.position)
}

fn store_write(write: &StoreWrite) -> String {
    match write {
        StoreWrite::Put { key, value } => {
            format!("put({}={})", text(key.as_bytes()), text(value.as_bytes()))
        }
        StoreWrite::Delete { key } => format!("delete({})", text(key.as_bytes())),
        StoreWrite::CompareAndSetValue { key, expected, new } => {
            let expected = expected
                .as_ref()
                .map_or("-".to_owned(), |value| text(value.as_bytes()));
            let (key, new) = (text(key.as_bytes()), text(new.as_bytes()));
            format!("cas({key}:{expected}->{new})")
        }
        StoreWrite::CompareAndSetVersion { key, expected, new } => {
            let (key, new) = (text(key.as_bytes()), text(new.as_bytes()));
            format!("casv({key}:v{}->{new})", expected.0)
        }
        StoreWrite::PutWithExpiry { .. }
        | StoreWrite::Expire { .. }
        | StoreWrite::DeleteExpired { .. } => expiry_write(write),
        _ => lease_write(write),
    }
}

fn expiry(expiry: replikv_core::Expiry) -> String {
    match expiry {
        replikv_core::Expiry::Clear => "persist".to_owned(),
        replikv_core::Expiry::Keep => "keepttl".to_owned(),
        replikv_core::Expiry::AfterMs(after) => format!("px={after}"),
        replikv_core::Expiry::AtUnixMs(at) => format!("pxat={at}"),
    }
}

fn expiry_write(write: &StoreWrite) -> String {
    match write {
        StoreWrite::PutWithExpiry {
            key,
            value,
            expected_version,
            expiry: change,
        } => {
            let expected = expected_version.map_or(String::new(), |v| format!(" if v{}", v.0));
            let (key, value) = (text(key.as_bytes()), text(value.as_bytes()));
            format!("put({key}={value} {}{expected})", expiry(*change))
        }
        StoreWrite::Expire {
            key,
            expiry: change,
            condition,
        } => format!(
            "expire({} {} {condition:?})",
            text(key.as_bytes()),
            expiry(*change)
        ),
        StoreWrite::DeleteExpired {
            key,
            expires_at_unix_ms,
        } => format!(
            "delete-expired({} at={expires_at_unix_ms})",
            text(key.as_bytes())
        ),
        _ => unreachable!("only expiry writes"),
    }
}

fn lease_write(write: &StoreWrite) -> String {
    match write {
        StoreWrite::PutFenced {
            key,
            value,
            lease,
            token,
        } => format!(
            "put({}={} fenced {}#{token})",
            text(key.as_bytes()),
            text(value.as_bytes()),
            text(lease.as_bytes())
        ),
        StoreWrite::DeleteFenced { key, lease, token } => format!(
            "delete({} fenced {}#{token})",
            text(key.as_bytes()),
            text(lease.as_bytes())
        ),
        StoreWrite::AcquireLease {
            name,
            holder,
            ttl_ms,
        } => format!("acquire({} {holder} {ttl_ms}ms)", text(name.as_bytes())),
        StoreWrite::RenewLease {
            name,
            holder,
            token,
        } => format!("renew({} {holder} #{token})", text(name.as_bytes())),
        StoreWrite::ReleaseLease {
            name,
            holder,
            token,
        } => format!("release({} {holder} #{token})", text(name.as_bytes())),
        StoreWrite::ExpireLease {
            name,
            token,
            renewed_at,
        } => format!(
            "expire({} #{token} renewed@{})",
            text(name.as_bytes()),
            renewed_at.0
        ),
        _ => unreachable!("data writes are formatted by store_write"),
    }
}

pub(super) fn reply(reply: &Reply) -> String {
    match reply {
        Reply::Read { value, version, .. } => match value {
            Some(value) => format!("read {} v{}", text(value.as_bytes()), version.0),
            None => format!("read absent v{}", version.0),
        },
        Reply::Written { version, .. } => format!("written v{}", version.0),
        Reply::CompareAndSet {
            swapped, version, ..
        } => {
            format!("cas swapped={swapped} v{}", version.0)
        }
        Reply::Lease {
            granted,
            holder,
            token,
            ..
        } => {
            let holder = holder.map_or("nobody".to_owned(), |holder| holder.to_string());
            format!("lease granted={granted} holder={holder} token={token}")
        }
        Reply::LeadershipTransferred { leader, term } => {
            format!("leadership transferred: {leader} leads {term}")
        }
        Reply::Membership {
            voters, learners, ..
        } => format!(
            "membership voters {} learners {}",
            ids(voters),
            ids(learners)
        ),
        Reply::Failed(error) => format!("failed: {error}"),
        Reply::ReadWithExpiry {
            value,
            version,
            expires_at_unix_ms,
            ..
        } => {
            let value = value
                .as_ref()
                .map_or("absent".to_owned(), |value| text(value.as_bytes()));
            let expires = expires_at_unix_ms.map_or("never".to_owned(), |at| at.to_string());
            format!("read {value} v{} expires={expires}", version.0)
        }
    }
}

/// Node ids as `[1,2,3]` (`[]` when empty).
pub(super) fn ids(ids: &[replikv_core::NodeId]) -> String {
    let names: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
    format!("[{}]", names.join(","))
}

/// Bytes as text, abbreviated past `TEXT_SHOWN_MAX_BYTES` to their start and their length
/// (a 1 MiB value would drown a trace).
fn text(bytes: &[u8]) -> String {
    const TEXT_SHOWN_MAX_BYTES: usize = 16;
    if bytes.len() <= TEXT_SHOWN_MAX_BYTES {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let start = String::from_utf8_lossy(&bytes[..8]);
    format!("{start}…({} bytes)", bytes.len())
}
