//! Simulated time: integer nanoseconds, never floats.
//!
//! [`SimTime`] is an instant measured from the start of a run; [`SimDuration`]
//! is a span. Both are `u64` nanoseconds (enough for 584 years), so ordering
//! and arithmetic are exact and identical on every machine. Floats appear only
//! in statistics and in the conversions named `*_f64`.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

/// An instant of simulated time [ns since the start of the run].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(u64);

/// A span of simulated time \[ns\].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimDuration(u64);

const NS_PER_US: u64 = 1_000;
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// The latest representable instant; used as "never".
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// The instant `ns` nanoseconds after the start.
    pub const fn from_nanos(ns: u64) -> Self {
        SimTime(ns)
    }
    /// Nanoseconds since the start.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Seconds since the start, as a float (for reports only).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }
    /// The span from the start to this instant.
    pub const fn since_start(self) -> SimDuration {
        SimDuration(self.0)
    }
    /// `self - earlier`, or zero if `earlier` is later.
    pub const fn saturating_since(self, earlier: SimTime) -> SimDuration {
        SimDuration(self.0.saturating_sub(earlier.0))
    }
}

impl SimDuration {
    /// No time at all.
    pub const ZERO: SimDuration = SimDuration(0);
    /// The longest representable span.
    pub const MAX: SimDuration = SimDuration(u64::MAX);

    /// A span of `ns` nanoseconds.
    pub const fn from_nanos(ns: u64) -> Self {
        SimDuration(ns)
    }
    /// A span of `us` microseconds (saturating).
    pub const fn from_micros(us: u64) -> Self {
        SimDuration(us.saturating_mul(NS_PER_US))
    }
    /// A span of `ms` milliseconds (saturating).
    pub const fn from_millis(ms: u64) -> Self {
        SimDuration(ms.saturating_mul(NS_PER_MS))
    }
    /// A span of `s` seconds (saturating).
    pub const fn from_secs(s: u64) -> Self {
        SimDuration(s.saturating_mul(NS_PER_S))
    }
    /// A span of `s` seconds given as a float, rounded to the nearest
    /// nanosecond; negative and NaN inputs give zero, huge ones saturate.
    ///
    /// Rounds as `f64::round` does (half away from zero) without calling
    /// it: on the default x86-64 target `round` is a library call, and
    /// this conversion runs for every drawn service time. `x - trunc(x)`
    /// is exact for every non-negative `x` below 2^64, so the result is
    /// the same bit for bit.
    pub fn from_secs_f64(s: f64) -> Self {
        let x = s * NS_PER_S as f64;
        if x.is_nan() || x <= 0.0 {
            SimDuration(0)
        } else if x >= u64::MAX as f64 {
            SimDuration(u64::MAX)
        } else {
            let t = x as u64;
            SimDuration(if x - t as f64 >= 0.5 { t + 1 } else { t })
        }
    }
    /// Nanoseconds in this span.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    /// Seconds in this span, as a float (for reports only).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NS_PER_S as f64
    }
    /// Milliseconds in this span, as a float (for reports only).
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / NS_PER_MS as f64
    }
    /// `self * k`, saturating at [`SimDuration::MAX`].
    pub const fn saturating_mul(self, k: u64) -> Self {
        SimDuration(self.0.saturating_mul(k))
    }
}

impl Add<SimDuration> for SimTime {
    type Output = SimTime;
    /// Saturates at [`SimTime::MAX`] rather than wrapping.
    fn add(self, d: SimDuration) -> SimTime {
        SimTime(self.0.saturating_add(d.0))
    }
}

impl AddAssign<SimDuration> for SimTime {
    fn add_assign(&mut self, d: SimDuration) {
        *self = *self + d;
    }
}

impl Sub<SimTime> for SimTime {
    type Output = SimDuration;
    /// Saturates at zero when `rhs` is later than `self`.
    fn sub(self, rhs: SimTime) -> SimDuration {
        self.saturating_since(rhs)
    }
}

impl Add for SimDuration {
    type Output = SimDuration;
    fn add(self, d: SimDuration) -> SimDuration {
        SimDuration(self.0.saturating_add(d.0))
    }
}

/// Writes a span the way people write one: `0s`, `250ms`, `1.5s`, `10m`,
/// `1h30m`, `3h`. Sub-second parts are shown only for spans under a minute.
fn write_span(f: &mut fmt::Formatter<'_>, ns: u64) -> fmt::Result {
    if ns == 0 {
        return write!(f, "0s");
    }
    if ns < NS_PER_US {
        return write!(f, "{ns}ns");
    }
    if ns < NS_PER_MS {
        return write!(f, "{}us", trim(ns as f64 / NS_PER_US as f64));
    }
    if ns < NS_PER_S {
        return write!(f, "{}ms", trim(ns as f64 / NS_PER_MS as f64));
    }
    if ns < 60 * NS_PER_S {
        return write!(f, "{}s", trim(ns as f64 / NS_PER_S as f64));
    }
    let total_s = ns / NS_PER_S;
    let (h, m, s) = (total_s / 3600, (total_s / 60) % 60, total_s % 60);
    if h > 0 {
        write!(f, "{h}h")?;
    }
    if m > 0 {
        write!(f, "{m}m")?;
    }
    if s > 0 {
        write!(f, "{s}s")?;
    }
    Ok(())
}

/// Three significant digits, trailing zeros removed (`868`, `12.3`, `1.23`).
fn trim(x: f64) -> String {
    let decimals = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

impl fmt::Display for SimDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_span(f, self.0)
    }
}

impl fmt::Display for SimTime {
    /// As a clock offset from the start: `T+0s`, `T+10m`, `T+3h10m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T+")?;
        write_span(f, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `from_secs_f64` as it was written with `f64::round`.
    fn by_round(s: f64) -> SimDuration {
        let ns = (s * NS_PER_S as f64).round();
        if ns.is_nan() || ns <= 0.0 {
            SimDuration(0)
        } else if ns >= u64::MAX as f64 {
            SimDuration(u64::MAX)
        } else {
            SimDuration(ns as u64)
        }
    }

    proptest! {
        #[test]
        fn from_secs_f64_rounds_as_f64_round_does(bits in any::<u64>(), small in 0.0..1e-6f64, mid in 0.0..1e4f64) {
            let s = f64::from_bits(bits);
            prop_assert_eq!(SimDuration::from_secs_f64(s), by_round(s));
            prop_assert_eq!(SimDuration::from_secs_f64(small), by_round(small));
            prop_assert_eq!(SimDuration::from_secs_f64(mid), by_round(mid));
        }
    }

    #[test]
    fn from_secs_f64_rounds_halves_away_from_zero() {
        for s in [0.5e-9, 1.5e-9, 2.5e-9, 4.5e6, 1.8e10, f64::NAN] {
            assert_eq!(SimDuration::from_secs_f64(s), by_round(s), "{s}");
        }
        let near_half = f64::from_bits(0.5f64.to_bits() - 1);
        assert_eq!(
            SimDuration::from_secs_f64(near_half / 1e9),
            by_round(near_half / 1e9)
        );
    }

    #[test]
    fn display_reads_like_people_write_durations() {
        let cases = [
            (SimDuration::ZERO, "0s"),
            (SimDuration::from_millis(250), "250ms"),
            (SimDuration::from_millis(1500), "1.5s"),
            (SimDuration::from_secs(600), "10m"),
            (SimDuration::from_secs(5400), "1h30m"),
            (SimDuration::from_secs(3 * 3600), "3h"),
            (SimDuration::from_micros(30), "30us"),
        ];
        for (d, want) in cases {
            assert_eq!(d.to_string(), want);
        }
        assert_eq!(
            (SimTime::ZERO + SimDuration::from_secs(610)).to_string(),
            "T+10m10s"
        );
    }

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        assert_eq!(SimTime::MAX + SimDuration::from_secs(1), SimTime::MAX);
        assert_eq!(SimTime::ZERO - SimTime::from_nanos(5), SimDuration::ZERO);
        assert_eq!(SimDuration::from_secs_f64(-1.0), SimDuration::ZERO);
        assert_eq!(
            SimDuration::from_secs_f64(0.5),
            SimDuration::from_millis(500)
        );
    }
}
