//! The event queue: what happens next, in a total order that never depends on chance.
//!
//! Events are ordered by virtual time and, among events at the same instant, by the order
//! in which they were scheduled (a sequence number). A binary heap alone would break ties
//! arbitrarily; the sequence number makes every tie deterministic, which is half of what
//! makes a run replayable (the other half is that every random choice comes from the
//! run's seeded generator).
//!
//! The heap holds only small keys (time, sequence, slot); events themselves sit still in a
//! slab, so reordering the heap moves 24 bytes per entry rather than whole events.
//!
//! Most events of a run with zero latency are scheduled for the very instant being
//! processed (a message, a client's reply and its next request), and for those the heap
//! is wasted work: they go to a plain first-in, first-out list instead, which gives the
//! same order. Every event already in the heap for the current instant was scheduled
//! before the queue reached that instant, so before every event of the list; the queue
//! pops those first, then the list, and moves on to a later instant only when the list
//! is empty. The order is exactly the (time, sequence) order of the heap alone (a test
//! checks it against that specification).
//!
//! The queue has a bound: a run that schedules more than [`EVENTS_QUEUED_MAX`] events at
//! once is runaway, and the simulator stops it rather than exhausting memory.

use replikv_core::Instant;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Most events pending at once.
pub const EVENTS_QUEUED_MAX: usize = 4_000_000;

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    time: Instant,
    sequence: u64,
    slot: usize,
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so that the max-heap pops the earliest (time, sequence) first. Sequences
    /// are unique, so the slot never decides.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.sequence).cmp(&(self.time, self.sequence))
    }
}

/// Pending events ordered by (time, insertion sequence).
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry>,
    slots: Vec<Option<E>>,
    free_slots: Vec<usize>,
    next_sequence: u64,
    /// The time of the last event popped: the instant being processed.
    now: Instant,
    /// Events scheduled at `now` while it was being processed, in scheduling order.
    current: VecDeque<E>,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            next_sequence: 0,
            now: Instant::ZERO,
            current: VecDeque::new(),
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `time`; an error if the queue is full.
    pub fn push(&mut self, time: Instant, event: E) -> Result<(), String> {
        if self.len() >= EVENTS_QUEUED_MAX {
            return Err(format!(
                "more than {EVENTS_QUEUED_MAX} events pending: runaway simulation"
            ));
        }
        if time == self.now {
            self.current.push_back(event);
            return Ok(());
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                debug_assert!(self.slots[slot].is_none());
                self.slots[slot] = Some(event);
                slot
            }
            None => {
                self.slots.push(Some(event));
                self.slots.len() - 1
            }
        };
        self.heap.push(Entry {
            time,
            sequence,
            slot,
        });
        Ok(())
    }

    /// The earliest event, first-scheduled first among equal times.
    pub fn pop(&mut self) -> Option<(Instant, E)> {
        let heap_first = self
            .heap
            .peek()
            .is_some_and(|entry| entry.time <= self.now || self.current.is_empty());
        if !heap_first {
            return self.current.pop_front().map(|event| (self.now, event));
        }
        let entry = self.heap.pop()?;
        let event = self.slots[entry.slot]
            .take()
            .expect("a queued slot holds its event");
        self.free_slots.push(entry.slot);
        debug_assert!(entry.time >= self.now || self.current.is_empty());
        self.now = self.now.max(entry.time);
        Some((entry.time, event))
    }

    /// The time of the earliest pending event.
    #[must_use]
    pub fn peek_time(&self) -> Option<Instant> {
        let heap = self.heap.peek().map(|entry| entry.time);
        if self.current.is_empty() {
            heap
        } else {
            Some(heap.map_or(self.now, |time| time.min(self.now)))
        }
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len() + self.current.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_by_time_then_by_insertion_order() {
        let mut queue = EventQueue::default();
        let at = Instant::from_millis;
        for (time, name) in [(5, "c"), (1, "a"), (5, "d"), (1, "b"), (3, "x"), (5, "e")] {
            queue.push(at(time), name).unwrap();
        }
        assert_eq!(queue.peek_time(), Some(at(1)));
        let order: Vec<&str> = std::iter::from_fn(|| queue.pop().map(|(_, name)| name)).collect();
        assert_eq!(order, ["a", "b", "x", "c", "d", "e"]);
        assert!(queue.is_empty());
    }

    /// Pushes and pops at random, events scheduled at or after the last popped time
    /// (often at it, as with zero latency), and compares every pop with the
    /// specification: the pending event with the least (time, scheduling order).
    #[test]
    fn pops_in_time_then_scheduling_order_under_random_interleavings() {
        use rand::{Rng, SeedableRng};
        let mut random = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let mut queue = EventQueue::default();
            let mut pending: Vec<(Instant, u64)> = Vec::new();
            let (mut now, mut scheduled) = (Instant::ZERO, 0u64);
            for _ in 0..random.random_range(1..300) {
                if pending.is_empty() || random.random_bool(0.55) {
                    let time = match random.random_range(0..3u8) {
                        0 => now,
                        _ => Instant::from_millis(now.as_millis() + random.random_range(0..4)),
                    };
                    queue.push(time, scheduled).unwrap();
                    pending.push((time, scheduled));
                    scheduled += 1;
                } else {
                    let least = (0..pending.len()).min_by_key(|&i| pending[i]).unwrap();
                    let expected = pending.remove(least);
                    assert_eq!(queue.peek_time(), Some(expected.0));
                    assert_eq!(queue.pop(), Some(expected));
                    now = expected.0;
                }
                assert_eq!(queue.len(), pending.len());
            }
        }
    }
}
