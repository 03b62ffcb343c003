use super::*;

fn svc(name: &str) -> HttpBackendRef {
    HttpBackendRef {
        backend: Backend::Service {
            name: name.into(),
            port: "80".into(),
        },
        weight: 1,
    }
}

fn route(
    name: &str,
    created: Option<&str>,
    hosts: &[&str],
    rules: &[(HttpPathMatch, &str)],
) -> HttpRoute {
    HttpRoute {
        namespace: "default".into(),
        name: name.into(),
        created: created.map(str::to_string),
        hostnames: hosts.iter().map(|h| h.to_string()).collect(),
        rules: rules
            .iter()
            .map(|(m, b)| HttpRouteRule {
                matches: vec![HttpRouteMatch::path(m.clone())],
                backends: vec![svc(b)],
            })
            .collect(),
    }
}

fn exact(p: &str) -> HttpPathMatch {
    HttpPathMatch::Exact(p.into())
}

fn prefix(p: &str) -> HttpPathMatch {
    HttpPathMatch::PathPrefix(p.into())
}

fn to(r: &GatewayRouter, host: &str, path: &str) -> Option<String> {
    r.route_path(host, path)
        .map(|m| m.backends[0].backend.to_string())
}

#[test]
fn path_prefix_matches_element_by_element_as_the_api_example_says() {
    let r = GatewayRouter::new(vec![route("r", None, &[], &[(prefix("/abc"), "abc")])]);
    for p in ["/abc", "/abc/", "/abc/def"] {
        assert_eq!(to(&r, "h", p).as_deref(), Some("abc:80"), "{p}");
    }
    assert_eq!(to(&r, "h", "/abcd"), None, "the 404");
    let r = GatewayRouter::new(vec![route("r", None, &[], &[(exact("/foo"), "foo")])]);
    assert_eq!(to(&r, "h", "/foo").as_deref(), Some("foo:80"));
    assert_eq!(to(&r, "h", "/foo/"), None, "Exact is the whole path");
    assert_eq!(to(&r, "h", "/FOO"), None, "case-sensitive");
}

#[test]
fn row_1_exact_before_any_prefix() {
    // The prefix is in an older route and is as long: Exact still wins.
    let r = GatewayRouter::new(vec![
        route(
            "a",
            Some("2020-01-01T00:00:00Z"),
            &[],
            &[(prefix("/foo"), "prefix")],
        ),
        route(
            "b",
            Some("2024-01-01T00:00:00Z"),
            &[],
            &[(exact("/foo"), "exact")],
        ),
    ]);
    assert_eq!(to(&r, "h", "/foo").as_deref(), Some("exact:80"));
    assert_eq!(to(&r, "h", "/foo/bar").as_deref(), Some("prefix:80"));
}

#[test]
fn row_2_the_prefix_with_the_most_characters() {
    let r = GatewayRouter::new(vec![
        route(
            "a",
            Some("2020-01-01T00:00:00Z"),
            &[],
            &[(prefix("/api"), "short")],
        ),
        route("b", None, &[], &[(prefix("/api/v1"), "long")]),
    ]);
    assert_eq!(to(&r, "h", "/api/v1/cart").as_deref(), Some("long:80"));
    assert_eq!(to(&r, "h", "/api/v2").as_deref(), Some("short:80"));
    // `/api` does not catch /api-docs (the Ingress surprise cannot happen).
    assert_eq!(to(&r, "h", "/api-docs"), None);
}

#[test]
fn row_3_on_a_tie_the_oldest_route() {
    let r = GatewayRouter::new(vec![
        route(
            "a",
            Some("2024-05-01T00:00:00Z"),
            &[],
            &[(prefix("/x"), "newer")],
        ),
        route(
            "z",
            Some("2023-05-01T00:00:00Z"),
            &[],
            &[(prefix("/x"), "older")],
        ),
    ]);
    assert_eq!(to(&r, "h", "/x").as_deref(), Some("older:80"));
}

#[test]
fn row_4_then_namespace_and_name_alphabetically() {
    let mut b = route("b", None, &[], &[(prefix("/x"), "b")]);
    let a = route("a", None, &[], &[(prefix("/x"), "a")]);
    let r = GatewayRouter::new(vec![b.clone(), a.clone()]);
    assert_eq!(to(&r, "h", "/x").as_deref(), Some("a:80"));
    b.namespace = "apps".into();
    let r = GatewayRouter::new(vec![a, b]);
    assert_eq!(
        to(&r, "h", "/x").as_deref(),
        Some("b:80"),
        "apps/b before default/a"
    );
}

#[test]
fn row_5_then_the_first_matching_rule_of_the_route() {
    let r = GatewayRouter::new(vec![route(
        "r",
        None,
        &[],
        &[(prefix("/x"), "first"), (prefix("/x"), "second")],
    )]);
    assert_eq!(to(&r, "h", "/x/y").as_deref(), Some("first:80"));
    let m = r.route_path("h", "/x/y").unwrap();
    assert_eq!(
        (m.route, m.rule, m.matched.shown()),
        (0, 0, "PathPrefix /x".into())
    );
}

#[test]
fn hostnames_most_specific_first_and_defaults() {
    let r = GatewayRouter::new(vec![
        route("any", None, &[], &[(prefix("/"), "any")]),
        route("wild", None, &["*.example.com"], &[(prefix("/"), "wild")]),
        route(
            "shop",
            None,
            &["shop.example.com"],
            &[(prefix("/api"), "shop")],
        ),
    ]);
    assert_eq!(
        to(&r, "shop.example.com", "/api").as_deref(),
        Some("shop:80")
    );
    // The exact hostname's route is the one tried: no fallback to the wildcard.
    assert_eq!(to(&r, "shop.example.com", "/other"), None);
    assert_eq!(to(&r, "a.b.example.com", "/").as_deref(), Some("wild:80"));
    assert_eq!(to(&r, "example.com", "/").as_deref(), Some("any:80"));
    // A rule without matches is PathPrefix /.
    let mut all = route("all", None, &[], &[]);
    all.rules.push(HttpRouteRule {
        matches: vec![],
        backends: vec![svc("all")],
    });
    let r = GatewayRouter::new(vec![all]);
    assert_eq!(to(&r, "h", "/anything").as_deref(), Some("all:80"));
}

/// PathPrefix and Exact against request paths, row by row: `/api` never
/// catches `/api-docs` (ingress-nginx's regex mode does), and `/api/`,
/// `/api` and `/api/v1` are one element-wise prefix.
#[test]
fn path_cases_table() {
    // (match, request path, matches)
    let rows: &[(HttpPathMatch, &str, bool)] = &[
        (prefix("/api"), "/api", true),
        (prefix("/api"), "/api/", true),
        (prefix("/api"), "/api/v1", true),
        (prefix("/api"), "/api/v1/cart", true),
        (prefix("/api"), "/api-docs", false),
        (prefix("/api"), "/apiary", false),
        (prefix("/api"), "/API", false),
        (prefix("/api"), "/", false),
        (prefix("/api/"), "/api", true),
        (prefix("/api/"), "/api/", true),
        (prefix("/api/"), "/api/v1", true),
        (prefix("/api/"), "/api-docs", false),
        (prefix("/api-docs"), "/api-docs", true),
        (prefix("/api-docs"), "/api", false),
        (prefix("/"), "/", true),
        (prefix("/"), "/api-docs", true),
        (prefix("/aaa/bbb"), "/aaa/bbbxyz", false),
        (prefix("/aaa/bbb"), "/aaa/bbb/ccc", true),
        (exact("/api"), "/api", true),
        (exact("/api"), "/api/", false),
        (exact("/api/"), "/api", false),
        (exact("/api"), "/api-docs", false),
        (exact("/api"), "/Api", false),
    ];
    for (m, path, want) in rows {
        assert_eq!(m.matches(path), *want, "{} against {path}", m.shown());
        // The indexed router agrees with the definition.
        let r = GatewayRouter::new(vec![route("r", None, &[], &[(m.clone(), "b")])]);
        assert_eq!(
            r.route_path("h", path).is_some(),
            *want,
            "router: {} against {path}",
            m.shown()
        );
    }
    // /api and /api-docs side by side: each goes to its own backend.
    let r = GatewayRouter::new(vec![route(
        "r",
        None,
        &[],
        &[(prefix("/api"), "api"), (prefix("/"), "web")],
    )]);
    for (path, to_) in [
        ("/api", "api:80"),
        ("/api/", "api:80"),
        ("/api/v1/cart", "api:80"),
        ("/api-docs", "web:80"),
        ("/products/42", "web:80"),
    ] {
        assert_eq!(to(&r, "h", path).as_deref(), Some(to_), "{path}");
    }
}

fn with_extras(
    p: HttpPathMatch,
    method: Option<&str>,
    headers: usize,
    query: usize,
) -> HttpRouteMatch {
    HttpRouteMatch {
        path: p,
        method: method.map(str::to_string),
        headers: (0..headers)
            .map(|i| (format!("X-H{i}"), "1".to_string()))
            .collect(),
        query_params: (0..query)
            .map(|i| (format!("q{i}"), "1".to_string()))
            .collect(),
    }
}

fn one_rule(name: &str, m: HttpRouteMatch, b: &str) -> HttpRoute {
    HttpRoute {
        namespace: "default".into(),
        name: name.into(),
        created: None,
        hostnames: vec![],
        rules: vec![HttpRouteRule {
            matches: vec![m],
            backends: vec![svc(b)],
        }],
    }
}

#[test]
fn rows_method_then_headers_then_query_break_prefix_ties() {
    // Same PathPrefix; route names ordered against the expected winner so
    // that only the criterion under test can decide.
    let r = GatewayRouter::new(vec![
        one_rule("a", with_extras(prefix("/x"), None, 2, 2), "plain"),
        one_rule("z", with_extras(prefix("/x"), Some("GET"), 0, 0), "method"),
    ]);
    let hq = [("x-h0", "1"), ("X-H1", "1")];
    let qq = [("q0", "1"), ("q1", "1")];
    let req = HttpRequest {
        host: "h",
        path: "/x",
        method: "GET",
        headers: &hq,
        query: &qq,
    };
    let who = |r: &GatewayRouter, q: &HttpRequest<'_>| {
        r.route(q).map(|m| m.backends[0].backend.to_string())
    };
    assert_eq!(who(&r, &req).as_deref(), Some("method:80"), "method first");
    let post = HttpRequest {
        method: "POST",
        ..req
    };
    assert_eq!(
        who(&r, &post).as_deref(),
        Some("plain:80"),
        "its method fails"
    );
    let r = GatewayRouter::new(vec![
        one_rule("a", with_extras(prefix("/x"), None, 1, 2), "one-header"),
        one_rule("z", with_extras(prefix("/x"), None, 2, 0), "two-headers"),
    ]);
    assert_eq!(who(&r, &req).as_deref(), Some("two-headers:80"));
    assert_eq!(
        who(
            &r,
            &HttpRequest {
                headers: &hq[..1],
                ..req
            }
        )
        .as_deref(),
        Some("one-header:80"),
        "X-H1 missing: the two-header match fails"
    );
    let r = GatewayRouter::new(vec![
        one_rule("a", with_extras(prefix("/x"), None, 0, 1), "one-query"),
        one_rule("z", with_extras(prefix("/x"), None, 0, 2), "two-query"),
    ]);
    assert_eq!(who(&r, &req).as_deref(), Some("two-query:80"));
    // A longer prefix beats any number of extras on a shorter one.
    let r = GatewayRouter::new(vec![
        one_rule("a", with_extras(prefix("/x"), Some("GET"), 2, 2), "short"),
        one_rule("z", with_extras(prefix("/x/y"), None, 0, 0), "long"),
    ]);
    assert_eq!(
        who(
            &r,
            &HttpRequest {
                path: "/x/y/z",
                ..req
            }
        )
        .as_deref(),
        Some("long:80")
    );
    // Exact beats extras too.
    let r = GatewayRouter::new(vec![
        one_rule("a", with_extras(prefix("/x"), Some("GET"), 2, 2), "prefix"),
        one_rule("z", with_extras(exact("/x"), None, 0, 0), "exact"),
    ]);
    assert_eq!(who(&r, &req).as_deref(), Some("exact:80"));
}

/// A small deterministic generator (xorshift) for the oracle test.
struct Gen(u64);
impl Gen {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The precedence as the API states it, by a plain scan of every rule.
fn reference(routes: &[HttpRoute], req: &HttpRequest<'_>) -> Option<(usize, usize, usize)> {
    let score = |r: &HttpRoute| -> Option<(usize, usize)> {
        if r.hostnames.is_empty() {
            return Some((0, 0));
        }
        r.hostnames
            .iter()
            .filter_map(|h| match h.strip_prefix("*.") {
                Some(d) => req
                    .host
                    .strip_suffix(d)
                    .and_then(|l| l.strip_suffix('.'))
                    .filter(|l| !l.is_empty())
                    .map(|_| (0, h.len())),
                None => (h == req.host).then_some((h.len(), h.len())),
            })
            .max()
    };
    let best_host = routes.iter().filter_map(score).max()?;
    let implicit = HttpRouteMatch::path(prefix("/"));
    let mut best: Option<(Vec<isize>, (usize, usize, usize))> = None;
    for (i, r) in routes.iter().enumerate() {
        if score(r) != Some(best_host) {
            continue;
        }
        for (k, rule) in r.rules.iter().enumerate() {
            let ms = if rule.matches.is_empty() {
                std::slice::from_ref(&implicit)
            } else {
                &rule.matches[..]
            };
            for (j, m) in ms.iter().enumerate() {
                if !m.path.matches(req.path) || !m.extras_hold(req) {
                    continue;
                }
                let (is_exact, len) = match &m.path {
                    HttpPathMatch::Exact(p) => (1, p.len()),
                    HttpPathMatch::PathPrefix(p) => (0, p.len()),
                };
                // Larger is better.
                let key = vec![
                    is_exact,
                    len as isize,
                    m.method.is_some() as isize,
                    m.headers.len() as isize,
                    m.query_params.len() as isize,
                ];
                let older = |a: usize, b: usize| {
                    let (x, y) = (&routes[a], &routes[b]);
                    let age = match (&x.created, &y.created) {
                        (Some(p), Some(q)) => p.cmp(q),
                        (Some(_), None) => std::cmp::Ordering::Less,
                        (None, Some(_)) => std::cmp::Ordering::Greater,
                        (None, None) => std::cmp::Ordering::Equal,
                    };
                    age.then_with(|| {
                        format!("{}/{}", x.namespace, x.name)
                            .cmp(&format!("{}/{}", y.namespace, y.name))
                    })
                };
                let better = match &best {
                    None => true,
                    Some((bk, (bi, bk_rule, bj))) => {
                        key > *bk
                            || (key == *bk
                                && (older(i, *bi).is_lt()
                                    || (i == *bi && (k, j) < (*bk_rule, *bj))))
                    }
                };
                if better {
                    best = Some((key, (i, k, j)));
                }
            }
        }
    }
    best.map(|(_, at)| at)
}

#[test]
fn the_index_agrees_with_a_scan_of_every_rule() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let elements = ["api", "api-docs", "v1", "a", "b", "docs", ""];
    let hosts = [
        "shop.example.com",
        "a.example.com",
        "x.y.example.com",
        "other.org",
    ];
    let hostnames = [
        "shop.example.com",
        "*.example.com",
        "*.y.example.com",
        "a.example.com",
    ];
    let path = |g: &mut Gen| {
        let n = g.next(4);
        let mut p = String::new();
        for _ in 0..n {
            p.push('/');
            p.push_str(elements[g.next(elements.len() - 1)]);
        }
        if p.is_empty() || g.next(5) == 0 {
            p.push('/');
        }
        p
    };
    for case in 0..300 {
        let mut routes = Vec::new();
        for r in 0..1 + g.next(6) {
            let hn = (0..g.next(3))
                .map(|_| hostnames[g.next(hostnames.len())].to_string())
                .collect();
            let rules = (0..g.next(4))
                .map(|_| HttpRouteRule {
                    matches: (0..g.next(3))
                        .map(|_| {
                            let p = path(&mut g);
                            let pm = if g.next(3) == 0 {
                                exact(&p)
                            } else {
                                prefix(&p)
                            };
                            with_extras(pm, (g.next(3) == 0).then_some("GET"), g.next(2), g.next(2))
                        })
                        .collect(),
                    backends: vec![svc("b")],
                })
                .collect();
            routes.push(HttpRoute {
                namespace: ["default", "apps"][g.next(2)].into(),
                name: format!("r{}", g.next(4)),
                created: [
                    None,
                    Some("2024-01-01T00:00:00Z"),
                    Some("2023-01-01T00:00:00Z"),
                ][g.next(3)]
                .map(str::to_string),
                hostnames: hn,
                rules,
            });
            let _ = r;
        }
        let router = GatewayRouter::new(routes.clone());
        for _ in 0..20 {
            let p = path(&mut g);
            let hs = [("X-H0", "1")];
            let req = HttpRequest {
                host: hosts[g.next(hosts.len())],
                path: &p,
                method: ["GET", "POST"][g.next(2)],
                headers: if g.next(2) == 0 { &hs } else { &[] },
                query: &[],
            };
            let got = router
                .route(&req)
                .map(|m| (m.route, m.rule, m.matched.clone()));
            let want = reference(&routes, &req).map(|(i, k, j)| {
                let rule = &routes[i].rules[k];
                let m = rule
                    .matches
                    .get(j)
                    .cloned()
                    .unwrap_or_else(|| HttpRouteMatch::path(prefix("/")));
                (i, k, m)
            });
            assert_eq!(got, want, "case {case}: {req:?} over {routes:#?}");
        }
    }
}
