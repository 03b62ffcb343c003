//! # The node pool and the cluster autoscaler in the run
//!
//! The autoscaler's scan ([`crate::autoscaler`] decides how many nodes),
//! node creation with a pod range block per node (GKE's
//! `IP_SPACE_EXHAUSTED` when none is left, then the pool's backoff), a
//! created node joining the cluster after its start-up time, and the
//! timeline's `add_pod_range`.

use super::*;
use crate::autoscaler::{
    backoff, backoff_message, ip_space_exhausted_message, nodes_needed, scale_up_message,
};

/// What the run tracks of the node pool and its autoscaler.
pub(crate) struct CaRt {
    /// The next standby node slot the pool creates.
    next_slot: usize,
    /// Nodes created and not yet Ready.
    upcoming: u32,
    /// Failed scale-ups in a row.
    failures_in_row: u32,
    /// No scale-up before this (the pool's backoff).
    backoff_until: SimTime,
    /// Node creations that failed, over the run.
    failed_nodes: u64,
    /// Gauges: nodes in the cluster, node creations failed so far.
    gauges: (GaugeId, GaugeId),
    /// A retry of the unschedulable pods is due (nodes created at the same
    /// instant are retried for together, as kube-scheduler moves its queue
    /// once the node additions are seen).
    retry_due: bool,
}

impl CaRt {
    /// The autoscaler's state for `cfg`'s node pool; `None` without one.
    pub(crate) fn new(cfg: &ClusterConfig, metrics: &mut Metrics) -> Option<Self> {
        cfg.node_pool.as_ref()?;
        Some(CaRt {
            next_slot: cfg
                .nodes
                .iter()
                .position(|n| n.standby)
                .unwrap_or(cfg.nodes.len()),
            upcoming: 0,
            failures_in_row: 0,
            backoff_until: SimTime::ZERO,
            failed_nodes: 0,
            retry_due: false,
            gauges: (
                metrics.gauge("nodes"),
                metrics.gauge("node_create_failures"),
            ),
        })
    }
}

impl Sim<'_> {
    /// The autoscaler's scan interval came round: a scan, and the next.
    pub(crate) fn ca_tick(&mut self) {
        let Some(pool) = self.cfg.node_pool.as_ref() else {
            return;
        };
        self.engine.schedule_in(pool.scan_interval, Ev::CaScan);
        self.ca_scan(pool);
    }

    fn ca_scan(&mut self, pool: &NodePoolSpec) {
        // Pods that fit on the nodes already in the cluster need none: the
        // scheduler looks at nodes created at this instant first.
        if self.ca.as_ref().is_some_and(|c| c.retry_due) {
            self.retry_unschedulable();
        }
        let now = self.engine.now();
        let Some(ca) = self.ca.as_ref() else {
            return;
        };
        if now < ca.backoff_until || self.unschedulable.is_empty() {
            return;
        }
        // Pending pods by workload, in queue order.
        let mut groups: Vec<(usize, u32)> = Vec::new();
        for &p in &self.unschedulable {
            let d = self.pods[p as usize].deployment as usize;
            match groups.iter_mut().find(|(g, _)| *g == d) {
                Some((_, c)) => *c += 1,
                None => groups.push((d, 1)),
            }
        }
        let asks: Vec<(Resources, u32)> = groups
            .iter()
            .map(|&(d, c)| (self.cfg.deployments[d].requests, c))
            .collect();
        let (needed, _) = nodes_needed(&asks, pool.shape, pool.max_pods);
        let current = self.sched.present() as u32 + ca.upcoming;
        let slots = (self.cfg.nodes.len() - ca.next_slot) as u32;
        let want = needed
            .saturating_sub(ca.upcoming)
            .min(pool.max_nodes.saturating_sub(current))
            .min(slots);
        if want == 0 {
            return;
        }
        let object = format!("nodepool/{}", pool.name);
        self.event(
            "Normal",
            "ScaledUpGroup",
            "cluster-autoscaler",
            scale_up_message(&pool.name, current, current + want, pool.max_nodes),
            object.clone(),
        );
        let flat = matches!(self.ipam.layout(), IpamLayout::Flat { .. });
        let mut failed = 0u32;
        for _ in 0..want {
            let Some(ca) = self.ca.as_mut() else {
                return;
            };
            let n = ca.next_slot;
            if flat || self.ipam.assign_block(n).is_some() {
                ca.next_slot += 1;
                ca.upcoming += 1;
                self.engine
                    .schedule_in(pool.node_startup, Ev::NodeCreated(n as u32));
            } else {
                failed += 1;
            }
        }
        let Some(ca) = self.ca.as_mut() else {
            return;
        };
        if failed == 0 {
            ca.failures_in_row = 0;
            return;
        }
        ca.failed_nodes += u64::from(failed);
        ca.failures_in_row += 1;
        let wait = backoff(ca.failures_in_row);
        ca.backoff_until = now + wait;
        // The instance that would have been next: its name repeats while
        // the range stays spent, so the event aggregates.
        let instance = self.cfg.nodes[ca.next_slot].name.clone();
        self.event(
            "Warning",
            "IP_SPACE_EXHAUSTED",
            "gke",
            ip_space_exhausted_message(&instance, &pool.subnetwork),
            object.clone(),
        );
        let message = backoff_message(&pool.name, failed, wait);
        self.event_by(
            "Warning",
            "FailedToScaleUpGroup",
            "cluster-autoscaler",
            EventKey::Reason,
            |_| (message, object),
        );
    }

    /// A node the pool created is Ready: it joins the cluster, and the
    /// unschedulable pods are retried once every node of the instant is in.
    pub(crate) fn node_created(&mut self, n: usize) {
        if let Some(ca) = self.ca.as_mut() {
            ca.upcoming -= 1;
        }
        self.sched.set_present(n);
        self.sched.set_pod_cidr(n, self.ipam.node_has_pod_cidr(n));
        self.topology_nodes_changed();
        if self.nodes[n].unreachable {
            // Created in a zone that is down: it is never heard from.
            let delay = node_lifecycle::unreachable_delay(&mut self.node_lifecycle);
            self.engine
                .schedule_in(delay, Ev::NodeUnreachable(n as u32));
        }
        self.lb_node_added(n, false);
        let name = &self.cfg.nodes[n].name;
        self.event_by(
            "Normal",
            "RegisteredNode",
            "node-controller",
            EventKey::Reason,
            |_| {
                (
                    format!("Node {name} event: Registered Node {name} in Controller"),
                    format!("node/{name}"),
                )
            },
        );
        if let Some(ca) = self.ca.as_mut() {
            if !ca.retry_due {
                ca.retry_due = true;
                self.engine
                    .schedule_in(SimDuration::ZERO, Ev::RetryUnschedulable);
            }
        }
    }

    /// The unschedulable pods are retried after nodes were created.
    pub(crate) fn retry_unschedulable(&mut self) {
        match self.ca.as_mut() {
            Some(ca) if ca.retry_due => ca.retry_due = false,
            // The autoscaler's scan retried them already.
            _ => return,
        }
        self.schedule_unschedulable();
    }

    /// The timeline adds a pod range node blocks can be cut from.
    pub(crate) fn add_pod_range(&mut self, cidr: Ipv4Cidr) {
        let object = format!("podrange/{cidr}");
        match self.ipam.add_node_range(cidr) {
            Ok(()) => self.event(
                "Normal",
                "PodRangeAdded",
                "gke",
                format!("pod range {cidr} added"),
                object,
            ),
            Err(e) => self.event("Warning", "PodRangeRejected", "gke", e, object),
        }
    }

    /// The node pool's gauges.
    pub(crate) fn sample_ca(&mut self) {
        if let Some(ca) = self.ca.as_ref() {
            self.metrics.set(ca.gauges.0, self.sched.present() as f64);
            self.metrics.set(ca.gauges.1, ca.failed_nodes as f64);
        }
    }
}
