//! # CoreDNS pods in the cluster run
//!
//! Drives each CoreDNS pod's state machine ([`crate::coredns`]): replies to
//! resolvers, forwards to the upstream, OOM kills and restarts, and the pod's
//! retirement when it is deleted.

use super::*;

impl Sim<'_> {
    /// A CoreDNS pod's timer fired.
    pub(crate) fn coredns_timer(&mut self, pod: u32, token: u64) {
        let now = self.engine.now();
        if let Some(c) = self.pods[pod as usize].coredns.as_mut() {
            let actions = c.on_timer(now, CoreDnsTimer(token));
            self.coredns_actions(pod, actions);
        }
    }

    /// Carries out what a CoreDNS container asks for.
    pub(crate) fn coredns_actions(&mut self, pod: u32, actions: Vec<CoreDnsAction>) {
        let now = self.engine.now();
        for a in actions {
            match a {
                CoreDnsAction::SetTimer { at, token } => {
                    self.engine.schedule_at(
                        at,
                        Ev::CoreDns {
                            pod,
                            token: token.0,
                        },
                    );
                }
                CoreDnsAction::Reply {
                    tag,
                    reply,
                    source,
                    rdata,
                    ttl,
                } => self.dns_reply(tag, reply, source, rdata, ttl),
                // kube-dns pods run `ClusterZone::Kubernetes`: they answer
                // the cluster zone themselves and never forward it.
                CoreDnsAction::Forward { tag, .. } => {
                    if let Some(dns) = self.dns.as_mut() {
                        dns.take_tag(tag);
                    }
                }
                CoreDnsAction::Dropped { tag, .. } => {
                    if let Some(dns) = self.dns.as_mut() {
                        dns.take_tag(tag);
                        self.metrics.inc(dns.dropped);
                        for i in DnsRt::in_windows(self.cfg, now) {
                            dns.windows[i].dropped += 1;
                        }
                    }
                }
                CoreDnsAction::OomKilled {
                    memory, restart_at, ..
                } => self.coredns_killed(pod, memory, restart_at),
                CoreDnsAction::Started => {
                    if self.pod_live_in(pod, PodState::Running) {
                        let d = self.pods[pod as usize].deployment as usize;
                        self.engine.schedule_in(
                            self.cfg.deployments[d].ready_after,
                            Ev::ReadinessPassed(pod),
                        );
                    }
                }
            }
        }
    }

    /// A CoreDNS reply reaches its lookup.
    pub(crate) fn dns_reply(
        &mut self,
        tag: u64,
        reply: Reply,
        source: AnswerSource,
        rdata: u64,
        ttl: SimDuration,
    ) {
        let now = self.engine.now();
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        let Some(q) = dns.take_tag(tag) else {
            return;
        };
        if let Some((node, key)) = q.flow {
            if let Some(table) = self.path.tables.nodes.get_mut(node as usize) {
                dns.flows[node as usize].reply(table, now, key);
            }
        }
        let (z, r) = (zone_index(q.zone), rcode_index(reply.rcode));
        self.metrics.inc(dns.replies[z][r]);
        let hit = source == AnswerSource::Cache;
        if hit {
            self.metrics.inc(dns.cache_hits);
        }
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].replies[z][r] += 1;
            dns.windows[i].cache_hits[z] += u64::from(hit);
        }
        if let Via::Forward { node, id } = q.via {
            let actions = dns
                .node_local
                .get_mut(node as usize)
                .map(|c| c.on_forward_reply(now, id, reply, rdata, ttl));
            if let Some(actions) = actions {
                self.node_local_actions(node, actions);
            }
            return;
        }
        self.deliver_dns_reply(&q, reply, rdata, ttl);
    }

    /// The kernel killed a CoreDNS container at its memory limit: the pod
    /// leaves the endpoints until it restarts and is Ready again.
    pub(crate) fn coredns_killed(&mut self, p: u32, memory: u64, restart_at: SimTime) {
        let now = self.engine.now();
        let d = self.pods[p as usize].deployment as usize;
        if self.pods[p as usize].state == PodState::Ready {
            self.set_state(p, PodState::Running);
            self.deps[d].endpoints.remove(p);
            self.dns_endpoint_removed(p);
        }
        let limit = self.pods[p as usize]
            .coredns
            .as_ref()
            .map_or(0, |c| c.spec().memory_limit);
        if let Some(dns) = self.dns.as_mut() {
            dns.restart_total += 1;
            self.metrics.inc(dns.restarts);
        }
        let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
        let key = EventKey::Ids([d as u32, 0, 0]);
        self.event_by("Warning", "OOMKilling", "kernel-monitor", key.clone(), |s| {
            (
                format!(
                    "Memory cgroup out of memory: Killed process (coredns) at {:.1} MiB, limit {:.0} MiB",
                    mib(memory),
                    mib(limit)
                ),
                format!("pod/{}", s.pod_name(p)),
            )
        });
        if restart_at > now {
            self.event_by("Warning", "BackOff", "kubelet", key, |s| {
                let name = s.pod_name(p);
                (
                    format!("Back-off restarting failed container coredns in pod {name}"),
                    format!("pod/{name}"),
                )
            });
        }
    }

    /// Keeps the CPU time of a CoreDNS container that is going away.
    pub(crate) fn retire_coredns(&mut self, c: &CoreDns) {
        if let Some(dns) = self.dns.as_mut() {
            dns.retired_busy = dns.retired_busy + c.stats().cpu_busy;
        }
    }
}
