//! # The names CoreDNS serves: what the cluster says exists
//!
//! Services (`<svc>.<ns>.svc.cluster.local`: a ClusterIP, or a headless
//! Service's Ready pod addresses), StatefulSet pods, and the external names
//! traffic sources resolve (an A record upstream, no AAAA); every other name
//! is NXDOMAIN. Answers carry an address as `rdata` ([`rdata_of`]).

use super::*;

/// Whether `name` has records in `cfg`'s cluster once its pods are Ready:
/// a Service (`<svc>.<ns>.svc.cluster.local`), a StatefulSet pod
/// (`<pod>.<svc>.<ns>.svc.cluster.local`) or an external name a traffic
/// source resolves; the same rules as the run's answers
/// (`Sim::dns_truth`), without the run's state. The work estimate asks it
/// per candidate name, so it walks the configuration.
pub fn name_exists(cfg: &ClusterConfig, name: &str) -> bool {
    let name = name.trim_end_matches('.');
    if !in_cluster_zone(name) {
        return cfg
            .traffic
            .iter()
            .filter_map(|t| t.resolve.as_deref())
            .any(|r| r.trim_end_matches('.') == name);
    }
    let Some(rest) = name.strip_suffix(".svc.cluster.local") else {
        return false;
    };
    let head_in = |ns: &str| rest.strip_suffix(ns).and_then(|h| h.strip_suffix('.'));
    // Explicit Services, then each workload's implicit Service (none when
    // an explicit Service selects it, as `services::resolve` has it) and
    // StatefulSet pods' own names.
    let explicit = &cfg.services.explicit;
    explicit.iter().any(|s| {
        head_in(&s.namespace).is_some_and(|head| {
            head == s.name
                // <pod>.<service>: a StatefulSet pod behind a headless Service.
                || (s.headless
                    && head
                        .strip_suffix(s.name.as_str())
                        .is_some_and(|pod| pod.len() > 1 && pod.ends_with('.')))
        })
    }) || cfg.deployments.iter().any(|d| {
        let Some(head) = head_in(&d.namespace) else {
            return false;
        };
        let claimed = || {
            explicit
                .iter()
                .any(|s| s.namespace == d.namespace && s.selects(&d.labels))
        };
        (head == d.name && !claimed())
            || (d.kind == WorkloadKind::StatefulSet
                && head
                    .strip_suffix(d.name.as_str())
                    .is_some_and(|pod| pod.len() > 1 && pod.ends_with('.')))
    })
}

/// Whether `name` (no trailing dot) is in the `kubernetes` plugin's zone.
pub(crate) fn in_cluster_zone(name: &str) -> bool {
    name == "cluster.local" || name.ends_with(".cluster.local")
}

/// The address an answer's data names: 0 is a Service's ClusterIP (or an
/// address outside the cluster), else 1 + the pod's IPv4 address.
pub(crate) fn rdata_of(ip: Ipv4Addr) -> u64 {
    1 + u64::from(u32::from(ip))
}

pub(crate) fn address_of(rdata: u64) -> Option<Ipv4Addr> {
    rdata
        .checked_sub(1)
        .and_then(|x| u32::try_from(x).ok())
        .map(Ipv4Addr::from)
}

impl Sim<'_> {
    /// What the cluster's DNS truth says about `name`: its zone, whether
    /// it has records of `qtype`, and which address (see [`rdata_of`]).
    pub(crate) fn dns_truth(&self, name: &str, qtype: QType) -> (Zone, Existence, u64) {
        let name = name.trim_end_matches('.');
        let Some(dns) = self.dns.as_ref() else {
            return (Zone::External, Existence::NxDomain, 0);
        };
        if !in_cluster_zone(name) {
            if !dns.external.contains(name) {
                return (Zone::External, Existence::NxDomain, 0);
            }
            return match qtype {
                QType::A => (Zone::External, Existence::Records(1), 0),
                QType::Aaaa => (Zone::External, Existence::NoData, 0),
            };
        }
        let found = name.strip_suffix(".svc.cluster.local").and_then(|rest| {
            // <service>.<ns>
            if let Some(&s) = dns.services.get(rest) {
                return Some(self.service_records(s, None));
            }
            // <pod>.<service>.<ns>: a StatefulSet pod behind a headless Service.
            let (head, _ns) = rest.rsplit_once('.')?;
            let (pod, _svc) = head.rsplit_once('.')?;
            let &s = dns.services.get(&rest[pod.len() + 1..])?;
            Some(self.service_records(s, Some(pod)))
        });
        let (existence, rdata) = match found {
            Some(Some((n, rdata))) => (Existence::Records(n), rdata),
            Some(None) => (Existence::NoData, 0),
            None => (Existence::NxDomain, 0),
        };
        match (qtype, existence) {
            (QType::Aaaa, Existence::NxDomain) => (Zone::Cluster, Existence::NxDomain, 0),
            (QType::Aaaa, _) => (Zone::Cluster, Existence::NoData, 0),
            (QType::A, e) => (Zone::Cluster, e, rdata),
        }
    }

    /// A records of Service `s` (an index in the run's Services): its
    /// ClusterIP, or for a headless Service (`clusterIP: None`, explicit,
    /// or the implicit Service of a workload marked headless) the Ready
    /// pods of the workloads it selects (the first one's address, by
    /// ordinal, as the data), or one pod by name. `None`: the name exists,
    /// no address.
    pub(crate) fn service_records(&self, s: usize, pod: Option<&str>) -> Option<(u16, u64)> {
        let r = &self.services.list[s];
        let headless = r.spec.headless
            || r.implicit.is_some_and(|w| {
                self.cfg
                    .dns
                    .as_ref()
                    .is_some_and(|c| c.headless.contains(&w))
            });
        if !headless {
            return pod.is_none().then_some((1, 0));
        }
        // Headless Services front small sets (StatefulSets, peers): their
        // live pods are scanned.
        let mut ready: Vec<(u32, u32)> = r
            .workloads
            .iter()
            .flat_map(|&w| self.deps[w].live.iter())
            .filter(|&&p| self.pod_live_in(p, PodState::Ready))
            .filter(|&&p| pod.is_none_or(|n| self.pod_name(p) == n))
            .map(|&p| (self.pods[p as usize].ordinal, p))
            .collect();
        ready.sort_unstable();
        let &(_, first) = ready.first()?;
        let ip = self.pods[first as usize].lease.map(|l| l.ip)?;
        Some((u16::try_from(ready.len()).unwrap_or(u16::MAX), rdata_of(ip)))
    }
}
