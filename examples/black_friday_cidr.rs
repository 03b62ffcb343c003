//! Black Friday: a region failover meets a /24 pod network.
//!
//! ```text
//!   us-east-1 fails ──► all traffic to us-west-2 ──► checkout 50 → 500 pods
//!                                                        │
//!                      pod network 10.0.0.0/24 ◄─────────┘ IPAM: 254 addresses
//!                        254 pods Running   246 pods ContainerCreating
//!                                            (FailedCreatePodSandBox)
//! ```
//!
//! Runs the bundled `black_friday_cidr` scenario, the broken /24 and the /22
//! fix side by side, and tells what happened, why, and what the fix changed.
//! Every figure comes out of the models; see `scenarios/black_friday_cidr.yaml`
//! for what is given and what is not.
//!
//! `cargo run --release --example black_friday_cidr`

use std::process::ExitCode;

fn main() -> ExitCode {
    knsim_examples::replay("black_friday_cidr")
}
