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
//! The queue has a bound: a run that schedules more than [`EVENTS_QUEUED_MAX`] events at
//! once is runaway, and the simulator stops it rather than exhausting memory.

use replikv_core::Instant;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

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
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            next_sequence: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// Schedules `event` at `time`; an error if the queue is full.
    pub fn push(&mut self, time: Instant, event: E) -> Result<(), String> {
        if self.heap.len() >= EVENTS_QUEUED_MAX {
            return Err(format!(
                "more than {EVENTS_QUEUED_MAX} events pending: runaway simulation"
            ));
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
        let entry = self.heap.pop()?;
        let event = self.slots[entry.slot]
            .take()
            .expect("a queued slot holds its event");
        self.free_slots.push(entry.slot);
        Some((entry.time, event))
    }

    /// The time of the earliest pending event.
    #[must_use]
    pub fn peek_time(&self) -> Option<Instant> {
        self.heap.peek().map(|entry| entry.time)
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
}
