//! Validation of a packet-level scenario: each section of the file checked
//! and turned into the model's configuration ([`sim_models::datapath::network::NetConfig`]),
//! every error located at its file:line:column with a hint.

use super::*;

impl V<'_> {
    pub(super) fn scenario(&self, f: DatapathFile) -> R<DatapathScenario> {
        if f.duration.0 == SimDuration::ZERO {
            return Err(self.err(&path!["duration"], "duration is 0", "e.g. duration: 60s"));
        }
        let label = |v: &VariantFile| (v.name.clone(), v.description.clone());
        let variants =
            self.variants(f.variant, &f.variants, label, |name, description, layer| {
                let sections = Sections {
                    net: layer.pick(|v| v.datapath.as_ref(), &f.datapath),
                    flows: layer.pick(|v| v.flows.as_deref(), &f.flows[..]),
                    timeline: layer.pick(|v| v.timeline.as_deref(), &f.timeline[..]),
                    expect: (layer.own(|v| &v.expect[..], &f.expect[..]), layer.path()),
                };
                self.variant(name, description, &sections, f.duration.0)
            })?;
        Ok(DatapathScenario {
            name: f.name,
            summary: f.summary,
            story: f.story,
            variants,
        })
    }

    pub(super) fn variant(
        &self,
        name: String,
        description: String,
        sec: &Sections<'_>,
        duration: SimDuration,
    ) -> R<Variant> {
        let (net, flows, timeline, expect) = (&sec.net, &sec.flows, &sec.timeline, &sec.expect);
        let (n, np) = (net.0, join(&net.1, &path!["datapath"]));
        let cni = self.cni(&np, n)?;
        let cluster_cidr: Ipv4Cidr = match &n.cluster_cidr {
            Some(c) => c.parse().map_err(|e: sim_models::ipam::CidrError| {
                self.err(
                    &join(&np, &path!["cluster_cidr"]),
                    e.to_string(),
                    "e.g. 10.244.0.0/16",
                )
            })?,
            None => "10.244.0.0/16".parse().expect("a valid CIDR"),
        };
        let node_mask = n.node_mask.map_or(24, |m| m.0).min(255) as u8;
        let nodes = n.nodes.0 as usize;
        let up = join(&np, &path!["underlay"]);
        let icmp_allowed = match n.underlay.icmp.as_deref() {
            None | Some("allow") => true,
            Some("deny") => false,
            Some(other) => {
                return Err(self.err(
                    &join(&up, &path!["icmp"]),
                    format!("`{other}` is not allow or deny"),
                    "write icmp: allow or icmp: deny",
                ))
            }
        };
        let mtu = n.underlay.mtu.0;
        let underlay = UnderlaySpec {
            nic_mtu: mtu,
            path_mtu: n.underlay.path_mtu.map_or(mtu, |m| m.0),
            latency: n
                .underlay
                .latency
                .map_or(SimDuration::from_micros(50), |d| d.0),
            bandwidth: n.underlay.bandwidth.map_or(10e9, |b| b.0),
            icmp_allowed,
        };
        let mut endpoints: Vec<String> = Vec::new();
        let mut pods = Vec::new();
        let mut metas = Vec::new();
        for (i, p) in n.pods.iter().enumerate() {
            let pp = join(&np, &path!["pods", i]);
            if endpoints.contains(&p.name) {
                return Err(self.err(
                    &pp,
                    format!("`{}` is named twice", p.name),
                    "give each pod its own name",
                ));
            }
            if p.node.0 == 0 || p.node.0 as usize > nodes {
                return Err(self.err(
                    &join(&pp, &path!["node"]),
                    format!("node {} does not exist", p.node.0),
                    format!("nodes are numbered 1 to {nodes}"),
                ));
            }
            let tcp = self.tcp_settings(
                &pp,
                p.tcp_mtu_probing,
                p.tcp_congestion_control.as_deref(),
                p.tcp_rmem.as_deref(),
            )?;
            metas.push(PodMeta {
                namespace: p.namespace.clone().unwrap_or_else(|| "default".into()),
                labels: p.labels.clone(),
            });
            endpoints.push(p.name.clone());
            pods.push(PodSpec {
                name: p.name.clone(),
                node: p.node.0 as usize - 1,
                tcp,
            });
        }
        let mut sites = Vec::new();
        for (s, site) in n.sites.iter().enumerate() {
            let sp = join(&np, &path!["sites", s]);
            let mut hosts = Vec::new();
            for (h, host) in site.hosts.iter().enumerate() {
                let hp = join(&sp, &path!["hosts", h]);
                if endpoints.contains(&host.name) {
                    return Err(self.err(
                        &hp,
                        format!("`{}` is named twice", host.name),
                        "give each pod and host its own name",
                    ));
                }
                endpoints.push(host.name.clone());
                hosts.push(HostSpec {
                    name: host.name.clone(),
                    mtu: host.mtu.0,
                    tcp: self.tcp_settings(
                        &hp,
                        host.tcp_mtu_probing,
                        host.tcp_congestion_control.as_deref(),
                        host.tcp_rmem.as_deref(),
                    )?,
                });
            }
            sites.push(SiteSpec {
                name: site.name.clone(),
                link: LinkSpec {
                    latency: site.link.latency.0,
                    bandwidth: site.link.bandwidth.0,
                    mtu: site.link.mtu.0,
                    l2_mtu: u32::MAX,
                    queue: site.link.queue.map_or(DEFAULT_QUEUE, |q| q.0.max(1)),
                },
                mss_clamp: site.mss_clamp.map(|c| c.0),
                hosts,
            });
        }
        let setup = self.services(&np, n, cni, &metas)?;
        let find = |name: &str, p: Vec<Seg>| -> R<EndpointId> {
            endpoints.iter().position(|e| e == name).ok_or_else(|| {
                let names: Vec<&str> = endpoints.iter().map(String::as_str).collect();
                self.err(
                    &p,
                    format!("`{name}` is not a pod or host of this variant"),
                    did_you_mean(name, &names, "pods and hosts"),
                )
            })
        };
        let mut flow_specs = Vec::new();
        for (i, fl) in flows.0.iter().enumerate() {
            let fp = join(&flows.1, &path!["flows", i]);
            if flow_specs.iter().any(|x: &FlowSpec| x.name == fl.name) {
                return Err(self.err(
                    &fp,
                    format!("flow `{}` is defined twice", fl.name),
                    "give each flow its own name",
                ));
            }
            let from = find(&fl.from, join(&fp, &path!["from"]))?;
            let service = setup.services.iter().position(|s| s.name == fl.to);
            let to = match service {
                Some(s) => Dest::Service(s),
                None => {
                    Dest::Endpoint(find(&fl.to, join(&fp, &path!["to"])).map_err(|mut e| {
                        if !setup.services.is_empty() {
                            e.message = format!(
                                "`{}` is not a pod, host or Service of this variant",
                                fl.to
                            );
                        }
                        e
                    })?)
                }
            };
            if to == Dest::Endpoint(from) {
                return Err(self.err(&fp, "a flow needs two different ends", "change `to`"));
            }
            if let Some(s) = service {
                let svc = &setup.services[s];
                let dialed = fl
                    .tcp
                    .as_ref()
                    .and_then(|t| t.port)
                    .or(fl.udp.as_ref().and_then(|u| u.port));
                if dialed.is_some_and(|p| p != svc.port) || fl.ping.is_some() || from >= pods.len()
                {
                    return Err(self.err(
                        &fp,
                        format!("flow `{}` dials Service {} from {}: a Service takes tcp or udp on its port {} from a pod", fl.name, svc.name, fl.from, svc.port),
                        "leave out the port (the Service's is used), and send from a pod",
                    ));
                }
            }
            let kinds = [fl.tcp.is_some(), fl.udp.is_some(), fl.ping.is_some()];
            if kinds.iter().filter(|k| **k).count() != 1 {
                return Err(self.err(
                    &fp,
                    "a flow has exactly one of tcp, udp, ping",
                    "e.g. tcp: {request: 300B, response: 1MB}",
                ));
            }
            let (kind, sizes) = if let Some(t) = &fl.tcp {
                (
                    FlowKind::Tcp {
                        port: service.map_or(t.port.unwrap_or(8080), |s| setup.services[s].port),
                        request: t.request.0.max(1),
                        response: t.response.0.max(1),
                    },
                    Vec::new(),
                )
            } else if let Some(u) = &fl.udp {
                (
                    FlowKind::Udp {
                        port: service.map_or(u.port.unwrap_or(53), |s| setup.services[s].port),
                    },
                    u.sizes.iter().map(|b| b.0).collect::<Vec<u64>>(),
                )
            } else {
                let sizes = fl
                    .ping
                    .as_ref()
                    .map(|p| p.sizes.iter().map(|b| b.0).collect())
                    .unwrap_or_default();
                (FlowKind::Ping, sizes)
            };
            if !matches!(kind, FlowKind::Tcp { .. })
                && (sizes.is_empty() || sizes.iter().any(|s| *s > 65_000))
            {
                return Err(self.err(
                    &fp,
                    "udp and ping take `sizes`: a list of payload sizes up to 65000 bytes",
                    "e.g. ping: {sizes: [1400, 1450]}",
                ));
            }
            let count = fl.count.map_or(sizes.len().max(1) as u32, |c| c.0);
            if count > 100_000 {
                return Err(self.err(
                    &join(&fp, &path!["count"]),
                    "more than 100000 attempts",
                    "use fewer attempts",
                ));
            }
            flow_specs.push(FlowSpec {
                name: fl.name.clone(),
                from,
                to,
                kind,
                sizes: sizes.into_iter().map(|s| s as u32).collect(),
                start: fl.start.map_or(SimDuration::from_secs(1), |d| d.0),
                every: fl.every.map_or(SimDuration::from_secs(1), |d| d.0),
                count,
                timeout: fl.timeout.0,
            });
        }
        let mut faults = Vec::new();
        for (i, ft) in timeline.0.iter().enumerate() {
            let tp = join(&timeline.1, &path!["timeline", i]);
            if ft.at.0 > duration {
                return Err(self.err(
                    &join(&tp, &path!["at"]),
                    format!("at {} is after the run ends ({duration})", ft.at.0),
                    "move it or lengthen `duration`",
                ));
            }
            let (node, down) = match (&ft.bgp_down, &ft.bgp_up) {
                (Some(n), None) => (n, true),
                (None, Some(n)) => (n, false),
                _ => {
                    return Err(self.err(
                        &tp,
                        "a timeline entry has `at` and one of bgp_down, bgp_up",
                        "e.g. {at: 60s, bgp_down: node-2}",
                    ))
                }
            };
            let key = if down { "bgp_down" } else { "bgp_up" };
            let idx = node
                .strip_prefix("node-")
                .and_then(|x| x.parse::<usize>().ok())
                .filter(|k| (1..=nodes).contains(k))
                .ok_or_else(|| {
                    self.err(
                        &join(&tp, &path![key]),
                        format!("`{node}` is not a node"),
                        format!("nodes are node-1 to node-{nodes}"),
                    )
                })?;
            if cni != Cni::CalicoBgp {
                return Err(self.err(
                    &join(&tp, &path![key]),
                    format!(
                        "{key} needs cni: calico-bgp (this variant runs {})",
                        cni.name()
                    ),
                    "BGP sessions exist only with calico-bgp",
                ));
            }
            faults.push((
                ft.at.0,
                if down {
                    Fault::BgpDown { node: idx - 1 }
                } else {
                    Fault::BgpUp { node: idx - 1 }
                },
            ));
        }
        let config = NetConfig {
            cni,
            nodes,
            cluster_cidr,
            node_mask,
            pod_mtu: n.pod_mtu.map(|m| m.0),
            underlay,
            sites,
            pods,
            flows: flow_specs,
            faults,
            bgp_hold_time: n.bgp.as_ref().map_or(BGP_HOLD_TIME, |b| b.hold_time.0),
            duration,
            services: setup,
        };
        config
            .validate()
            .map_err(|e| self.err(&np, e, "see the datapath section in the README"))?;
        let mut expectations = Vec::new();
        for (i, e) in expect.0.iter().enumerate() {
            let ep = join(&expect.1, &path!["expect", i]);
            expectations.push(self.expectation(&ep, e, &config)?);
        }
        let path = config
            .services
            .is_modelled()
            .then(|| describe_path(&config.services));
        Ok(Variant {
            name,
            description,
            config,
            endpoints,
            path,
            expect: expectations,
        })
    }

    /// The Services, and the cluster format's `network:` section (kube-proxy,
    /// conntrack, NetworkPolicy) parsed by the cluster format's own code.
    pub(super) fn services(
        &self,
        np: &[Seg],
        n: &NetFile,
        cni: Cni,
        metas: &[PodMeta],
    ) -> R<ServiceSetup> {
        let mut setup = ServiceSetup::default();
        let cidr: Ipv4Cidr = match &n.service_cidr {
            Some(c) => c.parse().map_err(|e: sim_models::ipam::CidrError| {
                self.err(
                    &join(np, &path!["service_cidr"]),
                    e.to_string(),
                    "e.g. 10.96.0.0/12",
                )
            })?,
            None => "10.96.0.0/12".parse().expect("a valid CIDR"),
        };
        for (i, f) in n.services.iter().enumerate() {
            let sp = join(np, &path!["services", i]);
            if setup
                .services
                .iter()
                .any(|s: &ServiceSpec| s.name == f.name)
                || n.pods.iter().any(|p| p.name == f.name)
            {
                return Err(self.err(
                    &sp,
                    format!("`{}` is named twice", f.name),
                    "give each pod and Service its own name",
                ));
            }
            let ip = match &f.cluster_ip {
                Some(ip) => ip.parse().map_err(|_| {
                    self.err(
                        &join(&sp, &path!["cluster_ip"]),
                        format!("`{ip}` is not an IPv4 address"),
                        "e.g. cluster_ip: 10.96.0.20",
                    )
                })?,
                None => {
                    if cidr.size() < i as u64 + 3 {
                        return Err(self.err(
                            &join(np, &path!["service_cidr"]),
                            format!("{cidr} has no room for {} Services", n.services.len()),
                            "give a larger service_cidr",
                        ));
                    }
                    cidr.nth(i as u64 + 2)
                }
            };
            let namespace = f.namespace.as_deref().unwrap_or("default");
            let endpoints = metas
                .iter()
                .enumerate()
                .filter(|(_, m)| {
                    m.namespace == namespace
                        && f.selector.iter().all(|(k, v)| m.labels.get(k) == Some(v))
                })
                .map(|(p, _)| p)
                .collect();
            let port = f.port.unwrap_or(80);
            setup.services.push(ServiceSpec {
                name: f.name.clone(),
                ip,
                port,
                target_port: f.target_port.unwrap_or(port),
                endpoints,
            });
        }
        setup.pods = metas.to_vec();
        let Some(net) = &n.network else {
            return Ok(setup);
        };
        let netp = join(np, &path!["network"]);
        let cluster = Validator {
            file: self.file,
            text: self.text,
            pos: self.pos,
        };
        let mut policy = cluster.network(np, net, &n.namespaces, None)?;
        if policy.cni.plugin() != cni.plugin() {
            return Err(self.err(
                &join(&netp, &path!["cni"]),
                format!(
                    "network.cni is {}, and this variant runs {}",
                    policy.cni.plugin(),
                    cni.name()
                ),
                format!("write cni: {}", cni.plugin()),
            ));
        }
        // The variant's own CNI, mode included, decides enforcement.
        policy.cni = cni;
        for (given, field) in [
            (net.policy_delay.is_some(), "policy_delay"),
            (net.masquerade.is_some(), "masquerade"),
        ] {
            if given {
                return Err(self.err(
                    &join(&netp, &path![field]),
                    format!(
                        "`{field}` is not replayed at packet level (no policy changes, no SNAT)"
                    ),
                    "remove it; the cluster format models it",
                ));
            }
        }
        setup.kube_proxy = cluster.kube_proxy(np, net)?;
        if let Some(c) = &net.conntrack {
            setup.conntrack = Some(
                cluster
                    .conntrack(&join(&netp, &path!["conntrack"]), c)?
                    .table,
            );
        }
        if !policy.active.is_empty() {
            setup.policy = Some(policy);
        }
        Ok(setup)
    }

    pub(super) fn cni(&self, np: &[Seg], n: &NetFile) -> R<Cni> {
        let cp = join(np, &path!["cni"]);
        let cni = match n.cni.as_str() {
            "flannel-vxlan" => Cni::FlannelVxlan,
            "flannel-host-gw" => Cni::FlannelHostGw,
            "calico-bgp" => Cni::CalicoBgp,
            "calico-ipip" => Cni::CalicoIpip,
            "calico-vxlan" => Cni::CalicoVxlan,
            "calico-wireguard" => Cni::CalicoWireguard,
            "cilium" => match n.routing.as_deref() {
                None | Some("tunnel") => Cni::Cilium { tunnel: true },
                Some("native") => Cni::Cilium { tunnel: false },
                Some(other) => {
                    return Err(self.err(
                        &join(np, &path!["routing"]),
                        format!("`{other}` is not a Cilium routing mode"),
                        "routing: tunnel (default) or native",
                    ))
                }
            },
            "aws-vpc-cni" => {
                let Some(t) = &n.instance_type else {
                    return Err(self.err(
                        np,
                        "aws-vpc-cni needs instance_type (pods per node come from its ENIs)",
                        "e.g. instance_type: m5.large",
                    ));
                };
                let Some(instance) = InstanceType::parse(t) else {
                    let names: Vec<&str> = InstanceType::ALL.iter().map(|i| i.name()).collect();
                    return Err(self.err(
                        &join(np, &path!["instance_type"]),
                        format!("`{t}` is not a known instance type"),
                        format!("known: {}", names.join(", ")),
                    ));
                };
                Cni::AwsVpcCni { instance }
            }
            other => {
                return Err(self.err(
                    &cp,
                    format!("`{other}` is not a CNI configuration"),
                    did_you_mean(other, &Cni::NAMES, "CNIs"),
                ));
            }
        };
        if n.routing.is_some() && !matches!(cni, Cni::Cilium { .. }) {
            return Err(self.err(
                &join(np, &path!["routing"]),
                "routing applies to cilium",
                "remove it",
            ));
        }
        if n.instance_type.is_some() && !matches!(cni, Cni::AwsVpcCni { .. }) {
            return Err(self.err(
                &join(np, &path!["instance_type"]),
                "instance_type applies to aws-vpc-cni",
                "remove it",
            ));
        }
        if n.bgp.is_some() && cni != Cni::CalicoBgp {
            return Err(self.err(
                &join(np, &path!["bgp"]),
                "bgp applies to calico-bgp",
                "remove it",
            ));
        }
        if let Some(max) = cni.max_pods() {
            for node in 1..=n.nodes.0 {
                let on = n.pods.iter().filter(|p| p.node.0 == node).count() as u32;
                if on > max {
                    return Err(self.err(&join(np, &path!["pods"]), format!("node-{node} has {on} pods; {} addresses {max} on {} (ENIs x (IPs per ENI - 1) + 2)", cni.name(), n.instance_type.as_deref().unwrap_or_default()), "spread the pods or pick a larger instance type"));
                }
            }
        }
        Ok(cni)
    }

    pub(super) fn tcp_settings(
        &self,
        p: &[Seg],
        probing: Option<Count>,
        cc: Option<&str>,
        rmem: Option<&[Count]>,
    ) -> R<TcpSettings> {
        let mut st = TcpSettings::default();
        let v = probing.map_or(0, |c| c.0);
        if v > 2 {
            return Err(self.err(
                &join(p, &path!["tcp_mtu_probing"]),
                format!("tcp_mtu_probing {v} is not 0, 1 or 2"),
                "0 off (default), 1 after a black hole, 2 always",
            ));
        }
        st.mtu_probing = v as u8;
        if let Some(name) = cc {
            st.cc = match name {
                "cubic" => CongestionControl::Cubic,
                "reno" => CongestionControl::Reno,
                "bbr" => CongestionControl::Bbr,
                _ => {
                    return Err(self.err(
                        &join(p, &path!["tcp_congestion_control"]),
                        format!("tcp_congestion_control `{name}` is not modelled"),
                        "cubic (default), reno or bbr",
                    ))
                }
            };
        }
        if let Some(r) = rmem {
            let ok = r.len() == 3 && r[0].0 >= 1 && r[0].0 <= r[1].0 && r[1].0 <= r[2].0;
            if !ok || r.iter().any(|c| c.0 > i32::MAX as u32) {
                return Err(self.err(
                    &join(p, &path!["tcp_rmem"]),
                    "tcp_rmem needs three sizes, min <= default <= max".to_string(),
                    "bytes, as the sysctl takes them: [4096, 131072, 6291456] (default)",
                ));
            }
            st.rcv.rmem = [r[0].0, r[1].0, r[2].0];
        }
        Ok(st)
    }

    pub(super) fn expectation(&self, p: &[Seg], e: &ExpectFile, cfg: &NetConfig) -> R<Expectation> {
        let m = e.metric.0;
        let checks = self.comparisons(
            p,
            [e.equals, e.above, e.below],
            m.name,
            m.is_time(),
            "times are durations, e.g. below: 6s",
        )?;
        let flows: Vec<&str> = cfg.flows.iter().map(|f| f.name.as_str()).collect();
        let flow = match (&e.flow, m.selector == Selector::Flow) {
            (Some(f), true) => Some(flows.iter().position(|x| x == f).ok_or_else(|| {
                self.err(
                    &join(p, &path!["flow"]),
                    format!("no flow is called `{f}`"),
                    format!("flows: {}", flows.join(", ")),
                )
            })?),
            (None, true) => {
                return Err(self.err(
                    p,
                    format!("{} needs `flow`", m.name),
                    format!("flows: {}", flows.join(", ")),
                ))
            }
            (Some(_), false) => {
                return Err(self.err(
                    &join(p, &path!["flow"]),
                    format!("{} is about all packets; it takes no `flow`", m.name),
                    "remove `flow`",
                ))
            }
            (None, false) => None,
        };
        if let Some(r) = &e.reason {
            if !m.takes(Filter::Reason) {
                return Err(self.err(
                    &join(p, &path!["reason"]),
                    format!("{} takes no `reason`", m.name),
                    format!(
                        "reason goes with {}",
                        figures::taking(Level::Packet, Filter::Reason, " or ")
                    ),
                ));
            }
            // A run-wide figure's reason is a drop kind.
            if m.selector == Selector::None && DropKind::parse(r).is_none() {
                let keys: Vec<&str> = DropKind::ALL.iter().map(|k| k.key()).collect();
                return Err(self.err(
                    &join(p, &path!["reason"]),
                    format!("`{r}` is not a drop reason"),
                    format!("reasons: {}", keys.join(", ")),
                ));
            }
        }
        Ok(Expectation {
            label: tagged(m.name, &[("flow", &e.flow), ("reason", &e.reason)]),
            metric: m,
            flow,
            reason: e.reason.clone(),
            checks,
            because: e.because.clone(),
        })
    }
}

/// The connection path of a variant in one line.
fn describe_path(s: &ServiceSetup) -> String {
    let mut parts = Vec::new();
    match &s.kube_proxy {
        Some(k) if k.mode == Mode::Ebpf => parts.push("eBPF load balancer".to_string()),
        Some(k) => parts.push(format!("kube-proxy {}", k.mode.name())),
        None => parts.push("ideal Service data path".to_string()),
    }
    if let Some(k) = &s.kube_proxy {
        let total = k.other_services + s.services.len() as u64;
        parts.push(format!("{total} Services programmed"));
    }
    for svc in &s.services {
        parts.push(format!(
            "Service {} {}:{} -> {} pods :{}",
            svc.name,
            svc.ip,
            svc.port,
            svc.endpoints.len(),
            svc.target_port
        ));
    }
    if let Some(c) = &s.conntrack {
        parts.push(format!("conntrack max {}", c.max));
    }
    if let Some(p) = &s.policy {
        parts.push(format!("NetworkPolicy ({})", p.cni.plugin()));
    }
    parts.join(", ")
}
