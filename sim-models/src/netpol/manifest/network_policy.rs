//! The NetworkPolicy object: its spec (pod selector, rules, peers, ports,
//! `policyTypes`) with the API server's defaulting and validation.

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::checked::{unchecked, Checked, FromRaw};
use super::metadata::Meta;
use super::scalars::{convert, protocol_field, want_int, want_string, Scalar};
use crate::ipam::{CidrError, Ipv4Cidr};
use crate::netpol::names::{check_port_name, check_port_number};
use crate::netpol::policy::{Direction, IpBlock, Peer, PolicyPort, PolicyTypes, PortSpec, Rule};
use crate::netpol::selector::LabelSelector;
use crate::protocol::Protocol;

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
pub(super) struct RawIpBlock {
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
pub(super) struct RawPeer {
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
pub(super) struct RawPolicyPort {
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
pub(super) struct RawPolicySpec {
    #[serde(default)]
    pod_selector: Option<Checked<LabelSelector>>,
    #[serde(default)]
    ingress: Option<Vec<Checked<IngressRule>>>,
    #[serde(default)]
    egress: Option<Vec<Checked<EgressRule>>>,
    #[serde(default)]
    policy_types: Option<Vec<PolicyTypeField>>,
}

pub(super) struct PolicySpec {
    pub(super) pod_selector: LabelSelector,
    pub(super) policy_types: PolicyTypes,
    pub(super) ingress: Vec<Rule>,
    pub(super) egress: Vec<Rule>,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct NetworkPolicyDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) metadata: Checked<Meta>,
    #[serde(default)]
    pub(super) spec: Option<Checked<PolicySpec>>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}
