use super::*;

fn dest(last: u8, port: u16) -> Destination {
    Destination {
        ip: Ipv4Addr::new(203, 0, 113, last),
        port,
        protocol: Protocol::Tcp,
    }
}

/// One gateway in zone 0 with `addresses`, routed from `zones` zones.
fn one_gateway(addresses: u8, zones: usize) -> NatGateways {
    let cfg = NatGatewayConfig::new(
        vec![GatewaySpec {
            name: "nat-a".into(),
            zone: 0,
            addresses,
        }],
        vec![Some(0); zones],
    );
    NatGateways::new(&cfg)
}

const T0: SimTime = SimTime::ZERO;

#[test]
fn the_55000th_connection_fits_and_the_next_fails_per_destination() {
    let mut nat = one_gateway(1, 1);
    let d = nat.destination(dest(10, 443));
    let other_port = nat.destination(dest(10, 80));
    let other_ip = nat.destination(dest(11, 443));
    let udp = nat.destination(Destination {
        protocol: Protocol::Udp,
        ..dest(10, 443)
    });
    for _ in 0..CONNECTIONS_PER_DESTINATION {
        nat.open(0, d, T0).expect("room under the limit");
    }
    assert_eq!(nat.connections(0, d, 0), 55_000);
    assert_eq!(
        nat.open(0, d, T0),
        Err(NatDrop::PortAllocation {
            gateway: 0,
            destination: d
        })
    );
    assert_eq!(nat.stats(0).error_port_allocation, 1);
    // Each other tuple (port, IP, protocol) has its own 55,000.
    for other in [other_port, other_ip, udp] {
        nat.open(0, other, T0).expect("another destination");
    }
    assert_eq!(nat.stats(0).active, 55_003);
}

#[test]
fn each_address_adds_55000_to_the_same_destination() {
    for addresses in [1u8, 2, 3, 8] {
        let mut nat = one_gateway(addresses, 1);
        let d = nat.destination(dest(10, 443));
        let room = CONNECTIONS_PER_DESTINATION * u32::from(addresses);
        for _ in 0..room {
            nat.open(0, d, T0).expect("room");
        }
        for a in 0..addresses {
            assert_eq!(nat.connections(0, d, a), 55_000, "address {a}");
        }
        assert!(matches!(
            nat.open(0, d, T0),
            Err(NatDrop::PortAllocation { .. })
        ));
        assert_eq!(nat.stats(0).error_port_allocation, 1);
    }
}

#[test]
fn close_releases_the_port_once() {
    let mut nat = one_gateway(1, 1);
    let d = nat.destination(dest(10, 443));
    let mut conns: Vec<NatConn> = (0..CONNECTIONS_PER_DESTINATION)
        .map(|_| nat.open(0, d, T0).expect("room"))
        .collect();
    assert!(nat.open(0, d, T0).is_err());
    let mut c = conns.pop().expect("one");
    nat.close(&mut c);
    nat.close(&mut c);
    assert_eq!(nat.connections(0, d, 0), 54_999);
    assert_eq!(nat.stats(0).active, 54_999);
    nat.open(0, d, T0).expect("the released port");
    assert!(nat.open(0, d, T0).is_err());
}

#[test]
fn idle_350_s_exactly_gets_an_rst_349_999_s_does_not() {
    let mut nat = one_gateway(1, 1);
    let d = nat.destination(dest(10, 443));
    let mut a = nat.open(0, d, T0).expect("room");
    let mut b = nat.open(0, d, T0).expect("room");
    let just_under = T0 + SimDuration::from_millis(349_999);
    assert_eq!(nat.send(&mut a, just_under, 100), Ok(()));
    assert_eq!(nat.stats(0).idle_timeout, 0);
    // The send refreshed `a`: 350 s after it is the edge again.
    let at_350 = just_under + SimDuration::from_secs(350);
    assert_eq!(
        nat.send(&mut a, at_350, 100),
        Err(NatDrop::IdleTimeout { gateway: 0 })
    );
    assert_eq!(
        nat.send(&mut b, T0 + SimDuration::from_secs(350), 100),
        Err(NatDrop::IdleTimeout { gateway: 0 })
    );
    assert_eq!(nat.stats(0).idle_timeout, 2);
    // Their ports are free; closing them afterwards releases nothing more.
    assert_eq!(nat.connections(0, d, 0), 0);
    nat.close(&mut a);
    assert_eq!(nat.stats(0).active, 0);
    // Replies count as activity too.
    let mut c = nat.open(0, d, T0).expect("room");
    nat.receive(&mut c, T0 + SimDuration::from_secs(300), 10)
        .expect("up");
    assert_eq!(
        nat.send(&mut c, T0 + SimDuration::from_secs(649), 10),
        Ok(())
    );
}

#[test]
fn a_gateway_down_drops_every_zone_routed_to_it_and_forgets_its_connections() {
    let cfg = NatGatewayConfig::new(
        vec![
            GatewaySpec {
                name: "nat-a".into(),
                zone: 0,
                addresses: 1,
            },
            GatewaySpec {
                name: "nat-b".into(),
                zone: 1,
                addresses: 1,
            },
        ],
        // Zones a and c use nat-a; zone b its own; zone d has no route.
        vec![Some(0), Some(1), Some(0), None],
    );
    let mut nat = NatGateways::new(&cfg);
    let d = nat.destination(dest(10, 443));
    let mut before = nat.open(0, d, T0).expect("up");
    nat.set_up(0, false);
    assert_eq!(nat.open(0, d, T0), Err(NatDrop::GatewayDown { gateway: 0 }));
    assert_eq!(nat.open(2, d, T0), Err(NatDrop::GatewayDown { gateway: 0 }));
    assert!(nat.open(1, d, T0).is_ok());
    assert_eq!(nat.open(3, d, T0), Err(NatDrop::NoRoute { zone: 3 }));
    assert_eq!(
        nat.send(&mut before, T0, 1),
        Err(NatDrop::GatewayDown { gateway: 0 })
    );
    assert_eq!(nat.stats(0).packets_dropped, 3);
    assert_eq!(nat.stats(0).active, 0);
    // Back up: new connections pass; the old one stays dead.
    nat.set_up(0, true);
    let mut after = nat.open(0, d, T0).expect("up again");
    assert!(nat.send(&mut before, T0, 1).is_err());
    nat.close(&mut before);
    assert_eq!(nat.connections(0, d, 0), 1);
    assert_eq!(nat.send(&mut after, T0, 1), Ok(()));
}

#[test]
fn cost_bills_partial_hours_whole_and_bytes_both_ways() {
    let p = Pricing::US_EAST_1;
    let hour = SimDuration::from_secs(3600);
    assert_eq!(cost(&p, SimDuration::ZERO, 0).hours, 0);
    assert_eq!(cost(&p, SimDuration::from_nanos(1), 0).hours, 1);
    assert_eq!(cost(&p, hour, 0).hours, 1);
    assert_eq!(cost(&p, hour + SimDuration::from_nanos(1), 0).hours, 2);
    let c = cost(&p, SimDuration::from_secs(90 * 60), 0);
    assert!((c.hours_usd - 0.09).abs() < 1e-12, "{c:?}");

    let mut nat = one_gateway(1, 1);
    let d = nat.destination(dest(10, 443));
    let mut conn = nat.open(0, d, T0).expect("room");
    nat.send(&mut conn, T0, 2_000_000_000).expect("up");
    nat.receive(&mut conn, T0, 3_000_000_000).expect("up");
    let c = nat.cost(0, SimDuration::from_secs(600));
    assert_eq!(c.hours, 1);
    assert!((c.gb - 5.0).abs() < 1e-12, "{c:?}");
    assert!((c.gb_usd - 0.225).abs() < 1e-12, "{c:?}");
    assert!((c.total() - 0.27).abs() < 1e-12, "{c:?}");
}

#[test]
fn addresses_are_filled_evenly() {
    let mut nat = one_gateway(3, 1);
    let d = nat.destination(dest(10, 443));
    for _ in 0..7 {
        nat.open(0, d, T0).expect("room");
    }
    let counts: Vec<u32> = (0..3).map(|a| nat.connections(0, d, a)).collect();
    assert_eq!(counts, vec![3, 2, 2]);
}
