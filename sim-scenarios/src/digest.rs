//! Run digests: everything the report, the JSON summary, the sweep table and
//! its charts read from one run, small and serialisable, so that the parts
//! of a sharded sweep can be joined without the runs themselves.
//!
//! Scope: [`Header`] is what the report reads from the scenario (its name,
//! summary, duration and variants); [`RunDigest`] is what it reads from one
//! run (the headline figures, the checked expectations, the request totals,
//! the aggregated events and the number of events fired). The report is
//! built from these alone, sharded or not, so a merged report is the same
//! function of the same values as an unsharded one.
//!
//! Parameters: none (no model figures).
//!
//! What it emits: JSON (one digest per run of a shard, and the header in a
//! shard's manifest). Floating-point values are written as text in Rust's
//! shortest round-trip form (`0.1`, `1e-7`, `NaN`), so that reading a
//! digest back gives the very same bits and the merged output the very same
//! bytes.
//!
//! Validation: `tests::a_digest_reads_back_bit_for_bit`, and the CLI tests
//! that merge shards into output byte-identical to one unsharded run.

use crate::figures::{Missing, Unit};
use crate::report::{self, Figure};
use crate::run::{Check, SeedRun};
use crate::spec::Scenario;
use serde::{Deserialize, Serialize};

/// What the report reads from the scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The scenario's name.
    pub name: String,
    /// Its one-line summary.
    pub summary: String,
    /// The first variant's simulated duration, as the report shows it.
    pub duration: String,
    /// Every variant, in order.
    pub variants: Vec<VariantName>,
}

/// A variant's name and description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantName {
    /// Its name (a report column).
    pub name: String,
    /// What it is.
    pub description: String,
}

impl Header {
    /// The header of `scenario`.
    pub fn of(scenario: &Scenario) -> Header {
        Header {
            name: scenario.name.clone(),
            summary: scenario.summary.clone(),
            duration: scenario.variants[0].config.duration.to_string(),
            variants: scenario
                .variants
                .iter()
                .map(|v| VariantName {
                    name: v.name.clone(),
                    description: v.description.clone(),
                })
                .collect(),
        }
    }
}

/// What the report reads from one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunDigest {
    /// Index into the header's variants.
    pub variant: usize,
    /// The seed.
    pub seed: u64,
    /// The headline figures, in report order.
    pub figures: Vec<Figure>,
    /// The variant's expectations, checked.
    pub checks: Vec<Check>,
    /// Per traffic source, the request totals.
    pub requests: Vec<Requests>,
    /// The aggregated Kubernetes events, as the report shows them.
    pub events: Vec<Event>,
    /// Events the engine fired.
    pub events_fired: u64,
}

/// Request totals of one traffic source (the summary's `requests` entries;
/// fields in the order the summary has always written them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requests {
    pub service: String,
    pub sent: u64,
    pub answered: u64,
    pub timed_out: u64,
    pub answered_after_client_left: u64,
    pub refused: u64,
    pub rejected: u64,
    pub in_flight: u64,
}

/// One aggregated event, its times as the report shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub first: String,
    pub last: String,
    pub count: u64,
    pub kind: String,
    pub reason: String,
    pub object: String,
    pub message: String,
}

impl RunDigest {
    /// The digest of `run`, a run of `scenario`.
    pub fn of(scenario: &Scenario, run: &SeedRun) -> Result<RunDigest, Missing> {
        let out = &run.output;
        let traffic = &scenario.variants[run.variant].config.traffic;
        Ok(RunDigest {
            variant: run.variant,
            seed: run.seed,
            figures: report::figures(scenario, run)?,
            checks: run.checks.clone(),
            requests: out
                .requests
                .iter()
                .zip(traffic)
                .map(|(t, spec)| Requests {
                    service: spec.name.clone(),
                    sent: t.sent,
                    answered: t.answered,
                    timed_out: t.timed_out,
                    answered_after_client_left: t.wasted,
                    refused: t.refused,
                    rejected: t.rejected,
                    in_flight: t.in_flight,
                })
                .collect(),
            events: out
                .events
                .iter()
                .map(|e| Event {
                    first: e.first.since_start().to_string(),
                    last: e.last.since_start().to_string(),
                    count: e.count,
                    kind: e.kind.to_string(),
                    reason: e.reason.to_string(),
                    object: e.example_object.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            events_fired: out.events_fired,
        })
    }

    /// The digests of `runs`, in their order.
    pub fn all(scenario: &Scenario, runs: &[SeedRun]) -> Result<Vec<RunDigest>, Missing> {
        runs.iter().map(|r| RunDigest::of(scenario, r)).collect()
    }
}

/// `Unit` as text in digests.
pub(crate) mod unit {
    use super::Unit;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(u: &Unit, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(u.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Unit, D::Error> {
        let text = String::deserialize(d)?;
        Unit::from_name(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("`{text}` is not a unit")))
    }
}

/// An `f64` as text in Rust's shortest round-trip form: read back, the
/// same bits (JSON numbers lose NaN and, read back, may lose the last bit).
pub(crate) mod exact {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{x:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a number")))
    }

    /// `Option<f64>` the same way (`null` for none).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match x {
                Some(x) => super::serialize(x, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => text
                    .parse()
                    .map(Some)
                    .map_err(|_| serde::de::Error::custom(format!("`{text}` is not a number"))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_reads_back_bit_for_bit() {
        let awkward = [0.1 + 0.2, 1e-300, 5e-324, f64::NAN, -0.0, 1.0 / 3.0, 1e21];
        let d = RunDigest {
            variant: 1,
            seed: u64::MAX,
            figures: awkward
                .iter()
                .enumerate()
                .map(|(i, &value)| Figure {
                    name: format!("figure {i}"),
                    value,
                    unit: [Unit::Count, Unit::Ratio, Unit::Seconds][i % 3],
                })
                .collect(),
            checks: vec![
                Check::new("a", Some(0.1 + 0.2), &[(">", 0.3)], |x| x.to_string()),
                Check::new("b", None, &[("<", 1.0)], |x| x.to_string()),
            ],
            requests: Vec::new(),
            events: Vec::new(),
            events_fired: 12,
        };
        let text = serde_json::to_string(&d).unwrap();
        let back: RunDigest = serde_json::from_str(&text).unwrap();
        let bits =
            |d: &RunDigest| -> Vec<u64> { d.figures.iter().map(|f| f.value.to_bits()).collect() };
        assert_eq!(bits(&back), bits(&d));
        assert_eq!(back.checks, d.checks);
        assert_eq!(back.seed, u64::MAX);
        let bad = text.replacen("\"count\"", "\"pints\"", 1);
        assert!(serde_json::from_str::<RunDigest>(&bad).is_err());
    }
}
