//! Envoy's outlier detection by consecutive 5xx.
//!
//! As Envoy's `source/common/upstream/outlier_detection_impl.cc` does it
//! (docs/calibration.md, row `envoy-outlier-detection`):
//! - each response counts per host: a 5xx (or a locally originated failure
//!   mapped to one: connect failure 503, timeout 504) adds one to the
//!   host's consecutive-5xx count, anything else resets it; when the count
//!   reaches `consecutive_5xx` (5) the host is ejected **inline**;
//! - an ejection is refused when it would take the ejected share above
//!   `max_ejection_percent` (10%): `100 x (ejected + 1) / hosts <= max`
//!   (so with fewer than 10 hosts nothing is ejected unless
//!   `always_eject_one_host`);
//! - an ejected host stays out for `base_ejection_time` (30 s) times its
//!   back-off multiplier, which grows by one per ejection while
//!   `multiplier x base < max_ejection_time + base` (max 300 s), and comes
//!   back at the first interval sweep (every 10 s) after that time; at
//!   each sweep a host in service has its multiplier decremented;
//! - returning resets the host's counters.
//!
//! Jitter on the ejection time (default 0) and the success-rate detectors
//! are not modelled.

use sim_core::{SimDuration, SimTime};

/// The detector's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutlierSpec {
    /// Consecutive 5xx that eject a host.
    pub consecutive_5xx: u32,
    /// Time between sweeps.
    pub interval: SimDuration,
    /// Ejection time per multiplier step.
    pub base_ejection_time: SimDuration,
    /// The longest ejection.
    pub max_ejection_time: SimDuration,
    /// The largest share of hosts ejected at once \[%\].
    pub max_ejection_percent: u32,
    /// Eject one host even when the percentage forbids it.
    pub always_eject_one_host: bool,
}

impl OutlierSpec {
    /// Envoy's defaults: 5, 10 s, 30 s, 300 s, 10%, no.
    pub fn envoy_default() -> Self {
        OutlierSpec {
            consecutive_5xx: 5,
            interval: SimDuration::from_secs(10),
            base_ejection_time: SimDuration::from_secs(30),
            max_ejection_time: SimDuration::from_secs(300),
            max_ejection_percent: 10,
            always_eject_one_host: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct HostState {
    consecutive_5xx: u32,
    ejected_at: Option<SimTime>,
    backoff: u32,
}

/// What a response did to its host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changed.
    None,
    /// The host was ejected now.
    Ejected,
    /// The host is an outlier but the ejection cap kept it in
    /// (`ejections_overflow`).
    Overflow,
}

/// Outlier detection over one upstream cluster's hosts.
#[derive(Clone, Debug)]
pub struct OutlierDetector {
    spec: OutlierSpec,
    hosts: Vec<HostState>,
    ejected: u32,
    /// Ejections done and refused by the cap.
    pub ejections: u64,
    /// Ejections the cap refused.
    pub overflows: u64,
}

impl OutlierDetector {
    /// A detector over `hosts` hosts.
    pub fn new(spec: OutlierSpec, hosts: usize) -> Self {
        OutlierDetector {
            spec,
            hosts: vec![HostState::default(); hosts],
            ejected: 0,
            ejections: 0,
            overflows: 0,
        }
    }

    /// Hosts up to `n` in all (the new ones in service): endpoints that
    /// appeared after the detector was built.
    pub fn grow_to(&mut self, n: usize) {
        if n > self.hosts.len() {
            self.hosts.resize(n, HostState::default());
        }
    }

    /// Whether `host` is ejected (not used for balancing).
    pub fn is_ejected(&self, host: usize) -> bool {
        self.hosts[host].ejected_at.is_some()
    }

    /// Hosts ejected now.
    pub fn ejected_count(&self) -> u32 {
        self.ejected
    }

    /// A response from `host` at `now`: `server_error` is a 5xx or a
    /// failure mapped to one.
    pub fn record(&mut self, host: usize, server_error: bool, now: SimTime) -> Verdict {
        let h = &mut self.hosts[host];
        if !server_error {
            h.consecutive_5xx = 0;
            return Verdict::None;
        }
        h.consecutive_5xx += 1;
        if h.consecutive_5xx != self.spec.consecutive_5xx || h.ejected_at.is_some() {
            return Verdict::None;
        }
        // Counters reset once the outlier is handled, ejected or not.
        h.consecutive_5xx = 0;
        let share = 100.0 * f64::from(self.ejected + 1) / self.hosts.len() as f64;
        let allowed = share <= f64::from(self.spec.max_ejection_percent)
            || (self.spec.always_eject_one_host && self.ejected == 0);
        if !allowed {
            self.overflows += 1;
            return Verdict::Overflow;
        }
        let h = &mut self.hosts[host];
        h.ejected_at = Some(now);
        let (base, max) = (self.spec.base_ejection_time, self.spec.max_ejection_time);
        if base.saturating_mul(u64::from(h.backoff)) < max + base {
            h.backoff += 1;
        }
        self.ejected += 1;
        self.ejections += 1;
        Verdict::Ejected
    }

    /// How long `host`'s current ejection lasts (zero when in service).
    pub fn ejection_time(&self, host: usize) -> SimDuration {
        let h = &self.hosts[host];
        if h.ejected_at.is_none() {
            return SimDuration::ZERO;
        }
        self.spec
            .base_ejection_time
            .saturating_mul(u64::from(h.backoff))
            .min(self.spec.max_ejection_time)
    }

    /// The interval sweep at `now`: ejected hosts whose time is up return
    /// (listed in `returned`); hosts in service have their multiplier
    /// decremented. O(hosts) once per interval.
    pub fn sweep(&mut self, now: SimTime, returned: &mut Vec<usize>) {
        returned.clear();
        for host in 0..self.hosts.len() {
            let time = self.ejection_time(host);
            let h = &mut self.hosts[host];
            match h.ejected_at {
                Some(at) if now - at >= time => {
                    h.ejected_at = None;
                    h.consecutive_5xx = 0;
                    self.ejected -= 1;
                    returned.push(host);
                }
                Some(_) => {}
                None => h.backoff = h.backoff.saturating_sub(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_secs(s)
    }

    fn fail_n(d: &mut OutlierDetector, host: usize, n: u32, now: SimTime) -> Verdict {
        let mut last = Verdict::None;
        for _ in 0..n {
            last = d.record(host, true, now);
        }
        last
    }

    #[test]
    fn five_in_a_row_eject_and_a_success_resets() {
        let mut d = OutlierDetector::new(OutlierSpec::envoy_default(), 10);
        assert_eq!(fail_n(&mut d, 0, 4, at(0)), Verdict::None);
        assert_eq!(d.record(0, false, at(0)), Verdict::None);
        assert_eq!(fail_n(&mut d, 0, 4, at(0)), Verdict::None);
        assert!(!d.is_ejected(0));
        assert_eq!(d.record(0, true, at(1)), Verdict::Ejected);
        assert!(d.is_ejected(0));
        assert_eq!(d.ejection_time(0), SimDuration::from_secs(30));
    }

    #[test]
    fn the_ten_percent_cap() {
        // 10 hosts: one may be ejected (10%), a second is an overflow.
        let mut d = OutlierDetector::new(OutlierSpec::envoy_default(), 10);
        assert_eq!(fail_n(&mut d, 0, 5, at(0)), Verdict::Ejected);
        assert_eq!(fail_n(&mut d, 1, 5, at(0)), Verdict::Overflow);
        assert_eq!((d.ejections, d.overflows, d.ejected_count()), (1, 1, 1));
        // 9 hosts: 1/9 = 11% > 10%: nothing is ejected by default.
        let mut d = OutlierDetector::new(OutlierSpec::envoy_default(), 9);
        assert_eq!(fail_n(&mut d, 0, 5, at(0)), Verdict::Overflow);
        let mut spec = OutlierSpec::envoy_default();
        spec.always_eject_one_host = true;
        let mut d = OutlierDetector::new(spec, 3);
        assert_eq!(fail_n(&mut d, 0, 5, at(0)), Verdict::Ejected);
        assert_eq!(fail_n(&mut d, 1, 5, at(0)), Verdict::Overflow);
    }

    #[test]
    fn ejection_time_grows_and_returns_at_the_sweeps() {
        let spec = OutlierSpec::envoy_default();
        let mut d = OutlierDetector::new(spec, 10);
        let mut back = Vec::new();
        // Ejected at 3 s for 30 s: still out at the 30 s sweep, back at 40 s.
        fail_n(&mut d, 0, 5, at(3));
        d.sweep(at(30), &mut back);
        assert!(back.is_empty() && d.is_ejected(0));
        d.sweep(at(40), &mut back);
        assert_eq!(back, vec![0]);
        assert!(!d.is_ejected(0));
        // Ejected again at once: 60 s, then 90 s ...
        fail_n(&mut d, 0, 5, at(41));
        assert_eq!(d.ejection_time(0), SimDuration::from_secs(60));
        d.sweep(at(100), &mut back);
        assert!(back.is_empty());
        d.sweep(at(110), &mut back);
        assert_eq!(back, vec![0]);
        // Capped at max_ejection_time (300 s).
        for k in 0..20u64 {
            let t = 1_000 + k * 1_000;
            fail_n(&mut d, 0, 5, at(t));
            d.sweep(at(t + 500), &mut back);
        }
        fail_n(&mut d, 0, 5, at(50_000));
        assert_eq!(d.ejection_time(0), SimDuration::from_secs(300));
        // In service, each sweep lowers the multiplier by one.
        d.sweep(at(50_300), &mut back);
        assert_eq!(back, vec![0]);
        for k in 1..=20u64 {
            d.sweep(at(50_300 + 10 * k), &mut back);
        }
        fail_n(&mut d, 0, 5, at(60_000));
        assert_eq!(d.ejection_time(0), SimDuration::from_secs(30));
    }
}
