//! The HorizontalPodAutoscaler object (`autoscaling/v2`): its target, the
//! replica range and its metrics, as written; which of them the hpa model
//! has is for the scenario reader to say.

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::checked::{Checked, FromRaw};
use super::metadata::Meta;
use super::scalars::{convert, string, want_int};

/// The parts of an HPA's spec the scenario reader judges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HpaObjectSpec {
    /// `scaleTargetRef.kind`.
    pub target_kind: String,
    /// `scaleTargetRef.name`.
    pub target_name: String,
    /// `minReplicas` (default 1).
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
    /// The CPU `Utilization` target in percent of the request; without
    /// `metrics`, the API's default of 80% (`autoscaling/v2` defaulting).
    pub cpu_utilization: Option<u32>,
    /// The other metrics, described (`type: Pods`, `memory Utilization`...).
    pub other_metrics: Vec<String>,
    /// A `behavior` is given (the model has the default behaviour only).
    pub behavior: bool,
}

/// A whole, non-negative int32.
pub(super) struct Whole(u32);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_int(s, "a count", "write a whole number")?;
            u32::try_from(v)
                .ok()
                .filter(|n| i32::try_from(*n).is_ok())
                .map(Whole)
                .ok_or_else(|| {
                    (
                        format!("{v} must be greater than or equal to 0"),
                        "write a whole number".into(),
                    )
                })
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TargetRef {
    #[serde(deserialize_with = "string")]
    kind: String,
    #[serde(deserialize_with = "string")]
    name: String,
    #[serde(default, rename = "apiVersion")]
    _api_version: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct MetricTarget {
    #[serde(rename = "type", deserialize_with = "string")]
    target_type: String,
    #[serde(default)]
    average_utilization: Option<Whole>,
    #[serde(default, rename = "averageValue")]
    _average_value: Option<IgnoredAny>,
    #[serde(default, rename = "value")]
    _value: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResourceMetric {
    #[serde(deserialize_with = "string")]
    name: String,
    target: MetricTarget,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Metric {
    #[serde(rename = "type", deserialize_with = "string")]
    metric_type: String,
    #[serde(default)]
    resource: Option<ResourceMetric>,
    #[serde(default, rename = "containerResource")]
    _container_resource: Option<IgnoredAny>,
    #[serde(default, rename = "pods")]
    _pods: Option<IgnoredAny>,
    #[serde(default, rename = "object")]
    _object: Option<IgnoredAny>,
    #[serde(default, rename = "external")]
    _external: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawHpaSpec {
    scale_target_ref: TargetRef,
    #[serde(default)]
    min_replicas: Option<Whole>,
    max_replicas: Whole,
    #[serde(default)]
    metrics: Option<Vec<Metric>>,
    #[serde(default)]
    behavior: Option<IgnoredAny>,
}

impl FromRaw for HpaObjectSpec {
    type Raw = RawHpaSpec;
    fn from_raw(raw: RawHpaSpec) -> Result<Self, (String, String)> {
        let min = raw.min_replicas.map_or(1, |w| w.0);
        let max = raw.max_replicas.0;
        if min == 0 || max < min {
            return Err((
                format!("minReplicas {min} and maxReplicas {max}: maxReplicas must be at least minReplicas, which must be at least 1"),
                "e.g. minReplicas: 2, maxReplicas: 10".into(),
            ));
        }
        let mut cpu_utilization = None;
        let mut other_metrics = Vec::new();
        match raw.metrics {
            None => cpu_utilization = Some(80),
            Some(metrics) => {
                for m in metrics {
                    match (&m.resource, m.metric_type.as_str()) {
                        (Some(r), "Resource")
                            if r.name == "cpu" && r.target.target_type == "Utilization" =>
                        {
                            match &r.target.average_utilization {
                                Some(Whole(u)) if *u > 0 => cpu_utilization = Some(*u),
                                _ => {
                                    return Err((
                                        "metrics: a cpu Utilization target needs averageUtilization above 0".into(),
                                        "e.g. target: {type: Utilization, averageUtilization: 70}".into(),
                                    ))
                                }
                            }
                        }
                        (Some(r), t) => other_metrics.push(format!(
                            "{t} {} {}",
                            r.name, r.target.target_type
                        )),
                        (None, t) => other_metrics.push(t.to_string()),
                    }
                }
            }
        }
        Ok(HpaObjectSpec {
            target_kind: raw.scale_target_ref.kind,
            target_name: raw.scale_target_ref.name,
            min_replicas: min,
            max_replicas: max,
            cpu_utilization,
            other_metrics,
            behavior: raw.behavior.is_some(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HpaDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) metadata: Checked<Meta>,
    pub(super) spec: Checked<HpaObjectSpec>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}
