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

use rand::RngExt;
use sim_core::SimRng;
use std::collections::hash_map::{Entry, HashMap};

/// The ready endpoints of one Service, as pod ids.
#[derive(Clone, Debug, Default)]
pub struct Endpoints {
    ready: Vec<u32>,
    /// Index of each pod of `ready` in it (looked up, never iterated; its
    /// size follows the Service's endpoints, not the cluster's pod ids).
    position: HashMap<u32, u32>,
    /// Adds and removes so far: a reader that keeps its own view of the
    /// endpoints (a mesh proxy's hosts) refreshes it when this moves.
    changes: u64,
}

impl Endpoints {
    /// Adds a Ready pod; no-op if present.
    pub fn add(&mut self, pod: u32) {
        if let Entry::Vacant(e) = self.position.entry(pod) {
            e.insert(self.ready.len() as u32);
            self.ready.push(pod);
            self.changes += 1;
        }
    }

    /// Removes a pod; no-op if absent.
    pub fn remove(&mut self, pod: u32) {
        let Some(i) = self.position.remove(&pod) else {
            return;
        };
        self.ready.swap_remove(i as usize);
        self.changes += 1;
        if let Some(&moved) = self.ready.get(i as usize) {
            self.position.insert(moved, i);
        }
    }

    /// Adds and removes so far.
    pub fn changes(&self) -> u64 {
        self.changes
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
        let mut rng = RngStreams::new(1).stream("t");
        for _ in 0..100 {
            assert!([1, 4, 5].contains(&e.pick(&mut rng).unwrap()));
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
