//! # NodeLocal DNSCache in the cluster run
//!
//! One node-local-dns instance per node ([`crate::coredns::CoreDnsSpec::node_local`]):
//! pods query their node's instance on a link-local address (no DNAT, no
//! conntrack); it answers from its cache, forwards cluster-zone misses to a
//! Ready kube-dns pod over TCP and external names to the upstream.

use super::*;

impl Sim<'_> {
    /// A node-local-dns instance's timer fired.
    pub(crate) fn node_local_timer(&mut self, node: u32, token: u64) {
        let now = self.engine.now();
        let actions = self
            .dns
            .as_mut()
            .and_then(|d| d.node_local.get_mut(node as usize))
            .map(|c| c.on_timer(now, CoreDnsTimer(token)));
        if let Some(actions) = actions {
            self.node_local_actions(node, actions);
        }
    }

    /// A pod's query to its node's NodeLocal DNSCache (169.254.20.10: no
    /// DNAT, and NOTRACK rules keep it out of conntrack).
    pub(crate) fn node_local_query(&mut self, q: SentQuery, node: u32) {
        let now = self.engine.now();
        let (zone, existence, rdata) = self.dns_truth(&q.name, q.qtype);
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        if let Some(c) = dns.node_local_counters {
            self.metrics.inc(c.queries);
        }
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].node_local[0] += 1;
        }
        let tag = dns.alloc_tag(DnsTag::of(&q, zone, None, Via::NodeLocal));
        let query = DnsQuery {
            tag,
            name: &q.name,
            qtype: q.qtype,
            zone,
            existence,
            rdata,
        };
        let Some(c) = dns.node_local.get_mut(node as usize) else {
            return;
        };
        let actions = c.offer(now, query);
        self.node_local_actions(node, actions);
    }

    /// Carries out what a node's NodeLocal DNSCache asks for.
    pub(crate) fn node_local_actions(&mut self, node: u32, actions: Vec<CoreDnsAction>) {
        let now = self.engine.now();
        for a in actions {
            match a {
                CoreDnsAction::SetTimer { at, token } => {
                    self.engine.schedule_at(
                        at,
                        Ev::NodeLocalDns {
                            node,
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
                } => {
                    let Some(dns) = self.dns.as_mut() else {
                        return;
                    };
                    let Some(q) = dns.take_tag(tag) else {
                        continue;
                    };
                    if source == AnswerSource::Cache {
                        if let Some(c) = dns.node_local_counters {
                            self.metrics.inc(c.cache_hits);
                        }
                        for i in DnsRt::in_windows(self.cfg, now) {
                            dns.windows[i].node_local[1] += 1;
                        }
                    }
                    self.deliver_dns_reply(&q, reply, rdata, ttl);
                }
                CoreDnsAction::Forward { tag, id } => self.node_local_forward(node, tag, id),
                CoreDnsAction::Dropped { tag, .. } => {
                    if let Some(dns) = self.dns.as_mut() {
                        dns.take_tag(tag);
                    }
                }
                // No memory limit (the manifest sets none): never killed.
                CoreDnsAction::OomKilled { .. } | CoreDnsAction::Started => {}
            }
        }
    }

    /// A node cache forwards a cluster-zone miss to kube-dns (`forward .
    /// <kube-dns ClusterIP> { force_tcp }`): to a Ready CoreDNS pod picked
    /// per forward (TCP connections and their conntrack entries are not
    /// modelled); with none, the try goes unanswered and the cache's read
    /// timeout decides.
    pub(crate) fn node_local_forward(&mut self, node: u32, tag: u64, id: ForwardId) {
        let now = self.engine.now();
        let Some(w) = self.cfg.dns.as_ref().map(|d| d.workload) else {
            return;
        };
        let Some(server) = kube_dns_pick(
            &self.deps,
            self.path.service.kube_proxy.as_ref(),
            w,
            self.services.implicit_of(w),
            &mut self.dns_pick,
        ) else {
            return;
        };
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        let Some(asked) = dns.tags.get(tag as usize).and_then(Option::as_ref) else {
            return;
        };
        let (name, qtype) = (asked.name.clone(), asked.qtype);
        if let Some(c) = dns.node_local_counters {
            self.metrics.inc(c.forwards);
        }
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].node_local[2] += 1;
        }
        let (zone, existence, rdata) = self.dns_truth(&name, qtype);
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        let z = zone_index(zone);
        self.metrics.inc(dns.received[z]);
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].received[z] += 1;
        }
        let fwd = dns.alloc_tag(DnsTag {
            slot: 0,
            generation: 0,
            query: 0,
            zone,
            flow: None,
            via: Via::Forward { node, id },
            name: name.clone(),
            qtype,
        });
        let query = DnsQuery {
            tag: fwd,
            name: &name,
            qtype,
            zone,
            existence,
            rdata,
        };
        let Some(c) = self.pods[server as usize].coredns.as_mut() else {
            dns.take_tag(fwd);
            return;
        };
        let actions = c.offer(now, query);
        self.coredns_actions(server, actions);
    }
}
