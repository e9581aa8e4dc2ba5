//! Client authentication: the password clients must present, and its comparison.
//!
//! When `client_password` is configured, a RESP connection must authenticate (`AUTH`,
//! or `HELLO ... AUTH`) before anything but PING, HELLO, AUTH and QUIT, and every HTTP
//! request must carry `Authorization: Bearer <password>`. One shared password, like
//! Redis's `requirepass`: it keeps out whoever does not know it, nothing finer.
//!
//! The comparison must not tell an attacker, through its timing, how much of a guess
//! was right. Comparing bytes with `==` stops at the first difference, and its timing
//! leaks the length of the matching prefix (and a length check leaks the length). So
//! the password is never compared directly: at start-up the node draws a random key
//! and keeps HMAC-SHA256(key, password); a candidate is checked by computing
//! HMAC-SHA256(key, candidate) and comparing the two tags with the `hmac` crate's
//! constant-time `verify_slice`. The time then depends only on the candidate's length,
//! which the attacker already knows, never on the secret.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::Arc;

/// Longest accepted password.
pub const CLIENT_PASSWORD_SIZE_MAX_BYTES: usize = 4096;

/// The configured client password, or none; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ClientAuth {
    inner: Option<Arc<Keyed>>,
}

struct Keyed {
    key: [u8; 32],
    tag: Vec<u8>,
}

impl std::fmt::Debug for Keyed {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Keyed(..)")
    }
}

fn tag(key: &[u8; 32], bytes: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(bytes);
    mac
}

impl ClientAuth {
    /// Requires `password` if it is `Some`; no authentication otherwise.
    #[must_use]
    pub fn new(password: Option<&str>) -> ClientAuth {
        let inner = password.map(|password| {
            let key: [u8; 32] = rand::random();
            let tag = tag(&key, password.as_bytes())
                .finalize()
                .into_bytes()
                .to_vec();
            Arc::new(Keyed { key, tag })
        });
        ClientAuth { inner }
    }

    /// Whether clients must authenticate.
    #[must_use]
    pub fn required(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether `candidate` is the password (in time independent of the password). With
    /// no password configured nothing matches: there is nothing to authenticate with.
    #[must_use]
    pub fn check(&self, candidate: &[u8]) -> bool {
        self.inner
            .as_ref()
            .is_some_and(|keyed| tag(&keyed.key, candidate).verify_slice(&keyed.tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_password_matches() {
        let auth = ClientAuth::new(Some("hunter2"));
        assert!(auth.required());
        assert!(auth.check(b"hunter2"));
        for wrong in [&b""[..], b"hunter", b"hunter22", b"Hunter2", b"hunter2\0"] {
            assert!(!auth.check(wrong), "{wrong:?}");
        }
        let open = ClientAuth::new(None);
        assert!(!open.required());
        assert!(!open.check(b"hunter2"));
    }
}
