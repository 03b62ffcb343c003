//! # Requests by path through an ingress controller
//!
//! ## Scope
//! A traffic source whose requests reach the cluster through an ingress
//! controller ([`TrafficSpec::ingress`]): users outside the cluster ask for
//! a host and a path; the controller routes each to the backend Service its
//! rules give ([`crate::ingress`]: a conformant controller or
//! ingress-nginx), or answers 404 itself from its default backend.
//!
//! Each distinct (host, path) the source asks for is routed **once**, when
//! the run is built (the caller routes and gives the answer as
//! [`RequestPath::backend`]); a request draws its path by share with one
//! uniform draw from the source's own stream `traffic/{name}/request-path`
//! (a binary search over the cumulative shares: O(log P) in the distinct
//! paths, nothing per Ingress rule, no string matching per request), and
//! the path index travels with the request and its retries.
//!
//! The controller itself costs nothing: no latency, no capacity, no
//! failure (no public figure for an ingress-nginx hop's own latency was
//! found; the request is then a connection from outside the cluster to the
//! backend's Service, as any other source's). A path the rules send to no
//! Service of the run ends at once as [`Outcome::NotFound`], which is not
//! retried (a client does not retry a 404). The backend answers every path
//! it receives with its usual service time: whether that answer is the page
//! asked for or the application's own 404 is the scenario's statement, not
//! the model's.
//!
//! Limitations: clients outside the cluster only, one connection per
//! request; TLS, redirects and header matches are not modelled.
//!
//! ## Parameters
//! The paths, their shares and their routes; no default.
//!
//! ## What it emits
//! Per path, [`RequestTotals`] over the run ([`RunOutput::paths`]) and per
//! window ([`WindowStats::paths`]); the source's own totals count the
//! controller's 404s as `not_found` (metric `requests_not_found`).
//!
//! ## Validation
//! Unit tests below (the draw follows the shares, shares are checked);
//! the conservation property test (`cluster/tests.rs`) runs a source with a
//! 404 path and checks sent = answered + each loss reason per path.

use super::*;

/// One (host, path) a source's users ask for, and where the controller
/// sends it.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestPath {
    /// The `Host` header.
    pub host: String,
    /// The path (starts with `/`).
    pub path: String,
    /// Share of the source's requests, in (0, 1].
    pub share: f64,
    /// The Deployment behind the Service that answers it; `None`: the
    /// controller's default backend (404).
    pub backend: Option<usize>,
    /// The answer as shown: `service:port`, or `default backend (404)`.
    pub answered_by: String,
    /// Why, as shown: the location that matched and where it was written
    /// (empty when none did).
    pub because: String,
}

/// How a source's requests go through an ingress controller.
#[derive(Clone, Debug, PartialEq)]
pub struct IngressTraffic {
    /// The controller, as shown (`ingress-nginx`, `conformant`).
    pub controller: String,
    /// The paths, in the order written.
    pub paths: Vec<RequestPath>,
    /// Cumulative shares, the last exactly 1.
    cumulative: Vec<f64>,
    /// What the controller did to the rules that a reader should know
    /// (e.g. a host whose paths all became regexes), for reports.
    pub notes: Vec<String>,
}

/// How far the shares may sum from 1.
pub const SHARE_TOLERANCE: f64 = 1e-6;

/// The most distinct paths one source may ask for (the path index travels
/// in 16 bits).
pub const MAX_PATHS: usize = u16::MAX as usize;

impl IngressTraffic {
    /// Checks the shares (each in (0, 1], summing to 1 within
    /// [`SHARE_TOLERANCE`]) and the count; the error names the path.
    pub fn new(controller: &str, paths: Vec<RequestPath>) -> Result<Self, (usize, String)> {
        if paths.is_empty() {
            return Err((0, "no request paths".into()));
        }
        if paths.len() > MAX_PATHS {
            return Err((MAX_PATHS, format!("more than {MAX_PATHS} request paths")));
        }
        let mut sum = 0.0;
        let mut cumulative = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            if !(p.share > 0.0 && p.share <= 1.0) {
                return Err((i, format!("share {} is not in (0, 1]", p.share)));
            }
            sum += p.share;
            cumulative.push(sum);
        }
        if (sum - 1.0).abs() > SHARE_TOLERANCE {
            return Err((paths.len() - 1, format!("the shares sum to {sum}, not 1")));
        }
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        Ok(IngressTraffic {
            controller: controller.to_string(),
            paths,
            cumulative,
            notes: Vec::new(),
        })
    }

    /// The path a uniform draw `u` in [0, 1) picks.
    pub fn pick(&self, u: f64) -> u16 {
        let i = self.cumulative.partition_point(|&c| c <= u);
        i.min(self.paths.len() - 1) as u16
    }
}

impl Sim<'_> {
    /// The Service that serves `req` (an index into the run's Services):
    /// its path's backend workload's implicit Service for a source through
    /// an ingress controller, else the source's target.
    pub(crate) fn target_of(&self, req: &Request) -> Option<usize> {
        let spec = &self.cfg.traffic[req.source as usize];
        match &spec.ingress {
            Some(ing) => ing.paths[req.path as usize]
                .backend
                .map(|w| self.services.implicit_of(w)),
            None => spec.service,
        }
    }

    /// The path of a new request of source `t` (0 for other sources).
    pub(crate) fn draw_path(&mut self, t: usize) -> u16 {
        match &self.cfg.traffic[t].ingress {
            Some(ing) => {
                let u: f64 = self.traffic[t].paths.random();
                ing.pick(u)
            }
            None => 0,
        }
    }

    /// Counts a sent request on its path.
    pub(crate) fn path_sent(&mut self, t: usize, path: u16) {
        if self.cfg.traffic[t].ingress.is_none() {
            return;
        }
        let now = self.engine.now();
        let pt = &mut self.traffic[t].path_totals[path as usize];
        pt.sent += 1;
        pt.in_flight += 1;
        self.for_windows(t, now, |w| w.paths[path as usize].sent += 1);
    }

    /// Counts an ended request on its path.
    pub(crate) fn path_outcome(&mut self, t: usize, path: u16, o: Outcome) {
        if self.cfg.traffic[t].ingress.is_none() {
            return;
        }
        let now = self.engine.now();
        let pt = &mut self.traffic[t].path_totals[path as usize];
        pt.count(o);
        pt.in_flight -= 1;
        if o == Outcome::NotFound {
            if let Some(c) = self.traffic[t].not_found {
                self.metrics.inc(c);
            }
        }
        self.for_windows(t, now, |w| w.paths[path as usize].count(o));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str, share: f64) -> RequestPath {
        RequestPath {
            host: "shop.example.com".into(),
            path: p.into(),
            share,
            backend: Some(0),
            answered_by: "web:80".into(),
            because: String::new(),
        }
    }

    #[test]
    fn draws_follow_the_shares() {
        let ing = IngressTraffic::new(
            "conformant",
            vec![path("/a", 0.25), path("/b", 0.5), path("/c", 0.25)],
        )
        .unwrap();
        assert_eq!(ing.pick(0.0), 0);
        assert_eq!(ing.pick(0.2499), 0);
        assert_eq!(ing.pick(0.25), 1);
        assert_eq!(ing.pick(0.7499), 1);
        assert_eq!(ing.pick(0.75), 2);
        assert_eq!(ing.pick(0.999_999_9), 2);
        let mut rng = RngStreams::new(7).stream("t");
        let mut n = [0u32; 3];
        for _ in 0..100_000 {
            n[ing.pick(rng.random()) as usize] += 1;
        }
        // Binomial sd at 100k draws: ~137 for 1/4, ~158 for 1/2.
        assert!((n[0] as i64 - 25_000).abs() < 700, "{n:?}");
        assert!((n[1] as i64 - 50_000).abs() < 800, "{n:?}");
    }

    #[test]
    fn shares_must_be_positive_and_sum_to_one() {
        let e = IngressTraffic::new("c", vec![path("/a", 0.5), path("/b", 0.4)]).unwrap_err();
        assert_eq!(e.0, 1);
        assert!(e.1.contains("sum to 0.9"), "{}", e.1);
        let e = IngressTraffic::new("c", vec![path("/a", -0.5), path("/b", 1.5)]).unwrap_err();
        assert_eq!(e.0, 0);
        assert!(IngressTraffic::new("c", vec![]).is_err());
        assert!(IngressTraffic::new("c", vec![path("/a", 1.0)]).is_ok());
    }
}
