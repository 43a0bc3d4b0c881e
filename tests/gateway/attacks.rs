//! The classic attacks on an edge's identity checks, with the real binary:
//! tokens that are not yet valid, for another audience, with an unknown
//! `kid`, or replayed on a route they were not issued for, and spellings of
//! a protected path that try to reach it without credentials.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::{client, raw, upstreams_yaml, Gateway, Upstream};

const CORP: &str = "corp-secret-0123456789-0123456789-abcdef";
const PARTNER: &str = "partner-secret-0123456789-0123456789-abc";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(secret: &str, kid: &str, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_owned());
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn gateway(up: &Upstream) -> Gateway {
    let name = &up.state.name;
    Gateway::start(&format!(
        "jwt_providers:
  corp:
    audiences: [shop]
    keys: [{{kid: c1, alg: HS256, secret: '{CORP}'}}]
  partners:
    audiences: [partners]
    keys: [{{kid: p1, alg: HS256, secret: '{PARTNER}'}}]
{ups}routes:
  - id: admin
    match: {{path: {{regex: '(?i)^/admin(/|$)'}}}}
    upstream: {name}
    auth: {{methods: ['jwt:corp'], scopes: [admin]}}
  - id: orders
    match: {{path: {{prefix: /orders}}}}
    upstream: {name}
    auth: {{methods: ['jwt:corp'], scopes: ['orders:read']}}
  - id: partner
    match: {{path: {{prefix: /partner}}}}
    upstream: {name}
    auth: {{methods: ['jwt:partners']}}
  - id: public
    upstream: {name}
",
        ups = upstreams_yaml(&[up]),
    ))
}

async fn status(gw: &Gateway, path: &str, token: &str) -> u16 {
    client()
        .get(gw.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn not_yet_valid_wrong_audience_and_unknown_kid_tokens_are_401() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up);
    let good = json!({"sub": "u", "aud": "shop", "exp": now() + 600, "scope": "orders:read"});
    assert_eq!(
        status(&gw, "/orders/1", &token(CORP, "c1", good.clone())).await,
        200
    );
    let mut early = good.clone();
    early["nbf"] = json!(now() + 3600);
    let mut elsewhere = good.clone();
    elsewhere["aud"] = json!("billing");
    for (what, t) in [
        ("not yet valid", token(CORP, "c1", early)),
        ("other audience", token(CORP, "c1", elsewhere)),
        ("unknown kid", token(CORP, "c9", good)),
    ] {
        assert_eq!(status(&gw, "/orders/1", &t).await, 401, "{what}");
    }
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_replayed_on_a_route_it_was_not_issued_for_is_refused() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up);
    let reader = token(
        CORP,
        "c1",
        json!({"sub": "u", "aud": "shop", "exp": now() + 600, "scope": "orders:read"}),
    );
    let partner = token(
        PARTNER,
        "p1",
        json!({"sub": "p", "aud": "partners", "exp": now() + 600, "scope": "admin orders:read"}),
    );
    assert_eq!(status(&gw, "/orders/1", &reader).await, 200);
    assert_eq!(
        status(&gw, "/admin/users", &reader).await,
        403,
        "scope of another route"
    );
    assert_eq!(
        status(&gw, "/partner/x", &reader).await,
        401,
        "another provider's route"
    );
    assert_eq!(status(&gw, "/partner/x", &partner).await, 200);
    assert_eq!(
        status(&gw, "/orders/1", &partner).await,
        401,
        "another issuer's token"
    );
    assert_eq!(up.hits(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn spellings_of_a_protected_path_cannot_skip_its_credentials() {
    let up = Upstream::start("a").await;
    let gw = gateway(&up);
    for target in [
        "/admin",
        "/admin/./users",
        "//admin/users",
        "/%61dmin/users",
        "/public/../admin/users",
        "/public/%2e%2e/admin/users",
        "/ADMIN/users",
        "/Admin/",
    ] {
        let resp = raw::get(gw.port, target, &[]).await;
        assert!(
            resp.status == 401 || resp.status == 400,
            "{target} answered {}",
            resp.status
        );
    }
    assert_eq!(up.hits(), 0, "a spelling reached the upstream");
    assert_eq!(raw::get(gw.port, "/administrators", &[]).await.status, 200);
}
