//! The story's service-mesh lines: what the proxies did and cost, and,
//! side by side, the latency a mesh added.
//!
//! # Scope
//! Reads [`sim_models::cluster::MeshOutput`] (per hop, responses by flag,
//! proxies' CPU and memory), the client proxies' upstream figures
//! (retries, budget overflows, ejections), and the windows' tries per
//! request and per user request along call chains, and their latency
//! histograms; writes nothing the run did not measure.

use crate::figures::num;
use sim_models::cluster::{RunOutput, WindowStats, RESPONSE_FLAGS};
use std::fmt::Write;

/// The mesh's `why` lines for one run.
pub(crate) fn why_lines(out: &RunOutput) -> Vec<String> {
    let Some(m) = &out.mesh else {
        return Vec::new();
    };
    let hops: Vec<String> = m
        .hops
        .iter()
        .map(|h| {
            format!(
                "{} ({} requests, queue and CPU p50 {} / p99 {}, plus {} outside the CPU)",
                h.hop,
                h.requests,
                h.latency.quantile(0.5),
                h.latency.quantile(0.99),
                h.hop_latency
            )
        })
        .collect();
    let flags: Vec<String> = RESPONSE_FLAGS
        .iter()
        .zip(m.responses)
        .filter(|(_, n)| *n > 0)
        .map(|(f, n)| format!("{f}: {n}"))
        .collect();
    let mut lines = vec![
        format!(
            "Each request passed the mesh's proxies in turn: {}. Responses as the client's proxy logs them: {}.",
            hops.join("; "),
            if flags.is_empty() { "none".to_string() } else { flags.join(", ") }
        ),
        format!(
            "The {} proxies did {} cores of CPU work on average over the run and held {} MiB together at most ({} mTLS handshakes, one \
             per pooled connection; {} requests reset at a proxy after their client left): that is what the nodes must have spare \
             for the mesh.",
            m.proxies,
            num((m.cpu_cores * 1000.0).round() / 1000.0),
            num((m.memory_bytes as f64 / f64::from(1u32 << 20)).round()),
            m.handshakes,
            m.abandoned
        ),
    ];
    lines.extend(chain_lines(out));
    lines
}

/// Tries that left a source's clients (first tries, application and mesh
/// retries).
fn tries(w: &WindowStats) -> u64 {
    w.totals.sent + w.totals.retried + w.totals.mesh_retried
}

/// Per window where a call chain's retries multiplied its load: what one
/// user request became at each hop, and what the client proxies' retry
/// limits and outlier detection did over the run.
fn chain_lines(out: &RunOutput) -> Vec<String> {
    let n = out.requests.len().max(1);
    let mut lines = Vec::new();
    for ws in out.windows.chunks(n) {
        // The hops made in handlers: their head is other sources.
        let hops: Vec<&WindowStats> = ws
            .iter()
            .filter(|w| w.head_sent > 0 && w.head_sent != w.totals.sent)
            .collect();
        let Some(last) = hops.last() else { continue };
        let per_user = |w: &WindowStats| tries(w) as f64 / w.head_sent as f64;
        if per_user(last) < 1.5 {
            continue;
        }
        let heads: Vec<String> = ws
            .iter()
            .filter(|w| w.head_sent == w.totals.sent && w.totals.sent > 0)
            .map(|w| {
                format!(
                    "{} ({:.2} tries per request)",
                    w.service,
                    tries(w) as f64 / w.totals.sent as f64
                )
            })
            .collect();
        let steps: Vec<String> = hops
            .iter()
            .map(|w| {
                format!(
                    "{} {:.1} ({:.2} tries per request it was sent, {:.0}% of them failed)",
                    w.service,
                    per_user(w),
                    tries(w) as f64 / w.totals.sent.max(1) as f64,
                    100.0 * w.totals.error_rate()
                )
            })
            .collect();
        lines.push(format!(
            "In `{}`, retries multiplied down the call chain: from {}, one user request became at each hop: {}. Each hop's \
             clients retried what failed below, and the tries of one hop are the requests of the next.",
            last.window,
            heads.join(", "),
            steps.join("; ")
        ));
    }
    let ups: Vec<String> = out
        .mesh_upstreams
        .iter()
        .zip(&out.windows)
        .filter_map(|(u, w)| u.map(|u| (u, &w.service)))
        .filter(|(u, _)| u.retries + u.retry_overflows + u.ejections > 0)
        .map(|(u, service)| {
            format!(
                "{service}: {} tries, {} retries, {} retries refused by the retry limit (upstream_rq_retry_overflow), {} pods ejected \
                 ({} ejections refused by maxEjectionPercent)",
                u.tries, u.retries, u.retry_overflows, u.ejections, u.ejection_overflows
            )
        })
        .collect();
    if !ups.is_empty() && !lines.is_empty() {
        lines.push(format!(
            "Over the run, the client proxies counted per upstream: {}.",
            ups.join("; ")
        ));
    }
    lines
}

/// Side by side: the latency the other run's mesh added to the base's.
pub(crate) fn compare_line(
    s: &mut String,
    (b, base): (&WindowStats, &RunOutput),
    (o, other): (&WindowStats, &RunOutput),
) {
    if base.mesh.is_some() || other.mesh.is_none() {
        return;
    }
    // Latency differences say what the proxies added only when both runs
    // answered (nearly) everything: a base that failed much of its traffic
    // has a different latency distribution for other reasons.
    let failing = b.totals.error_rate().max(o.totals.error_rate());
    if failing > 0.01 {
        let _ = writeln!(
            s,
            "    {} in `{}`: latency not compared with the mesh run ({:.1}% of one run's requests failed)",
            b.service,
            b.window,
            100.0 * failing
        );
        return;
    }
    let ms = |w: &WindowStats, q: f64| w.latency.quantile(q).as_secs_f64() * 1e3;
    let added = |q: f64| ms(o, q) - ms(b, q);
    let _ = writeln!(
        s,
        "    {} in `{}`: the mesh added p50 {:+.2} ms, p90 {:+.2} ms, p99 {:+.2} ms",
        b.service,
        b.window,
        added(0.5),
        added(0.9),
        added(0.99)
    );
}

/// Side by side, for a hop of a call chain whose retries multiplied: its
/// tries per user request in each run.
pub(crate) fn compare_chain_line(s: &mut String, b: &WindowStats, o: &WindowStats) {
    let per_user = |w: &WindowStats| {
        (w.head_sent > 0 && w.head_sent != w.totals.sent)
            .then(|| tries(w) as f64 / w.head_sent as f64)
    };
    if let (Some(x), Some(y)) = (per_user(b), per_user(o)) {
        if x.max(y) >= 1.5 {
            let _ = writeln!(
                s,
                "    {} in `{}`: tries per user request {:.1} -> {:.1}",
                b.service, b.window, x, y
            );
        }
    }
}
