//! # Rule programming: when kube-proxy syncs, and for how long
//!
//! ## Scope
//! kube-proxy's sync loop (`async.BoundedFrequencyRunner` in
//! pkg/util/async): a sync runs when something changed, but no sooner than
//! `minSyncPeriod` after the previous sync started, and at least every
//! `syncPeriod` even if nothing changed. The sync function runs to
//! completion; a change that arrives while it runs is handled by the next
//! sync, which starts when this one ends (or at `minSyncPeriod` after its
//! start, whichever is later). A sync's result reaches the data path when it
//! ends (iptables-restore commits each table atomically), so an endpoint
//! change waits for the sync that follows it and for that sync's whole
//! duration.
//!
//! A sync lasts as long as writing its lines takes: `per_line x lines`
//! (iptables-restore parses and commits text linearly).
//!
//! Limitations: one representative node (every node's kube-proxy is taken to
//! sync at the same instants; real nodes drift apart); no xtables lock
//! contention (the EKS figure, 5.0 s for 1000 Services, docs/calibration.md,
//! row `kp-restore-eks`, is mostly a 5 s lock wait, not restore work); no
//! Go-side rule
//! computation time; no failed or retried restores.
//!
//! ## Parameters
//! `sync_period` 30 s and `min_sync_period` 1 s: kube-proxy's configuration
//! defaults (docs/calibration.md, row `kp-sync-periods`, H). `per_line`
//! 18.39 us: kubernetes#96018, 695,992 lines restored in 12.8 s
//! (docs/calibration.md, row `kp-restore-per-line`, M).
//!
//! ## Validation
//! Unit tests below check the runner's timing rules; a calibration test
//! (in-sample: `per_line` is derived from that very restore) checks the
//! restore time of the #96018 ruleset.

use sim_core::{SimDuration, SimTime};

/// Lines in the kubernetes#96018 restore (docs/calibration.md, row
/// `kp-restore-per-line`, M).
pub const ISSUE_96018_LINES: u64 = 695_992;
/// Time that restore took \[s\] (docs/calibration.md, row
/// `kp-restore-per-line`, M).
pub const ISSUE_96018_SECONDS: f64 = 12.8;

/// iptables-restore cost per line, 12.8 s / 695,992 lines = 18.39 us.
pub fn default_per_line() -> SimDuration {
    SimDuration::from_secs_f64(ISSUE_96018_SECONDS / ISSUE_96018_LINES as f64)
}

/// How long writing `lines` takes at `per_line` each.
pub fn restore_time(lines: u64, per_line: SimDuration) -> SimDuration {
    per_line.saturating_mul(lines)
}

/// The sync loop's clock (`BoundedFrequencyRunner` semantics).
#[derive(Clone, Debug)]
pub struct SyncRunner {
    min_interval: SimDuration,
    max_interval: SimDuration,
    last_start: SimTime,
    running_until: Option<SimTime>,
    pending: bool,
}

impl SyncRunner {
    /// A runner whose last sync started (and ended) at `now`.
    pub fn new(min_sync_period: SimDuration, sync_period: SimDuration, now: SimTime) -> Self {
        SyncRunner {
            min_interval: min_sync_period,
            max_interval: sync_period.max(SimDuration::from_nanos(1)),
            last_start: now,
            running_until: None,
            pending: false,
        }
    }

    /// Something changed: a sync is wanted.
    pub fn request(&mut self) {
        self.pending = true;
    }

    /// Whether a change waits for a sync.
    pub fn pending(&self) -> bool {
        self.pending
    }

    /// When the running sync ends, if one runs.
    pub fn running_until(&self) -> Option<SimTime> {
        self.running_until
    }

    /// When the next sync starts: after the running one, no sooner than
    /// `min_sync_period` after the last start if a change waits, else
    /// `sync_period` after the last start.
    pub fn next_start(&self) -> SimTime {
        let after_running = self.running_until.unwrap_or(SimTime::ZERO);
        let due = if self.pending {
            self.last_start + self.min_interval
        } else {
            self.last_start + self.max_interval
        };
        due.max(after_running)
    }

    /// Whether the sync starting now is the periodic one (nothing changed
    /// and `sync_period` has passed).
    pub fn is_periodic(&self, now: SimTime) -> bool {
        now >= self.last_start + self.max_interval
    }

    /// A sync starts at `now` and lasts `duration`; the changes waiting so
    /// far are in it.
    pub fn start(&mut self, now: SimTime, duration: SimDuration) {
        self.last_start = now;
        self.running_until = Some(now + duration);
        self.pending = false;
    }

    /// The running sync ended.
    pub fn finish(&mut self) {
        self.running_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SimTime {
        SimTime::ZERO + SimDuration::from_millis(ms)
    }

    fn runner() -> SyncRunner {
        SyncRunner::new(SimDuration::from_secs(1), SimDuration::from_secs(30), t(0))
    }

    #[test]
    fn a_change_waits_for_min_sync_period_after_the_last_start() {
        let mut r = runner();
        assert_eq!(r.next_start(), t(30_000), "nothing changed: periodic");
        r.request();
        assert_eq!(r.next_start(), t(1_000));
    }

    #[test]
    fn a_change_during_a_sync_waits_for_it_to_end() {
        let mut r = runner();
        r.start(t(5_000), SimDuration::from_secs(12));
        r.request();
        assert_eq!(r.next_start(), t(17_000));
        r.finish();
        assert_eq!(r.next_start(), t(6_000), "already due once the sync ended");
    }

    #[test]
    fn the_periodic_sync_comes_sync_period_after_the_last_start() {
        let mut r = runner();
        r.start(t(2_000), SimDuration::from_millis(100));
        r.finish();
        assert_eq!(r.next_start(), t(32_000));
        assert!(r.is_periodic(t(32_000)) && !r.is_periodic(t(31_999)));
    }

    /// Calibration, not validation: `per_line` is 12.8 s / 695,992 lines, so
    /// this checks the derivation (docs/calibration.md, row
    /// `kp-restore-per-line`).
    #[test]
    fn calibration_96018_ruleset_restore_time() {
        let d = restore_time(ISSUE_96018_LINES, default_per_line());
        assert!((d.as_secs_f64() - 12.8).abs() < 0.01, "{d}");
    }
}
