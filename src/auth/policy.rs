//! A route's compiled authentication and authorisation: which methods are
//! tried, what an identified consumer must have, and the `WWW-Authenticate`
//! challenges of each refusal, all made once when the snapshot is built.

use http::{HeaderName, HeaderValue};

use super::Identity;

/// One way a request may prove who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ApiKey,
    Basic,
    /// The verified client certificate of a mutual-TLS listener.
    ClientCert,
    /// The provider at this index of the snapshot's providers.
    Jwt(usize),
    /// The introspection endpoint at this index of the snapshot's endpoints.
    Introspect(usize),
}

/// A method as written: `api_key`, `basic`, `client_cert`, `jwt:<provider>`
/// or `introspect:<endpoint>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodName {
    ApiKey,
    Basic,
    ClientCert,
    Jwt(String),
    Introspect(String),
}

impl MethodName {
    pub fn parse(text: &str) -> Result<MethodName, String> {
        match text {
            "api_key" => Ok(MethodName::ApiKey),
            "basic" => Ok(MethodName::Basic),
            "client_cert" => Ok(MethodName::ClientCert),
            _ => match text.split_once(':') {
                Some(("jwt", name)) if !name.is_empty() => Ok(MethodName::Jwt(name.to_owned())),
                Some(("introspect", name)) if !name.is_empty() => {
                    Ok(MethodName::Introspect(name.to_owned()))
                }
                _ => Err(format!("unknown method {text:?}")),
            },
        }
    }
}

/// Why a request was refused; each has its status and error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// No credential for any of the route's methods (401).
    Missing,
    /// A credential was presented and is not valid (401).
    Invalid,
    /// The token lacks a scope the route asks for (403).
    InsufficientScope,
    /// The consumer's groups, tier or claims do not allow the route (403).
    Forbidden,
    /// The token could not be checked: its introspection endpoint is down (503).
    Unavailable,
}

impl Rejection {
    pub fn status(self) -> u16 {
        match self {
            Rejection::Missing | Rejection::Invalid => 401,
            Rejection::InsufficientScope | Rejection::Forbidden => 403,
            Rejection::Unavailable => 503,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Rejection::Missing => "missing_credentials",
            Rejection::Invalid => "invalid_credentials",
            Rejection::InsufficientScope => "insufficient_scope",
            Rejection::Forbidden => "forbidden",
            Rejection::Unavailable => "auth_unavailable",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Rejection::Missing => "this route needs credentials",
            Rejection::Invalid => "the credentials are not valid",
            Rejection::InsufficientScope => "the token lacks a scope this route needs",
            Rejection::Forbidden => "this consumer may not use this route",
            Rejection::Unavailable => "the token cannot be checked now; try again later",
        }
    }
}

/// What a route asks of a request, compiled.
#[derive(Debug)]
pub struct RoutePolicy {
    pub methods: Vec<Method>,
    pub optional: bool,
    pub scopes: Vec<String>,
    pub groups: Vec<String>,
    pub tiers: Vec<String>,
    pub claims: Vec<(String, String)>,
    pub challenges: Challenges,
    /// Credential headers consumed here and never sent upstream.
    pub strip_headers: Vec<HeaderName>,
    /// Credential cookies consumed here.
    pub strip_cookies: Vec<String>,
    /// The API-key query parameter, when the route takes API keys from one.
    pub strip_query: Option<String>,
}

/// The `WWW-Authenticate` values of each refusal, one per method.
#[derive(Debug, Default)]
pub struct Challenges {
    pub missing: Vec<HeaderValue>,
    pub invalid: Vec<HeaderValue>,
    pub scope: Vec<HeaderValue>,
}

impl Challenges {
    /// The challenges for `methods` in `realm`, which validation has checked
    /// needs no escaping. Scope names are checked the same way.
    pub fn new(methods: &[Method], realm: &str, scopes: &[String]) -> Challenges {
        let mut c = Challenges::default();
        let push = |list: &mut Vec<HeaderValue>, text: String| {
            if let Ok(value) = HeaderValue::from_str(&text) {
                if !list.contains(&value) {
                    list.push(value);
                }
            }
        };
        for method in methods {
            let (missing, invalid) = match method {
                Method::Jwt(_) | Method::Introspect(_) => (
                    format!("Bearer realm=\"{realm}\""),
                    format!("Bearer realm=\"{realm}\", error=\"invalid_token\""),
                ),
                Method::Basic => {
                    let basic = format!("Basic realm=\"{realm}\", charset=\"UTF-8\"");
                    (basic.clone(), basic)
                }
                Method::ApiKey => {
                    let key = format!("ApiKey realm=\"{realm}\"");
                    (key.clone(), key)
                }
                // A certificate is asked for in the TLS handshake; HTTP has
                // no challenge scheme for it (RFC 8705 uses none).
                Method::ClientCert => continue,
            };
            push(&mut c.missing, missing);
            push(&mut c.invalid, invalid);
            let bearer = matches!(method, Method::Jwt(_) | Method::Introspect(_));
            if bearer && !scopes.is_empty() {
                let scope = format!(
                    "Bearer realm=\"{realm}\", error=\"insufficient_scope\", scope=\"{}\"",
                    scopes.join(" ")
                );
                push(&mut c.scope, scope);
            }
        }
        c
    }

    /// The challenges that go with `rejection`.
    pub fn for_rejection(&self, rejection: Rejection) -> &[HeaderValue] {
        match rejection {
            Rejection::Missing => &self.missing,
            Rejection::Invalid => &self.invalid,
            Rejection::InsufficientScope => &self.scope,
            Rejection::Forbidden | Rejection::Unavailable => &[],
        }
    }
}

impl RoutePolicy {
    /// Whether `identity` may use the route: every scope, one of the groups,
    /// one of the tiers and every claim, for those the route lists.
    pub fn authorise(&self, identity: &Identity) -> Result<(), Rejection> {
        let consumer = &identity.consumer;
        if !self.scopes.iter().all(|s| identity.scopes.contains(s)) {
            return Err(Rejection::InsufficientScope);
        }
        if !self.groups.is_empty() && !consumer.groups.iter().any(|g| self.groups.contains(g)) {
            return Err(Rejection::Forbidden);
        }
        if !self.tiers.is_empty()
            && !consumer
                .tier
                .as_ref()
                .is_some_and(|t| self.tiers.contains(t))
        {
            return Err(Rejection::Forbidden);
        }
        let claims_hold = self.claims.iter().all(|(name, value)| {
            identity
                .claims
                .as_ref()
                .is_some_and(|c| super::jwt::claim_matches(c, name, value))
        });
        if !claims_hold {
            return Err(Rejection::Forbidden);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse_from_their_written_names() {
        assert_eq!(MethodName::parse("api_key").unwrap(), MethodName::ApiKey);
        assert_eq!(
            MethodName::parse("jwt:corp").unwrap(),
            MethodName::Jwt("corp".into())
        );
        assert!(MethodName::parse("jwt:").is_err());
        assert!(MethodName::parse("oauth").is_err());
    }

    #[test]
    fn bearer_challenges_name_the_error_only_for_invalid_tokens() {
        let c = Challenges::new(&[Method::Jwt(0), Method::Basic], "api", &["read".into()]);
        assert_eq!(c.missing[0], "Bearer realm=\"api\"");
        assert_eq!(c.missing[1], "Basic realm=\"api\", charset=\"UTF-8\"");
        assert_eq!(
            c.invalid[0],
            "Bearer realm=\"api\", error=\"invalid_token\""
        );
        assert_eq!(
            c.for_rejection(Rejection::InsufficientScope)[0],
            "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"read\""
        );
        assert!(c.for_rejection(Rejection::Forbidden).is_empty());
    }
}
