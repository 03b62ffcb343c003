//! Object metadata (shared by every kind) and the Namespace object, which is
//! only metadata.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::checked::{Checked, FromRaw};
use super::labels::LabelMap;
use super::scalars::opt_string;
use crate::netpol::names::{check_dns1123_label, check_dns1123_subdomain};
use crate::netpol::selector::Labels;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Meta {
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) name: Option<String>,
    #[serde(default, deserialize_with = "opt_string")]
    pub(super) namespace: Option<String>,
    #[serde(default)]
    labels: Option<LabelMap>,
    // Read for the few that affect networking (Topology Aware Routing's
    // `service.kubernetes.io/topology-mode`); the rest are ignored.
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, serde_yaml_ng::Value>>,
    #[serde(default, rename = "generateName")]
    pub(super) _generate_name: Option<IgnoredAny>,
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
    /// The annotation `key` when it is a string.
    pub(super) fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key)?.as_str()
    }

    pub(super) fn labels(&self) -> Labels {
        self.labels
            .as_ref()
            .map(|l| l.0.clone())
            .unwrap_or_default()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct NamespaceDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) metadata: Checked<Meta>,
    #[serde(default, rename = "spec")]
    _spec: Option<IgnoredAny>,
    #[serde(default, rename = "status")]
    _status: Option<IgnoredAny>,
}
