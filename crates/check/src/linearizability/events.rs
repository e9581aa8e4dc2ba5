//! The time line the linearizability search walks: invocations and completions in
//! order, as two doubly linked lists that operations are lifted out of and put back
//! into in O(1) (Knuth's dancing links).
//!
//! Lowe's just-in-time search keeps one list of all events. Here the operations of
//! unknown outcome (`info`) have their invocations in a second list: they have no
//! completion, so once invoked they would sit at the head of a single list for ever, and
//! every walk from the head (the search makes one after each step) would pass all of
//! them. Both lists share one numbering of the events in time order, so "invoked before
//! this completion" is a comparison of node numbers. At equal times invocations come
//! first: operations that touch at one instant are concurrent.

use super::model::RegisterOp;

/// Marks the end of a list (and "no node").
pub(crate) const NONE: u32 = u32::MAX;

/// The head of the list of `ok` invocations and completions.
pub(crate) const OK_HEAD: u32 = 0;

/// The head of the list of `info` invocations.
pub(crate) const INFO_HEAD: u32 = 1;

/// One event: an operation's invocation or completion.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Event {
    pub(crate) op: u32,
    pub(crate) is_completion: bool,
}

/// The two lists over events numbered in time order (nodes 2.. are events).
#[derive(Debug)]
pub(crate) struct EventList {
    pub(crate) events: Vec<Event>,
    pub(crate) next: Vec<u32>,
    previous: Vec<u32>,
    pub(crate) invocation_node: Vec<u32>,
    completion_node: Vec<u32>,
}

impl EventList {
    pub(crate) fn new(ops: &[RegisterOp]) -> EventList {
        let mut timed: Vec<(u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            let index = u32::try_from(index).expect("fewer than 2^32 operations per key");
            timed.push((op.invoke, false, index));
            if let Some(complete) = op.complete {
                timed.push((complete, true, index));
            }
        }
        timed.sort_unstable();
        let sentinel = Event {
            op: NONE,
            is_completion: false,
        };
        let nodes = timed.len() + 2;
        let mut list = EventList {
            events: vec![sentinel; 2],
            next: vec![NONE; nodes],
            previous: vec![NONE; nodes],
            invocation_node: vec![NONE; ops.len()],
            completion_node: vec![NONE; ops.len()],
        };
        let mut tails = [OK_HEAD, INFO_HEAD];
        for (_, is_completion, op) in timed {
            let node = u32::try_from(list.events.len()).expect("fewer than 2^32 events");
            if is_completion {
                list.completion_node[op as usize] = node;
            } else {
                list.invocation_node[op as usize] = node;
            }
            list.events.push(Event { op, is_completion });
            let tail = &mut tails[usize::from(ops[op as usize].complete.is_none())];
            list.next[*tail as usize] = node;
            list.previous[node as usize] = *tail;
            *tail = node;
        }
        list
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

    /// Removes an operation's events from their list.
    pub(crate) fn lift(&mut self, op: u32) {
        self.unlink(self.invocation_node[op as usize]);
        let completion = self.completion_node[op as usize];
        if completion != NONE {
            self.unlink(completion);
        }
    }

    /// Undoes the most recent `lift` (must be called in reverse order of lifting).
    pub(crate) fn unlift(&mut self, op: u32) {
        let completion = self.completion_node[op as usize];
        if completion != NONE {
            self.relink(completion);
        }
        self.relink(self.invocation_node[op as usize]);
    }

    /// The first completion in the `ok` list (`NONE` if there is none).
    pub(crate) fn first_completion(&self) -> u32 {
        let mut node = self.next[OK_HEAD as usize];
        while node != NONE && !self.events[node as usize].is_completion {
            node = self.next[node as usize];
        }
        node
    }

    /// The invocations in `list` (a head) before node `before`, in order.
    pub(crate) fn invocations_before(
        &self,
        list: u32,
        before: u32,
    ) -> impl Iterator<Item = u32> + '_ {
        let mut node = self.next[list as usize];
        std::iter::from_fn(move || {
            while node != NONE && node < before {
                let current = node;
                node = self.next[node as usize];
                if !self.events[current as usize].is_completion {
                    return Some(self.events[current as usize].op);
                }
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::Action;
    use super::*;

    #[test]
    fn ok_and_info_events_go_to_their_own_lists_in_time_order() {
        let op = |invoke, complete| RegisterOp {
            history_index: 0,
            invoke,
            complete,
            action: Action::Write(1),
        };
        let ops = [op(0, Some(10)), op(5, None), op(10, Some(20)), op(7, None)];
        let mut list = EventList::new(&ops);
        let ok: Vec<u32> = list.invocations_before(OK_HEAD, NONE).collect();
        let info: Vec<u32> = list.invocations_before(INFO_HEAD, NONE).collect();
        assert_eq!((ok, info), (vec![0, 2], vec![1, 3]));
        assert_eq!(list.events[list.first_completion() as usize].op, 0);
        list.lift(0);
        list.lift(3);
        assert_eq!(
            list.invocations_before(INFO_HEAD, NONE).collect::<Vec<_>>(),
            vec![1]
        );
        assert_eq!(list.events[list.first_completion() as usize].op, 2);
        list.unlift(3);
        list.unlift(0);
        assert_eq!(list.events[list.first_completion() as usize].op, 0);
        assert_eq!(
            list.invocations_before(INFO_HEAD, NONE).collect::<Vec<_>>(),
            vec![1, 3]
        );
    }
}
