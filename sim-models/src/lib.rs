//! # sim-models: one module per real mechanism
//!
//! Each module models one thing operators name (IPAM, the scheduler, the
//! kubelet, Services...) and documents, ns-3 style, its scope and
//! limitations, its parameters with their sources (each figure a row of the
//! calibration document in the workspace's `docs/`, cited by its row id),
//! what it emits, and how it is validated. [`cluster`] ties them into one
//! discrete-event run on the `sim-core` engine.

pub mod app;
pub mod autoscaler;
pub mod cidr_plan;
pub mod cloud_lb;
pub mod cluster;
pub mod connections;
pub mod conntrack;
pub mod coredns;
pub mod datapath;
pub mod did_you_mean;
pub mod hpa;
pub mod ingress;
pub mod ipam;
pub mod kube_proxy;
pub mod kubelet;
pub mod mesh;
pub mod nat_gateway;
pub mod netpol;
pub mod node_lifecycle;
pub mod path;
pub mod policy_enforcement;
pub mod protocol;
pub mod resolver;
pub mod scheduler;
pub mod security_group;
pub mod service;
pub mod services;
pub mod snat;
pub mod topology;
pub mod transfer_cost;
pub mod workload;
