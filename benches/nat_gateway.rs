//! The simulator's own cost of one connection through a NAT gateway,
//! against the number of destinations and of the gateway's addresses.
//!
//! Each step is what the cluster run does for an egress connection: open it
//! ([`NatGateways::open`]: route, port accounting), send a request and take
//! its reply on it, close it. Every destination holds 20,000 connections on
//! each address beforehand, so the counters are in use. Cases: 1, 10 and
//! 100 destinations with 1 address, and 1, 3 and 8 addresses with 10
//! destinations; compare the medians across cases (the target is a
//! largest/smallest ratio of at most 1.3).
//!
//! Run: `cargo bench -p knsim-benches --bench nat_gateway -- --warm-up-time 1 --measurement-time 3`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sim_core::{SimDuration, SimTime};
use sim_models::nat_gateway::{Destination, GatewaySpec, NatGatewayConfig, NatGateways};
use sim_models::protocol::Protocol;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A gateway with `addresses`, routed from 3 zones, with `destinations`
/// each holding 20,000 connections per address.
fn gateway(destinations: u32, addresses: u8) -> NatGateways {
    let cfg = NatGatewayConfig::new(
        vec![GatewaySpec {
            name: "nat-a".into(),
            zone: 0,
            addresses,
        }],
        vec![Some(0); 3],
    );
    let mut nat = NatGateways::new(&cfg);
    for i in 0..destinations {
        let d = nat.destination(Destination {
            ip: Ipv4Addr::from(0xCB00_7100 + i),
            port: 443,
            protocol: Protocol::Tcp,
        });
        for _ in 0..20_000 * u32::from(addresses) {
            nat.open(0, d, SimTime::ZERO).expect("room");
        }
    }
    nat
}

fn connection(c: &mut Criterion) {
    let cases: [(&str, u32, u8); 6] = [
        ("destinations", 1, 1),
        ("destinations", 10, 1),
        ("destinations", 100, 1),
        ("addresses", 10, 1),
        ("addresses", 10, 3),
        ("addresses", 10, 8),
    ];
    for group in ["destinations", "addresses"] {
        let mut g = c.benchmark_group(format!("nat_gateway/{group}"));
        g.throughput(Throughput::Elements(1));
        for &(_, dests, addrs) in cases.iter().filter(|c| c.0 == group) {
            let mut nat = gateway(dests, addrs);
            let n = if group == "destinations" {
                u64::from(dests)
            } else {
                u64::from(addrs)
            };
            let mut i = 0u32;
            // The source zone cycles on its own, so every case routes the
            // same sequence of zones and only the destination count varies.
            let mut zone = 0u32;
            let mut now = SimTime::ZERO;
            g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| {
                    i = (i + 1) % dests;
                    zone = (zone + 1) % 3;
                    now += SimDuration::from_micros(1);
                    let mut conn = nat.open(zone, i, now).expect("room");
                    nat.send(&mut conn, now, 1_000).expect("up");
                    nat.receive(&mut conn, now, 10_000).expect("up");
                    nat.close(&mut conn);
                    black_box(conn)
                })
            });
        }
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = connection
}
criterion_main!(benches);
