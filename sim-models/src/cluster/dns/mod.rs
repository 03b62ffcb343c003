//! # DNS in the cluster run: lookups, kube-dns, conntrack, CoreDNS, NodeLocal DNSCache
//!
//! ## Scope
//! With a [`DnsConfig`], the pods of the DNS workload are CoreDNS
//! containers ([`crate::coredns`]: CPU, cache, forward to an upstream,
//! memory, OOM kill and CrashLoopBackOff) behind the kube-dns Service. A
//! traffic source that resolves a name runs glibc's resolver
//! ([`crate::resolver`]) with the resolv.conf the kubelet writes for the
//! client's pod (cluster search list plus the node's `host_search`, the
//! workload's `dnsConfig` searches and options). The truth CoreDNS serves
//! comes from the cluster: the Services (`<svc>.<ns>.svc.cluster.local`, a
//! ClusterIP, or for a headless Service the addresses of its Ready pods,
//! and `<pod>.<svc>.<ns>...` for StatefulSet pods), and the external names
//! the traffic sources resolve (which exist upstream with an A record and
//! no AAAA); every other name is NXDOMAIN. An application may cache answers
//! itself (for the record's TTL or a fixed time) and retry failed requests,
//! each retry resolving again.
//!
//! The resolver is the glibc generation [`DnsConfig::glibc`] names
//! (docs/calibration.md, row `dns-glibc-servfail-one-at-a-time`). Each
//! client pod of a traffic source is one process with
//! [`TrafficSpec::threads`] worker threads (row `dns-client-threads`); a
//! lookup runs in one drawn at random from the seeded stream
//! `traffic/NAME/resolver-thread`, starts from what glibc kept in that
//! thread ([`crate::resolver::ThreadState`]: the `single-request` fallback
//! after a timeout with one reply, row `dns-glibc-thread-fallback`) and adds
//! what it turned on when it ends; with `rotate` and several nameservers,
//! the process's counter starts at a random value from the same stream and
//! advances one per name sent (row `dns-glibc-rotate`). Pods with
//! `dnsPolicy: None` take their nameservers from `dnsConfig`: the kube-dns
//! ClusterIP (through its DNAT) or, with NodeLocal DNSCache, its address
//! [`NODE_LOCAL_DNS_IP`] (the `ClusterFirst` pods' nameserver then, as the
//! kubelet's `clusterDNS` is set with it); the scenario reader refuses any
//! other address.
//!
//! Each query goes to the CoreDNS pod its socket's UDP flow was balanced to
//! (a new socket is a new flow; an application with `persistent_dns_socket`
//! keeps one flow per pod); an OOM-killed pod leaves the endpoints until it
//! restarts and passes readiness again; with no endpoint the query gets an
//! ICMP port unreachable. With conntrack modelled on a netfilter data path,
//! the flow is an entry in the client node's table ([`conntrack::UdpDnat`]):
//! it keeps its CoreDNS pod while the entry lives, a deleted pod included,
//! until the entry idles out or kube-proxy deletes the removed endpoint's
//! UDP entries (unless that fails: `flush_udp_on_endpoint_removal`); a
//! lookup's parallel A and AAAA race to insert the entry
//! ([`conntrack::udp_pair_second`]) and the kernel profile decides whether
//! the loser is dropped; a full table drops the query.
//!
//! With NodeLocal DNSCache ([`DnsConfig::node_local`]) every node runs a
//! node-local-dns instance ([`CoreDnsSpec::node_local`]); pods query their
//! node's (a link-local address: no DNAT, no conntrack), which answers from
//! its cache, forwards cluster-zone misses to a Ready kube-dns pod
//! (`force_tcp`) and external names to the upstream. With
//! [`DnsConfig::autoscaler`] a HorizontalPodAutoscaler ([`crate::hpa`]) sets
//! the CoreDNS replica count every 15 s from the CPU its Ready pods used
//! since the last sync (its history at T+0 is the initial count, as for a
//! controller that ran before the steady-state start).
//!
//! Limitations: no network delay between pods and
//! CoreDNS and no Service lookup cost for queries; a new DNS flow gets its
//! CoreDNS pod from kube-proxy's programmed endpoints when kube-proxy is
//! modelled (from the Ready pods otherwise), but kube-proxy's conntrack
//! flush happens when the pod leaves the endpoints, not at the sync; clashing
//! entries that 5.x inserts are not put in the table; a headless name's
//! answer is read as its first Ready pod (clients take the first address);
//! a NodeLocal DNSCache's TCP forwards pick a kube-dns pod per query (no
//! pooled connections, no TCP conntrack entries) and skip NetworkPolicy;
//! an application's give-up does not cancel its
//! `getaddrinfo`, which runs to its end; a thread may run two lookups at
//! once (thread occupancy is not modelled), and the rotate counter is read
//! when a lookup starts and advanced when it ends, so overlapping lookups
//! of one pod share an offset; the per-pod resolver state stays after the
//! pod is gone (two bytes per thread).
//!
//! ## How chains are bounded
//! The resolver and CoreDNS are state machines that return actions; this
//! room carries them out without feeding a result back into a state
//! machine from inside the call that produced it. An ICMP port unreachable
//! (kube-dns without an endpoint) is an event (`Ev::DnsUnreachable`)
//! scheduled at the instant of the send and read after the rest of the
//! resolver's batch, as glibc reads it after `sendmmsg` sent the A and the
//! AAAA: the next nameserver, search name or failed lookup follows from
//! that event. CoreDNS and NodeLocal DNSCache never answer inside `offer`
//! (a query waits for its CPU on a timer), resolver and CoreDNS timers are
//! events, and a failed lookup's retry is the traffic room's `Ev::Retry`.
//! However many search names, nameservers, attempts or retries a file
//! asks for, each event's handling has a bounded stack depth.
//!
//! ## What it emits
//! Queries received by CoreDNS and replies by zone and rcode, cache hits,
//! dropped queries and why ([`PathLoss`]), OOM kills and restarts, per traffic
//! source the lookups, their queries and latency ([`super::DnsWindowStats`]).
//!
//! ## Validation
//! `sim-scenarios/tests/glibc_cluster.rs` holds cluster runs to the glibc
//! recordings (validation/glibc): nothing listening, a lost AAAA within one
//! thread, SERVFAIL with `single-request` per generation, rotate. The DNS query conservation property (sent = received + unreachable +
//! blocked + lost on the way, by reason) in the cluster tests; the goldens
//! of ndots_amplification, coredns_cpu_throttled, zalando_dns_oom,
//! headless_stale_dns, dns_conntrack_race and preply_stale_conntrack.

use super::*;
use crate::resolver::ThreadState;

mod node_local;
mod server;
mod truth;

pub use truth::name_exists;
pub(crate) use truth::{address_of, in_cluster_zone};

/// A lookup in progress and the request waiting for it.
pub(crate) struct PendingLookup {
    pub(crate) generation: u32,
    pub(crate) lookup: Lookup,
    pub(crate) req: Request,
    pub(crate) client: u32,
    pub(crate) timers: Vec<(TimerToken, EventId)>,
    /// The CoreDNS pod each socket's UDP flow goes to.
    pub(crate) backends: Vec<(SocketId, u32)>,
    /// Data and TTL of the last reply with records.
    pub(crate) answer: Option<(u64, SimDuration)>,
    /// The client thread the lookup runs in (index into
    /// [`ClientResolver::threads`]).
    pub(crate) thread: u32,
}

/// What glibc keeps in one client process (a traffic source's application
/// in one pod) between lookups: each worker thread's resolver state and,
/// with `rotate`, the process-wide nameserver counter. Created at the
/// pod's first lookup; two bytes per thread.
pub(crate) struct ClientResolver {
    pub(crate) threads: Box<[ThreadState]>,
    /// glibc's `global_offset` (`res_send.c`, `nameserver_offset`): drawn
    /// at random on first use, one step per name sent.
    pub(crate) rotation: Option<u32>,
}

/// A query the resolver sends.
pub(crate) struct SentQuery {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) query: QueryId,
    pub(crate) name: Arc<str>,
    pub(crate) qtype: QType,
    pub(crate) socket: SocketId,
    /// Where its nameserver address leads.
    pub(crate) route: Option<NameserverRoute>,
}

/// A query waiting in a CoreDNS pod, by tag.
#[derive(Clone)]
pub(crate) struct DnsTag {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
    pub(crate) query: u32,
    pub(crate) zone: Zone,
    /// Client node and flow key of the query's conntrack entry, if any.
    pub(crate) flow: Option<(u32, u64)>,
    /// Who asked, and who gets the reply.
    pub(crate) via: Via,
    /// The query, for a NodeLocal DNSCache that forwards it.
    pub(crate) name: Arc<str>,
    pub(crate) qtype: QType,
}

impl DnsTag {
    /// The tag of a query a lookup sent.
    pub(crate) fn of(q: &SentQuery, zone: Zone, flow: Option<(u32, u64)>, via: Via) -> DnsTag {
        DnsTag {
            slot: q.slot,
            generation: q.generation,
            query: q.query.0,
            zone,
            flow,
            via,
            name: q.name.clone(),
            qtype: q.qtype,
        }
    }
}

/// Who sent a query to a DNS server.
#[derive(Clone, Copy)]
pub(crate) enum Via {
    /// A pod's resolver, to a kube-dns pod.
    Pod,
    /// A pod's resolver, to its node's NodeLocal DNSCache.
    NodeLocal,
    /// A NodeLocal DNSCache forwarding a cluster-zone miss to a kube-dns
    /// pod (over TCP: `force_tcp`).
    Forward { node: u32, id: ForwardId },
}

/// Why a query was lost between its client and CoreDNS (in the order of
/// [`DnsRt::path_lost`]'s counters).
#[derive(Clone, Copy)]
pub(crate) enum PathLoss {
    /// The second of an A/AAAA pair lost the conntrack insert race.
    InsertFailed,
    /// A stale entry sent it to a CoreDNS pod that is gone.
    StaleEntry,
    /// The client node's conntrack table was full.
    TableFull,
}

/// Where the kube-dns Service's DNAT sends one query.
pub(crate) enum DnsRoute {
    /// To this CoreDNS pod; `Some(pod)` also when the packet created a new
    /// conntrack entry (the pair's second packet may race it).
    Pod {
        pod: u32,
        new_entry: bool,
        flow: Option<(u32, u64)>,
    },
    /// No endpoint: ICMP port unreachable.
    Unreachable,
    /// Lost on the way (counted where it happened).
    Lost,
}

/// CoreDNS gauges (registered in field order).
pub(crate) struct DnsGauges {
    /// Queries inside CoreDNS.
    pub(crate) in_flight: GaugeId,
    /// CPU used over the limit.
    pub(crate) cpu_utilization: GaugeId,
    /// The most memory of a pod \[MiB\].
    pub(crate) memory_mib_max: GaugeId,
}

/// NodeLocal DNSCache counters (registered in field order).
#[derive(Clone, Copy)]
pub(crate) struct NodeLocalCounters {
    /// Queries to the node caches.
    pub(crate) queries: CounterId,
    /// Their cache hits.
    pub(crate) cache_hits: CounterId,
    /// Their forwards to kube-dns.
    pub(crate) forwards: CounterId,
}

/// The DNS side of a run.
pub(crate) struct DnsRt {
    /// resolv.conf per workload (its pods' namespace and dnsConfig).
    pub(crate) confs: Vec<ResolvConf>,
    /// `<service>.<namespace>` -> the Service's index in the run's
    /// Services (looked up by the query name's labels, without building a
    /// key per query).
    pub(crate) services: HashMap<String, usize>,
    /// External names that exist upstream.
    pub(crate) external: BTreeSet<String>,
    pub(crate) tags: Vec<Option<DnsTag>>,
    pub(crate) free_tags: Vec<u32>,
    /// Application caches: (client pod, traffic source) -> (rdata, expiry).
    pub(crate) cache: BTreeMap<(u32, u32), (u64, SimTime)>,
    /// Per node, the UDP flows to kube-dns through its DNAT, when the
    /// nodes' conntrack tables see pod traffic (empty otherwise).
    pub(crate) flows: Vec<UdpDnat>,
    /// Counters of queries lost on the way: insert race, stale entry, table full.
    pub(crate) path_lost: [CounterId; 3],
    /// Counters of queries that got an ICMP port unreachable (no endpoint)
    /// and of queries NetworkPolicy dropped.
    pub(crate) unreachable: CounterId,
    pub(crate) blocked: CounterId,
    /// Per node, its NodeLocal DNSCache (empty without one).
    pub(crate) node_local: Vec<CoreDns>,
    /// Counters: queries to the node caches, their cache hits, their
    /// forwards to kube-dns (with NodeLocal DNSCache).
    pub(crate) node_local_counters: Option<NodeLocalCounters>,
    /// The CoreDNS HorizontalPodAutoscaler and each pod's CPU busy time at
    /// its last sync.
    pub(crate) hpa: Option<Hpa>,
    pub(crate) hpa_busy: BTreeMap<u32, SimDuration>,
    /// Draws of the A/AAAA insert race.
    pub(crate) race_rng: SimRng,
    /// Per traffic source, per client pod: its process's resolver state.
    pub(crate) clients: Vec<PodMap<ClientResolver>>,
    /// Per traffic source: draws of the thread each lookup runs in and of
    /// `rotate`'s random start.
    pub(crate) thread_rng: Vec<SimRng>,
    pub(crate) windows: Vec<DnsWindowStats>,
    /// Counters: received by zone, replies by zone x rcode, cache hits, dropped, restarts.
    pub(crate) received: [CounterId; 2],
    pub(crate) replies: [[CounterId; 6]; 2],
    pub(crate) cache_hits: CounterId,
    pub(crate) dropped: CounterId,
    pub(crate) restarts: CounterId,
    pub(crate) gauges: DnsGauges,
    /// CPU busy time of CoreDNS containers gone (killed or deleted).
    pub(crate) retired_busy: SimDuration,
    pub(crate) busy_at_last_sample: SimDuration,
    pub(crate) last_sample: SimTime,
    pub(crate) restart_total: u64,
}

impl DnsRt {
    pub(crate) fn new(
        cfg: &ClusterConfig,
        d: &DnsConfig,
        metrics: &mut Metrics,
        rng: &RngStreams,
    ) -> DnsRt {
        // Each Service's name leads to its index in the run's Services
        // (the order of `services::resolve`, as `ServicesRt` keeps them).
        let services = crate::services::resolve(&cfg.deployments, &cfg.services.explicit)
            .into_iter()
            .enumerate()
            .map(|(s, r)| (format!("{}.{}", r.spec.name, r.spec.namespace), s))
            .collect();
        let external = cfg
            .traffic
            .iter()
            .filter_map(|t| t.resolve.as_deref())
            .map(|n| n.trim_end_matches('.').to_string())
            .filter(|n| !in_cluster_zone(n))
            .collect();
        let confs = cfg
            .deployments
            .iter()
            .enumerate()
            .map(|(i, dep)| d.resolv_conf(&dep.namespace, i))
            .collect();
        let mut received = Vec::new();
        let mut replies = Vec::new();
        for z in ZONES {
            received.push(metrics.counter(&format!("dns_queries_received{{zone={z}}}")));
            let per: Vec<CounterId> = RCODES
                .iter()
                .map(|r| metrics.counter(&format!("dns_replies{{zone={z},rcode={r}}}")))
                .collect();
            replies.push([per[0], per[1], per[2], per[3], per[4], per[5]]);
        }
        DnsRt {
            confs,
            services,
            external,
            tags: Vec::new(),
            free_tags: Vec::new(),
            cache: BTreeMap::new(),
            flows: cfg
                .conntrack
                .iter()
                .filter(|c| c.datapath.tracks_pod_flows())
                .flat_map(|_| cfg.nodes.iter().map(|_| UdpDnat::default()))
                .collect(),
            path_lost: [
                metrics.counter("dns_queries_insert_failed"),
                metrics.counter("dns_queries_stale_entry"),
                metrics.counter("dns_queries_table_full"),
            ],
            race_rng: rng.stream("conntrack/udp-insert-race"),
            clients: cfg.traffic.iter().map(|_| PodMap::default()).collect(),
            thread_rng: cfg
                .traffic
                .iter()
                .map(|t| rng.stream(&format!("traffic/{}/resolver-thread", t.name)))
                .collect(),
            unreachable: metrics.counter("dns_queries_unreachable"),
            blocked: metrics.counter("dns_queries_blocked"),
            node_local: d
                .node_local
                .iter()
                .flat_map(|spec| {
                    cfg.nodes.iter().filter_map(move |n| {
                        let name = format!("node-local-dns/{}", n.name);
                        CoreDns::new(*spec, &name, rng).ok()
                    })
                })
                .collect(),
            // The run starts in steady state: the controller has been
            // recommending the initial replica count.
            hpa: d
                .autoscaler
                .map(|h| Hpa::steady(h, SimTime::ZERO, cfg.deployments[d.workload].replicas)),
            hpa_busy: BTreeMap::new(),
            node_local_counters: d.node_local.map(|_| NodeLocalCounters {
                queries: metrics.counter("dns_node_local_queries"),
                cache_hits: metrics.counter("dns_node_local_cache_hits"),
                forwards: metrics.counter("dns_node_local_forwards"),
            }),
            windows: cfg
                .windows
                .iter()
                .map(|w| DnsWindowStats {
                    window: w.name.clone(),
                    ..DnsWindowStats::default()
                })
                .collect(),
            received: [received[0], received[1]],
            replies: [replies[0], replies[1]],
            cache_hits: metrics.counter("dns_cache_hits"),
            dropped: metrics.counter("dns_queries_dropped"),
            restarts: metrics.counter("dns_restarts"),
            gauges: DnsGauges {
                in_flight: metrics.gauge("dns_in_flight"),
                cpu_utilization: metrics.gauge("dns_cpu_utilization"),
                memory_mib_max: metrics.gauge("dns_memory_mib_max"),
            },
            retired_busy: SimDuration::ZERO,
            busy_at_last_sample: SimDuration::ZERO,
            last_sample: SimTime::ZERO,
            restart_total: 0,
        }
    }

    pub(crate) fn alloc_tag(&mut self, tag: DnsTag) -> u64 {
        match self.free_tags.pop() {
            Some(i) => {
                self.tags[i as usize] = Some(tag);
                u64::from(i)
            }
            None => {
                self.tags.push(Some(tag));
                (self.tags.len() - 1) as u64
            }
        }
    }

    pub(crate) fn take_tag(&mut self, tag: u64) -> Option<DnsTag> {
        let t = self.tags.get_mut(usize::try_from(tag).ok()?)?.take()?;
        self.free_tags.push(tag as u32);
        Some(t)
    }

    /// Window indices containing `now`.
    pub(crate) fn in_windows<'c>(
        cfg: &'c ClusterConfig,
        now: SimTime,
    ) -> impl Iterator<Item = usize> + 'c {
        cfg.windows
            .iter()
            .enumerate()
            .filter(move |(_, w)| w.contains(now))
            .map(|(i, _)| i)
    }
}

/// The CoreDNS pod kube-dns's DNAT picks for a new flow: from kube-proxy's
/// programmed endpoints when it is modelled (a pod removed since its last
/// sync may still be picked), else from the Ready pods.
pub(crate) fn kube_dns_pick(
    deps: &[DeploymentRt],
    kube_proxy: Option<&KubeProxy>,
    w: usize,
    svc: usize,
    rng: &mut SimRng,
) -> Option<u32> {
    match kube_proxy {
        Some(kp) => kp.pick(svc, rng).map(|(p, _)| p),
        None => deps[w].endpoints.pick(rng),
    }
}

impl Sim<'_> {
    /// A lookup's resolver timer fired (a query's timeout).
    pub(crate) fn resolver_timer(&mut self, lookup: u32, generation: u32, token: u32) {
        let now = self.engine.now();
        if let Some(p) = self.lookup_mut(lookup, generation) {
            p.timers.retain(|(t, _)| t.0 != token);
            let actions = p.lookup.on_timer(now, TimerToken(token));
            self.resolver_actions(lookup, actions);
        }
    }

    /// Starts resolving the traffic source's name from pod `client`, as
    /// glibc does with the resolv.conf the kubelet writes for the pod.
    pub(crate) fn start_lookup(&mut self, req: Request, client: u32) {
        let now = self.engine.now();
        let t = req.source as usize;
        let (Some(dns), Some(name)) = (&self.dns, self.cfg.traffic[t].resolve.as_deref()) else {
            self.after_lookup(req, 0);
            return;
        };
        let Some(qtypes) = self.cfg.dns.as_ref().map(|d| d.qtypes) else {
            return;
        };
        let conf = &dns.confs[self.pods[client as usize].deployment as usize];
        let rotate = conf.rotate && conf.nameservers.len() > 1;
        let Ok(mut lookup) = Lookup::new(conf, name, qtypes) else {
            self.outcome(req, Outcome::LookupFailed);
            return;
        };
        // The thread it runs in, and what glibc kept in that thread and
        // process from earlier lookups.
        let threads = self.cfg.traffic[t].threads.max(1);
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        let rng = &mut dns.thread_rng[t];
        let thread = if threads > 1 {
            rng.random_range(0..threads)
        } else {
            0
        };
        let process = dns.clients[t]
            .entry(client)
            .or_insert_with(|| ClientResolver {
                threads: vec![ThreadState::default(); threads as usize].into_boxed_slice(),
                rotation: None,
            });
        lookup = lookup.in_thread(process.threads[thread as usize]);
        if rotate {
            let offset = *process.rotation.get_or_insert_with(|| rng.random());
            lookup = lookup.rotation_offset(offset);
        }
        self.metrics.inc(self.traffic[t].counters.dns_lookups);
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                self.windows[i * cfg.traffic.len() + t].lookups += 1;
            }
        }
        self.resolving.insert(req.id);
        self.lookup_generation = self.lookup_generation.wrapping_add(1);
        let pending = PendingLookup {
            generation: self.lookup_generation,
            lookup,
            req,
            client,
            timers: Vec::new(),
            backends: Vec::new(),
            answer: None,
            thread,
        };
        let slot = match self.free_lookups.pop() {
            Some(i) => {
                self.lookups[i as usize] = Some(pending);
                i
            }
            None => {
                self.lookups.push(Some(pending));
                (self.lookups.len() - 1) as u32
            }
        };
        let actions = self.lookups[slot as usize]
            .as_mut()
            .map_or_else(Vec::new, |p| p.lookup.start(now));
        self.resolver_actions(slot, actions);
    }

    pub(crate) fn lookup_mut(&mut self, slot: u32, generation: u32) -> Option<&mut PendingLookup> {
        self.lookups
            .get_mut(slot as usize)?
            .as_mut()
            .filter(|p| p.generation == generation)
    }

    /// Carries out what the resolver asks for.
    pub(crate) fn resolver_actions(&mut self, slot: u32, actions: Vec<ResolverAction>) {
        let now = self.engine.now();
        // The last query sent in this batch: its socket, and the endpoint
        // of the conntrack entry it created (glibc's A and AAAA leave in one
        // `sendmmsg`: the second may race the first's insert).
        let mut last_sent: Option<(SocketId, Option<u32>)> = None;
        for action in actions {
            let Some(p) = self.lookups.get_mut(slot as usize).and_then(Option::as_mut) else {
                return;
            };
            let generation = p.generation;
            match action {
                ResolverAction::Send {
                    query_id,
                    name,
                    qtype,
                    socket,
                    server,
                } => {
                    let t = p.req.source as usize;
                    self.metrics.inc(self.traffic[t].counters.dns_queries);
                    let cfg = self.cfg;
                    for (i, w) in cfg.windows.iter().enumerate() {
                        if w.contains(now) {
                            self.windows[i * cfg.traffic.len() + t].dns_queries += 1;
                        }
                    }
                    let q = SentQuery {
                        slot,
                        generation,
                        query: query_id,
                        name,
                        qtype,
                        socket,
                        route: cfg.dns.as_ref().and_then(|d| d.route(server)),
                    };
                    let racing = last_sent.and_then(|(s, ep)| ep.filter(|_| s == socket));
                    let created = self.send_dns_query(q, racing);
                    last_sent = Some((socket, created));
                }
                ResolverAction::SetTimer { at, token } => {
                    let id = self.engine.schedule_at(
                        at,
                        Ev::ResolverTimer {
                            lookup: slot,
                            generation,
                            token: token.0,
                        },
                    );
                    p.timers.push((token, id));
                }
                ResolverAction::CancelTimer { token } => {
                    if let Some(i) = p.timers.iter().position(|(t, _)| *t == token) {
                        let (_, id) = p.timers.swap_remove(i);
                        self.engine.cancel(id);
                    }
                }
                ResolverAction::Done(result) => {
                    let Some(done) = self.lookups[slot as usize].take() else {
                        return;
                    };
                    self.free_lookups.push(slot);
                    for (_, id) in done.timers {
                        self.engine.cancel(id);
                    }
                    let t = done.req.source as usize;
                    if now < done.req.deadline {
                        self.resolving.remove(&done.req.id);
                    }
                    // The thread keeps the switches this lookup turned on;
                    // the process's rotate counter moved one per name.
                    if let Some(process) = self
                        .dns
                        .as_mut()
                        .and_then(|d| d.clients[t].get_mut(&done.client))
                    {
                        let kept = done.lookup.thread_state();
                        if let Some(s) = process.threads.get_mut(done.thread as usize) {
                            s.single_request |= kept.single_request;
                            s.single_request_reopen |= kept.single_request_reopen;
                        }
                        if let Some(r) = process.rotation.as_mut() {
                            *r = r.wrapping_add(result.names_tried);
                        }
                    }
                    let latency = result.latency();
                    self.metrics.record(self.traffic[t].lookup_latency, latency);
                    let cfg = self.cfg;
                    for (i, w) in cfg.windows.iter().enumerate() {
                        if w.contains(now) {
                            self.windows[i * cfg.traffic.len() + t]
                                .lookup_latency
                                .record(latency);
                        }
                    }
                    match result.outcome {
                        LookupOutcome::Answered { .. } if now < done.req.deadline => {
                            let (rdata, ttl) = done.answer.unwrap_or((0, SimDuration::ZERO));
                            let keep = match cfg.traffic[t].dns_cache {
                                Some(ClientDnsCache::RecordTtl) => Some(ttl),
                                Some(ClientDnsCache::Fixed(d)) => Some(d),
                                None => None,
                            };
                            if let (Some(keep), Some(dns)) = (keep, self.dns.as_mut()) {
                                dns.cache
                                    .insert((done.client, t as u32), (rdata, now + keep));
                            }
                            self.after_lookup(done.req, rdata);
                        }
                        LookupOutcome::Answered { .. } => {
                            self.outcome(done.req, Outcome::TimedOut);
                            self.resolving.remove(&done.req.id);
                        }
                        _ => {
                            self.outcome(done.req, Outcome::LookupFailed);
                            self.resolving.remove(&done.req.id);
                        }
                    }
                    return;
                }
            }
        }
    }

    /// One DNS query from a lookup to the kube-dns Service: through the
    /// Service's DNAT ([`Sim::dns_route`]) to a CoreDNS pod; dropped by
    /// policy or on the way (the resolver's timer will fire); an ICMP port
    /// unreachable when kube-dns has no endpoint. `racing`: the endpoint of
    /// the entry the previous packet on this socket just created. Returns
    /// the endpoint of the entry this packet created, if it created one.
    pub(crate) fn send_dns_query(&mut self, q: SentQuery, racing: Option<u32>) -> Option<u32> {
        let now = self.engine.now();
        let client = self.lookup_mut(q.slot, q.generation)?.client;
        match q.route {
            Some(NameserverRoute::KubeDns) => {}
            Some(NameserverRoute::NodeLocal) => {
                if let Some(node) = self.pods[client as usize].node.filter(|&n| {
                    self.dns
                        .as_ref()
                        .is_some_and(|d| (n as usize) < d.node_local.len())
                }) {
                    self.node_local_query(q, node);
                    return None;
                }
            }
            // Refused when the scenario is read; the query goes nowhere.
            None => return None,
        }
        let (server, created, flow) = match self.dns_route(&q, client, racing) {
            DnsRoute::Pod {
                pod,
                new_entry,
                flow,
            } => (pod, new_entry.then_some(pod), flow),
            DnsRoute::Unreachable => {
                if let Some(dns) = self.dns.as_ref() {
                    self.metrics.inc(dns.unreachable);
                }
                self.engine.schedule_at(
                    now,
                    Ev::DnsUnreachable {
                        lookup: q.slot,
                        generation: q.generation,
                        query: q.query.0,
                    },
                );
                return None;
            }
            DnsRoute::Lost => return None,
        };
        if self.pods[server as usize].deleted || self.pods[server as usize].coredns.is_none() {
            // A stale entry: the packet goes to an address nobody holds.
            self.dns_path_lost(PathLoss::StaleEntry);
            return created;
        }
        if self.policy_denies(client, server) {
            if let Some(dns) = self.dns.as_ref() {
                self.metrics.inc(dns.blocked);
            }
            return created;
        }
        let (zone, existence, rdata) = self.dns_truth(&q.name, q.qtype);
        let dns = self.dns.as_mut()?;
        let z = zone_index(zone);
        self.metrics.inc(dns.received[z]);
        for i in DnsRt::in_windows(self.cfg, now) {
            dns.windows[i].received[z] += 1;
        }
        let tag = dns.alloc_tag(DnsTag::of(&q, zone, flow, Via::Pod));
        let query = DnsQuery {
            tag,
            name: &q.name,
            qtype: q.qtype,
            zone,
            existence,
            rdata,
        };
        let Some(c) = self.pods[server as usize].coredns.as_mut() else {
            dns.take_tag(tag);
            return created;
        };
        let actions = c.offer(now, query);
        self.coredns_actions(server, actions);
        created
    }

    /// The CoreDNS pod the kube-dns Service's DNAT sends query `q` to.
    ///
    /// Without conntrack in the model (or with an eBPF data path), each
    /// socket's flow goes to the pod it was first balanced to while that
    /// pod is Ready, and is balanced afresh otherwise (an ideal kube-proxy
    /// that flushes at once). With it, the client node's table pins the
    /// flow to the endpoint its live entry names, a stale one included,
    /// until the entry idles out or kube-proxy flushes it; a new entry may
    /// find the table full; and the second packet of a same-socket pair
    /// may lose the insert race to the first.
    pub(crate) fn dns_route(
        &mut self,
        q: &SentQuery,
        client: u32,
        racing: Option<u32>,
    ) -> DnsRoute {
        let now = self.engine.now();
        let Some(w) = self.cfg.dns.as_ref().map(|d| d.workload) else {
            return DnsRoute::Lost;
        };
        let conntrack = self.cfg.conntrack.filter(|c| c.datapath.tracks_pod_flows());
        let node = self.pods[client as usize].node;
        let (Some(ct), Some(node), Some(dns)) = (conntrack, node, self.dns.as_mut()) else {
            let Some(p) = self.lookup_mut(q.slot, q.generation) else {
                return DnsRoute::Lost;
            };
            let known = p
                .backends
                .iter()
                .find(|(s, _)| *s == q.socket)
                .map(|(_, b)| *b);
            if let Some(b) = known.filter(|&b| self.pod_live_in(b, PodState::Ready)) {
                return DnsRoute::Pod {
                    pod: b,
                    new_entry: false,
                    flow: None,
                };
            }
            let Some(b) = kube_dns_pick(
                &self.deps,
                self.path.service.kube_proxy.as_ref(),
                w,
                self.services.implicit_of(w),
                &mut self.dns_pick,
            ) else {
                return DnsRoute::Unreachable;
            };
            if let Some(p) = self.lookup_mut(q.slot, q.generation) {
                p.backends.retain(|(s, _)| *s != q.socket);
                p.backends.push((q.socket, b));
            }
            return DnsRoute::Pod {
                pod: b,
                new_entry: false,
                flow: None,
            };
        };
        let t = self.lookups[q.slot as usize]
            .as_ref()
            .map_or(0, |p| p.req.source);
        // The flow: the client's socket to kube-dns:53.
        let key = if self.cfg.traffic[t as usize].persistent_dns_socket {
            1 << 63 | u64::from(client) << 16 | u64::from(t)
        } else {
            u64::from(q.generation & 0x7fff_ffff) << 32 | u64::from(q.socket.0)
        };
        let (deps, pick_rng) = (&self.deps, &mut self.dns_pick);
        let table = &mut self.path.tables.nodes[node as usize];
        let kp = self.path.service.kube_proxy.as_ref();
        let svc = self.services.implicit_of(w);
        let mut pick = || kube_dns_pick(deps, kp, w, svc, pick_rng);
        if let Some(first) = racing {
            let kernel = table.config().kernel;
            match conntrack::udp_pair_second(
                kernel,
                first,
                ct.udp_pair_concurrency,
                &mut pick,
                &mut dns.race_rng,
            ) {
                UdpPairSecond::InsertFailed => {
                    self.dns_path_lost(PathLoss::InsertFailed);
                    return DnsRoute::Lost;
                }
                UdpPairSecond::Clashed(pod) => {
                    return DnsRoute::Pod {
                        pod,
                        new_entry: false,
                        flow: None,
                    }
                }
                UdpPairSecond::Follows(_) => {}
            }
        }
        let flow = Some((node, key));
        match dns.flows[node as usize].send(table, now, key, pick, &mut self.path.tables.early_drop)
        {
            UdpSend::Existing(pod) => DnsRoute::Pod {
                pod,
                new_entry: false,
                flow,
            },
            UdpSend::New(pod) => DnsRoute::Pod {
                pod,
                new_entry: true,
                flow,
            },
            UdpSend::NoEndpoint => DnsRoute::Unreachable,
            UdpSend::TableFull => {
                self.dns_path_lost(PathLoss::TableFull);
                DnsRoute::Lost
            }
        }
    }

    /// Counts a query lost on the way to CoreDNS.
    pub(crate) fn dns_path_lost(&mut self, why: PathLoss) {
        let now = self.engine.now();
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        self.metrics.inc(dns.path_lost[why as usize]);
        for i in DnsRt::in_windows(self.cfg, now) {
            let w = &mut dns.windows[i];
            *match why {
                PathLoss::InsertFailed => &mut w.insert_failed,
                PathLoss::StaleEntry => &mut w.stale,
                PathLoss::TableFull => &mut w.table_full,
            } += 1;
        }
    }

    /// kube-proxy removed DNS pod `p` from the endpoints: it deletes the
    /// pod's UDP conntrack entries on every node, unless that fails.
    pub(crate) fn dns_endpoint_removed(&mut self, p: u32) {
        let now = self.engine.now();
        let flush = self
            .cfg
            .conntrack
            .is_some_and(|c| c.flush_udp_on_endpoint_removal);
        if let (true, Some(dns)) = (flush, self.dns.as_mut()) {
            for (flows, table) in dns.flows.iter_mut().zip(self.path.tables.nodes.iter_mut()) {
                flows.flush_endpoint(table, now, p);
            }
        }
    }

    /// The ICMP port unreachable for `query` reaches the lookup that sent
    /// it (if that lookup is still running).
    pub(crate) fn dns_unreachable(&mut self, slot: u32, generation: u32, query: QueryId) {
        let now = self.engine.now();
        if let Some(p) = self.lookup_mut(slot, generation) {
            let actions = p.lookup.on_unreachable(now, query);
            self.resolver_actions(slot, actions);
        }
    }

    /// A reply reaches the lookup that sent the query.
    pub(crate) fn deliver_dns_reply(
        &mut self,
        q: &DnsTag,
        reply: Reply,
        rdata: u64,
        ttl: SimDuration,
    ) {
        let now = self.engine.now();
        let Some(p) = self.lookup_mut(q.slot, q.generation) else {
            return;
        };
        if reply.answers > 0 {
            p.answer = Some((rdata, ttl));
        }
        let actions = p.lookup.on_reply(now, QueryId(q.query), reply);
        self.resolver_actions(q.slot, actions);
    }
}
