//! Cross-origin resource sharing, decided at the gateway: preflights are
//! answered here and never reach an upstream, and answers to allowed
//! origins carry the CORS response headers.
//!
//! Origins are compared as the browser serialises them (`scheme://host` with
//! the port only when it is not the scheme's default), scheme and host without
//! regard to case. `https://*.example.com` matches any host that ends in
//! `.example.com` with that scheme and port, so neither `example.com` itself
//! nor `example.com.evil.net` does. The opaque origin `null` is never allowed
//! by a pattern. Every header value is built once, when the policy compiles.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use crate::config::schema::CorsSpec;

/// The longest preflight cache a browser may be told; more is clamped by
/// browsers anyway.
const MAX_MAX_AGE: u64 = 86_400;

/// One allowed origin, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(String),
    /// `scheme://*.suffix[:port]`: the part before `*` and the part after.
    Subdomains {
        scheme: String,
        suffix: String,
    },
}

/// A compiled CORS policy.
#[derive(Debug)]
pub struct Cors {
    patterns: Vec<Pattern>,
    methods: Vec<Method>,
    any_header: bool,
    /// Lowercase allowed request headers.
    headers: Vec<String>,
    credentials: bool,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

/// The verdict on a preflight.
#[derive(Debug, PartialEq, Eq)]
pub enum Preflight {
    /// Answer 204 with these headers.
    Allowed(Vec<(HeaderName, HeaderValue)>),
    /// The origin, the method or a requested header is not allowed.
    Denied,
}

/// A problem in a `cors` section: the key under it, what is wrong, the fix.
pub type Problem = (String, String, String);

impl Cors {
    /// Compiles `spec`, reporting every problem with its key.
    pub fn compile(spec: &CorsSpec) -> Result<Cors, Vec<Problem>> {
        let mut problems = Vec::new();
        let patterns = origin_patterns(spec, &mut problems);
        let methods = methods(spec, &mut problems);
        let (any_header, headers) = request_headers(spec, &mut problems);
        for (i, name) in spec.expose_headers.iter().enumerate() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(bad_header(format!("expose_headers[{i}]"), name));
            }
        }
        if spec.max_age.is_some_and(|age| age > MAX_MAX_AGE) {
            problems.push((
                "max_age".into(),
                "more than 86400 seconds; browsers cap it lower".into(),
                "set at most 86400 (one day)".into(),
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let names: Vec<&str> = methods.iter().map(Method::as_str).collect();
        Ok(Cors {
            allow_methods: joined(&names),
            allow_headers: (!headers.is_empty() || any_header).then(|| {
                if any_header {
                    HeaderValue::from_static("*")
                } else {
                    joined(&headers.iter().map(String::as_str).collect::<Vec<_>>())
                }
            }),
            expose: (!spec.expose_headers.is_empty()).then(|| {
                joined(
                    &spec
                        .expose_headers
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                )
            }),
            max_age: spec.max_age.map(HeaderValue::from),
            patterns,
            methods,
            any_header,
            headers,
            credentials: spec.credentials,
        })
    }

    /// `Some` when the request is a CORS preflight: `OPTIONS` with `Origin`
    /// and `Access-Control-Request-Method`.
    pub fn preflight(&self, method: &Method, headers: &HeaderMap) -> Option<Preflight> {
        if method != Method::OPTIONS {
            return None;
        }
        let origin = headers.get(http::header::ORIGIN)?;
        let asked = headers.get(http::header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let Some(allow_origin) = self.allow_origin(origin) else {
            return Some(Preflight::Denied);
        };
        let method_ok = Method::from_bytes(asked.as_bytes())
            .is_ok_and(|m| self.methods.contains(&m) || is_simple_method(&m));
        let headers_ok = headers
            .get_all(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .iter()
            .all(|line| self.headers_allowed(line));
        if !method_ok || !headers_ok {
            return Some(Preflight::Denied);
        }
        let mut out = self.common(allow_origin);
        out.push((
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            self.allow_methods.clone(),
        ));
        if let Some(allowed) = &self.allow_headers {
            out.push((http::header::ACCESS_CONTROL_ALLOW_HEADERS, allowed.clone()));
        }
        if let Some(age) = &self.max_age {
            out.push((http::header::ACCESS_CONTROL_MAX_AGE, age.clone()));
        }
        Some(Preflight::Allowed(out))
    }

    /// The headers of an actual (not preflight) answer to a request from
    /// `origin`. A response that depends on the origin says so with
    /// `Vary: Origin`, also when the origin is refused, so a shared cache
    /// never gives one origin's answer to another.
    pub fn response_headers(&self, origin: Option<&HeaderValue>) -> Vec<(HeaderName, HeaderValue)> {
        let Some(origin) = origin else {
            return Vec::new();
        };
        match self.allow_origin(origin) {
            Some(allow_origin) => {
                let mut out = self.common(allow_origin);
                if let Some(expose) = &self.expose {
                    out.push((http::header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone()));
                }
                out
            }
            None if self.varies() => vec![vary_origin()],
            None => Vec::new(),
        }
    }

    /// `Access-Control-Allow-Origin`, credentials and `Vary` for an allowed
    /// origin.
    fn common(&self, allow_origin: HeaderValue) -> Vec<(HeaderName, HeaderValue)> {
        let mut out = Vec::with_capacity(6);
        out.push((http::header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin));
        if self.credentials {
            out.push((
                http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        if self.varies() {
            out.push(vary_origin());
        }
        out
    }

    /// Whether the answer names the origin rather than `*`.
    fn varies(&self) -> bool {
        self.credentials || self.patterns.iter().any(|p| *p != Pattern::Any)
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, when allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let text = origin.to_str().ok()?;
        let any = self.patterns.contains(&Pattern::Any);
        if any && !self.credentials {
            return Some(HeaderValue::from_static("*"));
        }
        let normal = normalise_origin(text)?;
        let matched = any || self.patterns.iter().any(|p| p.matches(&normal));
        matched.then(|| origin.clone())
    }

    fn headers_allowed(&self, line: &HeaderValue) -> bool {
        let Ok(text) = line.to_str() else {
            return false;
        };
        text.split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .all(|h| {
                self.any_header
                    || is_safelisted_header(h)
                    || self.headers.iter().any(|a| a.eq_ignore_ascii_case(h))
            })
    }
}

impl Pattern {
    fn matches(&self, origin: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(exact) => exact == origin,
            Pattern::Subdomains { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                .is_some_and(valid_labels),
        }
    }
}

/// One or more DNS labels, for the part a `*.` pattern stands for.
fn valid_labels(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `scheme://host[:port]` lowercased, the default port dropped; `None` for
/// anything that is not such an origin (a path, userinfo, `null`).
fn normalise_origin(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if !matches!(scheme.as_str(), "http" | "https") || rest.is_empty() {
        return None;
    }
    if rest.contains(['/', '?', '#', '@']) || !rest.is_ascii() {
        return None;
    }
    let rest = rest.to_ascii_lowercase();
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (host.to_owned(), Some(port.to_owned()))
        }
        _ => (rest.clone(), None),
    };
    let default = if scheme == "https" { "443" } else { "80" };
    Some(match port {
        Some(port) if port != default => format!("{scheme}://{host}:{port}"),
        _ => format!("{scheme}://{host}"),
    })
}

fn origin_patterns(spec: &CorsSpec, problems: &mut Vec<Problem>) -> Vec<Pattern> {
    if spec.origins.is_empty() {
        problems.push((
            "origins".into(),
            "no origin is listed".into(),
            "list origins like https://app.example.com or https://*.example.com".into(),
        ));
    }
    let mut patterns = Vec::new();
    for (i, text) in spec.origins.iter().enumerate() {
        match parse_pattern(text) {
            Some(Pattern::Any) if spec.credentials => problems.push((
                format!("origins[{i}]"),
                "`*` with credentials is refused by browsers".into(),
                "list the origins, or set credentials: false".into(),
            )),
            Some(pattern) => patterns.push(pattern),
            None => problems.push((
                format!("origins[{i}]"),
                format!("{text:?} is not an origin"),
                "write scheme://host[:port] without a path, like https://app.example.com, \
                 https://*.example.com, or *"
                    .into(),
            )),
        }
    }
    patterns
}

fn parse_pattern(text: &str) -> Option<Pattern> {
    if text == "*" {
        return Some(Pattern::Any);
    }
    let Some((scheme, rest)) = text.split_once("://*.") else {
        return normalise_origin(text).map(Pattern::Exact);
    };
    // Normalise the concrete remainder as if it were a whole origin.
    let normal = normalise_origin(&format!("{scheme}://{rest}"))?;
    let (scheme, host) = normal.split_once("://")?;
    (!host.is_empty()).then(|| Pattern::Subdomains {
        scheme: format!("{scheme}://"),
        suffix: format!(".{host}"),
    })
}

fn methods(spec: &CorsSpec, problems: &mut Vec<Problem>) -> Vec<Method> {
    if spec.methods.is_empty() {
        return vec![Method::GET, Method::HEAD, Method::POST];
    }
    let mut out = Vec::new();
    for (i, text) in spec.methods.iter().enumerate() {
        match Method::from_bytes(text.to_ascii_uppercase().as_bytes()) {
            Ok(method) => out.push(method),
            Err(_) => problems.push((
                format!("methods[{i}]"),
                format!("{text:?} is not an HTTP method"),
                "write methods like GET, PUT or DELETE".into(),
            )),
        }
    }
    out
}

fn request_headers(spec: &CorsSpec, problems: &mut Vec<Problem>) -> (bool, Vec<String>) {
    let mut any = false;
    let mut names = Vec::new();
    for (i, name) in spec.headers.iter().enumerate() {
        if name == "*" {
            if spec.credentials {
                problems.push((
                    format!("headers[{i}]"),
                    "`*` with credentials is read by browsers as a header named `*`".into(),
                    "list the headers, or set credentials: false".into(),
                ));
            }
            any = true;
        } else if HeaderName::from_bytes(name.as_bytes()).is_ok() {
            names.push(name.to_ascii_lowercase());
        } else {
            problems.push(bad_header(format!("headers[{i}]"), name));
        }
    }
    (any, names)
}

fn bad_header(key: String, name: &str) -> Problem {
    (
        key,
        format!("{name:?} is not a valid HTTP header name"),
        "use letters, digits and - (like x-user-id)".into(),
    )
}

fn joined(items: &[&str]) -> HeaderValue {
    // Items are validated methods and header names, always valid values.
    HeaderValue::from_str(&items.join(", ")).unwrap_or(HeaderValue::from_static(""))
}

fn vary_origin() -> (HeaderName, HeaderValue) {
    (http::header::VARY, HeaderValue::from_static("Origin"))
}

/// Methods a browser sends cross-origin without asking for them.
fn is_simple_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::POST)
}

/// Request headers the Fetch standard lets through without being allowed.
fn is_safelisted_header(name: &str) -> bool {
    [
        "accept",
        "accept-language",
        "content-language",
        "content-type",
    ]
    .iter()
    .any(|safe| safe.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests;
