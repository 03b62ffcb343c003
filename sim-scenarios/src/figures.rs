//! Figures and how people read them.
//!
//! # Scope
//! How a figure's value is shown: [`num`] for plain numbers and [`Unit`]
//! for counts, shares and durations. Reports, stories and expectation
//! checks of both scenario levels show values through here.
//!
//! # Parameters
//! None.
//!
//! # What it emits
//! Text: whole numbers plainly, others to 4 significant digits; shares as
//! percentages to one decimal; durations as `sim_core` prints them.
//!
//! # Validation
//! Through the reports' golden tests.

use sim_core::SimDuration;

/// How a figure is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A count.
    Count,
    /// A fraction shown as a percentage.
    Ratio,
    /// Seconds shown as a duration.
    Seconds,
}

/// A number as people read it: whole numbers plainly, others to 4 significant digits.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let digits = x.abs().log10().floor() as i32 + 1;
        let decimals = (4 - digits).clamp(0, 6) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

impl Unit {
    /// `value` as people read it in this unit.
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Count => num(value),
            Unit::Ratio => format!("{:.1}%", value * 100.0),
            // Histograms store 0 as 1 ns.
            Unit::Seconds if value < 1e-6 => "0s".to_string(),
            Unit::Seconds => SimDuration::from_secs_f64(value).to_string(),
        }
    }
}
