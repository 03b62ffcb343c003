//! Labels and label selectors (`metadata.labels`, `matchLabels`,
//! `matchExpressions`), validated as the API server does.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::checked::{unchecked, Checked, FromRaw};
use super::errors::invalid;
use super::scalars::{convert, string, want_string, Scalar};
use crate::did_you_mean::suggest;
use crate::netpol::names::{check_label_value, check_qualified_name};
use crate::netpol::selector::{LabelSelector, Labels, Operator, Requirement};

/// A validated label map (`metadata.labels`, `matchLabels`).
pub(super) struct LabelMap(pub(super) Labels);

impl<'de> Deserialize<'de> for LabelMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LabelMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of label keys to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelMap, A::Error> {
                let mut labels = Labels::new();
                while let Some(LabelKey(k)) = map.next_key()? {
                    let LabelValue(v) = map.next_value()?;
                    if labels.insert(k.clone(), v).is_some() {
                        return Err(invalid(
                            format!("duplicate label key `{k}`"),
                            "each label key may appear once",
                        ));
                    }
                }
                Ok(LabelMap(labels))
            }
        }
        d.deserialize_map(V)
    }
}

struct LabelKey(String);

impl<'de> Deserialize<'de> for LabelKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let k = want_string(s)?;
            check_qualified_name(&k).map_err(|e| {
                (
                    format!("invalid label key {e}"),
                    "a label key is `name` or `prefix/name`: alphanumerics, '-', '_', '.', at most 63 characters in the name".to_string(),
                )
            })?;
            Ok(LabelKey(k))
        })
    }
}

struct LabelValue(String);

impl<'de> Deserialize<'de> for LabelValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = match s {
                // The API server stores label values as strings; YAML would read
                // `version: 2` as an integer, which kubectl rejects.
                Scalar::Int(v) => {
                    return Err((
                        format!("label value must be a string, found integer {v}"),
                        format!("quote it: \"{v}\""),
                    ))
                }
                s => want_string(s)?,
            };
            check_label_value(&v).map_err(|e| {
                (
                    e,
                    "a label value is empty or up to 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric".to_string(),
                )
            })?;
            Ok(LabelValue(v))
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSelector {
    #[serde(default)]
    match_labels: Option<LabelMap>,
    #[serde(default)]
    match_expressions: Option<Vec<Checked<Requirement>>>,
}

impl FromRaw for LabelSelector {
    type Raw = RawSelector;
    fn from_raw(raw: RawSelector) -> Result<Self, (String, String)> {
        Ok(LabelSelector {
            match_labels: raw.match_labels.map(|l| l.0).unwrap_or_default(),
            match_expressions: unchecked(raw.match_expressions),
        })
    }
}

struct OperatorField(Operator);

impl<'de> Deserialize<'de> for OperatorField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_string(s)?;
            Operator::parse(&v).map(OperatorField).ok_or_else(|| {
                let hint = match v.as_str() {
                    "Gt" | "Lt" => "`Gt` and `Lt` are only valid in node selectors, not in label selectors".to_string(),
                    _ => match suggest(&v, &["In", "NotIn", "Exists", "DoesNotExist"]) {
                        Some(c) => format!("did you mean `{c}`? (operators are case-sensitive)"),
                        None => "use In, NotIn, Exists or DoesNotExist".into(),
                    },
                };
                (
                    format!("unsupported value \"{v}\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""),
                    hint,
                )
            })
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRequirement {
    #[serde(deserialize_with = "string")]
    key: String,
    operator: OperatorField,
    #[serde(default)]
    values: Option<Vec<LabelValue>>,
}

impl FromRaw for Requirement {
    type Raw = RawRequirement;
    fn from_raw(raw: RawRequirement) -> Result<Self, (String, String)> {
        let r = Requirement {
            key: raw.key,
            operator: raw.operator.0,
            values: raw
                .values
                .unwrap_or_default()
                .into_iter()
                .map(|v| v.0)
                .collect(),
        };
        r.validate().map_err(|e| {
            let hint = match r.operator {
                Operator::In | Operator::NotIn => "give `values` a non-empty list",
                Operator::Exists | Operator::DoesNotExist => {
                    "remove `values`: this operator only tests the key"
                }
            };
            (e, hint.to_string())
        })?;
        Ok(r)
    }
}
