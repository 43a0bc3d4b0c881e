//! The response cache behind the real gateway, in front of an origin that
//! counts its requests (see [`origin`]).

mod origin;

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::{client, eventually, Gateway};
use origin::Origin;

/// A gateway whose route `c` caches everything sent to `origin`, with the
/// route's `cache` section given in flow style.
fn gateway(origin: &Origin, cache: &str) -> Gateway {
    Gateway::start(&format!(
        "upstreams:
  o:
    backends: [{{ address: \"{}\" }}]
routes:
  - id: c
    upstream: o
    cache: {cache}
",
        origin.addr
    ))
}

struct Answer {
    status: u16,
    cache: String,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = client().get(gw.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let cache = headers
        .get("x-cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = resp.text().await.unwrap();
    Answer {
        status,
        cache,
        headers,
        body,
    }
}

const FRESH: &str = "/a?cc=max-age%3D60";

#[tokio::test(flavor = "multi_thread")]
async fn a_second_request_is_a_hit_that_never_reaches_the_origin() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let first = get(&gw, FRESH, &[]).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "MISS"));
    let second = get(&gw, FRESH, &[]).await;
    assert_eq!(second.cache, "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(origin.hits(), 1);
    let metrics = gw.metrics();
    assert!(metrics.contains("portico_cache_responses_total{status=\"HIT\"} 1"));
    assert!(metrics.contains("portico_cache_objects 1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_sharing_a_path_never_share_an_entry() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let a = get(&gw, FRESH, &[("host", "a.example")]).await;
    let b = get(&gw, FRESH, &[("host", "b.example")]).await;
    assert_eq!((a.cache.as_str(), b.cache.as_str()), ("MISS", "MISS"));
    assert!(a.body.starts_with("a.example "), "{}", a.body);
    assert!(b.body.starts_with("b.example "), "{}", b.body);
    let a_again = get(&gw, FRESH, &[("host", "a.example")]).await;
    assert_eq!(a_again.body, a.body);
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_route_without_a_cache_section_is_never_cached() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "upstreams:\n  o:\n    backends: [{{ address: \"{}\" }}]\n\
         routes:\n  - id: c\n    upstream: o\n",
        origin.addr
    ));
    for _ in 0..2 {
        let a = get(&gw, FRESH, &[]).await;
        assert!(a.headers.get("x-cache-status").is_none());
    }
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_with_set_cookie_is_not_served_to_another_client() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let path = "/a?cc=max-age%3D60&cookie=1";
    let alice = get(&gw, path, &[]).await;
    let bob = get(&gw, path, &[]).await;
    assert_eq!(alice.headers["set-cookie"], "s=1");
    assert_eq!(bob.headers["set-cookie"], "s=2");
    assert_ne!(bob.cache, "HIT");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_store_private_and_unfreshened_responses_are_not_stored() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    // `/c` states no freshness and has no Last-Modified to reckon one from.
    for path in [
        "/a?cc=no-store",
        "/b?cc=private%2C%20max-age%3D60",
        "/c?lm=none",
    ] {
        get(&gw, path, &[]).await;
        let again = get(&gw, path, &[]).await;
        assert_ne!(again.cache, "HIT", "{path} was served from the cache");
    }
    assert_eq!(origin.hits(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn cdn_cache_control_replaces_cache_control_and_expires_for_the_gateway() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    // Browsers are told no-store; the gateway keeps it for a minute.
    let path = "/a?cc=no-store&cdn=max-age%3D60";
    let first = get(&gw, path, &[]).await;
    assert_eq!(first.cache, "MISS");
    let second = get(&gw, path, &[]).await;
    assert_eq!(second.cache, "HIT");
    assert_eq!(second.headers["cache-control"], "no-store");
    assert_eq!(second.headers["cdn-cache-control"], "max-age=60");
    assert_eq!(origin.hits(), 1);
    // And the other way round: browsers may keep it, the gateway may not.
    let expires = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(600));
    for path in [
        "/b?cc=max-age%3D60&cdn=no-store".to_string(),
        "/c?cc=max-age%3D60&cdn=private".to_string(),
        // Expires does not count beside CDN-Cache-Control either.
        format!(
            "/d?lm=none&cdn=public&expires={}",
            expires.replace(' ', "%20")
        ),
        // A field that is no valid dictionary is ignored: no-store holds.
        "/f?cc=no-store&cdn=max-age%3D%2260%22".to_string(),
    ] {
        get(&gw, &path, &[]).await;
        let again = get(&gw, &path, &[]).await;
        assert_ne!(again.cache, "HIT", "{path} was served from the cache");
    }
    assert_eq!(origin.hits(), 9);
    // A route that lists no targeted field reads Cache-Control alone.
    let plain = gateway(&origin, "{targeted_fields: []}");
    get(&plain, "/e?cc=no-store&cdn=max-age%3D60", &[]).await;
    let again = get(&plain, "/e?cc=no-store&cdn=max-age%3D60", &[]).await;
    assert_ne!(again.cache, "HIT");
    assert_eq!(origin.hits(), 11);
}

#[tokio::test(flavor = "multi_thread")]
async fn fields_named_by_no_cache_or_private_reach_the_filling_client_but_no_later_one() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    for directive in ["no-cache", "private"] {
        let path =
            format!("/{directive}?cc=max-age%3D60%2C%20{directive}%3D%22x-secret%22&secret=s1");
        let first = get(&gw, &path, &[]).await;
        assert_eq!(first.cache, "MISS");
        assert_eq!(
            first.headers["x-secret"], "s1",
            "{directive}: the filling answer"
        );
        let second = get(&gw, &path, &[]).await;
        assert_eq!(second.cache, "HIT");
        assert!(
            !second.headers.contains_key("x-secret"),
            "{directive}: the stored field was reused"
        );
        assert_eq!(second.headers["etag"], "\"e1\"");
    }
    // Beside CDN-Cache-Control, the fields Cache-Control names stay private.
    let path = "/cdn?cc=private%3D%22x-secret%22&cdn=max-age%3D60&secret=s2";
    let first = get(&gw, path, &[]).await;
    assert_eq!(first.cache, "MISS");
    assert_eq!(first.headers["x-secret"], "s2");
    let second = get(&gw, path, &[]).await;
    assert_eq!(second.cache, "HIT");
    assert!(!second.headers.contains_key("x-secret"));
    assert_eq!(origin.hits(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn default_ttl_stores_a_response_without_freshness_information() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{default_ttl: 60s}");
    get(&gw, "/plain", &[]).await;
    assert_eq!(get(&gw, "/plain", &[]).await.cache, "HIT");
    assert_eq!(origin.hits(), 1);
}

/// An HTTP date `offset_secs` from now, written for a query string.
fn http_date(offset_secs: i64) -> String {
    let now = std::time::SystemTime::now();
    let delta = Duration::from_secs(offset_secs.unsigned_abs());
    let at = if offset_secs < 0 {
        now - delta
    } else {
        now + delta
    };
    httpdate::fmt_http_date(at)
        .replace(' ', "%20")
        .replace(',', "%2C")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_with_only_last_modified_gets_heuristic_freshness_unless_turned_off() {
    let origin = Origin::start().await;
    let path = format!("/h?lm={}", http_date(-36_000));
    let gw = gateway(&origin, "{}");
    get(&gw, &path, &[]).await;
    assert_eq!(get(&gw, &path, &[]).await.cache, "HIT");
    // A status RFC 9110 does not call heuristically cacheable gets no
    // heuristic, even where the route stores it.
    let gw302 = gateway(&origin, "{statuses: [200, 302]}");
    let moved = format!("{path}&status=302");
    get(&gw302, &moved, &[]).await;
    assert_ne!(get(&gw302, &moved, &[]).await.cache, "HIT");
    let off = gateway(&origin, "{heuristic_max_ttl: 0s}");
    get(&off, &path, &[]).await;
    assert_ne!(get(&off, &path, &[]).await.cache, "HIT");
    assert_eq!(origin.hits(), 1 + 2 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_age_a_response_arrives_with_counts_toward_its_freshness_and_its_age_on_hits() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let young = "/y?cc=max-age%3D3600&age=600";
    get(&gw, young, &[]).await;
    let hit = get(&gw, young, &[]).await;
    assert_eq!(hit.cache, "HIT");
    let age: u64 = hit.headers["age"].to_str().unwrap().parse().unwrap();
    assert!((600..700).contains(&age), "Age on the hit: {age}");
    // Older than its max-age on arrival: stored stale, so the next request
    // goes to the origin (which answers 304, still too old).
    let old = "/o?cc=max-age%3D60&age=120";
    get(&gw, old, &[]).await;
    assert_ne!(get(&gw, old, &[]).await.cache, "HIT");
    assert_eq!(origin.hits(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn expires_is_measured_from_the_responses_date_not_the_gateways_clock() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    // The origin's clock runs an hour ahead: its Expires, 30 s after its
    // Date, still leaves the response fresh for 30 s.
    let ahead = format!("/e?date={}&expires={}", http_date(3600), http_date(3630));
    get(&gw, &ahead, &[]).await;
    assert_eq!(get(&gw, &ahead, &[]).await.cache, "HIT");
    // Expires equal to Date: stale at once, though an hour in our future.
    let at_once = format!("/s?date={}&expires={}", http_date(3600), http_date(3600));
    get(&gw, &at_once, &[]).await;
    assert_ne!(get(&gw, &at_once, &[]).await.cache, "HIT");
    // An Expires that is not a date means already expired.
    get(&gw, "/bad?expires=soon", &[]).await;
    assert_ne!(get(&gw, "/bad?expires=soon", &[]).await.cache, "HIT");
    assert_eq!(origin.hits(), 1 + 2 + 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revalidated_entry_takes_the_date_of_the_304_and_is_fresh_again() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    // Stored already stale (its Date is 1,000 s old); the 304 that
    // revalidates it gives ten minutes from its own, current Date.
    let path = format!(
        "/v?cc=max-age%3D60&cc304=max-age%3D600&date={}",
        http_date(-1000)
    );
    get(&gw, &path, &[]).await;
    assert_eq!(get(&gw, &path, &[]).await.cache, "REVALIDATED");
    let after = get(&gw, &path, &[]).await;
    assert_eq!(after.cache, "HIT");
    let age: u64 = after.headers["age"].to_str().unwrap().parse().unwrap();
    assert!(age < 60, "Age after revalidation: {age}");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_with_authorization_is_not_stored_unless_the_route_allows_it() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let auth = [("authorization", "Bearer t")];
    get(&gw, FRESH, &auth).await;
    assert_ne!(get(&gw, FRESH, &auth).await.cache, "HIT");
    assert_eq!(origin.hits(), 2);
    // `public` in the response allows it (RFC 9111 section 3.5).
    let public = "/p?cc=public%2C%20max-age%3D60";
    get(&gw, public, &auth).await;
    assert_eq!(get(&gw, public, &auth).await.cache, "HIT");

    let origin = Origin::start().await;
    let gw = gateway(
        &origin,
        "{allow_authorization: true, key: {headers: [authorization]}}",
    );
    get(&gw, FRESH, &auth).await;
    assert_eq!(get(&gw, FRESH, &auth).await.cache, "HIT");
    assert_ne!(
        get(&gw, FRESH, &[("authorization", "Bearer u")])
            .await
            .cache,
        "HIT"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn vary_keeps_one_entry_per_value_of_the_named_header() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let path = "/v?cc=max-age%3D60&vary=accept-language";
    let fr = get(&gw, path, &[("accept-language", "fr")]).await;
    let de = get(&gw, path, &[("accept-language", "de")]).await;
    assert_eq!(de.cache, "MISS");
    assert!(fr.body.ends_with(" fr") && de.body.ends_with(" de"));
    let fr_again = get(&gw, path, &[("accept-language", "fr")]).await;
    assert_eq!((fr_again.cache.as_str(), fr_again.body), ("HIT", fr.body));
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn unkeyed_headers_do_not_change_a_cached_response_and_keyed_ones_do() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{key: {headers: [x-tenant], ignore_query: [utm]}}");
    let first = get(&gw, "/k?cc=max-age%3D60", &[("x-tenant", "a")]).await;
    let poisoned = get(
        &gw,
        "/k?utm=1&cc=max-age%3D60",
        &[("x-tenant", "a"), ("x-evil", "1")],
    )
    .await;
    assert_eq!(
        (poisoned.cache.as_str(), &poisoned.body),
        ("HIT", &first.body)
    );
    let other = get(&gw, "/k?cc=max-age%3D60", &[("x-tenant", "b")]).await;
    assert_eq!(other.cache, "MISS");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn if_none_match_on_a_cached_response_is_answered_304_by_the_gateway() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    get(&gw, FRESH, &[]).await;
    let cond = get(&gw, FRESH, &[("if-none-match", "\"e1\"")]).await;
    assert_eq!((cond.status, cond.body.as_str()), (304, ""));
    let other = get(&gw, FRESH, &[("if-none-match", "\"zz\"")]).await;
    assert_eq!(other.status, 200);
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn if_modified_since_on_a_cached_response_is_answered_304_by_the_gateway() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    get(&gw, FRESH, &[]).await;
    let same = get(&gw, FRESH, &[("if-modified-since", origin::LAST_MODIFIED)]).await;
    assert_eq!((same.status, same.body.as_str()), (304, ""));
    let later = [("if-modified-since", "Thu, 03 Dec 2026 10:00:00 GMT")];
    assert_eq!(get(&gw, FRESH, &later).await.status, 304);
    let earlier = [("if-modified-since", "Tue, 01 Dec 2026 10:00:00 GMT")];
    let changed = get(&gw, FRESH, &earlier).await;
    assert_eq!((changed.status, changed.cache.as_str()), (200, "HIT"));
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn head_and_ranges_are_served_from_a_cached_get() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let full = get(&gw, FRESH, &[]).await;
    let head = client().head(gw.url(FRESH)).send().await.unwrap();
    assert_eq!(head.headers()["x-cache-status"], "HIT");
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        full.body.len().to_string()
    );
    let part = get(&gw, FRESH, &[("range", "bytes=0-3")]).await;
    assert_eq!((part.status, part.body.as_str()), (206, &full.body[..4]));
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_head_miss_is_stored_for_the_get_that_follows() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let head = client().head(gw.url(FRESH)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(get(&gw, FRESH, &[]).await.cache, "HIT");
    assert_eq!(origin.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_concurrent_misses_on_one_key_send_one_request_upstream() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let url = gw.url("/burst?cc=max-age%3D60&ms=500");
    let c = client();
    let answers = futures_util::future::join_all((0..100).map(|_| {
        let (c, url) = (c.clone(), url.clone());
        async move { c.get(url).send().await.unwrap().text().await.unwrap() }
    }))
    .await;
    assert_eq!(origin.hits(), 1);
    assert!(answers.iter().all(|b| *b == answers[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_body_is_passed_on_but_not_stored() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{max_object_size: 10}");
    let first = get(&gw, FRESH, &[]).await;
    assert!(first.body.len() > 10);
    assert_ne!(get(&gw, FRESH, &[]).await.cache, "HIT");
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_successful_post_invalidates_the_cached_url() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    get(&gw, FRESH, &[]).await;
    let post = client().post(gw.url(FRESH)).send().await.unwrap();
    assert_eq!(post.status(), 200);
    assert_eq!(get(&gw, FRESH, &[]).await.cache, "MISS");
}

/// Polls `path` until an answer has `status` as its `X-Cache-Status`.
async fn until_status(gw: &Gateway, path: &str, status: &str) -> Answer {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(gw, path, &[]).await;
        if answer.cache == status {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never {status}; last was {} {}",
            answer.status,
            answer.cache
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_if_error_serves_the_stored_response_while_the_upstream_fails() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let path = "/e?cc=max-age%3D1%2C%20stale-if-error%3D60";
    let stored = get(&gw, path, &[]).await;
    origin.failing.store(true, Ordering::SeqCst);
    let stale = until_status(&gw, path, "STALE").await;
    assert_eq!((stale.status, stale.body), (200, stored.body));
    // Without a stale-if-error window the failure goes to the client.
    let bare = "/e?cc=max-age%3D1";
    origin.failing.store(false, Ordering::SeqCst);
    get(&gw, bare, &[]).await;
    origin.failing.store(true, Ordering::SeqCst);
    let gw = &gw;
    eventually(
        Duration::from_secs(10),
        "the failure to pass through",
        || async move { get(gw, bare, &[]).await.status == 503 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_stale_if_error_serves_while_the_upstream_is_down() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{stale_if_error: 60s}");
    let path = "/d?cc=max-age%3D1";
    let stored = get(&gw, path, &[]).await;
    drop(origin);
    let stale = until_status(&gw, path, "STALE").await;
    assert_eq!((stale.status, stale.body), (200, stored.body));
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_while_revalidate_serves_stale_and_refreshes_in_the_background() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let path = "/w?cc=max-age%3D1%2C%20stale-while-revalidate%3D60";
    let stored = get(&gw, path, &[]).await;
    let stale = until_status(&gw, path, "STALE").await;
    assert_eq!(stale.body, stored.body);
    eventually(Duration::from_secs(10), "a background refresh", || async {
        origin.hits() >= 2
    })
    .await;
    // The refresh was a 304: the stored body is fresh again.
    let fresh = until_status(&gw, path, "HIT").await;
    assert_eq!(fresh.body, stored.body);
}

const TOKEN: &str = "a-long-admin-token-for-tests";

/// Like [`gateway`], with an admin token so that purging is allowed.
fn gateway_with_token(origin: &Origin, cache: &str) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (crate::support::free_port(), crate::support::free_port());
    let base = crate::support::base_config(port, admin_port, dir.path()).replace(
        &format!("  address: 127.0.0.1:{admin_port}\n"),
        &format!("  address: 127.0.0.1:{admin_port}\n  token: {TOKEN}\n"),
    );
    let text = format!(
        "{base}upstreams:\n  o:\n    backends: [{{ address: \"{}\" }}]\n\
         routes:\n  - id: c\n    upstream: o\n    cache: {cache}\n",
        origin.addr
    );
    let gw = Gateway::spawn_with(dir, port, admin_port, &text, &[]);
    gw.wait_ready();
    gw
}

async fn admin_purge(gw: &Gateway, token: &str, body: serde_json::Value) -> (u16, String) {
    let resp = client()
        .post(gw.admin_url("/cache/purge"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_purges_by_url_and_prefix_remove_exactly_what_they_name() {
    let origin = Origin::start().await;
    let gw = gateway_with_token(&origin, "{}");
    let port = gw.port;
    let paths = [
        "/items?cc=max-age%3D60",
        "/items/1?cc=max-age%3D60",
        "/other?cc=max-age%3D60",
    ];
    for path in paths {
        get(&gw, path, &[]).await;
    }
    let refused = admin_purge(&gw, "wrong", serde_json::json!({"prefix": "http://"})).await;
    assert_eq!(refused.0, 401);
    for path in paths {
        assert_eq!(get(&gw, path, &[]).await.cache, "HIT", "{path}");
    }
    let url = format!("http://127.0.0.1:{port}/items?cc=max-age%3D60");
    let exact = admin_purge(&gw, TOKEN, serde_json::json!({ "url": url })).await;
    assert_eq!(exact, (200, r#"{"purged":1}"#.to_string()));
    assert_eq!(get(&gw, paths[0], &[]).await.cache, "MISS");
    assert_eq!(get(&gw, paths[1], &[]).await.cache, "HIT");
    let prefix = format!("http://127.0.0.1:{port}/items");
    let by_prefix = admin_purge(&gw, TOKEN, serde_json::json!({ "prefix": prefix })).await;
    assert_eq!(by_prefix, (200, r#"{"purged":2}"#.to_string()));
    assert_eq!(get(&gw, paths[1], &[]).await.cache, "MISS");
    assert_eq!(get(&gw, paths[2], &[]).await.cache, "HIT");
}

#[tokio::test(flavor = "multi_thread")]
async fn purging_through_the_admin_listener_needs_a_configured_token() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let (status, _) = admin_purge(&gw, "", serde_json::json!({"prefix": "http://"})).await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_purge_request_from_an_allowed_address_removes_its_url() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{purge_from: [127.0.0.1/32]}");
    get(&gw, FRESH, &[]).await;
    let purge = http::Method::from_bytes(b"PURGE").unwrap();
    let resp = client()
        .request(purge.clone(), gw.url(FRESH))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), r#"{"purged":1}"#);
    assert_eq!(get(&gw, FRESH, &[]).await.cache, "MISS");
    assert_eq!(origin.hits(), 2);

    let origin = Origin::start().await;
    let gw = gateway(&origin, "{purge_from: [10.9.9.9/32]}");
    get(&gw, FRESH, &[]).await;
    let resp = client().request(purge, gw.url(FRESH)).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(get(&gw, FRESH, &[]).await.cache, "HIT");
}

/// The figure a metric line `name value` gives.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_times_the_store_size_of_distinct_content_leaves_it_within_its_bound() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "cache: {{max_size: 64KiB}}\nupstreams:\n  o:\n    backends: [{{ address: \"{}\" }}]\n\
         routes:\n  - id: c\n    upstream: o\n    cache: {{}}\n",
        origin.addr
    ));
    for i in 0..90 {
        let path = format!("/m{i}?cc=max-age%3D60&pad=8000");
        assert_eq!(get(&gw, &path, &[]).await.status, 200);
    }
    let text = gw.metrics();
    let stored = metric(&text, "portico_cache_stored_bytes");
    assert!(stored > 0 && stored <= 64 * 1024, "{stored} bytes stored");
    assert!(metric(&text, "portico_cache_evictions_total") > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_waiting_on_a_fill_streams_the_body_while_it_arrives() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let c = client();
    let mut filler = c.get(gw.url("/stream")).send().await.unwrap();
    assert_eq!(filler.headers()["x-cache-status"], "MISS");
    assert_eq!(&filler.chunk().await.unwrap().unwrap()[..], b"first-");
    // The origin holds the rest back: a second request can only see the
    // first chunk if it reads the fill in progress.
    let mut waiter = c.get(gw.url("/stream")).send().await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), waiter.chunk())
        .await
        .expect("the waiting request got nothing while the fill was open");
    assert_eq!(&first.unwrap().unwrap()[..], b"first-");
    origin.gate.add_permits(1);
    assert_eq!(&filler.chunk().await.unwrap().unwrap()[..], b"rest");
    assert_eq!(&waiter.chunk().await.unwrap().unwrap()[..], b"rest");
    assert!(waiter.chunk().await.unwrap().is_none());
    assert_eq!(get(&gw, "/stream", &[]).await.body, "first-rest");
    assert_eq!(origin.hits(), 1);
}

/// Pingora ends a response without `Content-Length` that passes the
/// route's `max_object_size` with an error (README, "Known limitations");
/// the key is then remembered as uncacheable and passed through whole.
#[tokio::test(flavor = "multi_thread")]
async fn after_one_chunked_body_passed_max_object_size_its_url_is_passed_through() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{max_object_size: 8}");
    origin.gate.add_permits(3);
    get(&gw, "/stream", &[]).await;
    for _ in 0..2 {
        let answer = get(&gw, "/stream", &[]).await;
        assert_eq!(
            (answer.body.as_str(), answer.cache.as_str()),
            ("first-rest", "BYPASS")
        );
    }
    assert_eq!(origin.hits(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_entry_is_revalidated_with_its_etag_and_kept() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    let path = "/r?cc=max-age%3D1";
    let stored = get(&gw, path, &[]).await;
    // The origin answers the conditional request 304: the stored body is
    // served and renewed.
    let renewed = until_status(&gw, path, "REVALIDATED").await;
    assert_eq!((renewed.status, renewed.body), (200, stored.body));
    assert_eq!(origin.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_2xx_answers_are_stored_only_for_the_statuses_the_route_allows() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "{}");
    // 404 is heuristically cacheable (RFC 9111 section 4.2.2), 500 is not.
    let missing = "/gone?status=404&cc=max-age%3D60";
    let broken = "/broken?status=500&cc=max-age%3D60";
    for _ in 0..2 {
        assert_eq!(get(&gw, missing, &[]).await.status, 404);
        assert_eq!(get(&gw, broken, &[]).await.status, 500);
    }
    assert_eq!(get(&gw, missing, &[]).await.cache, "HIT");
    assert_eq!(origin.hits(), 3, "one 404 and both 500s reach the origin");
    let allowing = Origin::start().await;
    let gw = gateway(&allowing, "{ statuses: [200] }");
    get(&gw, missing, &[]).await;
    assert_ne!(get(&gw, missing, &[]).await.cache, "HIT");
    assert_eq!(allowing.hits(), 2);
}
