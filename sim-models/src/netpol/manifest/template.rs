//! What a pod template says beyond networking, for cluster scenarios: the
//! `dnsConfig` and `dnsPolicy`, each container's `resources` (CPU and memory
//! requests and limits, as Kubernetes quantities) and `readinessProbe`
//! timing. Validated where they stand, so errors carry positions.

use std::collections::BTreeMap;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};
use sim_core::SimDuration;

use super::checked::{unchecked, Checked, FromRaw};
use super::scalars::{convert, opt_string, string, want_int, want_string};

/// A pod template's `dnsConfig` as written: names and values are checked
/// by the scenario reader, which knows what the resolver models.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsConfigObject {
    /// `nameservers`.
    pub nameservers: Vec<String>,
    /// `searches`.
    pub searches: Vec<String>,
    /// `options`: (name, value).
    pub options: Vec<(String, Option<String>)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOption {
    #[serde(deserialize_with = "string")]
    name: String,
    #[serde(default, deserialize_with = "opt_string")]
    value: Option<String>,
}

/// One `dnsConfig.options` entry: (name, value).
pub(super) type DnsOption = (String, Option<String>);

impl FromRaw for DnsOption {
    type Raw = RawOption;
    fn from_raw(raw: RawOption) -> Result<Self, (String, String)> {
        Ok((raw.name, raw.value))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnsConfig {
    #[serde(default)]
    nameservers: Option<Vec<Text>>,
    #[serde(default)]
    searches: Option<Vec<Text>>,
    #[serde(default)]
    options: Option<Vec<Checked<DnsOption>>>,
}

/// A string in a list.
pub(super) struct Text(String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, want_string).map(Text)
    }
}

impl FromRaw for DnsConfigObject {
    type Raw = RawDnsConfig;
    fn from_raw(raw: RawDnsConfig) -> Result<Self, (String, String)> {
        let texts = |v: Option<Vec<Text>>| v.unwrap_or_default().into_iter().map(|t| t.0).collect();
        Ok(DnsConfigObject {
            nameservers: texts(raw.nameservers),
            searches: texts(raw.searches),
            options: unchecked(raw.options),
        })
    }
}

/// A pod's CPU and memory requests and limits: the sum over its containers
/// of those that state one (a limit only when every container states it, as
/// the pod then has one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// `requests.cpu` \[millicores\].
    pub cpu_request: Option<u32>,
    /// `limits.cpu` \[millicores\].
    pub cpu_limit: Option<u32>,
    /// `requests.memory` \[bytes\].
    pub memory_request: Option<u64>,
    /// `limits.memory` \[bytes\].
    pub memory_limit: Option<u64>,
}

impl Resources {
    /// Whether any of the four is stated.
    pub fn is_stated(&self) -> bool {
        *self != Resources::default()
    }
}

/// A Kubernetes quantity (`100m`, `0.5`, `170Mi`, `1e3`), in base units.
pub(super) struct Quantity(f64);

/// Parses a quantity as `resource.Quantity` writes it: a non-negative
/// decimal number and a suffix (`m`, `k`, `M`, `G`, `T`, `P`, `E`, `Ki` ..
/// `Ei`) or a decimal exponent (`e3`).
pub(super) fn parse_quantity(s: &str) -> Option<f64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') && num.len() == 1 {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let q = v * scale;
    q.is_finite().then_some(q)
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let text = match s {
                super::scalars::Scalar::Int(v) if v >= 0 => v.to_string(),
                s => want_string(s)?,
            };
            parse_quantity(&text).map(Quantity).ok_or_else(|| {
                (
                    format!("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': `{text}`"),
                    "write CPU as 100m, 0.5 or 2 and memory as 128Mi, 1Gi or 500M".into(),
                )
            })
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResourcesDoc {
    #[serde(default)]
    requests: Option<BTreeMap<String, Quantity>>,
    #[serde(default)]
    limits: Option<BTreeMap<String, Quantity>>,
    #[serde(default, rename = "claims")]
    _claims: Option<IgnoredAny>,
}

impl ResourcesDoc {
    fn get(&self, limits: bool, name: &str) -> Option<f64> {
        let map = if limits { &self.limits } else { &self.requests };
        map.as_ref()?.get(name).map(|q| q.0)
    }
}

/// Sums the containers' resources (see [`Resources`]); a container with a
/// limit and no request requests its limit, as the API server defaults it.
pub(super) fn pod_resources<'a>(
    containers: impl Iterator<Item = Option<&'a ResourcesDoc>>,
) -> Resources {
    let millis = |q: f64| (q * 1000.0).ceil() as u32;
    let bytes = |q: f64| q.ceil() as u64;
    let mut r = Resources::default();
    let (mut all_cpu_limit, mut all_mem_limit, mut any) = (true, true, false);
    let (mut cl, mut ml) = (0u32, 0u64);
    for c in containers {
        any = true;
        let req = |name: &str| c.and_then(|c| c.get(false, name).or(c.get(true, name)));
        let lim = |name: &str| c.and_then(|c| c.get(true, name));
        if let Some(q) = req("cpu") {
            r.cpu_request = Some(r.cpu_request.unwrap_or(0).saturating_add(millis(q)));
        }
        if let Some(q) = req("memory") {
            r.memory_request = Some(r.memory_request.unwrap_or(0).saturating_add(bytes(q)));
        }
        match lim("cpu") {
            Some(q) => cl = cl.saturating_add(millis(q)),
            None => all_cpu_limit = false,
        }
        match lim("memory") {
            Some(q) => ml = ml.saturating_add(bytes(q)),
            None => all_mem_limit = false,
        }
    }
    r.cpu_limit = (any && all_cpu_limit).then_some(cl);
    r.memory_limit = (any && all_mem_limit).then_some(ml);
    r
}

/// A container's readiness probe timing (the handler is not read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadinessProbe {
    /// `initialDelaySeconds` (default 0).
    pub initial_delay_seconds: u32,
    /// `periodSeconds` (default 10, at least 1).
    pub period_seconds: u32,
    /// `successThreshold` (default 1).
    pub success_threshold: u32,
}

/// A non-negative int32 field of a probe.
pub(super) struct Seconds(u32);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_int(s, "a probe setting", "probe settings are whole numbers")?;
            u32::try_from(v)
                .ok()
                .filter(|n| i32::try_from(*n).is_ok())
                .map(Seconds)
                .ok_or_else(|| {
                    (
                        format!("{v} must be greater than or equal to 0"),
                        "probe settings are whole numbers of seconds or tries".into(),
                    )
                })
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawProbe {
    #[serde(default)]
    initial_delay_seconds: Option<Seconds>,
    #[serde(default)]
    period_seconds: Option<Seconds>,
    #[serde(default)]
    success_threshold: Option<Seconds>,
    #[serde(default, rename = "timeoutSeconds")]
    _timeout_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "failureThreshold")]
    _failure_threshold: Option<IgnoredAny>,
    #[serde(default, rename = "terminationGracePeriodSeconds")]
    _termination_grace_period_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "httpGet")]
    _http_get: Option<IgnoredAny>,
    #[serde(default, rename = "tcpSocket")]
    _tcp_socket: Option<IgnoredAny>,
    #[serde(default, rename = "exec")]
    _exec: Option<IgnoredAny>,
    #[serde(default, rename = "grpc")]
    _grpc: Option<IgnoredAny>,
}

impl FromRaw for ReadinessProbe {
    type Raw = RawProbe;
    fn from_raw(raw: RawProbe) -> Result<Self, (String, String)> {
        let period = raw.period_seconds.map_or(10, |s| s.0);
        let success = raw.success_threshold.map_or(1, |s| s.0);
        if period == 0 || success == 0 {
            let field = if period == 0 {
                "periodSeconds"
            } else {
                "successThreshold"
            };
            return Err((
                format!("{field}: Invalid value: 0: must be greater than or equal to 1"),
                "periodSeconds defaults to 10 and successThreshold to 1".into(),
            ));
        }
        Ok(ReadinessProbe {
            initial_delay_seconds: raw.initial_delay_seconds.map_or(0, |s| s.0),
            period_seconds: period,
            success_threshold: success,
        })
    }
}

impl ReadinessProbe {
    /// From the container starting to the pod passing this probe, when the
    /// application answers from the start (docs/calibration.md, row
    /// `kubelet-readiness-probe`). The kubelet's prober runs a probe when
    /// the container starts (`prober_manager.go`, `UpdatePodStatus`'s manual
    /// trigger) and then every `periodSeconds` from the pod's admission
    /// (`worker.go`), skipping probes earlier than `initialDelaySeconds`. So
    /// with no delay the first probe passes at once; with a delay `d`, the
    /// first tick at or after `d` passes, which falls in `[d, d + period)`
    /// at a phase the manifests do not give: its mean, `d + period / 2`.
    /// Each further success the threshold asks for adds a period.
    pub fn ready_after(&self) -> SimDuration {
        let period = SimDuration::from_secs(u64::from(self.period_seconds));
        let first = if self.initial_delay_seconds == 0 {
            SimDuration::ZERO
        } else {
            SimDuration::from_secs(u64::from(self.initial_delay_seconds))
                + SimDuration::from_millis(u64::from(self.period_seconds) * 500)
        };
        first + period.saturating_mul(u64::from(self.success_threshold - 1))
    }
}
