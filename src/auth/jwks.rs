//! A JWK set fetched over HTTP or HTTPS, cached, and refreshed without a
//! restart.
//!
//! The keys sit behind an [`ArcSwap`]: a request reads them without a lock.
//! The set is fetched on first use, again in a background task once it is
//! older than the provider's `jwks_refresh`, and at once when a token names a
//! `kid` the set lacks (a key rotation). Every fetch, whatever started it, is
//! at most one per [`MIN_FETCH_INTERVAL`], so tokens with made-up `kid`s
//! cannot turn the gateway into a flood against the key server. Only a
//! request that meets an empty or stale-for-its-`kid` set waits for a fetch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};

use super::http_client::{self, HttpsClient};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tracing::{info, warn};

use super::keys::{parse_alg, BoundKey, Checks, Family};

/// The least time between two fetches of one set.
pub const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(10);

/// The largest JWK set body read.
const MAX_BODY: usize = 1024 * 1024;

/// One provider's fetched keys.
pub struct JwksCache {
    provider: String,
    url: http::Uri,
    timeout: Duration,
    refresh: Duration,
    checks: Checks,
    keys: ArcSwap<Vec<BoundKey>>,
    /// When the set was last fetched and read successfully.
    loaded: Mutex<Option<Instant>>,
    /// When a fetch was last started; held while one runs, so concurrent
    /// callers wait for it instead of fetching too.
    attempted: tokio::sync::Mutex<Option<Instant>>,
    background: AtomicBool,
    client: HttpsClient<Empty<Bytes>>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .field("keys", &self.keys.load().len())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    /// An empty cache for `url`, which validation has checked is `http://`
    /// or `https://`.
    pub fn new(
        provider: &str,
        url: http::Uri,
        timeout: Duration,
        refresh: Duration,
        checks: Checks,
    ) -> JwksCache {
        JwksCache {
            provider: provider.to_owned(),
            url,
            timeout,
            refresh,
            checks,
            keys: ArcSwap::from_pointee(Vec::new()),
            loaded: Mutex::new(None),
            attempted: tokio::sync::Mutex::new(None),
            background: AtomicBool::new(false),
            client: http_client::build(),
        }
    }

    /// The keys as last fetched.
    pub fn keys(&self) -> Arc<Vec<BoundKey>> {
        self.keys.load_full()
    }

    /// Fetches the set when it was never loaded (waiting for it), or starts a
    /// background refresh when it is older than `jwks_refresh`.
    pub async fn ensure_loaded(self: &Arc<Self>) {
        let loaded = *self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        match loaded {
            None => {
                self.fetch_gated().await;
            }
            Some(at) if at.elapsed() >= self.refresh => self.refresh_in_background(),
            Some(_) => {}
        }
    }

    /// Fetches again because a token named an unknown `kid`; `true` when a
    /// fetch ran (by this call or one it waited for) and the set may be new.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        self.fetch_gated().await
    }

    fn refresh_in_background(self: &Arc<Self>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            this.fetch_gated().await;
            this.background.store(false, Ordering::Release);
        });
    }

    /// One fetch, unless another started less than [`MIN_FETCH_INTERVAL`]
    /// ago. Returns whether the keys may have changed since the call began.
    async fn fetch_gated(&self) -> bool {
        let started = Instant::now();
        let mut attempted = self.attempted.lock().await;
        if let Some(at) = *attempted {
            // A fetch that finished while this call waited counts as done.
            if at >= started || at.elapsed() < MIN_FETCH_INTERVAL {
                return at >= started;
            }
        }
        *attempted = Some(Instant::now());
        let outcome = fetch(&self.client, &self.url, self.timeout).await;
        match outcome.and_then(|body| parse_set(&body, &self.checks)) {
            Ok(keys) => {
                info!(provider = %self.provider, keys = keys.len(), "jwks loaded");
                self.keys.store(Arc::new(keys));
                *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                *attempted = Some(Instant::now());
                true
            }
            Err(e) => {
                warn!(provider = %self.provider, url = %self.url, error = %e, "jwks fetch failed");
                false
            }
        }
    }
}

/// GETs `url` with an overall `timeout`, returning the body of a 2xx answer.
async fn fetch(
    client: &HttpsClient<Empty<Bytes>>,
    url: &http::Uri,
    timeout: Duration,
) -> Result<Bytes, String> {
    match tokio::time::timeout(timeout, fetch_once(client, url)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {}",
            humantime::format_duration(timeout)
        )),
    }
}

async fn fetch_once(client: &HttpsClient<Empty<Bytes>>, url: &http::Uri) -> Result<Bytes, String> {
    let request = http::Request::get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("request: {e:?}"))?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(body.to_bytes())
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<serde_json::Value>,
}

/// The fields of a JWK this gateway reads (RFC 7517, 7518, 8037).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

/// The usable signing keys of a JWK set. A key that cannot be used (an
/// encryption key, an unknown type, a symmetric key, bad parameters) is
/// skipped with a warning; a body that is not a JWK set is an error.
pub fn parse_set(body: &[u8], checks: &Checks) -> Result<Vec<BoundKey>, String> {
    let set: JwkSet = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
    let mut keys = Vec::with_capacity(set.keys.len());
    for value in set.keys {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(e) => {
                warn!(error = %e, "jwks key skipped");
                continue;
            }
        };
        let kid = jwk.kid.clone();
        match bind(jwk, checks) {
            Ok(Some(key)) => keys.push(key),
            Ok(None) => {}
            Err(why) => warn!(kid = kid.as_deref().unwrap_or("-"), why, "jwks key skipped"),
        }
    }
    Ok(keys)
}

/// Binds a JWK to its algorithms: the one its `alg` names, which must fit its
/// key type, or every algorithm of its type and curve.
fn bind(jwk: Jwk, checks: &Checks) -> Result<Option<BoundKey>, &'static str> {
    if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let (family, defaults): (Family, &[&str]) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", _) => (
            Family::Rsa,
            &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"],
        ),
        ("EC", Some("P-256")) => (Family::Ec, &["ES256"]),
        ("EC", Some("P-384")) => (Family::Ec, &["ES384"]),
        ("OKP", Some("Ed25519")) => (Family::Ed, &["EdDSA"]),
        ("oct", _) => return Err("symmetric keys are not taken from a JWK set"),
        _ => return Err("unsupported key type or curve"),
    };
    let names: Vec<&str> = match jwk.alg.as_deref() {
        Some(alg) if defaults.contains(&alg) => vec![alg],
        Some(_) => return Err("its alg does not fit its key type"),
        None => defaults.to_vec(),
    };
    let algs = names
        .iter()
        .filter_map(|n| parse_alg(n))
        .map(|(a, _)| a)
        .collect();
    let key = match family {
        Family::Rsa => DecodingKey::from_rsa_components(
            jwk.n.as_deref().ok_or("no n")?,
            jwk.e.as_deref().ok_or("no e")?,
        ),
        Family::Ec => DecodingKey::from_ec_components(
            jwk.x.as_deref().ok_or("no x")?,
            jwk.y.as_deref().ok_or("no y")?,
        ),
        Family::Ed => DecodingKey::from_ed_components(jwk.x.as_deref().ok_or("no x")?),
        Family::Hmac => return Err("symmetric keys are not taken from a JWK set"),
    }
    .map_err(|_| "invalid key parameters")?;
    Ok(Some(BoundKey::new(jwk.kid, algs, key, checks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> Checks {
        Checks {
            issuer: None,
            audiences: Vec::new(),
            leeway: 0,
            required_spec: Vec::new(),
        }
    }

    #[test]
    fn jwks_keys_are_bound_to_their_type_and_unusable_ones_skipped() {
        let body = br#"{"keys":[
            {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty":"RSA","kid":"rsa","alg":"PS256","n":"sXch","e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc","n":"sXch","e":"AQAB"},
            {"kty":"oct","kid":"hmac","k":"c2VjcmV0"},
            {"kty":"RSA","kid":"mismatch","alg":"ES256","n":"sXch","e":"AQAB"},
            {"kty":"EC","kid":"p521","crv":"P-521","x":"AA","y":"AA"}
        ]}"#;
        let keys = parse_set(body, &checks()).unwrap();
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
        assert_eq!(kids, ["ed", "rsa"]);
        assert_eq!(keys[0].algs, [jsonwebtoken::Algorithm::EdDSA]);
        assert_eq!(keys[1].algs, [jsonwebtoken::Algorithm::PS256]);
    }

    #[test]
    fn an_ed25519_jwk_verifies_a_token_signed_by_its_private_key() {
        let ed = crate::auth::test_keys::ed();
        let body = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"e","x":"{}"}}]}}"#,
            ed.x
        );
        let keys = parse_set(body.as_bytes(), &checks()).unwrap();
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        let claims = serde_json::json!({"sub": "bob", "exp": exp});
        let token = jsonwebtoken::encode(&header, &claims, &ed.encoding).unwrap();
        let decoded =
            jsonwebtoken::decode::<serde_json::Value>(&token, &keys[0].key, &keys[0].validation);
        assert_eq!(decoded.unwrap().claims["sub"], "bob");
        let other = crate::auth::test_keys::ed();
        let forged = jsonwebtoken::encode(&header, &claims, &other.encoding).unwrap();
        let refused =
            jsonwebtoken::decode::<serde_json::Value>(&forged, &keys[0].key, &keys[0].validation);
        assert!(refused.is_err());
    }

    #[test]
    fn a_body_that_is_not_a_jwk_set_is_an_error() {
        assert!(parse_set(b"<html>", &checks()).is_err());
        assert!(parse_set(br#"{"nokeys":[]}"#, &checks()).is_err());
    }
}
