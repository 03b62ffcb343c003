//! # The proxies' per-try timers, woken by one event
//!
//! ## Scope
//! Every try an Envoy proxy sends arms a timer: its per-try timeout, or the
//! route's, or the application's deadline, whichever comes first; the try
//! ends there unless it ended before. Nearly every try ends before (the
//! timers are for the failures), so the run keeps the armed timers here and
//! asks the event queue for one wake-up, at the earliest timer whose try is
//! still in flight, instead of one event per try.
//!
//! Timers are kept per *lane* (the caller's traffic source): a source's
//! first tries share one timeout, so their deadlines come in the order they
//! are armed and a lane is a FIFO (O(1) to arm and to drop). A timer that
//! would come before its lane's last (a retry, whose deadline is the
//! route's, armed after later first tries) goes to a heap ordered by
//! deadline. Timers whose try has ended stay until they reach the front,
//! where [`TryTimers::next_wake`] drops them: each timer is touched a fixed
//! number of times, and a wake-up happens about once per timeout period in
//! steady state, not once per try.
//!
//! Order: the timers due at one instant fire in the order they were armed
//! (their `seq`), as the events of the same instant would have.
//!
//! ## Parameters
//! None: the deadlines are the caller's (sim_models::mesh::rules: per-try
//! and route timeouts; the application's timeout).
//!
//! ## What it emits
//! The timers due at a wake-up, in order; the time of the next wake-up.
//!
//! ## Validation
//! Unit tests: FIFO and heap timers fire at their deadlines in arm order,
//! ended tries never fire and never cause a wake-up, an earlier timer asks
//! for an earlier wake-up; the cluster run's goldens (every mesh replay)
//! are byte for byte those of one event per try.

use sim_core::SimTime;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// One armed timer.
#[derive(Clone, Debug)]
struct Timer<T> {
    at: SimTime,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Timer<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<T> Eq for Timer<T> {}
impl<T> PartialOrd for Timer<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Timer<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// The armed timers of the run's tries.
#[derive(Clone, Debug)]
pub struct TryTimers<T> {
    lanes: Vec<VecDeque<Timer<T>>>,
    heap: BinaryHeap<Reverse<Timer<T>>>,
    /// The wake-up the caller has scheduled and not yet had, if any.
    wake: Option<SimTime>,
    /// The timers due at a wake-up, sorted by `seq` (kept for its buffer).
    due: Vec<Timer<T>>,
}

impl<T> TryTimers<T> {
    /// No timer armed, `lanes` lanes.
    pub fn new(lanes: usize) -> Self {
        TryTimers {
            lanes: (0..lanes).map(|_| VecDeque::new()).collect(),
            heap: BinaryHeap::new(),
            wake: None,
            due: Vec::new(),
        }
    }

    /// Arms a timer for `item` at `at` in lane `lane`; `seq` grows with
    /// every timer armed (timers due at one instant fire in its order).
    /// Returns the time of a wake-up the caller must schedule (and its
    /// previous one, if any, cancel): when nothing is scheduled at or
    /// before `at`.
    pub fn arm(&mut self, lane: usize, at: SimTime, seq: u64, item: T) -> Option<SimTime> {
        let t = Timer { at, seq, item };
        let q = &mut self.lanes[lane];
        if q.back().is_none_or(|b| b.at <= at) {
            q.push_back(t);
        } else {
            self.heap.push(Reverse(t));
        }
        if self.wake.is_some_and(|w| w <= at) {
            return None;
        }
        self.wake = Some(at);
        Some(at)
    }

    /// The wake-up at `now` came: the timers due by then whose try has not
    /// ended (`ended`), in the order they fire, into `out` (cleared first);
    /// the others are dropped. Until [`TryTimers::next_wake`], timers
    /// armed at `now` or later ask for no wake-up.
    pub fn take_due(&mut self, now: SimTime, ended: impl Fn(&T) -> bool, out: &mut Vec<T>) {
        self.wake = Some(now);
        self.due.clear();
        for q in &mut self.lanes {
            while let Some(f) = q.pop_front_if(|f| f.at <= now) {
                if !ended(&f.item) {
                    self.due.push(f);
                }
            }
        }
        while self.heap.peek().is_some_and(|f| f.0.at <= now) {
            if let Some(Reverse(f)) = self.heap.pop() {
                if !ended(&f.item) {
                    self.due.push(f);
                }
            }
        }
        self.due.sort_unstable_by_key(|t| t.seq);
        out.clear();
        out.extend(self.due.drain(..).map(|t| t.item));
    }

    /// After a wake-up's timers have fired: drops the timers at the front
    /// whose try has ended (`ended`) and returns the next wake-up to
    /// schedule, at the earliest timer left, if any.
    pub fn next_wake(&mut self, ended: impl Fn(&T) -> bool) -> Option<SimTime> {
        let mut next: Option<SimTime> = None;
        for q in &mut self.lanes {
            while q.front().is_some_and(|f| ended(&f.item)) {
                q.pop_front();
            }
            if let Some(f) = q.front() {
                next = Some(next.map_or(f.at, |n| n.min(f.at)));
            }
        }
        while self.heap.peek().is_some_and(|f| ended(&f.0.item)) {
            self.heap.pop();
        }
        if let Some(f) = self.heap.peek() {
            next = Some(next.map_or(f.0.at, |n| n.min(f.0.at)));
        }
        self.wake = next;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::SimDuration;
    use std::collections::HashSet;

    fn at(ms: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_millis(ms)
    }

    #[test]
    fn timers_fire_at_their_deadlines_in_arm_order() {
        let mut t = TryTimers::new(2);
        // The first timer asks for a wake-up; later ones do not.
        assert_eq!(t.arm(0, at(100), 1, 'a'), Some(at(100)));
        assert_eq!(t.arm(0, at(150), 2, 'b'), None);
        assert_eq!(t.arm(1, at(100), 3, 'c'), None);
        // Out of its lane's order: to the heap; earlier: a new wake-up.
        assert_eq!(t.arm(0, at(50), 4, 'd'), Some(at(50)));
        let mut out = Vec::new();
        t.take_due(at(50), |_| false, &mut out);
        assert_eq!(out, vec!['d']);
        assert_eq!(t.next_wake(|_| false), Some(at(100)));
        t.take_due(at(100), |_| false, &mut out);
        assert_eq!(out, vec!['a', 'c'], "same instant: arm order across lanes");
        assert_eq!(t.next_wake(|_| false), Some(at(150)));
        t.take_due(at(150), |_| false, &mut out);
        assert_eq!(out, vec!['b']);
        assert_eq!(t.next_wake(|_| false), None);
    }

    #[test]
    fn ended_tries_are_dropped_and_wake_nobody() {
        let mut t = TryTimers::new(1);
        for i in 0..1_000u64 {
            t.arm(0, at(1_000 + i), i, i);
        }
        // All but the last ended long before their deadlines.
        let live: HashSet<u64> = [999].into();
        let mut out = Vec::new();
        t.take_due(at(1_000), |i| !live.contains(i), &mut out);
        assert!(out.is_empty());
        assert_eq!(t.next_wake(|i| !live.contains(i)), Some(at(1_999)));
        t.take_due(at(1_999), |i| !live.contains(i), &mut out);
        assert_eq!(out, vec![999]);
        assert_eq!(t.next_wake(|i| !live.contains(i)), None);
    }

    #[test]
    fn timers_armed_while_firing_wait_for_the_next_wake() {
        let mut t = TryTimers::new(1);
        t.arm(0, at(10), 1, 1);
        let mut out = Vec::new();
        t.take_due(at(10), |_| false, &mut out);
        // Armed during the wake-up (a retry's try): no wake-up asked yet.
        assert_eq!(t.arm(0, at(30), 2, 2), None);
        assert_eq!(t.next_wake(|_| false), Some(at(30)));
    }
}
