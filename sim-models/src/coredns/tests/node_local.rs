//! Node-local DNS (the `node_local` mode): answering the cluster zone
//! itself, forwarding cluster misses, caching denials, retries to a
//! silent cluster DNS, and what an OOM kill does to forward tries.

use super::*;

const SVC: &str = "checkout.prod.svc.cluster.local";

/// A node-local instance; every try the test sees is in `b.forwards`.
fn node_local(seed: u64) -> Bench {
    Bench::new(CoreDnsSpec::node_local(), seed)
}

#[test]
fn kubernetes_mode_answers_the_cluster_zone_itself() {
    let d = CoreDnsSpec::default();
    assert_eq!(d.cluster_zone, ClusterZone::Kubernetes);
    assert_eq!(
        d.denial_max_ttl, d.cache_max_ttl,
        "`cache 30` caps both caches"
    );
    let mut b = Bench::new(d, 20);
    b.offer(1, SVC, Zone::Cluster, Existence::Records(1));
    b.offer(
        2,
        "gone.prod.svc.cluster.local",
        Zone::Cluster,
        Existence::NxDomain,
    );
    b.run(at(1.0), |_, _| {});
    assert!(b.forwards.is_empty());
    assert_eq!(b.dns.stats().forwarded, 0);
    let (tag, reply, source, _, ttl) = b.last_reply();
    assert_eq!(
        (tag, reply, source),
        (2, Reply::NXDOMAIN, AnswerSource::Kubernetes)
    );
    assert_eq!(ttl, SimDuration::from_secs(30));
    // A denial cap also applies to the kubernetes plugin's denials.
    let mut b = Bench::new(
        CoreDnsSpec {
            denial_max_ttl: SimDuration::from_secs(5),
            ..d
        },
        21,
    );
    for (t, want) in [
        (0.0, AnswerSource::Kubernetes),
        (4.9, AnswerSource::Cache),
        (5.1, AnswerSource::Kubernetes),
    ] {
        b.run(at(t), |_, _| {});
        b.offer(
            3,
            "gone.prod.svc.cluster.local",
            Zone::Cluster,
            Existence::NxDomain,
        );
        b.run(at(t + 0.05), |_, _| {});
        assert_eq!(b.last_reply().2, want, "at {t} s");
    }
    assert_eq!(
        b.last_reply().4,
        SimDuration::from_secs(5),
        "shown TTL capped"
    );
}

#[test]
fn node_local_spec_follows_the_manifest() {
    let s = CoreDnsSpec::node_local();
    assert!(s.validate().is_ok());
    assert_eq!(s.cluster_zone, ClusterZone::Forward);
    assert_eq!(s.cache_capacity, 9_984);
    assert_eq!(s.cache_max_ttl, SimDuration::from_secs(30));
    assert_eq!(s.denial_max_ttl, SimDuration::from_secs(5));
    assert_eq!(s.cache_min_ttl, SimDuration::from_secs(5));
    assert_eq!(s.max_concurrent, None);
    assert_eq!(s.memory_limit, NO_MEMORY_LIMIT);
    assert_eq!(s.cpu_millicores, 1000);
    assert_eq!(s.cluster_objects, 0);
    let e = CoreDnsSpec {
        cache_min_ttl: SimDuration::from_secs(10),
        ..s
    }
    .validate()
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "cache_min_ttl 10s is above denial_max_ttl 5s"
    );
}

#[test]
fn forward_mode_sends_cluster_misses_to_the_caller_and_caches_the_answer() {
    let mut b = node_local(22);
    b.offer(1, SVC, Zone::Cluster, Existence::NxDomain);
    // The query needs its CPU first.
    assert!(b.forwards.is_empty());
    b.run(at(0.5), |_, _| {});
    assert_eq!(b.forwards.len(), 1);
    let (sent, tag, id) = b.forwards[0];
    assert_eq!(tag, 1);
    assert!(sent > SimTime::ZERO && sent < at(0.01), "{sent}");
    assert!(b.got.is_empty(), "no answer of its own");
    assert_eq!(b.dns.stats().forwarded, 1);
    assert_eq!(b.dns.in_flight(), 1);
    // The cluster DNS says it exists (the caller's truth, not the query's
    // `existence`), with a TTL above the cache's 30 s.
    assert_eq!(b.answer(id, Reply::answer(2), 77, 60), 1);
    assert_eq!(
        b.last_reply(),
        (
            1,
            Reply::answer(2),
            AnswerSource::Upstream,
            77,
            SimDuration::from_secs(30)
        )
    );
    assert_eq!(b.dns.in_flight(), 0);
    // The same name again: a cache hit with the cached data, no forward.
    for (t, want) in [(29.0, AnswerSource::Cache), (31.0, AnswerSource::Upstream)] {
        b.run(at(t), |_, _| {});
        b.offer(2, SVC, Zone::Cluster, Existence::NxDomain);
        b.run(at(t + 0.05), |_, _| {});
        if want == AnswerSource::Cache {
            let (tag, reply, source, rdata, ttl) = b.last_reply();
            assert_eq!((tag, reply, source, rdata), (2, Reply::answer(2), want, 77));
            // Answered at 0.5 s, cached until 30.5 s.
            let left = SimDuration::from_millis(1500);
            assert!(ttl <= left && ttl > SimDuration::from_millis(1490), "{ttl}");
            assert_eq!(b.forwards.len(), 1);
        } else {
            assert_eq!(b.forwards.len(), 2, "expired after 30 s: forwarded again");
        }
    }
    assert_eq!(b.dns.stats().cache_hits, 1);
}

#[test]
fn forwarded_denials_are_cached_at_most_denial_max_ttl() {
    for (reply, ttl_s, name) in [
        (Reply::NXDOMAIN, 30, "gone.prod.svc.cluster.local"),
        (Reply::NODATA, 1, "v4only.prod.svc.cluster.local"),
    ] {
        let mut b = node_local(23);
        b.offer(1, name, Zone::Cluster, Existence::NxDomain);
        b.run(at(0.5), |_, _| {});
        let id = b.forwards[0].2;
        assert_eq!(b.answer(id, reply, 0, ttl_s), 1);
        let (_, got, source, _, shown) = b.last_reply();
        assert_eq!((got, source), (reply, AnswerSource::Upstream));
        assert_eq!(shown, SimDuration::from_secs(ttl_s.min(5)));
        // Cached from 0.5 s for 5 s (30 s capped, 1 s raised to the minimum).
        b.run(at(5.4), |_, _| {});
        b.offer(2, name, Zone::Cluster, Existence::NxDomain);
        b.run(at(5.45), |_, _| {});
        assert_eq!(b.last_reply().2, AnswerSource::Cache, "{reply:?}");
        assert_eq!(b.forwards.len(), 1);
        b.run(at(5.6), |_, _| {});
        b.offer(3, name, Zone::Cluster, Existence::NxDomain);
        b.run(at(5.65), |_, _| {});
        assert_eq!(b.forwards.len(), 2, "{reply:?} expired after 5 s");
    }
    // A SERVFAIL from the cluster DNS is cached servfail_ttl, other
    // errors are not cached.
    let mut b = node_local(24);
    b.offer(1, SVC, Zone::Cluster, Existence::NxDomain);
    b.offer(
        2,
        "x.prod.svc.cluster.local",
        Zone::Cluster,
        Existence::NxDomain,
    );
    b.run(at(0.5), |_, _| {});
    let (ida, idb) = (b.forwards[0].2, b.forwards[1].2);
    b.answer(ida, Reply::SERVFAIL, 0, 30);
    assert_eq!(b.last_reply().4, SimDuration::from_secs(5));
    let refused = Reply {
        rcode: Rcode::Refused,
        answers: 0,
    };
    b.answer(idb, refused, 0, 30);
    assert_eq!(b.last_reply().4, SimDuration::ZERO);
    assert_eq!(b.dns.stats().servfail, 1);
    b.run(at(4.0), |_, _| {});
    b.offer(3, SVC, Zone::Cluster, Existence::NxDomain);
    b.offer(
        4,
        "x.prod.svc.cluster.local",
        Zone::Cluster,
        Existence::NxDomain,
    );
    b.run(at(4.5), |_, _| {});
    assert_eq!(
        b.got[2].1,
        Tagged::Reply(3, Reply::SERVFAIL, AnswerSource::Cache)
    );
    assert_eq!(b.forwards.len(), 3);
    assert_eq!(b.forwards[2].1, 4, "REFUSED was not cached");
}

#[test]
fn a_silent_cluster_dns_gets_retries_then_servfail() {
    let mut b = node_local(25);
    b.offer(1, SVC, Zone::Cluster, Existence::Records(1));
    b.run(at(10.0), |_, _| {});
    let t0 = b.forwards[0].0;
    let times: Vec<SimDuration> = b.forwards.iter().map(|f| f.0 - t0).collect();
    assert_eq!(
        times,
        [0, 2, 4].map(SimDuration::from_secs),
        "tries at 0, 2, 4 s"
    );
    let ids: Vec<ForwardId> = b.forwards.iter().map(|f| f.2).collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert_eq!(b.got.len(), 1);
    let (t, g) = b.got[0];
    assert_eq!(t - t0, SimDuration::from_secs(6));
    assert_eq!(
        g,
        Tagged::Reply(1, Reply::SERVFAIL, AnswerSource::ForwardTimeout)
    );
    assert_eq!(b.dns.stats().forwarded, 1);
    // Too late for any of the tries; the timeout SERVFAIL is not cached.
    for id in ids {
        assert_eq!(b.answer(id, Reply::answer(1), 0, 30), 0);
    }
    b.offer(2, SVC, Zone::Cluster, Existence::Records(1));
    b.run(at(10.5), |_, _| {});
    assert_eq!(b.forwards.len(), 4);

    // A late reply to the first try after the retry is ignored; the
    // retry's reply answers, and its pending timeout is harmless.
    let mut b = node_local(26);
    b.offer(1, SVC, Zone::Cluster, Existence::Records(1));
    b.run(at(2.5), |_, _| {});
    assert_eq!(b.forwards.len(), 2);
    let (first, second) = (b.forwards[0].2, b.forwards[1].2);
    assert_eq!(b.answer(first, Reply::answer(1), 1, 30), 0);
    assert!(b.got.is_empty());
    assert_eq!(b.answer(second, Reply::answer(1), 2, 30), 1);
    assert_eq!(b.last_reply().3, 2);
    assert_eq!(
        b.answer(second, Reply::answer(1), 3, 30),
        0,
        "answered once"
    );
    b.run(at(10.0), |_, _| {});
    assert_eq!(b.forwards.len(), 2, "no retry after the answer");
    assert_eq!(b.got.len(), 1);
    let s = *b.dns.stats();
    assert_eq!((s.received, s.answered, s.servfail), (1, 1, 0));
}

#[test]
fn oom_kill_and_shutdown_invalidate_forward_tries() {
    // 24 MiB + 4 KiB per query: the 1,537th query inside passes 30 MiB.
    let spec = CoreDnsSpec {
        memory_limit: 30 * MIB,
        ..CoreDnsSpec::node_local()
    };
    let mut b = Bench::new(spec, 27);
    for i in 0..1_000u64 {
        b.offer(
            i,
            &format!("svc-{i}.prod.svc.cluster.local"),
            Zone::Cluster,
            Existence::Records(1),
        );
    }
    b.run(at(0.5), |_, _| {});
    assert_eq!(b.forwards.len(), 1_000);
    for i in 1_000..1_600u64 {
        b.offer(
            i,
            "late.prod.svc.cluster.local",
            Zone::Cluster,
            Existence::Records(1),
        );
    }
    assert_eq!(b.ooms.len(), 1);
    assert_eq!(b.oom_drops, 1_537);
    let old: Vec<ForwardId> = b.forwards.iter().map(|f| f.2).collect();
    for &id in &old {
        assert_eq!(b.answer(id, Reply::answer(1), 0, 30), 0);
    }
    // Restarted: a new query gets a new try, which works.
    b.run(at(1.0), |_, _| {});
    assert!(b.dns.is_running());
    b.offer(9_000, SVC, Zone::Cluster, Existence::Records(1));
    b.run(at(1.5), |_, _| {});
    let (_, tag, id) = *b.forwards.last().unwrap();
    assert_eq!(tag, 9_000);
    assert!(!old.contains(&id));
    assert_eq!(b.answer(id, Reply::answer(1), 0, 30), 1);
    // No stale timeout answers anything after the restart.
    b.run(at(20.0), |_, _| {});
    assert_eq!(b.dns.stats().servfail, 0);

    let mut b = node_local(28);
    b.offer(1, SVC, Zone::Cluster, Existence::Records(1));
    b.run(at(0.5), |_, _| {});
    let id = b.forwards[0].2;
    let acts = b.dns.shutdown();
    assert_eq!(
        acts,
        vec![CoreDnsAction::Dropped {
            tag: 1,
            reason: DropReason::Deleted
        }]
    );
    assert_eq!(b.answer(id, Reply::answer(1), 0, 30), 0);
}

#[test]
fn max_concurrent_counts_cluster_forwards() {
    let spec = CoreDnsSpec {
        max_concurrent: Some(10),
        upstream: UpstreamSpec {
            latency: SimDuration::from_secs(1),
            ..UpstreamSpec::default()
        },
        ..CoreDnsSpec::node_local()
    };
    let mut b = Bench::new(spec, 29);
    for i in 0..5u64 {
        b.offer(
            i,
            &format!("h{i}.example.com"),
            Zone::External,
            Existence::Records(1),
        );
    }
    for i in 5..15u64 {
        b.offer(
            i,
            &format!("s{i}.prod.svc.cluster.local"),
            Zone::Cluster,
            Existence::Records(1),
        );
    }
    b.run(at(0.5), |_, _| {});
    let refused = b.refused();
    assert_eq!(refused, (10..15).collect::<Vec<u64>>());
    assert_eq!(b.forwards.len(), 5);
    assert_eq!(b.dns.stats().forwarded, 10);
    // One answer frees one slot.
    b.answer(b.forwards[0].2, Reply::answer(1), 0, 30);
    b.offer(
        20,
        "s20.prod.svc.cluster.local",
        Zone::Cluster,
        Existence::Records(1),
    );
    b.offer(
        21,
        "s21.prod.svc.cluster.local",
        Zone::Cluster,
        Existence::Records(1),
    );
    b.run(at(0.9), |_, _| {});
    assert_eq!(b.forwards.last().map(|f| f.1), Some(20));
    assert!(matches!(
        b.got.last(),
        Some((_, Tagged::Reply(21, _, AnswerSource::MaxConcurrent)))
    ));
    assert_eq!(b.dns.stats().refused, 6);
}

#[test]
fn external_names_still_go_upstream_in_forward_mode() {
    let mut b = node_local(30);
    b.offer(1, "infoblox.com", Zone::External, Existence::Records(1));
    b.run(at(0.5), |_, _| {});
    assert!(b.forwards.is_empty());
    let (t, g) = b.got[0];
    assert_eq!(
        g,
        Tagged::Reply(1, Reply::answer(1), AnswerSource::Upstream)
    );
    assert!(
        t >= at(0.001) && t < at(0.01),
        "after the 1 ms upstream latency: {t}"
    );
    assert_eq!(b.dns.stats().forwarded, 1);
}
