//! Lookups that take exactly five seconds more: glibc's A and AAAA queries
//! race to insert one conntrack entry.
//!
//! ```text
//!   pod ──A────► DNAT kube-dns ─┐  both packets build an entry for the same
//!    │  ──AAAA─► DNAT kube-dns ─┤  5-tuple; the second to confirm loses:
//!    │                          └► kernel 3.10 drops it (insert_failed)
//!    └─ resolver: no AAAA reply ... 5 s timeout ... ask again, one at a time
//! ```
//!
//! Runs the bundled `dns_conntrack_race` scenario: kernel 3.10, then 4.19,
//! 5.x, `single-request-reopen` and NodeLocal DNSCache side by side. Which
//! lookups are slow and by how much come from the conntrack insert race, the
//! resolver's timers and CoreDNS; how often the two packets are processed at
//! once is the scenario's stated assumption.
//!
//! `cargo run --release --example dns_conntrack_race`

use std::process::ExitCode;

fn main() -> ExitCode {
    knsim_examples::replay("dns_conntrack_race")
}
