//! The pending-event set.
//!
//! Events are ordered by `(time, insertion sequence)`: earlier time first, and
//! among events at the same time, the one scheduled first fires first (FIFO).
//! Cancellation is lazy: a cancelled event's payload is dropped at once and
//! its heap entry is skipped when it reaches the top.

use crate::time::SimTime;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Names one scheduled event, for [`EventQueue::cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventId(u64);

/// Pending events with payloads of type `E`.
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slots: Vec<Slot<E>>,
    free: Vec<u32>,
    next_seq: u64,
    live: usize,
}

struct Slot<E> {
    seq: u64,
    payload: Option<E>,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
            live: 0,
        }
    }

    /// Adds `payload` to fire at `at`.
    pub fn schedule(&mut self, at: SimTime, payload: E) -> EventId {
        let seq = self.next_seq;
        self.next_seq += 1;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Slot {
                    seq,
                    payload: Some(payload),
                };
                i
            }
            None => {
                self.slots.push(Slot {
                    seq,
                    payload: Some(payload),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Reverse((at.as_nanos(), seq, slot)));
        self.live += 1;
        EventId(seq << 24 | u64::from(slot))
    }

    /// Cancels a pending event. Returns false if it already fired or was cancelled.
    pub fn cancel(&mut self, id: EventId) -> bool {
        let (seq, slot) = (id.0 >> 24, (id.0 & 0xFF_FFFF) as u32);
        match self.slots.get_mut(slot as usize) {
            Some(s) if s.seq == seq && s.payload.is_some() => {
                s.payload = None;
                self.live -= 1;
                true
            }
            _ => false,
        }
    }

    /// Removes and returns the earliest live event.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        while let Some(Reverse((t, seq, slot))) = self.heap.pop() {
            let s = &mut self.slots[slot as usize];
            if s.seq != seq {
                continue;
            }
            let payload = s.payload.take();
            self.free.push(slot);
            if let Some(p) = payload {
                self.live -= 1;
                return Some((SimTime::from_nanos(t), p));
            }
        }
        None
    }

    /// The time of the earliest live event.
    pub fn peek_time(&mut self) -> Option<SimTime> {
        while let Some(Reverse((t, seq, slot))) = self.heap.peek().copied() {
            let s = &self.slots[slot as usize];
            if s.seq == seq && s.payload.is_some() {
                return Some(SimTime::from_nanos(t));
            }
            self.heap.pop();
            if s.seq == seq {
                self.free.push(slot);
            }
        }
        None
    }

    /// Number of live (scheduled, not cancelled, not fired) events.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no live event is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
}
