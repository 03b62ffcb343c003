//! Expectations (`knsim netpol DIR --expect FILE`): a team's policy
//! intentions, kept beside its manifests and checked like a test.
//!
//! The file is a YAML list of flows in the names of the table:
//!
//! ```yaml
//! - {from: prod/frontend-0, to: prod/db-0, protocol: TCP, port: 5432, allowed: false}
//! - {from: prod/db-0, to: peer:internet, port: 443, allowed: false}
//! - {from: node:worker-1, to: prod/db-0, port: 5432, allowed: true}
//! ```
//!
//! `from` and `to` are `ns/pod`, `node:NAME` or `peer:NAME` (a `--peer`);
//! `protocol` is `TCP` (the default), `UDP` or `SCTP`; any port may be named,
//! probed by the table or not. Errors (syntax, an unknown field or name, a bad
//! value) are `file:line:column: error: ...` plus a `hint:` line.

use std::fmt;
use std::fmt::Write as _;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::Reachability;
use crate::did_you_mean::suggest;
use crate::netpol::manifest::{
    convert, invalid, protocol_field, want_int, want_string, yaml_error, ManifestError,
};
use crate::netpol::names::check_port_number;
use crate::protocol::Protocol;

/// One intention: the connection and whether it should be allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// The source endpoint's name.
    pub from: String,
    /// The destination endpoint's name.
    pub to: String,
    /// The protocol (default TCP).
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
    /// Whether the connection should be allowed.
    pub allowed: bool,
}

const FIELDS: [&str; 5] = ["from", "to", "protocol", "port", "allowed"];

/// Parses an expectation file; `from`/`to` must name endpoints of `table`.
pub fn parse_expectations(
    file: &str,
    text: &str,
    table: &Reachability,
) -> Result<Vec<Expectation>, ManifestError> {
    let err = |e: serde_yaml_ng::Error| yaml_error(file, &e);
    // Syntax first: a broken document is reported as such, not as the first
    // entry read before the break.
    IgnoredAny::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(err)?;
    let names: Vec<&str> = table.endpoints().iter().map(|e| e.name.as_str()).collect();
    ListSeed { names: &names }
        .deserialize(serde_yaml_ng::Deserializer::from_str(text))
        .map_err(err)
}

/// Checks every expectation against the table: one line per expectation
/// (`ok` or `FAIL`, a failure followed by the verdict's explanation), then
/// `N of M expectations hold`. Returns the report and whether all hold.
pub fn check_expectations(table: &Reachability, expectations: &[Expectation]) -> (String, bool) {
    let mut out = String::new();
    let mut held = 0;
    for e in expectations {
        let (Some(from), Some(to)) = (table.endpoint(&e.from), table.endpoint(&e.to)) else {
            // parse_expectations only accepts names of the table.
            let _ = writeln!(
                out,
                "FAIL {} -> {} {}/{}: no such endpoint",
                e.from, e.to, e.protocol, e.port
            );
            continue;
        };
        let verdict = table.verdict(from, to, e.protocol, e.port);
        let word = |allowed: bool| if allowed { "allowed" } else { "denied" };
        let head = format!("{} -> {} {}/{}", e.from, e.to, e.protocol, e.port);
        if verdict.allowed() == e.allowed {
            held += 1;
            let _ = writeln!(out, "ok   {head}: {}", word(e.allowed));
        } else {
            let _ = writeln!(
                out,
                "FAIL {head}: expected {}, but {}",
                word(e.allowed),
                word(verdict.allowed())
            );
            for line in verdict.to_string().lines() {
                let _ = writeln!(out, "       {line}");
            }
        }
    }
    let _ = writeln!(out, "{held} of {} expectations hold", expectations.len());
    (out, held == expectations.len())
}

struct ListSeed<'a> {
    names: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = Vec<Expectation>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = Vec<Expectation>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of expectations")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(e) = seq.next_element_seed(EntrySeed { names: self.names })? {
            out.push(e);
        }
        Ok(out)
    }
    fn visit_map<A: MapAccess<'de>>(self, _map: A) -> Result<Self::Value, A::Error> {
        Err(invalid(
            "expected a list of expectations, found a mapping",
            "start each expectation with `- `, e.g. `- {from: ns/a, to: ns/b, port: 80, allowed: true}`",
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(invalid(
            "the file lists no expectations",
            "write a YAML list, e.g. `- {from: ns/a, to: ns/b, port: 80, allowed: true}`",
        ))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visit_unit()
    }
}

struct EntrySeed<'a> {
    names: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for EntrySeed<'_> {
    type Value = Expectation;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed<'_> {
    type Value = Expectation;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an expectation {from, to, protocol, port, allowed}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut from, mut to, mut protocol, mut port, mut allowed) =
            (None, None, None, None, None);
        while let Some(Field(key)) = map.next_key::<Field>()? {
            let seen = match key {
                "from" => from
                    .replace(map.next_value_seed(NameSeed { names: self.names })?)
                    .is_some(),
                "to" => to
                    .replace(map.next_value_seed(NameSeed { names: self.names })?)
                    .is_some(),
                "protocol" => protocol
                    .replace(map.next_value::<ProtocolValue>()?.0)
                    .is_some(),
                "port" => port.replace(map.next_value::<PortValue>()?.0).is_some(),
                _ => allowed.replace(map.next_value::<Allowed>()?.0).is_some(),
            };
            if seen {
                return Err(invalid(
                    format!("duplicate field `{key}`"),
                    "state each field once per expectation",
                ));
            }
        }
        let missing = |field: &str| {
            invalid(
                format!("missing field `{field}`"),
                "an expectation states from, to, port and allowed (protocol defaults to TCP)",
            )
        };
        Ok(Expectation {
            from: from.ok_or_else(|| missing("from"))?,
            to: to.ok_or_else(|| missing("to"))?,
            protocol: protocol.unwrap_or(Protocol::Tcp),
            port: port.ok_or_else(|| missing("port"))?,
            allowed: allowed.ok_or_else(|| missing("allowed"))?,
        })
    }
}

/// A field name of an expectation, checked where it stands.
struct Field(&'static str);

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let key = want_string(s)?;
            if let Some(field) = FIELDS.iter().find(|f| **f == key) {
                return Ok(Field(field));
            }
            let accepted = FIELDS.map(|f| format!("`{f}`")).join(", ");
            let hint = match suggest(&key, &FIELDS) {
                Some(c) => format!("did you mean `{c}`? (fields: {accepted})"),
                None => format!("fields: {accepted}"),
            };
            Err((format!("unknown field `{key}`"), hint))
        })
    }
}

/// `from`/`to`: a name of the table.
struct NameSeed<'a> {
    names: &'a [&'a str],
}

impl<'de> DeserializeSeed<'de> for NameSeed<'_> {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let names = self.names;
        convert(d, |s| {
            let name = want_string(s)?;
            if names.contains(&name.as_str()) {
                return Ok(name);
            }
            Err((
                format!("no endpoint is called `{name}`"),
                name_hint(&name, names),
            ))
        })
    }
}

fn name_hint(name: &str, names: &[&str]) -> String {
    let kinds = "endpoints are ns/pod, node:NAME and peer:NAME: the rows of `knsim netpol DIR`";
    if let Some(c) = suggest(name, names) {
        return format!("did you mean `{c}`? ({kinds})");
    }
    // A pod named without its namespace.
    let pods: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| n.rsplit_once('/').is_some_and(|(_, pod)| pod == name))
        .collect();
    if let [one, ..] = pods.as_slice() {
        return format!("pods are named with their namespace: did you mean `{one}`?");
    }
    if let Some(peer) = name.strip_prefix("peer:") {
        return format!("add the peer with `--peer {peer}=IP`, or fix the name; {kinds}");
    }
    kinds.to_string()
}

struct ProtocolValue(Protocol);

impl<'de> Deserialize<'de> for ProtocolValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        protocol_field(d).map(|p| ProtocolValue(p.unwrap_or(Protocol::Tcp)))
    }
}

struct PortValue(u16);

impl<'de> Deserialize<'de> for PortValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_int(
                s,
                "port",
                "a port is a number 1-65535; named ports resolve on pods only, so give the number",
            )?;
            check_port_number(i64::try_from(v).unwrap_or(i64::MAX))
                .map(PortValue)
                .map_err(|e| (e, "a port number is 1-65535".into()))
        })
    }
}

struct Allowed(bool);

impl<'de> Deserialize<'de> for Allowed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Allowed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true or false")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Allowed, E> {
                Ok(Allowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Allowed, E> {
                Err(invalid(
                    format!("expected true or false, found string \"{v}\""),
                    "write `allowed: true` or `allowed: false`, unquoted",
                ))
            }
        }
        d.deserialize_any(V)
    }
}
