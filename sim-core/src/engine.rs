//! The simulation clock and its queue.
//!
//! A model owns an [`Engine`] and an event enum. It pops events in time order
//! with [`Engine::next_until`], handles each (mutating its own state and
//! scheduling more), and stops at the end of the run. Handling an event never
//! moves the clock backwards: scheduling in the past schedules at `now`.
//!
//! Ordering guarantee: events fire in non-decreasing time; events at the same
//! time fire in the order they were scheduled. A cancelled event never fires.

use crate::queue::{EventId, EventQueue};
use crate::time::{SimDuration, SimTime};

/// Clock plus pending events of type `E`.
pub struct Engine<E> {
    queue: EventQueue<E>,
    now: SimTime,
    fired: u64,
}

impl<E> Default for Engine<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> Engine<E> {
    /// A clock at [`SimTime::ZERO`] with nothing pending.
    pub fn new() -> Self {
        Engine {
            queue: EventQueue::new(),
            now: SimTime::ZERO,
            fired: 0,
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Number of events fired so far.
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// Number of live pending events.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Schedules `ev` at `at`, or at `now` if `at` is in the past.
    pub fn schedule_at(&mut self, at: SimTime, ev: E) -> EventId {
        self.queue.schedule(at.max(self.now), ev)
    }

    /// Schedules `ev` after `delay`.
    pub fn schedule_in(&mut self, delay: SimDuration, ev: E) -> EventId {
        self.queue.schedule(self.now + delay, ev)
    }

    /// Cancels a pending event; false if it already fired or was cancelled.
    pub fn cancel(&mut self, id: EventId) -> bool {
        self.queue.cancel(id)
    }

    /// Pops the next event due at or before `end` and advances the clock to
    /// it. Returns `None` (and sets the clock to `end`) when none is due.
    /// One pass over the queue ([`EventQueue::pop_due`]), not a peek then a pop.
    pub fn next_until(&mut self, end: SimTime) -> Option<E> {
        match self.queue.pop_due(end) {
            Some((t, ev)) => {
                self.now = t;
                self.fired += 1;
                Some(ev)
            }
            None => {
                self.now = self.now.max(end);
                None
            }
        }
    }
}
