//! The connection and server commands that make ordinary Redis tools work.
//!
//! redis-cli, redis-benchmark and client libraries send a few commands before any data
//! command: `HELLO` to pick the protocol version, `COMMAND DOCS` for hints, `CLIENT
//! SETINFO` to name the library, `SELECT 0`, `PING`. These are answered here, with what
//! a single-database Redis would answer, plus replikv's own: `INFO` (with a replication
//! section: role, leader, term, last, commit and applied positions, commit mode and
//! whether it is lossy, voters and learners, and on the leader each follower's matched
//! index, lag in entries and time since its last answer;
//! `INFO replication` or `INFO server` selects one) and
//! `AUTH [default] password` (when a client password is configured) and
//! `READCONSISTENCY linearizable|lease|follower|session` (this connection's read level;
//! without an argument it names the current one).

use super::codec::Response;
use super::commands::{COMMAND_NAMES, arity_error};
use super::session::{ReadLevel, Session};
use crate::node_loop::NodeStatus;
use bytes::Bytes;
use std::fmt::Write;

/// Runs a connection or server command (or answers that it is unknown).
pub async fn execute(session: &mut Session, name: &str, arguments: &[Bytes]) -> Response {
    match name {
        "PING" => match arguments {
            [] => Response::Simple("PONG".into()),
            [message] => Response::Bulk(message.clone()),
            _ => arity_error(name),
        },
        "ECHO" => match arguments {
            [message] => Response::Bulk(message.clone()),
            _ => arity_error(name),
        },
        "HELLO" => hello(session, arguments),
        "AUTH" => match arguments {
            [password] => authenticate(session, None, password),
            [user, password] => authenticate(session, Some(user), password),
            _ => arity_error(name),
        },
        "SELECT" => match arguments {
            [database] if database.as_ref() == b"0" => Response::ok(),
            [_] => Response::error("DB index is out of range (replikv has database 0 only)"),
            _ => arity_error(name),
        },
        "COMMAND" => command(arguments),
        "CLIENT" => client(session, arguments),
        "INFO" => info(session, arguments).await,
        // redis-benchmark asks for `save` and `appendonly`: replikv has no such settings.
        "CONFIG" => match arguments.first().map(|word| word.to_ascii_uppercase()) {
            Some(word) if word.as_slice() == b"GET" => Response::Map(Vec::new()),
            _ => Response::error("CONFIG supports GET only (and knows no Redis settings)"),
        },
        "READCONSISTENCY" => read_consistency(session, arguments),
        _ => unknown(name, arguments),
    }
}

fn unknown(name: &str, arguments: &[Bytes]) -> Response {
    let mut text = format!(
        "unknown command '{}', with args beginning with:",
        printable(name.as_bytes())
    );
    for argument in arguments.iter().take(8) {
        let _ = write!(text, " '{}'", printable(argument));
    }
    Response::error(text)
}

/// Bytes as text for an error line: invalid UTF-8 replaced, no line breaks, bounded.
fn printable(bytes: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(&bytes[..bytes.len().min(128)]).into();
    text.replace(['\r', '\n'], " ")
}

/// `AUTH [username] password`: the only user is `default`.
fn authenticate(session: &mut Session, user: Option<&Bytes>, password: &Bytes) -> Response {
    if !session.auth.required() {
        return Response::error(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        );
    }
    let user_is_default = user.is_none_or(|user| user.as_ref() == b"default");
    if user_is_default && session.auth.check(password) {
        session.authenticated = true;
        return Response::ok();
    }
    Response::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
}

fn hello(session: &mut Session, arguments: &[Bytes]) -> Response {
    let mut rest = arguments;
    let mut protocol = session.protocol;
    if let Some((version, tail)) = rest.split_first() {
        match version.as_ref() {
            b"2" => protocol = 2,
            b"3" => protocol = 3,
            _ => return Response::Error("NOPROTO unsupported protocol version".into()),
        }
        rest = tail;
    }
    let mut name = None;
    let mut credentials = None;
    while let Some((option, tail)) = rest.split_first() {
        match (option.to_ascii_uppercase().as_slice(), tail) {
            (b"AUTH", [user, password, ..]) => {
                credentials = Some((user.clone(), password.clone()));
                rest = &tail[2..];
            }
            (b"SETNAME", [new_name, ..]) => {
                name = Some(new_name.clone());
                rest = &tail[1..];
            }
            _ => return Response::error("syntax error in HELLO"),
        }
    }
    if let Some((user, password)) = credentials {
        let response = authenticate(session, Some(&user), &password);
        if matches!(response, Response::Error(_)) {
            return response;
        }
    } else if !session.authenticated {
        return Response::Error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time"
                .into(),
        );
    }
    session.protocol = protocol;
    if name.is_some() {
        session.name = name;
    }
    let text = |text: &str| Response::bulk(Bytes::copy_from_slice(text.as_bytes()));
    Response::Map(vec![
        (text("server"), text("replikv")),
        (text("version"), text(env!("CARGO_PKG_VERSION"))),
        (
            text("proto"),
            Response::Integer(i64::from(session.protocol)),
        ),
        (text("id"), Response::Integer(connection_id(session))),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), Response::Array(Vec::new())),
    ])
}

fn connection_id(session: &Session) -> i64 {
    i64::try_from(session.connection_id).unwrap_or(i64::MAX)
}

fn command(arguments: &[Bytes]) -> Response {
    let Some(subcommand) = arguments.first() else {
        return Response::Array(Vec::new());
    };
    match subcommand.to_ascii_uppercase().as_slice() {
        b"COUNT" => Response::Integer(i64::try_from(COMMAND_NAMES.len()).unwrap_or(0)),
        b"DOCS" => Response::Map(Vec::new()),
        b"INFO" => Response::Array(arguments[1..].iter().map(|_| Response::Null).collect()),
        b"LIST" => Response::Array(
            COMMAND_NAMES
                .iter()
                .map(|name| Response::bulk(Bytes::from_static(name.as_bytes())))
                .collect(),
        ),
        _ => Response::error(format!(
            "unknown subcommand '{}' of COMMAND",
            printable(subcommand)
        )),
    }
}

fn client(session: &mut Session, arguments: &[Bytes]) -> Response {
    let Some(subcommand) = arguments.first() else {
        return arity_error("client");
    };
    match (subcommand.to_ascii_uppercase().as_slice(), &arguments[1..]) {
        (b"ID", []) => Response::Integer(connection_id(session)),
        (b"GETNAME", []) => session.name.clone().map_or(Response::Null, Response::Bulk),
        (b"SETNAME", [name]) => {
            if name.iter().any(|byte| *byte <= b' ' || *byte > b'~') {
                return Response::error(
                    "Client names cannot contain spaces, newlines or special characters.",
                );
            }
            session.name = Some(name.clone());
            Response::ok()
        }
        (b"SETINFO", [_, _]) => Response::ok(),
        (b"ID" | b"GETNAME" | b"SETNAME" | b"SETINFO", _) => arity_error("client"),
        _ => Response::error(format!(
            "unknown subcommand '{}' of CLIENT",
            printable(subcommand)
        )),
    }
}

fn read_consistency(session: &mut Session, arguments: &[Bytes]) -> Response {
    match arguments {
        [] => Response::Simple(session.read_level.name().into()),
        [level] => match ReadLevel::parse(level) {
            Some(level) => {
                session.read_level = level;
                Response::ok()
            }
            None => {
                Response::error("read consistency must be linearizable, lease, follower or session")
            }
        },
        _ => arity_error("readconsistency"),
    }
}

async fn info(session: &Session, sections: &[Bytes]) -> Response {
    let node = session.keyspaces.default_group();
    match node.status().await {
        Some(status) => Response::Text(select_sections(&info_text(&status), sections)),
        None => Response::Error("UNAVAILABLE the node is stopped or overloaded".into()),
    }
}

/// The sections of INFO's text a client asked for (all of them for none, `all`,
/// `default` or `everything`; none for names this server does not have).
fn select_sections(text: &str, wanted: &[Bytes]) -> String {
    let wanted: Vec<String> = wanted
        .iter()
        .map(|name| String::from_utf8_lossy(name).to_ascii_lowercase())
        .collect();
    let everything = wanted.is_empty()
        || wanted
            .iter()
            .any(|name| matches!(name.as_str(), "all" | "default" | "everything"));
    if everything {
        return text.to_owned();
    }
    text.split("\r\n\r\n")
        .filter(|section| {
            let name = section.lines().next().unwrap_or_default();
            let name = name.trim_start_matches("# ").to_ascii_lowercase();
            wanted.contains(&name)
        })
        .collect::<Vec<_>>()
        .join("\r\n\r\n")
}

/// INFO's text: Redis's `# Section` and `field:value` lines.
#[must_use]
pub fn info_text(status: &NodeStatus) -> String {
    let mut text = String::new();
    let replication = &status.replication;
    let _ = write!(
        text,
        "# Server\r\nreplikv_version:{}\r\nnode_id:{}\r\n\r\n# Replication\r\n\
         role:{}\r\nleader_id:{}\r\nterm:{}\r\nlast_index:{}\r\ncommit_index:{}\r\n\
         applied_index:{}\r\ncommit_mode:{}\r\npipelined_fsync:{}\r\nwrites_discarded:{}\r\n\
         peer_messages_dropped:{}\r\nelections_started:{}\r\n",
        env!("CARGO_PKG_VERSION"),
        status.id.0,
        status.role,
        status.leader.map_or(0, |leader| leader.0),
        status.term.0,
        replication.last.index.0,
        status.commit.0,
        status.applied.0,
        status.commit_mode,
        u8::from(status.pipelined_fsync),
        status.writes_discarded,
        status.peer_messages_dropped,
        status.stats.elections_started,
    );
    let ids = |ids: &[replikv_core::NodeId]| {
        let ids: Vec<String> = ids.iter().map(|id| id.0.to_string()).collect();
        ids.join(",")
    };
    let _ = write!(
        text,
        "lossy:{}\r\nvoters:{}\r\nlearners:{}\r\nconnected_followers:{}\r\n",
        u8::from(replication.lossy),
        ids(&replication.voters),
        ids(&replication.learners),
        replication.followers.as_ref().map_or(0, Vec::len),
    );
    for follower in replication.followers.iter().flatten() {
        let since = follower.since_last_ack.map_or(-1, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        });
        let _ = write!(
            text,
            "follower_{}:voter={},matched={},lag_entries={},last_ack_ms_ago={}\r\n",
            follower.follower.0,
            u8::from(follower.voter),
            follower.matched.0,
            follower.lag_entries,
            since
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_sections_are_selected_by_name() {
        let text = "# Server\r\na:1\r\n\r\n# Replication\r\nb:2\r\n";
        let select = |names: &[&'static str]| {
            let names: Vec<Bytes> = names.iter().map(|name| Bytes::from(*name)).collect();
            select_sections(text, &names)
        };
        assert_eq!(select(&[]), text);
        assert_eq!(select(&["ALL"]), text);
        assert_eq!(select(&["replication"]), "# Replication\r\nb:2\r\n");
        assert_eq!(select(&["server"]), "# Server\r\na:1");
        assert_eq!(select(&["keyspace"]), "");
    }
}
