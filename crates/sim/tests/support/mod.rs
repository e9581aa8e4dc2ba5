//! Test replicas shared by the integration tests: models that exercise the parts of the
//! harness the reference register does not (peer messages, timers, clocks).
//!
//! [`Pinger`] sends numbered pings to every peer on a random timer and answers client
//! requests with `Unavailable`. It asserts, inside the replica, what the simulator
//! promises every replica: its clock never goes backwards, a timer never fires before the
//! deadline it asked for, and a message's sender is who the message says it is.

#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replikv_core::error::{Error, Result};
use replikv_core::replica::{NoObserver, Output, Replica};
use replikv_core::{Instant, Key, NodeId, Reply, Request, RequestId, Value};
use replikv_sim::NodeSetup;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// A ping from `sender`, its `sequence`-th since it started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ping {
    pub sender: NodeId,
    pub sequence: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Pinger {
    id: NodeId,
    peers: Vec<NodeId>,
    random: ChaCha8Rng,
    last_now: Instant,
    deadline: Instant,
    sent: u64,
    received: BTreeMap<NodeId, u64>,
    outputs: VecDeque<Output<Ping>>,
}

impl Pinger {
    pub fn open(setup: NodeSetup) -> Result<Pinger> {
        Ok(Pinger {
            id: setup.id,
            peers: setup.peers,
            random: ChaCha8Rng::seed_from_u64(setup.seed),
            last_now: Instant::ZERO,
            deadline: Instant::ZERO,
            sent: 0,
            received: BTreeMap::new(),
            outputs: VecDeque::new(),
        })
    }

    fn observe(&mut self, now: Instant) {
        assert!(
            now >= self.last_now,
            "{}: clock went back from {} to {now}",
            self.id,
            self.last_now
        );
        self.last_now = now;
    }
}

impl Replica for Pinger {
    type Message = Ping;
    type Observer = NoObserver;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, message: Ping) -> Result<()> {
        self.observe(now);
        assert_eq!(
            message.sender, from,
            "message attributed to the wrong sender"
        );
        assert_ne!(from, self.id, "a message from itself");
        *self.received.entry(from).or_default() += 1;
        Ok(())
    }

    fn handle_request(
        &mut self,
        now: Instant,
        request_id: RequestId,
        _request: Request,
    ) -> Result<()> {
        self.observe(now);
        let reply = Reply::Failed(Error::Unavailable("pingers serve nothing".into()));
        self.outputs.push_back(Output::Reply { request_id, reply });
        Ok(())
    }

    fn handle_tick(&mut self, now: Instant) -> Result<()> {
        self.observe(now);
        assert!(
            now >= self.deadline,
            "{}: timer fired at {now}, before {}",
            self.id,
            self.deadline
        );
        for peer in self.peers.clone() {
            self.sent += 1;
            let message = Ping {
                sender: self.id,
                sequence: self.sent,
            };
            self.outputs.push_back(Output::Send { to: peer, message });
        }
        self.deadline = now + Duration::from_micros(self.random.random_range(500..20_000));
        Ok(())
    }

    fn handle_flush(&mut self, now: Instant) -> Result<()> {
        self.observe(now);
        Ok(())
    }

    fn poll_output(&mut self) -> Option<Output<Ping>> {
        self.outputs.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Some(self.deadline)
    }

    fn visible_state(&self) -> Result<BTreeMap<Key, Value>> {
        Ok(self
            .received
            .iter()
            .map(|(peer, count)| {
                let key = Key::new(format!("from-{peer}")).expect("short key");
                (key, Value::new(count.to_string()).expect("short value"))
            })
            .collect())
    }
}
