//! Assertions: the `expect` section.
//!
//! # Scope
//! Which figure an expectation reads (a time-series column, a request or
//! CoreDNS window statistic), with which selector, and its thresholds.
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::{Common, Sections, Validator, R};
use crate::envelope::{tagged, Locate, Threshold};
use crate::figures::{self, ByBackend, ClusterFigure, Figure, Filter, Level, Read, Selector};
use crate::locate::Seg;
use crate::path;
use crate::units::Duration;
use schemars::JsonSchema;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::cluster::{TrafficSpec, WindowSpec, RCODES, ZONES};

/// One assertion.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpectFile {
    /// What to check.
    pub metric: ClusterFigure,
    /// Which workload (pod metrics).
    pub workload: Option<String>,
    /// Which Service (request metrics).
    pub service: Option<String>,
    /// Gauges: read at this time (the last sample at or before it).
    pub at: Option<Duration>,
    /// Request metrics: over this window; gauges: the maximum within it.
    pub window: Option<String>,
    /// `dns_qps`: only replies with this rcode (`NXDOMAIN`...).
    pub rcode: Option<String>,
    /// `dns_qps`, `dns_cache_hit_ratio`: only this zone (`cluster`, `external`).
    pub zone: Option<String>,
    /// `answered_by`: the request path of a source through an ingress
    /// controller (`/api-docs`, or `HOST/PATH` when its hosts differ).
    pub path: Option<String>,
    /// `answered_by`: the backend Service (`web`, or `web:80`), or
    /// `default` for the controller's 404.
    pub backend: Option<String>,
    /// Must equal.
    pub equals: Option<Threshold>,
    /// Must be greater.
    pub above: Option<Threshold>,
    /// Must be smaller.
    pub below: Option<Threshold>,
    /// Why this is expected (shown in reports).
    #[serde(default)]
    pub because: String,
}

/// Where a validated expectation reads its value.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// A time-series column at a time.
    GaugeAt {
        /// Column name in the time series.
        column: String,
        /// When.
        at: SimDuration,
    },
    /// A time-series column's maximum within a window.
    GaugeMax {
        /// Column name.
        column: String,
        /// Window index.
        window: usize,
    },
    /// A request statistic of one traffic source in one window.
    Requests {
        /// Window index.
        window: usize,
        /// Traffic source index.
        traffic: usize,
    },
    /// One request path of a traffic source through an ingress controller
    /// in one window.
    Path {
        /// Window index.
        window: usize,
        /// Traffic source index.
        traffic: usize,
        /// Index of the path among the source's requests.
        path: usize,
        /// How the backend named relates to the path's route.
        by: ByBackend,
    },
    /// A CoreDNS statistic in one window.
    Dns {
        /// Window index.
        window: usize,
        /// Only this zone ([`ZONES`] index).
        zone: Option<usize>,
        /// Only replies with this rcode ([`RCODES`] index).
        rcode: Option<usize>,
    },
}

/// A validated expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// What is checked, as the user wrote it (`pods_pending{workload=checkout} at 1h`).
    pub label: String,
    /// The figure.
    pub metric: &'static Figure,
    /// Where the value comes from.
    pub probe: Probe,
    /// `(comparison, threshold)`: `==`, `>`, `<`.
    pub checks: Vec<(&'static str, f64)>,
    /// Why.
    pub because: String,
}

impl Validator<'_> {
    /// The assertions of one variant.
    pub(super) fn expectations(
        &self,
        sec: &Sections<'_>,
        common: &Common<'_>,
        workloads: &[&str],
        (traffic_names, traffic): (&[String], &[TrafficSpec]),
        (has_kube_proxy, has_billing): (bool, bool),
    ) -> R<Vec<Expectation>> {
        let mut expectations = Vec::new();
        for (i, e) in sec.expect.iter().enumerate() {
            let p = [&sec.at[..], &path!["expect", i]].concat();
            let x = self.expectation(
                &p,
                e,
                workloads,
                (traffic_names, traffic),
                common.windows,
                common.duration,
            )?;
            if x.metric.needs_kube_proxy && !has_kube_proxy {
                return Err(self.err(
                    &[&p[..], &path!["metric"]].concat(),
                    format!(
                        "{} is measured in the Service data path, which needs network.kube_proxy",
                        x.metric.name
                    ),
                    "add network: {cni: calico, kube_proxy: {mode: iptables}}",
                ));
            }
            if !has_billing && crate::figures::ZONE_FIGURES.contains(x.metric) {
                return Err(self.err(
                    &[&p[..], &path!["metric"]].concat(),
                    format!(
                        "{} counts bytes between zones, which needs network.billing",
                        x.metric.name
                    ),
                    "add network: {cni: calico, billing: {rule: aws}} (or rule: gcp)",
                ));
            }
            expectations.push(x);
        }

        Ok(expectations)
    }

    pub(super) fn expectation(
        &self,
        p: &[Seg],
        e: &ExpectFile,
        workloads: &[&str],
        (traffic_names, traffic): (&[String], &[TrafficSpec]),
        windows: &[WindowSpec],
        duration: SimDuration,
    ) -> R<Expectation> {
        let m = e.metric.0;
        let field = |n: &str| [p, &path![n]].concat();
        if !m.takes(Filter::Zone) && (e.zone.is_some() || e.rcode.is_some()) {
            let key = if e.zone.is_some() { "zone" } else { "rcode" };
            return Err(self.err(
                &field(key),
                format!(
                    "`{key}` applies to {}, not {}",
                    figures::taking(Level::Cluster, Filter::Zone, " and "),
                    m.name
                ),
                "remove it",
            ));
        }
        if m.selector != Selector::Path && (e.path.is_some() || e.backend.is_some()) {
            let key = if e.path.is_some() { "path" } else { "backend" };
            return Err(self.err(
                &field(key),
                format!("`{key}` applies to answered_by, not {}", m.name),
                "remove it, or use metric: answered_by",
            ));
        }
        let window = match &e.window {
            Some(w) => Some(windows.iter().position(|x| &x.name == w).ok_or_else(|| {
                let names: Vec<&str> = windows.iter().map(|x| x.name.as_str()).collect();
                self.err(
                    &field("window"),
                    format!("no window is called `{w}`"),
                    format!(
                        "windows defined under measure.windows: {}",
                        names.join(", ")
                    ),
                )
            })?),
            None => None,
        };
        let checks = self.comparisons(
            p,
            [e.equals, e.above, e.below],
            m.name,
            m.is_time(),
            "latency thresholds are durations, e.g. below: 2s",
        )?;
        let (probe, target) = if let Some(column) = m.column() {
            let column_base = match column.per_workload {
                false => column.name.to_string(),
                true => {
                    let Some(w) = &e.workload else {
                        return Err(self.err(
                            p,
                            format!("{} needs `workload`", m.name),
                            format!("workloads: {}", workloads.join(", ")),
                        ));
                    };
                    if !workloads.contains(&w.as_str()) {
                        return Err(self.err(
                            &field("workload"),
                            format!("`{w}` is not a workload of this variant"),
                            format!("workloads: {}", workloads.join(", ")),
                        ));
                    }
                    column.of(w)
                }
            };
            if e.service.is_some() {
                return Err(self.err(
                    &field("service"),
                    format!(
                        "{} is a pod metric; it takes `workload`, not `service`",
                        m.name
                    ),
                    "use workload: NAME",
                ));
            }
            let probe = match (e.at, window) {
                (Some(at), None) if at.0 <= duration => Probe::GaugeAt {
                    column: column_base.clone(),
                    at: at.0,
                },
                (Some(at), None) => {
                    return Err(self.err(
                        &field("at"),
                        format!("at {} is after the run ends ({duration})", at.0),
                        "pick a time within the run",
                    ))
                }
                (None, Some(w)) => Probe::GaugeMax {
                    column: column_base.clone(),
                    window: w,
                },
                _ => {
                    return Err(self.err(
                        p,
                        format!(
                        "{} needs exactly one of `at` (value then) or `window` (maximum within)",
                        m.name
                    ),
                        "e.g. at: 1h",
                    ))
                }
            };
            let when = match &probe {
                Probe::GaugeAt { at, .. } => format!("at {at}"),
                _ => format!("max in {}", e.window.clone().unwrap_or_default()),
            };
            (probe, format!("{column_base} {when}"))
        } else if matches!(m.read, Read::Dns(_)) {
            if e.workload.is_some() || e.at.is_some() || e.service.is_some() {
                return Err(self.err(
                    p,
                    format!(
                        "{} is a CoreDNS metric over a window; it takes `window` (and `zone`, `rcode`)",
                        m.name
                    ),
                    format!(
                        "e.g. metric: {}, window: peak, rcode: NXDOMAIN",
                        figures::taking(Level::Cluster, Filter::Rcode, ", ")
                    ),
                ));
            }
            let Some(w) = window else {
                return Err(self.err(
                    p,
                    format!("{} needs `window`", m.name),
                    "name a window from measure.windows",
                ));
            };
            let zone = match &e.zone {
                None => None,
                Some(z) => Some(ZONES.iter().position(|x| x == z).ok_or_else(|| {
                    self.err(
                        &field("zone"),
                        format!("zone `{z}` is not cluster or external"),
                        "write zone: cluster (names under cluster.local) or zone: external",
                    )
                })?),
            };
            let rcode = match &e.rcode {
                None => None,
                Some(_) if !m.takes(Filter::Rcode) => {
                    let rcoded = figures::taking(Level::Cluster, Filter::Rcode, ", ");
                    return Err(self.err(
                        &field("rcode"),
                        format!("`rcode` applies to {rcoded}"),
                        format!("remove rcode, or use metric: {rcoded}"),
                    ));
                }
                Some(r) => Some(RCODES.iter().position(|x| x.to_string() == *r).ok_or_else(
                    || {
                        self.err(
                            &field("rcode"),
                            format!("`{r}` is not an rcode"),
                            "write NOERROR, NXDOMAIN, SERVFAIL, REFUSED, FORMERR or NOTIMP",
                        )
                    },
                )?),
            };
            let label = tagged(m.name, &[("zone", &e.zone), ("rcode", &e.rcode)]);
            (
                Probe::Dns {
                    window: w,
                    zone,
                    rcode,
                },
                format!("{label} in {}", windows[w].name),
            )
        } else {
            if e.workload.is_some() || e.at.is_some() {
                return Err(self.err(
                    p,
                    format!(
                        "{} is a request metric over a window; it takes `service` and `window`",
                        m.name
                    ),
                    "e.g. service: checkout, window: failover",
                ));
            }
            let Some(w) = window else {
                return Err(self.err(
                    p,
                    format!("{} needs `window`", m.name),
                    "name a window from measure.windows",
                ));
            };
            let Some(s) = &e.service else {
                return Err(self.err(
                    p,
                    format!("{} needs `service`", m.name),
                    format!("traffic sources: {}", traffic_names.join(", ")),
                ));
            };
            let Some(t) = traffic_names.iter().position(|n| n == s) else {
                return Err(self.err(
                    &field("service"),
                    format!("no traffic goes to a source called `{s}`"),
                    format!("traffic sources: {}", traffic_names.join(", ")),
                ));
            };
            if m.selector == Selector::Path {
                let (path, by) = self.path_probe(p, e, &traffic[t], workloads)?;
                let label = tagged(
                    m.name,
                    &[
                        ("service", &e.service),
                        ("path", &e.path),
                        ("backend", &e.backend),
                    ],
                );
                (
                    Probe::Path {
                        window: w,
                        traffic: t,
                        path,
                        by,
                    },
                    format!("{label} in {}", windows[w].name),
                )
            } else {
                (
                    Probe::Requests {
                        window: w,
                        traffic: t,
                    },
                    format!("{}{{service={s}}} in {}", m.name, windows[w].name),
                )
            }
        };
        Ok(Expectation {
            label: target,
            metric: m,
            probe,
            checks,
            because: e.because.clone(),
        })
    }
}

impl Validator<'_> {
    /// `answered_by`'s path (an index among the source's requests) and how
    /// its `backend` relates to the path's route.
    fn path_probe(
        &self,
        p: &[Seg],
        e: &ExpectFile,
        t: &TrafficSpec,
        workloads: &[&str],
    ) -> R<(usize, ByBackend)> {
        let field = |n: &str| [p, &path![n]].concat();
        let Some(ing) = &t.ingress else {
            return Err(self.err(
                &field("service"),
                format!("`{}` does not go through an ingress controller", t.name),
                "answered_by reads a source with via: and requests:",
            ));
        };
        let (Some(want), Some(backend)) = (&e.path, &e.backend) else {
            return Err(self.err(
                p,
                "answered_by needs `path` and `backend`",
                "e.g. path: /api-docs, backend: web (or backend: default for the controller's 404)",
            ));
        };
        let listed: Vec<String> = ing
            .paths
            .iter()
            .map(|r| format!("{}{}", r.host, r.path))
            .collect();
        let found: Vec<usize> = ing
            .paths
            .iter()
            .enumerate()
            .filter(|(i, r)| r.path == *want || listed[*i] == *want)
            .map(|(i, _)| i)
            .collect();
        let path = match found[..] {
            [i] => i,
            [] => {
                return Err(self.err(
                    &field("path"),
                    format!("`{}` asks for no path `{want}`", t.name),
                    format!("its requests: {}", listed.join(", ")),
                ))
            }
            _ => {
                return Err(self.err(
                    &field("path"),
                    format!("`{want}` is asked for on several hosts"),
                    format!("write HOST/PATH: {}", listed.join(", ")),
                ))
            }
        };
        let service = backend.split(':').next().unwrap_or_default();
        if backend != "default" && !workloads.contains(&service) {
            return Err(self.err(
                &field("backend"),
                format!("backend `{backend}` is no Service of this variant"),
                format!(
                    "a workload's Service ({}), or default for the controller's 404",
                    workloads.join(", ")
                ),
            ));
        }
        let routed = &ing.paths[path];
        let by = if backend == "default" {
            ByBackend::NotFound
        } else if routed.backend.is_some()
            && (routed.answered_by == *backend
                || routed.answered_by.split(':').next() == Some(backend.as_str()))
            && workloads.contains(&service)
        {
            ByBackend::Routed
        } else {
            ByBackend::Other
        };
        Ok((path, by))
    }
}
