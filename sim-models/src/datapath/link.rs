//! # Links: latency, bandwidth, MTU and a finite queue
//!
//! ## Scope
//! One direction of a wire or a veth: packets wait in a FIFO transmit
//! queue (the qdisc), are serialised at the link's bandwidth and arrive one
//! latency later. A packet that finds the queue full is tail-dropped. The
//! MTU is the sending interface's (checked by the device that forwards,
//! which answers with ICMP when it is a router); `l2_mtu` is the largest
//! frame the segment beyond carries (a switch or a cloud fabric drops
//! larger frames silently: no ICMP comes back from layer 2).
//!
//! Limitations: no loss other than tail drop and MTU; no pacing, no AQM.
//!
//! ## Parameters
//! Queue: 1000 packets, Linux's default `txqueuelen` (`DEFAULT_TX_QUEUE_LEN`,
//! include/linux/if_ether.h / ether_setup(); docs/calibration.md, row
//! `link-txqueuelen`). Latency and bandwidth are given per scenario.
//!
//! ## What it emits
//! Departure and arrival times, or a [`QueueFull`] verdict.
//!
//! ## Validation
//! Unit tests: serialisation time, FIFO order, tail drop at the limit.

use sim_core::{SimDuration, SimTime};
use std::collections::VecDeque;

/// Linux's default transmit queue length \[packets\].
pub const DEFAULT_QUEUE: u32 = 1000;

/// Parameters of one direction of a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkSpec {
    /// Propagation delay.
    pub latency: SimDuration,
    /// Bandwidth \[bit/s\].
    pub bandwidth: f64,
    /// Sending interface MTU \[bytes of IP\].
    pub mtu: u32,
    /// Largest IP packet the segment beyond carries \[bytes\]; `u32::MAX`: no limit.
    pub l2_mtu: u32,
    /// Transmit queue \[packets\].
    pub queue: u32,
}

/// The queue was full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull {
    /// The limit \[packets\].
    pub limit: u32,
}

/// One direction of a link, with its queue state.
#[derive(Clone, Debug)]
pub struct Link {
    /// Parameters.
    pub spec: LinkSpec,
    /// Interface name for traces (`node-1/eth0`).
    pub name: String,
    /// Carries packets (a fault may take it down).
    pub up: bool,
    busy_until: SimTime,
    /// Finish times of the packets queued or being sent.
    backlog: VecDeque<SimTime>,
}

impl Link {
    /// An idle link.
    pub fn new(spec: LinkSpec, name: String) -> Self {
        Link {
            spec,
            name,
            up: true,
            busy_until: SimTime::ZERO,
            backlog: VecDeque::new(),
        }
    }

    /// Time to serialise `frame_bytes`.
    pub fn tx_time(&self, frame_bytes: u32) -> SimDuration {
        if self.spec.bandwidth.is_infinite() {
            return SimDuration::ZERO;
        }
        SimDuration::from_secs_f64(f64::from(frame_bytes) * 8.0 / self.spec.bandwidth)
    }

    /// Queues a frame ready at `ready` (`>= now`); returns (start of
    /// transmission, arrival at the far end).
    pub fn enqueue(
        &mut self,
        now: SimTime,
        ready: SimTime,
        frame_bytes: u32,
    ) -> Result<(SimTime, SimTime), QueueFull> {
        while self.backlog.front().is_some_and(|t| *t <= now) {
            self.backlog.pop_front();
        }
        if self.backlog.len() >= self.spec.queue as usize {
            return Err(QueueFull {
                limit: self.spec.queue,
            });
        }
        let start = ready.max(self.busy_until);
        let end = start + self.tx_time(frame_bytes);
        self.busy_until = end;
        self.backlog.push_back(end);
        Ok((start, end + self.spec.latency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(queue: u32) -> Link {
        Link::new(
            LinkSpec {
                latency: SimDuration::from_millis(1),
                bandwidth: 1e9,
                mtu: 1500,
                l2_mtu: u32::MAX,
                queue,
            },
            "eth0".into(),
        )
    }

    #[test]
    fn serialises_then_propagates_in_order() {
        let mut l = link(10);
        let t = SimTime::ZERO;
        // 1514-byte frame at 1 Gbit/s: 12.112 us.
        let (start1, arr1) = l.enqueue(t, t, 1514).unwrap();
        assert_eq!(start1.as_nanos(), 0);
        assert_eq!(arr1.as_nanos(), 1_012_112);
        let (start2, arr2) = l.enqueue(t, t, 1514).unwrap();
        assert_eq!(start2.as_nanos(), 12_112, "the second waits for the first");
        assert_eq!(arr2.as_nanos(), 1_024_224);
    }

    #[test]
    fn tail_drops_when_full() {
        let mut l = link(2);
        let t = SimTime::ZERO;
        assert!(l.enqueue(t, t, 1514).is_ok());
        assert!(l.enqueue(t, t, 1514).is_ok());
        assert_eq!(l.enqueue(t, t, 1514), Err(QueueFull { limit: 2 }));
        // Once the first has left, there is room again.
        let later = SimTime::from_nanos(12_112);
        assert!(l.enqueue(later, later, 1514).is_ok());
    }
}
