//! # The order in which CoreDNS's goroutines get the CPU
//!
//! ## Scope
//! miekg/dns `serveUDP` reads a packet and starts one goroutine per query
//! (`go srv.serveUDPPacket(...)`); the queries waiting for CPU are runnable
//! goroutines, and the Go scheduler picks the next one (`runtime/proc.go`,
//! one P, see Limitations):
//! - a new goroutine goes to the tail of the P's local run queue, a ring of
//!   [`LOCAL_RUNQ`] entries (`runqput`); when it is full, the oldest half of
//!   it and the new goroutine move to the tail of the global run queue
//!   (`runqputslow`), which has no bound;
//! - to pick the next goroutine (`schedule`, `findRunnable`): on every
//!   [`GLOBAL_CHECK_EVERY`]th pick one from the global queue if it has any
//!   ("to ensure fairness"); otherwise the local queue's head; when the local
//!   queue is empty, a batch from the global queue (`globrunqget`: the
//!   whole queue divided by GOMAXPROCS, plus one, at most half the local
//!   ring), one to run and the rest into the local queue.
//!
//! Up to [`LOCAL_RUNQ`] queries waiting, this is first in, first out. In an
//! overload the local queue holds the newest ones and is served 60 picks in
//! 61; the overflow waits in the global queue, which is served 1 pick in 61
//! and in batches when the local queue runs dry.
//!
//! Limitations: one P (GOMAXPROCS 1); CoreDNS runs with GOMAXPROCS = the
//! node's CPUs (Go before 1.25 ignores the cgroup's CPU quota), each P with
//! its own local queue and stealing from the others, so a real pod holds up
//! to 256 fresh queries per P. `runnext` is not modelled: `go` puts the new
//! goroutine in the P's `runnext` slot, run before the local queue, and
//! kicks the previous one to the local tail; as the reader takes packets in
//! bursts, that moves the last query of each burst to the front. The reader
//! goroutine's own CPU is part of the calibrated cost per query.
//!
//! ## Parameters
//! [`LOCAL_RUNQ`] 256 (`p.runq [256]guintptr`), [`GLOBAL_CHECK_EVERY`] 61
//! (`pp.schedtick%61 == 0`): Go `src/runtime/runtime2.go` and `proc.go`
//! (docs/calibration.md, row `dns-coredns-goroutine-order`).
//!
//! ## Validation
//! Unit tests in `tests.rs`: first in, first out up to 256; an overload
//! serves fresh queries within the local queue's length while the overflow
//! waits.

use std::collections::VecDeque;

/// Entries in a P's local run queue.
pub const LOCAL_RUNQ: usize = 256;
/// The scheduler picks from the global queue on every this many picks.
pub const GLOBAL_CHECK_EVERY: u32 = 61;

/// Runnable queries, by id, in the Go scheduler's order.
#[derive(Clone, Debug, Default)]
pub(super) struct RunQueue {
    local: VecDeque<u64>,
    global: VecDeque<u64>,
    schedtick: u32,
}

impl RunQueue {
    /// A new goroutine for query `id` (`runqput`).
    pub(super) fn push(&mut self, id: u64) {
        if self.local.len() >= LOCAL_RUNQ {
            // runqputslow: the oldest half of the local queue, then the new one.
            self.global.extend(self.local.drain(..LOCAL_RUNQ / 2));
            self.global.push_back(id);
            return;
        }
        self.local.push_back(id);
    }

    /// The next query to get the CPU (`schedule`).
    pub(super) fn pop(&mut self) -> Option<u64> {
        self.schedtick = self.schedtick.wrapping_add(1);
        if self.schedtick.is_multiple_of(GLOBAL_CHECK_EVERY) {
            if let Some(id) = self.global.pop_front() {
                return Some(id);
            }
        }
        if let Some(id) = self.local.pop_front() {
            return Some(id);
        }
        // globrunqget with one P: the whole queue, at most half the ring.
        let n = self.global.len().min(LOCAL_RUNQ / 2);
        let first = self.global.pop_front()?;
        self.local.extend(self.global.drain(..n - 1));
        Some(first)
    }

    /// The container is gone: no goroutine is left, and a new process
    /// starts counting its scheduler ticks afresh.
    pub(super) fn clear(&mut self) {
        self.local.clear();
        self.global.clear();
        self.schedtick = 0;
    }
}
