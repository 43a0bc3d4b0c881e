//! Compiling the validated config into [`Auth`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::api_key::{KeyDigest, KeyIndex, KeySource};
use super::basic::BasicIndex;
use super::forward::IdentityHeaders;
use super::introspect::{Introspector, Settings};
use super::jwks::JwksCache;
use super::jwt::{Provider, TokenSource};
use super::keys::{self, BoundKey, Checks, Material};
use super::policy::{Challenges, Method, MethodName, RoutePolicy};
use super::{Auth, Consumer};
use crate::config::schema::{AuthPolicySpec, IntrospectionSpec, JwtProviderSpec, RouteAuthSpec};
use crate::config::Config;

/// Registered claims `jsonwebtoken` checks for presence itself.
const SPEC_CLAIMS: [&str; 5] = ["exp", "nbf", "aud", "iss", "sub"];

impl Auth {
    /// Compiles the authentication of a validated config. Errors are written
    /// like config errors; validation has already refused what causes them.
    pub fn build(config: &Config) -> Result<Auth, Vec<String>> {
        let mut errors = Vec::new();
        let headers = identity_headers(config, &mut errors);
        let key_source = KeySource {
            header: header_name(
                &config.identity.api_key.header,
                "identity.api_key.header",
                &mut errors,
            ),
            query: config.identity.api_key.query.clone(),
        };
        let mut consumers = Vec::new();
        let mut by_id = HashMap::new();
        let mut api_keys = KeyIndex::default();
        let mut basic = BasicIndex::default();
        let mut cert_names = HashMap::new();
        for (i, spec) in config.consumers.iter().enumerate() {
            let consumer = match Consumer::new(&spec.id, spec.tier.as_deref(), &spec.groups) {
                Ok(c) => c,
                Err(part) => {
                    errors.push(format!("consumers[{i}].{part}: not a valid header value"));
                    continue;
                }
            };
            let index = consumers.len();
            for (k, hash) in spec.credentials.api_keys.iter().enumerate() {
                match KeyDigest::parse(hash) {
                    Ok(digest) => api_keys.insert(digest, index),
                    Err(e) => errors.push(format!("consumers[{i}].credentials.api_keys[{k}]: {e}")),
                }
            }
            if let Some(b) = &spec.credentials.basic {
                basic.insert(&b.username, index, &b.password_hash);
            }
            for name in &spec.credentials.certificate_names {
                cert_names.entry(name.clone()).or_insert(index);
            }
            by_id.insert(spec.id.clone(), index);
            consumers.push(Arc::new(consumer));
        }
        let mut provider_index = HashMap::new();
        let mut providers = Vec::new();
        for (name, spec) in &config.jwt_providers {
            provider_index.insert(name.clone(), providers.len());
            providers.push(provider(name, spec, &mut errors));
        }
        let mut endpoint_index = HashMap::new();
        let mut introspectors = Vec::new();
        for (name, spec) in &config.introspection {
            if let Some(endpoint) = introspector(name, spec, &mut errors) {
                endpoint_index.insert(name.clone(), introspectors.len());
                introspectors.push(endpoint);
            }
        }
        let index = Index {
            providers: &provider_index,
            endpoints: &endpoint_index,
        };
        let mut policies = Vec::with_capacity(config.routes.len());
        for i in 0..config.routes.len() {
            let own = config.route_auth.get(i).and_then(Option::as_ref);
            let spec = match (own, &config.auth) {
                (Some(RouteAuthSpec::Policy(p)), _) | (None, Some(RouteAuthSpec::Policy(p))) => {
                    Some(p)
                }
                _ => None,
            };
            let compiled = spec.map(|p| {
                let path = format!("routes[{i}].auth");
                let named = Named {
                    providers: &providers,
                    introspectors: &introspectors,
                };
                policy(p, config, &index, &named, &path, &mut errors)
            });
            policies.push(compiled);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Auth {
            consumers,
            by_id,
            api_keys,
            key_source,
            basic,
            cert_names,
            providers,
            introspectors,
            policies,
            headers,
        })
    }
}

fn header_name(text: &str, path: &str, errors: &mut Vec<String>) -> HeaderName {
    HeaderName::from_bytes(text.as_bytes()).unwrap_or_else(|_| {
        errors.push(format!("{path}: {text:?} is not a valid header name"));
        HeaderName::from_static("x-invalid")
    })
}

fn identity_headers(config: &Config, errors: &mut Vec<String>) -> IdentityHeaders {
    let names = &config.identity.consumer_headers;
    let base = "identity.consumer_headers";
    let id = header_name(&names.id, &format!("{base}.id"), errors);
    let tier = header_name(&names.tier, &format!("{base}.tier"), errors);
    let groups = header_name(&names.groups, &format!("{base}.groups"), errors);
    let mut all = vec![id.clone(), tier.clone(), groups.clone()];
    for (name, provider) in &config.jwt_providers {
        for (claim, header) in &provider.forward_claims {
            let path = format!("jwt_providers.{name}.forward_claims.{claim}");
            let header = header_name(header, &path, errors);
            if !all.contains(&header) {
                all.push(header);
            }
        }
    }
    IdentityHeaders {
        id,
        tier,
        groups,
        all,
    }
}

/// The checks of a provider's tokens.
pub(crate) fn checks(spec: &JwtProviderSpec) -> Checks {
    Checks {
        issuer: spec.issuer.clone(),
        audiences: spec.audiences.clone(),
        leeway: spec.leeway.0.as_secs(),
        required_spec: spec
            .required_claims
            .iter()
            .filter(|c| SPEC_CLAIMS.contains(&c.as_str()))
            .cloned()
            .collect(),
    }
}

fn provider(name: &str, spec: &JwtProviderSpec, errors: &mut Vec<String>) -> Provider {
    let base = format!("jwt_providers.{name}");
    let checks = checks(spec);
    let mut bound = Vec::new();
    for (i, key) in spec.keys.iter().enumerate() {
        let at = format!("{base}.keys[{i}]");
        match keys::parse_algs(&key.alg) {
            Ok((algs, family)) => {
                let material = Material {
                    secret: key.secret.as_deref(),
                    pem: key.pem.as_deref(),
                    pem_file: key.pem_file.as_deref(),
                };
                match keys::load(family, &material) {
                    Ok(k) => bound.push(BoundKey::new(key.kid.clone(), algs, k, &checks)),
                    Err(p) => errors.push(format!("{at}.{}: {}; fix: {}", p.key, p.message, p.fix)),
                }
            }
            Err(problems) => {
                for p in problems {
                    errors.push(format!("{at}.{}: {}; fix: {}", p.key, p.message, p.fix));
                }
            }
        }
    }
    let jwks = spec
        .jwks_url
        .as_deref()
        .and_then(|url| match url.parse::<http::Uri>() {
            Ok(uri) => Some(Arc::new(JwksCache::new(
                name,
                uri,
                spec.jwks_timeout.0,
                spec.jwks_refresh.0.max(Duration::from_secs(1)),
                checks.clone(),
            ))),
            Err(_) => {
                errors.push(format!("{base}.jwks_url: {url:?} is not a URL"));
                None
            }
        });
    let forward = spec
        .forward_claims
        .iter()
        .filter_map(|(claim, header)| {
            Some((
                claim.clone(),
                HeaderName::from_bytes(header.as_bytes()).ok()?,
            ))
        })
        .collect();
    Provider {
        name: name.to_owned(),
        source: TokenSource {
            header: header_name(
                &spec.token_from.header,
                &format!("{base}.token_from.header"),
                errors,
            ),
            cookie: spec.token_from.cookie.clone(),
        },
        keys: bound,
        jwks,
        checks,
        required_claims: spec.required_claims.clone(),
        forward,
        consumer_claim: spec.consumer_claim.clone(),
    }
}

/// Positions of the JWT providers and introspection endpoints, by name.
struct Index<'a> {
    providers: &'a HashMap<String, usize>,
    endpoints: &'a HashMap<String, usize>,
}

/// The compiled JWT providers and introspection endpoints.
struct Named<'a> {
    providers: &'a [Provider],
    introspectors: &'a [Introspector],
}

fn introspector(
    name: &str,
    spec: &IntrospectionSpec,
    errors: &mut Vec<String>,
) -> Option<Introspector> {
    let base = format!("introspection.{name}");
    let url = match spec.url.parse::<http::Uri>() {
        Ok(url) => url,
        Err(_) => {
            errors.push(format!("{base}.url: {:?} is not a URL", spec.url));
            return None;
        }
    };
    let source = TokenSource {
        header: header_name(
            &spec.token_from.header,
            &format!("{base}.token_from.header"),
            errors,
        ),
        cookie: spec.token_from.cookie.clone(),
    };
    let forward = spec
        .forward_claims
        .iter()
        .filter_map(|(claim, header)| {
            Some((
                claim.clone(),
                HeaderName::from_bytes(header.as_bytes()).ok()?,
            ))
        })
        .collect();
    let settings = Settings {
        url,
        client_id: spec.client_id.clone(),
        client_secret: spec.client_secret.clone(),
        timeout: spec.timeout.0,
        active_ttl: spec.cache_ttl.0,
        inactive_ttl: spec.inactive_ttl.0,
        cache_entries: spec.cache_entries,
    };
    Some(Introspector::new(
        name,
        source,
        settings,
        spec.consumer_claim.clone(),
        forward,
    ))
}

fn policy(
    spec: &AuthPolicySpec,
    config: &Config,
    index: &Index,
    named: &Named,
    path: &str,
    errors: &mut Vec<String>,
) -> RoutePolicy {
    let providers = named.providers;
    let mut methods = Vec::new();
    let mut strip_headers: Vec<HeaderName> = Vec::new();
    let mut strip_cookies: Vec<String> = Vec::new();
    let mut strip_query: Option<String> = None;
    let mut strip = |name: &HeaderName| {
        if !strip_headers.contains(name) {
            strip_headers.push(name.clone());
        }
    };
    for text in &spec.methods {
        let method = match MethodName::parse(text) {
            Ok(MethodName::ApiKey) => Method::ApiKey,
            Ok(MethodName::Basic) => Method::Basic,
            Ok(MethodName::ClientCert) => Method::ClientCert,
            Ok(MethodName::Jwt(name)) => match index.providers.get(&name) {
                Some(&at) => Method::Jwt(at),
                None => {
                    errors.push(format!("{path}.methods: no JWT provider named {name:?}"));
                    continue;
                }
            },
            Ok(MethodName::Introspect(name)) => match index.endpoints.get(&name) {
                Some(&at) => Method::Introspect(at),
                None => {
                    errors.push(format!(
                        "{path}.methods: no introspection endpoint {name:?}"
                    ));
                    continue;
                }
            },
            Err(e) => {
                errors.push(format!("{path}.methods: {e}"));
                continue;
            }
        };
        match method {
            Method::ApiKey => {
                if let Ok(name) = HeaderName::from_bytes(config.identity.api_key.header.as_bytes())
                {
                    strip(&name);
                }
                strip_query.clone_from(&config.identity.api_key.query);
            }
            Method::Basic => strip(&http::header::AUTHORIZATION),
            // Nothing of it travels in the request.
            Method::ClientCert => {}
            Method::Jwt(at) => {
                strip(&providers[at].source.header);
                if let Some(cookie) = &providers[at].source.cookie {
                    strip_cookies.push(cookie.clone());
                }
            }
            Method::Introspect(at) => {
                let source = &named.introspectors[at].source;
                strip(&source.header);
                if let Some(cookie) = &source.cookie {
                    strip_cookies.push(cookie.clone());
                }
            }
        }
        methods.push(method);
    }
    let challenges = Challenges::new(&methods, &config.identity.realm, &spec.scopes);
    RoutePolicy {
        methods,
        optional: spec.optional,
        scopes: spec.scopes.clone(),
        groups: spec.groups.clone(),
        tiers: spec.tiers.clone(),
        claims: spec
            .claims
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        challenges,
        strip_headers,
        strip_cookies,
        strip_query,
    }
}
