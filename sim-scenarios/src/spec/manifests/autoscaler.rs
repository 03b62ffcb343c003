//! A HorizontalPodAutoscaler from manifests onto the hpa model (see the
//! module docs of `spec::manifests`).

use super::at_manifest;
use crate::spec::{Validator, MAX_REPLICAS, R};
use sim_models::hpa::HpaSpec;
use sim_models::netpol::manifest::{ClusterObjects, Loc};

impl Validator<'_> {
    /// The autoscaler of the DNS workload, if the manifests give one; an
    /// autoscaler on any other workload is an error (see the module docs).
    pub(super) fn autoscaler(
        &self,
        objects: &ClusterObjects,
        dns_workload: Option<&str>,
    ) -> R<Option<(HpaSpec, Loc)>> {
        let mut out: Option<(HpaSpec, Loc)> = None;
        for h in &objects.autoscalers {
            let id = format!("HorizontalPodAutoscaler {}/{}", h.namespace, h.name);
            let spec = &h.spec;
            let target = objects.workloads.iter().find(|w| {
                w.namespace == h.namespace
                    && w.name == spec.target_name
                    && w.id().starts_with(&format!("{} ", spec.target_kind))
            });
            let Some(w) = target else {
                return Err(at_manifest(
                    &h.at,
                    format!(
                        "{id}: scaleTargetRef {} {} is not a workload of the manifests in {}",
                        spec.target_kind, spec.target_name, h.namespace
                    ),
                    "target a Deployment or StatefulSet of the same namespace",
                ));
            };
            if dns_workload != Some(w.name.as_str()) {
                return Err(at_manifest(
                    &h.at,
                    format!("{id} scales {} on CPU, and application pods have no CPU model (only the DNS workload's CoreDNS pods do)", w.id()),
                    "the autoscaler is modelled for the dns workload; remove this one from the copy the scenario reads",
                ));
            }
            if let Some(m) = spec.other_metrics.first() {
                return Err(at_manifest(
                    &h.at,
                    format!("{id}: metric `{m}` is not modelled; the model scales on CPU utilization only"),
                    "keep one metric: {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}}",
                ));
            }
            if spec.behavior {
                return Err(at_manifest(
                    &h.at,
                    format!(
                        "{id}: spec.behavior is not modelled; the model has the default behaviour"
                    ),
                    "remove behavior from the copy the scenario reads",
                ));
            }
            let Some(target) = spec.cpu_utilization else {
                return Err(at_manifest(
                    &h.at,
                    format!("{id} has no CPU utilization target"),
                    "add a cpu Utilization metric",
                ));
            };
            if w.resources.cpu_request.is_none() {
                return Err(at_manifest(
                    &w.at,
                    format!(
                        "{} has no CPU request, and {id} scales on a share of it",
                        w.id()
                    ),
                    "give the container resources.requests.cpu, e.g. 100m",
                ));
            }
            if spec.max_replicas > MAX_REPLICAS {
                return Err(at_manifest(
                    &h.at,
                    format!(
                        "{id}: maxReplicas {} is more than one cluster holds ({} pods)",
                        spec.max_replicas, MAX_REPLICAS
                    ),
                    "Kubernetes supports up to 150,000 pods and 5,000 nodes per cluster",
                ));
            }
            if let Some((_, first)) = &out {
                return Err(at_manifest(
                    &h.at,
                    format!(
                        "{id} is a second autoscaler for {} (the first is at {first})",
                        w.id()
                    ),
                    "one HorizontalPodAutoscaler per workload",
                ));
            }
            out = Some((
                HpaSpec {
                    min_replicas: spec.min_replicas,
                    max_replicas: spec.max_replicas,
                    target_utilization: f64::from(target) / 100.0,
                },
                h.at.clone(),
            ));
        }
        Ok(out)
    }
}
