//! JWT providers: where a token is read, which key verifies it, and the
//! claims checks beyond the signature.
//!
//! The key is chosen by the token's `kid` among the keys written in the file
//! and then the provider's JWK set; a key without a `kid`, or a token without
//! one, pairs with any. The key's own algorithm list must
//! name the token's `alg` before any verification runs, and
//! `jsonwebtoken`'s validation is given that same explicit list; a token
//! with `alg: none` or an algorithm this build does not know fails to parse.
//! Nothing on this path panics on a hostile token: every failure is `Err`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};
use jsonwebtoken::{decode, decode_header, Algorithm};
use serde_json::{Map, Value};

use super::jwks::JwksCache;
use super::keys::{BoundKey, Checks};

/// The claims of a verified token.
pub type Claims = Map<String, Value>;

/// Where a provider's token is read.
#[derive(Debug)]
pub struct TokenSource {
    pub header: HeaderName,
    pub cookie: Option<String>,
}

impl TokenSource {
    /// The token, when the request carries one. From `Authorization` only a
    /// `Bearer` token counts (Basic belongs to basic auth); another header
    /// holds the bare token, a `Bearer ` prefix allowed.
    pub fn extract<'r>(&self, headers: &'r HeaderMap) -> Option<&'r str> {
        if let Some(value) = headers.get(&self.header) {
            let text = value.to_str().ok()?.trim();
            let bearer = text
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim());
            if self.header == http::header::AUTHORIZATION {
                return bearer;
            }
            return Some(bearer.unwrap_or(text));
        }
        let name = self.cookie.as_deref()?;
        cookie(headers, name)
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'r>(headers: &'r HeaderMap, name: &str) -> Option<&'r str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// A verified token's outcome.
#[derive(Debug)]
pub struct Verified {
    pub subject: String,
    pub claims: Claims,
}

/// One configured JWT provider.
#[derive(Debug)]
pub struct Provider {
    pub name: String,
    pub source: TokenSource,
    pub keys: Vec<BoundKey>,
    pub jwks: Option<Arc<JwksCache>>,
    pub checks: Checks,
    /// Claims that must be present beside the registered ones.
    pub required_claims: Vec<String>,
    /// Claims sent upstream, with their header.
    pub forward: Vec<(String, HeaderName)>,
    /// The claim naming the consumer.
    pub consumer_claim: String,
}

impl Provider {
    /// Verifies `token`: key binding, signature, `exp`, `nbf`, `iat`, `iss`,
    /// `aud` and the required claims. `Err` means the token is not valid
    /// for this provider; the reason is for the debug log only.
    pub async fn verify(&self, token: &str) -> Result<Verified, &'static str> {
        let header = decode_header(token).map_err(|_| "malformed token or unknown alg")?;
        if let Some(jwks) = &self.jwks {
            jwks.ensure_loaded().await;
        }
        let mut claims = self.verify_with_known_keys(token, header.alg, header.kid.as_deref());
        if matches!(claims, Err(Rejected::NoKey)) && header.kid.is_some() {
            if let Some(jwks) = &self.jwks {
                if jwks.refresh_for_unknown_kid().await {
                    claims = self.verify_with_known_keys(token, header.alg, header.kid.as_deref());
                }
            }
        }
        let claims = claims.map_err(Rejected::reason)?;
        self.check_claims(claims)
    }

    fn verify_with_known_keys(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Claims, Rejected> {
        let fetched = self.jwks.as_ref().map(|j| j.keys());
        let fetched_keys = fetched.as_deref().map_or(&[][..], Vec::as_slice);
        let candidates = self.keys.iter().chain(fetched_keys);
        let mut outcome = Err(Rejected::NoKey);
        for key in
            candidates.filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
        {
            if !key.allows(alg) {
                // The key exists but is not bound to this algorithm.
                if outcome.is_err() {
                    outcome = Err(Rejected::WrongAlg);
                }
                continue;
            }
            match decode::<Claims>(token, &key.key, &key.validation) {
                Ok(data) => return Ok(data.claims),
                Err(_) => outcome = Err(Rejected::Invalid),
            }
        }
        outcome
    }

    /// `iat` not in the future, required claims present, subject present.
    fn check_claims(&self, claims: Claims) -> Result<Verified, &'static str> {
        if let Some(iat) = claims.get("iat") {
            let iat = iat.as_f64().ok_or("iat is not a number")?;
            if iat > now_secs() + self.checks.leeway as f64 {
                return Err("issued in the future");
            }
        }
        let missing = self
            .required_claims
            .iter()
            .any(|name| claims.get(name).is_none_or(Value::is_null));
        if missing {
            return Err("a required claim is missing");
        }
        let subject = match claims.get(&self.consumer_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err("no consumer claim"),
        };
        Ok(Verified { subject, claims })
    }

    /// The configured claims as upstream headers; a claim whose value cannot
    /// be a header value is left out.
    pub fn forwarded(&self, claims: &Claims) -> Vec<(HeaderName, HeaderValue)> {
        forwarded(&self.forward, claims)
    }
}

/// The claims named in `forward` as upstream headers; a claim whose value
/// cannot be a header value is left out.
pub fn forwarded(
    forward: &[(String, HeaderName)],
    claims: &Claims,
) -> Vec<(HeaderName, HeaderValue)> {
    forward
        .iter()
        .filter_map(|(claim, header)| {
            let value = claim_text(claims.get(claim)?)?;
            Some((header.clone(), HeaderValue::from_str(&value).ok()?))
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Rejected {
    NoKey,
    WrongAlg,
    Invalid,
}

impl Rejected {
    fn reason(self) -> &'static str {
        match self {
            Rejected::NoKey => "no key for this kid and alg",
            Rejected::WrongAlg => "the key is not bound to the token's alg",
            Rejected::Invalid => "signature or registered claims invalid",
        }
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A claim as header text: strings as they are, numbers and booleans
/// written out, lists of those joined with commas; objects are not sent.
pub fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|v| match v {
                    Value::Array(_) | Value::Object(_) | Value::Null => None,
                    other => claim_text(other),
                })
                .collect();
            Some(parts?.join(","))
        }
        Value::Null | Value::Object(_) => None,
    }
}

/// The scopes of a token: `scope` (a space-separated string, RFC 8693) and
/// `scp` (a list, or a space-separated string).
pub fn scopes(claims: &Claims) -> Vec<String> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(text)) => out.extend(text.split_whitespace().map(str::to_owned)),
            Some(Value::Array(items)) => {
                out.extend(items.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        }
    }
    out
}

/// Whether claim `name` has `expected`: equal text, or a member of a list.
pub fn claim_matches(claims: &Claims, name: &str, expected: &str) -> bool {
    match claims.get(name) {
        Some(Value::Array(items)) => items
            .iter()
            .any(|item| claim_text(item).is_some_and(|t| t == expected)),
        Some(value) => claim_text(value).is_some_and(|t| t == expected),
        None => false,
    }
}
