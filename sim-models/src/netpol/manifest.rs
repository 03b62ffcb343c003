//! Loading Kubernetes manifests as users write them: multi-document YAML with
//! NetworkPolicy, Namespace, Pod, Deployment and StatefulSet objects.
//!
//! The loader applies the API server's defaulting and validation
//! (`pkg/apis/networking/validation`, `apimachinery` label and name rules) and
//! reports the first problem as
//!
//! ```text
//! policies.yaml:12:17: error: spec.ingress[0].ports[0].port: port 70000 is out of range: must be between 1 and 65535, inclusive
//!   hint: a port number is 1-65535; for a range use `port` with `endPort`
//! ```
//!
//! Unknown fields are errors in every part that is read, so a typo never falls
//! back to a default. Fields of these kinds that do not affect networking
//! (annotations, images, probes, volumes, resources, strategies, `status` beyond
//! `podIP`/`hostIP`...) are accepted and ignored, so real manifests load. Objects
//! of other kinds (Service, ConfigMap...) are skipped and listed in
//! [`Manifests::skipped`]; a kind that looks like a misspelling of a supported
//! one is an error.
//!
//! Workloads: a Deployment or StatefulSet with `replicas: n` (default 1) becomes
//! pods `<name>-0` .. `<name>-(n-1)` with the template's labels and container
//! ports. A pod without `status.podIP` gets an address from
//! [`SYNTHETIC_POD_CIDR`], in (namespace, name) order; a pod without
//! `status.hostIP` runs on the node `spec.nodeName` (or [`DEFAULT_NODE_NAME`]),
//! and nodes get addresses from [`SYNTHETIC_NODE_CIDR`] in name order.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::marker::PhantomData;
use std::net::Ipv4Addr;
use std::path::Path;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::did_you_mean::edit_distance;
use crate::ipam::{CidrError, Ipv4Cidr};
use crate::protocol::Protocol;

use super::names::{
    check_dns1123_label, check_dns1123_subdomain, check_label_value, check_port_name,
    check_port_number, check_qualified_name,
};
use super::policy::{
    Cluster, ContainerPort, Direction, IpBlock, Namespace, Peer, PodInfo, Policy, PolicyPort,
    PolicyTypes, PortSpec, Rule,
};
use super::selector::{LabelSelector, Labels, Operator, Requirement};

/// Pods without `status.podIP` get addresses from this range, in (namespace,
/// name) order, skipping addresses that manifests assign explicitly.
pub const SYNTHETIC_POD_CIDR: &str = "10.244.0.0/16";
/// Nodes without an explicit `status.hostIP` get addresses from this range
/// (starting at `.2`), in node-name order.
pub const SYNTHETIC_NODE_CIDR: &str = "172.18.0.0/16";
/// The node of pods that name none (`spec.nodeName` absent).
pub const DEFAULT_NODE_NAME: &str = "knsim-node";
/// The most pods the loader will expand (the synthetic pod range's size, minus
/// a margin); a larger `replicas` sum is an error, never an allocation.
pub const MAX_PODS: usize = 65_000;

/// A problem in the input, with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    /// The file, as given to the loader.
    pub file: String,
    /// 1-based line; 0 when the problem has no position (e.g. unreadable file).
    pub line: usize,
    /// 1-based column; 0 when the problem has no position.
    pub column: usize,
    /// What is wrong, with the field path when known.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for ManifestError {
    /// `file:line:column: error: message` and an indented `hint:` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        } else {
            write!(f, "{}: ", self.file)?;
        }
        write!(f, "error: {}\n  hint: {}", self.message, self.hint)
    }
}

impl std::error::Error for ManifestError {}

/// What the manifests describe.
#[derive(Clone, Debug)]
pub struct Manifests {
    /// Policies, namespaces and pods (workloads expanded, addresses assigned).
    pub cluster: Cluster,
    /// Objects of kinds that do not affect NetworkPolicy, as
    /// `Kind namespace/name (file:line)`, in input order.
    pub skipped: Vec<String>,
}

/// Parses manifests from `(file name, text)` pairs, in the order given.
pub fn parse_manifests(files: &[(String, String)]) -> Result<Manifests, ManifestError> {
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for (file, text) in files {
        parse_file(file, text, &mut objects, &mut skipped)?;
    }
    build(objects, skipped)
}

/// Loads every `*.yaml` / `*.yml` file directly in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Manifests, ManifestError> {
    let dir_name = dir.display().to_string();
    let io_err = |what: String, e: std::io::Error| ManifestError {
        file: dir_name.clone(),
        line: 0,
        column: 0,
        message: format!("{what}: {e}"),
        hint: "pass a readable directory of *.yaml/*.yml manifests".into(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io_err("cannot read directory".into(), e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| io_err("cannot list directory".into(), e))?
            .path();
        let is_yaml = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml");
        if is_yaml && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(ManifestError {
            file: dir_name,
            line: 0,
            column: 0,
            message: "no *.yaml or *.yml files in this directory".into(),
            hint: "put NetworkPolicy, Namespace, Pod, Deployment or StatefulSet manifests in it"
                .into(),
        });
    }
    let mut files = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|e| ManifestError {
            file: name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read file: {e}"),
            hint: "check the file's permissions".into(),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| ManifestError {
            file: name.clone(),
            line: 0,
            column: 0,
            message: format!("not valid UTF-8 (byte {})", e.utf8_error().valid_up_to()),
            hint: "save the manifest as UTF-8".into(),
        })?;
        files.push((name, text));
    }
    parse_manifests(&files)
}

// ---------------------------------------------------------------------------
// Error plumbing: validation errors are raised inside serde visitors so that
// serde_yaml_ng stamps them with the position of the value being read.

const HINT_SEP: &str = "\n  hint: ";

fn invalid<E: de::Error>(message: impl fmt::Display, hint: impl fmt::Display) -> E {
    E::custom(format!("{message}{HINT_SEP}{hint}"))
}

fn yaml_error(file: &str, err: &serde_yaml_ng::Error) -> ManifestError {
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

/// The nearest candidate among those within `max(2, len / 4)` edits of
/// `word`, case ignored.
fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
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
        return match closest(field, &expected) {
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

// ---------------------------------------------------------------------------
// Scalars.

/// A scalar as YAML typed it.
enum Scalar {
    Str(String),
    Int(i128),
    Other(String),
}

struct ScalarVisitor;

impl Visitor<'_> for ScalarVisitor {
    type Value = Scalar;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
        Ok(Scalar::Str(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Scalar, E> {
        Ok(Scalar::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Scalar, E> {
        Ok(i128::try_from(v).map_or_else(|_| Scalar::Other(format!("number {v}")), Scalar::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other(format!("number {v}")))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other(format!("boolean {v}")))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other("null".into()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other("null".into()))
    }
}

/// Reads a scalar and converts it inside the visitor, so that a conversion error
/// carries the scalar's position.
struct ConvertVisitor<T, F>(F, PhantomData<T>);

impl<'de, T, F> Visitor<'de> for ConvertVisitor<T, F>
where
    F: FnOnce(Scalar) -> Result<T, (String, String)>,
{
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        self.finish(Scalar::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<T, E> {
        self.finish(Scalar::Str(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_i64(v)?)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_u64(v)?)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_i128(v)?)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_u128(v)?)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_f64(v)?)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<T, E> {
        self.finish(ScalarVisitor.visit_bool(v)?)
    }
    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        self.finish(Scalar::Other("null".into()))
    }
    fn visit_none<E: de::Error>(self) -> Result<T, E> {
        self.finish(Scalar::Other("null".into()))
    }
}

impl<T, F> ConvertVisitor<T, F>
where
    F: FnOnce(Scalar) -> Result<T, (String, String)>,
{
    fn finish<E: de::Error>(self, s: Scalar) -> Result<T, E> {
        (self.0)(s).map_err(|(m, h)| invalid(m, h))
    }
}

fn convert<'de, D, T>(
    d: D,
    f: impl FnOnce(Scalar) -> Result<T, (String, String)>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    d.deserialize_any(ConvertVisitor(f, PhantomData))
}

fn want_string(s: Scalar) -> Result<String, (String, String)> {
    match s {
        Scalar::Str(v) => Ok(v),
        Scalar::Int(v) => Err((
            format!("expected a string, found integer {v}"),
            format!("quote it: \"{v}\""),
        )),
        Scalar::Other(v) => Err((
            format!("expected a string, found {v}"),
            "quote the value".into(),
        )),
    }
}

fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    convert(d, want_string)
}

fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    convert(d, |s| match s {
        Scalar::Other(v) if v == "null" => Ok(None),
        s => want_string(s).map(Some),
    })
}

fn want_int(s: Scalar, what: &str, hint: &str) -> Result<i128, (String, String)> {
    match s {
        Scalar::Int(v) => Ok(v),
        Scalar::Str(v) => Err((
            format!("expected {what} (an integer), found string \"{v}\""),
            hint.into(),
        )),
        Scalar::Other(v) => Err((
            format!("expected {what} (an integer), found {v}"),
            hint.into(),
        )),
    }
}

fn ipv4_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Ipv4Addr>, D::Error> {
    convert(d, |s| match s {
        Scalar::Other(v) if v == "null" => Ok(None),
        s => {
            let v = want_string(s)?;
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<Ipv4Addr>().map(Some).map_err(|_| {
                (
                    format!("`{v}` is not an IPv4 address"),
                    "knsim models IPv4 only; write a dotted quad such as 10.244.1.7".into(),
                )
            })
        }
    })
}

/// A validated label map (`metadata.labels`, `matchLabels`).
struct LabelMap(Labels);

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

fn protocol_field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Protocol>, D::Error> {
    convert(d, |s| {
        let v = want_string(s)?;
        Protocol::parse(&v).map(Some).ok_or_else(|| {
            (
                format!("unsupported value \"{v}\": supported values: \"TCP\", \"UDP\", \"SCTP\""),
                if Protocol::parse(&v.to_uppercase()).is_some() {
                    format!("protocols are upper case: {}", v.to_uppercase())
                } else {
                    "NetworkPolicy ports are TCP, UDP or SCTP (ICMP cannot be selected)".into()
                },
            )
        })
    })
}

// ---------------------------------------------------------------------------
// Struct-level validation: `Checked<T>` reads `T::Raw` from a mapping and
// converts/validates it inside the visitor (error positioned at the mapping).

trait FromRaw: Sized {
    type Raw: DeserializeOwned;
    fn from_raw(raw: Self::Raw) -> Result<Self, (String, String)>;
}

struct Checked<T>(T);

impl<'de, T: FromRaw> Deserialize<'de> for Checked<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: FromRaw> Visitor<'de> for V<T> {
            type Value = Checked<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Checked<T>, A::Error> {
                let raw = T::Raw::deserialize(de::value::MapAccessDeserializer::new(map))?;
                T::from_raw(raw)
                    .map(Checked)
                    .map_err(|(m, h)| invalid(m, h))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}

fn unchecked<T>(v: Option<Vec<Checked<T>>>) -> Vec<T> {
    v.unwrap_or_default().into_iter().map(|c| c.0).collect()
}

// --- label selectors

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSelector {
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
                    _ => match closest(&v, &["In", "NotIn", "Exists", "DoesNotExist"]) {
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
struct RawRequirement {
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

// --- NetworkPolicy

struct PolicyTypeField(Direction);

impl<'de> Deserialize<'de> for PolicyTypeField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_string(s)?;
            match v.as_str() {
                "Ingress" => Ok(PolicyTypeField(Direction::Ingress)),
                "Egress" => Ok(PolicyTypeField(Direction::Egress)),
                _ => Err((
                    format!("unsupported value \"{v}\": supported values: \"Ingress\", \"Egress\""),
                    "policyTypes values are case-sensitive: Ingress or Egress".into(),
                )),
            }
        })
    }
}

struct CidrField(Ipv4Cidr);

/// Parses a CIDR as the API server does for `ipBlock` (a legacy field): host
/// bits below the prefix are accepted and cleared (`10.0.0.1/8` is
/// `10.0.0.0/8`), as `net.ParseCIDR` does.
fn parse_cidr(text: &str) -> Result<Ipv4Cidr, CidrError> {
    match text.parse::<Ipv4Cidr>() {
        Err(CidrError::HostBits { network, .. }) => network.parse(),
        other => other,
    }
}

impl<'de> Deserialize<'de> for CidrField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_string(s)?;
            if v.contains(':') {
                return Err((
                    format!("`{v}`: IPv6 ipBlocks are valid Kubernetes but knsim models IPv4 only"),
                    "use an IPv4 CIDR such as 10.0.0.0/8".into(),
                ));
            }
            parse_cidr(&v).map(CidrField).map_err(|e| {
                (
                    format!("not a valid CIDR: {e}"),
                    "write a.b.c.d/n with n between 0 and 32, e.g. 10.0.0.0/8".into(),
                )
            })
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIpBlock {
    cidr: CidrField,
    #[serde(default)]
    except: Option<Vec<CidrField>>,
}

impl FromRaw for IpBlock {
    type Raw = RawIpBlock;
    fn from_raw(raw: RawIpBlock) -> Result<Self, (String, String)> {
        let block = IpBlock {
            cidr: raw.cidr.0,
            except: raw
                .except
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.0)
                .collect(),
        };
        block.validate().map_err(|e| {
            (
                e,
                format!(
                    "each `except` entry must lie inside {} and be smaller than it",
                    block.cidr
                ),
            )
        })?;
        Ok(block)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPeer {
    #[serde(default)]
    pod_selector: Option<Checked<LabelSelector>>,
    #[serde(default)]
    namespace_selector: Option<Checked<LabelSelector>>,
    #[serde(default)]
    ip_block: Option<Checked<IpBlock>>,
}

impl FromRaw for Peer {
    type Raw = RawPeer;
    fn from_raw(raw: RawPeer) -> Result<Self, (String, String)> {
        let pod = raw.pod_selector.map(|c| c.0);
        let ns = raw.namespace_selector.map(|c| c.0);
        match (raw.ip_block.map(|c| c.0), pod, ns) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err((
                "may not specify both ipBlock and another peer".into(),
                "split it into two entries of the list: one ipBlock, one selector (entries are ORed)".into(),
            )),
            (Some(block), None, None) => Ok(Peer::IpBlock(block)),
            (None, None, None) => Err((
                "must specify a peer".into(),
                "give podSelector, namespaceSelector or ipBlock; to admit everything, omit `from`/`to` instead".into(),
            )),
            (None, pod_selector, namespace_selector) => Ok(Peer::Selector {
                namespace_selector,
                pod_selector,
            }),
        }
    }
}

/// `port`: an integer or a port name.
enum PortValue {
    Number(u16),
    Name(String),
}

impl<'de> Deserialize<'de> for PortValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| match s {
            Scalar::Int(v) => {
                let v = i64::try_from(v).unwrap_or(i64::MAX);
                check_port_number(v).map(PortValue::Number).map_err(|e| {
                    (
                        e,
                        "a port number is 1-65535; for a range use `port` with `endPort`".into(),
                    )
                })
            }
            Scalar::Str(v) => check_port_name(&v)
                .map(|_| PortValue::Name(v.clone()))
                .map_err(|e| {
                    let hint = if v.parse::<u32>().is_ok() {
                        format!(
                            "a quoted number is a port *name*; write `port: {v}` without quotes"
                        )
                    } else {
                        "a named port must match a container port's `name` (IANA_SVC_NAME)".into()
                    };
                    (e, hint)
                }),
            Scalar::Other(v) => Err((
                format!("expected a port number or name, found {v}"),
                "write e.g. `port: 80` or `port: http`".into(),
            )),
        })
    }
}

struct EndPortValue(u16);

impl<'de> Deserialize<'de> for EndPortValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_int(s, "endPort", "endPort is a port number")?;
            let v = i64::try_from(v).unwrap_or(i64::MAX);
            check_port_number(v)
                .map(EndPortValue)
                .map_err(|e| (e, "a port number is 1-65535".into()))
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicyPort {
    #[serde(default, deserialize_with = "protocol_field")]
    protocol: Option<Protocol>,
    #[serde(default)]
    port: Option<PortValue>,
    #[serde(default)]
    end_port: Option<EndPortValue>,
}

impl FromRaw for PolicyPort {
    type Raw = RawPolicyPort;
    fn from_raw(raw: RawPolicyPort) -> Result<Self, (String, String)> {
        let end_port = raw.end_port.map(|e| e.0);
        let port = match (raw.port, end_port) {
            (None, Some(end)) => {
                return Err((
                    format!("endPort: {end}: may not be specified when `port` is not specified"),
                    "give the start of the range in `port`".into(),
                ))
            }
            (Some(PortValue::Name(name)), Some(end)) => {
                return Err((
                    format!(
                    "endPort: {end}: may not be specified when `port` is non-numeric (`{name}`)"
                ),
                    "a range needs numeric `port` and `endPort`".into(),
                ))
            }
            (None, None) => None,
            (Some(PortValue::Name(name)), None) => Some(PortSpec::Named(name)),
            (Some(PortValue::Number(port)), end_port) => Some(PortSpec::Number { port, end_port }),
        };
        let p = PolicyPort {
            // Defaulting: an omitted protocol is TCP.
            protocol: raw.protocol.unwrap_or(Protocol::Tcp),
            port,
        };
        p.validate().map_err(|e| {
            (
                e,
                "`endPort` is the inclusive end of the range starting at `port`".into(),
            )
        })?;
        Ok(p)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngressRule {
    #[serde(default)]
    from: Option<Vec<Checked<Peer>>>,
    #[serde(default)]
    ports: Option<Vec<Checked<PolicyPort>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgressRule {
    #[serde(default)]
    to: Option<Vec<Checked<Peer>>>,
    #[serde(default)]
    ports: Option<Vec<Checked<PolicyPort>>>,
}

struct IngressRule(Rule);
struct EgressRule(Rule);

impl FromRaw for IngressRule {
    type Raw = RawIngressRule;
    fn from_raw(raw: RawIngressRule) -> Result<Self, (String, String)> {
        Ok(IngressRule(Rule {
            peers: unchecked(raw.from),
            ports: unchecked(raw.ports),
        }))
    }
}

impl FromRaw for EgressRule {
    type Raw = RawEgressRule;
    fn from_raw(raw: RawEgressRule) -> Result<Self, (String, String)> {
        Ok(EgressRule(Rule {
            peers: unchecked(raw.to),
            ports: unchecked(raw.ports),
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawPolicySpec {
    #[serde(default)]
    pod_selector: Option<Checked<LabelSelector>>,
    #[serde(default)]
    ingress: Option<Vec<Checked<IngressRule>>>,
    #[serde(default)]
    egress: Option<Vec<Checked<EgressRule>>>,
    #[serde(default)]
    policy_types: Option<Vec<PolicyTypeField>>,
}

struct PolicySpec {
    pod_selector: LabelSelector,
    policy_types: PolicyTypes,
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
}

impl FromRaw for PolicySpec {
    type Raw = RawPolicySpec;
    fn from_raw(raw: RawPolicySpec) -> Result<Self, (String, String)> {
        let declared: Vec<Direction> = raw
            .policy_types
            .unwrap_or_default()
            .into_iter()
            .map(|t| t.0)
            .collect();
        if declared.len() > 2 {
            return Err((
                "policyTypes: may not specify more than two policyTypes".into(),
                "list Ingress, Egress, or both".into(),
            ));
        }
        let ingress: Vec<Rule> = unchecked(raw.ingress).into_iter().map(|r| r.0).collect();
        let egress: Vec<Rule> = unchecked(raw.egress).into_iter().map(|r| r.0).collect();
        Ok(PolicySpec {
            pod_selector: raw.pod_selector.map(|c| c.0).unwrap_or_default(),
            policy_types: PolicyTypes::defaulted(&declared, egress.len()),
            ingress,
            egress,
        })
    }
}

// --- object metadata (shared by every kind)

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Meta {
    #[serde(default, deserialize_with = "opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    namespace: Option<String>,
    #[serde(default)]
    labels: Option<LabelMap>,
    // Accepted and ignored: they do not affect networking.
    #[serde(default, rename = "annotations")]
    _annotations: Option<IgnoredAny>,
    #[serde(default, rename = "generateName")]
    _generate_name: Option<IgnoredAny>,
    #[serde(default, rename = "uid")]
    _uid: Option<IgnoredAny>,
    #[serde(default, rename = "resourceVersion")]
    _resource_version: Option<IgnoredAny>,
    #[serde(default, rename = "generation")]
    _generation: Option<IgnoredAny>,
    #[serde(default, rename = "creationTimestamp")]
    _creation_timestamp: Option<IgnoredAny>,
    #[serde(default, rename = "deletionTimestamp")]
    _deletion_timestamp: Option<IgnoredAny>,
    #[serde(default, rename = "deletionGracePeriodSeconds")]
    _deletion_grace_period_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "ownerReferences")]
    _owner_references: Option<IgnoredAny>,
    #[serde(default, rename = "finalizers")]
    _finalizers: Option<IgnoredAny>,
    #[serde(default, rename = "managedFields")]
    _managed_fields: Option<IgnoredAny>,
    #[serde(default, rename = "selfLink")]
    _self_link: Option<IgnoredAny>,
}

impl FromRaw for Meta {
    type Raw = Meta;
    fn from_raw(raw: Meta) -> Result<Self, (String, String)> {
        if let Some(name) = &raw.name {
            check_dns1123_subdomain(name).map_err(|e| {
                (
                    format!("name: {e}"),
                    "object names are lowercase letters, digits, '-' and '.'".into(),
                )
            })?;
        }
        if let Some(ns) = &raw.namespace {
            check_dns1123_label(ns).map_err(|e| {
                (
                    format!("namespace: {e}"),
                    "namespace names are lowercase letters, digits and '-'".into(),
                )
            })?;
        }
        Ok(raw)
    }
}

impl Meta {
    fn labels(&self) -> Labels {
        self.labels
            .as_ref()
            .map(|l| l.0.clone())
            .unwrap_or_default()
    }
}

// --- documents

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NetworkPolicyDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Checked<Meta>,
    #[serde(default)]
    spec: Option<Checked<PolicySpec>>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Checked<Meta>,
    #[serde(default, rename = "spec")]
    _spec: Option<IgnoredAny>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawContainerPort {
    container_port: Scalarish,
    #[serde(default, deserialize_with = "opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "protocol_field")]
    protocol: Option<Protocol>,
    #[serde(default, rename = "hostPort")]
    _host_port: Option<IgnoredAny>,
    #[serde(default, rename = "hostIP")]
    _host_ip: Option<IgnoredAny>,
}

/// `containerPort`, validated where it stands.
struct Scalarish(u16);

impl<'de> Deserialize<'de> for Scalarish {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_int(s, "containerPort", "containerPort is a port number")?;
            check_port_number(i64::try_from(v).unwrap_or(i64::MAX))
                .map(Scalarish)
                .map_err(|e| (e, "a port number is 1-65535".into()))
        })
    }
}

impl FromRaw for ContainerPort {
    type Raw = RawContainerPort;
    fn from_raw(raw: RawContainerPort) -> Result<Self, (String, String)> {
        if let Some(name) = &raw.name {
            check_port_name(name).map_err(|e| {
                (
                    format!("name: {e}"),
                    "port names are at most 15 lowercase letters, digits and '-', with at least one letter".into(),
                )
            })?;
        }
        Ok(ContainerPort {
            name: raw.name,
            port: raw.container_port.0,
            protocol: raw.protocol.unwrap_or(Protocol::Tcp),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Container {
    #[serde(deserialize_with = "string", rename = "name")]
    _name: String,
    #[serde(default)]
    ports: Option<Vec<Checked<ContainerPort>>>,
    #[serde(default, rename = "image")]
    _image: Option<IgnoredAny>,
    #[serde(default, rename = "imagePullPolicy")]
    _image_pull_policy: Option<IgnoredAny>,
    #[serde(default, rename = "command")]
    _command: Option<IgnoredAny>,
    #[serde(default, rename = "args")]
    _args: Option<IgnoredAny>,
    #[serde(default, rename = "workingDir")]
    _working_dir: Option<IgnoredAny>,
    #[serde(default, rename = "env")]
    _env: Option<IgnoredAny>,
    #[serde(default, rename = "envFrom")]
    _env_from: Option<IgnoredAny>,
    #[serde(default, rename = "resources")]
    _resources: Option<IgnoredAny>,
    #[serde(default, rename = "resizePolicy")]
    _resize_policy: Option<IgnoredAny>,
    #[serde(default, rename = "restartPolicy")]
    _restart_policy: Option<IgnoredAny>,
    #[serde(default, rename = "restartPolicyRules")]
    _restart_policy_rules: Option<IgnoredAny>,
    #[serde(default, rename = "volumeMounts")]
    _volume_mounts: Option<IgnoredAny>,
    #[serde(default, rename = "volumeDevices")]
    _volume_devices: Option<IgnoredAny>,
    #[serde(default, rename = "livenessProbe")]
    _liveness_probe: Option<IgnoredAny>,
    #[serde(default, rename = "readinessProbe")]
    _readiness_probe: Option<IgnoredAny>,
    #[serde(default, rename = "startupProbe")]
    _startup_probe: Option<IgnoredAny>,
    #[serde(default, rename = "lifecycle")]
    _lifecycle: Option<IgnoredAny>,
    #[serde(default, rename = "terminationMessagePath")]
    _termination_message_path: Option<IgnoredAny>,
    #[serde(default, rename = "terminationMessagePolicy")]
    _termination_message_policy: Option<IgnoredAny>,
    #[serde(default, rename = "securityContext")]
    _security_context: Option<IgnoredAny>,
    #[serde(default, rename = "stdin")]
    _stdin: Option<IgnoredAny>,
    #[serde(default, rename = "stdinOnce")]
    _stdin_once: Option<IgnoredAny>,
    #[serde(default, rename = "tty")]
    _tty: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodSpec {
    containers: Vec<Container>,
    #[serde(default)]
    host_network: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    node_name: Option<String>,
    // Accepted and ignored. Init containers' ports are not used for named-port
    // resolution (see the module docs).
    #[serde(default, rename = "initContainers")]
    _init_containers: Option<IgnoredAny>,
    #[serde(default, rename = "ephemeralContainers")]
    _ephemeral_containers: Option<IgnoredAny>,
    #[serde(default, rename = "activeDeadlineSeconds")]
    _active_deadline_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "affinity")]
    _affinity: Option<IgnoredAny>,
    #[serde(default, rename = "automountServiceAccountToken")]
    _automount_service_account_token: Option<IgnoredAny>,
    #[serde(default, rename = "dnsConfig")]
    _dns_config: Option<IgnoredAny>,
    #[serde(default, rename = "dnsPolicy")]
    _dns_policy: Option<IgnoredAny>,
    #[serde(default, rename = "enableServiceLinks")]
    _enable_service_links: Option<IgnoredAny>,
    #[serde(default, rename = "hostAliases")]
    _host_aliases: Option<IgnoredAny>,
    #[serde(default, rename = "hostIPC")]
    _host_ipc: Option<IgnoredAny>,
    #[serde(default, rename = "hostPID")]
    _host_pid: Option<IgnoredAny>,
    #[serde(default, rename = "hostUsers")]
    _host_users: Option<IgnoredAny>,
    #[serde(default, rename = "hostname")]
    _hostname: Option<IgnoredAny>,
    #[serde(default, rename = "hostnameOverride")]
    _hostname_override: Option<IgnoredAny>,
    #[serde(default, rename = "imagePullSecrets")]
    _image_pull_secrets: Option<IgnoredAny>,
    #[serde(default, rename = "nodeSelector")]
    _node_selector: Option<IgnoredAny>,
    #[serde(default, rename = "os")]
    _os: Option<IgnoredAny>,
    #[serde(default, rename = "overhead")]
    _overhead: Option<IgnoredAny>,
    #[serde(default, rename = "preemptionPolicy")]
    _preemption_policy: Option<IgnoredAny>,
    #[serde(default, rename = "priority")]
    _priority: Option<IgnoredAny>,
    #[serde(default, rename = "priorityClassName")]
    _priority_class_name: Option<IgnoredAny>,
    #[serde(default, rename = "readinessGates")]
    _readiness_gates: Option<IgnoredAny>,
    #[serde(default, rename = "resourceClaims")]
    _resource_claims: Option<IgnoredAny>,
    #[serde(default, rename = "resources")]
    _resources: Option<IgnoredAny>,
    #[serde(default, rename = "restartPolicy")]
    _restart_policy: Option<IgnoredAny>,
    #[serde(default, rename = "runtimeClassName")]
    _runtime_class_name: Option<IgnoredAny>,
    #[serde(default, rename = "schedulerName")]
    _scheduler_name: Option<IgnoredAny>,
    #[serde(default, rename = "schedulingGates")]
    _scheduling_gates: Option<IgnoredAny>,
    #[serde(default, rename = "securityContext")]
    _security_context: Option<IgnoredAny>,
    #[serde(default, rename = "serviceAccount")]
    _service_account: Option<IgnoredAny>,
    #[serde(default, rename = "serviceAccountName")]
    _service_account_name: Option<IgnoredAny>,
    #[serde(default, rename = "setHostnameAsFQDN")]
    _set_hostname_as_fqdn: Option<IgnoredAny>,
    #[serde(default, rename = "shareProcessNamespace")]
    _share_process_namespace: Option<IgnoredAny>,
    #[serde(default, rename = "subdomain")]
    _subdomain: Option<IgnoredAny>,
    #[serde(default, rename = "terminationGracePeriodSeconds")]
    _termination_grace_period_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "tolerations")]
    _tolerations: Option<IgnoredAny>,
    #[serde(default, rename = "topologySpreadConstraints")]
    _topology_spread_constraints: Option<IgnoredAny>,
    #[serde(default, rename = "volumes")]
    _volumes: Option<IgnoredAny>,
}

impl PodSpec {
    fn ports(&self) -> Vec<ContainerPort> {
        self.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten().map(|p| p.0.clone()))
            .collect()
    }
}

/// Pod status: written by the cluster, so only the fields read are named and
/// everything else is ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStatus {
    #[serde(default, rename = "podIP", deserialize_with = "ipv4_field")]
    pod_ip: Option<Ipv4Addr>,
    #[serde(default, rename = "hostIP", deserialize_with = "ipv4_field")]
    host_ip: Option<Ipv4Addr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PodDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Checked<Meta>,
    spec: PodSpec,
    #[serde(default)]
    status: Option<PodStatus>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PodTemplate {
    #[serde(default)]
    metadata: Option<Checked<Meta>>,
    spec: PodSpec,
}

struct Replicas(u32);

impl<'de> Deserialize<'de> for Replicas {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let v = want_int(s, "replicas", "replicas is a whole number")?;
            match u32::try_from(v) {
                Ok(n) if i32::try_from(n).is_ok() => Ok(Replicas(n)),
                _ => Err((
                    format!("{v} must be greater than or equal to 0 (and fit in int32)"),
                    "replicas is a whole number of pods".into(),
                )),
            }
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawWorkloadSpec {
    #[serde(default)]
    replicas: Option<Replicas>,
    selector: Checked<LabelSelector>,
    template: PodTemplate,
    // Deployment fields, ignored.
    #[serde(default, rename = "strategy")]
    _strategy: Option<IgnoredAny>,
    #[serde(default, rename = "minReadySeconds")]
    _min_ready_seconds: Option<IgnoredAny>,
    #[serde(default, rename = "revisionHistoryLimit")]
    _revision_history_limit: Option<IgnoredAny>,
    #[serde(default, rename = "paused")]
    _paused: Option<IgnoredAny>,
    #[serde(default, rename = "progressDeadlineSeconds")]
    _progress_deadline_seconds: Option<IgnoredAny>,
    // StatefulSet fields, ignored.
    #[serde(default, rename = "serviceName")]
    _service_name: Option<IgnoredAny>,
    #[serde(default, rename = "podManagementPolicy")]
    _pod_management_policy: Option<IgnoredAny>,
    #[serde(default, rename = "updateStrategy")]
    _update_strategy: Option<IgnoredAny>,
    #[serde(default, rename = "volumeClaimTemplates")]
    _volume_claim_templates: Option<IgnoredAny>,
    #[serde(default, rename = "persistentVolumeClaimRetentionPolicy")]
    _pvc_retention_policy: Option<IgnoredAny>,
    #[serde(default, rename = "ordinals")]
    _ordinals: Option<IgnoredAny>,
}

struct WorkloadSpec {
    replicas: u32,
    labels: Labels,
    spec: PodSpec,
}

impl FromRaw for WorkloadSpec {
    type Raw = RawWorkloadSpec;
    fn from_raw(raw: RawWorkloadSpec) -> Result<Self, (String, String)> {
        let labels = raw
            .template
            .metadata
            .as_ref()
            .map(|m| m.0.labels())
            .unwrap_or_default();
        let selector = raw.selector.0;
        if selector.is_everything() {
            return Err((
                "selector: empty selector is invalid for this workload".into(),
                "select the template's labels, e.g. `selector: {matchLabels: {app: web}}`".into(),
            ));
        }
        if !selector.matches(&labels) {
            return Err((
                format!(
                    "selector: `selector` {selector} does not match template `labels` {}",
                    super::selector::format_labels(&labels)
                ),
                "the template's metadata.labels must satisfy spec.selector".into(),
            ));
        }
        Ok(WorkloadSpec {
            replicas: raw.replicas.map_or(1, |r| r.0),
            labels,
            spec: raw.template.spec,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WorkloadDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Checked<Meta>,
    spec: Checked<WorkloadSpec>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}

// ---------------------------------------------------------------------------
// Document passes.

/// Fails at `metadata.name` if present, else at the document's root mapping:
/// the error's position is where object-level errors point.
struct Locator;

impl<'de> Deserialize<'de> for Locator {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Root;
        impl<'de> Visitor<'de> for Root {
            type Value = Locator;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("here")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Locator, A::Error> {
                while let Some(key) = map.next_key::<String>()? {
                    if key == "metadata" {
                        map.next_value::<MetaLocator>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Err(de::Error::custom("here"))
            }
        }
        struct MetaLocator;
        impl<'de> Deserialize<'de> for MetaLocator {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct M;
                impl<'de> Visitor<'de> for M {
                    type Value = MetaLocator;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("here")
                    }
                    fn visit_map<A: MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<MetaLocator, A::Error> {
                        while let Some(key) = map.next_key::<String>()? {
                            if key == "name" {
                                map.next_value::<Here>()?;
                            } else {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                        Ok(MetaLocator)
                    }
                }
                d.deserialize_any(M)
            }
        }
        struct Here;
        impl<'de> Deserialize<'de> for Here {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct H;
                impl Visitor<'_> for H {
                    type Value = Here;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("here")
                    }
                }
                d.deserialize_any(H)
            }
        }
        d.deserialize_any(Root)
    }
}

const SUPPORTED_KINDS: [&str; 5] = [
    "NetworkPolicy",
    "Namespace",
    "Pod",
    "Deployment",
    "StatefulSet",
];

fn expected_api_version(kind: &str) -> &'static str {
    match kind {
        "NetworkPolicy" => "networking.k8s.io/v1",
        "Deployment" | "StatefulSet" => "apps/v1",
        _ => "v1",
    }
}

#[derive(Deserialize)]
struct RawHeader {
    #[serde(default, rename = "apiVersion", deserialize_with = "opt_string")]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<KindField>,
}

struct KindField(String);

impl<'de> Deserialize<'de> for KindField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| {
            let kind = want_string(s)?;
            if !SUPPORTED_KINDS.contains(&kind.as_str()) {
                if let Some(c) = closest(&kind, &SUPPORTED_KINDS) {
                    return Err((
                        format!("kind: unknown kind `{kind}`"),
                        format!("did you mean `{c}`? (kinds are case-sensitive)"),
                    ));
                }
            }
            Ok(KindField(kind))
        })
    }
}

/// `(kind, apiVersion)` of a document, checked.
struct Header(String);

impl FromRaw for Header {
    type Raw = RawHeader;
    fn from_raw(raw: RawHeader) -> Result<Self, (String, String)> {
        let Some(KindField(kind)) = raw.kind else {
            return Err((
                "missing field `kind`".into(),
                "every manifest states its `apiVersion` and `kind`, e.g. `kind: NetworkPolicy`"
                    .into(),
            ));
        };
        if SUPPORTED_KINDS.contains(&kind.as_str()) {
            let want = expected_api_version(&kind);
            match raw.api_version.as_deref() {
                Some(v) if v == want => {}
                Some(v) => {
                    return Err((
                        format!("apiVersion `{v}` is not served for kind {kind}"),
                        format!("use `apiVersion: {want}`"),
                    ))
                }
                None => {
                    return Err((
                        "missing field `apiVersion`".into(),
                        format!("add `apiVersion: {want}`"),
                    ))
                }
            }
        }
        Ok(Header(kind))
    }
}

/// A pod before addresses are assigned.
struct PodSeed {
    namespace: String,
    name: String,
    labels: Labels,
    host_network: bool,
    node_name: Option<String>,
    pod_ip: Option<Ipv4Addr>,
    host_ip: Option<Ipv4Addr>,
    ports: Vec<ContainerPort>,
    at: Loc,
}

#[derive(Clone)]
struct Loc {
    file: String,
    line: usize,
    column: usize,
}

impl Loc {
    fn error(&self, message: String, hint: impl Into<String>) -> ManifestError {
        ManifestError {
            file: self.file.clone(),
            line: self.line,
            column: self.column,
            message,
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

enum Object {
    Policy(Policy, Loc),
    Namespace(Namespace, Loc),
    Pods(String, Vec<PodSeed>),
}

fn docs(text: &str) -> serde_yaml_ng::Deserializer<'_> {
    serde_yaml_ng::Deserializer::from_str(text)
}

fn parse_file(
    file: &str,
    text: &str,
    objects: &mut Vec<Object>,
    skipped: &mut Vec<String>,
) -> Result<(), ManifestError> {
    let err = |e: serde_yaml_ng::Error| yaml_error(file, &e);
    // Pass 1: syntax, stopping at the first broken document (the parser does
    // not recover from it).
    // (Walking the events reaches the parse error, if any, before anything is
    // interpreted, so a broken document is reported as such.)
    for doc in docs(text) {
        IgnoredAny::deserialize(doc).map_err(err)?;
    }
    // Pass 2: kinds.
    let mut headers = Vec::new();
    for doc in docs(text) {
        let header = Option::<Checked<Header>>::deserialize(doc).map_err(err)?;
        headers.push(header.map(|h| h.0 .0));
    }
    // Pass 3: where each object is (its metadata.name, else its first line).
    let mut locs = Vec::new();
    for doc in docs(text) {
        let (line, column) = match Locator::deserialize(doc) {
            Err(e) => e.location().map_or((1, 1), |l| (l.line(), l.column())),
            Ok(Locator) => (1, 1),
        };
        locs.push(Loc {
            file: file.to_string(),
            line,
            column,
        });
    }
    // Pass 4: the objects.
    for ((doc, kind), at) in docs(text).zip(headers).zip(locs) {
        let Some(kind) = kind else { continue };
        match kind.as_str() {
            "NetworkPolicy" => {
                let d = NetworkPolicyDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                let spec = d.spec.map(|s| s.0).unwrap_or(PolicySpec {
                    pod_selector: LabelSelector::everything(),
                    policy_types: PolicyTypes::defaulted(&[], 0),
                    ingress: Vec::new(),
                    egress: Vec::new(),
                });
                let policy = Policy {
                    namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
                    name,
                    pod_selector: spec.pod_selector,
                    policy_types: spec.policy_types,
                    ingress: spec.ingress,
                    egress: spec.egress,
                };
                objects.push(Object::Policy(policy, at));
            }
            "Namespace" => {
                let d = NamespaceDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                check_dns1123_label(&name).map_err(|e| {
                    at.error(
                        format!("metadata.name: {e}"),
                        "namespace names are lowercase letters, digits and '-', at most 63 characters",
                    )
                })?;
                let labels = meta.labels();
                objects.push(Object::Namespace(Namespace { name, labels }, at));
            }
            "Pod" => {
                let d = PodDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                let status = d.status.unwrap_or(PodStatus {
                    pod_ip: None,
                    host_ip: None,
                });
                let seed = PodSeed {
                    namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
                    name,
                    labels: meta.labels(),
                    host_network: d.spec.host_network.unwrap_or(false),
                    node_name: d.spec.node_name.clone(),
                    pod_ip: status.pod_ip,
                    host_ip: status.host_ip,
                    ports: d.spec.ports(),
                    at,
                };
                objects.push(Object::Pods("Pod".into(), vec![seed]));
            }
            "Deployment" | "StatefulSet" => {
                let d = WorkloadDoc::deserialize(doc).map_err(err)?;
                let meta = d.metadata.0;
                let name = required_name(&meta, &kind, &at)?;
                let spec = d.spec.0;
                let namespace = meta.namespace.clone().unwrap_or_else(|| "default".into());
                let total: usize = objects
                    .iter()
                    .map(|o| match o {
                        Object::Pods(_, p) => p.len(),
                        _ => 0,
                    })
                    .sum();
                if total + spec.replicas as usize > MAX_PODS {
                    return Err(at.error(
                        format!(
                            "{kind} {namespace}/{name}: {} replicas would exceed knsim's limit of {MAX_PODS} pods",
                            spec.replicas
                        ),
                        "the truth table is for policy reasoning; use a handful of replicas per workload",
                    ));
                }
                let pods = (0..spec.replicas)
                    .map(|i| PodSeed {
                        namespace: namespace.clone(),
                        name: format!("{name}-{i}"),
                        labels: spec.labels.clone(),
                        host_network: spec.spec.host_network.unwrap_or(false),
                        node_name: spec.spec.node_name.clone(),
                        pod_ip: None,
                        host_ip: None,
                        ports: spec.spec.ports(),
                        at: at.clone(),
                    })
                    .collect();
                objects.push(Object::Pods(format!("{kind} {namespace}/{name}"), pods));
            }
            other => {
                let d = SkippedDoc::deserialize(doc).map_err(err)?;
                let ns = d.metadata.as_ref().and_then(|m| m.namespace.clone());
                let name = d.metadata.and_then(|m| m.name).unwrap_or_default();
                let id = match ns {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name,
                };
                skipped.push(format!("{other} {id} ({at})"));
            }
        }
    }
    Ok(())
}

/// Any other kind: only its name is read, for the "skipped" list.
#[derive(Deserialize)]
struct SkippedDoc {
    #[serde(default)]
    metadata: Option<SkippedMeta>,
}

#[derive(Deserialize)]
struct SkippedMeta {
    #[serde(default, deserialize_with = "opt_string")]
    name: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    namespace: Option<String>,
}

fn required_name(meta: &Meta, kind: &str, at: &Loc) -> Result<String, ManifestError> {
    meta.name.clone().ok_or_else(|| {
        let hint = if meta._generate_name.is_some() {
            "knsim needs a fixed `metadata.name`; `generateName` alone is not supported"
        } else {
            "add `metadata: {name: ...}`"
        };
        at.error(format!("{kind}: metadata.name: Required value"), hint)
    })
}

fn build(objects: Vec<Object>, skipped: Vec<String>) -> Result<Manifests, ManifestError> {
    let mut namespaces: BTreeMap<String, (Namespace, Loc)> = BTreeMap::new();
    let mut policies: BTreeMap<(String, String), (Policy, Loc)> = BTreeMap::new();
    let mut seeds: BTreeMap<(String, String), (PodSeed, String)> = BTreeMap::new();
    for object in objects {
        match object {
            Object::Namespace(ns, at) => {
                if let Some((_, first)) = namespaces.get(&ns.name) {
                    return Err(at.error(
                        format!("Namespace {} is defined twice (first at {first})", ns.name),
                        "remove or rename one of them",
                    ));
                }
                namespaces.insert(ns.name.clone(), (ns, at));
            }
            Object::Policy(p, at) => {
                let key = (p.namespace.clone(), p.name.clone());
                if let Some((_, first)) = policies.get(&key) {
                    return Err(at.error(
                        format!(
                            "NetworkPolicy {}/{} is defined twice (first at {first})",
                            key.0, key.1
                        ),
                        "names are unique per namespace: rename one, or merge their rules",
                    ));
                }
                policies.insert(key, (p, at));
            }
            Object::Pods(origin, pods) => {
                for pod in pods {
                    let key = (pod.namespace.clone(), pod.name.clone());
                    if let Some((first, first_origin)) = seeds.get(&key) {
                        return Err(pod.at.error(
                            format!(
                                "pod {}/{} (from {origin}) already exists (from {first_origin} at {})",
                                key.0, key.1, first.at
                            ),
                            "pod names are unique per namespace; workloads expand to <name>-0..<name>-(n-1)",
                        ));
                    }
                    seeds.insert(key, (pod, origin.clone()));
                }
            }
        }
    }
    let pods = assign_addresses(seeds.into_values().map(|(s, _)| s).collect())?;
    let cluster = Cluster::new(
        namespaces.into_values().map(|(n, _)| n).collect(),
        pods,
        policies.into_values().map(|(p, _)| p).collect(),
    );
    Ok(Manifests { cluster, skipped })
}

fn assign_addresses(seeds: Vec<PodSeed>) -> Result<Vec<PodInfo>, ManifestError> {
    // Nodes: explicit host IPs are kept; named nodes get synthetic addresses.
    let node_range: Ipv4Cidr = SYNTHETIC_NODE_CIDR.parse().map_err(internal)?;
    let pod_range: Ipv4Cidr = SYNTHETIC_POD_CIDR.parse().map_err(internal)?;
    let explicit_hosts: BTreeSet<Ipv4Addr> = seeds.iter().filter_map(|s| s.host_ip).collect();
    let node_names: BTreeSet<String> = seeds
        .iter()
        .filter(|s| s.host_ip.is_none())
        .map(|s| {
            s.node_name
                .clone()
                .unwrap_or_else(|| DEFAULT_NODE_NAME.into())
        })
        .collect();
    let mut node_ips = BTreeMap::new();
    let mut next = u32::from(node_range.network()) + 2;
    for name in node_names {
        while explicit_hosts.contains(&Ipv4Addr::from(next)) {
            next += 1;
        }
        node_ips.insert(name, Ipv4Addr::from(next));
        next += 1;
    }
    // Pod IPs: explicit ones must be unique among pod-network pods.
    let mut used: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    for s in seeds.iter().filter(|s| !s.host_network) {
        if let Some(ip) = s.pod_ip {
            if let Some(other) = used.insert(ip, format!("{}/{}", s.namespace, s.name)) {
                return Err(s.at.error(
                    format!(
                        "pod {}/{}: status.podIP {ip} is already the IP of pod {other}",
                        s.namespace, s.name
                    ),
                    "pod IPs are unique; remove status.podIP to get a synthetic address",
                ));
            }
        }
    }
    let mut next_pod = u32::from(pod_range.network()) + 1;
    let last_pod = u32::from(pod_range.network()) | 0xfffe;
    let mut pods = Vec::with_capacity(seeds.len());
    for s in seeds {
        let host_ip = match s.host_ip {
            Some(ip) => ip,
            None => {
                let node = s
                    .node_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_NODE_NAME.into());
                node_ips
                    .get(&node)
                    .copied()
                    .ok_or_else(|| internal("node without address"))?
            }
        };
        let ip = if s.host_network {
            host_ip
        } else if let Some(ip) = s.pod_ip {
            ip
        } else {
            while used.contains_key(&Ipv4Addr::from(next_pod)) {
                next_pod += 1;
            }
            if next_pod > last_pod {
                return Err(s.at.error(
                    format!(
                        "no synthetic address left in {SYNTHETIC_POD_CIDR} for pod {}/{}",
                        s.namespace, s.name
                    ),
                    "give pods explicit status.podIP values, or fewer replicas",
                ));
            }
            let ip = Ipv4Addr::from(next_pod);
            used.insert(ip, format!("{}/{}", s.namespace, s.name));
            ip
        };
        pods.push(PodInfo {
            namespace: s.namespace,
            name: s.name,
            labels: s.labels,
            ip,
            host_ip,
            host_network: s.host_network,
            ports: s.ports,
        });
    }
    Ok(pods)
}

fn internal(e: impl fmt::Display) -> ManifestError {
    ManifestError {
        file: "<knsim>".into(),
        line: 0,
        column: 0,
        message: format!("internal error: {e}"),
        hint: "please report this as a knsim bug".into(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn load(text: &str) -> Result<Manifests, ManifestError> {
        parse_manifests(&[("bad.yaml".to_string(), text.to_string())])
    }

    fn error(text: &str) -> ManifestError {
        match load(text) {
            Ok(_) => panic!("should be rejected:\n{text}"),
            Err(e) => e,
        }
    }

    /// Asserts position, message fragment and hint fragment, and that the
    /// rendered error has the `file:line:column: error:` shape.
    fn assert_error(text: &str, line: usize, column: usize, message: &str, hint: &str) {
        let e = error(text);
        let shown = e.to_string();
        assert_eq!((e.line, e.column), (line, column), "{shown}");
        assert!(e.message.contains(message), "message: {shown}");
        assert!(e.hint.contains(hint), "hint: {shown}");
        assert!(
            shown.starts_with(&format!("bad.yaml:{line}:{column}: error: ")),
            "{shown}"
        );
        assert!(shown.contains("\n  hint: "), "{shown}");
    }

    const HEAD: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: prod\nspec:\n";

    #[test]
    fn misspelt_spec_field() {
        assert_error(
            &format!("{HEAD}  podSelecter: {{}}\n"),
            7,
            3,
            "unknown field `podSelecter`",
            "did you mean `podSelector`?",
        );
    }

    #[test]
    fn misspelt_peer_field_and_wrong_direction() {
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - from:\n    - podselector: {{}}\n"),
            10,
            7,
            "spec.ingress[0].from[0]: unknown field `podselector`",
            "did you mean `podSelector`?",
        );
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - to: []\n"),
            9,
            5,
            "unknown field `to`",
            "ingress rules list their peers under `from`",
        );
    }

    #[test]
    fn invalid_operator() {
        let text = format!(
            "{HEAD}  podSelector:\n    matchExpressions:\n    - key: app\n      operator: Equals\n      values: [web]\n"
        );
        assert_error(
            &text,
            10,
            17,
            "matchExpressions[0].operator: unsupported value \"Equals\"",
            "use In, NotIn",
        );
        let text = text.replace("Equals", "notin");
        assert_error(
            &text,
            10,
            17,
            "unsupported value \"notin\"",
            "did you mean `NotIn`?",
        );
    }

    #[test]
    fn operator_values_rules() {
        let text = format!(
            "{HEAD}  podSelector:\n    matchExpressions:\n    - key: app\n      operator: In\n"
        );
        assert_error(
            &text,
            9,
            7,
            "must be specified when `operator` is 'In' or 'NotIn'",
            "non-empty list",
        );
        let text = format!(
            "{HEAD}  podSelector:\n    matchExpressions:\n    - {{key: app, operator: Exists, values: [a]}}\n"
        );
        assert_error(
            &text,
            9,
            7,
            "may not be specified when `operator` is 'Exists'",
            "remove `values`",
        );
    }

    #[test]
    fn port_out_of_range() {
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - ports:\n    - port: 70000\n"),
            10,
            13,
            "port 70000 is out of range: must be between 1 and 65535",
            "1-65535",
        );
    }

    #[test]
    fn end_port_rules() {
        assert_error(
            &format!(
                "{HEAD}  podSelector: {{}}\n  ingress:\n  - ports:\n    - port: 8080\n      endPort: 8000\n"
            ),
            10,
            7,
            "endPort: 8000 must be greater than or equal to `port` (8080)",
            "inclusive end",
        );
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{endPort: 90}}]\n"),
            9,
            13,
            "may not be specified when `port` is not specified",
            "start of the range",
        );
        assert_error(
            &format!(
                "{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{port: http, endPort: 90}}]\n"
            ),
            9,
            13,
            "may not be specified when `port` is non-numeric",
            "numeric",
        );
    }

    #[test]
    fn named_and_quoted_ports() {
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{port: \"80\"}}]\n"),
            9,
            20,
            "port name `80` must contain at least one letter",
            "without quotes",
        );
        assert_error(
            &format!(
                "{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{port: 80, protocol: tcp}}]\n"
            ),
            9,
            34,
            "unsupported value \"tcp\"",
            "protocols are upper case: TCP",
        );
    }

    #[test]
    fn invalid_cidr() {
        assert_error(
            &format!(
                "{HEAD}  podSelector: {{}}\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/33\n"
            ),
            11,
            15,
            "not a valid CIDR",
            "n between 0 and 32",
        );
    }

    #[test]
    fn except_must_be_strict_subset() {
        let text = format!(
            "{HEAD}  podSelector: {{}}\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/16\n        except: [10.0.0.0/16]\n"
        );
        assert_error(
            &text,
            11,
            9,
            "must be a strict subset of `cidr`",
            "inside 10.0.0.0/16",
        );
        let text = text.replace("except: [10.0.0.0/16]", "except: [192.168.0.0/24]");
        assert_error(
            &text,
            11,
            9,
            "192.168.0.0/24 must be a strict subset",
            "inside",
        );
    }

    #[test]
    fn peer_shape() {
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - from: [{{}}]\n"),
            9,
            12,
            "must specify a peer",
            "omit `from`/`to`",
        );
        assert_error(
            &format!(
                "{HEAD}  podSelector: {{}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: 10.0.0.0/8}}\n      podSelector: {{}}\n"
            ),
            10,
            7,
            "may not specify both ipBlock and another peer",
            "two entries",
        );
    }

    #[test]
    fn policy_types() {
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  policyTypes: [Ingress, ingress]\n"),
            8,
            26,
            "unsupported value \"ingress\"",
            "case-sensitive",
        );
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  policyTypes: [Ingress, Egress, Ingress]\n"),
            7,
            3,
            "may not specify more than two policyTypes",
            "Ingress, Egress",
        );
    }

    #[test]
    fn labels_and_names() {
        assert_error(
            &format!("{HEAD}  podSelector: {{matchLabels: {{app: \"web app\"}}}}\n"),
            7,
            36,
            "label value `web app`",
            "alphanumerics",
        );
        assert_error(
            &format!("{HEAD}  podSelector: {{matchLabels: {{version: 2}}}}\n"),
            7,
            40,
            "label value must be a string, found integer 2",
            "quote it: \"2\"",
        );
        assert_error(
            &format!("{HEAD}  podSelector: {{matchLabels: {{-app: web}}}}\n"),
            7,
            31,
            "invalid label key",
            "prefix/name",
        );
        assert_error(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: Allow_All}\n",
            3,
            11,
            "name: `Allow_All` must be a lowercase RFC 1123 subdomain",
            "lowercase",
        );
        assert_error(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: prod}\n",
            1,
            1,
            "metadata.name: Required value",
            "metadata",
        );
    }

    #[test]
    fn kinds_and_api_versions() {
        assert_error(
            "apiVersion: networking.k8s.io/v1\nkind: Networkpolicy\nmetadata: {name: p}\n",
            2,
            7,
            "unknown kind `Networkpolicy`",
            "did you mean `NetworkPolicy`?",
        );
        assert_error(
            "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\n",
            1,
            1,
            "apiVersion `extensions/v1beta1` is not served for kind NetworkPolicy",
            "networking.k8s.io/v1",
        );
        assert_error(
            "apiVersion: v1\nmetadata: {name: p}\n",
            1,
            1,
            "missing field `kind`",
            "kind: NetworkPolicy",
        );
    }

    #[test]
    fn yaml_syntax_and_shape() {
        assert_error(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: [a\n---\nkind: Pod\n",
            4,
            1,
            "did not find expected",
            "YAML syntax",
        );
        assert_error(
            &format!("{HEAD}  podSelector: {{}}\n  ingress: {{from: []}}\n"),
            8,
            12,
            "spec.ingress: invalid type: map, expected a sequence",
            "type",
        );
        let e = error("- just\n- a list\n");
        assert_eq!((e.line, e.column), (1, 1), "{e}");
    }

    #[test]
    fn duplicates_point_at_the_second_name() {
        let p = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n";
        let e = error(&format!("{p}---\n{p}"));
        assert_eq!((e.line, e.column), (9, 9), "{e}");
        assert!(
            e.message
                .contains("NetworkPolicy default/p is defined twice (first at bad.yaml:4)"),
            "{e}"
        );
    }

    #[test]
    fn defaulting() {
        let m = load(&format!(
            "{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{port: 80}}]\n---\n{}",
            HEAD.replace("name: p", "name: q") + "  egress: [{}]\n"
        ))
        .expect("loads");
        let ps = m.cluster.policies();
        assert_eq!(ps[0].name, "p");
        assert_eq!(
            ps[0].policy_types,
            PolicyTypes {
                ingress: true,
                egress: false
            }
        );
        assert_eq!(ps[0].ingress[0].ports[0].protocol, Protocol::Tcp);
        assert_eq!(
            ps[1].policy_types,
            PolicyTypes {
                ingress: true,
                egress: true
            }
        );
        // A policy without spec selects every pod of its namespace, ingress only.
        let m =
            load("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n")
                .expect("loads");
        let p = &m.cluster.policies()[0];
        assert_eq!(p.namespace, "default");
        assert!(p.pod_selector.is_everything());
        assert_eq!(
            p.policy_types,
            PolicyTypes {
                ingress: true,
                egress: false
            }
        );
    }

    const REAL_DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations: {deployment.kubernetes.io/revision: \"3\"}
  labels: {app: web}
spec:
  replicas: 3
  revisionHistoryLimit: 10
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%}}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
      annotations: {prometheus.io/scrape: \"true\"}
    spec:
      serviceAccountName: web
      nodeName: worker-2
      containers:
      - name: nginx
        image: nginx:1.27
        imagePullPolicy: IfNotPresent
        ports:
        - {containerPort: 8080, name: http}
        - {containerPort: 9090, name: metrics, protocol: TCP}
        readinessProbe: {httpGet: {path: /healthz, port: http}}
        resources: {requests: {cpu: 100m}}
        env: [{name: A, value: b}]
      volumes: [{name: cache, emptyDir: {}}]
status:
  availableReplicas: 3
";

    #[test]
    fn real_deployment_expands_to_pods() {
        let m = load(REAL_DEPLOYMENT).expect("real manifests load");
        let pods = m.cluster.pods();
        let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web-0", "web-1", "web-2"]);
        assert_eq!(pods[0].ip, Ipv4Addr::new(10, 244, 0, 1));
        assert_eq!(pods[2].ip, Ipv4Addr::new(10, 244, 0, 3));
        assert_eq!(pods[0].host_ip, Ipv4Addr::new(172, 18, 0, 2));
        assert_eq!(
            pods[0].labels.get("tier").map(String::as_str),
            Some("front")
        );
        assert!(pods[0].has_named_port("http", Protocol::Tcp, 8080));
        assert!(pods[0].has_named_port("metrics", Protocol::Tcp, 9090));
        // The namespace exists implicitly, with the automatic label.
        let shop = m.cluster.namespace_labels("shop").expect("namespace");
        assert_eq!(
            shop.get("kubernetes.io/metadata.name").map(String::as_str),
            Some("shop")
        );
    }

    #[test]
    fn typos_in_workloads_are_errors() {
        let e = error(&REAL_DEPLOYMENT.replace("imagePullPolicy", "imagePullPolicyy"));
        assert!(
            e.message.contains("unknown field `imagePullPolicyy`"),
            "{e}"
        );
        assert!(e.hint.contains("did you mean `imagePullPolicy`?"), "{e}");
        assert_eq!((e.line, e.column), (25, 9), "{e}");
        let e =
            error(&REAL_DEPLOYMENT.replace("matchLabels: {app: web}", "matchLabels: {app: api}"));
        assert!(
            e.message.contains("does not match template `labels`"),
            "{e}"
        );
        let e = error(&REAL_DEPLOYMENT.replace("replicas: 3", "replicas: -1"));
        assert!(
            e.message
                .contains("spec.replicas: -1 must be greater than or equal to 0"),
            "{e}"
        );
        let e = error(&REAL_DEPLOYMENT.replace("replicas: 3", "replicas: 2000000000"));
        assert!(e.message.contains("would exceed knsim's limit"), "{e}");
        let e = error(&REAL_DEPLOYMENT.replace(
            "containerPort: 8080, name: http",
            "containerPort: 8080, name: HTTP",
        ));
        assert!(e.message.contains("port name `HTTP`"), "{e}");
    }

    #[test]
    fn pods_statefulsets_and_addresses() {
        let text = "
apiVersion: v1
kind: Pod
metadata: {name: fixed, namespace: a}
spec:
  hostNetwork: false
  containers: [{name: c}]
status: {podIP: 10.244.0.1, hostIP: 192.168.5.5, phase: Running, conditions: []}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system}
spec:
  hostNetwork: true
  nodeName: worker-1
  containers: [{name: c}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: a}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: a}
spec: {ports: [{port: 5432}]}
";
        let m = load(text).expect("loads");
        let c = &m.cluster;
        assert_eq!(
            c.pod("a", "fixed").expect("pod").ip,
            Ipv4Addr::new(10, 244, 0, 1)
        );
        assert_eq!(
            c.pod("a", "fixed").expect("pod").host_ip,
            Ipv4Addr::new(192, 168, 5, 5)
        );
        // Synthetic addresses skip the explicit one.
        assert_eq!(
            c.pod("a", "db-0").expect("pod").ip,
            Ipv4Addr::new(10, 244, 0, 2)
        );
        assert_eq!(
            c.pod("a", "db-1").expect("pod").ip,
            Ipv4Addr::new(10, 244, 0, 3)
        );
        // Nodes in name order: knsim-node, worker-1.
        assert_eq!(
            c.pod("a", "db-0").expect("pod").host_ip,
            Ipv4Addr::new(172, 18, 0, 2)
        );
        let agent = c.pod("kube-system", "agent").expect("pod");
        assert!(agent.host_network);
        assert_eq!(agent.ip, Ipv4Addr::new(172, 18, 0, 3));
        assert_eq!(agent.ip, agent.host_ip);
        assert_eq!(m.skipped, ["Service a/db (bad.yaml:32)"]);
        let e = error(&text.replace("name: db, namespace: a}\nspec:\n  serviceName", "name: fixed, namespace: a}\nspec:\n  serviceName").replace("replicas: 2", "replicas: 1").replace("\n---\napiVersion: v1\nkind: Service", "\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: fixed-0, namespace: a}\nspec: {containers: [{name: c}]}\n---\napiVersion: v1\nkind: Service"));
        assert!(
            e.message
                .contains("pod a/fixed-0 (from Pod) already exists (from StatefulSet a/fixed"),
            "{e}"
        );
        let e = error(&text.replace("status: {podIP: 10.244.0.1", "status: {podIP: 10.244.0.300"));
        assert!(
            e.message.contains("`10.244.0.300` is not an IPv4 address"),
            "{e}"
        );
    }

    #[test]
    fn load_dir_and_truth_table() {
        let dir = std::env::temp_dir().join(format!("knsim-netpol-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(
            dir.join("10-pods.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {pod: a}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {pod: b}}\nspec: {containers: [{name: c}]}\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("20-policy.yml"),
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-b, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: b}}\n",
        )
        .expect("write");
        std::fs::write(dir.join("notes.txt"), "not yaml: [").expect("write");
        let table = crate::netpol::truth_table_for_dir(&dir).expect("table");
        assert!(
            table.contains("TCP/80\n     x/a x/b\nx/a  .   X\nx/b  .   X\n"),
            "{table}"
        );
        assert!(table.contains("x/a -> x/b TCP/80: denied\n  pod b in namespace x is isolated for ingress by policy [deny-b]"), "{table}");
        std::fs::write(
            dir.join("30-bad.yaml"),
            format!("{HEAD}  podSelector: {{}}\n  ingress: [{{ports: [{{port: 70000}}]}}]\n"),
        )
        .expect("write");
        let e = crate::netpol::truth_table_for_dir(&dir).expect_err("bad port");
        assert!(e.to_string().contains("30-bad.yaml:8:29: error:"), "{e}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        let e = load_dir(&dir).expect_err("gone");
        assert!(
            e.to_string().contains("error: cannot read directory"),
            "{e}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Mutated manifests (bytes deleted, inserted, truncated) load or fail
        /// with a positioned error, and never panic.
        #[test]
        fn mutated_manifests_never_panic(
            cut in 0usize..2000,
            at in 0usize..2000,
            insert in prop::sample::select(vec!["", ":", "- ", "{", "]", "\n", "  ", "'", "&a ", "*a", "!!int ", "---\n", "70000", "\t"]),
            truncate in any::<bool>(),
        ) {
            let base = format!("{REAL_DEPLOYMENT}---\n{HEAD}  podSelector: {{matchExpressions: [{{key: app, operator: In, values: [web]}}]}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}\n    ports: [{{port: 80, endPort: 90}}, {{port: http}}]\n");
            let mut bytes = base.into_bytes();
            let at = at.min(bytes.len());
            let cut_end = (at + cut % 7).min(bytes.len());
            bytes.drain(at..cut_end);
            for (i, b) in insert.bytes().enumerate() {
                bytes.insert(at + i, b);
            }
            if truncate {
                bytes.truncate(cut.min(bytes.len()));
            }
            if let Ok(text) = String::from_utf8(bytes) {
                match load(&text) {
                    Ok(m) => { let _ = crate::netpol::render_truth_table(&m.cluster); }
                    Err(e) => prop_assert!(e.to_string().starts_with("bad.yaml:")),
                }
            }
        }
    }
}
