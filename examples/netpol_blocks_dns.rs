//! A default-deny egress policy that forgets DNS.
//!
//! ```text
//!   pod ──UDP/53──► kube-dns      dropped: egress not allowed (default-deny)
//!    │  glibc: 5 s timeout x attempts x search list ... "Temporary failure in name resolution"
//!    └──TCP/8080──► backend       never tried: the name did not resolve
//! ```
//!
//! Runs the bundled `netpol_blocks_dns` scenario: the broken default-deny,
//! the two common wrong fixes (port 53 without a protocol, a namespace label
//! kube-system does not carry) and the right one, side by side. The verdicts
//! come from the NetworkPolicy model applied to the real manifests in
//! `scenarios/netpol_blocks_dns.yaml`; the failure times from the resolver.
//!
//! `cargo run --release --example netpol_blocks_dns`

use std::process::ExitCode;

fn main() -> ExitCode {
    knsim_examples::replay("netpol_blocks_dns")
}
