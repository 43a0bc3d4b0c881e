use super::*;

fn spec(yaml: &str) -> CorsSpec {
    serde_norway::from_str(yaml).unwrap()
}

fn cors(yaml: &str) -> Cors {
    Cors::compile(&spec(yaml)).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn preflight(c: &Cors, origin: &str, method: &str, asked: Option<&str>) -> Option<Preflight> {
    let mut pairs = vec![
        ("origin", origin),
        ("access-control-request-method", method),
    ];
    if let Some(asked) = asked {
        pairs.push(("access-control-request-headers", asked));
    }
    c.preflight(&Method::OPTIONS, &headers(&pairs))
}

fn value<'a>(list: &'a [(HeaderName, HeaderValue)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, v)| v.to_str().unwrap())
}

fn allowed(p: Option<Preflight>) -> Vec<(HeaderName, HeaderValue)> {
    match p {
        Some(Preflight::Allowed(list)) => list,
        other => panic!("expected an allowed preflight, got {other:?}"),
    }
}

#[test]
fn a_wildcard_origin_matches_subdomains_but_not_the_bare_domain_or_a_lookalike() {
    let c = cors("{origins: ['https://*.example.com']}");
    let ok = |o: &str| {
        !c.response_headers(Some(&HeaderValue::from_str(o).unwrap()))
            .is_empty()
            && value(
                &c.response_headers(Some(&HeaderValue::from_str(o).unwrap())),
                "access-control-allow-origin",
            )
            .is_some()
    };
    assert!(ok("https://app.example.com"));
    assert!(ok("https://a.b.example.com"));
    assert!(ok("HTTPS://App.Example.COM"));
    assert!(!ok("https://example.com"));
    assert!(!ok("https://example.com.evil.net"));
    assert!(!ok("https://evilexample.com"));
    assert!(!ok("http://app.example.com"), "the scheme must match");
    assert!(!ok("https://app.example.com:8443"), "the port must match");
    assert!(!ok("null"));
}

#[test]
fn an_exact_origin_is_echoed_and_the_default_port_is_the_same_origin() {
    let c = cors("{origins: ['https://app.example.com:443']}");
    let out = c.response_headers(Some(&HeaderValue::from_static("https://app.example.com")));
    assert_eq!(
        value(&out, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(value(&out, "vary"), Some("Origin"));
    let other = c.response_headers(Some(&HeaderValue::from_static(
        "https://app.example.com:444",
    )));
    assert_eq!(value(&other, "access-control-allow-origin"), None);
    assert_eq!(
        value(&other, "vary"),
        Some("Origin"),
        "a refused origin still varies"
    );
}

#[test]
fn any_origin_without_credentials_is_a_star_and_needs_no_vary() {
    let c = cors("{origins: ['*']}");
    let out = c.response_headers(Some(&HeaderValue::from_static("https://x.test")));
    assert_eq!(value(&out, "access-control-allow-origin"), Some("*"));
    assert_eq!(value(&out, "vary"), None);
    assert!(c.response_headers(None).is_empty());
}

#[test]
fn credentials_are_announced_and_the_origin_is_echoed_never_starred() {
    let c = cors(
        "{origins: ['https://app.example.com'], credentials: true, \
                  expose_headers: [x-request-id]}",
    );
    let out = c.response_headers(Some(&HeaderValue::from_static("https://app.example.com")));
    assert_eq!(
        value(&out, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        value(&out, "access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        value(&out, "access-control-expose-headers"),
        Some("x-request-id")
    );
}

#[test]
fn a_preflight_lists_methods_headers_and_max_age_only_when_all_are_allowed() {
    let c = cors(
        "{origins: ['https://app.example.com'], methods: [put, DELETE], \
                  headers: [X-Token], max_age: 600}",
    );
    let out = allowed(preflight(
        &c,
        "https://app.example.com",
        "PUT",
        Some("x-token, Content-Type"),
    ));
    assert_eq!(
        value(&out, "access-control-allow-methods"),
        Some("PUT, DELETE")
    );
    assert_eq!(value(&out, "access-control-allow-headers"), Some("x-token"));
    assert_eq!(value(&out, "access-control-max-age"), Some("600"));
    assert!(value(&out, "access-control-expose-headers").is_none());
    let denied = |m: &str, h: Option<&str>| preflight(&c, "https://app.example.com", m, h);
    assert_eq!(denied("PATCH", None), Some(Preflight::Denied));
    assert_eq!(
        denied("PUT", Some("x-token, x-other")),
        Some(Preflight::Denied)
    );
    assert_eq!(
        preflight(&c, "https://evil.test", "PUT", None),
        Some(Preflight::Denied)
    );
}

#[test]
fn only_options_with_origin_and_a_requested_method_is_a_preflight() {
    let c = cors("{origins: ['*']}");
    let h = headers(&[
        ("origin", "https://x.test"),
        ("access-control-request-method", "GET"),
    ]);
    assert!(c.preflight(&Method::GET, &h).is_none());
    let no_method = headers(&[("origin", "https://x.test")]);
    assert!(c.preflight(&Method::OPTIONS, &no_method).is_none());
    assert!(c.preflight(&Method::OPTIONS, &h).is_some());
}

#[test]
fn a_header_star_allows_any_requested_header() {
    let c = cors("{origins: ['https://a.test'], headers: ['*']}");
    let out = allowed(preflight(
        &c,
        "https://a.test",
        "GET",
        Some("x-anything, x-else"),
    ));
    assert_eq!(value(&out, "access-control-allow-headers"), Some("*"));
}

#[test]
fn bad_origins_and_star_with_credentials_are_refused_with_their_keys() {
    let problems = Cors::compile(&spec(
        "{origins: ['https://ok.test', 'https://x.test/path', 'ftp://x.test', '*', 'nope'], \
          credentials: true, headers: ['*', 'bad header'], max_age: 100000, methods: ['G E T']}",
    ))
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "origins[1]",
            "origins[2]",
            "origins[3]",
            "origins[4]",
            "methods[0]",
            "headers[0]",
            "headers[1]",
            "max_age"
        ]
    );
    assert!(Cors::compile(&spec("{origins: []}")).is_err());
}

#[test]
fn hostile_origins_and_header_lists_are_answered_without_a_panic() {
    let c = cors("{origins: ['https://*.example.com'], headers: [x-a]}");
    let long_list = vec!["x-a"; 10_000].join(",");
    for origin in [
        "https://",
        "https://:443",
        "https://*.example.com",
        "https://.example.com",
        "https://a..example.com",
        "https://[::1]:443",
        "https://user@app.example.com",
        "://",
        "",
    ] {
        if let Ok(v) = HeaderValue::from_str(origin) {
            let _ = c.response_headers(Some(&v));
            let _ = preflight(&c, origin, "GET", Some(&long_list));
        }
    }
    let bytes = HeaderValue::from_bytes(b"https://\xffexample.com").unwrap();
    assert!(value(
        &c.response_headers(Some(&bytes)),
        "access-control-allow-origin"
    )
    .is_none());
    let out = allowed(preflight(
        &c,
        "https://a.example.com",
        "GET",
        Some(&long_list),
    ));
    assert_eq!(
        value(&out, "access-control-allow-origin"),
        Some("https://a.example.com")
    );
    let dotted = HeaderValue::from_static("https://a..example.com");
    assert!(value(
        &c.response_headers(Some(&dotted)),
        "access-control-allow-origin"
    )
    .is_none());
}
