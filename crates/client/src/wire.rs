//! The HTTP API's wire format as this client reads and writes it: header names, how
//! positions and versions are spelled, and what each status code means for a retry.
//!
//! Kept free of I/O so that every rule is unit-tested. The server side of the same
//! format is `replikv_server::http` (its module documentation is the reference).
//!
//! A response is classified into an [`Attempt`]: `Done` (a definite answer, success or
//! a refusal such as 404 or 409 that the operation interprets), `Invalid` (400: stop,
//! nothing applied), `Retry` (try again, maybe elsewhere), and for `Retry` whether this
//! attempt may have been applied (504 unknown outcome, 500 storage failure) or certainly
//! was not (503 unavailable or not the leader, 429 overloaded).

use replikv_core::LogPosition;

/// Header carrying the client's identity on writes.
pub const CLIENT_HEADER: &str = "x-replikv-client";
/// Header carrying the request's sequence number; a retry repeats it.
pub const SEQUENCE_HEADER: &str = "x-replikv-sequence";
/// Header naming a read's consistency level.
pub const CONSISTENCY_HEADER: &str = "x-replikv-consistency";
/// Header carrying the session token on session reads.
pub const SESSION_HEADER: &str = "x-replikv-session";
/// Response header: the key's version.
pub const VERSION_HEADER: &str = "x-replikv-version";
/// Response header: the log position the answer was read or written at.
pub const POSITION_HEADER: &str = "x-replikv-position";

/// How fresh a read must be (the server's `ReadConsistency`, without the token: the
/// client supplies the session token itself).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// Reflects every write acknowledged before the read began (sent to the leader).
    #[default]
    Linearizable,
    /// Linearizable under the leader's clock-drift assumption, without a round trip to
    /// the followers (sent to the leader).
    Lease,
    /// Whatever the node that answers has applied: possibly stale (any node).
    Follower,
    /// Read-your-writes and monotonic reads: the answering node waits until it has
    /// applied the highest position this client has seen (any node).
    Session,
}

impl Consistency {
    /// The value of the consistency header.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Linearizable => "linearizable",
            Consistency::Lease => "lease",
            Consistency::Follower => "follower",
            Consistency::Session => "session",
        }
    }

    /// Whether only the leader can serve it (so the client sends it there).
    #[must_use]
    pub fn needs_leader(self) -> bool {
        matches!(self, Consistency::Linearizable | Consistency::Lease)
    }
}

impl std::str::FromStr for Consistency {
    type Err = String;
    fn from_str(text: &str) -> Result<Consistency, String> {
        match text {
            "linearizable" => Ok(Consistency::Linearizable),
            "lease" => Ok(Consistency::Lease),
            "follower" => Ok(Consistency::Follower),
            "session" => Ok(Consistency::Session),
            other => Err(format!(
                "{other:?} is not linearizable, lease, follower or session"
            )),
        }
    }
}

/// Parses `index@term`, the form the server prints positions in.
#[must_use]
pub fn parse_position(text: &str) -> Option<LogPosition> {
    let (index, term) = text.split_once('@')?;
    Some(LogPosition::new(term.parse().ok()?, index.parse().ok()?))
}

/// What one HTTP answer means for the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A definite answer; the operation reads the status (200, 404, 409).
    Done,
    /// 400 (and 413, a body over the server's limit; 401, a missing or wrong password):
    /// refused, nothing applied.
    Invalid,
    /// Try again. `maybe_applied`: this attempt may have taken effect.
    Retry { maybe_applied: bool },
}

/// Classifies an HTTP status code; see [`Attempt`].
#[must_use]
pub fn classify(status: u16) -> Attempt {
    match status {
        200 | 404 | 409 => Attempt::Done,
        // 401: the cluster wants a (different) password; refused before anything ran.
        400 | 401 | 413 | 414 | 431 => Attempt::Invalid,
        429 | 503 => Attempt::Retry {
            maybe_applied: false,
        },
        // 504: unknown outcome; 500: the node's storage failed mid-request; anything
        // else is unexpected, so assume the worst.
        _ => Attempt::Retry {
            maybe_applied: true,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_as_the_server_prints_them() {
        let position = LogPosition::new(3, 42);
        assert_eq!(parse_position(&position.to_string()), Some(position));
        assert_eq!(parse_position("0@0"), Some(LogPosition::ZERO));
        for bad in ["", "42", "a@b", "1@", "@1", "1@2@3", "-1@2"] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }

    #[test]
    fn consistency_names_round_trip() {
        for consistency in [
            Consistency::Linearizable,
            Consistency::Lease,
            Consistency::Follower,
            Consistency::Session,
        ] {
            assert_eq!(consistency.as_str().parse(), Ok(consistency));
        }
        assert!("eventual".parse::<Consistency>().is_err());
        assert!(Consistency::Linearizable.needs_leader());
        assert!(!Consistency::Session.needs_leader());
    }

    #[test]
    fn statuses_classify_by_what_a_retry_may_assume() {
        let cases = [
            (200, Attempt::Done),
            (404, Attempt::Done),
            (409, Attempt::Done),
            (400, Attempt::Invalid),
            (401, Attempt::Invalid),
            (413, Attempt::Invalid),
            (
                429,
                Attempt::Retry {
                    maybe_applied: false,
                },
            ),
            (
                503,
                Attempt::Retry {
                    maybe_applied: false,
                },
            ),
            (
                504,
                Attempt::Retry {
                    maybe_applied: true,
                },
            ),
            (
                500,
                Attempt::Retry {
                    maybe_applied: true,
                },
            ),
            (
                302,
                Attempt::Retry {
                    maybe_applied: true,
                },
            ),
        ];
        for (status, expected) in cases {
            assert_eq!(classify(status), expected, "{status}");
        }
    }
}
