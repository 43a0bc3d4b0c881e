//! Edge identity with the real binary: API keys, Basic auth and JWTs in
//! front of a real upstream, a real JWKS server for key rotation, and the
//! `hash-key` / `hash-password` commands whose output the config takes.
//! Every key and secret is made when the test runs.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::jwks::JwksServer;
use crate::support::tls::Ca;
use crate::support::{client, eventually, upstreams_yaml, Gateway, Upstream};

// ---- keys and tokens, made at run time ----

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn random_text(len: usize) -> String {
    (0..len).map(|_| fastrand::alphanumeric()).collect()
}

struct RsaKey {
    private_pem: String,
    public_pem: String,
    n: String,
    e: String,
}

/// One RSA key per test process; 1024 bits keeps key generation in an
/// unoptimised build short.
fn rsa_key() -> &'static RsaKey {
    static KEY: OnceLock<RsaKey> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let public = private.to_public_key();
        RsaKey {
            private_pem: private.to_pkcs8_pem(LineEnding::LF).unwrap().to_string(),
            public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
            n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        }
    })
}

/// An Ed25519 signing key and its public `x` (base64url).
fn ed_key() -> (EncodingKey, String) {
    let seed: [u8; 32] = std::array::from_fn(|_| fastrand::u8(..));
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    // PKCS#8 v1 wrapper of an Ed25519 private key (RFC 8410).
    let mut pkcs8 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    pkcs8.extend_from_slice(&seed);
    (
        EncodingKey::from_ed_der(&pkcs8),
        URL_SAFE_NO_PAD.encode(public),
    )
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: serde_json::Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, &claims, key).unwrap()
}

fn claims(sub: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({"sub": sub, "iss": "https://idp.test", "exp": now() + 600, "iat": now()});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// `pem` as a YAML double-quoted scalar.
fn yaml_pem(pem: &str) -> String {
    format!("\"{}\"", pem.replace('\n', "\\n"))
}

// ---- the gateway ----

/// A gateway whose route `r` sends everything to `up`, with `auth` on it
/// and `top` (consumers, providers, identity) beside it.
fn gateway(up: &Upstream, top: &str, auth: &str) -> Gateway {
    let name = &up.state.name;
    Gateway::start(&format!(
        "{top}{}routes:
  - {{id: r, upstream: {name}, auth: {auth}}}
  - {{id: open, match: {{path: {{prefix: /open}}}}, upstream: {name}, auth: none}}
",
        upstreams_yaml(&[up]),
    ))
}

fn seen(up: &Upstream, name: &str) -> Option<String> {
    let headers = up.state.last_headers.lock().unwrap();
    headers.get(name).map(|v| v.to_str().unwrap().to_owned())
}

fn portico(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "portico {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
}

fn challenges(resp: &reqwest::Response) -> Vec<String> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

// ---- API keys ----

/// A gateway with consumer `mobile` whose key is hashed by `portico hash-key`.
async fn keyed_gateway() -> (Upstream, Gateway, String) {
    let up = Upstream::start("a").await;
    let key = random_text(40);
    let hash = portico(&["hash-key"], &format!("{key}\n"));
    assert!(hash.starts_with("sha256:") && hash.len() == 71, "{hash}");
    let top = format!(
        "identity: {{api_key: {{query: api_key}}}}
consumers:
  - id: mobile
    tier: gold
    groups: [apps, beta]
    credentials: {{api_keys: ['{hash}']}}
"
    );
    let gw = gateway(&up, &top, "{methods: [api_key]}");
    (up, gw, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_api_key_reaches_the_upstream_as_consumer_headers_without_the_key() {
    let (up, gw, key) = keyed_gateway().await;
    let resp = client()
        .get(gw.url("/orders"))
        .header("x-api-key", &key)
        .header("x-consumer-id", "admin")
        .header("x-consumer-groups", "root")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(seen(&up, "x-consumer-id").as_deref(), Some("mobile"));
    assert_eq!(seen(&up, "x-consumer-tier").as_deref(), Some("gold"));
    assert_eq!(seen(&up, "x-consumer-groups").as_deref(), Some("apps,beta"));
    assert_eq!(seen(&up, "x-api-key"), None);
    let line = gw.access_line(&request_id);
    assert_eq!(line["consumer"], "mobile");
    assert!(
        !line.to_string().contains(&key),
        "the key is in the log: {line}"
    );

    // The query-parameter form works and the parameter is not forwarded.
    let resp = client()
        .get(gw.url(&format!("/orders?page=2&api_key={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        up.saw("/orders?page=2"),
        "{:?}",
        up.state.paths.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_or_missing_api_key_is_a_401_that_never_reaches_the_upstream() {
    let (up, gw, _key) = keyed_gateway().await;
    for key in [Some("not-the-key"), None] {
        let mut req = client().get(gw.url("/orders"));
        if let Some(key) = key {
            req = req.header("x-api-key", key);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        assert_eq!(challenges(&resp), ["ApiKey realm=\"portico\""]);
        let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body: serde_json::Value = resp.json().await.unwrap();
        let code = if key.is_some() {
            "invalid_credentials"
        } else {
            "missing_credentials"
        };
        assert_eq!(body["error"], code);
        assert_eq!(body["status"], 401);
        let line = gw.access_line(&request_id);
        assert_eq!(
            (line["status"].as_u64(), line["consumer"].as_str()),
            (Some(401), Some("-"))
        );
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spoofed_consumer_id_is_stripped_on_a_route_without_auth() {
    let (up, gw, _key) = keyed_gateway().await;
    let resp = client()
        .get(gw.url("/open/x"))
        .header("x-consumer-id", "admin")
        .header("x-consumer-tier", "platinum")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen(&up, "x-consumer-id"), None);
    assert_eq!(seen(&up, "x-consumer-tier"), None);
}

// ---- JWT ----

fn jwt_top(secret: &str, extra: &str) -> String {
    let rsa = rsa_key();
    format!(
        "jwt_providers:
  corp:
    issuer: https://idp.test
    keys:
      - {{kid: hs, alg: HS256, secret: '{secret}'}}
      - {{kid: rs, alg: RS256, pem: {}}}
{extra}",
        yaml_pem(&rsa.public_pem)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn valid_jwts_pass_and_expired_or_forged_ones_are_refused() {
    let up = Upstream::start("a").await;
    let secret = random_text(48);
    let gw = gateway(&up, &jwt_top(&secret, ""), "{methods: ['jwt:corp']}");
    let hs_key = EncodingKey::from_secret(secret.as_bytes());
    let rs_key = EncodingKey::from_rsa_pem(rsa_key().private_pem.as_bytes()).unwrap();
    let bearer = |token: &str| format!("Bearer {token}");

    for token in [
        sign(
            Algorithm::HS256,
            &hs_key,
            Some("hs"),
            claims("alice", json!({})),
        ),
        sign(
            Algorithm::RS256,
            &rs_key,
            Some("rs"),
            claims("alice", json!({})),
        ),
    ] {
        let resp = client()
            .get(gw.url("/x"))
            .header("authorization", bearer(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(seen(&up, "x-consumer-id").as_deref(), Some("alice"));
        assert_eq!(seen(&up, "authorization"), None);
    }
    let hits = up.hits();

    let header_none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"hs"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("alice", json!({})).to_string());
    let pem_as_secret = EncodingKey::from_secret(rsa_key().public_pem.as_bytes());
    let forged = [
        (
            "expired",
            sign(
                Algorithm::HS256,
                &hs_key,
                Some("hs"),
                claims("alice", json!({"exp": now() - 3600})),
            ),
        ),
        (
            "wrong alg",
            sign(
                Algorithm::HS512,
                &hs_key,
                Some("hs"),
                claims("alice", json!({})),
            ),
        ),
        ("alg none", format!("{header_none}.{body}.")),
        (
            "HS256 keyed with the RSA public key",
            sign(
                Algorithm::HS256,
                &pem_as_secret,
                Some("rs"),
                claims("alice", json!({})),
            ),
        ),
        (
            "wrong issuer",
            sign(
                Algorithm::HS256,
                &hs_key,
                Some("hs"),
                claims("alice", json!({"iss": "https://evil.test"})),
            ),
        ),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, token) in forged {
        let resp = client()
            .get(gw.url("/x"))
            .header("authorization", bearer(&token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        assert_eq!(
            challenges(&resp),
            ["Bearer realm=\"portico\", error=\"invalid_token\""],
            "{what}"
        );
    }
    let resp = client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(challenges(&resp), ["Bearer realm=\"portico\""]);
    assert_eq!(up.hits(), hits, "a refused request reached the upstream");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_without_a_required_scope_is_a_403_naming_the_scope() {
    let up = Upstream::start("a").await;
    let secret = random_text(48);
    let gw = gateway(
        &up,
        &jwt_top(&secret, ""),
        "{methods: ['jwt:corp'], scopes: ['orders:write']}",
    );
    let key = EncodingKey::from_secret(secret.as_bytes());
    let read_only = sign(
        Algorithm::HS256,
        &key,
        Some("hs"),
        claims("alice", json!({"scope": "orders:read"})),
    );
    let resp = client()
        .get(gw.url("/x"))
        .bearer_auth(&read_only)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        challenges(&resp),
        ["Bearer realm=\"portico\", error=\"insufficient_scope\", scope=\"orders:write\""]
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "insufficient_scope");
    let writer = sign(
        Algorithm::HS256,
        &key,
        Some("hs"),
        claims("alice", json!({"scp": ["orders:write"]})),
    );
    let resp = client()
        .get(gw.url("/x"))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn optional_auth_admits_anonymous_requests_but_not_invalid_tokens() {
    let up = Upstream::start("a").await;
    let secret = random_text(48);
    let gw = gateway(
        &up,
        &jwt_top(&secret, ""),
        "{methods: ['jwt:corp'], optional: true}",
    );
    let resp = client()
        .get(gw.url("/x"))
        .header("x-consumer-id", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen(&up, "x-consumer-id"), None);
    let wrong = EncodingKey::from_secret(random_text(48).as_bytes());
    let token = sign(
        Algorithm::HS256,
        &wrong,
        Some("hs"),
        claims("alice", json!({})),
    );
    let resp = client()
        .get(gw.url("/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_jwks_key_is_accepted_without_a_restart() {
    let up = Upstream::start("a").await;
    let rsa = rsa_key();
    let rsa_jwk =
        json!({"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": rsa.n, "e": rsa.e});
    let jwks = JwksServer::start(json!({"keys": [rsa_jwk]}).to_string()).await;
    let top = format!(
        "jwt_providers:\n  idp:\n    jwks_url: {}\n    jwks_refresh: 1h\n",
        jwks.url()
    );
    let gw = gateway(&up, &top, "{methods: ['jwt:idp']}");
    let pid = gw.pid();

    let rs_key = EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).unwrap();
    let first = sign(
        Algorithm::RS256,
        &rs_key,
        Some("k1"),
        claims("svc-a", json!({})),
    );
    let resp = client()
        .get(gw.url("/x"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(jwks.hits(), 1, "the set is fetched once, on first use");

    // The identity provider rotates: a new Ed25519 key under a new kid.
    let (ed_key, x) = ed_key();
    let ed_jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k2", "x": x});
    jwks.set(json!({"keys": [rsa_jwk, ed_jwk]}).to_string());
    let second = sign(
        Algorithm::EdDSA,
        &ed_key,
        Some("k2"),
        claims("svc-b", json!({})),
    );
    eventually(Duration::from_secs(25), "the new kid is accepted", || {
        let req = client().get(gw.url("/x")).bearer_auth(&second);
        async move { req.send().await.is_ok_and(|r| r.status() == 200) }
    })
    .await;
    assert_eq!(seen(&up, "x-consumer-id").as_deref(), Some("svc-b"));
    assert_eq!(gw.pid(), pid);
    // Unknown kids refetch at most once per 10 s, however many arrive.
    assert!(jwks.hits() <= 4, "{} fetches", jwks.hits());
    let resp = client()
        .get(gw.url("/x"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the old key still verifies");
}

#[tokio::test]
async fn a_jwk_set_is_fetched_over_https_from_a_ca_the_system_trusts_and_not_from_another() {
    let up = Upstream::start("a").await;
    let rsa = rsa_key();
    let jwk = json!({"kty": "RSA", "kid": "k1", "alg": "RS256", "n": rsa.n, "e": rsa.e});
    let ca = Ca::new("idp-ca");
    let jwks = JwksServer::start_tls(
        json!({"keys": [jwk]}).to_string(),
        ca.server(&["127.0.0.1"]).server_config(),
    )
    .await;
    assert!(jwks.url().starts_with("https://"));
    let top = format!("jwt_providers:\n  idp:\n    jwks_url: {}\n", jwks.url());
    let rest = format!(
        "{top}{}routes:\n  - {{id: r, upstream: a, auth: {{methods: ['jwt:idp']}}}}\n",
        upstreams_yaml(&[&up])
    );
    let key = EncodingKey::from_rsa_pem(rsa.private_pem.as_bytes()).unwrap();
    let token = sign(
        Algorithm::RS256,
        &key,
        Some("k1"),
        claims("svc-a", json!({})),
    );

    // The system's roots are replaced by the identity provider's CA, as an
    // operator does with SSL_CERT_FILE.
    let dir = tempfile::tempdir().unwrap();
    let trusted = ca.write(dir.path(), "idp-ca");
    let gw = Gateway::start_with_env(&rest, &[("SSL_CERT_FILE", &trusted)]);
    let resp = client()
        .get(gw.url("/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen(&up, "x-consumer-id").as_deref(), Some("svc-a"));
    assert_eq!(jwks.hits(), 1);

    // A gateway that trusts another CA never gets the keys: the handshake
    // fails before any request, and the token is refused.
    let other = Ca::new("other-ca").write(dir.path(), "other-ca");
    let gw = Gateway::start_with_env(&rest, &[("SSL_CERT_FILE", &other)]);
    let resp = client()
        .get(gw.url("/x"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(jwks.hits(), 1, "no request reached the key server");
}

// ---- Basic ----

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth_admits_the_right_password_only() {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let up = Upstream::start("a").await;
    // Small argon2 parameters keep an unoptimised build quick; the stored
    // PHC string carries them, so verification uses them too.
    let params = argon2::Params::new(8, 1, 1, None).unwrap();
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(random_text(16).as_bytes()).unwrap();
    let hash = argon
        .hash_password(b"open sesame", &salt)
        .unwrap()
        .to_string();
    let top = format!(
        "consumers:\n  - id: ops\n    credentials: {{basic: {{username: ops, password_hash: '{hash}'}}}}\n"
    );
    let gw = gateway(&up, &top, "{methods: [basic]}");
    let resp = client()
        .get(gw.url("/x"))
        .basic_auth("ops", Some("open sesame"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(seen(&up, "x-consumer-id").as_deref(), Some("ops"));
    assert_eq!(seen(&up, "authorization"), None);
    let resp = client()
        .get(gw.url("/x"))
        .basic_auth("ops", Some("guess"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        challenges(&resp),
        ["Basic realm=\"portico\", charset=\"UTF-8\""]
    );
    assert_eq!(up.hits(), 1);
}

#[test]
fn hash_password_output_is_accepted_by_portico_check() {
    let hash = portico(&["hash-password"], "correct horse battery staple\n");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("portico.yaml");
    let key_hash = portico(&["hash-key", "--key", "some-random-key"], "");
    std::fs::write(
        &conf,
        format!(
            "version: 1
listeners: [{{address: '127.0.0.1:1'}}]
upstreams:
  u: {{backends: [{{address: '127.0.0.1:9'}}]}}
routes:
  - {{id: r, upstream: u, auth: {{methods: [basic, api_key]}}}}
consumers:
  - id: ops
    credentials:
      api_keys: ['{key_hash}']
      basic: {{username: ops, password_hash: '{hash}'}}
"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["check", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
