//! The protection part of the schema: `policies`, written once at the top of
//! the file (the defaults of every route) and optionally on each route.
//!
//! How a route's `policies` combines with the file's is part of the contract:
//! `ip_filter` lists stack (the file's is checked first, then the route's),
//! `limits` are inherited field by field, and `threat_protection` and `cors`
//! are replaced whole by the route's own.

use std::fmt;

use serde::{Deserialize, Deserializer};

use super::TrustedProxy;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoliciesSpec {
    #[serde(default)]
    pub ip_filter: Option<IpFilterSpec>,
    #[serde(default)]
    pub limits: Option<LimitsSpec>,
    #[serde(default)]
    pub threat_protection: Option<ThreatSpec>,
    #[serde(default)]
    pub cors: Option<CorsSpec>,
    /// Names of `rate_limiting.limits` that apply; a route's list replaces
    /// the file's, and `[]` turns rate limiting off for it.
    #[serde(default)]
    pub rate_limits: Option<Vec<String>>,
    /// In-flight caps; a route's replaces the file's.
    #[serde(default)]
    pub concurrency: Option<super::ConcurrencySpec>,
}

/// Client addresses (after the trusted-proxy rule) that are let in or kept out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpFilterSpec {
    /// When not empty, only these networks are let in.
    #[serde(default, deserialize_with = "network_list")]
    pub allow: Vec<ipnet::IpNet>,
    /// Never let in, even when also allowed.
    #[serde(default, deserialize_with = "network_list")]
    pub deny: Vec<ipnet::IpNet>,
}

/// Request size caps. An unset field inherits the file's value, then the
/// built-in default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// The request target (path and query), in bytes.
    #[serde(default)]
    pub max_uri_bytes: Option<Size>,
    /// The number of header fields.
    #[serde(default)]
    pub max_headers: Option<usize>,
    /// All header names and values together, in bytes.
    #[serde(default)]
    pub max_header_bytes: Option<Size>,
    /// The request body, in bytes; no cap when unset.
    #[serde(default)]
    pub max_body_bytes: Option<Size>,
}

/// SQL-injection and XSS detection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThreatSpec {
    #[serde(default = "yes")]
    pub sqli: bool,
    #[serde(default = "yes")]
    pub xss: bool,
    /// `block` answers 403; `log` only logs what fired.
    #[serde(default)]
    pub mode: ThreatMode,
    /// Header fields inspected beside the path and query.
    #[serde(default = "default_threat_headers")]
    pub headers: Vec<String>,
    /// Form and JSON bodies up to this size are inspected before the
    /// upstream is contacted; at most 64 KiB.
    #[serde(default = "default_inspect_bytes")]
    pub body_limit: Size,
    /// What happens to a form or JSON body larger than `body_limit`.
    #[serde(default)]
    pub oversize_body: OversizeBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreatMode {
    #[default]
    Block,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OversizeBody {
    /// 413: nothing uninspected passes.
    #[default]
    Reject,
    /// Forwarded uninspected.
    Pass,
}

/// Cross-origin resource sharing, answered at the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// `https://app.example.com`, `https://*.example.com` or `*`.
    pub origins: Vec<String>,
    /// Allowed methods; `GET, HEAD, POST` when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Allowed request headers beyond the CORS-safelisted ones; `*` for any
    /// (not with `credentials`).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Response headers the browser may show to the page.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default)]
    pub credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds.
    #[serde(default)]
    pub max_age: Option<u64>,
}

/// A size in bytes, written as a number or with a unit: `8192`, `64KiB`, `1MiB`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Debug for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl serde::de::Visitor<'_> for SizeVisitor {
    type Value = Size;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size in bytes, like 8192, 64KiB or 1MiB")
    }

    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Size, E> {
        Ok(Size(n))
    }

    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Size, E> {
        u64::try_from(n)
            .map(Size)
            .map_err(|_| E::custom(format!("{n} is negative; write a size like 8192 or 64KiB")))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Size, E> {
        text.trim()
            .parse::<bytesize::ByteSize>()
            .map(|size| Size(size.as_u64()))
            .map_err(|e| {
                E::custom(format!(
                    "invalid size {text:?} ({e}); write it like 8192, 64KiB or 1MiB"
                ))
            })
    }
}

/// Reads a list of networks, accepting a bare address as a one-host network.
fn network_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    Vec::<TrustedProxy>::deserialize(d).map(|list| list.into_iter().map(|p| p.0).collect())
}

fn yes() -> bool {
    true
}

fn default_threat_headers() -> Vec<String> {
    vec!["user-agent".into(), "referer".into()]
}

fn default_inspect_bytes() -> Size {
    Size(64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(yaml: &str) -> Result<Size, String> {
        serde_norway::from_str::<Size>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn sizes_are_read_as_numbers_or_with_binary_and_decimal_units() {
        assert_eq!(size("8192"), Ok(Size(8192)));
        assert_eq!(size("64KiB"), Ok(Size(65536)));
        assert_eq!(size("1 MiB"), Ok(Size(1 << 20)));
        assert_eq!(size("2kB"), Ok(Size(2000)));
        assert!(size("-1").unwrap_err().contains("negative"));
        assert!(size("lots").unwrap_err().contains("64KiB"));
    }

    #[test]
    fn threat_protection_defaults_to_blocking_both_checks() {
        let spec: ThreatSpec = serde_norway::from_str("{}").unwrap();
        assert!(spec.sqli && spec.xss);
        assert_eq!(spec.mode, ThreatMode::Block);
        assert_eq!(spec.oversize_body, OversizeBody::Reject);
        assert_eq!(spec.body_limit, Size(65536));
    }
}
