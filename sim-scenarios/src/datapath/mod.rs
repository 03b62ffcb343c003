//! Packet-level scenarios: the `datapath:` format, its runner and report.
//!
//! A scenario file with a top-level `datapath:` section replays a data-path
//! outage packet by packet on [`sim_models::datapath`]. It keeps the
//! conventions of the cluster format: `name`, `summary`, `story`,
//! `duration`, `variant`, `expect` (each with `because`), `variants` that
//! replace whole sections, strict parsing (unknown fields are errors) and
//! `file:line:column` errors with a hint; the code for these is shared in
//! [`crate::envelope`].
//!
//! ```yaml
//! name: calico_vxlan_mtu
//! summary: one line
//! duration: 30s
//! variant: {name: broken, description: the CNI's default pod MTU}
//! datapath:
//!   cni: calico-vxlan          # flannel-vxlan | flannel-host-gw | calico-bgp | calico-ipip |
//!                              # calico-vxlan | calico-wireguard | cilium | aws-vpc-cni
//!   nodes: 3
//!   underlay: {mtu: 1500, path_mtu: 1472, latency: 50us, bandwidth: 10Gbit/s}
//!   pods: [{name: client, node: 1}, {name: web, node: 2}]
//! flows:
//!   - {name: sweep, from: client, to: web, ping: {sizes: [1394, 1395]}, count: 2, timeout: 1s}
//!   - {name: get, from: client, to: web, tcp: {port: 8080, request: 300B, response: 1MB}}
//! expect:
//!   - {metric: succeeded, flow: get, equals: 0, because: full segments vanish}
//! variants:
//!   - {name: fix, datapath: {...}, expect: [...]}
//! ```
//!
//! Services and NetworkPolicy (`services:` and `network:` under
//! `datapath:`; flows whose `to:` names a Service):
//!
//! ```yaml
//! datapath:
//!   pods: [{name: client, node: 1}, {name: web-1, node: 2, labels: {app: web}}]
//!   services: [{name: web, port: 80, target_port: 8080, selector: {app: web}}]
//!   network:                 # the cluster format's section, parsed by its code
//!     cni: calico            # the CNI's family: calico | cilium | flannel
//!     kube_proxy: {mode: iptables}
//!     services: {count: 9999, endpoints: 3}   # the cluster's other Services
//!     active: [allow]
//!     policy_sets: {allow: "<NetworkPolicy manifests>"}
//! flows:
//!   - {name: get, from: client, to: web, tcp: {request: 200B, response: 20KB}}
//! ```
//!
//! Without Services or conntrack the model draws no random numbers: every
//! seed gives the same run, so such a variant runs once. With them (the
//! endpoint pick, the iptables walk's spread, early drop) a variant runs
//! once per seed of `knsim run --seeds`, byte-identical per seed.

use crate::envelope::{self, did_you_mean, serde_error, tagged, Locate, VariantLabel};
use crate::error::InputError;
use crate::figures::{self, Figure, Filter, Level, PacketFigure, Selector};
use crate::locate::{Positions, Seg};
use crate::path;
use crate::spec::{NamespaceFile, NetworkFile, Validator};
use crate::units::{Bandwidth, Bytes, Count, Duration};
use rayon::prelude::*;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::datapath::cni::{Cni, InstanceType};
use sim_models::datapath::link::{LinkSpec, DEFAULT_QUEUE};
use sim_models::datapath::network::{
    run, Dest, DropKind, EndpointId, Fault, FlowKind, FlowSpec, HostSpec, NetConfig, NetOutput,
    PodMeta, PodSpec, Recording, ServiceSetup, ServiceSpec, SiteSpec, UnderlaySpec, BGP_HOLD_TIME,
};
use sim_models::datapath::tcp::{CongestionControl, TcpSettings};
use sim_models::ipam::Ipv4Cidr;
use sim_models::kube_proxy::Mode;
use std::collections::BTreeMap;
use std::fmt::Write as _;

mod file;
mod report;
mod validate;

pub use file::*;
pub use report::{json, text};

/// A validated expectation.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// As shown (`succeeded{flow=large}`).
    pub label: String,
    metric: &'static Figure,
    flow: Option<usize>,
    reason: Option<String>,
    /// `(op, threshold)`.
    pub checks: Vec<(&'static str, f64)>,
    /// Why.
    pub because: String,
}

/// One runnable configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// Name.
    pub name: String,
    /// What differs.
    pub description: String,
    /// The model configuration.
    pub config: NetConfig,
    /// Endpoint names, by index.
    pub endpoints: Vec<String>,
    /// The connection path's setup, as shown in reports.
    pub path: Option<String>,
    /// Assertions.
    pub expect: Vec<Expectation>,
}

/// A validated packet-level scenario.
pub type DatapathScenario = envelope::Scenario<Variant>;

/// Whether `text` is a packet-level scenario (has a top-level `datapath:`).
pub fn is_datapath(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("datapath:"))
}

/// Parses and validates a packet-level scenario.
pub fn parse(file: &str, text: &str) -> Result<DatapathScenario, InputError> {
    let raw: DatapathFile = serde_yaml_ng::from_str(text).map_err(|e| serde_error(file, &e))?;
    let pos = Positions::of(text);
    V {
        file,
        text,
        pos: &pos,
    }
    .scenario(raw)
}

/// The sections one variant is built from, each with the path it was
/// written at (empty: the top level).
struct Sections<'f> {
    net: (&'f NetFile, Vec<Seg>),
    flows: (&'f [FlowFile], Vec<Seg>),
    timeline: (&'f [FaultFile], Vec<Seg>),
    expect: (&'f [ExpectFile], Vec<Seg>),
}

struct V<'a> {
    file: &'a str,
    text: &'a str,
    pos: &'a Positions,
}

impl Locate for V<'_> {
    fn source(&self) -> (&str, &Positions) {
        (self.file, self.pos)
    }
}

type R<T> = Result<T, InputError>;

fn join(p: &[Seg], more: &[Seg]) -> Vec<Seg> {
    [p, more].concat()
}

/// One run of one variant.
pub struct DatapathRun {
    /// Index into the variants.
    pub variant: usize,
    /// The seed, for variants that draw random numbers.
    pub seed: Option<u64>,
    /// What the model produced.
    pub output: NetOutput,
    /// The checks.
    pub checks: Vec<crate::run::Check>,
}

/// Runs every variant (in parallel on `threads`, results in variant
/// order), once per seed of `seeds` for variants that draw random numbers
/// (Service endpoint picks, lookup spreads) and once for the others,
/// recording trace and packets for `record` (variant index; its first
/// seed).
pub fn run_all(
    scenario: &DatapathScenario,
    seeds: &[u64],
    threads: Option<usize>,
    record: Option<(usize, Recording)>,
) -> Result<Vec<DatapathRun>, String> {
    let jobs: Vec<(usize, Option<u64>)> = scenario
        .variants
        .iter()
        .enumerate()
        .flat_map(|(v, variant)| {
            if variant.config.services.draws_random() {
                seeds.iter().map(|&s| (v, Some(s))).collect()
            } else {
                vec![(v, None)]
            }
        })
        .collect();
    crate::run::in_pool(threads, || {
        jobs.par_iter()
            .map(|&(v, seed)| {
                let variant = &scenario.variants[v];
                let rec = match record {
                    Some((i, r)) if i == v && seed.is_none_or(|s| Some(&s) == seeds.first()) => r,
                    _ => Recording::default(),
                };
                let output = match seed {
                    Some(s) => {
                        let mut cfg = variant.config.clone();
                        cfg.services.seed = s;
                        run(&cfg, rec)?
                    }
                    None => run(&variant.config, rec)?,
                };
                let checks = variant.expect.iter().map(|e| check(e, &output)).collect();
                Ok(DatapathRun {
                    variant: v,
                    seed,
                    output,
                    checks,
                })
            })
            .collect::<Result<Vec<_>, String>>()
    })?
}

/// The value an expectation reads.
pub fn measure(e: &Expectation, out: &NetOutput) -> Option<f64> {
    let flow = e.flow.map(|i| &out.flows[i]);
    e.metric.packets(out, flow, e.reason.as_deref())
}

fn check(e: &Expectation, out: &NetOutput) -> crate::run::Check {
    let actual = measure(e, out);
    crate::run::Check::new(&e.label, actual, &e.checks, |x| e.metric.show(x))
}

/// (held, total) over every run's expectations.
pub fn expectation_totals(runs: &[DatapathRun]) -> (usize, usize) {
    crate::run::totals(runs.iter().flat_map(|r| &r.checks))
}

#[cfg(test)]
mod tests;
