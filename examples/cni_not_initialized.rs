//! The CNI daemon crash-loops on every node.
//!
//! ```text
//!   calico-node down ──► new sandboxes fail: "cni plugin not initialized"
//!          │
//!          └──► node NotReady (+ up to 15 s) ──► taint not-ready:NoExecute
//!                                                   │ 300 s default toleration
//!                                                   ▼
//!                         running pods evicted; replacements: "0/6 nodes are available"
//! ```
//!
//! Runs the bundled `cni_not_initialized` scenario: a rollback after 35
//! minutes, a rollback within the toleration, and a crash on two nodes only,
//! side by side. Timings come from the node lifecycle model (kubelet status
//! updates, the controller's monitor period, the default toleration), the
//! scheduler and the kubelet's sandbox retries.
//!
//! `cargo run --release --example cni_not_initialized`

use std::process::ExitCode;

fn main() -> ExitCode {
    knsim_examples::replay("cni_not_initialized")
}
