//! The story's service-mesh lines: what the proxies did and cost, and,
//! side by side, the latency a mesh added.
//!
//! # Scope
//! Reads [`sim_models::cluster::MeshOutput`] (per hop, responses by flag,
//! proxies' CPU and memory) and the windows' latency histograms; writes
//! nothing the run did not measure.

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
    if m.oom_kills > 0 {
        lines.push(format!(
            "The kernel OOM-killed a proxy {} time(s) at its container's memory limit (its memory is a base, plus each pooled \
             connection, plus each request inside): the requests inside and on its connections were reset (UC).",
            m.oom_kills
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
