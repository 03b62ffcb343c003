use super::*;
use sim_core::{Engine, EventId};
use std::collections::HashMap;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn k8s(search_len: usize, ndots: u8) -> ResolvConf {
    let cloud = ["ec2.internal", "c.proj.internal", "google.internal"];
    let mut c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &cloud[..search_len - 3]);
    c.ndots = ndots;
    c
}

/// Names that exist in the tests' world.
fn exists(n: &str) -> bool {
    matches!(n, "api.stripe.com" | "checkout.prod.svc.cluster.local")
}

/// One sent query as the fake network saw it.
#[derive(Clone, Debug)]
struct Sent {
    at: SimTime,
    name: Arc<str>,
    qtype: QType,
    server: IpAddr,
    socket: SocketId,
}

#[derive(Clone, Copy)]
enum Ev {
    Reply(QueryId, Reply),
    Unreachable(QueryId),
    Timer(TimerToken),
}

/// What the fake network does with a query: `None` loses it.
enum Fate {
    Reply(SimDuration, Reply),
    Unreachable(SimDuration),
    Lost,
}

/// Runs one lookup against `net`, which sees each query with the number
/// of earlier queries of the same name and type.
fn run(mut lookup: Lookup, mut net: impl FnMut(&Sent, u32) -> Fate) -> (LookupResult, Vec<Sent>) {
    let mut eng: Engine<Ev> = Engine::new();
    let mut timers: HashMap<TimerToken, EventId> = HashMap::new();
    let mut sent: Vec<Sent> = Vec::new();
    let mut result = None;
    let mut actions = lookup.start(SimTime::ZERO);
    loop {
        for a in actions.drain(..) {
            match a {
                ResolverAction::Send {
                    query_id,
                    name,
                    qtype,
                    server,
                    socket,
                } => {
                    let s = Sent {
                        at: eng.now(),
                        name,
                        qtype,
                        server,
                        socket,
                    };
                    let seen = sent
                        .iter()
                        .filter(|x| x.name == s.name && x.qtype == s.qtype)
                        .count() as u32;
                    match net(&s, seen) {
                        Fate::Reply(d, r) => {
                            eng.schedule_in(d, Ev::Reply(query_id, r));
                        }
                        Fate::Unreachable(d) => {
                            eng.schedule_in(d, Ev::Unreachable(query_id));
                        }
                        Fate::Lost => {}
                    }
                    sent.push(s);
                }
                ResolverAction::SetTimer { at, token } => {
                    timers.insert(token, eng.schedule_at(at, Ev::Timer(token)));
                }
                ResolverAction::CancelTimer { token } => {
                    if let Some(id) = timers.remove(&token) {
                        eng.cancel(id);
                    }
                }
                ResolverAction::Done(r) => {
                    assert!(result.is_none(), "two results");
                    assert!(timers.is_empty(), "no timer left behind");
                    result = Some(r);
                }
            }
        }
        let Some(ev) = eng.next_until(SimTime::ZERO + SimDuration::from_secs(3600)) else {
            break;
        };
        let now = eng.now();
        actions = match ev {
            Ev::Reply(q, r) => lookup.on_reply(now, q, r),
            Ev::Unreachable(q) => lookup.on_unreachable(now, q),
            Ev::Timer(t) => {
                timers.remove(&t);
                lookup.on_timer(now, t)
            }
        };
    }
    (result.expect("the lookup ended"), sent)
}

const RTT: SimDuration = SimDuration::from_micros(500);

/// A prompt, loss-free server answering from `exists`.
fn prompt(s: &Sent, _: u32) -> Fate {
    Fate::Reply(
        RTT,
        if exists(&s.name) {
            Reply::answer(1)
        } else {
            Reply::NXDOMAIN
        },
    )
}

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

#[test]
fn names_tried_follow_ndots_and_the_search_list() {
    let c = k8s(3, 5);
    assert_eq!(
        candidates("api.stripe.com", &c).unwrap(),
        [
            "api.stripe.com.prod.svc.cluster.local",
            "api.stripe.com.svc.cluster.local",
            "api.stripe.com.cluster.local",
            "api.stripe.com",
        ]
    );
    assert_eq!(
        candidates("checkout.prod.svc.cluster.local.", &c).unwrap(),
        ["checkout.prod.svc.cluster.local"]
    );
    // Enough dots: as-is first, then the search list.
    let c1 = k8s(3, 1);
    assert_eq!(
        candidates("api.stripe.com", &c1).unwrap(),
        [
            "api.stripe.com",
            "api.stripe.com.prod.svc.cluster.local",
            "api.stripe.com.svc.cluster.local",
            "api.stripe.com.cluster.local",
        ]
    );
    // A single label is searched, then tried as a top-level name.
    assert_eq!(
        candidates("checkout", &c).unwrap().last().unwrap(),
        "checkout"
    );
    // The root on the search list stands for the as-is query.
    let mut r = k8s(3, 5);
    r.search.insert(1, ".".into());
    assert_eq!(
        candidates("db", &r).unwrap(),
        [
            "db.prod.svc.cluster.local",
            "db",
            "db.svc.cluster.local",
            "db.cluster.local"
        ]
    );
}

#[test]
fn amplification_table() {
    // Queries per lookup, by name, ndots (rows 1..=5) and search-list
    // length (columns 3..=6), A only. The rule: a name with fewer dots
    // than ndots walks the whole search list (NXDOMAIN each) and then
    // the name as-is: search_len + 1 queries; otherwise one query.
    // A and AAAA: twice as many.
    let table = |name: &str, q: QueryTypes| -> Vec<Vec<u32>> {
        (1..=5u8)
            .map(|nd| {
                (3..=6usize)
                    .map(|len| {
                        count_queries(name, &k8s(len, nd), q, exists)
                            .unwrap()
                            .total()
                    })
                    .collect()
            })
            .collect()
    };
    let ext = table("api.stripe.com", QueryTypes::AOnly);
    println!("api.stripe.com, A only (rows ndots 1..5, columns search 3..6): {ext:?}");
    assert_eq!(
        ext,
        [
            [1, 1, 1, 1],
            [1, 1, 1, 1],
            [4, 5, 6, 7],
            [4, 5, 6, 7],
            [4, 5, 6, 7]
        ]
    );
    let ext2 = table("api.stripe.com", QueryTypes::AAndAaaa);
    println!("api.stripe.com, A+AAAA: {ext2:?}");
    assert_eq!(ext2[4], [8, 10, 12, 14]);
    assert_eq!(ext2[0], [2, 2, 2, 2]);
    // A short cluster name answers at the first search domain.
    assert_eq!(table("checkout", QueryTypes::AOnly), vec![vec![1; 4]; 5]);
    // The FQDN without its dot has 4 dots: fine up to ndots:4, the whole walk at 5.
    let fq = table("checkout.prod.svc.cluster.local", QueryTypes::AOnly);
    println!("checkout.prod.svc.cluster.local, A only: {fq:?}");
    assert_eq!(fq[3], [1, 1, 1, 1]);
    assert_eq!(fq[4], [4, 5, 6, 7]);
    // With its trailing dot: always one query.
    assert_eq!(
        table("checkout.prod.svc.cluster.local.", QueryTypes::AAndAaaa),
        vec![vec![2; 4]; 5]
    );
    // Scaling_CoreDNS.md: search list of 4, ndots:5 -> "a single client
    // query actually generates 5 backend queries"; Zalando: 10 with AAAA.
    assert_eq!(ext[4][1], 5);
    assert_eq!(ext2[4][1], 10);
}

#[test]
fn story_fifty_thousand_wasted_queries() {
    // "1,000 pods making 10 external DNS queries/second generates 50,000
    // wasted queries/second": 10,000 lookups/s x 5 wasted each.
    let lookups_per_s = 1_000 * 10;
    let wasted = |len: usize, q: QueryTypes| {
        let c = count_queries("api.stripe.com", &k8s(len, 5), q, exists).unwrap();
        (c.total() - if q == QueryTypes::AOnly { 1 } else { 2 }) * lookups_per_s
    };
    let total = |len: usize| {
        count_queries("api.stripe.com", &k8s(len, 5), QueryTypes::AOnly, exists)
            .unwrap()
            .total()
            * lookups_per_s
    };
    println!(
        "wasted/s, A only: 3 domains {}, 4 domains {}, 5 domains {}; A+AAAA 3 domains {}",
        wasted(3, QueryTypes::AOnly),
        wasted(4, QueryTypes::AOnly),
        wasted(5, QueryTypes::AOnly),
        wasted(3, QueryTypes::AAndAaaa)
    );
    // Exactly 50,000 wasted: A only with 5 search domains (3 cluster + 2
    // from the node, as on GCE); or 50,000 *total* with the 4 domains of
    // the CoreDNS benchmark (40,000 of them wasted).
    assert_eq!(wasted(5, QueryTypes::AOnly), 50_000);
    assert_eq!(total(4), 50_000);
    assert_eq!(wasted(4, QueryTypes::AOnly), 40_000);
    assert_eq!(wasted(3, QueryTypes::AAndAaaa), 60_000);
}

#[test]
fn state_machine_matches_the_pure_count() {
    for nd in 1..=5 {
        for len in 3..=6 {
            for q in [QueryTypes::AOnly, QueryTypes::AAndAaaa] {
                for name in [
                    "api.stripe.com",
                    "checkout",
                    "checkout.prod.svc.cluster.local",
                    "nope.example",
                ] {
                    let c = k8s(len, nd);
                    let (r, sent) = run(Lookup::new(&c, name, q).unwrap(), prompt);
                    let want = count_queries(name, &c, q, exists).unwrap();
                    assert_eq!(r.queries, want, "{name} ndots {nd} search {len}");
                    assert_eq!(sent.len() as u32, want.total());
                    let names = candidates(name, &c).unwrap();
                    assert_eq!(
                        r.names_tried as usize,
                        names
                            .iter()
                            .position(|n| exists(n))
                            .map_or(names.len(), |i| i + 1)
                    );
                    if name == "nope.example" {
                        assert_eq!(r.outcome, LookupOutcome::NotFound);
                        assert_eq!(r.outcome.to_string(), "Name or service not known");
                    } else {
                        assert!(matches!(r.outcome, LookupOutcome::Answered { a: 1, .. }));
                        // Each name costs one round trip.
                        assert_eq!(r.latency(), RTT.saturating_mul(u64::from(r.names_tried)));
                    }
                }
            }
        }
    }
}

#[test]
fn silent_server_timeline_follows_send_dg() {
    let silent = |_: &Sent, _: u32| Fate::Lost;
    let mut one = ResolvConf::glibc_default(vec![ip("10.96.0.10")]);
    one.search = vec!["prod.svc.cluster.local".into()];
    // Absolute name, one nameserver: 5 s x 2 attempts.
    let (r, sent) = run(
        Lookup::new(&one, "db.prod.svc.cluster.local.", QueryTypes::AAndAaaa).unwrap(),
        silent,
    );
    assert_eq!(r.latency(), secs(10));
    assert_eq!(r.outcome, LookupOutcome::TryAgain);
    assert_eq!(
        r.outcome.to_string(),
        "Temporary failure in name resolution"
    );
    assert_eq!((r.queries.a, r.queries.aaaa), (2, 2));
    let times: Vec<u64> = sent
        .iter()
        .map(|s| s.at.as_nanos() / 1_000_000_000)
        .collect();
    assert_eq!(times, [0, 0, 5, 5]);
    // Both tries on the same socket: a late reply to try 1 would count.
    assert!(sent.iter().all(|s| s.socket == sent[0].socket));

    // Two nameservers: 5 s each ((5 << 1) / 2 for the second), two tries: 20 s.
    let mut two = one.clone();
    two.nameservers.push(ip("10.96.0.11"));
    assert_eq!(two.exchange_timeout(1), secs(5));
    let (r, sent) = run(
        Lookup::new(&two, "db.prod.svc.cluster.local.", QueryTypes::AOnly).unwrap(),
        silent,
    );
    assert_eq!(r.latency(), secs(20));
    let order: Vec<(u64, IpAddr)> = sent
        .iter()
        .map(|s| (s.at.as_nanos() / 1_000_000_000, s.server))
        .collect();
    assert_eq!(
        order,
        [
            (0, ip("10.96.0.10")),
            (5, ip("10.96.0.11")),
            (10, ip("10.96.0.10")),
            (15, ip("10.96.0.11"))
        ]
    );
    // Three nameservers: 5, 10/3 = 3, 20/3 = 6 s per try: 28 s.
    let mut three = two.clone();
    three.nameservers.push(ip("10.96.0.12"));
    let (r, _) = run(
        Lookup::new(&three, "db.prod.svc.cluster.local.", QueryTypes::AOnly).unwrap(),
        silent,
    );
    assert_eq!(r.latency(), secs(28));

    // A relative name: the timeout on the first search name ends the
    // search walk, but glibc still tries the name as-is: 2 x 10 s.
    let k = k8s(3, 5);
    let (r, sent) = run(
        Lookup::new(&k, "api.stripe.com", QueryTypes::AOnly).unwrap(),
        silent,
    );
    assert_eq!(r.latency(), secs(20));
    assert_eq!(r.outcome, LookupOutcome::TryAgain);
    let names: Vec<&str> = sent.iter().map(|s| &*s.name).collect();
    assert_eq!(
        names,
        [
            "api.stripe.com.prod.svc.cluster.local",
            "api.stripe.com.prod.svc.cluster.local",
            "api.stripe.com",
            "api.stripe.com"
        ]
    );
    // Enough dots (ndots:1): as-is, then the first search name, 20 s.
    let (r, _) = run(
        Lookup::new(&k8s(3, 1), "api.stripe.com", QueryTypes::AOnly).unwrap(),
        silent,
    );
    assert_eq!(r.latency(), secs(20));
}

#[test]
fn lost_aaaa_reply_costs_five_seconds_in_parallel_mode() {
    let c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
    let name = "checkout.prod.svc.cluster.local.";
    let (base, _) = run(Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap(), prompt);
    assert_eq!(base.latency(), RTT);
    // The first AAAA reply is lost (the conntrack insert race).
    let race = |s: &Sent, seen: u32| {
        if s.qtype == QType::Aaaa && seen == 0 {
            Fate::Lost
        } else {
            Fate::Reply(RTT, Reply::answer(1))
        }
    };
    let mut lookup = Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap();
    let first = lookup.start(SimTime::ZERO);
    let sockets: Vec<SocketId> = first
        .iter()
        .filter_map(|a| match a {
            ResolverAction::Send { socket, .. } => Some(*socket),
            _ => None,
        })
        .collect();
    assert_eq!(sockets.len(), 2, "A and AAAA leave together");
    assert_eq!(
        sockets[0], sockets[1],
        "on one socket: the race's precondition"
    );
    let (r, sent) = run(Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap(), race);
    // Timeout, then A and AAAA one after the other on the same socket.
    assert_eq!(r.latency(), secs(5) + RTT + RTT);
    assert_eq!(
        r.latency().as_nanos() - base.latency().as_nanos(),
        (secs(5) + RTT).as_nanos()
    );
    assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 1 });
    assert_eq!((r.queries.a, r.queries.aaaa), (2, 2));
    assert!(sent.iter().all(|s| s.socket == sent[0].socket));
    assert_eq!(
        sent[3].at,
        SimTime::ZERO + secs(5) + RTT,
        "AAAA waits for A's reply"
    );
}

#[test]
fn single_request_modes_recover_differently() {
    let name = "checkout.prod.svc.cluster.local.";
    let mut reopen = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
    reopen.single_request_reopen = true;
    // No loss: A, then AAAA from a new socket once A is answered.
    let (r, sent) = run(
        Lookup::new(&reopen, name, QueryTypes::AAndAaaa).unwrap(),
        prompt,
    );
    assert_eq!(r.latency(), RTT + RTT);
    assert_ne!(sent[0].socket, sent[1].socket, "new source port for AAAA");
    assert_eq!(
        sent[1].at,
        SimTime::ZERO + RTT,
        "never two queries in flight"
    );
    // A lost AAAA reply anyway (not the race: plain loss): no retry; at
    // the timeout the lookup returns the A answer alone.
    let lose_aaaa = |s: &Sent, _: u32| {
        if s.qtype == QType::Aaaa {
            Fate::Lost
        } else {
            Fate::Reply(RTT, Reply::answer(1))
        }
    };
    let (r, _) = run(
        Lookup::new(&reopen, name, QueryTypes::AAndAaaa).unwrap(),
        lose_aaaa,
    );
    assert_eq!(r.latency(), secs(5));
    assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 0 });
    assert_eq!((r.queries.a, r.queries.aaaa), (1, 1));

    // single-request: same socket; a lost AAAA reply switches to reopen
    // and redoes both from a new socket: 5 s + 2 RTT, both answers.
    let mut single = reopen.clone();
    single.single_request_reopen = false;
    single.single_request = true;
    let once = |s: &Sent, seen: u32| {
        if s.qtype == QType::Aaaa && seen == 0 {
            Fate::Lost
        } else {
            Fate::Reply(RTT, Reply::answer(1))
        }
    };
    let (r, sent) = run(
        Lookup::new(&single, name, QueryTypes::AAndAaaa).unwrap(),
        once,
    );
    assert_eq!(r.latency(), secs(5) + RTT + RTT);
    assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 1 });
    assert_eq!(sent[0].socket, sent[1].socket);
    assert_ne!(sent[2].socket, sent[0].socket);
    assert_ne!(sent[3].socket, sent[2].socket);

    // Default mode, AAAA always lost: single-request at 5 s, reopen at
    // 10 s, then the A answer alone at 15 s.
    let c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
    let (r, _) = run(
        Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap(),
        lose_aaaa,
    );
    assert_eq!(r.latency(), secs(15));
    assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 0 });
}

#[test]
fn fallback_is_reported_for_the_thread() {
    let c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
    let name = "checkout.prod.svc.cluster.local.";
    let mut l = Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap();
    let acts = l.start(SimTime::ZERO);
    let (mut a, mut timer) = (None, None);
    for x in &acts {
        match x {
            ResolverAction::Send {
                query_id,
                qtype: QType::A,
                ..
            } => a = Some(*query_id),
            ResolverAction::SetTimer { token, .. } => timer = Some(*token),
            _ => {}
        }
    }
    let t = SimTime::ZERO + RTT;
    assert!(l.on_reply(t, a.unwrap(), Reply::answer(1)).is_empty());
    let acts = l.on_timer(SimTime::ZERO + secs(5), timer.unwrap());
    assert!(l.thread_state().single_request);
    // Only A is resent; AAAA follows its reply.
    let sends = acts
        .iter()
        .filter(|x| matches!(x, ResolverAction::Send { .. }))
        .count();
    assert_eq!(sends, 1);
}

#[test]
fn servfail_skips_to_next_server_and_search_domain() {
    // SERVFAIL on every query: each name is sent attempts x servers
    // times at once, the walk goes on (got_servfail), result EAI_AGAIN.
    let c = k8s(3, 5);
    let (r, sent) = run(
        Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
        |_, _| Fate::Reply(RTT, Reply::SERVFAIL),
    );
    assert_eq!(r.outcome, LookupOutcome::TryAgain);
    assert_eq!(sent.len(), 4 * 2);
    assert_eq!(r.latency(), RTT.saturating_mul(8));
    // A-only SERVFAIL closes the socket: the second try uses a new one.
    assert_ne!(sent[0].socket, sent[1].socket);
    // With A and AAAA, both SERVFAIL: next try on the same socket.
    let (r, sent) = run(
        Lookup::new(&c, "api.stripe.com", QueryTypes::AAndAaaa).unwrap(),
        |_, _| Fate::Reply(RTT, Reply::SERVFAIL),
    );
    assert_eq!(r.queries.total(), 16);
    assert_eq!(sent[0].socket, sent[2].socket);
    // SERVFAIL for the search names, then an answer as-is.
    let (r, _) = run(
        Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
        |s, _| {
            if &*s.name == "api.stripe.com" {
                Fate::Reply(RTT, Reply::answer(2))
            } else {
                Fate::Reply(RTT, Reply::SERVFAIL)
            }
        },
    );
    assert_eq!(r.outcome, LookupOutcome::Answered { a: 2, aaaa: 0 });
    assert_eq!(r.answered_name.as_deref(), Some("api.stripe.com"));
    // REFUSED is retried like SERVFAIL but, not being SERVFAIL, ends the
    // walk; the as-is query still goes out. res_send fails: EAI_AGAIN.
    let (r, sent) = run(
        Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
        |_, _| {
            Fate::Reply(
                RTT,
                Reply {
                    rcode: Rcode::Refused,
                    answers: 0,
                },
            )
        },
    );
    assert_eq!(r.outcome, LookupOutcome::TryAgain);
    assert_eq!(
        sent.len(),
        4,
        "2 tries of the first search name, 2 of the name as-is"
    );
    // FORMERR is a final answer for the name: NO_RECOVERY, walk over, then as-is.
    let (r, sent) = run(
        Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
        |_, _| {
            Fate::Reply(
                RTT,
                Reply {
                    rcode: Rcode::FormErr,
                    answers: 0,
                },
            )
        },
    );
    assert_eq!(r.outcome, LookupOutcome::NoRecovery);
    assert_eq!(
        r.outcome.to_string(),
        "Non-recoverable failure in name resolution"
    );
    assert_eq!(sent.len(), 2);
    // NODATA everywhere: EAI_NODATA.
    let (r, _) = run(
        Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
        |_, _| Fate::Reply(RTT, Reply::NODATA),
    );
    assert_eq!(r.outcome, LookupOutcome::NoData);
}

#[test]
fn single_request_servfail_waits_for_the_timeout_on_legacy_glibc() {
    let mut c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
    c.single_request = true;
    c.glibc = GlibcVersion::Legacy;
    let (r, sent) = run(
        Lookup::new(&c, "x.example.", QueryTypes::AAndAaaa).unwrap(),
        |_, _| Fate::Reply(RTT, Reply::SERVFAIL),
    );
    // A only, each try waits out its 5 s for an AAAA never sent.
    assert_eq!(r.latency(), secs(10));
    assert_eq!((r.queries.a, r.queries.aaaa), (2, 0));
    assert_eq!(sent.len(), 2);
}

#[test]
fn single_request_servfail_moves_on_at_once_on_current_glibc() {
    let mut c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
    c.single_request = true;
    let (r, sent) = run(
        Lookup::new(&c, "x.example.", QueryTypes::AAndAaaa).unwrap(),
        |_, _| Fate::Reply(RTT, Reply::SERVFAIL),
    );
    // A only, one round trip per try, a new socket each time.
    assert_eq!(r.latency(), RTT.saturating_mul(2));
    assert_eq!((r.queries.a, r.queries.aaaa), (2, 0));
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0].socket, sent[1].socket);
}

#[test]
fn no_server_listening_fails_fast() {
    // Every query draws an ICMP port unreachable (a Service without
    // endpoints: kube-proxy REJECTs): ECONNREFUSED ends the lookup at the
    // first search name, in microseconds, with EAI_AGAIN.
    let c = k8s(3, 5);
    let (r, sent) = run(
        Lookup::new(&c, "api.stripe.com", QueryTypes::AAndAaaa).unwrap(),
        |_, _| Fate::Unreachable(RTT),
    );
    assert_eq!(r.outcome, LookupOutcome::TryAgain);
    assert_eq!(r.latency(), RTT.saturating_mul(2));
    assert_eq!(r.names_tried, 1);
    assert_eq!(sent.len(), 4);
}

#[test]
fn late_reply_is_accepted_in_the_next_try() {
    // The server answers after 6 s: try 1 times out at 5 s, try 2 goes
    // out on the same socket, and try 1's answer ends the lookup at 6 s.
    let c = ResolvConf::glibc_default(vec![ip("10.96.0.10")]);
    let (r, sent) = run(
        Lookup::new(&c, "slow.example.", QueryTypes::AOnly).unwrap(),
        |s, _| {
            if s.at == SimTime::ZERO {
                Fate::Reply(secs(6), Reply::answer(1))
            } else {
                Fate::Lost
            }
        },
    );
    assert_eq!(r.latency(), secs(6));
    assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 0 });
    assert_eq!(sent.len(), 2);
    // With two nameservers, the reply waits in socket 0 while socket 1
    // is polled, and is read when try 2 comes back to server 0.
    let mut two = c.clone();
    two.nameservers.push(ip("10.96.0.11"));
    let (r, sent) = run(
        Lookup::new(&two, "slow.example.", QueryTypes::AOnly).unwrap(),
        |s, _| {
            if s.at == SimTime::ZERO {
                Fate::Reply(secs(6), Reply::answer(1))
            } else {
                Fate::Lost
            }
        },
    );
    assert_eq!(r.latency(), secs(10));
    assert_eq!(sent.len(), 3);
}

#[test]
fn rotate_starts_each_name_one_server_further() {
    let mut c = k8s(3, 5);
    c.nameservers = vec![ip("10.0.0.1"), ip("10.0.0.2")];
    c.rotate = true;
    let (_, sent) = run(
        Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly)
            .unwrap()
            .rotation_offset(1),
        prompt,
    );
    let servers: Vec<IpAddr> = sent.iter().map(|s| s.server).collect();
    assert_eq!(
        servers,
        [
            ip("10.0.0.2"),
            ip("10.0.0.1"),
            ip("10.0.0.2"),
            ip("10.0.0.1")
        ]
    );
}

#[test]
fn bad_configuration_and_names_are_errors() {
    let mut c = ResolvConf::glibc_default(vec![]);
    assert_eq!(c.validate(), Err(ResolvConfError::NoNameserver));
    c.nameservers = vec![ip("10.0.0.1"); 4];
    assert_eq!(c.validate(), Err(ResolvConfError::TooManyNameservers(4)));
    c.nameservers.truncate(1);
    c.timeout = SimDuration::from_millis(1500);
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("whole number of seconds"));
    c.timeout = secs(31);
    assert!(c.validate().is_err());
    c.timeout = secs(5);
    c.attempts = 0;
    assert_eq!(c.validate(), Err(ResolvConfError::Attempts(0)));
    c.attempts = 2;
    c.ndots = 16;
    assert_eq!(c.validate(), Err(ResolvConfError::Ndots(16)));
    c.ndots = 1;
    c.search = vec!["bad..domain".into()];
    assert!(matches!(
        c.validate(),
        Err(ResolvConfError::SearchDomain(_))
    ));
    c.search.clear();
    for bad in ["", ".", "a..b", ".lead", "has space.com"] {
        assert!(
            matches!(
                Lookup::new(&c, bad, QueryTypes::AOnly),
                Err(LookupError::Name { .. })
            ),
            "{bad:?}"
        );
    }
    let long = "a".repeat(64);
    assert!(Lookup::new(&c, &long, QueryTypes::AOnly).is_err());
    // Unknown ids and stale tokens are ignored, not panics.
    let mut l = Lookup::new(&c, "x.example", QueryTypes::AOnly).unwrap();
    assert!(l
        .on_reply(SimTime::ZERO, QueryId(99), Reply::NXDOMAIN)
        .is_empty());
    assert!(l.on_timer(SimTime::ZERO, TimerToken(7)).is_empty());
    assert!(l.on_unreachable(SimTime::ZERO, QueryId(3)).is_empty());
    assert!(!l.start(SimTime::ZERO).is_empty());
    assert!(
        l.start(SimTime::ZERO).is_empty(),
        "starting twice does nothing"
    );
}
