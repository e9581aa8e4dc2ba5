//! The command table: a RESP command's name and arguments become a [`Response`].
//!
//! Dispatch is by upper-cased name; each command checks its arity first and answers
//! Redis's own error for a wrong one (`ERR wrong number of arguments for 'get'
//! command`), and an unknown command gets Redis's `ERR unknown command`. Keys and values
//! are checked against `replikv_core::limits` where bytes become [`Key`]s and
//! [`Value`]s, and against the server's configured (lower) limits when a request is
//! sent (`NodeHandle::check_sizes`; MSET checks every pair before writing any): an
//! oversized one is an error reply, the request is not attempted.
//! The connection-level commands (PING, HELLO, CLIENT, COMMAND, INFO...) are in
//! `admin.rs`; this file holds the key-value ones, whose semantics `session.rs`
//! explains.

use super::admin;
use super::codec::{Command, Response};
use super::session::{Session, error_response};
use bytes::Bytes;
use replikv_core::{Expiry, Key, Request, Value};

/// What the connection does after answering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    Close,
}

/// Every command name this server answers, for COMMAND COUNT / LIST.
pub const COMMAND_NAMES: &[&str] = &[
    "append",
    "auth",
    "cas",
    "client",
    "command",
    "decr",
    "decrby",
    "del",
    "echo",
    "exists",
    "expire",
    "expireat",
    "get",
    "hello",
    "incr",
    "incrby",
    "info",
    "mget",
    "mset",
    "persist",
    "pexpire",
    "pexpireat",
    "ping",
    "psetex",
    "pttl",
    "quit",
    "readconsistency",
    "select",
    "set",
    "setex",
    "strlen",
    "ttl",
    "wait",
];

/// The command's name as a metrics label: one of [`COMMAND_NAMES`] (or `config`), or
/// `other` for anything else, so that clients cannot grow the label set.
#[must_use]
pub fn metric_name(command: &Command) -> &'static str {
    let Some(name) = command.first() else {
        return "other";
    };
    if name.eq_ignore_ascii_case(b"config") {
        return "config";
    }
    COMMAND_NAMES
        .iter()
        .find(|known| name.eq_ignore_ascii_case(known.as_bytes()))
        .copied()
        .unwrap_or("other")
}

/// Runs one command.
pub async fn execute(session: &mut Session, command: Command) -> (Response, After) {
    let Some(name) = command.first() else {
        return (Response::error("empty command"), After::Continue);
    };
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let arguments = &command[1..];
    let allowed_before_auth = matches!(name.as_str(), "AUTH" | "HELLO" | "PING" | "QUIT");
    if !session.authenticated && !allowed_before_auth {
        let error = Response::Error("NOAUTH Authentication required.".into());
        return (error, After::Continue);
    }
    let response = match name.as_str() {
        "QUIT" => return (Response::ok(), After::Close),
        "GET" | "SET" | "DEL" | "EXISTS" | "MGET" | "MSET" | "APPEND" | "STRLEN" | "CAS" => {
            execute_data(session, &name, arguments).await
        }
        "INCR" | "DECR" | "INCRBY" | "DECRBY" => execute_counter(session, &name, arguments).await,
        "WAIT" => super::wait::execute(session, arguments).await,
        name if super::expiry::EXPIRY_COMMANDS.contains(&name) => {
            super::expiry::execute(session, name, arguments).await
        }
        _ => admin::execute(session, &name, arguments).await,
    };
    (response, After::Continue)
}

/// `ERR wrong number of arguments for 'name' command`.
#[must_use]
pub fn arity_error(name: &str) -> Response {
    Response::error(format!(
        "wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

pub(super) fn key(bytes: &Bytes) -> Result<Key, Response> {
    crate::peer::address_book::check_client_key(bytes).map_err(|error| error_response(&error))?;
    Key::new(bytes.to_vec()).map_err(|error| error_response(&error))
}

pub(super) fn value(bytes: &[u8]) -> Result<Value, Response> {
    Value::new(bytes.to_vec()).map_err(|error| error_response(&error))
}

fn bulk_or_null(value: Option<Value>) -> Response {
    value.map_or(Response::Null, |value| Response::bulk(value.into_bytes()))
}

async fn execute_data(session: &mut Session, name: &str, arguments: &[Bytes]) -> Response {
    match run_data(session, name, arguments).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run_data(
    session: &mut Session,
    name: &str,
    arguments: &[Bytes],
) -> Result<Response, Response> {
    let arity = |ok: bool| if ok { Ok(()) } else { Err(arity_error(name)) };
    match name {
        "GET" => {
            arity(arguments.len() == 1)?;
            let (found, _) = session.read(&key(&arguments[0])?, false).await?;
            Ok(bulk_or_null(found))
        }
        "SET" => {
            arity(arguments.len() >= 2)?;
            set(session, arguments).await
        }
        "DEL" | "EXISTS" => {
            arity(!arguments.is_empty())?;
            let mut count = 0;
            for argument in arguments {
                let key = key(argument)?;
                let present = if name == "DEL" {
                    session.delete(key).await?
                } else {
                    session.read(&key, false).await?.0.is_some()
                };
                count += i64::from(present);
            }
            Ok(Response::Integer(count))
        }
        "MGET" => {
            arity(!arguments.is_empty())?;
            let mut values = Vec::with_capacity(arguments.len());
            for argument in arguments {
                values.push(bulk_or_null(session.read(&key(argument)?, false).await?.0));
            }
            Ok(Response::Array(values))
        }
        "MSET" => {
            arity(!arguments.is_empty() && arguments.len().is_multiple_of(2))?;
            mset(session, arguments).await
        }
        "STRLEN" => {
            arity(arguments.len() == 1)?;
            let (found, _) = session.read(&key(&arguments[0])?, false).await?;
            let length = found.map_or(0, |value| value.as_bytes().len());
            Ok(Response::Integer(i64::try_from(length).unwrap_or(i64::MAX)))
        }
        "APPEND" => {
            arity(arguments.len() == 2)?;
            Ok(append(session, &key(&arguments[0])?, &arguments[1]).await)
        }
        "CAS" => {
            arity(arguments.len() == 3)?;
            let key = key(&arguments[0])?;
            let new = value(&arguments[2])?;
            check_put(session, &key, &new)?;
            Ok(session.compare_and_set(&key, &arguments[1], new).await)
        }
        _ => Err(Response::error(format!(
            "internal: {name} is not a data command"
        ))),
    }
}

/// Checks `key` and `value` against the server's configured limits before a
/// conditional command reads (which could answer without ever trying to write).
pub(super) fn check_put(session: &Session, key: &Key, value: &Value) -> Result<(), Response> {
    let request = Request::Put {
        key: key.clone(),
        value: value.clone(),
    };
    let node = session.keyspaces.default_group();
    node.check_sizes(&request)
        .map_err(|error| error_response(&error))
}

/// MSET: every pair checked first, then written key by key.
async fn mset(session: &mut Session, arguments: &[Bytes]) -> Result<Response, Response> {
    let pairs: Vec<(Key, Value)> = arguments
        .chunks_exact(2)
        .map(|pair| Ok((key(&pair[0])?, value(&pair[1])?)))
        .collect::<Result<_, Response>>()?;
    for (key, value) in &pairs {
        check_put(session, key, value)?;
    }
    for (key, value) in pairs {
        let response = session.put(key, value).await;
        if matches!(response, Response::Error(_)) {
            return Err(response);
        }
    }
    Ok(Response::ok())
}

/// The options of SET this server understands. `expiry` is `None` without any of
/// EX/PX/EXAT/PXAT/KEEPTTL (the write then clears the key's expiry, as in Redis).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SetOptions {
    only_if_absent: bool,
    only_if_present: bool,
    return_old: bool,
    expiry: Option<Expiry>,
}

fn parse_set_options(options: &[Bytes]) -> Result<SetOptions, Response> {
    let mut parsed = SetOptions::default();
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let option = option.to_ascii_uppercase();
        let expiry = match option.as_slice() {
            b"NX" => {
                parsed.only_if_absent = true;
                continue;
            }
            b"XX" => {
                parsed.only_if_present = true;
                continue;
            }
            b"GET" => {
                parsed.return_old = true;
                continue;
            }
            b"KEEPTTL" => Expiry::Keep,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" => {
                let argument = options
                    .next()
                    .ok_or_else(|| Response::error("syntax error"))?;
                super::expiry::set_option(&option, argument)?
            }
            _ => return Err(Response::error("syntax error")),
        };
        if parsed.expiry.replace(expiry).is_some() {
            return Err(Response::error("syntax error"));
        }
    }
    if parsed.only_if_absent && parsed.only_if_present {
        return Err(Response::error("syntax error"));
    }
    Ok(parsed)
}

async fn set(session: &mut Session, arguments: &[Bytes]) -> Result<Response, Response> {
    let key = key(&arguments[0])?;
    let new = value(&arguments[1])?;
    let options = parse_set_options(&arguments[2..])?;
    check_put(session, &key, &new)?;
    let plain = !(options.only_if_absent || options.only_if_present || options.return_old);
    match options.expiry {
        None if plain => return Ok(session.put(key, new).await),
        Some(expiry) if plain => {
            session.put_with_expiry(key, new, None, expiry).await?;
            return Ok(Response::ok());
        }
        _ => {}
    }
    let expiry = options.expiry.unwrap_or(Expiry::Clear);
    let response = session
        .read_modify_write_with(&key, Some(expiry), |current| {
            let old = || bulk_or_null(current.cloned());
            let refused = (options.only_if_absent && current.is_some())
                || (options.only_if_present && current.is_none());
            if refused {
                return Err(if options.return_old {
                    old()
                } else {
                    Response::Null
                });
            }
            let done = if options.return_old {
                old()
            } else {
                Response::ok()
            };
            Ok((new.clone(), done))
        })
        .await;
    Ok(response)
}

async fn append(session: &mut Session, key: &Key, suffix: &[u8]) -> Response {
    session
        .read_modify_write(key, |current| {
            let mut bytes = current
                .map(|value| value.as_bytes().to_vec())
                .unwrap_or_default();
            bytes.extend_from_slice(suffix);
            let length = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
            Ok((value(&bytes)?, Response::Integer(length)))
        })
        .await
}

async fn execute_counter(session: &mut Session, name: &str, arguments: &[Bytes]) -> Response {
    let by_argument = name.ends_with("BY");
    if arguments.len() != 1 + usize::from(by_argument) {
        return arity_error(name);
    }
    let key = match key(&arguments[0]) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let amount = if by_argument {
        match parse_integer(&arguments[1]) {
            Some(amount) => amount,
            None => return Response::error("value is not an integer or out of range"),
        }
    } else {
        1
    };
    let amount = if name.starts_with("DECR") {
        match amount.checked_neg() {
            Some(negated) => negated,
            None => return Response::error("decrement would overflow"),
        }
    } else {
        amount
    };
    session
        .read_modify_write(&key, |current| {
            let now = match current {
                None => 0,
                Some(value) => parse_integer(value.as_bytes())
                    .ok_or_else(|| Response::error("value is not an integer or out of range"))?,
            };
            let next = now
                .checked_add(amount)
                .ok_or_else(|| Response::error("increment or decrement would overflow"))?;
            Ok((value(next.to_string().as_bytes())?, Response::Integer(next)))
        })
        .await
}

/// Redis's integer syntax: optional minus, decimal digits, no spaces, fits in i64.
pub(super) fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.starts_with('+') || text.is_empty() || text.len() > 20 {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_redis_syntax() {
        assert_eq!(parse_integer(b"42"), Some(42));
        assert_eq!(parse_integer(b"-7"), Some(-7));
        for bad in [
            &b""[..],
            b"+1",
            b" 1",
            b"1.5",
            b"99999999999999999999",
            b"\xff",
        ] {
            assert_eq!(parse_integer(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn set_options_parse_and_refuse_what_is_unsupported() {
        let parse = |words: &[&'static str]| {
            let words: Vec<Bytes> = words.iter().map(|word| Bytes::from(*word)).collect();
            parse_set_options(&words)
        };
        assert_eq!(
            parse(&["nx", "GET"]),
            Ok(SetOptions {
                only_if_absent: true,
                only_if_present: false,
                return_old: true,
                expiry: None,
            })
        );
        assert!(parse(&["NX", "XX"]).is_err());
        assert_eq!(
            parse(&["xx", "px", "250"]).map(|options| options.expiry),
            Ok(Some(Expiry::AfterMs(250)))
        );
        assert_eq!(
            parse(&["KEEPTTL"]).map(|options| options.expiry),
            Ok(Some(Expiry::Keep))
        );
        assert!(parse(&["EX", "10", "PX", "5"]).is_err());
        assert!(parse(&["EX", "10", "KEEPTTL"]).is_err());
        assert!(parse(&["EX"]).is_err());
        assert!(parse(&["EX", "0"]).is_err());
        assert!(parse(&["BOGUS"]).is_err());
    }
}
