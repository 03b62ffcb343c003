//! # Sampling and the run's output
//!
//! Time series sampled every `sample_every` (pods by state, IPAM, CoreDNS CPU
//! and memory, conntrack entries), statistics per window, and the final
//! [`super::RunOutput`].

use super::*;

impl Sim<'_> {
    /// Applies `f` to traffic source `t`'s statistics of every window that
    /// contains `now`.
    pub(crate) fn for_windows(
        &mut self,
        t: usize,
        now: SimTime,
        mut f: impl FnMut(&mut WindowStats),
    ) {
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                f(&mut self.windows[i * cfg.traffic.len() + t]);
            }
        }
    }

    /// The sampling period came round: a sample, and the next is scheduled.
    pub(crate) fn sample_tick(&mut self) {
        self.sample();
        if self.cfg.sample_every > SimDuration::ZERO {
            self.engine.schedule_in(self.cfg.sample_every, Ev::Sample);
        }
    }

    pub(crate) fn sample(&mut self) {
        for dep in &self.deps {
            let pending: u32 = PodState::ALL
                .iter()
                .filter(|s| s.is_pending())
                .map(|&s| dep.by_state[s as usize])
                .sum();
            let in_flight: usize = dep
                .live
                .iter()
                .map(|&p| self.servers[p as usize].in_flight())
                .sum();
            let ready = dep.by_state[PodState::Ready as usize];
            let g = &dep.gauges;
            let values = [
                (g.desired, dep.desired),
                (g.pending, pending),
                (
                    g.unschedulable,
                    dep.by_state[PodState::Unschedulable as usize],
                ),
                (
                    g.sandbox_failed,
                    dep.by_state[PodState::SandboxFailed as usize],
                ),
                (g.running, dep.by_state[PodState::Running as usize] + ready),
                (g.ready, ready),
                (g.in_flight, in_flight as u32),
            ];
            for (id, v) in values {
                self.metrics.set(id, f64::from(v));
            }
        }
        self.sample_dns();
        self.sample_ca();
        self.sample_starts();
        self.sample_mesh();
        self.metrics
            .set(self.ipam_gauges.0, self.ipam.usable() as f64);
        self.metrics
            .set(self.ipam_gauges.1, self.ipam.allocated() as f64);
        let now = self.engine.now();
        let most = self.path.tables.nodes.iter_mut().map(|t| t.live(now)).max();
        self.metrics.set(self.ct_gauge, most.unwrap_or(0) as f64);
        self.metrics.sample(now);
    }

    /// CoreDNS gauges: queries inside, CPU used over the sample period as
    /// a share of the running pods' CPU, the largest pod memory.
    pub(crate) fn sample_dns(&mut self) {
        let now = self.engine.now();
        let (Some(dns), Some(cfg)) = (self.dns.as_mut(), self.cfg.dns.as_ref()) else {
            return;
        };
        let (mut in_flight, mut busy, mut running, mut memory) =
            (0usize, dns.retired_busy, 0u32, 0u64);
        for &p in &self.deps[cfg.workload].live {
            if let Some(c) = self.pods[p as usize].coredns.as_ref() {
                in_flight += c.in_flight();
                busy = busy + c.stats().cpu_busy;
                if c.is_running() {
                    running += 1;
                    memory = memory.max(c.memory_bytes());
                }
            }
        }
        let period = (now - dns.last_sample).as_secs_f64() * f64::from(running);
        let used = busy.as_secs_f64() - dns.busy_at_last_sample.as_secs_f64();
        let utilization = if period > 0.0 {
            (used / period).min(1.0)
        } else {
            0.0
        };
        dns.busy_at_last_sample = busy;
        dns.last_sample = now;
        self.metrics.set(dns.gauges.in_flight, in_flight as f64);
        self.metrics.set(dns.gauges.cpu_utilization, utilization);
        self.metrics.set(
            dns.gauges.memory_mib_max,
            memory as f64 / (1u64 << 20) as f64,
        );
    }

    pub(crate) fn finish(mut self, seed: u64) -> RunOutput {
        self.zone_priced();
        let nat_gateways = self.nat_output();
        let node_ports = self.node_port_report();
        let health_checks = self.health_check_report();
        let mesh = self.mesh_output();
        let n = self.cfg.traffic.len();
        let heads = calls::chain_heads(self.cfg);
        for w in self.windows.chunks_mut(n.max(1)) {
            let sent: Vec<u64> = w.iter().map(|x| x.totals.sent).collect();
            for (x, h) in w.iter_mut().zip(&heads) {
                x.head_sent = h.iter().map(|&h| sent[h]).sum();
            }
        }
        for t in 0..n {
            let open = self.public_open_for(t);
            for w in self.windows.iter_mut().skip(t).step_by(n.max(1)) {
                w.node_port_open_public = open;
            }
        }
        let mut events: Vec<(usize, EventSummary)> = self.events.into_values().collect();
        events.sort_by_key(|(seq, _)| *seq);
        let events = events.into_iter().map(|(_, e)| e).collect();
        RunOutput {
            mesh,
            node_ports,
            health_checks,
            seed,
            deployments: self
                .cfg
                .deployments
                .iter()
                .zip(&self.deps)
                .map(|(spec, d)| DeploymentState {
                    name: spec.name.clone(),
                    desired: d.desired,
                    by_state: d.by_state,
                })
                .collect(),
            requests: self.traffic.iter().map(|t| t.totals).collect(),
            paths: self.traffic.iter().map(|t| t.path_totals.clone()).collect(),
            ipam_usable: self.ipam.usable(),
            ipam_allocated: self.ipam.allocated(),
            events_fired: self.engine.fired(),
            conntrack: self.path.tables.nodes.iter().map(|t| t.stats()).collect(),
            kube_proxy: self.path.service.kube_proxy.as_ref().map(KubeProxy::stats),
            dns_restarts: self.dns.as_ref().map_or(0, |d| d.restart_total),
            nat_gateways,
            nat_windows: self.nat_windows,
            zone_names: zone_traffic::zone_names(self.cfg),
            zone_traffic: if self.cfg.billing.is_some() {
                self.zone_traffic
            } else {
                Vec::new()
            },
            dns_windows: self.dns.map(|d| d.windows).unwrap_or_default(),
            mesh_upstreams: self.l7.stats(),
            metrics: self.metrics,
            windows: self.windows,
            events,
        }
    }
}
