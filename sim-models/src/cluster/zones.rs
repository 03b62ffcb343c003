//! # A zone failure in the run
//!
//! The timeline's `zone_down` ([`super::Action::ZoneDown`]): the zone's
//! nodes stop at once, and its NAT gateways with them
//! ([`crate::nat_gateway`]); what the control plane then does follows
//! [`crate::node_lifecycle`] ("A zone failure"): after the grace period each
//! node is `Ready=Unknown`, its pods leave their Services' endpoints and the
//! scheduler stops placing pods there; the zone's `NoExecute` taints go
//! through its eviction rate limiter and the pods are evicted when their
//! toleration (the workload's `tolerationSeconds`, 300 s by default) runs
//! out; the scheduler places their replacements on the
//! nodes left, as far as requests and topology spread let it.
//!
//! While a node is down its pods answer nothing: a request that reaches one
//! (an endpoint not yet removed, or a connection opened before) and a
//! request one was serving or queueing get no answer, and the client waits
//! out its timeout; a pod there sends nothing either (its share of a
//! traffic source's arrivals is lost until it leaves the endpoints). The
//! check costs one flag test per request while no zone is down.

use super::*;

impl Sim<'_> {
    /// The zone of `nodes` fails.
    pub(crate) fn zone_down(&mut self, zone: &str, nodes: &[usize]) {
        let mut stopped = 0;
        for &n in nodes {
            if self.nodes[n].unreachable {
                continue;
            }
            self.nodes[n].unreachable = true;
            self.nodes_unreachable += 1;
            if self.sched.is_present(n) {
                stopped += 1;
                let delay = node_lifecycle::unreachable_delay(&mut self.node_lifecycle);
                self.engine
                    .schedule_in(delay, Ev::NodeUnreachable(n as u32));
            }
        }
        self.event(
            "Warning",
            "ZoneDown",
            "cloud",
            format!("zone {zone} is down: {stopped} node(s) stopped with their pods"),
            format!("zone/{zone}"),
        );
        // Its zonal cloud resources go with it: the NAT gateways in it.
        let gateways: Vec<usize> = self.cfg.nat_gateways.as_ref().map_or(Vec::new(), |s| {
            s.config
                .gateways
                .iter()
                .enumerate()
                .filter(|(_, g)| s.zones.get(g.zone as usize).is_some_and(|z| z == zone))
                .map(|(i, _)| i)
                .collect()
        });
        for g in gateways {
            self.nat_gateway_action(g, false);
        }
    }

    /// Whether pod `p` sits on a node that is down (a cheap `false` while
    /// no node is).
    #[inline]
    pub(crate) fn pod_unreachable(&self, p: u32) -> bool {
        self.nodes_unreachable > 0
            && self.pods[p as usize]
                .node
                .is_some_and(|n| self.nodes[n as usize].unreachable)
    }

    /// `req` reached, or was held by, a pod on a node that is down: no
    /// answer comes; the client gives up at its deadline.
    pub(crate) fn lost_with_node(&mut self, req: Request) {
        let deadline = req.deadline.max(self.engine.now());
        self.engine.schedule_at(deadline, Ev::ClientGiveUp(req));
    }

    /// The node lifecycle controller marks node `n` `Ready=Unknown`: its
    /// pods are no longer Ready, it is tainted `NoSchedule`, and its
    /// `NoExecute` taint is queued behind the zone's rate limiter.
    pub(crate) fn node_unreachable(&mut self, n: usize) {
        let now = self.engine.now();
        self.sched.set_unreachable(n, true);
        // The EndpointSlice controller sees the node leave before its
        // pods' endpoints do.
        self.refresh_zone_ratios();
        self.node_not_ready_event(n, node_lifecycle::UNREACHABLE_MESSAGE);
        let mut pods = self.nodes[n].pods.clone();
        pods.sort_unstable();
        let mut touched = BTreeSet::new();
        for p in pods {
            if self.pods[p as usize].state == PodState::Ready {
                let d = self.pods[p as usize].deployment as usize;
                self.set_state(p, PodState::Running);
                self.endpoint_down(p, d, Some(n as u32));
                if self.cfg.dns.as_ref().is_some_and(|c| c.workload == d) {
                    self.dns_endpoint_removed(p);
                }
                touched.insert(d);
            }
        }
        for d in touched {
            self.endpoints_changed(d);
        }
        self.topology_nodes_changed();
        // When every node in the cluster is down the controller assumes a
        // control-plane problem and evicts nothing.
        self.nodes_noticed_down += 1;
        if self.nodes_noticed_down as usize >= self.sched.present() {
            return;
        }
        let z = self.sched.zone_of(n);
        if self.zone_limiters.len() <= z {
            self.zone_limiters
                .resize(z + 1, node_lifecycle::NoExecuteLimiter::default());
        }
        let tainted = self.zone_limiters[z].admit(now);
        self.no_execute_taint(n, tainted);
    }
}
