//! # Dialing: a new connection along the connection path
//!
//! A new connection's SYN goes through [`crate::path`] (conntrack,
//! kube-proxy's DNAT, NetworkPolicy, MASQUERADE, confirmation); a drop becomes
//! an event an operator would see and the client's follow-up on the event
//! queue ([`crate::path::ClientSees`]).
//!
//! connection to a Service (not client-side balancing, which dials pod IPs)
//! gets its endpoint from [`crate::kube_proxy`]'s data-path view, which
//! follows endpoint changes only when a sync ends: a pod deleted before
//! that still receives connections, whose SYNs are dropped. The first
//! packet pays the Service lookup before the request reaches the pod.
//! Without one, the data path follows the Ready pods at once and costs
//! nothing.
//!
//! This room also runs kube-proxy's sync loop and NetworkPolicy's
//! propagation to the data path.

use super::*;

/// What the connection path reads of the run (disjoint fields of [`Sim`],
/// so the path's own state can be borrowed at the same time).
pub(crate) struct Env<'s> {
    pub(crate) cfg: &'s ClusterConfig,
    pub(crate) deps: &'s [DeploymentRt],
    pub(crate) pods: &'s [Pod],
    pub(crate) pod_infos: &'s [Option<PodInfo>],
    pub(crate) services: &'s services::ServicesRt,
}

impl PathEnv for Env<'_> {
    fn endpoints(&self, service: u32) -> &Endpoints {
        self.services.endpoints(self.deps, service as usize)
    }
    fn topology(
        &self,
        service: u32,
    ) -> Option<(
        &crate::services::ServiceSpec,
        &crate::services::TopologyEndpoints,
    )> {
        let s = service as usize;
        let eps = self.services.eps[s].as_ref()?;
        Some((&self.services.list[s].spec, eps))
    }
    fn node_zone(&self, node: u32) -> usize {
        self.services
            .zone_of
            .get(node as usize)
            .copied()
            .unwrap_or(0)
    }
    fn pod_node(&self, pod: u32) -> Option<u32> {
        self.pods[pod as usize].node
    }
    fn edge(&self) -> Option<&crate::path::Edge> {
        Some(&self.services.edge)
    }
    fn pod_gone(&self, pod: u32) -> bool {
        self.pods[pod as usize].deleted
    }
    fn pod_infos(&self) -> &[Option<PodInfo>] {
        self.pod_infos
    }
    fn server_port(&self, pod: u32) -> (crate::netpol::Protocol, u16) {
        let spec = &self.cfg.deployments[self.pods[pod as usize].deployment as usize];
        (spec.port.protocol, spec.port.number)
    }
}

impl Sim<'_> {
    /// Opens a connection (SYN number `attempt`, the first sent at `first`)
    /// to `target`, or to the endpoint kube-proxy picks, then sends `req`:
    /// the SYN goes along the connection path ([`crate::path`]); a drop
    /// becomes what the client sees, its follow-up an event.
    pub(crate) fn dial(
        &mut self,
        req: Request,
        client: Option<u32>,
        first: SimTime,
        attempt: u32,
        target: Option<u32>,
    ) {
        let t = req.source as usize;
        let Some(d) = self.target_of(&req) else {
            return;
        };
        let mode = self.cfg.traffic[t].connections;
        // Client-side balancing dials pod IPs: the application picks.
        let to = match (target, mode, client) {
            (Some(p), _, _) => Target::Pod(p),
            (None, _, None) if self.cfg.traffic[t].entry.is_some() => {
                match self.node_port_target(t, d) {
                    Some(np) => Target::NodePort(np),
                    None => return self.outcome(req, Outcome::Refused),
                }
            }
            (None, ConnectionMode::ClientSide, Some(c)) => {
                if self.services.endpoints(&self.deps, d).is_empty() {
                    return self.outcome(req, Outcome::Refused);
                }
                match self.next_turn(t, c) {
                    Some(p) => Target::Pod(p),
                    None => return self.outcome(req, Outcome::Refused),
                }
            }
            _ => Target::Service(d as u32),
        };
        self.dial_to(req, client, first, attempt, to);
    }

    /// Opens a connection (SYN number `attempt`, the first sent at `first`)
    /// to `to` along the connection path, then sends `req`.
    pub(crate) fn dial_to(
        &mut self,
        req: Request,
        client: Option<u32>,
        first: SimTime,
        attempt: u32,
        to: Target,
    ) {
        let now = self.engine.now();
        let t = req.source as usize;
        let mode = self.cfg.traffic[t].connections;
        let flow = Flow {
            client: client.map(|c| Client {
                pod: c,
                node: self.pods[c as usize].node,
            }),
            to,
            snat: self.cfg.traffic[t].snat,
        };
        let env = Env {
            cfg: self.cfg,
            deps: &self.deps,
            pods: &self.pods,
            pod_infos: &self.pod_infos,
            services: &self.services,
        };
        let (trip, verdict) = self.path.open(&flow, now, &env, &mut self.traffic[t].pick);
        if let Some(fp) = trip.first_packet {
            self.record_first_packet(t, now, fp);
        }
        if let (Some(mut h), Err(_), Some(nat)) =
            (trip.nat, &verdict, self.path.nat_gateway.as_mut())
        {
            // Dropped after the gateway translated it: the port is free again.
            nat.gateways.close(&mut h);
        }
        if let Err(drop) = verdict {
            return self.path_dropped(req, flow, first, attempt, drop);
        }
        let (Some(p), ct) = (trip.pod, trip.ct) else {
            return;
        };
        let first_packet = trip.first_packet;
        if trip.node_snat {
            self.for_windows(t, now, |w| w.node_snat += 1);
        }
        let delay = now.saturating_since(first);
        self.metrics.inc(self.traffic[t].counters.connections);
        self.metrics.record(self.traffic[t].connect_delay, delay);
        self.for_windows(t, now, |w| w.connect_delay.record(delay));
        let Some(c) = client else {
            return match first_packet {
                Some(fp) => {
                    let ev = Ev::FirstPacket { pod: p, req };
                    self.engine.schedule_in(fp.rtt, ev);
                }
                None => self.offer(p, req),
            };
        };
        let conn = self.conns.insert(Conn {
            traffic: t as u32,
            client: c,
            server: p,
            ct,
            idle_timer: None,
            opened: now,
            gen: 0,
            nat: trip.nat,
        });
        if let Some(h) = trip.nat {
            self.egress_opened(h.gateway());
        }
        let cc = self.traffic[t].clients.entry(c).or_default();
        match mode {
            ConnectionMode::LongLived { per_client, .. } if (cc.open.len() as u32) < per_client => {
                cc.open.push(conn)
            }
            // A mesh proxy pools one connection per endpoint, as
            // client-side balancing does.
            _ if mode == ConnectionMode::ClientSide || self.l7.on(t) => {
                cc.by_server.insert(p, conn);
            }
            _ => {}
        }
        match first_packet {
            Some(fp) => {
                let req = Request {
                    conn: OptU32::some(conn),
                    ..req
                };
                self.engine
                    .schedule_in(fp.rtt, Ev::FirstPacket { pod: p, req });
            }
            None => self.send_on(conn, req),
        }
    }

    /// The first packet's round trip and lookup CPU, per window.
    pub(crate) fn record_first_packet(&mut self, t: usize, now: SimTime, fp: FirstPacket) {
        self.metrics.record(self.traffic[t].first_packet, fp.rtt);
        self.for_windows(t, now, |w| {
            w.first_packet.record(fp.rtt);
            w.lookup_cpu = w.lookup_cpu + fp.lookup;
        });
    }

    /// kube-proxy's data path sent a new connection to pod `p`, already
    /// deleted: its SYNs (the retransmissions follow the same conntrack
    /// entry) are dropped until the client gives up.
    pub(crate) fn stale_endpoint(&mut self, p: u32) {
        let d = self.pods[p as usize].deployment;
        let key = EventKey::Ids([d, 0, 0]);
        self.event_by("Warning", "StaleEndpoint", "kube-proxy", key, |s| {
            let svc = &s.cfg.deployments[d as usize].name;
            let mode = s
                .path
                .service
                .kube_proxy
                .as_ref()
                .map_or("", |k| k.config().mode.name());
            (
                format!("connections to Service {svc} sent to deleted pod(s): the {mode} data path lists them until its next sync ends; SYNs dropped"),
                format!("pod/{}", s.pod_name(p)),
            )
        });
    }

    /// The Ready pods of Deployment `d` changed: kube-proxy will sync the
    /// Services selecting it.
    pub(crate) fn endpoints_changed(&mut self, d: usize) {
        let now = self.engine.now();
        if let Some(kp) = self.path.service.kube_proxy.as_mut() {
            let mut at = None;
            for &s in self.services.index.of(d) {
                at = Some(kp.changed(now, s as usize));
            }
            let Some(at) = at else { return };
            if let Some(id) = self.kube_proxy_wake.take() {
                self.engine.cancel(id);
            }
            self.kube_proxy_wake = Some(self.engine.schedule_at(at, Ev::KubeProxySync));
        }
    }

    /// kube-proxy's sync loop runs: a sync ends or starts.
    pub(crate) fn kube_proxy_wake(&mut self) {
        let now = self.engine.now();
        let (deps, services) = (&self.deps, &self.services);
        if let Some(kp) = self.path.service.kube_proxy.as_mut() {
            let at = kp.wake(now, |s| services.endpoints(deps, s).pods().to_vec());
            self.kube_proxy_wake = Some(self.engine.schedule_at(at, Ev::KubeProxySync));
        }
    }

    /// The path dropped a new connection's SYN: the event an operator
    /// would see, the counters, and what the client does next.
    pub(crate) fn path_dropped(
        &mut self,
        req: Request,
        flow: Flow,
        first: SimTime,
        attempt: u32,
        drop: Drop,
    ) {
        let now = self.engine.now();
        let t = req.source as usize;
        match &drop {
            Drop::NoEndpoints | Drop::NatGateway(_) => {}
            Drop::EdgeDenied { .. } | Drop::PortClosed { .. } | Drop::NoLocalEndpoint { .. } => {
                self.edge_dropped(t, &drop);
            }
            Drop::ConntrackFull { node, refused } => {
                self.metrics.inc(self.traffic[t].counters.syn_drops);
                self.for_windows(t, now, |w| w.syn_drops += 1);
                let (node, refused) = (*node, *refused);
                let key = EventKey::Ids([node, 0, 0]);
                self.event_by("Warning", "ConntrackTableFull", "kernel", key, |s| {
                    let obj = format!("node/{}", s.cfg.nodes[node as usize].name);
                    (refused.to_string(), obj)
                });
            }
            Drop::StaleEndpoint { pod } => self.stale_endpoint(*pod),
            Drop::PolicyDenied { pod, denial } => {
                if let Some(c) = flow.client {
                    self.policy_denied(c.pod, *pod, denial);
                }
            }
            Drop::InsertFailed { node } => {
                self.for_windows(t, now, |w| w.insert_failed += 1);
                let node = *node;
                let key = EventKey::Ids([node, 0, 0]);
                self.event_by("Warning", "ConntrackInsertFailed", "kernel", key, |s| {
                    let msg = "SYN dropped: its SNAT source port clashed with a concurrent connection's at conntrack confirmation (conntrack -S: insert_failed)";
                    (msg.to_string(), format!("node/{}", s.cfg.nodes[node as usize].name))
                });
            }
        }
        if let Some(i) = self.lb_of(t) {
            // A load balancer's connection to its target (a node's
            // NodePort) failed: its client sees what the load balancer
            // makes of it.
            return self.lb_path_dropped(i, req, &drop);
        }
        if let Drop::NatGateway(d) = drop {
            self.egress_failed(d);
            let ev = match d {
                crate::nat_gateway::NatDrop::PortAllocation { .. } => Ev::EgressNoPort(req),
                _ => Ev::EgressDropped(req),
            };
            self.engine.schedule_at(req.deadline, ev);
            return;
        }
        match (drop.client(), flow.client) {
            (ClientSees::Refused, _) if matches!(drop, Drop::PortClosed { .. }) => {
                self.outcome(req, Outcome::PortClosed)
            }
            (ClientSees::Refused, _) => self.outcome(req, Outcome::Refused),
            (ClientSees::Retransmit, Some(_)) => {
                let pod = match flow.to {
                    Target::Pod(p) => Some(p),
                    _ => None,
                };
                self.syn_dropped(req, first, attempt, pod)
            }
            (ClientSees::Retransmit | ClientSees::Silence, _) => {
                let ev = match drop {
                    Drop::PolicyDenied { .. } => Ev::BlockedTimeout(req),
                    Drop::EdgeDenied { .. } => Ev::EdgeTimeout(req),
                    Drop::NoLocalEndpoint { .. } => Ev::NoLocalTimeout(req),
                    _ => Ev::StaleTimeout(req),
                };
                self.engine.schedule_at(req.deadline, ev);
            }
        }
    }

    /// A drop at the edge or by a traffic policy: the event an operator
    /// would see (aggregated per node and reason).
    pub(crate) fn edge_dropped(&mut self, t: usize, drop: &Drop) {
        let (reason, node) = match drop {
            Drop::EdgeDenied { node } => ("SecurityGroupDrop", *node),
            Drop::PortClosed { node } => ("NodePortClosed", *node),
            Drop::NoLocalEndpoint { node } => ("NoLocalEndpoint", *node),
            _ => return,
        };
        let key = EventKey::Ids([node, t as u32, 0]);
        self.event_by("Warning", reason, "edge", key, |s| {
            let source = &s.cfg.traffic[t].name;
            (
                format!("traffic {source}: {drop}"),
                format!("node/{}", s.cfg.nodes[node as usize].name),
            )
        });
    }

    /// Whether NetworkPolicy drops a new connection from pod `client` to pod
    /// `server` on the server's port; a drop is recorded as an event
    /// aggregated per (client workload, server workload, port).
    pub(crate) fn policy_denies(&mut self, client: u32, server: u32) -> bool {
        let Some(enforcer) = self.path.policy.as_mut() else {
            return false;
        };
        let spec = &self.cfg.deployments[self.pods[server as usize].deployment as usize];
        let (proto, port) = (spec.port.protocol, spec.port.number);
        let Some(denial) = enforcer.check(&self.pod_infos, (client, server), proto, port) else {
            return false;
        };
        let denial = denial.clone();
        self.policy_denied(client, server, &denial);
        true
    }

    /// Records NetworkPolicy's drop of a new connection from pod `client` to
    /// pod `server` as an event aggregated per (client workload, server
    /// workload, port).
    pub(crate) fn policy_denied(&mut self, client: u32, server: u32, denial: &str) {
        let (from, to) = (
            self.pods[client as usize].deployment,
            self.pods[server as usize].deployment,
        );
        // The server's port is its workload's: (from, to) names the flow.
        let key = EventKey::Ids([from, to, 0]);
        self.event_by("Warning", "PolicyDenied", "netpol", key, |s| {
            let spec = &s.cfg.deployments[to as usize];
            let (proto, port) = (spec.port.protocol, spec.port.number);
            let from = &s.cfg.deployments[from as usize];
            let flow = format!(
                "{}/{} -> {}/{} {proto}/{port}",
                from.namespace, from.name, spec.namespace, spec.name
            );
            let cni = s.cfg.policy.as_ref().map_or("cni", |p| p.cni.plugin());
            (
                format!("{flow}: first packet dropped by {cni}: {denial}"),
                format!("pod/{}", s.pod_name(client)),
            )
        });
    }

    /// A policy change reaches the data path.
    pub(crate) fn policies_programmed(&mut self, action: usize) {
        let (Some(cfg), Some(enforcer), Action::SetPolicies { sets }) = (
            self.cfg.policy.as_ref(),
            self.path.policy.as_mut(),
            &self.cfg.timeline[action].action,
        ) else {
            return;
        };
        enforcer.set_active(cfg, sets);
        let names: Vec<&str> = sets
            .iter()
            .filter_map(|&i| cfg.sets.get(i))
            .map(|(n, _)| n.as_str())
            .collect();
        let msg = format!(
            "active NetworkPolicy sets now [{}], programmed into {}",
            names.join(", "),
            cfg.cni.plugin()
        );
        self.event(
            "Normal",
            "PolicyProgrammed",
            "netpol",
            msg,
            "networkpolicies".into(),
        );
    }
}
