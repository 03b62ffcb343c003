//! The story's lines for zones: the pods' tolerations when a zone fails,
//! traffic kept in zone while the failed zone's pods are still endpoints,
//! and what Topology Aware Routing's hints did for a Service (from the
//! EndpointSlice controller's events, `sim_models::services::hints`).

use sim_models::cluster::RunOutput;
use sim_models::node_lifecycle;

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
            let spec = &services.get(t.deployment?)?.spec;
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
