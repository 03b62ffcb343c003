//! Label selectors (`metav1.LabelSelector`) and label sets: matching and the API
//! server's validation of them.

use std::collections::BTreeMap;
use std::fmt;

use super::names::{check_label_value, check_qualified_name};

/// A set of labels, ordered by key so every rendering is deterministic.
pub type Labels = BTreeMap<String, String>;

/// A selector operator. `Gt`/`Lt` exist only for node selectors and are rejected
/// for NetworkPolicy, as the API server does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// The key is present and its value is one of `values`.
    In,
    /// The key is absent, or present with a value not in `values`.
    NotIn,
    /// The key is present (any value).
    Exists,
    /// The key is absent.
    DoesNotExist,
}

impl Operator {
    /// Parses the API spelling (`In`, `NotIn`, `Exists`, `DoesNotExist`).
    pub fn parse(text: &str) -> Option<Operator> {
        match text {
            "In" => Some(Operator::In),
            "NotIn" => Some(Operator::NotIn),
            "Exists" => Some(Operator::Exists),
            "DoesNotExist" => Some(Operator::DoesNotExist),
            _ => None,
        }
    }
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values; non-empty for `In`/`NotIn`, empty for `Exists`/`DoesNotExist`.
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether a label set satisfies this requirement.
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }

    /// The API server's `ValidateLabelSelectorRequirement`: a qualified-name key,
    /// values present exactly for `In`/`NotIn`, each a valid label value.
    pub fn validate(&self) -> Result<(), String> {
        check_qualified_name(&self.key).map_err(|e| format!("key: {e}"))?;
        match self.operator {
            Operator::In | Operator::NotIn if self.values.is_empty() => {
                return Err(format!(
                    "values: must be specified when `operator` is 'In' or 'NotIn' (key `{}`)",
                    self.key
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !self.values.is_empty() => {
                return Err(format!(
                    "values: may not be specified when `operator` is 'Exists' or 'DoesNotExist' (key `{}`)",
                    self.key
                ))
            }
            _ => {}
        }
        for v in &self.values {
            check_label_value(v).map_err(|e| format!("values: {e}"))?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operator {
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A label selector: all `match_labels` pairs AND all `match_expressions`.
/// The empty selector matches every label set.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSelector {
    /// `matchLabels`: each key must be present with exactly this value.
    pub match_labels: Labels,
    /// `matchExpressions`.
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches everything (`{}`).
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// Whether this is the empty selector (matches everything).
    pub fn is_everything(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Whether a label set satisfies the selector.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    /// The API server's `ValidateLabelSelector`.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in &self.match_labels {
            check_qualified_name(k).map_err(|e| format!("matchLabels: key {e}"))?;
            check_label_value(v).map_err(|e| format!("matchLabels: {e}"))?;
        }
        for (i, r) in self.match_expressions.iter().enumerate() {
            r.validate()
                .map_err(|e| format!("matchExpressions[{i}].{e}"))?;
        }
        Ok(())
    }
}

impl fmt::Display for LabelSelector {
    /// kubectl's selector syntax in braces: `{app=web, tier in (a,b), !legacy}`;
    /// `{}` selects everything.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(self.match_expressions.iter().map(|r| r.to_string()))
            .collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

/// Renders a label set as `{k=v, ...}`.
pub fn format_labels(labels: &Labels) -> String {
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req(key: &str, operator: Operator, values: &[&str]) -> Requirement {
        Requirement {
            key: key.into(),
            operator,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn operators() {
        let l = labels(&[("pod", "a"), ("tier", "web")]);
        assert!(req("pod", Operator::In, &["a", "b"]).matches(&l));
        assert!(!req("pod", Operator::In, &["b"]).matches(&l));
        assert!(!req("absent", Operator::In, &["a"]).matches(&l));
        assert!(req("pod", Operator::NotIn, &["b"]).matches(&l));
        assert!(!req("pod", Operator::NotIn, &["a"]).matches(&l));
        // NotIn matches pods that do not carry the key at all.
        assert!(req("absent", Operator::NotIn, &["a"]).matches(&l));
        assert!(req("tier", Operator::Exists, &[]).matches(&l));
        assert!(!req("absent", Operator::Exists, &[]).matches(&l));
        assert!(req("absent", Operator::DoesNotExist, &[]).matches(&l));
        assert!(!req("tier", Operator::DoesNotExist, &[]).matches(&l));
    }

    #[test]
    fn selector_is_and_of_all_terms() {
        let s = LabelSelector {
            match_labels: labels(&[("pod", "a")]),
            match_expressions: vec![req("tier", Operator::Exists, &[])],
        };
        assert!(s.matches(&labels(&[("pod", "a"), ("tier", "x")])));
        assert!(!s.matches(&labels(&[("pod", "a")])));
        assert!(!s.matches(&labels(&[("tier", "x")])));
        assert!(LabelSelector::everything().matches(&Labels::new()));
        assert_eq!(s.to_string(), "{pod=a, tier}");
    }

    #[test]
    fn validation() {
        assert!(req("pod", Operator::In, &[]).validate().is_err());
        assert!(req("pod", Operator::Exists, &["a"]).validate().is_err());
        assert!(req("-pod", Operator::Exists, &[]).validate().is_err());
        assert!(req("pod", Operator::In, &["not valid"]).validate().is_err());
        assert!(req("pod", Operator::NotIn, &["a"]).validate().is_ok());
        assert_eq!(Operator::parse("Gt"), None);
    }
}
