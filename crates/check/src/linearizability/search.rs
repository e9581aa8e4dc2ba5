//! The search for a linearization of one key's sub-history.
//!
//! This is the Wing & Gong backtracking search ("Testing and verifying concurrent
//! objects", 1993) in the "just-in-time" form Lowe gives it ("Testing for
//! linearizability", 2017), with Porcupine's memo of visited configurations
//! (Athalye, 2017).
//!
//! Invocations and completions become events on one time line, kept in a doubly linked
//! list. A cursor walks the list from its head. At an invocation it tries to linearize
//! that operation now: if the register's sequential specification allows the recorded
//! result in the current state, and the resulting configuration (linearized set, state)
//! was never explored, the operation is removed ("lifted") from the list, pushed on a
//! stack, and the walk restarts at the head. At a completion the search is stuck: that
//! operation had to take effect before it returned and could not, so the last choice is
//! undone (the operation goes back into the list, in O(1), dancing-links style) and the
//! cursor moves past it. The history is linearizable as soon as every `ok` operation is
//! lifted; it is not once the stack is empty at a completion.
//!
//! Operations of unknown outcome (`info`) have no completion event: they may take effect
//! at any time after their invocation, or never, and the search succeeds without them.
//! Left alone they multiply the work: each one can be linearized at any point, so a
//! search that tries them freely explores every subset of them. Three rules keep them in
//! check, none of which changes the verdict:
//! - at each configuration the cursor first tries only `ok` operations, and only when it
//!   reaches a completion does it go back and try the `info` operations invoked before it
//!   (a different order of the same depth-first search);
//! - there, an `info` operation is only tried if an operation waiting before that
//!   completion needs the value it writes (a read of it, a cas expecting it), or a cas
//!   that did not swap waits for the state to change; and of several waiting `info`
//!   operations with the same action, only the first (they are interchangeable);
//! - right after an `info` operation, only such a "consumer" may be linearized.
//!
//! The consumer rule rests on one observation: take any linearization and an `info`
//! operation in it that is not directly followed by an operation needing its value or by
//! a failed cas that needs the state to differ from the one before it. Moving the `info`
//! operation later, past the operations that need neither, leaves a linearization (it has
//! no completion to respect); once it is followed by a write, dropping it does too. So some linearization, if any exists, has every `info`
//! operation directly followed by a consumer, which (since the stuck operation precedes
//! everything invoked after its completion) was invoked before the stuck completion.
//!
//! When the search fails it reports the furthest completion any branch reached. No
//! branch ever lifted an operation invoked after that event, so those operations are
//! irrelevant to the failure: the witness shrinker starts from the rest.

use super::cache::{Bitset, ConfigurationCache};
use super::model::{ABSENT, RegisterOp, ValueId, step};
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

/// Marks the end of the event list.
const NONE: u32 = u32::MAX;

/// The list head sentinel's node index; events are nodes `1..=events`.
const HEAD: u32 = 0;

#[derive(Clone, Copy, Debug)]
struct Event {
    op: u32,
    is_completion: bool,
}

/// Which operations the cursor is trying at a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Ok,
    Info,
}

#[derive(Clone, Copy, Debug)]
struct Frame {
    op: u32,
    state_before: ValueId,
    phase: Phase,
    awaiting_consumer_before: bool,
}

/// The linked list of events, in time order (invocations before completions at equal
/// times, so operations that touch at one instant count as concurrent).
struct EventList {
    events: Vec<Event>,
    next: Vec<u32>,
    previous: Vec<u32>,
    invocation_node: Vec<u32>,
    completion_node: Vec<u32>,
}

impl EventList {
    fn new(ops: &[RegisterOp]) -> EventList {
        let mut timed: Vec<(u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 operations per key");
            timed.push((op.invoke, false, index));
            if let Some(complete) = op.complete {
                timed.push((complete, true, index));
            }
        }
        timed.sort_unstable();
        let mut events = vec![Event {
            op: NONE,
            is_completion: false,
        }];
        let mut invocation_node = vec![NONE; ops.len()];
        let mut completion_node = vec![NONE; ops.len()];
        for (_, is_completion, op) in timed {
            let node = u32::try_from(events.len()).expect("fewer than 2^32 events");
            if is_completion {
                completion_node[op as usize] = node;
            } else {
                invocation_node[op as usize] = node;
            }
            events.push(Event { op, is_completion });
        }
        let count = u32::try_from(events.len()).expect("fewer than 2^32 events");
        let next = (1..=count)
            .map(|n| if n == count { NONE } else { n })
            .collect();
        let previous = (0..count).map(|n| n.wrapping_sub(1)).collect();
        EventList {
            events,
            next,
            previous,
            invocation_node,
            completion_node,
        }
    }

    fn unlink(&mut self, node: u32) {
        let (previous, next) = (self.previous[node as usize], self.next[node as usize]);
        self.next[previous as usize] = next;
        if next != NONE {
            self.previous[next as usize] = previous;
        }
    }

    fn relink(&mut self, node: u32) {
        let (previous, next) = (self.previous[node as usize], self.next[node as usize]);
        self.next[previous as usize] = node;
        if next != NONE {
            self.previous[next as usize] = node;
        }
    }

    fn lift(&mut self, op: u32) {
        self.unlink(self.invocation_node[op as usize]);
        let completion = self.completion_node[op as usize];
        if completion != NONE {
            self.unlink(completion);
        }
    }

    /// Undoes the most recent `lift` (must be called in reverse order of lifting).
    fn unlift(&mut self, op: u32) {
        let completion = self.completion_node[op as usize];
        if completion != NONE {
            self.relink(completion);
        }
        self.relink(self.invocation_node[op as usize]);
    }
}

/// Which operations are linearized, encoded compactly for the memo (see cache.rs).
struct LinearizedSet {
    /// For each operation: its index among `ok` operations or among `info` ones.
    slot: Vec<(bool, usize)>,
    ok: Bitset,
    ok_count: usize,
    info: Bitset,
    /// For `ok` operation i: the first `ok` operation invoked after i completed.
    window_end: Vec<usize>,
    first_unlinearized_ok: usize,
}

impl LinearizedSet {
    fn new(ops: &[RegisterOp]) -> LinearizedSet {
        let mut slot = Vec::with_capacity(ops.len());
        let (mut ok_count, mut info_count) = (0, 0);
        let mut ok_invokes = Vec::new();
        let mut ok_completes = Vec::new();
        for op in ops {
            if let Some(complete) = op.complete {
                slot.push((true, ok_count));
                ok_count += 1;
                ok_invokes.push(op.invoke);
                ok_completes.push(complete);
            } else {
                slot.push((false, info_count));
                info_count += 1;
            }
        }
        debug_assert!(
            ok_invokes.is_sorted(),
            "operations come in invocation order"
        );
        let window_end = ok_completes
            .iter()
            .map(|complete| ok_invokes.partition_point(|invoke| invoke <= complete))
            .collect();
        LinearizedSet {
            slot,
            ok: Bitset::new(ok_count),
            ok_count,
            info: Bitset::new(info_count),
            window_end,
            first_unlinearized_ok: 0,
        }
    }

    fn insert(&mut self, op: u32) {
        match self.slot[op as usize] {
            (true, index) => {
                self.ok.insert(index);
                if index == self.first_unlinearized_ok {
                    self.first_unlinearized_ok = self.ok.first_unset_from(index, self.ok_count);
                }
            }
            (false, index) => self.info.insert(index),
        }
    }

    fn remove(&mut self, op: u32) {
        match self.slot[op as usize] {
            (true, index) => {
                self.ok.remove(index);
                self.first_unlinearized_ok = self.first_unlinearized_ok.min(index);
            }
            (false, index) => self.info.remove(index),
        }
    }

    /// Encodes (this set, `state`, whether a consumer is awaited) as memo words: state,
    /// the flag, first unlinearized `ok` operation, the `info` bitset, then the
    /// linearized `ok` operations in the window.
    fn encode(&self, state: ValueId, awaiting_consumer: bool, out: &mut Vec<u32>) {
        out.clear();
        let first = self.first_unlinearized_ok;
        out.push(state);
        out.push(u32::from(awaiting_consumer));
        out.push(u32::try_from(first).expect("fewer than 2^32 operations"));
        self.info.encode_into(out);
        if first < self.ok_count {
            for index in first + 1..self.window_end[first] {
                if self.ok.contains(index) {
                    out.push(u32::try_from(index).expect("fewer than 2^32 operations"));
                }
            }
            debug_assert!(
                (self.window_end[first]..self.ok_count).all(|index| !self.ok.contains(index)),
                "the linearized set is closed under real-time precedence"
            );
        }
    }
}

/// Searches for a linearization of `ops` (one key, in invocation order) from the
/// absent state, spending steps from `meter`.
pub(crate) fn search(ops: &[RegisterOp], meter: &mut Meter) -> SearchOutcome {
    let mut search = Search::new(ops);
    while search.remaining_ok > 0 {
        if let Err(exhausted) = meter.tick() {
            return SearchOutcome::Exhausted(exhausted);
        }
        let cursor = search.cursor;
        assert_ne!(
            cursor, NONE,
            "an unlinearized ok operation's completion is ahead"
        );
        let event = search.list.events[cursor as usize];
        if !event.is_completion {
            match search.try_to_linearize(event.op) {
                Err(exhausted) => return SearchOutcome::Exhausted(exhausted),
                Ok(true) => {}
                Ok(false) => search.cursor = search.list.next[cursor as usize],
            }
            continue;
        }
        search.furthest_completion = search.furthest_completion.max(cursor);
        if search.awaiting_consumer {
            if !search.backtrack() {
                return not_linearizable(ops, &search.list, search.furthest_completion);
            }
            continue;
        }
        if search.phase == Phase::Ok && search.unlinearized_info > 0 {
            search.enter_info_phase();
            continue;
        }
        if !search.backtrack() {
            return not_linearizable(ops, &search.list, search.furthest_completion);
        }
    }
    SearchOutcome::Linearizable
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
    furthest_completion: u32,
    /// In the `info` phase: the states the operations before the stuck completion need.
    needed_states: Vec<ValueId>,
    /// In the `info` phase: whether a cas that did not swap, and cannot take effect in
    /// the current state, is among those operations.
    failed_cas_blocked: bool,
    /// In the `info` phase: the waiting `info` operations worth trying, one per distinct
    /// action (the first invoked; the others are interchangeable with it).
    info_candidates: Vec<u32>,
    /// Whether the last operation linearized was an `info` one, whose value the next
    /// operation must need (see `try_to_linearize`).
    awaiting_consumer: bool,
}

impl<'o> Search<'o> {
    fn new(ops: &'o [RegisterOp]) -> Search<'o> {
        let list = EventList::new(ops);
        let linearized = LinearizedSet::new(ops);
        let cursor = list.next[HEAD as usize];
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
            furthest_completion: HEAD,
            needed_states: Vec::new(),
            failed_cas_blocked: false,
            info_candidates: Vec::new(),
            awaiting_consumer: false,
        }
    }

    /// Switches to trying `info` operations at this configuration, from the head.
    ///
    /// Only some are worth trying. An `info` operation must write a value some waiting
    /// operation needs, or unblock a waiting cas that did not swap (one expecting the
    /// current state): in some linearization extending this configuration, if there is
    /// any, each linearized `info` operation is directly followed by such a consumer (see
    /// the module doc), and the consumer was invoked before the stuck completion, since the
    /// stuck operation precedes everything invoked after its completion. And of several
    /// waiting `info` operations with the same action only the first is tried: they have
    /// no completion, so swapping two of them in any linearization gives another one.
    fn enter_info_phase(&mut self) {
        self.phase = Phase::Info;
        self.needed_states.clear();
        self.failed_cas_blocked = false;
        self.info_candidates.clear();
        let mut actions_seen = Vec::new();
        let mut node = self.list.next[HEAD as usize];
        while node != NONE && !self.list.events[node as usize].is_completion {
            let op = self.list.events[node as usize].op;
            let waiting = &self.ops[op as usize];
            self.failed_cas_blocked |= waiting.failed_cas_expected() == Some(self.state);
            if let Some(state) = waiting.needs_state() {
                self.needed_states.push(state);
            }
            if !waiting.is_ok() && !actions_seen.contains(&waiting.action) {
                actions_seen.push(waiting.action);
                self.info_candidates.push(op);
            }
            node = self.list.next[node as usize];
        }
        self.cursor = self.list.next[HEAD as usize];
    }

    /// Whether the `info` operation `op` is worth linearizing in the `info` phase.
    fn is_useful_info(&self, op: u32) -> bool {
        let Some(written) = self.ops[op as usize].written() else {
            return false;
        };
        written != self.state
            && self.info_candidates.contains(&op)
            && (self.failed_cas_blocked || self.needed_states.contains(&written))
    }

    /// Whether `operation` may directly follow the `info` operation just linearized.
    fn is_consumer(&self, operation: &RegisterOp) -> bool {
        let state_before_info = self.stack.last().map_or(ABSENT, |frame| frame.state_before);
        operation.needs_state() == Some(self.state)
            || operation.failed_cas_expected() == Some(state_before_info)
    }

    /// Linearizes `op` now if the search tries it here, the specification allows it and
    /// the resulting configuration is new; then the cursor restarts at the head.
    ///
    /// Right after an `info` operation, only an operation that needs the value it wrote
    /// (or a cas that did not swap) may follow: in any linearization, an `info` operation
    /// followed by anything else can be left out without changing what the others see,
    /// so those branches would only repeat the search with one more bit set in the memo.
    fn try_to_linearize(&mut self, op: u32) -> Result<bool, Exhausted> {
        let operation = &self.ops[op as usize];
        let tried = if self.awaiting_consumer {
            self.is_consumer(operation)
        } else {
            operation.is_ok() == (self.phase == Phase::Ok)
                && (self.phase == Phase::Ok || self.is_useful_info(op))
        };
        if !tried {
            return Ok(false);
        }
        let Some(state_after) = step(self.state, operation.action) else {
            return Ok(false);
        };
        let awaiting_consumer = !operation.is_ok();
        self.linearized.insert(op);
        self.linearized
            .encode(state_after, awaiting_consumer, &mut self.encoded);
        if !self.cache.insert(&self.encoded)? {
            self.linearized.remove(op);
            return Ok(false);
        }
        self.stack.push(Frame {
            op,
            state_before: self.state,
            phase: self.phase,
            awaiting_consumer_before: self.awaiting_consumer,
        });
        self.awaiting_consumer = awaiting_consumer;
        self.state = state_after;
        self.list.lift(op);
        if operation.is_ok() {
            self.remaining_ok -= 1;
        } else {
            self.unlinearized_info -= 1;
        }
        self.cursor = self.list.next[HEAD as usize];
        self.phase = Phase::Ok;
        Ok(true)
    }

    /// Undoes the last linearization and moves the cursor past it; false if there is
    /// none left to undo.
    fn backtrack(&mut self) -> bool {
        let Some(frame) = self.stack.pop() else {
            return false;
        };
        self.list.unlift(frame.op);
        self.linearized.remove(frame.op);
        if self.ops[frame.op as usize].is_ok() {
            self.remaining_ok += 1;
        } else {
            self.unlinearized_info += 1;
        }
        self.state = frame.state_before;
        self.awaiting_consumer = frame.awaiting_consumer_before;
        if frame.phase == Phase::Info {
            self.enter_info_phase();
        }
        self.phase = frame.phase;
        self.cursor = self.list.next[self.list.invocation_node[frame.op as usize] as usize];
        true
    }
}

fn not_linearizable(ops: &[RegisterOp], list: &EventList, furthest: u32) -> SearchOutcome {
    let stuck = list.events[furthest as usize].op as usize;
    let involved = (0..ops.len())
        .filter(|&op| list.invocation_node[op] < furthest)
        .collect();
    SearchOutcome::NotLinearizable { stuck, involved }
}

#[cfg(test)]
mod tests {
    use super::super::model::Action;
    use super::*;
    use crate::budget::Budget;

    fn op(invoke: u64, complete: Option<u64>, action: Action) -> RegisterOp {
        RegisterOp {
            history_index: 0,
            invoke,
            complete,
            action,
        }
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
