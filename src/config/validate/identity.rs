//! Checks of `identity`, `consumers`, `jwt_providers` and every `auth`
//! (the file's and the routes'): names, hash formats, key material, and the
//! providers a route refers to.

use std::collections::HashMap;
use std::time::Duration;

use http::HeaderName;

use super::upstreams::invalid_header_name;
use crate::auth::api_key::KeyDigest;
use crate::auth::basic::check_hash;
use crate::auth::consumer::valid_name;
use crate::auth::jwks::MIN_FETCH_INTERVAL;
use crate::auth::keys::{self, Material};
use crate::auth::policy::MethodName;
use crate::config::load::Draft;
use crate::config::schema::{
    AuthPolicySpec, ConsumerSpec, IdentitySpec, IntrospectionSpec, JwtKeySpec, JwtProviderSpec,
    RouteAuthSpec,
};
use crate::config::{index_path, key_path, ConfigError};

/// The most clock skew a provider may allow.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The longest JWK set fetch or introspection call allowed (a request may
/// wait for one).
const MAX_JWKS_TIMEOUT: Duration = Duration::from_secs(30);

/// The most introspection answers one endpoint may keep.
const MAX_CACHE_ENTRIES: usize = 10_000_000;

pub(super) fn check(draft: &Draft, errors: &mut Vec<ConfigError>) {
    if let Some(identity) = &draft.identity {
        check_identity(identity, errors);
    }
    check_consumers(&draft.consumers, errors);
    for (name, provider) in &draft.jwt_providers {
        check_provider(&key_path("jwt_providers", name), provider, errors);
    }
    for (name, endpoint) in &draft.introspection {
        check_introspection(&key_path("introspection", name), endpoint, errors);
    }
    let names = Names {
        providers: &draft.jwt_provider_names,
        endpoints: &draft.introspection_names,
    };
    if let Some(RouteAuthSpec::Policy(policy)) = &draft.auth {
        check_policy("auth", policy, &names, errors);
    }
    for ((i, _), auth) in draft.routes.iter().zip(&draft.route_auth) {
        if let Some(RouteAuthSpec::Policy(policy)) = auth {
            let path = format!("{}.auth", index_path("routes", *i));
            check_policy(&path, policy, &names, errors);
        }
    }
}

fn header(path: String, name: &str, errors: &mut Vec<ConfigError>) {
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        errors.push(invalid_header_name(path, name));
    }
}

/// A value quoted in a `WWW-Authenticate` challenge: no quote, backslash or
/// control character.
fn quotable(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c != '"' && c != '\\' && !c.is_control())
}

fn check_identity(identity: &IdentitySpec, errors: &mut Vec<ConfigError>) {
    if !quotable(&identity.realm) {
        errors.push(ConfigError::new(
            "identity.realm",
            format!("{:?} cannot be a realm", identity.realm),
            "write a non-empty realm without quotes, backslashes or line breaks",
        ));
    }
    header(
        "identity.api_key.header".into(),
        &identity.api_key.header,
        errors,
    );
    if identity.api_key.query.as_deref().is_some_and(str::is_empty) {
        errors.push(ConfigError::new(
            "identity.api_key.query",
            "the query parameter name is empty",
            "name the parameter, like api_key, or remove `query`",
        ));
    }
    let names = &identity.consumer_headers;
    let mut seen: Vec<HeaderName> = Vec::new();
    for (key, name) in [
        ("id", &names.id),
        ("tier", &names.tier),
        ("groups", &names.groups),
    ] {
        let path = format!("identity.consumer_headers.{key}");
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(parsed) if seen.contains(&parsed) => errors.push(ConfigError::new(
                path,
                format!("header {name:?} is already used for another consumer field"),
                "give id, tier and groups a header each",
            )),
            Ok(parsed) => seen.push(parsed),
            Err(_) => errors.push(invalid_header_name(path, name)),
        }
    }
}

fn check_consumers(consumers: &[(usize, ConsumerSpec)], errors: &mut Vec<ConfigError>) {
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut digests: Vec<(KeyDigest, String)> = Vec::new();
    let mut users: HashMap<&str, usize> = HashMap::new();
    for (i, consumer) in consumers {
        let path = index_path("consumers", *i);
        if !valid_name(&consumer.id) {
            errors.push(name_error(
                format!("{path}.id"),
                "consumer id",
                &consumer.id,
            ));
        } else if let Some(first) = ids.insert(&consumer.id, *i) {
            errors.push(ConfigError::new(
                format!("{path}.id"),
                format!(
                    "duplicate consumer id {:?}, already used by consumers[{first}]",
                    consumer.id
                ),
                "give each consumer a unique id",
            ));
        }
        if let Some(tier) = consumer.tier.as_deref().filter(|t| !valid_name(t)) {
            errors.push(name_error(format!("{path}.tier"), "tier", tier));
        }
        for (g, group) in consumer.groups.iter().enumerate() {
            if !valid_name(group) {
                errors.push(name_error(
                    index_path(&format!("{path}.groups"), g),
                    "group",
                    group,
                ));
            }
        }
        let credentials = &consumer.credentials;
        for (k, hash) in credentials.api_keys.iter().enumerate() {
            let at = index_path(&format!("{path}.credentials.api_keys"), k);
            match KeyDigest::parse(hash) {
                Ok(digest) => match digests.iter().find(|(d, _)| *d == digest) {
                    Some((_, first)) => errors.push(ConfigError::new(
                        at,
                        format!("this key hash is already used at {first}"),
                        "give every key its own random value; one key names one consumer",
                    )),
                    None => digests.push((digest, at)),
                },
                Err(e) => errors.push(ConfigError::new(
                    at,
                    e,
                    "store the hash `portico hash-key` prints (sha256:<64 hex digits>), \
                     never the key itself",
                )),
            }
        }
        if let Some(basic) = &credentials.basic {
            let at = format!("{path}.credentials.basic");
            if basic.username.is_empty() || basic.username.contains(':') {
                errors.push(ConfigError::new(
                    format!("{at}.username"),
                    format!("{:?} cannot be a Basic username", basic.username),
                    "write a non-empty username without ':'",
                ));
            } else if let Some(first) = users.insert(&basic.username, *i) {
                errors.push(ConfigError::new(
                    format!("{at}.username"),
                    format!(
                        "username {:?} is already used by consumers[{first}]",
                        basic.username
                    ),
                    "give each consumer its own username",
                ));
            }
            if let Err(e) = check_hash(&basic.password_hash) {
                errors.push(ConfigError::new(
                    format!("{at}.password_hash"),
                    e,
                    "store the argon2 hash `portico hash-password` prints, never the password",
                ));
            }
        }
    }
}

fn name_error(path: String, what: &str, value: &str) -> ConfigError {
    ConfigError::new(
        path,
        format!("{value:?} cannot be a {what}"),
        "use printable ASCII without spaces or commas, like mobile-app",
    )
}

fn check_provider(path: &str, spec: &JwtProviderSpec, errors: &mut Vec<ConfigError>) {
    if spec.keys.is_empty() && spec.jwks_url.is_none() {
        errors.push(ConfigError::new(
            path,
            "the provider has no keys",
            "add `keys:` or a `jwks_url:` to verify its tokens with",
        ));
    }
    let mut kids: HashMap<&str, usize> = HashMap::new();
    for (i, key) in spec.keys.iter().enumerate() {
        let at = index_path(&format!("{path}.keys"), i);
        check_key(&at, key, errors);
        if let Some(kid) = key.kid.as_deref() {
            if let Some(first) = kids.insert(kid, i) {
                errors.push(ConfigError::new(
                    format!("{at}.kid"),
                    format!("kid {kid:?} is already used by keys[{first}]"),
                    "give each key its own kid",
                ));
            }
        }
    }
    if let Some(url) = &spec.jwks_url {
        check_jwks_url(&format!("{path}.jwks_url"), url, errors);
    }
    check_durations(path, spec, errors);
    for (i, claim) in spec.required_claims.iter().enumerate() {
        if claim.trim().is_empty() {
            errors.push(ConfigError::new(
                index_path(&format!("{path}.required_claims"), i),
                "the claim name is empty",
                "write the name of a claim the token must carry, or remove the entry",
            ));
        }
    }
    for (claim, name) in &spec.forward_claims {
        header(
            key_path(&format!("{path}.forward_claims"), claim),
            name,
            errors,
        );
    }
    header(
        format!("{path}.token_from.header"),
        &spec.token_from.header,
        errors,
    );
    if spec.token_from.cookie.as_deref().is_some_and(str::is_empty) {
        errors.push(ConfigError::new(
            format!("{path}.token_from.cookie"),
            "the cookie name is empty",
            "name the cookie that holds the token, or remove `cookie`",
        ));
    }
    if spec.consumer_claim.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.consumer_claim"),
            "the consumer claim is empty",
            "remove it to use `sub`, or name the claim that identifies the consumer",
        ));
    }
    if spec.issuer.as_deref().is_some_and(str::is_empty)
        || spec.audiences.iter().any(String::is_empty)
    {
        errors.push(ConfigError::new(
            path,
            "an empty issuer or audience would match no token",
            "write the exact `iss` and `aud` values your tokens carry",
        ));
    }
}

fn check_key(at: &str, key: &JwtKeySpec, errors: &mut Vec<ConfigError>) {
    let family = match keys::parse_algs(&key.alg) {
        Ok((_, family)) => family,
        Err(problems) => {
            for p in problems {
                errors.push(ConfigError::new(
                    format!("{at}.{}", p.key),
                    p.message,
                    p.fix,
                ));
            }
            return;
        }
    };
    let material = Material {
        secret: key.secret.as_deref(),
        pem: key.pem.as_deref(),
        pem_file: key.pem_file.as_deref(),
    };
    if let Err(p) = keys::load(family, &material) {
        errors.push(ConfigError::new(
            format!("{at}.{}", p.key),
            p.message,
            p.fix,
        ));
    }
}

fn check_jwks_url(path: &str, url: &str, errors: &mut Vec<ConfigError>) {
    let parsed = url.parse::<http::Uri>().ok();
    let scheme = parsed.as_ref().and_then(|u| u.scheme_str());
    let has_host = parsed
        .as_ref()
        .is_some_and(|u| u.host().is_some_and(|h| !h.is_empty()));
    match (scheme, has_host) {
        (Some("http" | "https"), true) => {}
        _ => errors.push(ConfigError::new(
            path,
            format!("{url:?} is not an http or https URL"),
            "write it like https://idp.example.com/.well-known/jwks.json",
        )),
    }
}

fn check_durations(path: &str, spec: &JwtProviderSpec, errors: &mut Vec<ConfigError>) {
    if spec.jwks_refresh.0 < MIN_FETCH_INTERVAL {
        errors.push(ConfigError::new(
            format!("{path}.jwks_refresh"),
            "the JWK set is fetched at most every 10s",
            "set jwks_refresh to 10s or more (the default is 5m)",
        ));
    }
    if spec.jwks_timeout.0.is_zero() || spec.jwks_timeout.0 > MAX_JWKS_TIMEOUT {
        errors.push(ConfigError::new(
            format!("{path}.jwks_timeout"),
            "the fetch timeout must be more than 0s and at most 30s",
            "set jwks_timeout to a few seconds (the default is 5s)",
        ));
    }
    if spec.leeway.0 > MAX_LEEWAY {
        errors.push(ConfigError::new(
            format!("{path}.leeway"),
            "a leeway over 5m would accept long-expired tokens",
            "set leeway to the clock skew you expect, like 30s",
        ));
    }
}

/// The JWT providers and introspection endpoints a method may name.
struct Names<'a> {
    providers: &'a [String],
    endpoints: &'a [String],
}

fn check_introspection(path: &str, spec: &IntrospectionSpec, errors: &mut Vec<ConfigError>) {
    check_jwks_url(&format!("{path}.url"), &spec.url, errors);
    if spec.client_id.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.client_id"),
            "the client id is empty",
            "set the client id the authorisation server gave the gateway",
        ));
    }
    if spec.timeout.0.is_zero() || spec.timeout.0 > MAX_JWKS_TIMEOUT {
        errors.push(ConfigError::new(
            format!("{path}.timeout"),
            "the call timeout must be more than 0s and at most 30s",
            "set timeout to a few seconds (the default is 3s)",
        ));
    }
    if spec.cache_entries == 0 || spec.cache_entries > MAX_CACHE_ENTRIES {
        errors.push(ConfigError::new(
            format!("{path}.cache_entries"),
            format!("{} is outside 1 to {MAX_CACHE_ENTRIES}", spec.cache_entries),
            "set the number of answers to keep (the default is 10000)",
        ));
    }
    header(
        format!("{path}.token_from.header"),
        &spec.token_from.header,
        errors,
    );
    for (claim, name) in &spec.forward_claims {
        header(format!("{path}.forward_claims.{claim}"), name, errors);
    }
}

fn check_policy(path: &str, policy: &AuthPolicySpec, names: &Names, errors: &mut Vec<ConfigError>) {
    let providers = names.providers;
    if policy.methods.is_empty() {
        errors.push(ConfigError::new(
            format!("{path}.methods"),
            "no authentication method is listed",
            "list methods like [api_key, \"jwt:corp\"], or write `auth: none` to turn \
             authentication off",
        ));
    }
    let mut seen = Vec::new();
    let mut has_jwt = false;
    for (i, text) in policy.methods.iter().enumerate() {
        let at = index_path(&format!("{path}.methods"), i);
        match MethodName::parse(text) {
            Ok(method) if seen.contains(&method) => errors.push(ConfigError::new(
                at,
                format!("method {text:?} is listed twice"),
                "list each method once",
            )),
            Ok(MethodName::Jwt(name)) if !providers.contains(&name) => {
                let mut known: Vec<&str> = providers.iter().map(String::as_str).collect();
                known.sort_unstable();
                let fix = if known.is_empty() {
                    format!("define {}", key_path("jwt_providers", &name))
                } else {
                    format!(
                        "define {} or use one of: {}",
                        key_path("jwt_providers", &name),
                        known.join(", ")
                    )
                };
                errors.push(ConfigError::new(
                    at,
                    format!("no JWT provider named {name:?}"),
                    fix,
                ));
            }
            Ok(MethodName::Introspect(name)) if !names.endpoints.contains(&name) => {
                errors.push(ConfigError::new(
                    at,
                    format!("no introspection endpoint named {name:?}"),
                    format!("define {}", key_path("introspection", &name)),
                ));
            }
            Ok(method) => {
                has_jwt |= matches!(method, MethodName::Jwt(_) | MethodName::Introspect(_));
                seen.push(method);
            }
            Err(e) => errors.push(ConfigError::new(
                at,
                e,
                "use api_key, basic, jwt:<provider> or introspect:<endpoint>",
            )),
        }
    }
    check_requirements(path, policy, has_jwt, errors);
}

fn check_requirements(
    path: &str,
    policy: &AuthPolicySpec,
    has_jwt: bool,
    errors: &mut Vec<ConfigError>,
) {
    let lists = [
        ("scopes", &policy.scopes),
        ("groups", &policy.groups),
        ("tiers", &policy.tiers),
    ];
    for (key, values) in lists {
        for (i, value) in values.iter().enumerate() {
            if !valid_name(value) {
                errors.push(name_error(
                    index_path(&format!("{path}.{key}"), i),
                    key,
                    value,
                ));
            }
        }
    }
    for name in policy.claims.keys().filter(|n| n.is_empty()) {
        errors.push(ConfigError::new(
            key_path(&format!("{path}.claims"), name),
            "the claim name is empty",
            "name the claim to compare",
        ));
    }
    if !has_jwt && (!policy.scopes.is_empty() || !policy.claims.is_empty()) {
        let key = if policy.scopes.is_empty() {
            "claims"
        } else {
            "scopes"
        };
        errors.push(ConfigError::new(
            format!("{path}.{key}"),
            "scopes and claims come from JWTs, and no jwt method is listed",
            "add a `jwt:<provider>` method or remove the requirement",
        ));
    }
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
