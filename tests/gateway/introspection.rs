//! OAuth2 token introspection with the real binary in front of a real
//! introspection endpoint and a real upstream.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;

use crate::support::introspect::IntrospectionServer;
use crate::support::{client, upstreams_yaml, Gateway, Upstream};

fn exp_in(secs: u64) -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs
}

/// A gateway whose route `/orders` takes tokens judged by `idp` with
/// `client_secret`, and needs scope `orders:read` on `/orders/private`.
fn gateway(up: &Upstream, idp: &IntrospectionServer, client_secret: &str) -> Gateway {
    let name = &up.state.name;
    Gateway::start(&format!(
        "introspection:
  idp:
    url: {url}
    client_id: portico
    client_secret: {client_secret}
    inactive_ttl: 1m
    forward_claims: {{tenant: x-tenant}}
consumers:
  - {{id: billing, tier: gold, groups: [services]}}
{ups}routes:
  - id: private
    match: {{path: {{prefix: /orders/private}}}}
    upstream: {name}
    auth: {{methods: ['introspect:idp'], scopes: ['orders:read']}}
  - id: orders
    upstream: {name}
    auth: {{methods: ['introspect:idp']}}
",
        url = idp.url(),
        ups = upstreams_yaml(&[up]),
    ))
}

fn hits(up: &Upstream) -> usize {
    up.state.hits.load(Ordering::SeqCst)
}

async fn get(gw: &Gateway, path: &str, token: &str) -> reqwest::Response {
    client()
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_active_token_is_admitted_once_asked_and_then_served_from_the_cache() {
    let up = Upstream::start("a").await;
    let idp = IntrospectionServer::start().await;
    idp.set(
        "opaque-1",
        json!({"active": true, "sub": "billing", "scope": "orders:read", "tenant": "t9",
               "exp": exp_in(600)}),
    );
    let gw = gateway(&up, &idp, "s3cret");
    for _ in 0..3 {
        let resp = get(&gw, "/orders/private/1", "opaque-1").await;
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(idp.hits(), 1, "later requests are answered from the cache");
    let headers = up.state.last_headers.lock().unwrap().clone();
    assert_eq!(headers["x-consumer-id"], "billing");
    assert_eq!(headers["x-consumer-tier"], "gold");
    assert_eq!(headers["x-tenant"], "t9");
    assert!(
        headers.get("authorization").is_none(),
        "the token is not forwarded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inactive_token_is_a_401_invalid_token_and_its_answer_is_reused() {
    let up = Upstream::start("a").await;
    let idp = IntrospectionServer::start().await;
    let gw = gateway(&up, &idp, "s3cret");
    for _ in 0..2 {
        let resp = get(&gw, "/orders", "revoked").await;
        assert_eq!(resp.status(), 401);
        let challenge = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
    assert_eq!(idp.hits(), 1);
    assert_eq!(hits(&up), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_the_routes_scope_is_a_403() {
    let up = Upstream::start("a").await;
    let idp = IntrospectionServer::start().await;
    idp.set(
        "narrow",
        json!({"active": true, "sub": "billing", "scope": "orders:write"}),
    );
    let gw = gateway(&up, &idp, "s3cret");
    assert_eq!(get(&gw, "/orders/private/1", "narrow").await.status(), 403);
    assert_eq!(get(&gw, "/orders/1", "narrow").await.status(), 200);
    assert_eq!(hits(&up), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_endpoint_is_a_503_never_an_accepted_token() {
    let up = Upstream::start("a").await;
    let mut idp = IntrospectionServer::start().await;
    idp.set(
        "cached",
        json!({"active": true, "sub": "billing", "exp": exp_in(600)}),
    );
    idp.set(
        "fresh",
        json!({"active": true, "sub": "billing", "exp": exp_in(600)}),
    );
    let gw = gateway(&up, &idp, "s3cret");
    assert_eq!(get(&gw, "/orders", "cached").await.status(), 200);
    idp.stop();
    let resp = get(&gw, "/orders", "fresh").await;
    assert_eq!(resp.status(), 503);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "auth_unavailable");
    // An answer already cached still stands until it expires.
    assert_eq!(get(&gw, "/orders", "cached").await.status(), 200);
    assert_eq!(hits(&up), 2);
    let stderr = gw.stderr();
    assert_eq!(
        stderr.matches("token introspection failed").count(),
        1,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_client_credentials_at_the_endpoint_are_a_503() {
    let up = Upstream::start("a").await;
    let idp = IntrospectionServer::start().await;
    idp.set("t", json!({"active": true, "sub": "billing"}));
    let gw = gateway(&up, &idp, "not-the-secret");
    assert_eq!(get(&gw, "/orders", "t").await.status(), 503);
    assert_eq!(hits(&up), 0);
}
