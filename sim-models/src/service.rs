//! # Services: spreading requests over ready endpoints
//!
//! ## Scope
//! A ClusterIP Service selecting one Deployment's pods. Only Ready pods are
//! endpoints. Each new request picks one endpoint uniformly at random, as
//! kube-proxy's iptables mode does with its chain of `statistic --mode
//! random --probability 1/k` rules (docs/calibration.md, row
//! `kp-iptables-rule-walk`, H). In this foundation model endpoint changes reach the data
//! path at once; kube-proxy's sync delay belongs to the service-routing model.
//!
//! Selection is O(1) whatever the number of endpoints: the simulator's cost
//! per request does not grow with the Service's size.
//!
//! ## What it emits
//! The chosen endpoint, or none (the request is refused).
//!
//! ## Validation
//! A unit test checks add/remove bookkeeping and that picks are uniform
//! (chi-square over 10 endpoints).

use crate::connections::PodMap;
use rand::RngExt;
use sim_core::SimRng;

/// The ready endpoints of one Service, as pod ids.
///
/// Each pod that has ever been an endpoint also has a *host number*,
/// given at its first add and kept for the run (0, 1, ... in that order):
/// a reader that keeps state per endpoint (a mesh proxy's active requests
/// and outlier counts per host) indexes it by host number, with no map of
/// its own and no rescan when the endpoints change.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    ready: Vec<u32>,
    /// The host number of each pod of `ready`, in the same order.
    hosts: Vec<u32>,
    /// Per pod ever an endpoint: its index in `ready` ([`NOT_READY`] when
    /// it is not one now) and its host number. Looked up, never iterated;
    /// its size follows the pods that were endpoints, not the cluster's.
    seen: PodMap<(u32, u32)>,
}

/// The index of a pod that is not an endpoint now.
const NOT_READY: u32 = u32::MAX;

impl Endpoints {
    /// Adds a Ready pod; no-op if present.
    pub fn add(&mut self, pod: u32) {
        let next_host = self.seen.len() as u32;
        let (index, host) = self.seen.entry(pod).or_insert((NOT_READY, next_host));
        if *index == NOT_READY {
            *index = self.ready.len() as u32;
            self.ready.push(pod);
            self.hosts.push(*host);
        }
    }

    /// Removes a pod; no-op if absent.
    pub fn remove(&mut self, pod: u32) {
        let Some((index, _)) = self.seen.get_mut(&pod) else {
            return;
        };
        let i = std::mem::replace(index, NOT_READY);
        if i == NOT_READY {
            return;
        }
        self.ready.swap_remove(i as usize);
        self.hosts.swap_remove(i as usize);
        if let Some(&moved) = self.ready.get(i as usize) {
            if let Some((index, _)) = self.seen.get_mut(&moved) {
                *index = i;
            }
        }
    }

    /// The host number of each endpoint of [`Endpoints::pods`], in its
    /// order.
    pub fn hosts(&self) -> &[u32] {
        &self.hosts
    }

    /// Pods that have ever been endpoints: host numbers are below it.
    pub fn host_count(&self) -> usize {
        self.seen.len()
    }

    /// The host number of `pod`, if it has ever been an endpoint.
    pub fn host_of(&self, pod: u32) -> Option<u32> {
        self.seen.get(&pod).map(|&(_, h)| h)
    }

    /// Number of ready endpoints.
    pub fn len(&self) -> usize {
        self.ready.len()
    }

    /// True when no endpoint is ready.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
    }

    /// The `i`-th ready endpoint (`i` modulo their number), for clients
    /// that take turns.
    pub fn nth(&self, i: usize) -> Option<u32> {
        if self.ready.is_empty() {
            None
        } else {
            Some(self.ready[i % self.ready.len()])
        }
    }

    /// The endpoints, in the order picks index them.
    pub fn pods(&self) -> &[u32] {
        &self.ready
    }

    /// The endpoint at `index` (from [`Endpoints::pick_index`]).
    pub fn at(&self, index: usize) -> u32 {
        self.ready[index]
    }

    /// The index of a uniformly random endpoint.
    pub fn pick_index(&self, rng: &mut SimRng) -> Option<usize> {
        if self.ready.is_empty() {
            None
        } else {
            Some(rng.random_range(0..self.ready.len()))
        }
    }

    /// A uniformly random ready endpoint.
    pub fn pick(&self, rng: &mut SimRng) -> Option<u32> {
        if self.ready.is_empty() {
            None
        } else {
            Some(self.ready[rng.random_range(0..self.ready.len())])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::RngStreams;

    #[test]
    fn add_remove_keep_the_set_exact() {
        let mut e = Endpoints::default();
        for p in [3, 1, 4, 1, 5] {
            e.add(p);
        }
        assert_eq!(e.len(), 4);
        e.remove(3);
        e.remove(9);
        assert_eq!(e.len(), 3);
        // Host numbers: by first add, kept when a pod leaves and returns.
        assert_eq!(e.host_count(), 4);
        e.remove(1);
        e.add(1);
        e.add(8);
        assert_eq!(e.host_of(1), Some(1));
        assert_eq!(e.host_of(8), Some(4));
        assert_eq!(e.host_of(3), Some(0));
        for (p, h) in e.pods().iter().zip(e.hosts()) {
            assert_eq!(e.host_of(*p), Some(*h));
        }
        assert_eq!(e.len(), 4);
        let mut rng = RngStreams::new(1).stream("t");
        for _ in 0..100 {
            assert!([1, 4, 5, 8].contains(&e.pick(&mut rng).unwrap()));
        }
    }

    #[test]
    fn picks_are_uniform() {
        let mut e = Endpoints::default();
        (0..10).for_each(|p| e.add(p));
        let mut rng = RngStreams::new(2).stream("t");
        let mut counts = [0u32; 10];
        let n = 100_000;
        for _ in 0..n {
            counts[e.pick(&mut rng).unwrap() as usize] += 1;
        }
        let expected = n as f64 / 10.0;
        let chi2: f64 = counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum();
        // 9 degrees of freedom: P(chi2 > 27.9) = 0.001.
        assert!(chi2 < 27.9, "chi2 {chi2}");
    }
}
