//! # Topology Aware Routing hints (`service.kubernetes.io/topology-mode: Auto`)
//!
//! ## Scope
//! What the EndpointSlice controller writes into a Service's endpoints when
//! the Service carries the `service.kubernetes.io/topology-mode: Auto`
//! annotation, and when it writes nothing. The controller keeps each zone's
//! share of the allocatable CPU of the Ready nodes ([`zone_ratios`],
//! `TopologyCache.SetNodes`), gives each zone a number of endpoints in that
//! proportion ([`allocations`], `getAllocations`), hints every Ready
//! endpoint for its own zone, then moves whole endpoints from zones with
//! more than their share to zones with less ([`hint`],
//! `getGivingAndReceivingZones` and `redistributeHints`). kube-proxy then
//! uses, on a node in zone Z, the endpoints hinted for Z, unless some Ready
//! endpoint has no hint or none is hinted for Z, when it uses all of them
//! ([`crate::services::TopologyEndpoints::choose`], `topologyModeFromHints`
//! in `pkg/proxy/topology.go`).
//!
//! The safeguards ([`Disabled`]): the controller writes no hint at all
//! (and records a `TopologyAwareHintsDisabled` warning with the reason) when
//! a Ready node has no zone label or no allocatable CPU, or fewer than two
//! zones have Ready nodes (`Insufficient Node information`); when there are
//! fewer Ready endpoints than zones (`Insufficient number of endpoints`);
//! when the zones' minimum shares, each `ceil(desired / (1 + 0.2))`, add up
//! to more endpoints than there are (`Unable to allocate minimum required
//! endpoints to each zone without exceeding overload threshold`). When the
//! nodes change, a Service whose current hints leave some zone under its
//! minimum is recomputed ([`overloaded`], `serviceOverloaded`).
//!
//! Go iterates its maps in random order where the controller picks the
//! zone with the most to give or receive and the zone an endpoint moves to;
//! here ties go to the lowest zone index, so a run is reproducible. The
//! controller's own sync delay and EndpointSlice batching are not modelled:
//! hints follow endpoint and node changes at once. Endpoints are recomputed
//! from scratch at each change (the controller rewrites every slice whose
//! hints no longer fit; the counts per zone are the same).
//!
//! ## Parameters (docs/calibration.md, row `tar-hints`)
//! - [`OVERLOAD_THRESHOLD`]: 0.2 (`overloadThreshold` in
//!   `pkg/controller/endpointslice/topologycache/topologycache.go`;
//!   Kubernetes docs "Topology Aware Routing", Safeguards).
//! - The event texts: `topologycache/event.go`, with `, addressType: IPv4`
//!   appended as `FormatWithAddressType` does.
//!
//! ## What it emits
//! Per zone, how many endpoints it has hinted ([`hint`]'s moves), or the
//! reason hints are off (`Disabled`'s `Display`: the event's message).
//!
//! ## Validation
//! `hints_tests.rs`: the docs' and the controller tests' worked examples
//! (allocation by CPU, the minimum and maximum per zone, redistribution),
//! each safeguard with its message, the overload check after a node change,
//! and kube-proxy's fallback through [`crate::services::TopologyEndpoints`].

use std::fmt;

/// The most overload any one endpoint should see (`overloadThreshold`).
pub const OVERLOAD_THRESHOLD: f64 = 0.2;

/// Why the controller removed every hint (`TopologyAwareHintsDisabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disabled {
    /// A Ready node without zone label or allocatable CPU, or Ready nodes
    /// in fewer than two zones: the controller keeps no CPU ratios.
    InsufficientNodeInfo,
    /// Fewer Ready endpoints than zones.
    TooFewEndpoints {
        /// Ready endpoints.
        endpoints: usize,
        /// Zones with Ready nodes.
        zones: usize,
    },
    /// The zones' minimum allocations add up to more than the endpoints.
    OverloadThreshold {
        /// Ready endpoints.
        endpoints: usize,
        /// Zones with Ready nodes.
        zones: usize,
    },
}

impl fmt::Display for Disabled {
    /// The event's message, as the controller writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disabled::InsufficientNodeInfo => f.write_str(
                "Insufficient Node information: allocatable CPU or zone not specified on one or more nodes",
            )?,
            Disabled::TooFewEndpoints { endpoints, zones } => write!(
                f,
                "Insufficient number of endpoints ({endpoints} endpoints, {zones} zones)"
            )?,
            Disabled::OverloadThreshold { endpoints, zones } => write!(
                f,
                "Unable to allocate minimum required endpoints to each zone without exceeding overload threshold ({endpoints} endpoints, {zones} zones)"
            )?,
        }
        f.write_str(", addressType: IPv4")
    }
}

/// The event reason when hints are removed.
pub const DISABLED_REASON: &str = "TopologyAwareHintsDisabled";
/// The event reason when hints are written after having been off.
pub const ENABLED_REASON: &str = "TopologyAwareHintsEnabled";
/// Its message.
pub const ENABLED_MESSAGE: &str = "Topology Aware Hints has been enabled, addressType: IPv4";

/// One node as the controller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Its `topology.kubernetes.io/zone` (index), if labelled.
    pub zone: Option<usize>,
    /// Whether it is Ready (not-Ready nodes are skipped).
    pub ready: bool,
    /// Its allocatable CPU in millicores, if it reports one.
    pub cpu_millis: Option<u64>,
}

/// Each zone's share of the Ready nodes' allocatable CPU (`None`: no Ready
/// node in it), over `zones` zones; `Err` when the controller keeps no
/// ratios (`SetNodes`: a Ready node without zone or CPU, no CPU at all, or
/// fewer than two zones).
pub fn zone_ratios(
    nodes: impl IntoIterator<Item = NodeView>,
    zones: usize,
) -> Result<Vec<Option<f64>>, Disabled> {
    let mut cpu = vec![0u64; zones];
    for n in nodes.into_iter().filter(|n| n.ready) {
        match (n.zone, n.cpu_millis) {
            (Some(z), Some(c)) if c > 0 && z < zones => cpu[z] += c,
            _ => return Err(Disabled::InsufficientNodeInfo),
        }
    }
    let total: u64 = cpu.iter().sum();
    if total == 0 || cpu.iter().filter(|&&c| c > 0).count() < 2 {
        return Err(Disabled::InsufficientNodeInfo);
    }
    Ok(cpu
        .iter()
        .map(|&c| (c > 0).then(|| c as f64 / total as f64))
        .collect())
}

/// One zone's share of the endpoints.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Allocation {
    /// The fewest it may have: `ceil(desired / (1 + threshold))`.
    pub minimum: usize,
    /// The most: its minimum plus the endpoints left over the minimums.
    pub maximum: usize,
    /// Its CPU share of the endpoints (at least its minimum).
    pub desired: f64,
}

/// Each zone's allocation of `endpoints` Ready endpoints (`None` for a
/// zone without Ready nodes), or why there is none (`getAllocations`).
pub fn allocations(
    ratios: &[Option<f64>],
    endpoints: usize,
) -> Result<Vec<Option<Allocation>>, Disabled> {
    let zones = ratios.iter().flatten().count();
    if zones > endpoints {
        return Err(Disabled::TooFewEndpoints { endpoints, zones });
    }
    let mut min_total = 0;
    let mut out: Vec<Option<Allocation>> = ratios
        .iter()
        .map(|r| {
            r.map(|ratio| {
                let desired = ratio * endpoints as f64;
                let minimum = (desired * (1.0 / (1.0 + OVERLOAD_THRESHOLD))).ceil() as usize;
                min_total += minimum;
                Allocation {
                    minimum,
                    maximum: 0,
                    desired: desired.max(minimum as f64),
                }
            })
        })
        .collect();
    if min_total > endpoints {
        return Err(Disabled::OverloadThreshold { endpoints, zones });
    }
    for a in out.iter_mut().flatten() {
        a.maximum = a.minimum + endpoints - min_total;
    }
    Ok(out)
}

/// Endpoints of zone `from` hinted for zone `to` instead of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Move {
    /// The zone the endpoints are in.
    pub from: usize,
    /// The zone they are hinted for.
    pub to: usize,
    /// How many.
    pub count: usize,
}

/// With Ready endpoints `located[z]` in each zone, the endpoints hinted
/// for another zone than their own (every other endpoint is hinted for its
/// own zone): steps 2 and 3 of `AddHints`.
pub fn hint(allocs: &[Option<Allocation>], located: &[usize]) -> Vec<Move> {
    // Step 2: what each zone has over or under its desired share, then
    // whole endpoints from the zone with most to give to the zone with most
    // to receive while both have at least half an endpoint (and one of them
    // a whole one).
    let mut giving = vec![0.0f64; allocs.len()];
    let mut receiving = vec![0.0f64; allocs.len()];
    for (z, a) in allocs.iter().enumerate() {
        let Some(a) = a else { continue };
        let have = located.get(z).copied().unwrap_or(0) as f64;
        if have > a.desired {
            giving[z] = have - a.desired;
        } else if have < a.desired {
            receiving[z] = a.desired - have;
        }
    }
    let most = |v: &[f64]| {
        v.iter()
            .enumerate()
            .fold(None, |best: Option<(usize, f64)>, (z, &n)| match best {
                Some((_, b)) if b >= n => best,
                _ if n > 0.0 => Some((z, n)),
                _ => best,
            })
    };
    let mut give = vec![0usize; allocs.len()];
    let mut receive = vec![0usize; allocs.len()];
    while let (Some((g, ng)), Some((r, nr))) = (most(&giving), most(&receiving)) {
        if (ng < 1.0 && nr < 1.0) || ng < 0.5 || nr < 0.5 {
            break;
        }
        give[g] += 1;
        giving[g] -= 1.0;
        receive[r] += 1;
        receiving[r] -= 1.0;
    }
    // Step 3: the endpoints of giving zones, in order, each to the first
    // zone still receiving.
    let mut moves: Vec<Move> = Vec::new();
    let mut to = 0;
    for (from, &n) in give.iter().enumerate() {
        for _ in 0..n {
            while to < receive.len() && receive[to] == 0 {
                to += 1;
            }
            if to == receive.len() {
                return moves;
            }
            receive[to] -= 1;
            match moves.last_mut() {
                Some(m) if m.from == from && m.to == to => m.count += 1,
                _ => moves.push(Move { from, to, count: 1 }),
            }
        }
    }
    moves
}

/// Whether hints giving `hinted[z]` endpoints to each zone leave a zone of
/// `ratios` under its minimum (`serviceOverloaded`): after a node change
/// the controller recomputes such Services.
pub fn overloaded(hinted: &[usize], ratios: &Result<Vec<Option<f64>>, Disabled>) -> bool {
    let total: usize = hinted.iter().sum();
    if total == 0 {
        return false;
    }
    let Ok(ratios) = ratios else { return true };
    ratios.iter().enumerate().any(|(z, r)| {
        r.is_some_and(|ratio| {
            let have = hinted.get(z).copied().unwrap_or(0);
            let min = (total as f64 * ratio * (1.0 / (1.0 + OVERLOAD_THRESHOLD))).ceil() as usize;
            have == 0 || have < min
        })
    })
}

#[cfg(test)]
#[path = "hints_tests.rs"]
mod tests;
