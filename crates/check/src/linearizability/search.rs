//! The search for a linearization of one key's sub-history.
//!
//! This is the Wing & Gong backtracking search ("Testing and verifying concurrent
//! objects", 1993) in the "just-in-time" form Lowe gives it ("Testing for
//! linearizability", 2017), with Porcupine's memo of visited configurations
//! (Athalye, 2017).
//!
//! Invocations and completions become events on a time line (events.rs). A cursor
//! walks it from the head. At an invocation it tries to linearize that operation now: if
//! the register's sequential specification allows the recorded result in the current
//! state, and the resulting configuration (linearized set, state) was never explored
//! (cache.rs), the operation is lifted out of the time line, pushed on a stack, and the
//! walk restarts at the head. At a completion the search is stuck: that operation had to
//! take effect before it returned and could not, so the last choice is undone (the
//! operation goes back into the time line) and the cursor moves past it. The history is
//! linearizable as soon as every `ok` operation is lifted; it is not once the stack is
//! empty at a completion.
//!
//! Two refinements make long histories fast without changing any verdict.
//!
//! *Observers go first.* A read (or a cas that did not swap) that is waiting and agrees
//! with the current state is linearized at once, and that choice is never revisited: if
//! any linearization extends the current configuration, moving such an observer to its
//! front gives another (it changes no state, and everything that must precede it in
//! real time is already linearized). When backtracking reaches such a forced step, the
//! configuration before it has failed too.
//!
//! *Operations of unknown outcome (`info`) are tried only where they can matter.* They
//! have no completion: they may take effect at any time after their invocation, or
//! never, and the search succeeds without them. Tried freely, they multiply the work by
//! every subset of them. So:
//! - at a configuration the cursor first tries only `ok` operations; only when it reaches
//!   a completion does it try the `info` operations invoked before it;
//! - there, an `info` operation is only tried if a waiting operation needs the value it
//!   writes (a read of it, a cas expecting it), or a waiting cas that did not swap needs
//!   the state to change; and of several waiting `info` operations with the same action,
//!   only the first (having no completion, they are interchangeable);
//! - right after an `info` operation, only a *consumer* may follow: an operation that
//!   needs its value, or a cas that did not swap that expects the state before it.
//!
//! These rest on one observation: in any linearization, an `info` operation not directly
//! followed by a consumer can be moved later, past the operations that need neither
//! (nothing distinguishes the two states for them), until it is followed by a consumer
//! or by a write, and in the latter case dropped. So if any linearization extends a
//! configuration, one has every `info` operation directly followed by a consumer; and
//! that consumer was invoked before the stuck completion, since the stuck operation
//! precedes everything invoked after it completed.
//!
//! When the search fails it reports the furthest completion any branch reached. No
//! branch ever lifted an operation invoked after that event, so those operations are
//! irrelevant to the failure: the witness shrinker starts from the rest.

use super::cache::{ConfigurationCache, LinearizedSet};
use super::events::{EventList, NONE, OK_HEAD};
use super::groups::InfoGroups;
use super::model::{ABSENT, Action, RegisterOp, ValueId, step};
use crate::budget::{Exhausted, Meter};

/// The result of a search over one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SearchOutcome {
    Linearizable,
    /// No linearization exists. `stuck` is the operation (index into the searched slice)
    /// at whose completion the furthest branch failed; `involved` are the operations
    /// invoked before that completion, the only ones any branch touched.
    NotLinearizable {
        stuck: usize,
        involved: Vec<usize>,
    },
    Exhausted(Exhausted),
}

/// What the cursor is trying at the current configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `ok` operations, walking the `ok` list.
    Ok,
    /// Stuck at a completion: useful `info` operations invoked before it.
    Info,
    /// Right after an `info` operation: `ok` consumers of its value.
    ConsumerOk,
    /// The same among `info` operations (a cas of unknown outcome may consume).
    ConsumerInfo,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    op: u32,
    state_before: ValueId,
    phase: Phase,
    awaiting_consumer_before: bool,
    /// Linearized as an agreeing observer: not a choice, never revisited.
    forced: bool,
}

/// What one step of the search did.
enum Progress {
    Continue,
    Failed,
}

/// Searches for a linearization of `ops` (one key, in invocation order) from the
/// absent state, spending steps from `meter`.
pub(crate) fn search(ops: &[RegisterOp], meter: &mut Meter) -> SearchOutcome {
    let mut search = Search::new(ops);
    while search.remaining_ok > 0 {
        if let Err(exhausted) = meter.tick() {
            return SearchOutcome::Exhausted(exhausted);
        }
        match search.step() {
            Err(exhausted) => return SearchOutcome::Exhausted(exhausted),
            Ok(Progress::Continue) => {}
            Ok(Progress::Failed) => {
                return not_linearizable(ops, &search.list, search.furthest_completion);
            }
        }
    }
    SearchOutcome::Linearizable
}

fn not_linearizable(ops: &[RegisterOp], list: &EventList, furthest: u32) -> SearchOutcome {
    let stuck = list.events[furthest as usize].op as usize;
    let involved = (0..ops.len())
        .filter(|&op| list.invocation_node[op] < furthest)
        .collect();
    SearchOutcome::NotLinearizable { stuck, involved }
}

/// The state of one search (see the module doc).
struct Search<'o> {
    ops: &'o [RegisterOp],
    list: EventList,
    linearized: LinearizedSet,
    cache: ConfigurationCache,
    encoded: Vec<u32>,
    stack: Vec<Frame>,
    remaining_ok: usize,
    unlinearized_info: usize,
    state: ValueId,
    cursor: u32,
    phase: Phase,
    /// Whether agreeing observers have been linearized at this configuration.
    settled: bool,
    /// Whether the last operation linearized was an `info` one awaiting its consumer.
    awaiting_consumer: bool,
    /// In the `info` phase: the states the waiting operations need.
    needed_states: Vec<ValueId>,
    /// In the `info` phase: whether a waiting cas that did not swap needs the state to
    /// change.
    failed_cas_blocked: bool,
    /// In the `info` phases: the `info` operations to try, in invocation order, and the
    /// position of the next one.
    candidates: Vec<u32>,
    next_candidate: usize,
    /// The `info` operations in groups of interchangeable ones.
    groups: InfoGroups,
    furthest_completion: u32,
}

impl<'o> Search<'o> {
    fn new(ops: &'o [RegisterOp]) -> Search<'o> {
        let list = EventList::new(ops);
        let linearized = LinearizedSet::new(ops);
        let cursor = list.next[OK_HEAD as usize];
        Search {
            ops,
            remaining_ok: linearized.ok_count,
            unlinearized_info: ops.len() - linearized.ok_count,
            list,
            linearized,
            cache: ConfigurationCache::default(),
            encoded: Vec::new(),
            stack: Vec::new(),
            state: ABSENT,
            cursor,
            phase: Phase::Ok,
            settled: false,
            awaiting_consumer: false,
            needed_states: Vec::new(),
            failed_cas_blocked: false,
            candidates: Vec::new(),
            next_candidate: 0,
            groups: InfoGroups::new(ops),
            furthest_completion: OK_HEAD,
        }
    }

    /// One step: settle an observer, try one operation, or react to a completion.
    fn step(&mut self) -> Result<Progress, Exhausted> {
        if !self.settled {
            return self.settle_one_observer();
        }
        if matches!(self.phase, Phase::Info | Phase::ConsumerInfo) {
            let Some(&op) = self.candidates.get(self.next_candidate) else {
                return Ok(self.backtrack());
            };
            if !self.try_to_linearize(op)? {
                self.next_candidate += 1;
            }
            return Ok(Progress::Continue);
        }
        let node = self.cursor;
        assert_ne!(
            node, NONE,
            "an unlinearized ok operation's completion is ahead"
        );
        let event = self.list.events[node as usize];
        if event.is_completion {
            self.furthest_completion = self.furthest_completion.max(node);
            return Ok(match self.phase {
                Phase::Ok if self.unlinearized_info > 0 => self.try_info(Phase::Info, node, None),
                Phase::ConsumerOk => self.try_info(Phase::ConsumerInfo, node, None),
                _ => self.backtrack(),
            });
        }
        if !self.try_to_linearize(event.op)? {
            self.cursor = self.list.next[node as usize];
        }
        Ok(Progress::Continue)
    }

    /// Linearizes one waiting observer that agrees with the state, if any (a forced
    /// step); otherwise marks the configuration settled and starts the `ok` walk.
    fn settle_one_observer(&mut self) -> Result<Progress, Exhausted> {
        let first_completion = self.list.first_completion();
        let observer = self
            .list
            .invocations_before(OK_HEAD, first_completion)
            .find(|&op| {
                let operation = &self.ops[op as usize];
                let observes =
                    matches!(operation.action, Action::Read(_)) || operation.is_failed_cas();
                observes && step(self.state, operation.action).is_some()
            });
        let Some(op) = observer else {
            self.settled = true;
            self.phase = Phase::Ok;
            self.cursor = self.list.next[OK_HEAD as usize];
            return Ok(Progress::Continue);
        };
        if !self.record_configuration(op, self.state, false)? {
            return Ok(self.backtrack());
        }
        self.push_and_lift(op, self.state, true);
        Ok(Progress::Continue)
    }

    /// Linearizes `op` now if the current phase tries it, the specification allows it
    /// and the resulting configuration is new; then a new configuration starts.
    fn try_to_linearize(&mut self, op: u32) -> Result<bool, Exhausted> {
        let operation = &self.ops[op as usize];
        let tried = match self.phase {
            Phase::Ok => true,
            Phase::ConsumerOk => self.is_consumer(operation),
            Phase::Info => self.is_useful_info(operation),
            Phase::ConsumerInfo => self.is_consumer(operation),
        };
        if !tried {
            return Ok(false);
        }
        let Some(state_after) = step(self.state, operation.action) else {
            return Ok(false);
        };
        if !self.record_configuration(op, state_after, !operation.is_ok())? {
            return Ok(false);
        }
        self.push_and_lift(op, state_after, false);
        Ok(true)
    }

    /// Adds the configuration "current one plus `op`, in `state_after`" to the memo;
    /// false if it was there already (then nothing changes).
    fn record_configuration(
        &mut self,
        op: u32,
        state_after: ValueId,
        awaiting_consumer: bool,
    ) -> Result<bool, Exhausted> {
        self.linearized.insert(op);
        self.linearized
            .encode(state_after, awaiting_consumer, &mut self.encoded);
        let new = self.cache.insert(&self.encoded)?;
        if !new {
            self.linearized.remove(op);
        }
        Ok(new)
    }

    /// Pushes the choice of `op` and lifts it (already in the linearized set).
    fn push_and_lift(&mut self, op: u32, state_after: ValueId, forced: bool) {
        let operation = &self.ops[op as usize];
        self.stack.push(Frame {
            op,
            state_before: self.state,
            phase: self.phase,
            awaiting_consumer_before: self.awaiting_consumer,
            forced,
        });
        self.state = state_after;
        self.list.lift(op);
        if operation.is_ok() {
            self.remaining_ok -= 1;
        } else {
            self.unlinearized_info -= 1;
            self.groups.linearize(op);
        }
        self.awaiting_consumer = !operation.is_ok();
        self.settled = self.awaiting_consumer;
        self.phase = if self.awaiting_consumer {
            Phase::ConsumerOk
        } else {
            Phase::Ok
        };
        self.cursor = self.list.next[OK_HEAD as usize];
    }

    /// Undoes choices until one can be replaced by the next candidate; `Failed` if none.
    fn backtrack(&mut self) -> Progress {
        while let Some(frame) = self.stack.pop() {
            self.list.unlift(frame.op);
            self.linearized.remove(frame.op);
            if self.ops[frame.op as usize].is_ok() {
                self.remaining_ok += 1;
            } else {
                self.unlinearized_info += 1;
                self.groups.unlinearize(frame.op);
            }
            self.state = frame.state_before;
            self.awaiting_consumer = frame.awaiting_consumer_before;
            if frame.forced {
                continue;
            }
            self.settled = true;
            if matches!(frame.phase, Phase::Info | Phase::ConsumerInfo) {
                self.try_info(frame.phase, self.list.first_completion(), Some(frame.op));
            } else {
                self.phase = frame.phase;
                self.cursor = self.list.next[self.list.invocation_node[frame.op as usize] as usize];
            }
            return Progress::Continue;
        }
        Progress::Failed
    }

    /// Starts trying `info` operations in `phase` at the completion `stuck`, after
    /// `resume_after` (a candidate tried before, when backtracking to it).
    ///
    /// The candidates are the first waiting operation of each action (see the module
    /// doc) among: in the `info` phase, those writing a value a waiting operation needs —
    /// or, when a waiting cas that did not swap needs the state to change, all of them;
    /// in the consumer phase, the cas operations expecting the current state. Waiting
    /// `info` cas operations need the value they expect; every value some `info` cas
    /// expects (and some `info` operation writes) counts as needed, a superset that keeps
    /// the search complete and saves walking the pending `info` operations at each
    /// completion.
    ///
    /// A blocked cas that did not swap gets every group, not just a write of a value
    /// nobody compares with, although such a blind write changes the state as well as any
    /// other: it may be needed again later (for another blocked cas), while another
    /// write, used here, could not have served that later need and its own (a read of
    /// its value). Regressions: `good_info_cas_unblocks_failed_cas` (simulator seed 91
    /// of the register crash storm) and `good_blind_write_saved_for_a_later_failed_cas`
    /// (the brute-force oracle test).
    fn try_info(&mut self, phase: Phase, stuck: u32, resume_after: Option<u32>) -> Progress {
        self.phase = phase;
        self.candidates.clear();
        self.failed_cas_blocked = false;
        if phase == Phase::Info {
            self.needed_states.clear();
            for op in self.list.invocations_before(OK_HEAD, stuck) {
                let waiting = &self.ops[op as usize];
                self.failed_cas_blocked |= waiting.failed_cas_expected() == Some(self.state);
                self.needed_states.extend(waiting.needs_state());
            }
            self.needed_states
                .extend_from_slice(self.groups.expected_and_written());
            self.needed_states.sort_unstable();
            self.needed_states.dedup();
            for &value in &self.needed_states {
                self.candidates.extend(self.groups.writing(value));
            }
            if self.failed_cas_blocked {
                self.candidates.extend(self.groups.all());
            }
        } else {
            self.candidates.extend(self.groups.expecting(self.state));
        }
        let list = &self.list;
        self.candidates
            .retain(|&op| list.invocation_node[op as usize] < stuck);
        self.candidates
            .sort_unstable_by_key(|&op| list.invocation_node[op as usize]);
        self.candidates.dedup();
        self.next_candidate = match resume_after {
            None => 0,
            Some(op) => {
                let node = list.invocation_node[op as usize];
                self.candidates
                    .partition_point(|&candidate| list.invocation_node[candidate as usize] <= node)
            }
        };
        Progress::Continue
    }

    /// Whether the `info` operation is worth linearizing in the `info` phase.
    fn is_useful_info(&self, operation: &RegisterOp) -> bool {
        operation.written().is_some_and(|written| {
            written != self.state
                && (self.failed_cas_blocked || self.needed_states.contains(&written))
        })
    }

    /// Whether `operation` may directly follow the `info` operation just linearized.
    fn is_consumer(&self, operation: &RegisterOp) -> bool {
        let state_before_info = self.stack.last().map_or(ABSENT, |frame| frame.state_before);
        operation.needs_state() == Some(self.state)
            || operation.failed_cas_expected() == Some(state_before_info)
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Action;
    use super::*;
    use crate::budget::Budget;

    fn op(invoke: u64, complete: Option<u64>, action: Action) -> RegisterOp {
        RegisterOp::for_test(invoke, complete, action)
    }

    fn decide(ops: &[RegisterOp]) -> SearchOutcome {
        search(ops, &mut Meter::new(Budget::unlimited()))
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert_eq!(decide(&[]), SearchOutcome::Linearizable);
    }

    #[test]
    fn a_stale_read_is_not_and_the_failure_point_is_reported() {
        let ops = [
            op(0, Some(10), Action::Write(1)),
            op(20, Some(30), Action::Write(2)),
            op(40, Some(50), Action::Read(1)),
            op(60, Some(70), Action::Read(2)),
        ];
        assert_eq!(
            decide(&ops),
            SearchOutcome::NotLinearizable {
                stuck: 2,
                involved: vec![0, 1, 2]
            }
        );
    }

    #[test]
    fn a_concurrent_read_may_see_either_value() {
        for read in [1, 2] {
            let ops = [
                op(0, Some(10), Action::Write(1)),
                op(20, Some(30), Action::Write(2)),
                op(25, Some(35), Action::Read(read)),
            ];
            assert_eq!(decide(&ops), SearchOutcome::Linearizable, "read {read}");
        }
    }

    #[test]
    fn operations_touching_at_one_instant_are_concurrent() {
        let ops = [
            op(0, Some(10), Action::Write(1)),
            op(10, Some(20), Action::Read(ABSENT)),
        ];
        assert_eq!(decide(&ops), SearchOutcome::Linearizable);
    }

    #[test]
    fn an_info_write_may_take_effect_late_or_never() {
        let late = [
            op(0, None, Action::Write(1)),
            op(100, Some(110), Action::Read(ABSENT)),
            op(200, Some(210), Action::Read(1)),
        ];
        assert_eq!(decide(&late), SearchOutcome::Linearizable);
        let never = [
            op(0, None, Action::Write(1)),
            op(100, Some(110), Action::Read(ABSENT)),
        ];
        assert_eq!(decide(&never), SearchOutcome::Linearizable);
        let before_invoked = [
            op(0, Some(10), Action::Read(1)),
            op(20, None, Action::Write(1)),
        ];
        assert!(matches!(
            decide(&before_invoked),
            SearchOutcome::NotLinearizable { .. }
        ));
    }

    #[test]
    fn the_budget_turns_a_long_search_into_exhausted() {
        let ops: Vec<RegisterOp> = (0..50)
            .map(|i| {
                op(
                    i,
                    Some(1000 + i),
                    Action::Write(u32::try_from(i).unwrap() + 1),
                )
            })
            .chain([op(2000, Some(2001), Action::Read(99))])
            .collect();
        let outcome = search(&ops, &mut Meter::new(Budget::steps(100)));
        assert_eq!(outcome, SearchOutcome::Exhausted(Exhausted::Steps));
    }
}
