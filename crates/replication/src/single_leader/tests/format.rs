//! Compact, stable text for messages and replies in the script traces.

use crate::single_leader::message::{AppendResult, Command, Message, WireEntry};
use replikv_core::Reply;
use replikv_storage::store::StoreWrite;

pub(super) fn message(message: &Message) -> String {
    match message {
        Message::PreVote { term, last } => format!("PreVote {term} last={last}"),
        Message::PreVoteResponse { term, granted } => {
            format!("PreVoteResponse {term} {}", granted_word(*granted))
        }
        Message::Vote { term, last } => format!("Vote {term} last={last}"),
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
            };
            format!("AppendResponse {term} {result} read={read_sequence}")
        }
    }
}

fn granted_word(granted: bool) -> &'static str {
    if granted { "granted" } else { "rejected" }
}

fn entry(entry: &WireEntry) -> String {
    let command = match Command::decode(&entry.payload) {
        Some(Command::Noop) => "noop".to_owned(),
        Some(Command::Write(write)) => store_write(&write),
        None => "?".to_owned(),
    };
    format!("{}:{command}", entry.position)
}

fn store_write(write: &StoreWrite) -> String {
    match write {
        StoreWrite::Put { key, value } => format!("put({key}={value})"),
        StoreWrite::Delete { key } => format!("delete({key})"),
        StoreWrite::CompareAndSetValue { key, expected, new } => {
            let expected = expected
                .as_ref()
                .map_or("-".to_owned(), ToString::to_string);
            format!("cas({key}:{expected}->{new})")
        }
        StoreWrite::CompareAndSetVersion { key, expected, new } => {
            format!("casv({key}:v{}->{new})", expected.0)
        }
    }
}

pub(super) fn reply(reply: &Reply) -> String {
    match reply {
        Reply::Read { value, version } => match value {
            Some(value) => format!("read {value} v{}", version.0),
            None => format!("read absent v{}", version.0),
        },
        Reply::Written { version } => format!("written v{}", version.0),
        Reply::CompareAndSet { swapped, version } => {
            format!("cas swapped={swapped} v{}", version.0)
        }
        Reply::Failed(error) => format!("failed: {error}"),
    }
}
