//! The scenario envelope: what cluster scenarios ([`crate::spec`]) and
//! packet-level scenarios ([`crate::datapath`]) share around their model
//! sections.
//!
//! # Scope
//! Both formats wrap a model section in the same envelope: `name`,
//! `summary`, `story`, `variant` (the top level's label), `variants` that
//! replace whole sections of the top level, and `expect:` assertions with
//! `equals`/`above`/`below` thresholds and a `because`. This module holds
//! the logic of that envelope once; each format keeps its own serde structs
//! (every one with `deny_unknown_fields`; serde cannot flatten those) and
//! everything about its model.
//!
//! # What it provides
//! - [`Scenario`]: a validated scenario, generic over the variant type.
//! - [`VariantLabel`] and [`Threshold`]: the envelope's own YAML values.
//! - Errors: serde's messages as located [`InputError`]s with a hint
//!   (`did you mean ...?` for misspelt names, via [`sim_models::did_you_mean::suggest`]).
//! - For validators (crate-internal): the `Locate` trait, whose `err`
//!   turns a YAML path into `file:line:column` (see [`crate::locate`]), the
//!   variant merge (duplicate names, the path each section was written at),
//!   threshold checks against the metric's kind and expectation labels.
//!
//! # Limitations
//! The envelope does not decide which sections a variant may replace, what
//! a metric reads or how reports look: those stay with each format.

use crate::error::InputError;
use crate::locate::{Positions, Seg};
use crate::path;
use schemars::JsonSchema;
use serde::Deserialize;

/// A validated scenario: its label and its configurations.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario<V> {
    /// Short name.
    pub name: String,
    /// One line.
    pub summary: String,
    /// The story.
    pub story: String,
    /// The configurations, top level first.
    pub variants: Vec<V>,
}

/// Name and description of a configuration.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantLabel {
    /// Short name (`broken`, `fix-22`).
    pub name: String,
    /// What differs.
    #[serde(default)]
    pub description: String,
}

/// A threshold: a plain number, or a duration for time metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// The number (seconds for durations).
    pub value: f64,
    /// Written as a duration.
    pub is_duration: bool,
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(value) => Ok(Threshold {
                value,
                is_duration: false,
            }),
            Raw::S(s) => crate::units::parse_duration(&s)
                .map(|d| Threshold {
                    value: d.as_secs_f64(),
                    is_duration: true,
                })
                .map_err(serde::de::Error::custom),
        }
    }
}

impl JsonSchema for Threshold {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Threshold".into()
    }
    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let duration = g.subschema_for::<crate::units::Duration>();
        schemars::json_schema!({
            "description": "A number, or a duration for time figures (250ms, 2s)",
            "anyOf": [{"type": "number"}, duration]
        })
    }
}

/// serde's error as a located error with a hint.
pub(crate) fn serde_error(file: &str, e: &serde_yaml_ng::Error) -> InputError {
    let full = e.to_string();
    // serde_yaml_ng appends " at line L column C"; the position is reported apart.
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    let at = e.location().map(|l| (l.line(), l.column()));
    let hint = hint_for(&message);
    match at {
        Some(at) => InputError::at(file, at, message, hint),
        None => InputError::whole(file, message, hint),
    }
}

/// A hint for a serde message: the closest valid name for an unknown one.
fn hint_for(message: &str) -> String {
    // serde_yaml_ng prefixes the path (`workloads[0]: unknown field ...`).
    let bare = message.find("unknown ").map_or(message, |i| &message[i..]);
    let quoted: Vec<&str> = bare.split('`').skip(1).step_by(2).collect();
    if bare.starts_with("unknown field") || bare.starts_with("unknown variant") {
        if let Some((given, options)) = quoted.split_first() {
            return did_you_mean(given, options, "valid here");
        }
    }
    if message.starts_with("missing field") {
        return "add the field; the format is described in sim-scenarios/src/spec/ and the README"
            .into();
    }
    if message.contains("has no unit") {
        return "durations take a unit (ms, s, m, h) and rates a per-time (/s, /min)".into();
    }
    if message.contains("ConnectionsFile") {
        return "connections: per-request, keep-alive, client-side, {keep_alive: {max_idle: N, idle_timeout: D}} or {long_lived: N}".into();
    }
    if message.contains("negative") {
        return "counts are whole numbers, 0 or more".into();
    }
    "see the scenario format in the README".into()
}

use sim_models::did_you_mean::suggest;

/// A hint listing `options` under `what`, led by the closest one to
/// `given` if it looks like a typo of it:
/// ``did you mean `replicas`? valid here: name, replicas``.
pub(crate) fn did_you_mean(given: &str, options: &[&str], what: &str) -> String {
    match suggest(given, options) {
        Some(b) => format!("did you mean `{b}`? {what}: {}", options.join(", ")),
        None => format!("{what}: {}", options.join(", ")),
    }
}

/// A metric's name with its filters that were given:
/// `succeeded{flow=large,reason=timeout}`, or the bare name.
pub(crate) fn tagged(name: &str, tags: &[(&str, &Option<String>)]) -> String {
    let given: Vec<String> = tags
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    if given.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{}}}", given.join(","))
    }
}

/// Which configuration is being built: the top level, or an entry of
/// `variants:` (with its path, `variants[i]`), which replaces whole
/// sections of the top level.
pub(crate) struct Layer<'f, F> {
    entry: Option<(&'f F, Vec<Seg>)>,
}

impl<'f, F> Layer<'f, F> {
    /// Where the configuration is written (empty: the top level).
    pub(crate) fn path(&self) -> Vec<Seg> {
        self.entry.as_ref().map_or(Vec::new(), |(_, p)| p.clone())
    }

    /// A section with the path it was written at: the variant's own
    /// (`own`) if it has one, else the top level's (`base`).
    pub(crate) fn pick<X>(&self, own: impl FnOnce(&'f F) -> Option<X>, base: X) -> (X, Vec<Seg>) {
        match &self.entry {
            Some((v, p)) => match own(v) {
                Some(x) => (x, p.clone()),
                None => (base, Vec::new()),
            },
            None => (base, Vec::new()),
        }
    }

    /// A section that is not inherited (`expect:`): the variant's own, or
    /// `base` at the top level.
    pub(crate) fn own<X>(&self, own: impl FnOnce(&'f F) -> X, base: X) -> X {
        match &self.entry {
            Some((v, _)) => own(v),
            None => base,
        }
    }
}

/// What a scenario validator shares: errors located by YAML path, the
/// variant merge and threshold checks.
pub(crate) trait Locate {
    /// The file's name for errors and the positions of its nodes.
    fn source(&self) -> (&str, &Positions);

    /// An error at the node `path` (or its nearest ancestor written).
    fn err(&self, path: &[Seg], message: impl Into<String>, hint: impl Into<String>) -> InputError {
        let (file, pos) = self.source();
        InputError::at(file, pos.find(path), message, hint)
    }

    /// Builds the top level (labelled `top`, default `baseline`) and then
    /// each of `others` (labelled by `label`: name, description), in order,
    /// with `build(name, description, layer)`. Variant names must differ.
    fn variants<'f, F, T>(
        &self,
        top: Option<VariantLabel>,
        others: &'f [F],
        label: impl Fn(&F) -> (String, String),
        mut build: impl FnMut(String, String, Layer<'f, F>) -> Result<T, InputError>,
    ) -> Result<Vec<T>, InputError> {
        let top = top.unwrap_or(VariantLabel {
            name: "baseline".into(),
            description: String::new(),
        });
        let mut names = vec![top.name.clone()];
        let mut out = vec![build(top.name, top.description, Layer { entry: None })?];
        for (i, v) in others.iter().enumerate() {
            let vp = path!["variants", i].to_vec();
            let (name, description) = label(v);
            if names.contains(&name) {
                return Err(self.err(
                    &[&vp[..], &path!["name"]].concat(),
                    format!("variant name `{name}` is used twice"),
                    "give each variant its own name",
                ));
            }
            names.push(name.clone());
            out.push(build(
                name,
                description,
                Layer {
                    entry: Some((v, vp)),
                },
            )?);
        }
        Ok(out)
    }

    /// The comparisons of the expectation at `p` from its `equals`,
    /// `above` and `below` (in that order): a threshold is a duration
    /// exactly when the metric (`metric`) is a time (`timed`; `time_hint`
    /// shows how to write one); at least one is needed.
    fn comparisons(
        &self,
        p: &[Seg],
        [equals, above, below]: [Option<Threshold>; 3],
        metric: &str,
        timed: bool,
        time_hint: &str,
    ) -> Result<Vec<(&'static str, f64)>, InputError> {
        let mut checks = Vec::new();
        for (op, t, key) in [
            ("==", equals, "equals"),
            (">", above, "above"),
            ("<", below, "below"),
        ] {
            if let Some(t) = t {
                if t.is_duration != timed {
                    return Err(self.err(
                        &[p, &path![key]].concat(),
                        format!("`{key}` does not fit metric {metric}"),
                        if timed {
                            time_hint
                        } else {
                            "this metric is a plain number"
                        },
                    ));
                }
                checks.push((op, t.value));
            }
        }
        if checks.is_empty() {
            return Err(self.err(
                p,
                "expectation has no comparison",
                "add equals, above or below",
            ));
        }
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T(Positions);

    impl Locate for T {
        fn source(&self) -> (&str, &Positions) {
            ("t.yaml", &self.0)
        }
    }

    /// A variant entry: its name and whether it replaces `flows`.
    struct Entry(&'static str, Option<&'static str>);

    const TEXT: &str = "flows: base\nexpect:\n  - {metric: m, above: 1s}\n  - {metric: m}\nvariants:\n  - {name: a, flows: own}\n  - {name: b}\n  - {name: a}\n";

    /// Each configuration built: its name, its `flows` and where they are written.
    type Built = (String, &'static str, Vec<Seg>);

    fn build(others: &[Entry]) -> Result<Vec<Built>, InputError> {
        let t = T(Positions::of(TEXT));
        t.variants(
            None,
            others,
            |v| (v.0.to_string(), String::new()),
            |name, _, layer| {
                let (flows, at) = layer.pick(|v| v.1, "base");
                Ok((name, flows, at))
            },
        )
    }

    #[test]
    fn variants_replace_sections_and_need_their_own_names() {
        let built = build(&[Entry("a", Some("own")), Entry("b", None)]).unwrap();
        let expected = [
            ("baseline".to_string(), "base", vec![]),
            ("a".to_string(), "own", path!["variants", 0usize].to_vec()),
            ("b".to_string(), "base", vec![]),
        ];
        assert_eq!(built, expected);
        let e = build(&[Entry("a", None), Entry("b", None), Entry("a", None)]).unwrap_err();
        assert_eq!(e.to_string(), "t.yaml:8:6: error: variant name `a` is used twice\n  hint: give each variant its own name");
    }

    #[test]
    fn thresholds_fit_the_metric() {
        let t = T(Positions::of(TEXT));
        let second = Threshold {
            value: 1.0,
            is_duration: true,
        };
        let at = |i: usize| path!["expect", i].to_vec();
        let ok = t.comparisons(&at(0), [None, Some(second), None], "m", true, "h");
        assert_eq!(ok.unwrap(), vec![(">", 1.0)]);
        let e = t
            .comparisons(&at(0), [None, Some(second), None], "m", false, "h")
            .unwrap_err();
        assert_eq!(
            (e.at, e.hint.as_str()),
            (Some((3, 17)), "this metric is a plain number")
        );
        let e = t
            .comparisons(&at(1), [None; 3], "m", false, "h")
            .unwrap_err();
        assert_eq!(
            (e.at, e.message.as_str()),
            (Some((4, 5)), "expectation has no comparison")
        );
    }

    #[test]
    fn hints_name_the_closest_option() {
        assert_eq!(
            did_you_mean("replica", &["name", "replicas"], "valid here"),
            "did you mean `replicas`? valid here: name, replicas"
        );
        assert_eq!(
            did_you_mean("zzzzzzzz", &["name"], "valid here"),
            "valid here: name"
        );
    }

    #[test]
    fn labels_show_the_filters_given() {
        assert_eq!(
            tagged("dns_qps", &[("zone", &None), ("rcode", &None)]),
            "dns_qps"
        );
        assert_eq!(
            tagged(
                "failed",
                &[
                    ("flow", &Some("get".into())),
                    ("reason", &Some("reset".into()))
                ]
            ),
            "failed{flow=get,reason=reset}"
        );
    }
}
