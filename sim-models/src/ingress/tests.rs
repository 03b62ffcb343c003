use super::*;

fn svc(name: &str) -> Backend {
    Backend::Service {
        name: name.into(),
        port: "80".into(),
    }
}

fn ingress(name: &str, host: Option<&str>, paths: &[(&str, PathType, &str)]) -> Ingress {
    Ingress {
        namespace: "default".into(),
        name: name.into(),
        use_regex: false,
        rewrite_target: false,
        default_backend: None,
        rules: vec![IngressRule {
            host: host.map(str::to_string),
            paths: paths
                .iter()
                .map(|(p, t, b)| IngressPath {
                    path: p.to_string(),
                    path_type: *t,
                    backend: svc(b),
                })
                .collect(),
        }],
    }
}

fn backend(r: &Router, host: &str, path: &str) -> Option<String> {
    r.route(host, path).backend.map(|b| b.to_string())
}

use PathType::{Exact, ImplementationSpecific as Impl, Prefix};

/// The Ingress concept page's "Examples" table, row by row: the paths of
/// one Ingress, a request path, and whether (and which) path matches.
#[test]
fn the_concept_pages_examples_table_for_the_conformant_controller() {
    type Row = (
        &'static [(&'static str, PathType)],
        &'static str,
        Option<usize>,
    );
    let rows: &[Row] = &[
        (&[("/", Prefix)], "/anything", Some(0)),
        (&[("/foo", Exact)], "/foo", Some(0)),
        (&[("/foo", Exact)], "/bar", None),
        (&[("/foo", Exact)], "/foo/", None),
        (&[("/foo/", Exact)], "/foo", None),
        (&[("/foo", Prefix)], "/foo", Some(0)),
        (&[("/foo", Prefix)], "/foo/", Some(0)),
        (&[("/foo/", Prefix)], "/foo", Some(0)),
        (&[("/foo/", Prefix)], "/foo/", Some(0)),
        (&[("/aaa/bb", Prefix)], "/aaa/bbb", None),
        (&[("/aaa/bbb", Prefix)], "/aaa/bbb", Some(0)),
        (&[("/aaa/bbb/", Prefix)], "/aaa/bbb", Some(0)),
        (&[("/aaa/bbb", Prefix)], "/aaa/bbb/", Some(0)),
        (&[("/aaa/bbb", Prefix)], "/aaa/bbb/ccc", Some(0)),
        (&[("/aaa/bbb", Prefix)], "/aaa/bbbxyz", None),
        (&[("/", Prefix), ("/aaa", Prefix)], "/aaa/ccc", Some(1)),
        (
            &[("/", Prefix), ("/aaa", Prefix), ("/aaa/bbb", Prefix)],
            "/aaa/bbb",
            Some(2),
        ),
        (
            &[("/", Prefix), ("/aaa", Prefix), ("/aaa/bbb", Prefix)],
            "/ccc",
            Some(0),
        ),
        (&[("/aaa", Prefix)], "/ccc", None),
        (&[("/foo", Prefix), ("/foo", Exact)], "/foo", Some(1)),
    ];
    for (paths, request, want) in rows {
        let named: Vec<(&str, PathType, String)> = paths
            .iter()
            .enumerate()
            .map(|(i, (p, t))| (*p, *t, format!("b{i}")))
            .collect();
        let spec: Vec<(&str, PathType, &str)> =
            named.iter().map(|(p, t, b)| (*p, *t, b.as_str())).collect();
        let r = Router::new(&[ingress("i", None, &spec)], Controller::Conformant).unwrap();
        let got = backend(&r, "any.host", request);
        assert_eq!(
            got,
            want.map(|i| format!("b{i}:80")),
            "paths {paths:?}, request {request}"
        );
    }
}

#[test]
fn ingress_nginx_writes_a_prefix_as_a_slash_location_and_an_exact_one() {
    let r = Router::new(
        &[ingress(
            "api",
            Some("shop.example.com"),
            &[("/api", Prefix, "api")],
        )],
        Controller::IngressNginx,
    )
    .unwrap();
    let shown: Vec<&str> = r.servers()[0]
        .locations
        .iter()
        .map(|l| l.shown.as_str())
        .collect();
    assert_eq!(shown, ["/api/", "= /api"]);
    assert_eq!(
        backend(&r, "shop.example.com", "/api").as_deref(),
        Some("api:80")
    );
    assert_eq!(
        backend(&r, "shop.example.com", "/api/v1").as_deref(),
        Some("api:80")
    );
    assert_eq!(
        backend(&r, "shop.example.com", "/api-docs"),
        None,
        "spec-conformant by default"
    );
    assert_eq!(
        backend(&r, "shop.example.com", "/API"),
        None,
        "case-sensitive"
    );
}

#[test]
fn implementation_specific_is_a_string_prefix_in_ingress_nginx() {
    let paths = [("/api", Impl, "api")];
    let nginx = Router::new(&[ingress("i", None, &paths)], Controller::IngressNginx).unwrap();
    assert_eq!(backend(&nginx, "h", "/api-docs").as_deref(), Some("api:80"));
    let conformant = Router::new(&[ingress("i", None, &paths)], Controller::Conformant).unwrap();
    assert_eq!(backend(&conformant, "h", "/api-docs"), None, "as Prefix");
}

/// The outage: one team's Ingress uses regex; another's `/api` Prefix on
/// the same host then catches `/api-docs` (and `/API`, `/apiX`).
#[test]
fn use_regex_on_any_ingress_of_a_host_turns_every_path_into_a_case_insensitive_prefix() {
    let api = ingress("api", Some("shop.example.com"), &[("/api", Prefix, "api")]);
    let mut docs = ingress(
        "docs",
        Some("shop.example.com"),
        &[("/docs/[a-z]+", Impl, "docs"), ("/", Prefix, "web")],
    );
    docs.use_regex = true;
    let r = Router::new(&[api.clone(), docs.clone()], Controller::IngressNginx).unwrap();
    assert_eq!(r.servers()[0].regex_because, Some(1));
    for surprise in ["/api-docs", "/API", "/apiX", "/api"] {
        let route = r.route("shop.example.com", surprise);
        assert_eq!(
            route.backend.map(|b| b.to_string()).as_deref(),
            Some("api:80"),
            "{surprise}"
        );
        assert_eq!(route.location, Some("~* \"^/api\""), "{surprise}");
    }
    assert_eq!(
        backend(&r, "shop.example.com", "/docs/intro").as_deref(),
        Some("docs:80")
    );
    assert_eq!(
        backend(&r, "shop.example.com", "/cart").as_deref(),
        Some("web:80")
    );
    // Without the regex Ingress the same /api Ingress does not catch it.
    let alone = Router::new(
        &[
            api.clone(),
            ingress("web", Some("shop.example.com"), &[("/", Prefix, "web")]),
        ],
        Controller::IngressNginx,
    )
    .unwrap();
    assert_eq!(
        backend(&alone, "shop.example.com", "/api-docs").as_deref(),
        Some("web:80")
    );
    // On another host the regex Ingress changes nothing.
    docs.rules[0].host = Some("docs.example.com".into());
    let split = Router::new(&[api, docs], Controller::IngressNginx).unwrap();
    assert_eq!(backend(&split, "shop.example.com", "/api-docs"), None);
    // The conformant controller ignores the annotation.
    let mut regexy = ingress("api", Some("h"), &[("/api", Prefix, "api")]);
    regexy.use_regex = true;
    let c = Router::new(&[regexy], Controller::Conformant).unwrap();
    assert_eq!(backend(&c, "h", "/api-docs"), None);
}

#[test]
fn fixes_exact_or_a_trailing_slash_keep_api_docs_out_even_in_regex_mode() {
    let mut web = ingress("web", Some("h"), &[("/", Prefix, "web")]);
    web.rewrite_target = true;
    let exact = Router::new(
        &[
            ingress("api", Some("h"), &[("/api/", Prefix, "api")]),
            web.clone(),
        ],
        Controller::IngressNginx,
    )
    .unwrap();
    assert_eq!(backend(&exact, "h", "/api-docs").as_deref(), Some("web:80"));
    assert_eq!(backend(&exact, "h", "/api/v1").as_deref(), Some("api:80"));
}

#[test]
fn regex_locations_are_tried_longest_first_and_the_first_match_wins() {
    let mut i = ingress(
        "i",
        Some("h"),
        &[
            ("/a", Impl, "short"),
            ("/a/b.*", Impl, "long"),
            ("/a/c", Impl, "mid"),
        ],
    );
    i.use_regex = true;
    let r = Router::new(&[i], Controller::IngressNginx).unwrap();
    let shown: Vec<&str> = r.servers()[0]
        .locations
        .iter()
        .map(|l| l.shown.as_str())
        .collect();
    assert_eq!(shown, ["~* \"^/a/b.*\"", "~* \"^/a/c\"", "~* \"^/a\""]);
    assert_eq!(backend(&r, "h", "/a/bx").as_deref(), Some("long:80"));
    assert_eq!(backend(&r, "h", "/A/C/d").as_deref(), Some("mid:80"));
    assert_eq!(backend(&r, "h", "/abc").as_deref(), Some("short:80"));
}

#[test]
fn a_path_that_is_no_regex_is_an_error_only_where_it_is_read_as_one() {
    let mut i = ingress("i", Some("h"), &[("/a(b", Impl, "x")]);
    assert!(Router::new(std::slice::from_ref(&i), Controller::IngressNginx).is_ok());
    i.use_regex = true;
    let e = Router::new(&[i], Controller::IngressNginx).unwrap_err();
    assert_eq!(
        e.origin,
        Origin {
            ingress: 0,
            rule: 0,
            path: 0
        }
    );
    assert!(e.message.contains("/a(b"), "{}", e.message);
}

#[test]
fn hosts_exact_before_wildcard_before_none_and_the_default_backend() {
    let mut catch_all = ingress("all", None, &[("/", Prefix, "fallback")]);
    catch_all.default_backend = Some(svc("default-svc"));
    let ings = [
        catch_all,
        ingress("wild", Some("*.example.com"), &[("/", Prefix, "wild")]),
        ingress("exact", Some("api.example.com"), &[("/v1", Prefix, "api")]),
    ];
    for controller in [Controller::Conformant, Controller::IngressNginx] {
        let r = Router::new(&ings, controller).unwrap();
        assert_eq!(
            backend(&r, "api.example.com", "/v1/x").as_deref(),
            Some("api:80")
        );
        // The exact host's rules have no match: the default backend, not the wildcard's.
        let miss = r.route("api.example.com", "/other");
        assert_eq!(
            miss.backend.map(|b| b.to_string()).as_deref(),
            Some("default-svc:80")
        );
        assert_eq!((miss.location, miss.default_from), (None, Some(0)));
        assert_eq!(
            backend(&r, "www.example.com", "/").as_deref(),
            Some("wild:80")
        );
        assert_eq!(
            backend(&r, "example.com", "/").as_deref(),
            Some("fallback:80")
        );
        assert_eq!(
            backend(&r, "other.org", "/x").as_deref(),
            Some("fallback:80")
        );
    }
    let spec = Router::new(&ings, Controller::Conformant).unwrap();
    assert_eq!(
        backend(&spec, "a.b.example.com", "/").as_deref(),
        Some("fallback:80"),
        "one label"
    );
    let nginx = Router::new(&ings, Controller::IngressNginx).unwrap();
    assert_eq!(
        backend(&nginx, "a.b.example.com", "/").as_deref(),
        Some("wild:80"),
        "server_name"
    );
}

#[test]
fn no_default_backend_anywhere_is_the_controllers_404() {
    let r = Router::new(
        &[ingress("i", Some("h"), &[("/a", Exact, "a")])],
        Controller::Conformant,
    )
    .unwrap();
    let miss = r.route("h", "/b");
    assert_eq!(
        (miss.backend, miss.location, miss.default_from),
        (None, None, None)
    );
    assert_eq!(miss.server, Some("h"));
}
