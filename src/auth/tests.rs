//! Admission through [`Auth`] compiled from real config text: API keys,
//! Basic auth, optional routes, authorisation and what is forwarded.

use argon2::password_hash::{PasswordHasher, SaltString};
use base64::Engine;
use pingora::http::RequestHeader;

use super::*;

/// [`Auth`] of a config with one route `r` (index 0) and `extra` appended.
pub(super) fn compile(extra: &str) -> Auth {
    let yaml = format!(
        "version: 1
listeners: [{{address: '127.0.0.1:8080'}}]
upstreams:
  u: {{backends: [{{address: '127.0.0.1:1'}}]}}
routes:
  - {{id: r, upstream: u}}
{extra}"
    );
    let config = crate::config::load_str_with_env(&yaml, &|_| None)
        .unwrap_or_else(|e| panic!("config does not load:\n{e}\n{yaml}"));
    Auth::build(&config).unwrap_or_else(|e| panic!("auth does not build: {e:?}"))
}

/// A GET of `uri` with `headers`.
pub(super) fn request(uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
    for (name, value) in headers {
        req.append_header(name.to_string(), *value).unwrap();
    }
    req
}

/// The outcome of route `r` for `req`: the consumer id, or the refusal.
pub(super) async fn outcome(auth: &Auth, req: &RequestHeader) -> Result<String, Rejection> {
    let policy = auth.policy(0).expect("route r has a policy");
    auth.admit(policy, req, None)
        .await
        .map(|i| i.map_or("-".to_owned(), |i| i.consumer.id.clone()))
}

fn cheap_hash(password: &str) -> String {
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"saltsaltsaltsalt").unwrap();
    argon
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn keyed(extra: &str) -> Auth {
    compile(&format!(
        "identity: {{api_key: {{query: api_key}}}}
consumers:
  - id: mobile
    tier: gold
    groups: [apps, beta]
    credentials: {{api_keys: ['{}']}}
auth: {{methods: [api_key]{extra}}}
",
        api_key::hash_line(b"k-mobile")
    ))
}

#[tokio::test]
async fn a_valid_api_key_names_its_consumer_from_header_or_query() {
    let auth = keyed("");
    let by_header = request("/", &[("x-api-key", "k-mobile")]);
    assert_eq!(outcome(&auth, &by_header).await.unwrap(), "mobile");
    let by_query = request("/x?api_key=k-mobile&a=1", &[]);
    assert_eq!(outcome(&auth, &by_query).await.unwrap(), "mobile");
}

#[tokio::test]
async fn a_wrong_key_is_invalid_and_no_key_is_missing() {
    let auth = keyed("");
    let wrong = request("/", &[("x-api-key", "k-other")]);
    assert_eq!(outcome(&auth, &wrong).await, Err(Rejection::Invalid));
    assert_eq!(
        outcome(&auth, &request("/", &[])).await,
        Err(Rejection::Missing)
    );
}

#[tokio::test]
async fn optional_auth_lets_anonymous_requests_in_but_not_bad_keys() {
    let auth = keyed(", optional: true");
    assert_eq!(outcome(&auth, &request("/", &[])).await.unwrap(), "-");
    let wrong = request("/", &[("x-api-key", "nope")]);
    assert_eq!(outcome(&auth, &wrong).await, Err(Rejection::Invalid));
}

#[tokio::test]
async fn groups_and_tiers_are_authorised_after_authentication() {
    let key = [("x-api-key", "k-mobile")];
    let allowed = keyed(", groups: [beta, ops], tiers: [gold]");
    assert_eq!(
        outcome(&allowed, &request("/", &key)).await.unwrap(),
        "mobile"
    );
    let other_group = keyed(", groups: [ops]");
    assert_eq!(
        outcome(&other_group, &request("/", &key)).await,
        Err(Rejection::Forbidden)
    );
    let other_tier = keyed(", tiers: [platinum]");
    assert_eq!(
        outcome(&other_tier, &request("/", &key)).await,
        Err(Rejection::Forbidden)
    );
}

#[tokio::test]
async fn basic_auth_checks_the_argon2_hash() {
    let auth = compile(&format!(
        "consumers:
  - id: ops
    credentials: {{basic: {{username: ops-user, password_hash: '{}'}}}}
auth: {{methods: [basic]}}
",
        cheap_hash("correct horse")
    ));
    let basic = |pair: &str| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(pair);
        format!("Basic {b64}")
    };
    let good = basic("ops-user:correct horse");
    let req = request("/", &[("authorization", &good)]);
    assert_eq!(outcome(&auth, &req).await.unwrap(), "ops");
    let bad = basic("ops-user:wrong");
    let req = request("/", &[("authorization", &bad)]);
    assert_eq!(outcome(&auth, &req).await, Err(Rejection::Invalid));
    let bearer = request("/", &[("authorization", "Bearer abc")]);
    assert_eq!(outcome(&auth, &bearer).await, Err(Rejection::Missing));
}

#[tokio::test]
async fn routes_inherit_the_file_auth_unless_they_say_none() {
    let yaml = format!(
        "version: 1
listeners: [{{address: '127.0.0.1:8080'}}]
upstreams:
  u: {{backends: [{{address: '127.0.0.1:1'}}]}}
routes:
  - {{id: inherits, upstream: u}}
  - {{id: public, upstream: u, auth: none}}
  - {{id: own, upstream: u, auth: {{methods: [basic]}}}}
consumers:
  - id: c
    credentials: {{api_keys: ['{}']}}
auth: {{methods: [api_key]}}
",
        api_key::hash_line(b"k")
    );
    let config = crate::config::load_str_with_env(&yaml, &|_| None).unwrap();
    let auth = Auth::build(&config).unwrap();
    assert_eq!(auth.policy(0).unwrap().methods, [Method::ApiKey]);
    assert!(auth.policy(1).is_none());
    assert_eq!(auth.policy(2).unwrap().methods, [Method::Basic]);
}

#[tokio::test]
async fn spoofed_identity_headers_and_the_credential_never_go_upstream() {
    let auth = keyed("");
    let policy = auth.policy(0).unwrap();
    let req = request(
        "/",
        &[
            ("x-api-key", "k-mobile"),
            ("x-consumer-id", "admin"),
            ("x-consumer-tier", "root"),
        ],
    );
    let identity = auth.admit(policy, &req, None).await.unwrap();
    let mut upstream = req.clone();
    forward::apply(&auth, Some(policy), identity.as_ref(), &mut upstream).unwrap();
    assert_eq!(upstream.headers["x-consumer-id"], "mobile");
    assert_eq!(upstream.headers["x-consumer-tier"], "gold");
    assert_eq!(upstream.headers["x-consumer-groups"], "apps,beta");
    assert!(upstream.headers.get("x-api-key").is_none());

    let mut anonymous = request("/", &[("x-consumer-id", "admin")]);
    forward::apply(&auth, None, None, &mut anonymous).unwrap();
    assert!(anonymous.headers.get("x-consumer-id").is_none());
}

#[test]
fn the_api_key_query_parameter_is_taken_off_the_forwarded_uri() {
    let auth = keyed("");
    let policy = auth.policy(0).unwrap();
    let req = request("/x?a=1&api_key=k-mobile&b=2", &[]);
    assert_eq!(
        forward::uri_without_key(policy, &req, None).unwrap(),
        "/x?a=1&b=2"
    );
    let rewritten = forward::uri_without_key(policy, &req, Some("/y?a=1&api_key=k-mobile&b=2"));
    assert_eq!(rewritten.unwrap(), "/y?a=1&b=2");
    assert!(forward::uri_without_key(policy, &request("/x?a=1", &[]), None).is_none());
}
