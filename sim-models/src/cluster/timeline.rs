//! # The scenario's timeline
//!
//! Each timed [`super::Action`] (scale, rate change, a workload's service
//! time, IP pool, pod range, policies, CNI daemon faults, conntrack flush,
//! a zone failure, a sidecar restart, a NAT gateway) acts on the run at its
//! time, on whatever is in flight.

use super::*;

impl Sim<'_> {
    pub(crate) fn action(&mut self, i: usize) {
        match &self.cfg.timeline[i].action {
            Action::Scale {
                deployment,
                replicas,
            } => {
                let (d, replicas) = (*deployment, *replicas);
                self.scale(d, replicas);
            }
            Action::SetRate { traffic, rate } => {
                let t = *traffic;
                self.traffic[t].rate = *rate;
                if let Some(id) = self.traffic[t].next.take() {
                    self.engine.cancel(id);
                }
                self.schedule_arrival(t);
            }
            Action::AddIpPool { cidr } => match self.ipam.add_pool(*cidr) {
                Ok(()) => self.event(
                    "Normal",
                    "IPPoolAdded",
                    "ipam",
                    format!("pod IP pool {cidr} added"),
                    format!("ippool/{cidr}"),
                ),
                Err(e) => self.event(
                    "Warning",
                    "IPPoolRejected",
                    "ipam",
                    e,
                    format!("ippool/{cidr}"),
                ),
            },
            Action::ZoneDown { .. } => {
                let cfg = self.cfg;
                if let Action::ZoneDown { zone, nodes } = &cfg.timeline[i].action {
                    self.zone_down(zone, nodes);
                }
            }
            Action::AddPodRange { cidr } => {
                let cidr = *cidr;
                self.add_pod_range(cidr);
            }
            Action::SetPolicies { .. } => {
                let delay = self
                    .cfg
                    .policy
                    .as_ref()
                    .map_or(SimDuration::ZERO, |p| p.delay);
                self.engine
                    .schedule_in(delay, Ev::PoliciesProgrammed(i as u32));
            }
            Action::FlushUdpConntrack { nodes } => {
                let now = self.engine.now();
                if let Some(dns) = self.dns.as_mut() {
                    for &n in nodes {
                        if let (Some(flows), Some(table)) =
                            (dns.flows.get_mut(n), self.path.tables.nodes.get_mut(n))
                        {
                            flows.flush_all(table, now);
                        }
                    }
                }
            }
            Action::SetServiceTime {
                deployment,
                service_time,
            } => {
                self.deps[*deployment].service_time = *service_time;
            }
            Action::ProxyRestart { deployment } => {
                let d = *deployment;
                self.proxy_restart(d);
            }
            Action::NatGateway { gateway, up } => {
                let (g, up) = (*gateway, *up);
                self.nat_gateway_action(g, up);
            }
            Action::CniDown { nodes } | Action::CniUp { nodes } => {
                let down = matches!(self.cfg.timeline[i].action, Action::CniDown { .. });
                for &n in nodes {
                    if self.nodes[n].cni_down == down {
                        continue;
                    }
                    self.nodes[n].cni_down = down;
                    let delay = node_lifecycle::taint_delay(&mut self.node_lifecycle);
                    self.engine.schedule_in(delay, Ev::NodeTaint(n as u32));
                }
            }
        }
    }
}
