//! The reachability truth table: every source pod against every destination pod
//! on every port of interest, with an explanation for each denied cell.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use super::eval::{evaluate, Flow, Verdict};
use super::manifest::{load_dir, ManifestError};
use super::policy::{Cluster, PortSpec};
use super::selector::format_labels;
use crate::protocol::Protocol;

/// The ports a table probes: every container port of every pod, and every
/// numeric `port`/`endPort` named by a policy, each with its protocol, sorted
/// by (protocol, port). TCP/80 if there are none.
pub fn probe_ports(cluster: &Cluster) -> Vec<(Protocol, u16)> {
    let mut ports = BTreeSet::new();
    for pod in cluster.pods() {
        for p in &pod.ports {
            ports.insert((p.protocol, p.port));
        }
    }
    for policy in cluster.policies() {
        for rule in policy.ingress.iter().chain(&policy.egress) {
            for p in &rule.ports {
                if let Some(PortSpec::Number { port, end_port }) = &p.port {
                    ports.insert((p.protocol, *port));
                    if let Some(end) = end_port {
                        ports.insert((p.protocol, *end));
                    }
                }
            }
        }
    }
    if ports.is_empty() {
        ports.insert((Protocol::Tcp, 80));
    }
    ports.into_iter().collect()
}

/// Renders the truth table of a cluster.
///
/// Layout, all in (namespace, name) order: a summary of pods (IP, node, labels)
/// and policies; then for each probed port/protocol (see [`probe_ports`]) a
/// grid whose rows are source pods and whose columns are destination pods,
/// with `.` for allowed and `X` for denied (the upstream e2e notation); then
/// one explanation per denied cell. The output is a pure function of the
/// cluster.
pub fn render_truth_table(cluster: &Cluster) -> String {
    let mut out = String::new();
    let pods = cluster.pods();
    let names: Vec<String> = pods
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    let _ = writeln!(
        out,
        "NetworkPolicy truth table: {} namespaces, {} pods, {} policies",
        cluster.namespaces().count(),
        pods.len(),
        cluster.policies().len()
    );
    out.push_str("\nPods:\n");
    for (pod, name) in pods.iter().zip(&names) {
        let _ = writeln!(
            out,
            "  {name}  ip {}  node {}{}  labels {}",
            pod.ip,
            pod.host_ip,
            if pod.host_network {
                "  hostNetwork"
            } else {
                ""
            },
            format_labels(&pod.labels)
        );
    }
    out.push_str("\nPolicies:\n");
    if cluster.policies().is_empty() {
        out.push_str("  (none: every pod accepts and sends everything)\n");
    }
    for p in cluster.policies() {
        let mut types = Vec::new();
        let rules = |n: usize| {
            if n == 1 {
                "1 rule".to_string()
            } else {
                format!("{n} rules")
            }
        };
        if p.policy_types.ingress {
            types.push(format!("Ingress ({})", rules(p.ingress.len())));
        }
        if p.policy_types.egress {
            types.push(format!("Egress ({})", rules(p.egress.len())));
        }
        let _ = writeln!(
            out,
            "  {}/{}  selects pods {}  isolates {}",
            p.namespace,
            p.name,
            p.pod_selector,
            types.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\nReachability (rows: source pod, columns: destination pod; `.` allowed, `X` denied):"
    );
    let row_width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(4);
    let mut denied: Vec<Verdict> = Vec::new();
    for (protocol, port) in probe_ports(cluster) {
        let _ = writeln!(out, "\n{protocol}/{port}");
        let _ = write!(out, "{:row_width$}", "");
        for n in &names {
            let _ = write!(out, " {n}");
        }
        out.push('\n');
        for (src, src_name) in pods.iter().zip(&names) {
            let _ = write!(out, "{src_name:row_width$}");
            for (dst, dst_name) in pods.iter().zip(&names) {
                let verdict = evaluate(
                    cluster,
                    &Flow {
                        src: src.ip,
                        dst: dst.ip,
                        protocol,
                        port,
                    },
                );
                let mark = if verdict.allowed() { "." } else { "X" };
                let _ = write!(out, " {mark:w$}", w = dst_name.len());
                if !verdict.allowed() {
                    denied.push(verdict);
                }
            }
            // No trailing blanks.
            while out.ends_with(' ') {
                out.pop();
            }
            out.push('\n');
        }
    }
    if denied.is_empty() {
        out.push_str("\nNo denied connections.\n");
    } else {
        let _ = writeln!(out, "\nDenied connections ({}):", denied.len());
        for v in &denied {
            let _ = writeln!(out, "{v}");
        }
    }
    out
}

/// The entry point for `knsim netpol DIR`.
///
/// Loads every `*.yaml`/`*.yml` file directly in `dir` (sorted by name; see
/// [`load_dir`] for what is read and how errors look), and returns the truth
/// table of [`render_truth_table`], followed by the list of objects that were
/// skipped because their kind does not affect NetworkPolicy. On bad input the
/// error's `Display` is `file:line:column: error: ...` plus a `hint:` line,
/// ready for stderr.
pub fn truth_table_for_dir(dir: &Path) -> Result<String, ManifestError> {
    let manifests = load_dir(dir)?;
    let mut out = render_truth_table(&manifests.cluster);
    if !manifests.skipped.is_empty() {
        let _ = writeln!(out, "\nSkipped (kinds that do not affect NetworkPolicy):");
        for s in &manifests.skipped {
            let _ = writeln!(out, "  {s}");
        }
    }
    Ok(out)
}
