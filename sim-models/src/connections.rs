//! # Client connections: per request, keep-alive pools, long-lived (gRPC)
//!
//! ## Scope
//! How a client's requests map onto TCP connections, and how a connection
//! gets established. The cluster run stays request-level; connections are
//! explicit objects so that the mechanisms that act per connection act at
//! the right moment:
//! - the Service's endpoint is chosen once per connection (kube-proxy DNAT
//!   on the first packet, then conntrack pins the flow), so a long-lived
//!   connection stays on the pod it was opened to;
//! - each new connection's SYN needs an entry in the client node's
//!   conntrack table ([`crate::conntrack`]); a SYN dropped there is
//!   retransmitted by TCP ([`syn_retransmit_offset`]);
//! - a closed connection leaves its conntrack entry in TIME_WAIT.
//!
//! Modes ([`ConnectionMode`], per traffic source):
//! - `PerRequest`: every request opens a new connection and closes it when
//!   it ends (HTTP/1.0 style, or a client that disables keep-alive).
//! - `KeepAlive`: an HTTP/1.1 pool per client pod: a request takes an idle
//!   connection (most recently used first, as Go's `net/http` does) or opens
//!   one; when answered, the connection goes back to the pool if fewer than
//!   `max_idle` are idle, else it is closed; an idle connection is closed
//!   after `idle_timeout`. One request at a time per connection.
//! - `LongLived`: `per_client` HTTP/2 connections per client pod, opened on
//!   demand and kept; requests are multiplexed over them in turn. The
//!   endpoint is the one kube-proxy picked at connect time: what a gRPC
//!   client with a ClusterIP target (`pick_first`) does. With `max_age`, the
//!   server ends a connection that old (gRPC's `MaxConnectionAge`, a GOAWAY)
//!   and the client's next request opens a new one, picked anew.
//! - `ClientSide`: client-side balancing (gRPC `round_robin` over a
//!   headless Service): one connection per Ready endpoint, requests spread
//!   over them in turn.
//!
//! Limitations: round-trip times and the handshake itself take no time;
//! a connection closes at the moment its request ends (a client that timed
//! out closes when the server notices, not at its deadline); a connection
//! to a pod that stopped being Ready is found broken on its next use
//! (GOAWAY/RST) and replaced, not before; client-side balancing sees
//! endpoint changes at once (no DNS re-resolution delay); the client's own
//! TIME_WAIT sockets and ephemeral ports are not modelled.
//!
//! ## Parameters
//! - SYN retransmission: initial RTO 1 s, doubling; `tcp_syn_retries` 6:
//!   retransmits at +1, +3, +7, +15, +31, +63 s and gives up at +127 s
//!   (docs/calibration.md, row `tcp-syn-retransmit`;
//!   Linux `Documentation/networking/ip-sysctl.rst`).
//! - Keep-alive: `max_idle` and `idle_timeout` come from the scenario; Go's
//!   defaults are `MaxIdleConnsPerHost` 2 and `IdleConnTimeout` 90 s
//!   (`net/http` `DefaultTransport`), given as [`GO_MAX_IDLE_PER_HOST`] and
//!   [`GO_IDLE_CONN_TIMEOUT`] (docs/calibration.md, row `go-http-idle`).
//!
//! ## What it emits
//! Nothing itself; the cluster run counts connections opened, SYNs dropped
//! and the connect delay per traffic source.
//!
//! ## Validation
//! Unit tests: the retransmission offsets and give-up time against
//! ip-sysctl.rst; the pool's reuse order and idle limit. The cluster's
//! property test checks request conservation with every mode.

use sim_core::{EventId, SimDuration, SimTime};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `tcp_syn_retries` default.
pub const TCP_SYN_RETRIES: u32 = 6;

/// Initial retransmission timeout of a SYN \[s\].
pub const TCP_INITIAL_RTO_S: u64 = 1;

/// Go `net/http` `DefaultTransport`: `MaxIdleConnsPerHost` (2).
pub const GO_MAX_IDLE_PER_HOST: u32 = 2;

/// Go `net/http` `DefaultTransport`: `IdleConnTimeout` (90 s).
pub const GO_IDLE_CONN_TIMEOUT: SimDuration = SimDuration::from_secs(90);

/// When the `n`-th retransmission of a SYN leaves, counted from the first
/// SYN (`n` from 1): `(2^n - 1)` x RTO; `None` once `tcp_syn_retries` are
/// used up.
pub fn syn_retransmit_offset(n: u32) -> Option<SimDuration> {
    (1..=TCP_SYN_RETRIES)
        .contains(&n)
        .then(|| SimDuration::from_secs(TCP_INITIAL_RTO_S * ((1u64 << n) - 1)))
}

/// When `connect()` fails with ETIMEDOUT after the last retransmission went
/// unanswered, from the first SYN: `(2^(retries+1) - 1)` x RTO = 127 s.
pub fn syn_give_up_offset() -> SimDuration {
    SimDuration::from_secs(TCP_INITIAL_RTO_S * ((1u64 << (TCP_SYN_RETRIES + 1)) - 1))
}

/// How a traffic source's requests use connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConnectionMode {
    /// A new connection per request.
    #[default]
    PerRequest,
    /// An HTTP/1.1 keep-alive pool per client pod.
    KeepAlive {
        /// Idle connections kept per client pod \[connections\].
        max_idle: u32,
        /// An idle connection is closed after this long.
        idle_timeout: SimDuration,
    },
    /// Long-lived multiplexed connections per client pod, each pinned to the
    /// endpoint chosen when it was opened.
    LongLived {
        /// Connections per client pod \[connections\].
        per_client: u32,
        /// The server closes a connection this old (`None`: never).
        max_age: Option<SimDuration>,
    },
    /// One connection per Ready endpoint, requests spread in turn.
    ClientSide,
}

impl ConnectionMode {
    /// Whether a connection carries one request at a time and may be
    /// reused afterwards.
    pub fn pools_idle(self) -> bool {
        matches!(self, ConnectionMode::KeepAlive { .. })
    }
    /// Whether a connection stays open after its requests.
    pub fn stays_open(self) -> bool {
        matches!(
            self,
            ConnectionMode::LongLived { .. } | ConnectionMode::ClientSide
        )
    }
}

/// One open connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conn<Ct> {
    /// Traffic source index.
    pub traffic: u32,
    /// Client pod.
    pub client: u32,
    /// Server pod (the endpoint chosen at connect time).
    pub server: u32,
    /// Its conntrack entry: (node, entry), if a netfilter table tracks it.
    pub ct: Option<(u32, Ct)>,
    /// Idle-close timer while in a keep-alive pool.
    pub idle_timer: Option<EventId>,
    /// When it was established.
    pub opened: SimTime,
    /// Bumped on every reuse of the slot.
    pub gen: u32,
    /// Its translation at a NAT gateway (egress outside the VPC).
    pub nat: Option<crate::nat_gateway::NatConn>,
}

/// A map keyed by pod id, hashed with one multiplication (pod ids are
/// small dense integers; the default SipHash costs more than the rest of a
/// lookup). Only for maps that are looked up, never iterated, so the
/// hasher cannot change a run's output.
pub type PodMap<V> = HashMap<u32, V, BuildHasherDefault<PodIdHasher>>;

/// A map keyed by request id ([`crate::app::Request::id`]) or another
/// `u64` key, hashed as [`PodMap`] is (and, like it, never iterated).
pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<PodIdHasher>>;

/// The set of [`IdMap`].
pub type IdHashSet = std::collections::HashSet<u64, BuildHasherDefault<PodIdHasher>>;

/// The hasher of [`PodMap`] and [`IdMap`]: Fibonacci hashing of the `u32`
/// key; a `u64` key's high half is folded into the low bits the table
/// indexes by (keys that differ only above bit 32, as a pair packed in one
/// `u64`, would otherwise share a bucket).
#[derive(Clone, Copy, Debug, Default)]
pub struct PodIdHasher(u64);

impl Hasher for PodIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0 ^ u64::from(i)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u64(&mut self, i: u64) {
        let h = (self.0 ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 = h ^ (h >> 32);
    }
}

/// The connections a client pod holds for one traffic source.
#[derive(Clone, Debug, Default)]
pub struct ClientConns {
    /// Keep-alive: idle connections, most recently used last.
    pub idle: Vec<u32>,
    /// Long-lived: open connections.
    pub open: Vec<u32>,
    /// Client-side balancing: (server pod, connection), by server pod.
    pub by_server: PodMap<u32>,
    /// Round-robin position.
    pub turn: u32,
}

/// A slab of connections with stable ids.
#[derive(Clone, Debug)]
pub struct ConnSlab<Ct> {
    conns: Vec<Option<Conn<Ct>>>,
    free: Vec<u32>,
    gens: Vec<u32>,
    open: u64,
    opened: u64,
}

impl<Ct> Default for ConnSlab<Ct> {
    fn default() -> Self {
        ConnSlab {
            conns: Vec::new(),
            free: Vec::new(),
            gens: Vec::new(),
            open: 0,
            opened: 0,
        }
    }
}

impl<Ct: Copy> ConnSlab<Ct> {
    /// Stores a new connection; returns its id.
    pub fn insert(&mut self, mut c: Conn<Ct>) -> u32 {
        self.open += 1;
        self.opened += 1;
        match self.free.pop() {
            Some(i) => {
                self.gens[i as usize] += 1;
                c.gen = self.gens[i as usize];
                self.conns[i as usize] = Some(c);
                i
            }
            None => {
                c.gen = 0;
                self.conns.push(Some(c));
                self.gens.push(0);
                (self.conns.len() - 1) as u32
            }
        }
    }

    /// The connection, if open.
    pub fn get(&self, id: u32) -> Option<&Conn<Ct>> {
        self.conns.get(id as usize).and_then(Option::as_ref)
    }

    /// The connection, if open.
    pub fn get_mut(&mut self, id: u32) -> Option<&mut Conn<Ct>> {
        self.conns.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Removes a connection; returns it if it was open.
    pub fn remove(&mut self, id: u32) -> Option<Conn<Ct>> {
        let c = self.conns.get_mut(id as usize)?.take()?;
        self.free.push(id);
        self.open -= 1;
        Some(c)
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open
    }

    /// Connections opened so far.
    pub fn opened(&self) -> u64 {
        self.opened
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syn_retransmits_follow_the_doubling_rto_and_give_up_at_127_s() {
        let offs: Vec<u64> = (1..=6)
            .map(|n| syn_retransmit_offset(n).unwrap().as_nanos() / 1_000_000_000)
            .collect();
        assert_eq!(offs, [1, 3, 7, 15, 31, 63]);
        assert_eq!(syn_retransmit_offset(7), None);
        assert_eq!(syn_retransmit_offset(0), None);
        assert_eq!(syn_give_up_offset(), SimDuration::from_secs(127));
    }

    #[test]
    fn slab_reuses_slots_with_a_new_generation() {
        let mut s: ConnSlab<u8> = ConnSlab::default();
        let c = Conn {
            traffic: 0,
            client: 1,
            server: 2,
            ct: None,
            idle_timer: None,
            opened: SimTime::ZERO,
            gen: 0,
            nat: None,
        };
        let a = s.insert(c);
        assert_eq!(s.remove(a).map(|c| c.server), Some(2));
        assert!(s.remove(a).is_none());
        let b = s.insert(c);
        assert_eq!(a, b);
        assert_eq!(s.get(b).map(|c| c.gen), Some(1));
        assert_eq!((s.open(), s.opened()), (1, 2));
        assert!(ConnectionMode::ClientSide.stays_open());
        assert!(!ConnectionMode::PerRequest.pools_idle());
    }
}
