//! The pending-event set.
//!
//! # Scope
//! [`EventQueue`] holds the events a model has scheduled and not yet handled,
//! each with a payload of the model's event type `E`. It knows nothing of
//! clocks ([`crate::Engine`] adds one) and is single-threaded.
//!
//! # Guarantees
//! - **Order.** Events come out by `(time, insertion sequence)`: earlier time
//!   first, and among events at the same time the one scheduled first comes
//!   out first (FIFO). Any time may be scheduled, even one earlier than
//!   events already popped; the order is always the global one.
//! - **Cancellation.** [`EventQueue::cancel`] returns `true` exactly once for
//!   a live event (scheduled, not popped, not cancelled) and `false` for any
//!   other id, including ids of events that fired long ago and whose storage
//!   has since been reused. A cancelled event never comes out. Its payload
//!   is dropped at once; cancelling the key is lazy: the stored key is
//!   dropped when it reaches the front or at the next compaction (see
//!   Limits).
//! - **Counting.** [`EventQueue::len`] counts live events only.
//! - **Determinism.** The output is a pure function of the sequence of
//!   calls: no addresses, hashing, clocks or platform details take part.
//!
//! # Design
//! A *monotone radix queue*: discrete-event simulation never schedules before
//! the event being handled, so all pending times lie at or after `base`, the
//! time of the last popped event, and can be bucketed by how far they are
//! from it rather than kept in a comparison heap.
//! - Entries are 16-byte keys (`time`, `ord << 32 | slot`); `ord` is a
//!   32-bit insertion counter (the FIFO tie-break) and `slot` indexes a slab
//!   holding each event's payload and identity (for cancellation). The
//!   buckets move only keys, whatever the payload's size; a payload is
//!   written once at schedule and read once at pop. Freed slots are reused
//!   last-in first-out, so the slab stays as large as the most events ever
//!   stored at once and the slots in use stay warm in the cache; nothing is
//!   allocated in steady state.
//! - **`now`**: a FIFO of the entries at exactly `base`. An event scheduled
//!   for the current instant is an O(1) append; popping is O(1).
//! - **Buckets**: an entry later than `base` goes to the bucket named by the
//!   highest 4-bit digit where its time differs from `base` (16 levels x 16
//!   digit values = 256 buckets), an O(1) append, so in-order inserts (fixed
//!   link delays) and random ones cost the same. Lower buckets hold earlier
//!   times. When `now` runs dry the lowest non-empty bucket (found from a
//!   256-bit occupancy mask) is scanned for its minimum time, which becomes
//!   `base`; its entries move to `now` or to strictly lower buckets. Each
//!   entry thus moves at most 16 times and in practice about twice
//!   (`log16` of its distance in ns), and always sequentially. A level-0
//!   bucket holds a single time and is swapped into `now` whole.
//! - Entries of equal time always share a bucket and keep insertion order
//!   there, so ties need no sorting.
//! - `early`: a binary heap for entries scheduled before `base`, which only
//!   a caller scheduling into its own past (not [`crate::Engine`], which
//!   clamps to its clock) can produce. It is consulted first and is empty
//!   under normal use.
//!
//! Cost per event is O(1) amortised, independent of the pending count up
//! to cache effects: see Validation for measured figures.
//!
//! # Limits
//! - Times are any `u64` nanoseconds, [`SimTime::MAX`] ("never") included.
//! - `ord` has 32 bits. When it runs out (after 2^32 schedules) the queue
//!   renumbers the stored entries in their current order and carries on:
//!   order is unaffected; that one schedule costs O(n log n) in the pending
//!   count.
//! - Identity ([`EventId`]) uses a separate 64-bit sequence number that no
//!   run can exhaust (2^64 schedules at 10^9 per second take 584 years), so
//!   a stale id can never cancel a newer event.
//! - At most 2^32 - 1 entries (live, or cancelled and not yet dropped) can
//!   be stored at once; see [`EventQueue::schedule`] for the panic, which
//!   memory exhaustion precedes on any real machine.
//! - Memory: once cancelled entries outnumber live events (and exceed
//!   [`COMPACT_MIN`]) they are all dropped in one O(n) pass, so stored
//!   entries stay within about twice the live count, whatever the cancel
//!   pattern (a retransmission timer rescheduled on every packet included).
//!   A drained bucket keeps its buffer only up to 256 entries and each
//!   bucket's capacity stays within `max(256, 2 x its length)`: measured
//!   bucket capacity is 1.3 to 1.6 times the pending count at 10^4 to 10^6
//!   pending events.
//!
//! # Validation
//! - Property tests (this module) run random interleavings of schedule (many
//!   ties; gaps from 0 to 2^64 ns; times in the past), cancel, pop, pop-due
//!   and peek against a reference model (a vector searched for its minimum),
//!   checking every result, `len`, that cancel is true exactly once per live
//!   event, that no cancelled event fires, and every structural invariant
//!   after each step; also across an `ord` renumbering, under heavy
//!   cancelling, and used as the engine uses it (`early` stays empty).
//!   `tests/determinism.rs` checks that a seeded model replays identically
//!   and that another stream name changes it.
//! - The `engine` criterion bench (`cargo bench -p knsim-benches --bench
//!   engine`) runs the classic hold model (pop the earliest, schedule one at
//!   `now + Exp(1 us)`) with 10^3 to 10^6 pending events and a 16-byte
//!   event enum. On the 2-core development VM: about 20 M events/s at 10^3
//!   to 10^5 pending and 9 M/s at 10^6 (cold caches), against 8 M/s at 10^3
//!   falling to 0.6 M/s at 10^6 for the binary heap with out-of-line
//!   payloads it replaced.

use crate::time::SimTime;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::num::NonZeroU64;

/// Names one scheduled event, for [`EventQueue::cancel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventId {
    seq: NonZeroU64,
    slot: u32,
}

/// Cancelled entries are dropped in bulk once there are more of them than
/// live events and at least this many.
pub const COMPACT_MIN: usize = 64;

/// Bits per radix digit.
const DIGIT_BITS: u32 = 4;
/// Values of one digit, and buckets per level.
const DIGITS: usize = 1 << DIGIT_BITS;
/// Digits in a 64-bit time.
const LEVELS: usize = 64 / DIGIT_BITS as usize;
const BUCKETS: usize = LEVELS * DIGITS;
/// `ord` values available before the stored entries are renumbered.
const ORD_LIMIT: u64 = 1 << 32;
/// `slots` value of a slot whose event is not pending.
const NOT_PENDING: u64 = 0;
/// A drained bucket keeps its buffer for reuse up to this many entries;
/// larger buffers are freed, so idle buckets do not hoard memory.
const KEEP_CAPACITY: usize = 256;

/// `buf`, emptied, if small enough to keep; else a fresh unallocated one.
fn recycle<T>(mut buf: Vec<T>) -> Vec<T> {
    if buf.capacity() > KEEP_CAPACITY {
        return Vec::new();
    }
    buf.clear();
    buf
}

/// One stored event's key: its time and `tag = ord << 32 | slot`; the
/// payload waits in `slab[slot]`. Entries order by `(time, ord)`; the slot
/// never decides, `ord`s being unique.
#[derive(Clone, Copy)]
struct Entry {
    time: u64,
    tag: u64,
}

impl Entry {
    #[inline]
    fn key(&self) -> (u64, u64) {
        (self.time, self.tag)
    }

    #[inline]
    fn slot(&self) -> usize {
        self.tag as u32 as usize
    }
}

/// An entry in the `early` heap: [`BinaryHeap`] is a max-heap, so the
/// order is reversed.
struct Early(Entry);

impl PartialEq for Early {
    fn eq(&self, other: &Self) -> bool {
        self.0.key() == other.0.key()
    }
}

impl Eq for Early {}

impl PartialOrd for Early {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Early {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.key().cmp(&self.0.key())
    }
}

/// The bucket of a time later than `base`: the highest 4-bit digit where the
/// two differ (the level), then that digit of `time`. Lower buckets hold
/// earlier times, and the bucket stays right when `base` moves up to any
/// time in a lower bucket.
#[inline]
fn bucket_of(time: u64, base: u64) -> usize {
    debug_assert!(time > base);
    let level = (time ^ base).ilog2() / DIGIT_BITS;
    let digit = (time >> (level * DIGIT_BITS)) as usize & (DIGITS - 1);
    level as usize * DIGITS + digit
}

/// One slab slot: the `seq` of its pending event (or [`NOT_PENDING`]) and
/// that event's payload until it is popped or cancelled.
struct Slot<E> {
    seq: u64,
    payload: Option<E>,
}

/// Pending events with payloads of type `E`.
pub struct EventQueue<E> {
    /// No stored entry outside `early` is earlier than this.
    base: u64,
    /// Entries at exactly `base`, in `ord` order.
    now: VecDeque<Entry>,
    /// Entries later than `base`, by [`bucket_of`]. Unordered, except that
    /// entries of equal time keep `ord` order.
    buckets: Vec<Vec<Entry>>,
    /// Bit `i` is set iff `buckets[i]` is non-empty.
    occupied: [u64; BUCKETS / 64],
    /// Entries earlier than `base` (only when a caller schedules before an
    /// event it already popped); always empty under [`crate::Engine`].
    early: BinaryHeap<Early>,
    /// The payloads, by slot: a stored entry's slot stays taken until the
    /// entry is removed, so a slot is reused only once no key names it.
    slots: Vec<Slot<E>>,
    /// Slots referenced by no stored entry.
    free: Vec<u32>,
    /// Next identity; never reused.
    next_seq: NonZeroU64,
    /// Next FIFO tie-break; renumbered at [`ORD_LIMIT`].
    next_ord: u64,
    /// Live events.
    live: usize,
    /// Entries of cancelled events still stored.
    dead: usize,
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
            base: 0,
            now: VecDeque::new(),
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            occupied: [0; BUCKETS / 64],
            early: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: NonZeroU64::MIN,
            next_ord: 0,
            live: 0,
            dead: 0,
        }
    }

    /// Adds `payload` to fire at `at`.
    ///
    /// # Panics
    /// If 2^32 - 1 events are already stored at once (live, or cancelled and
    /// not yet dropped). That takes over 100 GB of memory, so allocation fails
    /// first on any real machine.
    #[inline]
    pub fn schedule(&mut self, at: SimTime, payload: E) -> EventId {
        if self.next_ord == ORD_LIMIT {
            self.renumber();
        }
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).expect("2^64 events scheduled");
        let filled = Slot {
            seq: seq.get(),
            payload: Some(payload),
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = filled;
                i
            }
            None => {
                let i = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&i| i < u32::MAX)
                    .expect("more than 2^32 - 1 pending events");
                self.slots.push(filled);
                i
            }
        };
        self.push_entry(Entry {
            time: at.as_nanos(),
            tag: self.next_ord << 32 | u64::from(slot),
        });
        self.next_ord += 1;
        self.live += 1;
        EventId { seq, slot }
    }

    /// Cancels a pending event. Returns false if it already fired or was cancelled.
    pub fn cancel(&mut self, id: EventId) -> bool {
        match self.slots.get_mut(id.slot as usize) {
            Some(s) if s.seq == id.seq.get() => {
                s.seq = NOT_PENDING;
                s.payload = None;
                self.live -= 1;
                self.dead += 1;
                if self.dead > self.live && self.dead >= COMPACT_MIN {
                    self.compact();
                }
                true
            }
            _ => false,
        }
    }

    /// Removes and returns the earliest live event.
    #[inline]
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        self.pop_due(SimTime::MAX)
    }

    /// Removes and returns the earliest live event if it is due at or before
    /// `end`; otherwise leaves every live event in place. One pass: cheaper
    /// than [`EventQueue::peek_time`] then [`EventQueue::pop`].
    #[inline]
    pub fn pop_due(&mut self, end: SimTime) -> Option<(SimTime, E)> {
        loop {
            let e = self.pop_entry(end.as_nanos())?;
            if let Some(payload) = self.release(e) {
                return Some((SimTime::from_nanos(e.time), payload));
            }
        }
    }

    /// The time of the earliest live event.
    pub fn peek_time(&mut self) -> Option<SimTime> {
        loop {
            let (time, tag) = self.front_key()?;
            if self.slots[tag as u32 as usize].seq != NOT_PENDING {
                return Some(SimTime::from_nanos(time));
            }
            // The front entry is cancelled: drop it and look again.
            let dropped = self.pop_entry(time).expect("the front entry is due");
            self.release(dropped);
        }
    }

    /// Number of live (scheduled, not cancelled, not fired) events.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no live event is pending.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Frees the slot of an entry just removed; returns its event's payload
    /// if the event was live (a cancelled one's payload is already gone).
    #[inline]
    fn release(&mut self, e: Entry) -> Option<E> {
        let slot = e.slot();
        let s = &mut self.slots[slot];
        s.seq = NOT_PENDING;
        let payload = s.payload.take();
        self.free.push(slot as u32);
        if payload.is_some() {
            self.live -= 1;
        } else {
            self.dead -= 1;
        }
        payload
    }

    #[inline]
    fn push_entry(&mut self, e: Entry) {
        if e.time == self.base {
            self.now.push_back(e);
        } else if e.time > self.base {
            let i = bucket_of(e.time, self.base);
            self.buckets[i].push(e);
            self.occupied[i / 64] |= 1 << (i % 64);
        } else {
            self.early.push(Early(e));
        }
    }

    /// The lowest non-empty bucket.
    #[inline]
    fn lowest(&self) -> Option<usize> {
        let (w, bits) = self.occupied.iter().enumerate().find(|(_, &b)| b != 0)?;
        Some(w * 64 + bits.trailing_zeros() as usize)
    }

    /// The key of the smallest stored entry, live or not.
    fn front_key(&self) -> Option<(u64, u64)> {
        if let Some(Early(e)) = self.early.peek() {
            return Some(e.key());
        }
        if let Some(e) = self.now.front() {
            return Some(e.key());
        }
        self.buckets[self.lowest()?].iter().map(Entry::key).min()
    }

    /// Removes and returns the smallest stored entry if its time is at most
    /// `end`.
    #[inline]
    fn pop_entry(&mut self, end: u64) -> Option<Entry> {
        if let Some(Early(e)) = self.early.peek() {
            if e.time > end {
                return None;
            }
            return self.early.pop().map(|Early(e)| e);
        }
        if self.now.is_empty() {
            let i = self.lowest()?;
            if let [only] = &self.buckets[i][..] {
                // Alone in the lowest bucket: it is the minimum. Common when
                // pending times are sparse.
                if only.time > end {
                    return None;
                }
                self.base = only.time;
                self.occupied[i / 64] &= !(1 << (i % 64));
                return self.buckets[i].pop();
            }
            if !self.refill(i, end) {
                return None;
            }
        }
        if self.base > end {
            return None;
        }
        self.now.pop_front()
    }

    /// With `now` and `early` empty and `i` the lowest non-empty bucket: if
    /// the earliest stored time is at most `end`, moves `base` to it and
    /// redistributes bucket `i`, which puts every entry at that time into
    /// `now`. Returns whether it did.
    fn refill(&mut self, i: usize, end: u64) -> bool {
        if i < DIGITS {
            // Level 0: the bucket holds one time, in `ord` order. Swap it
            // in whole (`now` is empty, and both conversions are O(1)).
            let time = self.buckets[i][0].time;
            if time > end {
                return false;
            }
            self.base = time;
            self.occupied[0] &= !(1 << i);
            let items = VecDeque::from(std::mem::take(&mut self.buckets[i]));
            self.buckets[i] = recycle(Vec::from(std::mem::replace(&mut self.now, items)));
            return true;
        }
        let min = match self.buckets[i].iter().map(|e| e.time).min() {
            Some(t) if t <= end => t,
            _ => return false,
        };
        self.base = min;
        self.occupied[i / 64] &= !(1 << (i % 64));
        let mut items = std::mem::take(&mut self.buckets[i]);
        // Each entry shares bucket `i`'s digits with `min`, so it lands in
        // `now` or in a strictly lower bucket, never back in `i`. Entries of
        // equal time sit together in one bucket in `ord` order (pushes append
        // the newest, moves keep order), so `now` comes out in `ord` order
        // without sorting.
        for e in items.drain(..) {
            self.push_entry(e);
        }
        self.buckets[i] = recycle(items);
        true
    }

    /// Drops every cancelled entry and frees its slot, in O(n).
    fn compact(&mut self) {
        let slots = &self.slots;
        let free = &mut self.free;
        let mut keep = |e: &Entry| {
            let live = slots[e.slot()].seq != NOT_PENDING;
            if !live {
                free.push(e.slot() as u32);
            }
            live
        };
        self.early.retain(|Early(e)| keep(e));
        self.now.retain(&mut keep);
        for (i, bucket) in self.buckets.iter_mut().enumerate() {
            if !bucket.is_empty() {
                bucket.retain(&mut keep);
                if bucket.is_empty() {
                    self.occupied[i / 64] &= !(1 << (i % 64));
                }
                if bucket.capacity() > KEEP_CAPACITY.max(2 * bucket.len()) {
                    bucket.shrink_to(KEEP_CAPACITY.max(bucket.len()));
                }
            }
        }
        self.now.shrink_to(KEEP_CAPACITY.max(2 * self.now.len()));
        self.dead = 0;
    }

    /// Gives the stored entries fresh `ord`s `0..n` in their current order,
    /// dropping cancelled ones on the way.
    fn renumber(&mut self) {
        self.compact();
        let mut all: Vec<Entry> = self
            .early
            .drain()
            .map(|Early(e)| e)
            .chain(self.now.drain(..))
            .collect();
        for bucket in &mut self.buckets {
            all.append(bucket);
            *bucket = recycle(std::mem::take(bucket));
        }
        self.occupied = [0; BUCKETS / 64];
        all.sort_unstable_by_key(Entry::key);
        for (ord, e) in all.iter_mut().enumerate() {
            e.tag = (ord as u64) << 32 | (e.tag & u64::from(u32::MAX));
        }
        self.next_ord = all.len() as u64;
        for e in all {
            self.push_entry(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::Rng;

    impl<E> EventQueue<E> {
        /// Every structural invariant the queue relies on.
        fn check_invariants(&self) {
            assert!(self.early.iter().all(|Early(e)| e.time < self.base));
            assert!(self.now.iter().all(|e| e.time == self.base));
            assert!(self
                .now
                .iter()
                .zip(self.now.iter().skip(1))
                .all(|(a, b)| a.tag < b.tag));
            let mut stored = self.early.len() + self.now.len();
            for (i, bucket) in self.buckets.iter().enumerate() {
                assert_eq!(
                    self.occupied[i / 64] >> (i % 64) & 1 == 1,
                    !bucket.is_empty()
                );
                // Memory: no bucket hoards a buffer much larger than it needs.
                assert!(bucket.capacity() <= KEEP_CAPACITY.max(2 * bucket.len()));
                assert!(bucket
                    .iter()
                    .all(|e| e.time > self.base && bucket_of(e.time, self.base) == i));
                // Equal times keep `ord` order inside a bucket.
                let mut last_tag = std::collections::HashMap::new();
                for e in bucket {
                    if let Some(prev) = last_tag.insert(e.time, e.tag) {
                        assert!(prev < e.tag);
                    }
                }
                stored += bucket.len();
            }
            assert_eq!(stored, self.live + self.dead);
            assert_eq!(self.slots.len(), stored + self.free.len());
            let pending = self.slots.iter().filter(|s| s.seq != NOT_PENDING).count();
            assert_eq!(pending, self.live);
            // A slot holds a payload exactly while its event is pending.
            assert!(self
                .slots
                .iter()
                .all(|s| s.payload.is_some() == (s.seq != NOT_PENDING)));
        }

        fn stored(&self) -> usize {
            self.live + self.dead
        }
    }

    #[test]
    fn entries_and_ids_are_small() {
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        assert_eq!(std::mem::size_of::<Option<EventId>>(), 16);
    }

    #[test]
    fn buckets_follow_time_order() {
        let base = 0x1234_5678;
        let times = [
            base + 1,
            base + 15,
            base + 16,
            base + 255,
            base + 4096,
            u64::MAX,
        ];
        let idx: Vec<usize> = times.iter().map(|&t| bucket_of(t, base)).collect();
        assert!(idx.windows(2).all(|w| w[0] <= w[1]), "{idx:?}");
        assert_eq!(bucket_of(u64::MAX, 0), BUCKETS - 1);
    }

    #[test]
    fn ties_fire_in_scheduling_order() {
        let mut q = EventQueue::new();
        let t = SimTime::from_nanos(5);
        for i in 0..10 {
            q.schedule(
                if i % 3 == 0 {
                    t
                } else {
                    SimTime::from_nanos(9)
                },
                i,
            );
        }
        let order: Vec<i32> = std::iter::from_fn(|| q.pop().map(|(_, p)| p)).collect();
        assert_eq!(order, vec![0, 3, 6, 9, 1, 2, 4, 5, 7, 8]);
    }

    #[test]
    fn far_future_and_never() {
        let mut q = EventQueue::new();
        q.schedule(SimTime::MAX, "never");
        q.schedule(SimTime::from_nanos(1 << 62), "far");
        q.schedule(SimTime::from_nanos(3), "soon");
        assert_eq!(q.pop_due(SimTime::from_nanos(2)), None);
        assert_eq!(q.pop(), Some((SimTime::from_nanos(3), "soon")));
        assert_eq!(q.pop(), Some((SimTime::from_nanos(1 << 62), "far")));
        assert_eq!(q.pop(), Some((SimTime::MAX, "never")));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn stale_ids_never_cancel_reused_slots() {
        let mut q = EventQueue::new();
        let a = q.schedule(SimTime::from_nanos(1), 'a');
        assert_eq!(q.pop(), Some((SimTime::from_nanos(1), 'a')));
        let b = q.schedule(SimTime::from_nanos(2), 'b');
        assert_eq!(a.slot, b.slot, "the slot is reused");
        assert!(!q.cancel(a));
        assert_eq!(q.len(), 1);
        assert!(q.cancel(b));
        assert!(!q.cancel(b));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn cancelled_entries_are_compacted() {
        let mut q = EventQueue::new();
        let keep = q.schedule(SimTime::from_nanos(1_000_000), u64::MAX);
        // A timer rescheduled on every packet: cancel, schedule later.
        let mut timer = q.schedule(SimTime::from_nanos(10), 0);
        for i in 1..10_000u64 {
            assert!(q.cancel(timer));
            timer = q.schedule(SimTime::from_nanos(10 + i), i);
            assert!(q.stored() <= 2 * q.len() + COMPACT_MIN);
        }
        q.check_invariants();
        assert!(q.slots.len() <= 2 * COMPACT_MIN + 4);
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some((SimTime::from_nanos(10_009), 9_999)));
        assert!(q.cancel(keep));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn memory_stays_bounded_in_a_long_hold() {
        // Buckets of several hundred entries each, drained and refilled
        // many times over.
        let mut rng = crate::RngStreams::new(7).stream("queue/hold");
        let mut q = EventQueue::new();
        for i in 0..5_000u64 {
            q.schedule(SimTime::from_nanos(rng.next_u64() % 65_536), i);
        }
        for step in 0..50_000u64 {
            let (now, i) = q.pop().expect("hold keeps 5000 pending");
            q.schedule(
                now + crate::SimDuration::from_nanos(rng.next_u64() % 65_536),
                i,
            );
            if step % 5_000 == 0 {
                q.check_invariants();
            }
        }
        q.check_invariants();
        let capacity: usize = q.buckets.iter().map(Vec::capacity).sum();
        assert!(
            capacity <= 2 * q.len() + BUCKETS * KEEP_CAPACITY / 8,
            "{capacity}"
        );
    }

    #[test]
    fn ord_renumbering_keeps_fifo_order() {
        let mut q = EventQueue::new();
        q.next_ord = ORD_LIMIT - 3;
        for i in 0..8 {
            q.schedule(SimTime::from_nanos(7 + (i % 2) * 100), i);
        }
        q.check_invariants();
        assert!(q.next_ord < 16, "renumbered");
        let order: Vec<u64> = std::iter::from_fn(|| q.pop().map(|(_, p)| p)).collect();
        assert_eq!(order, vec![0, 2, 4, 6, 1, 3, 5, 7]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Schedule this many ns after the last popped time (or, if
        /// `absolute`, at exactly this time, possibly in the past).
        Schedule {
            t: u64,
            absolute: bool,
        },
        Cancel(usize),
        Pop,
        PopDue(u64),
        Peek,
    }

    /// Times that hit every radix level: many ties, small and huge gaps,
    /// the far end of the clock.
    fn time() -> impl Strategy<Value = u64> {
        prop_oneof![
            4 => 0u64..40,
            2 => 0u64..100_000,
            1 => (0u32..64).prop_map(|b| 1u64 << b),
            1 => any::<u64>(),
            1 => Just(u64::MAX),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            5 => (time(), prop::bool::weighted(0.2))
                .prop_map(|(t, absolute)| Op::Schedule { t, absolute }),
            3 => any::<usize>().prop_map(Op::Cancel),
            3 => Just(Op::Pop),
            1 => time().prop_map(Op::PopDue),
            1 => Just(Op::Peek),
        ]
    }

    /// The reference: live events as (time, schedule index), searched for
    /// the minimum.
    #[derive(Default)]
    struct Model {
        live: Vec<(u64, usize)>,
    }

    impl Model {
        fn pop_due(&mut self, end: u64) -> Option<(u64, usize)> {
            let (i, &ev) = self.live.iter().enumerate().min_by_key(|(_, ev)| **ev)?;
            (ev.0 <= end).then(|| self.live.swap_remove(i))
        }
    }

    fn run_ops(ops: &[Op], ord_start: u64) -> Result<(), TestCaseError> {
        let mut q = EventQueue::new();
        q.next_ord = ord_start;
        let mut model = Model::default();
        let mut ids = Vec::new();
        let mut fired = vec![];
        let mut cancelled = vec![];
        let mut last = 0u64;
        for op in ops {
            match *op {
                Op::Schedule { t, absolute } => {
                    let t = if absolute { t } else { last.saturating_add(t) };
                    let n = ids.len();
                    ids.push(q.schedule(SimTime::from_nanos(t), n));
                    model.live.push((t, n));
                }
                Op::Cancel(i) if !ids.is_empty() => {
                    let n = i % ids.len();
                    let want = model.live.iter().position(|ev| ev.1 == n);
                    let got = q.cancel(ids[n]);
                    prop_assert_eq!(got, want.is_some(), "cancel #{}", n);
                    if let Some(at) = want {
                        model.live.swap_remove(at);
                        cancelled.push(n);
                    }
                    prop_assert!(!q.cancel(ids[n]), "second cancel of #{}", n);
                }
                Op::Cancel(_) => {}
                Op::Pop | Op::PopDue(_) => {
                    let end = match *op {
                        Op::PopDue(e) => last.saturating_add(e),
                        _ => u64::MAX,
                    };
                    let want = model.pop_due(end);
                    let got = q
                        .pop_due(SimTime::from_nanos(end))
                        .map(|(t, p)| (t.as_nanos(), p));
                    prop_assert_eq!(got, want);
                    if let Some((t, n)) = got {
                        last = t;
                        fired.push(n);
                    }
                }
                Op::Peek => {
                    let want = model.live.iter().min().map(|ev| ev.0);
                    prop_assert_eq!(q.peek_time().map(SimTime::as_nanos), want);
                }
            }
            q.check_invariants();
            prop_assert_eq!(q.len(), model.live.len());
            prop_assert_eq!(q.is_empty(), model.live.is_empty());
        }
        // Drain: the rest comes out in (time, schedule order).
        let mut rest = model.live.clone();
        rest.sort_unstable();
        let got: Vec<(u64, usize)> = std::iter::from_fn(|| q.pop())
            .map(|(t, p)| (t.as_nanos(), p))
            .collect();
        prop_assert_eq!(&got, &rest);
        fired.extend(got.iter().map(|ev| ev.1));
        for n in cancelled {
            prop_assert!(!fired.contains(&n), "cancelled #{} fired", n);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Pops come out in (time, insertion) order, exactly as the model's.
        #[test]
        fn matches_reference_model(ops in prop::collection::vec(op(), 0..300)) {
            run_ops(&ops, 0)?;
        }

        /// The same across an `ord` renumbering.
        #[test]
        fn matches_reference_model_across_renumbering(
            ops in prop::collection::vec(op(), 0..300),
            before in 0u64..100,
        ) {
            run_ops(&ops, ORD_LIMIT - before)?;
        }

        /// Used the way [`crate::Engine`] uses it (never scheduling before
        /// its clock, which `pop_due` moves to the popped time or to `end`),
        /// the queue never needs its `early` heap.
        #[test]
        fn engine_use_stays_on_the_fast_path(
            steps in prop::collection::vec((time(), 0u64..5_000, any::<bool>()), 0..300),
        ) {
            let mut q = EventQueue::new();
            let mut clock = 0u64;
            for (dt, horizon, pop) in steps {
                if pop {
                    let end = clock + horizon;
                    clock = match q.pop_due(SimTime::from_nanos(end)) {
                        Some((t, ())) => t.as_nanos(),
                        None => clock.max(end),
                    };
                } else {
                    q.schedule(SimTime::from_nanos(clock.saturating_add(dt)), ());
                }
                prop_assert!(q.early.is_empty());
            }
        }

    }

    /// A payload that notes its own drop.
    struct Tracked {
        n: usize,
        drops: std::rc::Rc<std::cell::RefCell<Vec<usize>>>,
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            self.drops.borrow_mut().push(self.n);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// The slab conserves payloads: each is dropped exactly once, a
        /// cancelled one at its cancel, a popped one by its receiver, the
        /// rest with the queue; popped payloads are the ones scheduled.
        #[test]
        fn payloads_are_conserved(ops in prop::collection::vec(op(), 0..300)) {
            let drops = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let mut q = EventQueue::new();
            let mut model = Model::default();
            let mut ids = Vec::new();
            let mut last = 0u64;
            for op in &ops {
                match *op {
                    Op::Schedule { t, absolute } => {
                        let t = if absolute { t } else { last.saturating_add(t) };
                        let n = ids.len();
                        let payload = Tracked { n, drops: drops.clone() };
                        ids.push(q.schedule(SimTime::from_nanos(t), payload));
                        model.live.push((t, n));
                    }
                    Op::Cancel(i) if !ids.is_empty() => {
                        let n = i % ids.len();
                        if q.cancel(ids[n]) {
                            let last_drop = drops.borrow().last().copied();
                            prop_assert_eq!(last_drop, Some(n));
                            let at = model.live.iter().position(|ev| ev.1 == n).unwrap();
                            model.live.swap_remove(at);
                        }
                    }
                    Op::Cancel(_) | Op::Peek => {}
                    Op::Pop | Op::PopDue(_) => {
                        let end = match *op {
                            Op::PopDue(e) => last.saturating_add(e),
                            _ => u64::MAX,
                        };
                        let want = model.pop_due(end);
                        let got = q.pop_due(SimTime::from_nanos(end));
                        prop_assert_eq!(got.as_ref().map(|(t, p)| (t.as_nanos(), p.n)), want);
                        if let Some((t, _)) = got {
                            last = t.as_nanos();
                        }
                    }
                }
                q.check_invariants();
            }
            drop(q);
            let mut dropped = drops.borrow().clone();
            dropped.sort_unstable();
            prop_assert_eq!(dropped, (0..ids.len()).collect::<Vec<_>>());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Heavy cancelling (compaction) interleaved with a hold-like
        /// pattern: each pop followed by schedules a little later.
        #[test]
        fn cancel_heavy_hold(
            steps in prop::collection::vec((0u64..3_000, 0usize..64), 0..400),
        ) {
            let mut ops = Vec::new();
            for (t, i) in steps {
                ops.push(Op::Schedule { t, absolute: false });
                ops.push(Op::Cancel(i * 7));
                if i % 3 == 0 {
                    ops.push(Op::Pop);
                }
            }
            run_ops(&ops, 0)?;
        }
    }
}
