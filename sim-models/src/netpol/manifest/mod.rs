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
//! (annotations, images, liveness probes, volumes, strategies, `status` beyond
//! `podIP`/`hostIP`...) are accepted and ignored, so real manifests load. Objects
//! of other kinds (Service, ConfigMap...) are skipped and listed in
//! [`Manifests::skipped`]; a kind that looks like a misspelling of a supported
//! one is an error.
//!
//! Workloads: a Deployment or StatefulSet with `replicas: n` (default 1) becomes
//! pods `<name>-0` .. `<name>-(n-1)` with the template's labels and container
//! ports. A pod without `status.podIP` gets an address from
//! [`SYNTHETIC_POD_CIDR`], in (namespace, name) order.
//!
//! Nodes: a pod runs on the node `spec.nodeName`; without one, on the node of
//! the address its `status.hostIP` states, else on [`DEFAULT_NODE_NAME`]. A
//! node has one address, so every pod on it has the same host IP: the
//! `status.hostIP` its pods state wins (two different ones for one node are an
//! error, as is one address stated for two nodes); a node whose pods state
//! none gets an address from [`SYNTHETIC_NODE_CIDR`], in name order.
//!
//! Cluster scenarios read the same files with [`parse_cluster_objects`]:
//! workloads stay objects (with the pod template's `dnsConfig`,
//! `dnsPolicy`, resources and readiness probes), and Services and
//! HorizontalPodAutoscalers (`autoscaling/v2`) are read too, in `service` and
//! `hpa`; `template` reads the pod template's extras (validated in both
//! readings, as the API server would), `cluster_objects` collects them.
//!
//! Files, by what they read: `documents` (each file's documents in passes:
//! syntax, kind and apiVersion, position, object; skipped kinds), `metadata`
//! (object metadata, the Namespace object), `network_policy` (the
//! NetworkPolicy object and its defaulting), `pods` (pods, Deployments and
//! StatefulSets), `labels` (label maps and selectors), `scalars` and `checked`
//! (values and mappings validated inside serde visitors, so errors carry
//! positions), `errors` (messages and hints), `assemble` (duplicates, then
//! addresses).

mod assemble;
mod checked;
mod cluster_objects;
#[cfg(test)]
mod cluster_tests;
mod documents;
mod errors;
mod hpa;
mod labels;
mod metadata;
mod network_policy;
mod pods;
mod scalars;
mod service;
mod template;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

use super::policy::Cluster;
use assemble::build;
pub use cluster_objects::{
    parse_cluster_objects, ClusterObjects, HpaObject, ServiceObject, WorkloadObject,
};
pub use documents::Loc;
use documents::{parse_file, Reading};
pub use hpa::HpaObjectSpec;
pub use service::{ServicePort, ServiceSpec, TargetPort};
pub use template::{DnsConfigObject, ReadinessProbe, Resources};
// For other files of the module that read YAML the same way (`--expect`).
pub(in crate::netpol) use errors::{invalid, yaml_error};
pub(in crate::netpol) use scalars::{convert, protocol_field, want_int, want_string};

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
    /// Every node that runs a pod, by name, with its one address (see the
    /// module docs). A node known only by a `status.hostIP` (its pods name no
    /// `spec.nodeName`) is named by that address.
    pub nodes: BTreeMap<String, Ipv4Addr>,
    /// Objects of kinds that do not affect NetworkPolicy, as
    /// `Kind namespace/name (file:line)`, in input order.
    pub skipped: Vec<String>,
}

/// Parses manifests from `(file name, text)` pairs, in the order given.
pub fn parse_manifests(files: &[(String, String)]) -> Result<Manifests, ManifestError> {
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for (file, text) in files {
        parse_file(file, text, Reading::Netpol, &mut objects, &mut skipped)?;
    }
    build(objects, skipped)
}

/// Loads every `*.yaml` / `*.yml` file directly in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Manifests, ManifestError> {
    parse_manifests(&read_files(dir)?)
}

/// Reads a manifest file, or every `*.yaml` / `*.yml` file directly in a
/// directory, sorted by file name: `(file name, text)` pairs.
pub fn read_files(path: &Path) -> Result<Vec<(String, String)>, ManifestError> {
    let dir_name = path.display().to_string();
    let io_err = |what: String, e: std::io::Error| ManifestError {
        file: dir_name.clone(),
        line: 0,
        column: 0,
        message: format!("{what}: {e}"),
        hint: "pass a readable directory of *.yaml/*.yml manifests".into(),
    };
    let mut paths = Vec::new();
    if path.is_file() {
        paths.push(path.to_path_buf());
    } else {
        let entries =
            std::fs::read_dir(path).map_err(|e| io_err("cannot read directory".into(), e))?;
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
    }
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
    Ok(files)
}
