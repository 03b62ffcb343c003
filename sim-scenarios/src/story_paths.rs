//! The story's lines for traffic through an ingress controller: where each
//! request path went and why, per window and side by side
//! (`sim_models::cluster::IngressTraffic`).

use std::fmt::Write as _;

use sim_models::cluster::{IngressTraffic, RequestTotals, TrafficSpec, WindowStats};

/// ` through CONTROLLER` for a source through an ingress controller.
pub(crate) fn route(t: &TrafficSpec) -> Option<String> {
    t.ingress.as_ref().map(|i| match i.controller.as_str() {
        "conformant" => " through a conformant ingress controller".to_string(),
        c => format!(" through {c}"),
    })
}

/// The share of a path's ended requests its backend (or the 404) answered.
fn answered_share(t: &RequestTotals, not_found: bool) -> f64 {
    let ended = (t.answered + t.errors()).max(1);
    let hits = if not_found { t.not_found } else { t.answered };
    hits as f64 / ended as f64
}

/// Per path of `w`'s source, in `span`: sent, where it went, the share answered.
pub(crate) fn window_lines(s: &mut String, span: &str, t: &TrafficSpec, w: &WindowStats) {
    let Some(ing) = &t.ingress else { return };
    for (p, totals) in ing.paths.iter().zip(&w.paths) {
        let _ = writeln!(
            s,
            "  {span:<17} {} in `{}`: {}{} ({} sent) -> {}: {:.1}% answered by it; {}",
            w.service,
            w.window,
            p.host,
            p.path,
            totals.sent,
            p.answered_by,
            answered_share(totals, p.backend.is_none()) * 100.0,
            p.because
        );
    }
}

/// The controller's notes (why a host's paths read as they do).
pub(crate) fn why_lines(ing: &IngressTraffic) -> Vec<String> {
    ing.notes.iter().map(|n| format!("{n}.")).collect()
}

/// Side by side: where each path went in the base and the other variant.
pub(crate) fn compare_lines(
    s: &mut String,
    (bt, b): (&TrafficSpec, &WindowStats),
    (ot, o): (&TrafficSpec, &WindowStats),
) {
    let (Some(bi), Some(oi)) = (&bt.ingress, &ot.ingress) else {
        return;
    };
    for (bp, bw) in bi.paths.iter().zip(&b.paths) {
        let Some((op, ow)) = oi
            .paths
            .iter()
            .zip(&o.paths)
            .find(|(op, _)| op.host == bp.host && op.path == bp.path)
        else {
            continue;
        };
        let _ = writeln!(
            s,
            "    {} in `{}`: {}{} answered by {} {:.1}% -> {} {:.1}%",
            b.service,
            b.window,
            bp.host,
            bp.path,
            bp.answered_by,
            answered_share(bw, bp.backend.is_none()) * 100.0,
            op.answered_by,
            answered_share(ow, op.backend.is_none()) * 100.0,
        );
    }
}
