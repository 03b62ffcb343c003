//! The Service object (`v1`): type, ClusterIP or headless, selector, ports
//! and traffic policies, as written; whether the cluster model has such a
//! Service is for the scenario reader to say.

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::checked::{unchecked, Checked, FromRaw};
use super::labels::LabelMap;
use super::metadata::Meta;
use super::scalars::{convert, opt_string, protocol_field, Scalar};
use crate::netpol::names::{check_port_name, check_port_number};
use crate::netpol::selector::Labels;
use crate::protocol::Protocol;

/// A Service port's `targetPort`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    /// A container port number.
    Number(u16),
    /// A container port name.
    Name(String),
}

/// One Service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// `name`.
    pub name: Option<String>,
    /// `port`: the Service's own port.
    pub port: u16,
    /// `targetPort` (default: `port`).
    pub target_port: TargetPort,
    /// `protocol` (default TCP).
    pub protocol: Protocol,
    /// `nodePort` (NodePort and LoadBalancer types; checked against the
    /// range by the scenario reader, as the apiserver does).
    pub node_port: Option<u16>,
}

/// The parts of a Service's spec the scenario reader judges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// `type` (default `ClusterIP`).
    pub service_type: String,
    /// `clusterIP: None`.
    pub headless: bool,
    /// `selector`; `None`: no selector (endpoints managed by hand).
    pub selector: Option<Labels>,
    /// `ports`.
    pub ports: Vec<ServicePort>,
    /// `externalTrafficPolicy`.
    pub external_traffic_policy: Option<String>,
    /// `internalTrafficPolicy`.
    pub internal_traffic_policy: Option<String>,
    /// `sessionAffinity`.
    pub session_affinity: Option<String>,
    /// `publishNotReadyAddresses`.
    pub publish_not_ready_addresses: bool,
    /// `trafficDistribution`.
    pub traffic_distribution: Option<String>,
    /// `allocateLoadBalancerNodePorts` (default true).
    pub allocate_load_balancer_node_ports: bool,
    /// The fields given that the cluster model has no mechanism for
    /// (`externalIPs`, `loadBalancerIP`, `loadBalancerSourceRanges`,
    /// `loadBalancerClass`, `healthCheckNodePort`), by their API names.
    pub unmodelled: Vec<&'static str>,
}

/// `port` or `targetPort` as a number, validated where it stands.
pub(super) struct PortNumber(u16);

impl<'de> Deserialize<'de> for PortNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| match s {
            Scalar::Int(v) => check_port_number(i64::try_from(v).unwrap_or(i64::MAX))
                .map(PortNumber)
                .map_err(|e| (e, "a port number is 1-65535".into())),
            Scalar::Str(v) | Scalar::Other(v) => Err((
                format!("expected a port number, found {v}"),
                "a Service port is a number 1-65535".into(),
            )),
        })
    }
}

pub(super) struct Target(TargetPort);

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        convert(d, |s| match s {
            Scalar::Int(v) => check_port_number(i64::try_from(v).unwrap_or(i64::MAX))
                .map(|p| Target(TargetPort::Number(p)))
                .map_err(|e| (e, "a port number is 1-65535".into())),
            Scalar::Str(v) => check_port_name(&v)
                .map(|()| Target(TargetPort::Name(v)))
                .map_err(|e| {
                    (
                        e,
                        "targetPort is a number or a container port's name".into(),
                    )
                }),
            Scalar::Other(v) => Err((
                format!("expected a port number or name, found {v}"),
                "targetPort is a number or a container port's name".into(),
            )),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawServicePort {
    #[serde(default, deserialize_with = "opt_string")]
    name: Option<String>,
    port: PortNumber,
    #[serde(default)]
    target_port: Option<Target>,
    #[serde(default, deserialize_with = "protocol_field")]
    protocol: Option<Protocol>,
    #[serde(default)]
    node_port: Option<PortNumber>,
    #[serde(default, rename = "appProtocol")]
    _app_protocol: Option<IgnoredAny>,
}

impl FromRaw for ServicePort {
    type Raw = RawServicePort;
    fn from_raw(raw: RawServicePort) -> Result<Self, (String, String)> {
        Ok(ServicePort {
            name: raw.name,
            port: raw.port.0,
            target_port: raw
                .target_port
                .map_or(TargetPort::Number(raw.port.0), |t| t.0),
            protocol: raw.protocol.unwrap_or(Protocol::Tcp),
            node_port: raw.node_port.map(|p| p.0),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawServiceSpec {
    #[serde(default, rename = "type", deserialize_with = "opt_string")]
    service_type: Option<String>,
    #[serde(default, rename = "clusterIP", deserialize_with = "opt_string")]
    cluster_ip: Option<String>,
    #[serde(default)]
    selector: Option<LabelMap>,
    #[serde(default)]
    ports: Option<Vec<Checked<ServicePort>>>,
    #[serde(default, deserialize_with = "opt_string")]
    external_traffic_policy: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    internal_traffic_policy: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    session_affinity: Option<String>,
    #[serde(default)]
    publish_not_ready_addresses: Option<bool>,
    #[serde(default, deserialize_with = "opt_string")]
    traffic_distribution: Option<String>,
    // Accepted and ignored: addresses the model assigns itself, and
    // settings the scenario reader refuses by the type they belong to.
    #[serde(default, rename = "clusterIPs")]
    _cluster_ips: Option<IgnoredAny>,
    #[serde(default, rename = "ipFamilies")]
    _ip_families: Option<IgnoredAny>,
    #[serde(default, rename = "ipFamilyPolicy")]
    _ip_family_policy: Option<IgnoredAny>,
    #[serde(default, rename = "sessionAffinityConfig")]
    _session_affinity_config: Option<IgnoredAny>,
    #[serde(default, rename = "externalIPs")]
    external_ips: Option<IgnoredAny>,
    #[serde(default, rename = "externalName")]
    _external_name: Option<IgnoredAny>,
    #[serde(default, rename = "loadBalancerIP")]
    load_balancer_ip: Option<IgnoredAny>,
    #[serde(default)]
    load_balancer_source_ranges: Option<IgnoredAny>,
    #[serde(default)]
    load_balancer_class: Option<IgnoredAny>,
    #[serde(default)]
    allocate_load_balancer_node_ports: Option<bool>,
    #[serde(default)]
    health_check_node_port: Option<IgnoredAny>,
}

impl FromRaw for ServiceSpec {
    type Raw = RawServiceSpec;
    fn from_raw(raw: RawServiceSpec) -> Result<Self, (String, String)> {
        const TYPES: [&str; 4] = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
        let service_type = raw.service_type.unwrap_or_else(|| "ClusterIP".into());
        if !TYPES.contains(&service_type.as_str()) {
            return Err((
                format!("type: Unsupported value: \"{service_type}\""),
                format!("supported values: {}", TYPES.join(", ")),
            ));
        }
        Ok(ServiceSpec {
            service_type,
            headless: raw.cluster_ip.as_deref() == Some("None"),
            selector: raw.selector.map(|l| l.0).filter(|l| !l.is_empty()),
            ports: unchecked(raw.ports),
            external_traffic_policy: raw.external_traffic_policy,
            internal_traffic_policy: raw.internal_traffic_policy,
            session_affinity: raw.session_affinity,
            publish_not_ready_addresses: raw.publish_not_ready_addresses.unwrap_or(false),
            traffic_distribution: raw.traffic_distribution,
            allocate_load_balancer_node_ports: raw
                .allocate_load_balancer_node_ports
                .unwrap_or(true),
            unmodelled: [
                ("externalIPs", raw.external_ips.is_some()),
                ("loadBalancerIP", raw.load_balancer_ip.is_some()),
                (
                    "loadBalancerSourceRanges",
                    raw.load_balancer_source_ranges.is_some(),
                ),
                ("loadBalancerClass", raw.load_balancer_class.is_some()),
                ("healthCheckNodePort", raw.health_check_node_port.is_some()),
            ]
            .into_iter()
            .filter_map(|(name, set)| set.then_some(name))
            .collect(),
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServiceDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) metadata: Checked<Meta>,
    pub(super) spec: Checked<ServiceSpec>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}
