//! # Pods: scale, reconcile, schedule, sandbox, taints, eviction, autoscaling
//!
//! The Deployment controller's reconcile (scale-down deletes Pending pods
//! first), the scheduler ([`crate::scheduler`]), the kubelet's sandbox
//! attempts with IPAM and backoff ([`crate::kubelet`], [`crate::ipam`]), node
//! taints and eviction after the toleration ([`crate::node_lifecycle`]), and
//! the HorizontalPodAutoscaler for CoreDNS ([`crate::hpa`]).

use super::*;

impl Sim<'_> {
    /// The container started: Running, and readiness after its delay.
    pub(crate) fn container_started(&mut self, p: u32) {
        if self.pod_live_in(p, PodState::Creating) && !self.pod_unreachable(p) {
            self.start_container(p);
            self.set_state(p, PodState::Running);
            self.lb_register(p, false);
            let d = self.pods[p as usize].deployment as usize;
            if starts::staged(self.cfg, d) {
                self.containers_start(p);
            } else {
                self.engine
                    .schedule_in(self.cfg.deployments[d].ready_after, Ev::ReadinessPassed(p));
            }
        }
    }

    /// The readiness probe passed: Ready, and an endpoint of its Service
    /// (unless a load balancer's readiness gate holds it until its target
    /// is healthy: the `lb_gate` room).
    pub(crate) fn readiness_passed(&mut self, p: u32) {
        if self.pod_live_in(p, PodState::Running)
            && !self.pod_unreachable(p)
            && !self.lb_gate_holds(p)
        {
            self.pod_ready(p);
        }
    }

    /// Running pod `p` is Ready: an endpoint of its Services.
    pub(crate) fn pod_ready(&mut self, p: u32) {
        self.set_state(p, PodState::Ready);
        let d = self.pods[p as usize].deployment as usize;
        self.endpoint_up(p, d);
        self.endpoints_changed(d);
    }

    /// `kubectl scale`, or an autoscaler: workload `d` wants `replicas` pods.
    pub(crate) fn scale(&mut self, d: usize, replicas: u32) {
        let spec = &self.cfg.deployments[d];
        let (kind, controller) = match spec.kind {
            WorkloadKind::Deployment => ("deployment", "deployment-controller"),
            WorkloadKind::StatefulSet => ("statefulset", "statefulset-controller"),
        };
        let name = &spec.name;
        let msg = format!(
            "Scaled {kind} {name} from {} to {replicas}",
            self.deps[d].desired
        );
        let obj = format!("{kind}/{name}");
        self.event("Normal", "ScalingReplicaSet", controller, msg, obj);
        self.deps[d].desired = replicas;
        self.reconcile(d);
    }

    /// The HorizontalPodAutoscaler of the CoreDNS workload syncs: the CPU
    /// its Ready pods used since the last sync, as a share of their
    /// request, sets the replica count.
    /// The HPA's sync period came round: it syncs, and the next is scheduled.
    pub(crate) fn hpa_tick(&mut self) {
        self.hpa_sync();
        self.engine
            .schedule_in(crate::hpa::SYNC_PERIOD, Ev::HpaSync);
    }

    pub(crate) fn hpa_sync(&mut self) {
        let now = self.engine.now();
        let Some(w) = self.cfg.dns.as_ref().map(|d| d.workload) else {
            return;
        };
        let mut busy = BTreeMap::new();
        let (mut used, mut measured) = (SimDuration::ZERO, 0u32);
        for &p in &self.deps[w].live {
            let Some(c) = self.pods[p as usize].coredns.as_ref() else {
                continue;
            };
            let b = c.stats().cpu_busy;
            busy.insert(p, b);
            let last = self.dns.as_ref().and_then(|d| d.hpa_busy.get(&p).copied());
            // A pod has a metric once it has been seen at one sync before.
            if let (Some(last), true) = (last, self.pod_live_in(p, PodState::Ready)) {
                used = used + SimDuration::from_nanos(b.as_nanos().saturating_sub(last.as_nanos()));
                measured += 1;
            }
        }
        let current = self.deps[w].desired;
        let Some(dns) = self.dns.as_mut() else {
            return;
        };
        dns.hpa_busy = busy;
        let period = crate::hpa::SYNC_PERIOD.as_secs_f64() * f64::from(measured.max(1));
        let utilization = used.as_secs_f64() / period;
        let Some((replicas, why)) = dns
            .hpa
            .as_mut()
            .and_then(|h| h.recommend(now, current, measured, utilization))
        else {
            return;
        };
        let name = self.cfg.deployments[w].name.clone();
        self.event(
            "Normal",
            "SuccessfulRescale",
            "horizontal-pod-autoscaler",
            format!("New size: {replicas}; reason: {}", why.reason()),
            format!("horizontalpodautoscaler/{name}"),
        );
        self.scale(w, replicas);
    }

    /// The node controller's `NodeNotReady` event for node `n`, with the
    /// condition's message.
    pub(crate) fn node_not_ready_event(&mut self, n: usize, condition: &str) {
        self.event_by(
            "Normal",
            "NodeNotReady",
            "node-controller",
            EventKey::Reason,
            |s| {
                let name = &s.cfg.nodes[n].name;
                (
                    format!("Node {name} status is now: NodeNotReady ({condition})"),
                    format!("node/{name}"),
                )
            },
        );
    }

    /// The node lifecycle controller's pass for node `n`: taint it when its
    /// network is down, untaint it when it is back.
    pub(crate) fn node_taint(&mut self, n: usize) {
        let down = self.nodes[n].cni_down;
        if self.sched.tainted(n) == down {
            return;
        }
        self.sched.set_tainted(n, down);
        self.topology_nodes_changed();
        if down {
            self.node_not_ready_event(n, &node_lifecycle::not_ready_message());
            let now = self.engine.now();
            self.no_execute_taint(n, now);
        } else {
            self.event_by(
                "Normal",
                "NodeReady",
                "node-controller",
                EventKey::Reason,
                |s| {
                    let name = &s.cfg.nodes[n].name;
                    (
                        format!("Node {name} status is now: NodeReady"),
                        format!("node/{name}"),
                    )
                },
            );
            if let Some(id) = self.nodes[n].eviction.take() {
                self.engine.cancel(id);
            }
            self.schedule_unschedulable();
        }
    }

    /// The taint eviction controller deletes the pods on node `n`; their
    /// controllers create replacements.
    pub(crate) fn evict(&mut self, n: usize) {
        self.nodes[n].eviction = None;
        let (now, tainted) = (self.engine.now(), self.nodes[n].tainted_at);
        let mut doomed: Vec<u32> = self.nodes[n]
            .pods
            .iter()
            .copied()
            .filter(|&p| tainted + self.toleration_of(p) <= now)
            .collect();
        doomed.sort_unstable();
        let mut touched = BTreeSet::new();
        for p in doomed {
            let d = self.pods[p as usize].deployment as usize;
            self.event_by(
                "Normal",
                "TaintManagerEviction",
                "taint-eviction-controller",
                EventKey::Reason,
                |s| {
                    let name = s.pod_name(p);
                    let ns = &s.cfg.deployments[d].namespace;
                    (
                        node_lifecycle::eviction_message(ns, &name),
                        format!("pod/{name}"),
                    )
                },
            );
            self.deps[d].live.retain(|&q| q != p);
            self.delete_pod(p);
            touched.insert(d);
        }
        for d in touched {
            self.reconcile(d);
        }
        if !self.nodes[n].pods.is_empty() {
            // Pods that tolerate the taint longer wait for their turn.
            self.no_execute_taint(n, tainted);
        }
    }

    /// Node `n` got its `NoExecute` taint at `at`: the taint eviction
    /// controller deletes each pod there when its toleration runs out; the
    /// next deletion is scheduled (at the default toleration when no pod
    /// is there).
    pub(crate) fn no_execute_taint(&mut self, n: usize, at: SimTime) {
        let due = self.nodes[n]
            .pods
            .iter()
            .map(|&p| self.toleration_of(p))
            .min()
            .unwrap_or(node_lifecycle::DEFAULT_TOLERATION);
        self.nodes[n].tainted_at = at;
        let id = self.engine.schedule_at(at + due, Ev::Evict(n as u32));
        self.nodes[n].eviction = Some(id);
    }

    /// How long pod `p` tolerates its node's `NoExecute` taint.
    fn toleration_of(&self, p: u32) -> SimDuration {
        self.cfg.deployments[self.pods[p as usize].deployment as usize].toleration
    }

    /// Creates or deletes pods until the Deployment has `desired` live pods.
    pub(crate) fn reconcile(&mut self, d: usize) {
        let now = self.engine.now();
        while (self.deps[d].live.len() as u32) < self.deps[d].desired {
            let n = self.deps[d].created;
            self.deps[d].created += 1;
            let id = self.pods.len() as u32;
            let spec = &self.cfg.deployments[d];
            let ordinal = match spec.kind {
                WorkloadKind::Deployment => 0,
                WorkloadKind::StatefulSet => {
                    let used: BTreeSet<u32> = self.deps[d]
                        .live
                        .iter()
                        .map(|&p| self.pods[p as usize].ordinal)
                        .collect();
                    (0..).find(|o| !used.contains(o)).unwrap_or(0)
                }
            };
            self.pods.push(Pod {
                deployment: d as u32,
                seq: n,
                ordinal,
                state: PodState::Unschedulable,
                node: None,
                lease: None,
                backoff: SimDuration::ZERO,
                deleted: false,
                created: now,
                coredns: None,
            });
            self.servers.push(Server::default());
            self.deps[d].by_state[PodState::Unschedulable as usize] += 1;
            self.deps[d].live.push(id);
            self.try_schedule(id, false);
        }
        let excess = self.deps[d]
            .live
            .len()
            .saturating_sub(self.deps[d].desired as usize);
        if excess > 0 {
            let mut live = std::mem::take(&mut self.deps[d].live);
            // ReplicaSet order: lowest rank first, newest first among equals.
            live.sort_by_key(|&p| {
                let pod = &self.pods[p as usize];
                (
                    pod.state.deletion_rank(),
                    std::cmp::Reverse((pod.created, p)),
                )
            });
            let doomed: Vec<u32> = live.drain(..excess).collect();
            live.sort_unstable();
            self.deps[d].live = live;
            for p in doomed {
                self.delete_pod(p);
            }
            self.schedule_unschedulable();
        }
    }

    pub(crate) fn delete_pod(&mut self, p: u32) {
        if let Some(mut c) = self.pods[p as usize].coredns.take() {
            let actions = c.shutdown();
            self.retire_coredns(&c);
            self.coredns_actions(p, actions);
        }
        self.lb_deregister(p);
        self.forget_start(p);
        let pod = &mut self.pods[p as usize];
        pod.deleted = true;
        let (d, state, node, lease) = (
            pod.deployment as usize,
            pod.state,
            pod.node.take(),
            pod.lease.take(),
        );
        self.deps[d].by_state[state as usize] -= 1;
        self.endpoint_down(p, d, node);
        self.endpoints_changed(d);
        if self.cfg.dns.as_ref().is_some_and(|c| c.workload == d) {
            self.dns_endpoint_removed(p);
        }
        self.unschedulable.remove(&p);
        if let Some(n) = node {
            self.sched
                .unbind(n as usize, self.cfg.deployments[d].requests);
            self.deps[d].zone_pods[self.sched.zone_of(n as usize)] -= 1;
            let bound = &mut self.nodes[n as usize].pods;
            if let Some(i) = bound.iter().position(|&q| q == p) {
                bound.swap_remove(i);
            }
        }
        if let Some(l) = lease {
            self.ipam.release(l);
            self.forget_pod_info(p, l.ip);
        }
    }

    /// Tries to place pod `p`; true when it was bound. A failure is
    /// reported (`FailedScheduling`) the first time, and again on a retry
    /// (`retry`), as kube-scheduler reports every failed attempt.
    pub(crate) fn try_schedule(&mut self, p: u32, retry: bool) -> bool {
        let d = self.pods[p as usize].deployment as usize;
        let spec = &self.cfg.deployments[d];
        let ask = Ask {
            requests: spec.requests,
            spread: spec.spread.map(|s| Spread {
                max_skew: s.max_skew,
                hard: s.do_not_schedule,
                counts: &self.deps[d].zone_pods,
            }),
        };
        match self.sched.place(&ask) {
            Some(n) => {
                self.unschedulable.remove(&p);
                self.sched.bind(n, spec.requests);
                self.deps[d].zone_pods[self.sched.zone_of(n)] += 1;
                self.nodes[n].pods.push(p);
                self.pods[p as usize].node = Some(n as u32);
                self.mesh_pod_placed(p, d, n as u32);
                self.set_state(p, PodState::Creating);
                self.sandbox_attempt(p);
                true
            }
            None => {
                if self.unschedulable.insert(p) || retry {
                    let msg = self.sched.why_not(&ask);
                    let obj = format!("pod/{}", self.pod_name(p));
                    self.event("Warning", "FailedScheduling", "default-scheduler", msg, obj);
                }
                false
            }
        }
    }

    /// kube-scheduler moves unschedulable pods back to its active queue when
    /// a pod is deleted or a node changes; they are retried in creation
    /// order. Once a workload's pod does not fit, its later pods, which ask
    /// the same of an unchanged cluster, are passed over in this pass
    /// (without an attempt or event of their own); other workloads' pods
    /// are still tried. No retry is made once no node passes the
    /// pod-independent filter (Ready, room under `--max-pods`); while one
    /// does, a pod without requests or spread constraint always fits.
    pub(crate) fn schedule_unschedulable(&mut self) {
        let mut failed: Vec<u32> = Vec::new();
        let mut next = self.unschedulable.first().copied();
        while let Some(p) = next {
            if !self.sched.fits_somewhere() {
                break;
            }
            let d = self.pods[p as usize].deployment;
            if !failed.contains(&d) && !self.try_schedule(p, true) {
                failed.push(d);
                if failed.len() == self.deps.len() {
                    break;
                }
            }
            next = self.unschedulable.range(p + 1..).next().copied();
        }
    }

    pub(crate) fn sandbox_attempt(&mut self, p: u32) {
        let pod = &self.pods[p as usize];
        if pod.deleted
            || !matches!(pod.state, PodState::Creating | PodState::SandboxFailed)
            || pod.lease.is_some()
        {
            return;
        }
        let node = pod.node.unwrap_or(0) as usize;
        let network = if self.nodes[node].cni_down {
            Err(node_lifecycle::CNI_NOT_INITIALIZED.to_string())
        } else {
            self.ipam.allocate(node)
        };
        match network {
            Ok(lease) => {
                self.pods[p as usize].lease = Some(lease);
                self.pods[p as usize].backoff = SimDuration::ZERO;
                self.record_pod_info(p, lease);
                self.set_state(p, PodState::Creating);
                let d = self.pods[p as usize].deployment as usize;
                self.engine
                    .schedule_in(self.cfg.deployments[d].startup, Ev::ContainerStarted(p));
            }
            Err(cni) => {
                self.set_state(p, PodState::SandboxFailed);
                let obj = format!("pod/{}", self.pod_name(p));
                let pod = &mut self.pods[p as usize];
                pod.backoff = kubelet::next_backoff(pod.backoff);
                let delay = pod.backoff;
                self.event(
                    "Warning",
                    "FailedCreatePodSandBox",
                    "kubelet",
                    kubelet::sandbox_failure_message(&cni),
                    obj,
                );
                self.engine.schedule_in(delay, Ev::SandboxAttempt(p));
            }
        }
    }

    pub(crate) fn set_state(&mut self, p: u32, s: PodState) {
        let pod = &mut self.pods[p as usize];
        let dep = &mut self.deps[pod.deployment as usize];
        dep.by_state[pod.state as usize] -= 1;
        dep.by_state[s as usize] += 1;
        pod.state = s;
    }

    /// A DNS pod's container starts: a fresh CoreDNS.
    pub(crate) fn start_container(&mut self, p: u32) {
        let d = self.pods[p as usize].deployment as usize;
        let Some(spec) = self
            .cfg
            .dns
            .as_ref()
            .filter(|c| c.workload == d)
            .map(|c| c.coredns)
        else {
            return;
        };
        let name = self.pod_name(p);
        match CoreDns::new(spec, &name, &self.rng) {
            Ok(c) => self.pods[p as usize].coredns = Some(Box::new(c)),
            Err(e) => {
                let obj = format!("pod/{name}");
                self.event("Warning", "Failed", "kubelet", e.to_string(), obj);
            }
        }
    }

    /// A pod got its address: its owner for the data path, and what
    /// NetworkPolicy selectors see of it (kept only when policies exist).
    pub(crate) fn record_pod_info(&mut self, p: u32, lease: Lease) {
        self.ip_owner.insert(lease.ip, p);
        // Selectors only read pods when some NetworkPolicy exists (in any
        // set, active now or later on the timeline).
        let policies = self.cfg.policy.as_ref();
        if !policies.is_some_and(|c| c.sets.iter().any(|(_, set)| !set.is_empty())) {
            return;
        }
        let name = self.pod_name(p);
        let pod = &self.pods[p as usize];
        let spec = &self.cfg.deployments[pod.deployment as usize];
        let mut labels = spec.labels.clone();
        match spec.kind {
            WorkloadKind::Deployment => {
                let hash = name.rsplit('-').nth(1).unwrap_or_default().to_string();
                labels.insert("pod-template-hash".into(), hash);
            }
            WorkloadKind::StatefulSet => {
                labels.insert("statefulset.kubernetes.io/pod-name".into(), name.clone());
            }
        }
        let nodes: Ipv4Cidr = SYNTHETIC_NODE_CIDR.parse().unwrap_or_else(|_| {
            Ipv4Cidr::new(std::net::Ipv4Addr::new(192, 168, 0, 0), 16).expect("valid")
        });
        let info = PodInfo {
            namespace: spec.namespace.clone(),
            name,
            labels,
            ip: lease.ip,
            host_ip: nodes.nth(u64::from(pod.node.unwrap_or(0)) + 1),
            host_network: false,
            ports: vec![ContainerPort {
                name: spec.port.name.clone(),
                port: spec.port.number,
                protocol: spec.port.protocol,
            }],
        };
        if self.pod_infos.len() <= p as usize {
            self.pod_infos.resize(p as usize + 1, None);
        }
        self.pod_infos[p as usize] = Some(info);
        if let Some(e) = self.path.policy.as_mut() {
            e.pods_changed();
        }
    }

    /// Pod `p` gave back its address `ip`.
    pub(crate) fn forget_pod_info(&mut self, p: u32, ip: Ipv4Addr) {
        if self.ip_owner.get(&ip) == Some(&p) {
            self.ip_owner.remove(&ip);
        }
        if let Some(slot) = self.pod_infos.get_mut(p as usize) {
            *slot = None;
        }
        if let Some(e) = self.path.policy.as_mut() {
            e.pods_changed();
        }
    }

    /// Pod `p`'s name as `kubectl get pods` shows it (derived, not stored).
    pub(crate) fn pod_name(&self, p: u32) -> String {
        let pod = &self.pods[p as usize];
        let spec = &self.cfg.deployments[pod.deployment as usize];
        match spec.kind {
            WorkloadKind::Deployment => pod_name(&spec.name, pod.seq),
            WorkloadKind::StatefulSet => format!("{}-{}", spec.name, pod.ordinal),
        }
    }
}
