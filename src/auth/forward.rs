//! What crosses to the upstream: the identity in its headers, never the
//! credential, and never a client's own copy of an identity header.

use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

use super::{Auth, Identity, RoutePolicy};

/// The headers that carry identity upstream.
#[derive(Debug)]
pub struct IdentityHeaders {
    pub id: HeaderName,
    pub tier: HeaderName,
    pub groups: HeaderName,
    /// Every header Portico sets from an identity (the three above and each
    /// provider's `forward_claims`): removed from every upstream request
    /// before anything is set, so a client cannot spoof one.
    pub all: Vec<HeaderName>,
}

/// Removes client copies of identity headers and the route's credentials
/// from `upstream`, then sets the identity's headers.
pub fn apply(
    auth: &Auth,
    policy: Option<&RoutePolicy>,
    identity: Option<&Identity>,
    upstream: &mut RequestHeader,
) -> pingora::Result<()> {
    for name in &auth.headers.all {
        upstream.remove_header(name);
    }
    let Some(policy) = policy else {
        return Ok(());
    };
    for name in &policy.strip_headers {
        upstream.remove_header(name);
    }
    if !policy.strip_cookies.is_empty() {
        strip_cookies(upstream, &policy.strip_cookies)?;
    }
    let Some(identity) = identity else {
        return Ok(());
    };
    let headers = &auth.headers;
    let consumer = &identity.consumer;
    upstream.insert_header(headers.id.clone(), consumer.id_value.clone())?;
    if let Some(tier) = &consumer.tier_value {
        upstream.insert_header(headers.tier.clone(), tier.clone())?;
    }
    if let Some(groups) = &consumer.groups_value {
        upstream.insert_header(headers.groups.clone(), groups.clone())?;
    }
    for (name, value) in &identity.forward {
        upstream.insert_header(name.clone(), value.clone())?;
    }
    Ok(())
}

/// Rewrites the `Cookie` header without the named cookies.
fn strip_cookies(upstream: &mut RequestHeader, names: &[String]) -> pingora::Result<()> {
    let Some(line) = upstream
        .headers
        .get(http::header::COOKIE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(());
    };
    let kept: Vec<&str> = line
        .split(';')
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !names.iter().any(|n| n == name)
        })
        .collect();
    let kept = kept.join("; ");
    if kept.is_empty() {
        upstream.remove_header(&http::header::COOKIE);
        return Ok(());
    }
    match HeaderValue::from_str(&kept) {
        Ok(value) => upstream.insert_header(http::header::COOKIE, value),
        Err(_) => {
            upstream.remove_header(&http::header::COOKIE);
            Ok(())
        }
    }
}

/// The path and query to send upstream when the route's API-key query
/// parameter must be taken out; `None` when nothing changes. `current` is
/// the rewritten path and query when the route has already changed it.
pub fn uri_without_key(
    policy: &RoutePolicy,
    req: &RequestHeader,
    current: Option<&str>,
) -> Option<String> {
    let name = policy.strip_query.as_deref()?;
    let query = req.uri.query()?;
    let kept = super::api_key::without_param(query, name)?;
    let path = match current {
        Some(uri) => uri.split_once('?').map_or(uri, |(path, _)| path),
        None => req.uri.path(),
    };
    Some(if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{kept}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_credential_cookie_is_removed() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("cookie", "a=1; session=tok; b=2")
            .unwrap();
        strip_cookies(&mut req, &["session".into()]).unwrap();
        assert_eq!(req.headers["cookie"], "a=1; b=2");
        strip_cookies(&mut req, &["a".into(), "b".into()]).unwrap();
        assert!(req.headers.get("cookie").is_none());
    }
}
