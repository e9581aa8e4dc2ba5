//! Scripted scenarios: a [`Director`] watches every node after every event and may order
//! faults aimed at a particular node.
//!
//! Random fault schedules find bugs nobody thought of; some properties, though, are about
//! one precise story. "A member cut off for a while rejoins without forcing an election"
//! needs exactly one member isolated, then healed, and nothing else; "failover takes
//! under 1.5 election timeouts" needs the *leader* crashed at a chosen moment, and a
//! stopwatch that stops when a new leader commits a write. The random schedule cannot
//! aim at the leader: the simulator does not know what a leader is, and must not (it
//! drives every strategy through the same sans-IO trait).
//!
//! A director closes that gap without teaching the simulator any strategy. It is shown
//! the replicas themselves, with their concrete type (a test of Raft sees `RaftNode`s and
//! can ask who leads, what is committed, what each node counted), after every event,
//! in node id order with `None` for a node that is down; it answers with
//! [`Directive`]s, which the simulator carries out at once: crash a node (its unsynced
//! writes are lost or torn, as in a random crash), restart it, cut one node off from every
//! other (an isolate-one partition), heal. It is also shown the nodes one last time at the
//! end of the run ([`Director::finish`]), which is where a test reads counters such as
//! Raft's `RaftStats` from every node.
//!
//! Directives obey the fault phase like random faults do: after the run's `duration` the
//! simulator heals everything and restarts every node, and later faults ordered are ignored
//! (and counted in [`crate::RunStats::directives_ignored`]), so the end-of-run promises
//! (every node up for the final reads and the convergence check) still hold. A director
//! adds to the random faults of the options; a scenario that wants nothing else runs with
//! the `none` preset. Directors are deterministic as long as they draw no randomness of
//! their own, which keeps a directed run a pure function of its seed.
//!
//! ## Requests from the director
//!
//! Some stories need the director to *ask* the cluster for something, not to break it:
//! "add node 4 as a learner, promote it once it caught up, remove node 2" is a sequence
//! of client requests whose timing depends on what the replicas show. So a director may
//! also order [`Directive::Request`]: the simulator delivers the request to the named
//! node exactly like a client's (after a sampled client latency, refused if the node is
//! down), under a request id of its own ([`DIRECTOR_CLIENT_ID`], numbered in order), and
//! hands the answer back to [`Director::on_reply`] with the director's `tag`, instead of
//! to a client. The request and its answer stay out of the clients' history, so the
//! checkers judge only the workload; a director that changes keys the checkers read
//! would make them fail, and must not. A request is not a fault: it is carried out in the
//! quiet period too (a director may need to restore something before the end of the
//! run). Nothing times out on the director's behalf: a request to a node that crashes
//! before answering gets no answer, so a director keeps its own clock (`now`) and gives
//! up on a request when it chooses.

use replikv_core::replica::Replica;
use replikv_core::{ClientId, Instant, NodeId, Reply, Request};

/// The client id of every request a director orders; no workload client uses it.
pub const DIRECTOR_CLIENT_ID: ClientId = ClientId(u64::MAX);

/// What a [`Director`] orders: a fault, or a client request of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Power failure of the node, if it runs; it stays down until restarted.
    Crash(NodeId),
    /// Restart the node from its disk, if it is down.
    Restart(NodeId),
    /// Cut the node off from every other node, both ways (replacing any partition).
    Isolate(NodeId),
    /// Remove the partition in force, if any.
    Heal,
    /// Deliver `request` to `node` as a client request; its answer comes back to
    /// [`Director::on_reply`] with `tag` (the director's own label, echoed unchanged).
    Request {
        node: NodeId,
        tag: u64,
        request: Request,
    },
}

/// The answer to a [`Directive::Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectorReply {
    /// The tag the director gave the request.
    pub tag: u64,
    /// The node the request went to.
    pub node: NodeId,
    /// The node's answer; a node that was down when the request arrived refuses the
    /// connection, answered as [`replikv_core::Error::Unavailable`].
    pub reply: Reply,
}

/// Watches a run and orders faults; see the module documentation.
pub trait Director<N: Replica> {
    /// Whether the simulator should call [`Director::after_event`] at all (a director that
    /// only reads the end of the run saves the per-event work).
    fn watches_events(&self) -> bool {
        true
    }

    /// Called after every event with virtual time and every node (id order, `None` when
    /// down); pushes the faults to carry out now.
    fn after_event(&mut self, now: Instant, nodes: &[Option<&N>], directives: &mut Vec<Directive>);

    /// Called when the answer to one of the director's [`Directive::Request`]s arrives,
    /// before [`Director::after_event`] for the same event.
    fn on_reply(&mut self, now: Instant, reply: DirectorReply) {
        let _ = (now, reply);
    }

    /// Called once at the end of a run that did not fail, with every node running.
    fn finish(&mut self, now: Instant, nodes: &[Option<&N>]) {
        let _ = (now, nodes);
    }
}

/// The director of undirected runs: watches nothing, orders nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDirector;

impl<N: Replica> Director<N> for NoDirector {
    fn watches_events(&self) -> bool {
        false
    }

    fn after_event(
        &mut self,
        _now: Instant,
        _nodes: &[Option<&N>],
        _directives: &mut Vec<Directive>,
    ) {
    }
}
