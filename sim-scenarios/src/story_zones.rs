//! The story's lines for zones: bytes between zones (`network.billing`):
//! per traffic source, how many of its bytes crossed a zone and why, hop by
//! hop through a cloud load balancer, the busiest crossing pair and what the
//! cloud bills (`sim_models::cluster::ZoneTraffic`); the pods' tolerations
//! when a zone fails, traffic kept in zone while the failed zone's pods are
//! still endpoints, and what Topology Aware Routing's hints did for a
//! Service (from the EndpointSlice controller's events,
//! `sim_models::services::hints`).

use crate::figures::{num, MONTH_SECS};
use sim_core::SimDuration;
use sim_models::cloud_lb::{LbEntry, LbKind, TargetType};
use sim_models::cluster::{RunOutput, TrafficSpec, ZoneTraffic};
use sim_models::node_lifecycle;
use sim_models::services::{ServiceSpec, TrafficPolicy};
use sim_models::transfer_cost::{Billing, Carrier};

/// With billing: per traffic source, how many of its bytes crossed a zone,
/// why (how its Service picks endpoints), the busiest crossing pair and
/// what the cloud bills.
pub(crate) fn zone_bytes_why(
    lines: &mut Vec<String>,
    cfg: &sim_models::cluster::ClusterConfig,
    out: &RunOutput,
) {
    let Some(billing) = cfg.billing else {
        return;
    };
    let services = sim_models::services::resolve(&cfg.deployments, &cfg.services.explicit);
    let k = out.zone_names.len();
    let rule = match billing {
        Billing::Aws { per_gb } => {
            format!("AWS's rule, ${per_gb}/GB out at the sender and again in at the receiver")
        }
        Billing::Gcp { per_gib } => format!("GCP's rule, ${per_gib}/GiB at the source only"),
    };
    for (t, z) in cfg.traffic.iter().zip(&out.zone_traffic) {
        let total = z.bytes.total();
        if total == 0 {
            continue;
        }
        let spec = t.service.and_then(|s| services.get(s)).map(|r| &r.spec);
        if let (Some(lb), Some(spec)) = (t.load_balancer, spec) {
            lines.push(lb_line(t, z, lb, spec, billing, k, cfg.duration));
            continue;
        }
        let how = match spec {
            Some(s) if s.internal_policy == TrafficPolicy::Local => format!(
                "{} has internalTrafficPolicy Local: each call went to an endpoint on the caller's own node",
                s.name
            ),
            Some(s) if s.topology_auto => hints_sentence(&s.name, k, out),
            Some(s) if s.prefer_close => format!(
                "{} has trafficDistribution PreferClose: each caller's node used the endpoints of its own zone while that zone had any",
                s.name
            ),
            Some(s) => format!(
                "{} picks an endpoint at random among all Ready ones, whatever their zone: with callers and endpoints even over {k} zone(s) a call leaves its zone with probability (k-1)/k = {:.1}%",
                s.name,
                100.0 * (k.saturating_sub(1)) as f64 / k.max(1) as f64
            ),
            None => "the calls go to their endpoints without a Service".to_string(),
        };
        let mut top = None;
        for i in 0..k {
            for j in 0..k {
                let b = z.bytes.between(i as u32, j as u32);
                if i != j && b > 0 && top.is_none_or(|(_, _, x)| b > x) {
                    top = Some((i, j, b));
                }
            }
        }
        let busiest = top.map_or(String::new(), |(i, j, b)| {
            format!(
                " The busiest crossing was {} -> {} ({} GB).",
                out.zone_names[i],
                out.zone_names[j],
                num(b as f64 / 1e9)
            )
        });
        let month = z.cost / cfg.duration.as_secs_f64() * MONTH_SECS;
        lines.push(format!(
            "{}: {} GB went pod to pod ({} requests, {} responses); {:.1}% of it crossed a zone: {how}.{busiest} \
             Under {rule}, that is ${:.4} over the run, ${} per 30 days at this rate.",
            t.name,
            num(total as f64 / 1e9),
            z.requests,
            z.responses,
            100.0 * z.bytes.crossing_share(),
            z.cost,
            num(month)
        ));
    }
}

/// The (k-1)/k sentence for a hop whose end is drawn at random over `k`
/// even zones.
fn at_random(k: usize) -> String {
    format!(
        "with both ends even over {k} zone(s) it leaves its zone with probability (k-1)/k = {:.1}%",
        100.0 * (k.saturating_sub(1)) as f64 / k.max(1) as f64
    )
}

/// The line for a source through a cloud load balancer: each hop's
/// crossing share, why, and whether the cloud bills it.
fn lb_line(
    t: &TrafficSpec,
    z: &ZoneTraffic,
    lb: LbEntry,
    spec: &ServiceSpec,
    billing: Billing,
    k: usize,
    duration: SimDuration,
) -> String {
    let (name, carrier) = match lb.group.kind {
        LbKind::Application => ("ALB", Carrier::ApplicationLb),
        LbKind::Network => ("NLB", Carrier::NetworkLb),
    };
    let share = |c: Carrier| {
        let all = z.bytes.total_of(c);
        100.0 * z.bytes.crossing_of(c) as f64 / all.max(1) as f64
    };
    let instance = lb.group.target_type == TargetType::Instance;
    let target = if instance { "a node" } else { "a pod" };
    let first_why = if lb.group.cross_zone {
        format!(
            "cross-zone balancing is on, so the {name} node sends to {target} in any zone: {}",
            at_random(k)
        )
    } else {
        format!(
            "cross-zone balancing is off, so each {name} node sends to {target} of its own zone"
        )
    };
    let billed = match (billing, lb.group.kind) {
        (Billing::Aws { .. }, LbKind::Application) => {
            "free on AWS (an ALB's traffic to targets on private IPs is not billed, even across zones)"
        }
        (Billing::Aws { .. }, LbKind::Network) => {
            "what crosses is billed (an NLB with cross-zone balancing: EC2 data transfer charges apply)"
        }
        (Billing::Gcp { .. }, _) => {
            "billed as egress at the source (the model prices every hop by GCP's rule between VMs)"
        }
    };
    let mut line = format!(
        "{}: {} GB went through the {name} ({} requests, {} responses, {} hop(s) each: {}). \
         The {name}'s hop: {:.1}% of its bytes crossed a zone: {first_why}; {billed}.",
        t.name,
        num(z.bytes.total() as f64 / 1e9),
        z.requests,
        z.responses,
        if instance { 2 } else { 1 },
        if instance {
            "the load balancer node to a node's NodePort, then kube-proxy to a pod"
        } else {
            "the load balancer node to a pod's IP"
        },
        share(carrier),
    );
    if instance {
        let second = if spec.external_policy == TrafficPolicy::Local {
            format!(
                "{} has externalTrafficPolicy Local: each node forwarded to a pod on itself (the {name} sends only to nodes whose healthCheckNodePort answers 200)",
                spec.name
            )
        } else if spec.prefer_close {
            format!(
                "{} has trafficDistribution PreferClose: each node used the endpoints of its own zone while that zone had any",
                spec.name
            )
        } else {
            format!(
                "{} has externalTrafficPolicy Cluster: each node forwards to any Ready pod, {}",
                spec.name,
                at_random(k)
            )
        };
        line.push_str(&format!(
            " The node-to-pod hop: {:.1}% crossed: {second}; billed as any traffic between instances.",
            share(Carrier::Instance)
        ));
    }
    let month = z.cost / duration.as_secs_f64() * MONTH_SECS;
    line.push_str(&format!(
        " In all {:.1}% of the bytes crossed; that is ${:.4} over the run, ${} per 30 days at this rate.",
        100.0 * z.bytes.crossing_share(),
        z.cost,
        num(month)
    ));
    line
}

/// The pods' `NoExecute` tolerations, as the story tells them: "the pods'
/// default 300 s toleration", or each workload's `tolerationSeconds`.
pub(crate) fn tolerations(cfg: &sim_models::cluster::ClusterConfig) -> String {
    let default = node_lifecycle::DEFAULT_TOLERATION;
    if cfg.deployments.iter().all(|d| d.toleration == default) {
        return format!("the pods' default {} s toleration", default.as_secs_f64());
    }
    let each: Vec<String> = cfg
        .deployments
        .iter()
        .map(|d| format!("{} {} s", d.name, d.toleration.as_secs_f64()))
        .collect();
    format!("the pods' tolerationSeconds ({})", each.join(", "))
}

/// With a zone down: the traffic sources whose Service keeps calls in the
/// caller's zone (PreferClose, Topology Aware Routing's hints), which is why
/// callers in the zones left never picked the failed zone's pods while they
/// were still endpoints.
pub(crate) fn zonal_during_zone_down(
    cfg: &sim_models::cluster::ClusterConfig,
    zone: &str,
    out: &RunOutput,
) -> Vec<String> {
    let services = sim_models::services::resolve(&cfg.deployments, &cfg.services.explicit);
    cfg.traffic
        .iter()
        .filter(|t| t.from.is_some())
        .filter_map(|t| {
            let spec = &services.get(t.service?)?.spec;
            let object = format!("service/{}", spec.name);
            let how = if spec.topology_auto {
                let off = out.events.iter().any(|e| {
                    e.example_object == object
                        && e.reason == sim_models::services::hints::DISABLED_REASON
                });
                if off {
                    return None;
                }
                "its Topology Aware Routing hints gave each zone its own endpoints (the EndpointSlice controller recomputed them over \
                 the zones left when the nodes went NotReady)"
            } else if spec.prefer_close {
                "it has trafficDistribution PreferClose"
            } else {
                return None;
            };
            Some(format!(
                "{}: callers in the zones left used only endpoints for their own zone, since {how}; none of their calls went to \
                 {zone}'s pods while those were still endpoints, and the callers in {zone} had stopped with it.",
                t.name
            ))
        })
        .collect()
}

/// Why a Service with Topology Aware Routing kept calls in zone or not:
/// the EndpointSlice controller's hint events for it, in order.
pub(crate) fn hints_sentence(name: &str, k: usize, out: &RunOutput) -> String {
    use sim_models::services::hints::{DISABLED_REASON, ENABLED_REASON};
    let object = format!("service/{name}");
    let mut evs: Vec<_> = out
        .events
        .iter()
        .filter(|e| {
            e.example_object == object
                && (e.reason == ENABLED_REASON || e.reason == DISABLED_REASON)
        })
        .collect();
    evs.sort_by_key(|e| e.first);
    let steps: Vec<String> = evs
        .iter()
        .map(|e| {
            if e.reason == ENABLED_REASON {
                format!("from {} the controller hinted every zone its share of endpoints and each node's kube-proxy used those hinted for its zone", e.first)
            } else {
                format!(
                    "from {} the controller removed every hint (`{DISABLED_REASON}`: \"{}\") and kube-proxy, with no hints, picked among all Ready endpoints, \
                     which sends a call out of its zone with probability (k-1)/k = {:.1}% when callers and endpoints are even over {k} zones",
                    e.first,
                    e.message,
                    100.0 * (k.saturating_sub(1)) as f64 / k.max(1) as f64
                )
            }
        })
        .collect();
    if steps.is_empty() {
        return format!("{name} has topology-mode Auto, but the EndpointSlice controller never computed its hints");
    }
    format!(
        "{name} has topology-mode Auto (Topology Aware Routing): {}",
        steps.join("; ")
    )
}
