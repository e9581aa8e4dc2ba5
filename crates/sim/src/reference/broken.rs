//! Deliberately broken models: the checkers must catch every one of them.
//!
//! - [`LocalOnly`] "replicates to nobody": every node serves reads and writes from its own
//!   memory, as if it were the leader. Clients that reach different nodes see different
//!   registers (not linearizable), the replicas never converge, and a crash forgets
//!   everything the node acknowledged.
//! - [`ack_before_sync`] builds the correct register of [`crate::reference::register`]
//!   with one change: it replies as soon as a request is applied in memory, before the
//!   group-commit sync. Without crashes it is indistinguishable from the correct one; a
//!   crash inside a batch loses writes that clients were told had happened.
//!
//! A harness in which these pass is a harness that cannot find bugs.

use crate::node::NodeSetup;
use crate::reference::NoMessage;
use crate::reference::register::{Acknowledgement, Register};
use replikv_core::error::Result;
use replikv_core::replica::{NoObserver, Output, Replica};
use replikv_core::{Instant, Key, LogPosition, NodeId, Reply, Request, RequestId, Value, Version};
use std::collections::{BTreeMap, VecDeque};

/// The register that acknowledges before it syncs.
pub fn ack_before_sync(setup: NodeSetup) -> Result<Register> {
    Register::open_with(setup, Acknowledgement::BeforeSync)
}

/// Every node a leader of its own memory; see the module documentation.
#[derive(Debug)]
pub struct LocalOnly {
    id: NodeId,
    entries: BTreeMap<Key, (Option<Value>, Version)>,
    outputs: VecDeque<Output<NoMessage>>,
}

impl LocalOnly {
    /// A node with empty memory (whatever it knew before a crash is gone).
    pub fn open(setup: NodeSetup) -> Result<LocalOnly> {
        Ok(LocalOnly {
            id: setup.id,
            entries: BTreeMap::new(),
            outputs: VecDeque::new(),
        })
    }

    fn write(&mut self, key: Key, value: Option<Value>) -> Version {
        let entry = self.entries.entry(key).or_default();
        entry.0 = value;
        entry.1 = Version(entry.1.0 + 1);
        entry.1
    }
}

impl Replica for LocalOnly {
    type Message = NoMessage;
    type Observer = NoObserver;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_message(&mut self, _now: Instant, _from: NodeId, message: NoMessage) -> Result<()> {
        match message {}
    }

    fn handle_request(
        &mut self,
        _now: Instant,
        request_id: RequestId,
        request: Request,
    ) -> Result<()> {
        let Some(key) = request.key() else {
            let error = replikv_core::Error::InvalidInput(
                "administrative requests (membership, leadership) are not served by this reference model".into(),
            );
            self.outputs.push_back(Output::Reply {
                request_id,
                reply: Reply::Failed(error),
            });
            return Ok(());
        };
        let (current, version) = self.entries.get(key).cloned().unwrap_or_default();
        let reply = match request {
            Request::Get { .. } => Reply::Read {
                value: current,
                version,
                position: LogPosition::ZERO,
            },
            Request::Put { key, value } => Reply::Written {
                version: self.write(key, Some(value)),
                position: LogPosition::ZERO,
            },
            Request::Delete { key } => Reply::Written {
                version: self.write(key, None),
                position: LogPosition::ZERO,
            },
            Request::AcquireLease { .. }
            | Request::RenewLease { .. }
            | Request::ReleaseLease { .. }
            | Request::PutFenced { .. }
            | Request::DeleteFenced { .. }
            | Request::PutWithExpiry { .. }
            | Request::Expire { .. }
            | Request::GetWithExpiry { .. } => Reply::Failed(replikv_core::Error::InvalidInput(
                "leases and expiry are not served by this reference model".into(),
            )),
            Request::ChangeMembership { .. } | Request::TransferLeadership { .. } => {
                unreachable!("keyless, answered above")
            }
            Request::CompareAndSetVersion { key, expected, new } => {
                let swapped = expected == version;
                let version = if swapped {
                    self.write(key, Some(new))
                } else {
                    version
                };
                Reply::CompareAndSet {
                    swapped,
                    version,
                    position: LogPosition::ZERO,
                }
            }
            Request::CompareAndSet { key, expected, new } => {
                if current == expected {
                    let version = self.write(key, Some(new));
                    Reply::CompareAndSet {
                        swapped: true,
                        version,
                        position: LogPosition::ZERO,
                    }
                } else {
                    Reply::CompareAndSet {
                        swapped: false,
                        version,
                        position: LogPosition::ZERO,
                    }
                }
            }
        };
        self.outputs.push_back(Output::Reply { request_id, reply });
        Ok(())
    }

    fn handle_tick(&mut self, _now: Instant) -> Result<()> {
        Ok(())
    }

    fn handle_flush(&mut self, _now: Instant) -> Result<()> {
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Output<NoMessage>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        Ok(self
            .entries
            .iter()
            .filter_map(|(key, (value, _))| Some((key.clone(), value.clone()?)))
            .collect())
    }
}
