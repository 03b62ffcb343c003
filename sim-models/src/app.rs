//! # Application servers: requests, queueing, timeouts
//!
//! ## Scope
//! Request-level, not packet-level: one request is one unit of work at one
//! pod. Each pod runs a server with `concurrency` workers and a FIFO queue
//! (optionally bounded by `queue_limit`; a full queue answers 503 at once).
//! Service times are exponential with mean `service_time`, so one pod is an
//! M/M/c queue and missing capacity shows up as queueing latency. A client
//! gives up at `timeout`; the server notices a caller that has gone when it
//! dequeues the request (as a server checking its request context does) and
//! skips it, but a request already in service runs to completion, so work
//! done for a client that left is wasted, as it is in real servers.
//!
//! Limitations: no CPU sharing between
//! pods of one node; a terminating pod finishes what it has queued.
//!
//! ## Parameters
//! All per workload, from the scenario (no calibrated default exists for an
//! application): `concurrency`, `service_time`, `queue_limit`, and the
//! client's `timeout`.
//!
//! ## What it emits
//! Every request ends in exactly one [`Outcome`]: answered (with its
//! latency), timed out (`context deadline exceeded` after the client's
//! timeout; counted apart when the server finished it late, as wasted work), refused (no ready endpoint: `connection refused`), or rejected
//! (queue full: `503 Service Unavailable`), or its connection never
//! established (`dial tcp: i/o timeout`, SYNs dropped on the client's node;
//! connections are [`crate::connections`]); or it is still in flight when the
//! run ends. Conservation is checked by a property test in `cluster`.
//!
//! ## Validation
//! A unit test checks the single-pod M/M/1 mean response time against
//! 1/(mu - lambda) within 5%.

use sim_core::{SimDuration, SimTime};
use std::collections::VecDeque;
use std::fmt;

/// How one pod serves requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerSpec {
    /// Requests served at once \[requests\].
    pub concurrency: u32,
    /// Mean service time of one request (exponential).
    pub service_time: SimDuration,
    /// Requests that may wait; `None`: unbounded.
    pub queue_limit: Option<u32>,
}

/// One request waiting or in service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// Which traffic source sent it.
    pub source: u32,
    /// The client pod that sent it (none: a client outside the cluster).
    pub client: OptU32,
    /// Unique per attempt within a run.
    pub id: u64,
    /// 0 for the first try, then one more per application retry.
    pub attempt: u16,
    /// Which of its source's request paths it asks for (0 unless the source
    /// goes through an ingress controller).
    pub path: u16,
    /// When the client sent the first try (latency counts from here).
    pub sent: SimTime,
    /// When the client gives up on this try.
    pub deadline: SimTime,
    /// The client connection it travels on, if connections are modelled
    /// (an id of the cluster's connection slab).
    pub conn: OptU32,
}

/// An `Option<u32>` in 4 bytes (`u32::MAX` stands for none), so that a
/// [`Request`] is 40 bytes and the events carrying one stay small: every
/// event is copied a few times through the event queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptU32(u32);

impl OptU32 {
    /// None.
    pub const NONE: OptU32 = OptU32(u32::MAX);

    /// `Some(v)`; `v` must not be `u32::MAX` (no pod or connection id is).
    pub fn some(v: u32) -> Self {
        debug_assert!(v != u32::MAX, "u32::MAX stands for none");
        OptU32(v)
    }

    /// The value, if any.
    pub fn get(self) -> Option<u32> {
        (self.0 != u32::MAX).then_some(self.0)
    }
}

impl From<Option<u32>> for OptU32 {
    fn from(v: Option<u32>) -> Self {
        v.map_or(OptU32::NONE, OptU32::some)
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered within the client's timeout.
    Answered(SimDuration),
    /// The client gave up while the request waited.
    TimedOut,
    /// The server answered after the client had given up: the client saw a
    /// timeout and the server's work was wasted.
    AnsweredLate,
    /// No ready endpoint behind the Service.
    Refused,
    /// The pod's queue was full.
    Rejected,
    /// A NetworkPolicy dropped the connection's first packet; the client
    /// retransmitted its SYN until its own timeout.
    Blocked,
    /// Name resolution failed (`getaddrinfo`: Temporary failure in name resolution).
    LookupFailed,
    /// Every SYN of the connection was dropped on the client's node (its
    /// conntrack table was full) until the client's timeout or TCP's
    /// `tcp_syn_retries`.
    SynDropped,
    /// The Service's data path sent the connection to a pod already gone
    /// (kube-proxy had not synced its removal); the SYN was dropped and the
    /// client retransmitted until its own timeout.
    StaleEndpoint,
    /// The client connected to an address no pod holds any more (a stale
    /// DNS answer); Calico's blackhole route for the block drops the SYN
    /// and the client waits out its timeout.
    NoHost,
    /// A security group in front of the node dropped the SYN silently; the
    /// client retransmitted until its own timeout.
    EdgeDropped,
    /// The NodePort is not open on the node address the client used: the
    /// node answered RST (`connection refused`).
    PortClosed,
    /// A `Local` traffic policy and no Ready endpoint on the node: kube-proxy
    /// dropped the SYN; the client timed out.
    NoLocalEndpoint,
    /// The ingress controller's rules send the path to no Service: its
    /// default backend answered 404 (not retried).
    NotFound,
    /// Egress outside the VPC: the client zone's NAT gateway was down (or
    /// the zone had no route out) and dropped the SYN, a request or its
    /// reply; the client waited out its timeout.
    NatDropped,
    /// Egress outside the VPC: the NAT gateway had no source port left
    /// towards the destination (`ErrorPortAllocation`); the SYN was dropped
    /// and the client waited out its timeout.
    NatPortAllocation,
    /// Egress outside the VPC: the connection had been idle for the gateway's
    /// idle timeout (350 s by default) or more,
    /// the NAT gateway had forgotten it and answered the request with an
    /// RST.
    NatIdleReset,
    /// Through a cloud load balancer ([`crate::cloud_lb`]): ALB's `502 Bad
    /// Gateway` (the target reset or refused the connection, or its
    /// deregistration delay ended with the request outstanding).
    LbBadGateway,
    /// ALB's `503 Service Unavailable`: no registered target.
    LbUnavailable,
    /// ALB's `504 Gateway Timeout`: the target did not accept the
    /// connection within 10 s.
    LbGatewayTimeout,
    /// NLB: the target reset the connection (passed through).
    LbReset,
    /// NLB: no target took the connection; the client's SYNs went
    /// unanswered until its timeout.
    LbConnectTimeout,
    /// The server's handler called a dependency and the call failed: it
    /// answered 503.
    DependencyFailed,
    /// A mesh proxy's circuit breaker refused the request (`503` with the
    /// response flag `UO`, upstream overflow).
    MeshOverflow,
    /// A mesh proxy's route timeout (or the last try's per-try timeout)
    /// passed before an answer: `504` with the flag `UT`.
    MeshTimeout,
    /// A sidecar proxy on the request's way (the server pod's or the
    /// client pod's own) restarted: the request's connection was reset, or
    /// refused while the new proxy did not listen yet.
    ProxyReset,
}

impl Outcome {
    /// Whether the client saw an error.
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Answered(_))
    }
}

impl fmt::Display for Outcome {
    /// What the client's log says.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Answered(d) => write!(f, "200 OK in {d}"),
            Outcome::TimedOut | Outcome::AnsweredLate => {
                write!(
                    f,
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                )
            }
            Outcome::Refused | Outcome::PortClosed => {
                write!(f, "dial tcp: connect: connection refused")
            }
            Outcome::Rejected => write!(f, "503 Service Unavailable"),
            Outcome::NotFound => write!(
                f,
                "404 Not Found (the ingress controller's default backend)"
            ),
            Outcome::Blocked
            | Outcome::SynDropped
            | Outcome::StaleEndpoint
            | Outcome::NoHost
            | Outcome::EdgeDropped
            | Outcome::NoLocalEndpoint
            | Outcome::NatDropped
            | Outcome::NatPortAllocation => {
                write!(f, "dial tcp: i/o timeout")
            }
            Outcome::NatIdleReset | Outcome::LbReset | Outcome::ProxyReset => {
                write!(f, "read tcp: connection reset by peer")
            }
            Outcome::LbBadGateway => write!(f, "502 Bad Gateway (the load balancer)"),
            Outcome::LbUnavailable => write!(f, "503 Service Unavailable (the load balancer)"),
            Outcome::LbGatewayTimeout => write!(f, "504 Gateway Timeout (the load balancer)"),
            Outcome::LbConnectTimeout => write!(f, "dial tcp: i/o timeout"),
            Outcome::LookupFailed => write!(f, "getaddrinfo: Temporary failure in name resolution"),
            Outcome::MeshOverflow => write!(f, "503 Service Unavailable (upstream overflow, UO)"),
            Outcome::DependencyFailed => {
                write!(f, "503 Service Unavailable (its dependency failed)")
            }
            Outcome::MeshTimeout => write!(f, "504 Gateway Timeout (upstream request timeout, UT)"),
        }
    }
}

/// One pod's server state, 16 bytes: every request reads it (a random pod
/// of thousands, so a cache miss at the size of a large cluster), while the
/// queue is allocated only once a request has had to wait.
#[derive(Clone, Debug, Default)]
pub struct Server {
    busy: u32,
    #[expect(
        clippy::box_collection,
        reason = "a boxed queue keeps the record at 16 bytes (a VecDeque is 32)"
    )]
    queue: Option<Box<VecDeque<Request>>>,
}

const _: () = assert!(std::mem::size_of::<Server>() == 16);

/// What the caller must do after offering a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// A worker took it: schedule its completion after a service time.
    Start,
    /// It waits in the queue.
    Queued,
    /// The queue is full.
    Rejected,
}

impl Server {
    /// Offers a request to the server.
    pub fn offer(&mut self, spec: &ServerSpec, req: Request) -> Admit {
        if self.busy < spec.concurrency {
            self.busy += 1;
            Admit::Start
        } else if spec
            .queue_limit
            .is_some_and(|l| self.queued() >= l as usize)
        {
            Admit::Rejected
        } else {
            self.queue.get_or_insert_default().push_back(req);
            Admit::Queued
        }
    }

    /// A worker finished; returns the next request to start, after handing
    /// every request whose client already left to `abandoned`.
    pub fn finish(&mut self, now: SimTime, mut abandoned: impl FnMut(Request)) -> Option<Request> {
        while let Some(req) = self.queue.as_mut().and_then(|q| q.pop_front()) {
            if req.deadline <= now {
                abandoned(req);
            } else {
                return Some(req);
            }
        }
        self.busy -= 1;
        None
    }

    /// Requests waiting.
    pub fn queued(&self) -> usize {
        self.queue.as_ref().map_or(0, |q| q.len())
    }

    /// Requests in service.
    pub fn busy(&self) -> u32 {
        self.busy
    }

    /// True when nothing is queued or in service.
    pub fn idle(&self) -> bool {
        self.busy == 0 && self.queued() == 0
    }

    /// Requests queued or in service.
    pub fn in_flight(&self) -> usize {
        self.busy as usize + self.queued()
    }
}

/// A set of request ids ([`Request::id`]) kept as a bitmap over the span
/// from the oldest id present to the newest: ids are handed out in
/// increasing order and a try leaves the set by its deadline, so the span
/// stays within (timeout x request rate) ids and, once it has grown to
/// that, inserts and removals neither allocate nor walk anything: O(1).
#[derive(Clone, Debug, Default)]
pub struct IdSet {
    /// The id of bit 0 of `words[0]` (a multiple of 64).
    base: u64,
    /// Bit `i` of `words[w]`: id `base + 64 w + i` is in the set. Neither
    /// the first nor the last word is zero.
    words: VecDeque<u64>,
}

impl IdSet {
    /// Adds `id`; returns whether it was absent.
    pub fn insert(&mut self, id: u64) -> bool {
        let word = id & !63;
        if self.words.is_empty() {
            self.base = word;
        }
        while word < self.base {
            self.words.push_front(0);
            self.base -= 64;
        }
        let w = ((word - self.base) / 64) as usize;
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let bit = 1u64 << (id & 63);
        let absent = self.words[w] & bit == 0;
        self.words[w] |= bit;
        absent
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&mut self, id: &u64) -> bool {
        let Some(w) = self.word(*id) else {
            return false;
        };
        let bit = 1u64 << (id & 63);
        if self.words[w] & bit == 0 {
            return false;
        }
        self.words[w] &= !bit;
        while self.words.front() == Some(&0) {
            self.words.pop_front();
            self.base += 64;
        }
        while self.words.back() == Some(&0) {
            self.words.pop_back();
        }
        true
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: &u64) -> bool {
        self.word(*id)
            .is_some_and(|w| self.words[w] & (1u64 << (id & 63)) != 0)
    }

    /// The index in `words` of `id`'s word, if the span covers it.
    fn word(&self, id: u64) -> Option<usize> {
        let w = (id.checked_sub(self.base)? / 64) as usize;
        (w < self.words.len()).then_some(w)
    }
}

/// How the client sees a completed request.
pub fn completion_outcome(req: &Request, now: SimTime) -> Outcome {
    if now <= req.deadline {
        Outcome::Answered(now - req.sent)
    } else {
        Outcome::AnsweredLate
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;
    use sim_core::{Engine, RngStreams};

    #[derive(Clone, Copy)]
    enum Ev {
        Arrive,
        Done(Request),
    }

    #[test]
    fn single_pod_matches_mm1_mean_response_time() {
        // M/M/1: lambda = 8/s, mu = 10/s -> mean response 1/(mu - lambda) = 0.5 s.
        let spec = ServerSpec {
            concurrency: 1,
            service_time: SimDuration::from_millis(100),
            queue_limit: None,
        };
        let mut rng = RngStreams::new(7).stream("mm1");
        let mut exp =
            move |mean: f64| SimDuration::from_secs_f64(-mean * (1.0 - rng.random::<f64>()).ln());
        let mut eng: Engine<Ev> = Engine::new();
        let mut srv = Server::default();
        let (mut total, mut n) = (0.0, 0u64);
        eng.schedule_in(SimDuration::ZERO, Ev::Arrive);
        let end = SimTime::ZERO + SimDuration::from_secs(40_000);
        while let Some(ev) = eng.next_until(end) {
            let now = eng.now();
            match ev {
                Ev::Arrive => {
                    let req = Request {
                        source: 0,
                        client: OptU32::NONE,
                        id: 0,
                        attempt: 0,
                        path: 0,
                        sent: now,
                        deadline: SimTime::MAX,
                        conn: OptU32::NONE,
                    };
                    if srv.offer(&spec, req) == Admit::Start {
                        eng.schedule_in(exp(0.1), Ev::Done(req));
                    }
                    eng.schedule_in(exp(0.125), Ev::Arrive);
                }
                Ev::Done(req) => {
                    if let Outcome::Answered(d) = completion_outcome(&req, now) {
                        total += d.as_secs_f64();
                        n += 1;
                    }
                    if let Some(next) = srv.finish(now, |_| unreachable!("no deadline")) {
                        eng.schedule_in(exp(0.1), Ev::Done(next));
                    }
                }
            }
        }
        let mean = total / n as f64;
        assert!(
            (mean - 0.5).abs() / 0.5 < 0.05,
            "mean response {mean:.3} s, M/M/1 predicts 0.5 s"
        );
    }

    #[test]
    fn id_set_matches_a_btree_set() {
        use std::collections::BTreeSet;
        let mut rng = RngStreams::new(3).stream("ids");
        let (mut set, mut reference) = (IdSet::default(), BTreeSet::new());
        let mut next = 1_000u64;
        for _ in 0..20_000 {
            let id = match rng.random_range(0..4u32) {
                0 => {
                    next += rng.random_range(1..100u64);
                    next
                }
                1 => next.saturating_sub(rng.random_range(0..5_000u64)),
                _ => reference
                    .iter()
                    .nth(rng.random_range(0..reference.len().max(1)))
                    .copied()
                    .unwrap_or(next),
            };
            if rng.random_range(0..2u32) == 0 {
                assert_eq!(set.insert(id), reference.insert(id), "insert {id}");
            } else {
                assert_eq!(set.remove(&id), reference.remove(&id), "remove {id}");
            }
            assert_eq!(set.contains(&id), reference.contains(&id));
            assert_ne!(set.words.front(), Some(&0));
            assert_ne!(set.words.back(), Some(&0));
        }
        for id in reference.clone() {
            assert!(set.remove(&id));
        }
        assert!(set.words.is_empty());
    }

    #[test]
    fn abandoned_requests_are_skipped_and_full_queues_reject() {
        let spec = ServerSpec {
            concurrency: 1,
            service_time: SimDuration::from_millis(1),
            queue_limit: Some(1),
        };
        let mut srv = Server::default();
        let t = |s| SimTime::ZERO + SimDuration::from_secs(s);
        let req = |dl| Request {
            source: 0,
            client: OptU32::NONE,
            id: 0,
            attempt: 0,
            path: 0,
            sent: t(0),
            deadline: t(dl),
            conn: OptU32::NONE,
        };
        assert_eq!(srv.offer(&spec, req(10)), Admit::Start);
        assert_eq!(srv.offer(&spec, req(1)), Admit::Queued);
        assert_eq!(srv.offer(&spec, req(10)), Admit::Rejected);
        let mut gone = 0;
        assert_eq!(srv.finish(t(2), |_| gone += 1), None);
        assert_eq!(gone, 1);
        assert!(srv.idle());
    }
}
