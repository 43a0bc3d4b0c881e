//! Edge identity: who a request is (API key, HTTP Basic, JWT) and whether
//! its route lets it in.
//!
//! Everything is compiled into [`Auth`] when the snapshot is built: the
//! consumers, a digest index of API keys, the Basic users, the JWT providers
//! with their bound keys, and one [`RoutePolicy`] per route that has
//! authentication. A route without one costs one branch on the request path
//! and nothing else. [`Auth::admit`] runs in `request_filter`, after the
//! route match; its refusal is answered there and never reaches an upstream.
//! [`forward`] then puts the identity on the upstream request and takes the
//! credential off it.

pub mod api_key;
pub mod basic;
mod build;
pub mod consumer;
pub mod forward;
pub mod http_client;
pub mod introspect;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod policy;

use std::collections::HashMap;
use std::sync::Arc;

use pingora::http::RequestHeader;
use tracing::debug;

pub use consumer::Consumer;

use crate::tls::ClientCert;
pub use policy::{Method, Rejection, RoutePolicy};

/// The authentication of one snapshot, compiled.
pub struct Auth {
    consumers: Vec<Arc<Consumer>>,
    by_id: HashMap<String, usize>,
    api_keys: api_key::KeyIndex,
    key_source: api_key::KeySource,
    basic: basic::BasicIndex,
    /// Client certificate names, to the consumer's index.
    cert_names: HashMap<String, usize>,
    providers: Vec<jwt::Provider>,
    introspectors: Vec<introspect::Introspector>,
    /// By route index; `None` for routes without authentication.
    policies: Vec<Option<RoutePolicy>>,
    /// Headers that carry identity upstream; client copies are removed.
    pub headers: forward::IdentityHeaders,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("consumers", &self.consumers.len())
            .field("providers", &self.providers.len())
            .field(
                "routes_with_auth",
                &self.policies.iter().filter(|p| p.is_some()).count(),
            )
            .finish_non_exhaustive()
    }
}

/// Who a request is, once admitted with a credential.
#[derive(Debug)]
pub struct Identity {
    pub consumer: Arc<Consumer>,
    /// Token scopes; empty for API keys and Basic.
    pub scopes: Vec<String>,
    /// Token claims; `None` for API keys and Basic.
    pub claims: Option<jwt::Claims>,
    /// Claims to forward upstream, as headers.
    pub forward: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// What one method found in a request.
enum Found {
    /// The request carries no credential for this method.
    Nothing,
    /// A credential that this method rejects.
    Invalid,
    /// A credential that cannot be checked now.
    Unavailable,
    Admitted(Identity),
}

impl Auth {
    /// The policy of the route at index `route`, `None` when it has no
    /// authentication.
    #[inline]
    pub fn policy(&self, route: usize) -> Option<&RoutePolicy> {
        self.policies.get(route).and_then(Option::as_ref)
    }

    /// Authenticates `req` under `policy`, then authorises the consumer.
    ///
    /// Methods are tried in the route's order; the first that accepts a
    /// credential admits the request. A request that presented a credential
    /// none accepted is refused as invalid even when `optional` is set; one
    /// that presented none is anonymous (`Ok(None)`) when `optional` is set,
    /// else refused as missing.
    pub async fn admit(
        &self,
        policy: &RoutePolicy,
        req: &RequestHeader,
        cert: Option<&ClientCert>,
    ) -> Result<Option<Identity>, Rejection> {
        let mut presented = false;
        for method in &policy.methods {
            let found = match method {
                Method::ClientCert => self.try_client_cert(cert),
                _ => self.try_method(*method, req).await,
            };
            match found {
                Found::Nothing => {}
                Found::Invalid => presented = true,
                Found::Unavailable => return Err(Rejection::Unavailable),
                Found::Admitted(identity) => {
                    policy.authorise(&identity)?;
                    return Ok(Some(identity));
                }
            }
        }
        match (presented, policy.optional) {
            (true, _) => Err(Rejection::Invalid),
            (false, true) => Ok(None),
            (false, false) => Err(Rejection::Missing),
        }
    }

    async fn try_method(&self, method: Method, req: &RequestHeader) -> Found {
        match method {
            Method::ClientCert => Found::Nothing,
            Method::ApiKey => self.try_api_key(req),
            Method::Basic => self.try_basic(req).await,
            Method::Jwt(index) => match self.providers.get(index) {
                Some(provider) => self.try_jwt(provider, req).await,
                None => Found::Nothing,
            },
            Method::Introspect(index) => match self.introspectors.get(index) {
                Some(endpoint) => self.try_introspect(endpoint, req).await,
                None => Found::Nothing,
            },
        }
    }

    async fn try_introspect(
        &self,
        endpoint: &introspect::Introspector,
        req: &RequestHeader,
    ) -> Found {
        let Some(token) = endpoint.source.extract(&req.headers) else {
            return Found::Nothing;
        };
        let claims = match endpoint.introspect(token).await {
            introspect::Verdict::Active(claims) => claims,
            introspect::Verdict::Inactive => return Found::Invalid,
            introspect::Verdict::Unavailable => return Found::Unavailable,
        };
        let Some(subject) = claims
            .get(&endpoint.consumer_claim)
            .and_then(|v| v.as_str())
        else {
            debug!(endpoint = %endpoint.name, "active token without its consumer claim");
            return Found::Invalid;
        };
        let Some(consumer) = self.consumer_named(subject) else {
            return Found::Invalid;
        };
        let claims = jwt::Claims::clone(&claims);
        Found::Admitted(Identity {
            consumer,
            scopes: jwt::scopes(&claims),
            forward: jwt::forwarded(&endpoint.forward, &claims),
            claims: Some(claims),
        })
    }

    /// The configured consumer of this id, or one known only by it.
    fn consumer_named(&self, id: &str) -> Option<Arc<Consumer>> {
        match self.by_id.get(id) {
            Some(&index) => self.consumers.get(index).cloned(),
            None => Consumer::new(id, None, &[]).ok().map(Arc::new),
        }
    }

    /// A certificate the listener verified names a consumer by its common
    /// name or one of its alternative names; a verified certificate that
    /// names none is an invalid credential.
    fn try_client_cert(&self, cert: Option<&ClientCert>) -> Found {
        let Some(cert) = cert else {
            return Found::Nothing;
        };
        match cert.names().find_map(|name| self.cert_names.get(name)) {
            Some(&index) => self.admitted(index),
            None => {
                debug!(subject = %cert.subject, "client certificate names no consumer");
                Found::Invalid
            }
        }
    }

    fn try_api_key(&self, req: &RequestHeader) -> Found {
        let Some(key) = self.key_source.extract(req) else {
            return Found::Nothing;
        };
        match self.api_keys.find(&key) {
            Some(index) => self.admitted(index),
            None => Found::Invalid,
        }
    }

    async fn try_basic(&self, req: &RequestHeader) -> Found {
        let parsed = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(basic::parse);
        let credential = match parsed {
            None => return Found::Nothing,
            Some(Err(())) => return Found::Invalid,
            Some(Ok(credential)) => credential,
        };
        match self.basic.verify(credential).await {
            Some(index) => self.admitted(index),
            None => Found::Invalid,
        }
    }

    async fn try_jwt(&self, provider: &jwt::Provider, req: &RequestHeader) -> Found {
        let Some(token) = provider.source.extract(&req.headers) else {
            return Found::Nothing;
        };
        let verified = match provider.verify(token).await {
            Ok(verified) => verified,
            Err(why) => {
                debug!(provider = %provider.name, why, "token refused");
                return Found::Invalid;
            }
        };
        let Some(consumer) = self.consumer_named(&verified.subject) else {
            return Found::Invalid;
        };
        Found::Admitted(Identity {
            consumer,
            scopes: jwt::scopes(&verified.claims),
            forward: provider.forwarded(&verified.claims),
            claims: Some(verified.claims),
        })
    }

    fn admitted(&self, index: usize) -> Found {
        match self.consumers.get(index) {
            Some(consumer) => Found::Admitted(Identity {
                consumer: Arc::clone(consumer),
                scopes: Vec::new(),
                claims: None,
                forward: Vec::new(),
            }),
            None => Found::Invalid,
        }
    }
}

#[cfg(test)]
mod jwt_tests;
#[cfg(test)]
mod test_keys;
#[cfg(test)]
mod tests;
