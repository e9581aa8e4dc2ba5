//! The expiry commands of the RESP API: `SET`'s expiry options, `SETEX`, `PSETEX`,
//! `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` (with Redis 7's `NX | XX | GT | LT`),
//! `TTL`, `PTTL` and `PERSIST`.
//!
//! Parsing follows Redis: times are integers, `SET`'s must be positive (`ERR invalid
//! expire time in 'set' command`), the `EXPIRE` family accepts zero and negative times
//! and then deletes the key, and a time too large for milliseconds is refused. A
//! relative time becomes [`Expiry::AfterMs`] and is resolved against the leader's stamp
//! of the write, so every replica stores the same expiry time; an absolute one becomes
//! [`Expiry::AtUnixMs`] (see `replikv_core::expiry` and the README's "Key expiry").
//! Each of these commands is one replicated write (or one read for `TTL`), so each is
//! atomic; `SET` with `NX`, `XX` or `GET` as well as an expiry runs the session's
//! read-then-write loop with the expiry on its conditional write.

use super::codec::Response;
use super::commands::{arity_error, parse_integer};
use super::session::Session;
use bytes::Bytes;
use replikv_core::{ExpireCondition, Expiry};

/// The command names this file serves.
pub const EXPIRY_COMMANDS: &[&str] = &[
    "SETEX",
    "PSETEX",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "TTL",
    "PTTL",
    "PERSIST",
];

fn invalid_time(command: &str) -> Response {
    Response::error(format!(
        "invalid expire time in '{}' command",
        command.to_ascii_lowercase()
    ))
}

/// A time argument in `unit_ms` milliseconds, as milliseconds (negative allowed).
fn time_ms(argument: &[u8], unit_ms: i64, command: &str) -> Result<i64, Response> {
    let number = parse_integer(argument)
        .ok_or_else(|| Response::error("value is not an integer or out of range"))?;
    number
        .checked_mul(unit_ms)
        .ok_or_else(|| invalid_time(command))
}

/// The expiry of `SET`'s option `option` with argument `argument`: EX, PX, EXAT, PXAT.
pub fn set_option(option: &[u8], argument: &[u8]) -> Result<Expiry, Response> {
    let (unit_ms, absolute) = match option {
        b"EX" => (1000, false),
        b"PX" => (1, false),
        b"EXAT" => (1000, true),
        _ => (1, true),
    };
    let time = time_ms(argument, unit_ms, "set")?;
    let time = u64::try_from(time)
        .ok()
        .filter(|time| *time > 0)
        .ok_or_else(|| invalid_time("set"))?;
    let expiry = if absolute {
        Expiry::AtUnixMs(time)
    } else {
        Expiry::AfterMs(time)
    };
    expiry.check().map_err(|_| invalid_time("set"))?;
    Ok(expiry)
}

/// Runs one of [`EXPIRY_COMMANDS`].
pub async fn execute(session: &mut Session, name: &str, arguments: &[Bytes]) -> Response {
    match run(session, name, arguments).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run(session: &mut Session, name: &str, arguments: &[Bytes]) -> Result<Response, Response> {
    let arity = |ok: bool| if ok { Ok(()) } else { Err(arity_error(name)) };
    match name {
        "SETEX" | "PSETEX" => {
            arity(arguments.len() == 3)?;
            let option: &[u8] = if name == "SETEX" { b"EX" } else { b"PX" };
            let expiry = set_option(option, &arguments[1]).map_err(|_| invalid_time(name))?;
            let key = super::commands::key(&arguments[0])?;
            let value = super::commands::value(&arguments[2])?;
            super::commands::check_put(session, &key, &value)?;
            session.put_with_expiry(key, value, None, expiry).await?;
            Ok(Response::ok())
        }
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" => {
            arity(arguments.len() == 2 || arguments.len() == 3)?;
            let key = super::commands::key(&arguments[0])?;
            let unit_ms = if name.starts_with('P') { 1 } else { 1000 };
            let time = time_ms(&arguments[1], unit_ms, name)?;
            let expiry = if name.ends_with("AT") || time <= 0 {
                // A time already past deletes the key, as in Redis.
                Expiry::AtUnixMs(u64::try_from(time).unwrap_or(0))
            } else {
                Expiry::AfterMs(u64::try_from(time).unwrap_or(0))
            };
            expiry.check().map_err(|_| invalid_time(name))?;
            let condition = match arguments.get(2).map(|word| word.to_ascii_uppercase()) {
                None => ExpireCondition::Always,
                Some(word) => match word.as_slice() {
                    b"NX" => ExpireCondition::IfNone,
                    b"XX" => ExpireCondition::IfSome,
                    b"GT" => ExpireCondition::IfLater,
                    b"LT" => ExpireCondition::IfEarlier,
                    _ => {
                        return Err(Response::error(format!(
                            "Unsupported option {}",
                            String::from_utf8_lossy(&word)
                        )));
                    }
                },
            };
            Ok(session.expire(key, expiry, condition).await)
        }
        "TTL" | "PTTL" => {
            arity(arguments.len() == 1)?;
            let key = super::commands::key(&arguments[0])?;
            Ok(session.time_to_live(key, name == "PTTL").await)
        }
        "PERSIST" => {
            arity(arguments.len() == 1)?;
            let key = super::commands::key(&arguments[0])?;
            Ok(session
                .expire(key, Expiry::Clear, ExpireCondition::IfSome)
                .await)
        }
        _ => Err(Response::error(format!(
            "internal: {name} is not an expiry command"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_options_follow_redis() {
        assert_eq!(set_option(b"EX", b"10"), Ok(Expiry::AfterMs(10_000)));
        assert_eq!(set_option(b"PX", b"10"), Ok(Expiry::AfterMs(10)));
        assert_eq!(set_option(b"EXAT", b"10"), Ok(Expiry::AtUnixMs(10_000)));
        assert_eq!(set_option(b"PXAT", b"10"), Ok(Expiry::AtUnixMs(10)));
        for bad in [&b"0"[..], b"-1", b"x", b"9223372036854775807"] {
            assert!(set_option(b"EX", bad).is_err(), "{bad:?}");
        }
    }
}
