//! # Calls: a request's handler calls a dependency before it answers
//!
//! ## Scope
//! A traffic source with [`TrafficSpec::in_handler`] has no arrivals of
//! its own: each request a pod of its `from` workload starts serving makes
//! one request of it, sent from that pod, and the served request holds
//! its worker until the call ends (a thread-per-request handler calling a
//! dependency synchronously). Then the handler answers: after its own
//! service time when the call was answered, at once with a `503` when it
//! failed ([`Outcome::DependencyFailed`], which the caller's retries treat
//! as any 503). Sources chain: a call's handler may call again, so a
//! request can go three or more hops deep, each hop with its own client
//! retries and, through a mesh proxy, its own mesh retries.
//!
//! ## Parameters
//! None of its own: the hops' rates follow from the requests served, their
//! timeouts and retries are each source's.
//!
//! ## What it emits
//! The calls are requests of their own source, counted as any (sent,
//! answered, each loss); a parent that failed because its call failed is
//! counted as [`RequestTotals::dependency_failed`] (of `rejected`). Per
//! window, each source's [`WindowStats::head_sent`]: the requests the
//! sources at the head of its chain ([`chain_heads`]) sent, so that its
//! tries per user request (the amplification down the chain) can be read.
//!
//! ## Validation
//! Cluster tests (`l7_tests.rs`): a chain's conservation per hop, and the
//! amplification of retries along a failing chain against its closed
//! form.

use super::*;

/// The requests waiting in their handler for a call: by the call's id
/// (the application's try id, moved to the new id on each retry).
#[derive(Default)]
pub(crate) struct CallsRt {
    /// Per workload: the source its handler calls, if any.
    pub(crate) out: Vec<Option<u32>>,
    /// The call's id -> the pod serving the parent and the parent.
    waiting: IdMap<(u32, Request)>,
}

impl CallsRt {
    pub(crate) fn new(cfg: &ClusterConfig) -> Self {
        let mut out = vec![None; cfg.deployments.len()];
        for (t, s) in cfg.traffic.iter().enumerate() {
            if let (true, Some(w)) = (s.in_handler, s.from) {
                out[w].get_or_insert(t as u32);
            }
        }
        CallsRt {
            out,
            waiting: IdMap::default(),
        }
    }
}

impl ClusterConfig {
    /// Per traffic source, the sources that call it: for one made in the
    /// handlers of workload `w` (`in_handler`), every other source whose
    /// Service selects `w` (in source order); none for a source with
    /// arrivals of its own.
    pub fn chain_callers(&self) -> Vec<Vec<usize>> {
        let services = self.service_list();
        let selects = |p: &TrafficSpec, w: usize| {
            p.service
                .and_then(|s| services.get(s))
                .is_some_and(|r| r.workloads.contains(&w))
        };
        let n = self.traffic.len();
        (0..n)
            .map(
                |t| match (self.traffic[t].in_handler, self.traffic[t].from) {
                    (true, Some(w)) => (0..n)
                        .filter(|&p| p != t && selects(&self.traffic[p], w))
                        .collect(),
                    _ => Vec::new(),
                },
            )
            .collect()
    }
}

/// Per traffic source, the sources at the head of its call chain: itself
/// when it has arrivals of its own; for one made in handlers, the heads of
/// its callers ([`ClusterConfig::chain_callers`]; sorted, each once). A
/// cycle of handler calls has no head.
pub(crate) fn chain_heads(cfg: &ClusterConfig) -> Vec<Vec<usize>> {
    let callers = cfg.chain_callers();
    let n = cfg.traffic.len();
    let mut heads: Vec<Vec<usize>> = (0..n)
        .map(|t| {
            if cfg.traffic[t].in_handler {
                Vec::new()
            } else {
                vec![t]
            }
        })
        .collect();
    // A chain is at most `n` deep: `n` rounds reach its end.
    for _ in 0..n {
        for t in (0..n).filter(|&t| cfg.traffic[t].in_handler) {
            let mut h: Vec<usize> = callers[t].iter().flat_map(|&p| heads[p].clone()).collect();
            h.sort_unstable();
            h.dedup();
            heads[t] = h;
        }
    }
    heads
}

impl Sim<'_> {
    /// Counts a new request of source `t` sent at `now`.
    pub(crate) fn count_sent(&mut self, t: usize, now: SimTime) {
        self.traffic[t].totals.sent += 1;
        self.traffic[t].totals.in_flight += 1;
        self.metrics.inc(self.traffic[t].counters.sent);
        self.for_windows(t, now, |w| w.totals.sent += 1);
    }

    /// Pod `p` (of workload `d`) starts serving `req`: if its handler
    /// calls a dependency, the call goes out and `req` waits for it
    /// (true); otherwise false.
    pub(crate) fn call_out(&mut self, p: u32, d: usize, req: Request) -> bool {
        let Some(t) = self.calls.out[d] else {
            return false;
        };
        let t = t as usize;
        let now = self.engine.now();
        self.count_sent(t, now);
        self.next_request += 1;
        let call = Request {
            source: t as u32,
            client: OptU32::some(p),
            id: self.next_request,
            attempt: 0,
            path: 0,
            sent: now,
            deadline: now + self.cfg.traffic[t].timeout,
            conn: OptU32::NONE,
        };
        self.calls.waiting.insert(call.id, (p, req));
        self.begin_attempt(call);
        true
    }

    /// A call's try `old` is retried as `new`.
    pub(crate) fn call_retried(&mut self, old: u64, new: u64) {
        if let Some(w) = self.calls.waiting.remove(&old) {
            self.calls.waiting.insert(new, w);
        }
    }

    /// A call (source `t`) ended with `o`: its parent's handler goes on.
    pub(crate) fn call_ended(&mut self, req: Request, o: Outcome) {
        let Some((p, parent)) = self.calls.waiting.remove(&req.id) else {
            return;
        };
        if matches!(o, Outcome::Answered(_)) {
            self.serve(p, parent);
        } else {
            let ev = Ev::Completed {
                pod: p,
                req: parent,
                failed: true,
            };
            self.engine.schedule_in(SimDuration::ZERO, ev);
        }
    }
}
