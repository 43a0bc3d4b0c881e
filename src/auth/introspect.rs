//! OAuth2 token introspection (RFC 7662): opaque bearer tokens judged by the
//! authorisation server, with the answers cached.
//!
//! An active answer is reused until the token's own `exp` or the endpoint's
//! `cache_ttl`, whichever is sooner; an inactive one for `inactive_ttl`, so a
//! client retrying a dead token does not reach the server on every request.
//! The cache is keyed by the token's SHA-256 (the token itself is never kept)
//! and bounded by `cache_entries`, least recently used first out. When the
//! endpoint cannot be reached, answers with anything but 200, or with a body
//! that is not an introspection answer, the request is refused with 503:
//! an unverified token is never accepted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::http_client::{self, HttpsClient};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use lru::LruCache;
use sha2::{Digest, Sha256};
use tracing::warn;

use super::jwt::{Claims, TokenSource};

/// The largest introspection answer read.
const MAX_ANSWER: usize = 64 * 1024;

/// The least time between two warnings about one endpoint failing, so an
/// outage is one log line every few seconds rather than one per request.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// What the authorisation server said of a token.
#[derive(Debug, Clone)]
pub enum Verdict {
    Active(Arc<Claims>),
    Inactive,
    /// The server could not be asked; the request gets 503.
    Unavailable,
}

/// Settings of one endpoint, as compiled from its spec.
#[derive(Debug)]
pub struct Settings {
    pub url: http::Uri,
    pub client_id: String,
    pub client_secret: String,
    pub timeout: Duration,
    pub active_ttl: Duration,
    pub inactive_ttl: Duration,
    pub cache_entries: usize,
}

/// One configured introspection endpoint.
pub struct Introspector {
    pub name: String,
    pub source: TokenSource,
    pub consumer_claim: String,
    pub forward: Vec<(String, HeaderName)>,
    url: http::Uri,
    authorization: HeaderValue,
    timeout: Duration,
    active_ttl: Duration,
    inactive_ttl: Duration,
    cache: Mutex<LruCache<[u8; 32], (Verdict, Instant)>>,
    client: HttpsClient<Full<Bytes>>,
    /// Seconds since `started` of the last failure warning, plus one.
    warned: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for Introspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspector")
            .field("name", &self.name)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Introspector {
    pub fn new(
        name: &str,
        source: TokenSource,
        settings: Settings,
        consumer_claim: String,
        forward: Vec<(String, HeaderName)>,
    ) -> Introspector {
        let capacity = std::num::NonZeroUsize::new(settings.cache_entries.max(1))
            .unwrap_or(std::num::NonZeroUsize::MIN);
        Introspector {
            name: name.to_owned(),
            source,
            consumer_claim,
            forward,
            authorization: client_authorization(&settings.client_id, &settings.client_secret),
            url: settings.url,
            timeout: settings.timeout,
            active_ttl: settings.active_ttl,
            inactive_ttl: settings.inactive_ttl,
            cache: Mutex::new(LruCache::new(capacity)),
            client: http_client::build(),
            warned: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// The verdict on `token`, from the cache or from the server.
    pub async fn introspect(&self, token: &str) -> Verdict {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(verdict) = self.cached(&key) {
            return verdict;
        }
        let verdict = match tokio::time::timeout(self.timeout, self.ask(token)).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => self.failed(&e),
            Err(_) => self.failed("no answer in time"),
        };
        let ttl = match &verdict {
            Verdict::Active(claims) => self.active_ttl.min(until_exp(claims)),
            Verdict::Inactive => self.inactive_ttl,
            Verdict::Unavailable => return verdict,
        };
        if !ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.put(key, (verdict.clone(), Instant::now() + ttl));
        }
        verdict
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Verdict> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(key) {
            Some((verdict, until)) if *until > Instant::now() => Some(verdict.clone()),
            Some(_) => {
                cache.pop(key);
                None
            }
            None => None,
        }
    }

    async fn ask(&self, token: &str) -> Result<Verdict, String> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let request = http::Request::post(self.url.clone())
            .header(http::header::AUTHORIZATION, self.authorization.clone())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("request: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("status {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        parse_answer(&body)
    }

    fn failed(&self, error: &str) -> Verdict {
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.warned.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_INTERVAL.as_secs();
        if due && self.warned.swap(now, Ordering::Relaxed) == last {
            warn!(endpoint = %self.name, url = %self.url, error, "token introspection failed");
        }
        Verdict::Unavailable
    }
}

/// Reads an RFC 7662 answer: `active` must be the JSON `true`; anything else
/// about the token is the claims. An answer whose `exp` has passed is
/// inactive whatever it says.
pub fn parse_answer(body: &[u8]) -> Result<Verdict, String> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Object(claims) = value else {
        return Err("not a JSON object".into());
    };
    match claims.get("active") {
        Some(serde_json::Value::Bool(true)) if !until_exp(&claims).is_zero() => {
            Ok(Verdict::Active(Arc::new(claims)))
        }
        Some(serde_json::Value::Bool(_)) => Ok(Verdict::Inactive),
        _ => Err("no boolean `active` member".into()),
    }
}

/// The time left before the answer's `exp`; unbounded without one.
fn until_exp(claims: &Claims) -> Duration {
    let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_u64) else {
        return Duration::MAX;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Duration::from_secs(exp.saturating_sub(now))
}

/// HTTP Basic with the client id and secret form-encoded first, as RFC 6749
/// section 2.3.1 asks.
fn client_authorization(id: &str, secret: &str) -> HeaderValue {
    use base64::Engine;
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let pair = format!("{}:{}", encode(id), encode(secret));
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    );
    // Base64 output is always a valid header value.
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("Basic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn only_a_json_true_active_member_makes_a_token_active() {
        let active = format!(r#"{{"active": true, "sub": "a", "exp": {}}}"#, now() + 60);
        assert!(matches!(
            parse_answer(active.as_bytes()),
            Ok(Verdict::Active(_))
        ));
        assert!(matches!(
            parse_answer(br#"{"active": false}"#),
            Ok(Verdict::Inactive)
        ));
        assert!(parse_answer(br#"{"active": "true"}"#).is_err());
        assert!(parse_answer(br#"{"sub": "a"}"#).is_err());
        assert!(parse_answer(b"[true]").is_err());
        assert!(parse_answer(b"<html>").is_err());
    }

    #[test]
    fn an_active_answer_whose_exp_has_passed_is_inactive() {
        let stale = format!(r#"{{"active": true, "exp": {}}}"#, now() - 1);
        assert!(matches!(
            parse_answer(stale.as_bytes()),
            Ok(Verdict::Inactive)
        ));
    }

    #[test]
    fn client_credentials_are_form_encoded_before_basic() {
        use base64::Engine;
        let value = client_authorization("gate way", "s:cret");
        let text = value.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        assert_eq!(decoded, b"gate+way:s%3Acret");
    }
}
