//! The network-plan report: the story, each variant's plan, its capacity,
//! every overlap and what breaks, and the expectations; and its JSON summary.

use super::*;
use crate::figures::{num, PLAN_NAMES};
use sim_models::cidr_plan::PlanFigures;
use std::fmt::Write as _;

fn list(v: &[Ipv4Cidr]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn kind(k: PeerKind) -> &'static str {
    match k {
        PeerKind::Vpc => "peered VPC",
        PeerKind::Vpn => "VPN",
        PeerKind::Cluster => "cluster",
    }
}

/// The figures by name, in table order.
fn figures(f: &PlanFigures) -> Vec<(&'static str, u64)> {
    PLAN_NAMES
        .iter()
        .filter_map(|n| crate::figures::find(crate::figures::Level::Plan, n))
        .map(|fig| (fig.name, fig.plan(f).unwrap_or(0.0) as u64))
        .collect()
}

/// The text report.
pub fn text(s: &PlanScenario, runs: &[PlanRun]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "{}: {}", s.name, s.summary);
    let _ = writeln!(
        o,
        "network plan check (no simulation; every seed gives the same result)"
    );
    if !s.story.trim().is_empty() {
        let _ = writeln!(o);
        for l in s.story.trim().lines() {
            let _ = writeln!(o, "  {l}");
        }
    }
    for r in runs {
        let v = &s.variants[r.variant];
        let p = &v.plan;
        let c = &p.cluster;
        let _ = writeln!(o);
        let _ = writeln!(o, "variant {}: {}", v.name, v.description);
        match &v.origin {
            Origin::Written => {
                let _ = writeln!(o, "  plan (as written)");
            }
            Origin::Proposed(w) => {
                let _ = writeln!(
                    o,
                    "  plan (proposed by the planner for {} nodes, {} pods per node, {} Services, zones {}: first fit in RFC 1918 space)",
                    w.nodes,
                    w.max_pods_per_node,
                    w.services,
                    w.zones.join(", ")
                );
            }
        }
        for vpc in &p.vpcs {
            let subnets: Vec<String> = vpc
                .subnets
                .iter()
                .map(|sn| format!("{} {} ({})", sn.name, sn.cidr, sn.zone))
                .collect();
            let _ = writeln!(
                o,
                "    VPC {} {}{}",
                vpc.name,
                list(&vpc.cidrs),
                if subnets.is_empty() {
                    String::new()
                } else {
                    format!("; subnets {}", subnets.join(", "))
                }
            );
        }
        let _ = writeln!(
            o,
            "    cluster {} in VPC {}: pods {} (/{} per node), Services {}",
            c.name,
            p.vpcs[c.vpc].name,
            list(&c.pods),
            c.node_mask,
            c.services
        );
        for peer in &p.peers {
            let _ = writeln!(
                o,
                "    {} {}: {}",
                kind(peer.kind),
                peer.name,
                list(&peer.cidrs)
            );
        }
        let f = &r.check.figures;
        let _ = writeln!(
            o,
            "  capacity: {} nodes ({} pod addresses in /{} blocks, {} lost), {} Service addresses, {} usable subnet addresses",
            num(f.max_nodes as f64),
            num(f.pod_addresses as f64),
            c.node_mask,
            f.node_blocks_lost,
            num(f.service_addresses as f64),
            num(f.subnet_addresses as f64)
        );
        let _ = writeln!(
            o,
            "  overlaps: {}{}",
            f.overlaps,
            if f.peer_overlaps > 0 {
                format!(" (and {} between peers, not counted)", f.peer_overlaps)
            } else {
                String::new()
            }
        );
        for ov in &r.check.overlaps {
            let _ = writeln!(
                o,
                "    {} holds {}: {}",
                p.label(&r.check.ranges[ov.outer]),
                p.label(&r.check.ranges[ov.inner]),
                ov.consequence.name()
            );
        }
        if r.check.findings.is_empty() {
            let _ = writeln!(o, "  what breaks: nothing");
        } else {
            let _ = writeln!(o, "  what breaks");
            for finding in &r.check.findings {
                let _ = writeln!(o, "    - {}", finding.message);
            }
        }
    }
    if runs.iter().any(|r| !r.checks.is_empty()) {
        let _ = writeln!(o);
        let _ = writeln!(o, "expectations");
        for r in runs {
            let v = &s.variants[r.variant];
            for (c, e) in r.checks.iter().zip(&v.expect) {
                let verdict = if c.pass { "PASS" } else { "FAIL" };
                let _ = writeln!(o, "  {verdict} {}: {}: {}", v.name, c.label, c.text);
                if !e.because.is_empty() {
                    let _ = writeln!(o, "       because {}", e.because.trim());
                }
            }
        }
        let (held, total) = expectation_totals(runs);
        let _ = writeln!(o, "  {held} of {total} expectations hold");
    }
    o
}

/// The JSON summary.
pub fn json(s: &PlanScenario, runs: &[PlanRun]) -> serde_json::Value {
    use serde_json::json;
    let variants: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| {
            let v = &s.variants[r.variant];
            let p = &v.plan;
            let figs: serde_json::Map<String, serde_json::Value> = figures(&r.check.figures)
                .into_iter()
                .map(|(k, n)| (k.to_string(), json!(n)))
                .collect();
            let overlaps: Vec<serde_json::Value> = r
                .check
                .overlaps
                .iter()
                .map(|o| {
                    json!({
                        "outer": p.label(&r.check.ranges[o.outer]),
                        "inner": p.label(&r.check.ranges[o.inner]),
                        "consequence": o.consequence.name(),
                    })
                })
                .collect();
            let cut_off: Vec<serde_json::Value> = r
                .check
                .cut_off
                .iter()
                .map(|(peer, blocks)| {
                    json!({"peer": p.peers[*peer].name, "ranges": blocks.iter().map(ToString::to_string).collect::<Vec<_>>()})
                })
                .collect();
            json!({
                "name": v.name,
                "description": v.description,
                "proposed": matches!(v.origin, Origin::Proposed(_)),
                "ranges": r.check.ranges.iter().map(|x| p.label(x)).collect::<Vec<_>>(),
                "figures": figs,
                "overlaps": overlaps,
                "cut_off": cut_off,
                "findings": r.check.findings.iter().map(|f| f.message.clone()).collect::<Vec<_>>(),
                "expectations": r.checks.iter().map(crate::run::Check::json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let (held, total) = expectation_totals(runs);
    json!({"scenario": s.name, "summary": s.summary, "variants": variants, "expectations": {"held": held, "total": total}})
}
