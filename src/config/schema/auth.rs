//! The authentication part of the schema: `identity`, `consumers`,
//! `jwt_providers` and the `auth` of the file and of each route.
//!
//! Names that form closed sets (methods, algorithms) are kept as written here
//! and turned into enums by validation, so an unknown one is reported with its
//! key path and the accepted names.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::value::MapAccessDeserializer;
use serde::{Deserialize, Deserializer};

use super::Dur;

/// Where credentials are read and how the identified consumer is forwarded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentitySpec {
    /// The `realm` of every `WWW-Authenticate` challenge.
    pub realm: String,
    pub api_key: ApiKeySourceSpec,
    pub consumer_headers: ConsumerHeadersSpec,
}

impl Default for IdentitySpec {
    fn default() -> Self {
        IdentitySpec {
            realm: "portico".into(),
            api_key: ApiKeySourceSpec::default(),
            consumer_headers: ConsumerHeadersSpec::default(),
        }
    }
}

/// Where an API key is read from: a header, and optionally a query parameter.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiKeySourceSpec {
    pub header: String,
    /// A query parameter that may carry the key instead; none by default.
    pub query: Option<String>,
}

impl Default for ApiKeySourceSpec {
    fn default() -> Self {
        ApiKeySourceSpec {
            header: "x-api-key".into(),
            query: None,
        }
    }
}

/// The headers that carry the identified consumer upstream. Client-sent
/// copies of them are always removed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerHeadersSpec {
    pub id: String,
    pub tier: String,
    pub groups: String,
}

impl Default for ConsumerHeadersSpec {
    fn default() -> Self {
        ConsumerHeadersSpec {
            id: "x-consumer-id".into(),
            tier: "x-consumer-tier".into(),
            groups: "x-consumer-groups".into(),
        }
    }
}

/// A known API client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub id: String,
    #[serde(default)]
    pub tier: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub credentials: CredentialsSpec,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsSpec {
    /// Hashes of the consumer's API keys, written `sha256:<64 hex digits>`
    /// (what `portico hash-key` prints).
    pub api_keys: Vec<String>,
    pub basic: Option<BasicCredentialSpec>,
    /// Names of the consumer's client certificates, matched against the
    /// common name and the DNS, e-mail and URI alternative names of a
    /// certificate verified by a mutual-TLS listener.
    pub certificate_names: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicCredentialSpec {
    pub username: String,
    /// An argon2 PHC string (what `portico hash-password` prints).
    pub password_hash: String,
}

/// One JWT issuer: the keys its tokens are signed with and the checks they
/// must pass.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtProviderSpec {
    /// Required `iss` value; not checked when absent.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values (one must match); not checked when empty.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Keys written in the file.
    #[serde(default)]
    pub keys: Vec<JwtKeySpec>,
    /// An `http://` URL serving a JWK set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// How often the JWK set is fetched again.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: Dur,
    /// How long one JWK set fetch may take.
    #[serde(default = "default_jwks_timeout")]
    pub jwks_timeout: Dur,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    #[serde(default = "default_leeway")]
    pub leeway: Dur,
    /// Claims that must be present (`exp` always is).
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claims sent upstream, each in the header named here.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
    #[serde(default)]
    pub token_from: TokenSourceSpec,
    /// The claim that names the consumer.
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: String,
}

/// An OAuth2 token introspection endpoint (RFC 7662) that judges opaque
/// tokens for the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionSpec {
    /// The endpoint, `http://` or `https://` (verified against the system's
    /// CA certificates).
    pub url: String,
    /// The gateway's own client credentials, sent with HTTP Basic.
    pub client_id: String,
    pub client_secret: String,
    /// How long one introspection call may take; past it the request gets 503.
    #[serde(default = "default_introspect_timeout")]
    pub timeout: Dur,
    /// The longest an active answer is reused; a token's own `exp` ends it
    /// sooner.
    #[serde(default = "default_active_ttl")]
    pub cache_ttl: Dur,
    /// How long an inactive answer is reused.
    #[serde(default = "default_inactive_ttl")]
    pub inactive_ttl: Dur,
    /// The most answers kept; the least recently used goes first.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
    #[serde(default)]
    pub token_from: TokenSourceSpec,
    /// The field of the answer that names the consumer (`client_id` suits
    /// machine clients).
    #[serde(default = "default_consumer_claim")]
    pub consumer_claim: String,
    /// Answer fields sent upstream, each in the header named here.
    #[serde(default)]
    pub forward_claims: BTreeMap<String, String>,
}

/// A key of a JWT provider, bound to its algorithms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeySpec {
    /// Matched against the token's `kid`; a key without one is tried for
    /// every token.
    #[serde(default)]
    pub kid: Option<String>,
    /// One algorithm or a list, all of one family (`HS256`, `RS256`, ...).
    #[serde(deserialize_with = "one_or_many")]
    pub alg: Vec<String>,
    /// The HMAC secret, for HS algorithms (at least 32 bytes).
    #[serde(default)]
    pub secret: Option<String>,
    /// A PEM public key, for RS, PS, ES and EdDSA.
    #[serde(default)]
    pub pem: Option<String>,
    /// A file holding a PEM public key.
    #[serde(default)]
    pub pem_file: Option<String>,
}

/// Where a token is read: a header (by default `Authorization: Bearer`), then
/// a cookie when one is named.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSourceSpec {
    pub header: String,
    pub cookie: Option<String>,
}

impl Default for TokenSourceSpec {
    fn default() -> Self {
        TokenSourceSpec {
            header: "authorization".into(),
            cookie: None,
        }
    }
}

/// A route's authentication: `none`, or the policy map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAuthSpec {
    /// `auth: none`: no credentials are asked for, even when the file sets a
    /// top-level `auth`.
    Off,
    Policy(AuthPolicySpec),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthPolicySpec {
    /// `api_key`, `basic`, `client_cert`, `jwt:<provider>` or
    /// `introspect:<endpoint>`, tried in this order.
    pub methods: Vec<String>,
    /// Let requests without any credential through, anonymous.
    #[serde(default)]
    pub optional: bool,
    /// Scopes the token must carry, all of them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The consumer must be in one of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The consumer's tier must be one of these.
    #[serde(default)]
    pub tiers: Vec<String>,
    /// Claims the token must carry with these values.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
}

impl<'de> Deserialize<'de> for RouteAuthSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RouteAuthVisitor)
    }
}

struct RouteAuthVisitor;

impl<'de> serde::de::Visitor<'de> for RouteAuthVisitor {
    type Value = RouteAuthSpec;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`none` or a map with `methods`")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RouteAuthSpec, E> {
        match text {
            "none" => Ok(RouteAuthSpec::Off),
            other => Err(E::custom(format!(
                "unknown auth {other:?}; write `none` or a map like \
                 `{{methods: [api_key]}}`"
            ))),
        }
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RouteAuthSpec, A::Error> {
        AuthPolicySpec::deserialize(MapAccessDeserializer::new(map)).map(RouteAuthSpec::Policy)
    }
}

/// Reads a string or a list of strings as a list.
pub(super) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct OneOrMany;
    impl<'de> serde::de::Visitor<'de> for OneOrMany {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a name or a list of names")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<String>, E> {
            Ok(vec![text.to_owned()])
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut names = Vec::new();
            while let Some(name) = seq.next_element::<String>()? {
                names.push(name);
            }
            Ok(names)
        }
    }
    d.deserialize_any(OneOrMany)
}

fn default_jwks_refresh() -> Dur {
    Dur(Duration::from_secs(300))
}
fn default_jwks_timeout() -> Dur {
    Dur(Duration::from_secs(5))
}
fn default_introspect_timeout() -> Dur {
    Dur(Duration::from_secs(3))
}
fn default_active_ttl() -> Dur {
    Dur(Duration::from_secs(300))
}
fn default_inactive_ttl() -> Dur {
    Dur(Duration::from_secs(10))
}
fn default_cache_entries() -> usize {
    10_000
}
fn default_leeway() -> Dur {
    Dur(Duration::from_secs(30))
}
fn default_consumer_claim() -> String {
    "sub".into()
}
