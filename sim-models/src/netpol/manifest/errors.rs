//! Error plumbing: validation errors are raised inside serde visitors so that
//! serde_yaml_ng stamps them with the position of the value being read; the
//! hints for serde's own messages.

use crate::did_you_mean::suggest;
use std::fmt;

use serde::de;

use super::ManifestError;

const HINT_SEP: &str = "\n  hint: ";

pub(in crate::netpol) fn invalid<E: de::Error>(
    message: impl fmt::Display,
    hint: impl fmt::Display,
) -> E {
    E::custom(format!("{message}{HINT_SEP}{hint}"))
}

pub(in crate::netpol) fn yaml_error(file: &str, err: &serde_yaml_ng::Error) -> ManifestError {
    let (line, column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let mut text = err.to_string();
    if line > 0 {
        text = text.replace(&format!(" at line {line} column {column}"), "");
    }
    let (message, hint) = match text.split_once(HINT_SEP) {
        Some((m, h)) => (m.to_string(), h.to_string()),
        None => {
            let hint = default_hint(&text);
            (text, hint)
        }
    };
    ManifestError {
        file: file.to_string(),
        line,
        column,
        message,
        hint,
    }
}

fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn default_hint(text: &str) -> String {
    if text.contains("unknown field") {
        let words = backticked(text);
        let (field, expected) = match words.split_first() {
            Some((f, rest)) => (*f, rest.to_vec()),
            None => ("", Vec::new()),
        };
        if field == "to" && expected.contains(&"from") {
            return "ingress rules list their peers under `from`; `to` belongs in egress rules"
                .into();
        }
        if field == "from" && expected.contains(&"to") {
            return "egress rules list their peers under `to`; `from` belongs in ingress rules"
                .into();
        }
        let accepted = expected
            .iter()
            .map(|e| format!("`{e}`"))
            .collect::<Vec<_>>()
            .join(", ");
        return match suggest(field, &expected) {
            Some(c) => format!("did you mean `{c}`? (fields accepted here: {accepted})"),
            None if expected.is_empty() => "remove this field".into(),
            None => format!("fields accepted here: {accepted}"),
        };
    }
    if text.contains("missing field") {
        let field = backticked(text).first().copied().unwrap_or("");
        return format!("add the required field `{field}`");
    }
    if text.contains("invalid type") || text.contains("invalid value") {
        return "check the value's type, and the indentation of the lines above it".into();
    }
    if text.contains("recursion limit") || text.contains("repetition limit") {
        return "the document nests or repeats too deeply to be a Kubernetes manifest".into();
    }
    "check the YAML syntax here: indentation, `key: value` pairs, and quoting".into()
}
