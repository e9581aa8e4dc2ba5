//! The peer handshake: who is calling, for which cluster, and can it prove membership.
//!
//! Before any replication message, the connecting node sends [`Handshake::Hello`]: a
//! magic number (so that a stray client, an HTTP probe or a Redis client on the wrong
//! port is recognised at once), the protocol version, the cluster name, its own id and
//! the id it believes it is calling. The acceptor answers [`Handshake::Challenge`] with
//! a fresh random nonce; the caller answers [`Handshake::Proof`]: HMAC-SHA256, keyed with
//! the shared cluster secret, over a domain label, the nonce, the cluster name and both
//! ids. The acceptor checks everything and answers [`Handshake::Welcome`] or
//! [`Handshake::Rejected`] with a reason, which both sides log before closing. A wrong
//! magic, version, cluster, addressee, unknown sender or bad proof closes the
//! connection.
//!
//! The nonce makes a recorded proof useless on another connection. Without a configured
//! secret the proof is empty and not checked (a development cluster on loopback); with
//! one, a process that does not know it cannot inject messages. What this does **not**
//! give yet: the caller does not authenticate the acceptor (a peer impostor can receive
//! the messages sent to it), and nothing is encrypted; mutual TLS is the later step.

use hmac::{Hmac, KeyInit, Mac};
use replikv_core::NodeId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The first field of every hello: "replikv" and a zero byte, as a big-endian u64.
pub const PROTOCOL_MAGIC: u64 = u64::from_be_bytes(*b"replikv\0");

/// The peer protocol's version; a peer with another version is refused. 2: log entries
/// carry the leader's wall-clock stamp and snapshot entries an expiry time (key expiry),
/// which a version-1 node cannot read: a mixed cluster is refused at connect rather than
/// failing on the first stamped entry.
pub const PROTOCOL_VERSION: u32 = 2;

/// Longest accepted cluster name, in bytes.
pub const CLUSTER_NAME_SIZE_MAX_BYTES: usize = 64;

/// Largest handshake frame, in bytes.
pub const HANDSHAKE_FRAME_SIZE_MAX_BYTES: usize = 1024;

const PROOF_LABEL: &[u8] = b"replikv peer handshake v1";

/// The messages of the handshake, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Handshake {
    Hello {
        magic: u64,
        version: u32,
        cluster: String,
        from: NodeId,
        to: NodeId,
    },
    Challenge {
        nonce: [u8; 32],
    },
    Proof {
        mac: Vec<u8>,
    },
    Welcome,
    Rejected {
        reason: String,
    },
}

/// The cluster's identity and its optional shared secret.
#[derive(Clone)]
pub struct Authenticator {
    cluster: String,
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("cluster", &self.cluster)
            .field("secret", &self.secret.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Authenticator {
    #[must_use]
    pub fn new(cluster: String, secret: Option<Vec<u8>>) -> Authenticator {
        Authenticator { cluster, secret }
    }

    #[must_use]
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The caller's hello.
    #[must_use]
    pub fn hello(&self, from: NodeId, to: NodeId) -> Handshake {
        Handshake::Hello {
            magic: PROTOCOL_MAGIC,
            version: PROTOCOL_VERSION,
            cluster: self.cluster.clone(),
            from,
            to,
        }
    }

    /// The acceptor's check of a hello: the caller's id, or why it is refused.
    pub fn check_hello(
        &self,
        hello: &Handshake,
        own_id: NodeId,
        known_peers: &[NodeId],
    ) -> Result<NodeId, String> {
        let Handshake::Hello {
            magic,
            version,
            cluster,
            from,
            to,
        } = hello
        else {
            return Err("expected a hello".into());
        };
        if *magic != PROTOCOL_MAGIC {
            return Err("not a replikv peer (wrong magic)".into());
        }
        if *version != PROTOCOL_VERSION {
            return Err(format!(
                "protocol version {version}, this node speaks {PROTOCOL_VERSION}"
            ));
        }
        if *cluster != self.cluster {
            return Err(format!(
                "cluster {cluster:?}, this node belongs to {:?}",
                self.cluster
            ));
        }
        if *to != own_id {
            return Err(format!("addressed to {to}, this is {own_id}"));
        }
        if !known_peers.contains(from) {
            return Err(format!("{from} is not a member of this cluster"));
        }
        Ok(*from)
    }

    /// The proof a caller `from` sends `to` for `nonce`: empty without a secret.
    #[must_use]
    pub fn proof(&self, nonce: &[u8; 32], from: NodeId, to: NodeId) -> Vec<u8> {
        match &self.secret {
            None => Vec::new(),
            Some(secret) => self
                .mac(secret, nonce, from, to)
                .finalize()
                .into_bytes()
                .to_vec(),
        }
    }

    /// Whether `proof` is right; constant-time comparison.
    #[must_use]
    pub fn verify(&self, proof: &[u8], nonce: &[u8; 32], from: NodeId, to: NodeId) -> bool {
        match &self.secret {
            None => true,
            Some(secret) => self
                .mac(secret, nonce, from, to)
                .verify_slice(proof)
                .is_ok(),
        }
    }

    fn mac(&self, secret: &[u8], nonce: &[u8; 32], from: NodeId, to: NodeId) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .expect("HMAC accepts keys of any length");
        mac.update(PROOF_LABEL);
        mac.update(nonce);
        mac.update(
            &u64::try_from(self.cluster.len())
                .unwrap_or(u64::MAX)
                .to_be_bytes(),
        );
        mac.update(self.cluster.as_bytes());
        mac.update(&from.0.to_be_bytes());
        mac.update(&to.0.to_be_bytes());
        mac
    }
}

/// A fresh random nonce from the operating system's generator.
#[must_use]
pub fn fresh_nonce() -> [u8; 32] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(cluster: &str, from: u64, to: u64) -> Handshake {
        Authenticator::new(cluster.into(), None).hello(NodeId(from), NodeId(to))
    }

    #[test]
    fn hellos_are_checked_field_by_field() {
        let acceptor = Authenticator::new("c".into(), None);
        let peers = [NodeId(1), NodeId(3)];
        assert_eq!(
            acceptor.check_hello(&hello("c", 1, 2), NodeId(2), &peers),
            Ok(NodeId(1))
        );
        let refusals = [
            hello("other", 1, 2),
            hello("c", 1, 5),
            hello("c", 9, 2),
            Handshake::Welcome,
            Handshake::Hello {
                magic: 7,
                version: PROTOCOL_VERSION,
                cluster: "c".into(),
                from: NodeId(1),
                to: NodeId(2),
            },
            Handshake::Hello {
                magic: PROTOCOL_MAGIC,
                version: PROTOCOL_VERSION + 1,
                cluster: "c".into(),
                from: NodeId(1),
                to: NodeId(2),
            },
        ];
        for refused in refusals {
            assert!(
                acceptor.check_hello(&refused, NodeId(2), &peers).is_err(),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn proofs_need_the_secret_and_the_nonce() {
        let secret = Authenticator::new("c".into(), Some(b"s3cret".to_vec()));
        let wrong = Authenticator::new("c".into(), Some(b"guess".to_vec()));
        let none = Authenticator::new("c".into(), None);
        let nonce = fresh_nonce();
        let proof = secret.proof(&nonce, NodeId(1), NodeId(2));
        assert!(secret.verify(&proof, &nonce, NodeId(1), NodeId(2)));
        assert!(!secret.verify(&proof, &fresh_nonce(), NodeId(1), NodeId(2)));
        assert!(!secret.verify(&proof, &nonce, NodeId(3), NodeId(2)));
        let guessed = wrong.proof(&nonce, NodeId(1), NodeId(2));
        assert!(!secret.verify(&guessed, &nonce, NodeId(1), NodeId(2)));
        assert!(!secret.verify(
            &none.proof(&nonce, NodeId(1), NodeId(2)),
            &nonce,
            NodeId(1),
            NodeId(2)
        ));
        assert!(none.verify(&[], &nonce, NodeId(1), NodeId(2)));
    }
}
