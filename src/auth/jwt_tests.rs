//! JWT verification through [`Auth`] compiled from config text, with keys
//! and tokens made at test time: algorithm binding and confusion attempts,
//! time claims with leeway, issuer and audience, required claims, scopes.

use jsonwebtoken::{Algorithm, EncodingKey};
use proptest::prelude::*;
use serde_json::json;

use super::test_keys::{self, forged, now, sign};
use super::tests::{compile, outcome, request};
use super::*;

/// An HS256 provider `corp` with `secret`, and route `r` asking for it.
fn hs_auth(secret: &str, provider_extra: &str, auth_extra: &str) -> Auth {
    compile(&format!(
        "jwt_providers:
  corp:
    issuer: https://idp.example
    audiences: [api]
    leeway: 30s
    keys: [{{kid: k1, alg: HS256, secret: '{secret}'}}]
{provider_extra}
consumers:
  - {{id: alice, tier: gold, groups: [staff]}}
auth: {{methods: ['jwt:corp']{auth_extra}}}
"
    ))
}

fn claims(extra: serde_json::Value) -> serde_json::Value {
    let mut base = json!({
        "sub": "bob", "iss": "https://idp.example", "aud": "api",
        "exp": now() + 600, "iat": now(),
    });
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    base
}

async fn with_token(auth: &Auth, token: &str) -> Result<String, Rejection> {
    let value = format!("Bearer {token}");
    outcome(auth, &request("/", &[("authorization", &value)])).await
}

fn hs(secret: &str, alg: Algorithm, claims: serde_json::Value) -> String {
    sign(
        alg,
        &EncodingKey::from_secret(secret.as_bytes()),
        Some("k1"),
        claims,
    )
}

#[tokio::test]
async fn a_token_signed_with_its_key_and_algorithm_is_admitted() {
    let secret = test_keys::secret();
    let auth = hs_auth(&secret, "", "");
    let token = hs(&secret, Algorithm::HS256, claims(json!({})));
    assert_eq!(with_token(&auth, &token).await.unwrap(), "bob");
}

#[tokio::test]
async fn a_token_whose_alg_is_not_its_keys_is_rejected_even_with_the_right_secret() {
    let secret = test_keys::secret();
    let auth = hs_auth(&secret, "", "");
    let token = hs(&secret, Algorithm::HS384, claims(json!({})));
    assert_eq!(with_token(&auth, &token).await, Err(Rejection::Invalid));
}

#[tokio::test]
async fn an_alg_none_token_is_rejected() {
    let auth = hs_auth(&test_keys::secret(), "", "");
    for header in [
        r#"{"alg":"none","typ":"JWT","kid":"k1"}"#,
        r#"{"alg":"None","kid":"k1"}"#,
        r#"{"alg":"","kid":"k1"}"#,
    ] {
        let token = forged(header, claims(json!({})));
        assert_eq!(
            with_token(&auth, &token).await,
            Err(Rejection::Invalid),
            "{header}"
        );
    }
}

#[tokio::test]
async fn an_hmac_token_keyed_with_the_rsa_public_key_is_rejected() {
    let rsa = test_keys::rsa();
    let pem = rsa.public_pem.replace('\n', "\\n");
    let auth = compile(&format!(
        "jwt_providers:
  corp:
    keys: [{{alg: [RS256], pem: \"{pem}\"}}]
auth: {{methods: ['jwt:corp']}}
"
    ));
    let good_key = EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).unwrap();
    let genuine = sign(Algorithm::RS256, &good_key, None, claims(json!({})));
    assert_eq!(with_token(&auth, &genuine).await.unwrap(), "bob");
    // The attacker knows the public key and uses its PEM text as an HMAC secret.
    let attack_key = EncodingKey::from_secret(rsa.public_pem.as_bytes());
    for alg in [Algorithm::HS256, Algorithm::HS512] {
        let attack = sign(alg, &attack_key, None, claims(json!({})));
        assert_eq!(with_token(&auth, &attack).await, Err(Rejection::Invalid));
    }
    // Same family, other algorithm: PS256 is not bound to this key either.
    let pss = sign(Algorithm::PS256, &good_key, None, claims(json!({})));
    assert_eq!(with_token(&auth, &pss).await, Err(Rejection::Invalid));
}

#[tokio::test]
async fn an_eddsa_key_from_pem_verifies_its_tokens() {
    let ed = test_keys::ed();
    let pem = ed.public_pem.replace('\n', "\\n");
    let auth = compile(&format!(
        "jwt_providers:
  edge:
    keys: [{{kid: e1, alg: EdDSA, pem: \"{pem}\"}}]
auth: {{methods: ['jwt:edge']}}
"
    ));
    let token = sign(
        Algorithm::EdDSA,
        &ed.encoding,
        Some("e1"),
        claims(json!({})),
    );
    assert_eq!(with_token(&auth, &token).await.unwrap(), "bob");
    let other = test_keys::ed();
    let stranger = sign(
        Algorithm::EdDSA,
        &other.encoding,
        Some("e1"),
        claims(json!({})),
    );
    assert_eq!(with_token(&auth, &stranger).await, Err(Rejection::Invalid));
}

#[tokio::test]
async fn expiry_not_before_and_issued_at_are_checked_with_the_leeway() {
    let secret = test_keys::secret();
    let auth = hs_auth(&secret, "", "");
    let cases = [
        (json!({"exp": now() - 120}), false),
        (json!({"exp": now() - 10}), true),
        (json!({"nbf": now() + 120}), false),
        (json!({"nbf": now() + 10}), true),
        (json!({"iat": now() + 120}), false),
        (json!({"iat": now() + 10}), true),
        (json!({"iat": "yesterday"}), false),
    ];
    for (extra, admitted) in cases {
        let token = hs(&secret, Algorithm::HS256, claims(extra.clone()));
        assert_eq!(with_token(&auth, &token).await.is_ok(), admitted, "{extra}");
    }
    let mut no_exp = claims(json!({}));
    no_exp.as_object_mut().unwrap().remove("exp");
    let token = hs(&secret, Algorithm::HS256, no_exp);
    assert_eq!(with_token(&auth, &token).await, Err(Rejection::Invalid));
}

#[tokio::test]
async fn issuer_and_audience_must_match_the_provider() {
    let secret = test_keys::secret();
    let auth = hs_auth(&secret, "", "");
    for (extra, admitted) in [
        (json!({"iss": "https://evil.example"}), false),
        (json!({"aud": "other"}), false),
        (json!({"aud": ["other", "api"]}), true),
        (json!({"aud": null}), false),
        (json!({"iss": null}), false),
    ] {
        let token = hs(&secret, Algorithm::HS256, claims(extra.clone()));
        assert_eq!(with_token(&auth, &token).await.is_ok(), admitted, "{extra}");
    }
}

#[tokio::test]
async fn required_claims_must_be_present() {
    let secret = test_keys::secret();
    let auth = hs_auth(&secret, "    required_claims: [tenant, nbf]", "");
    let without = hs(&secret, Algorithm::HS256, claims(json!({"nbf": now()})));
    assert_eq!(with_token(&auth, &without).await, Err(Rejection::Invalid));
    let with = hs(
        &secret,
        Algorithm::HS256,
        claims(json!({"tenant": "t1", "nbf": now()})),
    );
    assert!(with_token(&auth, &with).await.is_ok());
    let no_nbf = hs(&secret, Algorithm::HS256, claims(json!({"tenant": "t1"})));
    assert_eq!(with_token(&auth, &no_nbf).await, Err(Rejection::Invalid));
}

#[tokio::test]
async fn missing_scopes_are_a_403_and_scp_lists_count() {
    let secret = test_keys::secret();
    let auth = hs_auth(&secret, "", ", scopes: ['orders:read', 'orders:write']");
    let both = hs(
        &secret,
        Algorithm::HS256,
        claims(json!({"scope": "orders:read orders:write"})),
    );
    assert!(with_token(&auth, &both).await.is_ok());
    let listed = hs(
        &secret,
        Algorithm::HS256,
        claims(json!({"scp": ["orders:write", "orders:read"]})),
    );
    assert!(with_token(&auth, &listed).await.is_ok());
    let one = hs(
        &secret,
        Algorithm::HS256,
        claims(json!({"scope": "orders:read"})),
    );
    assert_eq!(
        with_token(&auth, &one).await,
        Err(Rejection::InsufficientScope)
    );
}

#[test]
fn scopes_are_read_from_scope_and_scp() {
    let claims: jwt::Claims = serde_json::from_value(json!({
        "scope": "a  b", "scp": ["c", 7, "d"]
    }))
    .unwrap();
    assert_eq!(jwt::scopes(&claims), ["a", "b", "c", "d"]);
    let scp_text: jwt::Claims = serde_json::from_value(json!({"scp": "e f"})).unwrap();
    assert_eq!(jwt::scopes(&scp_text), ["e", "f"]);
}

#[tokio::test]
async fn a_subject_that_names_a_consumer_takes_its_groups_and_claims_are_checked() {
    let secret = test_keys::secret();
    let auth = hs_auth(&secret, "", ", groups: [staff], claims: {tenant: acme}");
    let alice = hs(
        &secret,
        Algorithm::HS256,
        claims(json!({"sub": "alice", "tenant": ["x", "acme"]})),
    );
    assert_eq!(with_token(&auth, &alice).await.unwrap(), "alice");
    let bob = hs(&secret, Algorithm::HS256, claims(json!({"tenant": "acme"})));
    assert_eq!(with_token(&auth, &bob).await, Err(Rejection::Forbidden));
    let wrong_tenant = hs(
        &secret,
        Algorithm::HS256,
        claims(json!({"sub": "alice", "tenant": "globex"})),
    );
    assert_eq!(
        with_token(&auth, &wrong_tenant).await,
        Err(Rejection::Forbidden)
    );
}

#[tokio::test]
async fn forwarded_claims_become_upstream_headers() {
    let secret = test_keys::secret();
    let auth = hs_auth(
        &secret,
        "    forward_claims: {tenant: x-tenant, roles: x-roles}",
        "",
    );
    let token = hs(
        &secret,
        Algorithm::HS256,
        claims(json!({"tenant": "acme", "roles": ["a", "b"]})),
    );
    let value = format!("Bearer {token}");
    let req = request("/", &[("authorization", &value), ("x-tenant", "spoofed")]);
    let policy = auth.policy(0).unwrap();
    let identity = auth.admit(policy, &req, None).await.unwrap();
    let mut upstream = req.clone();
    forward::apply(&auth, Some(policy), identity.as_ref(), &mut upstream).unwrap();
    assert_eq!(upstream.headers["x-tenant"], "acme");
    assert_eq!(upstream.headers["x-roles"], "a,b");
    assert!(upstream.headers.get("authorization").is_none());
}

#[tokio::test]
async fn a_token_in_the_configured_cookie_is_read() {
    let secret = test_keys::secret();
    let auth = hs_auth(&secret, "    token_from: {cookie: session}", "");
    let token = hs(&secret, Algorithm::HS256, claims(json!({})));
    let cookie = format!("theme=dark; session={token}");
    let req = request("/", &[("cookie", &cookie)]);
    assert_eq!(outcome(&auth, &req).await.unwrap(), "bob");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a client sends as a token, verification answers; it never panics.
    #[test]
    fn any_token_text_is_answered_without_a_panic(
        parts in proptest::collection::vec("[A-Za-z0-9_\\-=.]{0,40}", 0..5),
        header in "\\{.{0,40}\\}",
    ) {
        let secret = "x".repeat(40);
        let auth = hs_auth(&secret, "", "");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let joined = parts.join(".");
        let with_header = format!("{}.{}", base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD, &header), joined);
        for token in [joined, with_header] {
            let answer = rt.block_on(with_token(&auth, &token));
            prop_assert!(answer.is_err());
        }
    }
}
