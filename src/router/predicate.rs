//! The compiled predicates of one route: host patterns, the path pattern and the
//! header and query-parameter tests.
//!
//! Regexes here are not anchored: `is_match` finds a match anywhere in the
//! subject, as the `regex` crate does. A config that means the whole value writes
//! `^...$`.

use std::borrow::Cow;

use http::{HeaderMap, HeaderName};
use percent_encoding::percent_decode_str;
use regex::bytes::Regex as BytesRegex;
use regex::Regex;

use super::error::RouterErrorKind;
use super::normalize::normalize_path;
use crate::config::schema::{PathMatchSpec, ValueMatchSpec};

/// One entry of `match.hosts`, lowercased and without a trailing dot.
#[derive(Debug, Clone)]
pub(crate) enum HostPattern {
    Exact(Box<str>),
    /// `*.example.com`, stored as `example.com`: matches names with at least one
    /// more label, never `example.com` itself.
    Wildcard(Box<str>),
}

impl HostPattern {
    pub(crate) fn parse(raw: &str) -> Result<Self, RouterErrorKind> {
        let invalid = |reason| RouterErrorKind::InvalidHost {
            host: raw.to_owned(),
            reason,
        };
        let lower = raw.to_ascii_lowercase();
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        let (wildcard, name) = match name.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, name),
        };
        if name.is_empty() {
            return Err(invalid("empty name"));
        }
        if name.contains('*') {
            return Err(invalid("a wildcard is only allowed as a leading '*.'"));
        }
        let bracketed = name.starts_with('[') && name.ends_with(']');
        if name.contains(':') && !bracketed {
            return Err(invalid("a port is not part of a route host"));
        }
        Ok(if wildcard {
            HostPattern::Wildcard(name.into())
        } else {
            HostPattern::Exact(name.into())
        })
    }
}

/// `match.path`, with exact and prefix paths in normal form.
#[derive(Debug, Clone)]
pub(crate) enum PathPattern {
    Exact(Box<str>),
    /// Never ends in '/' unless it is `/`, which matches every path.
    Prefix(Box<str>),
    Regex(Regex),
}

impl PathPattern {
    pub(crate) fn compile(spec: &PathMatchSpec) -> Result<Self, RouterErrorKind> {
        Ok(match spec {
            PathMatchSpec::Exact(path) => PathPattern::Exact(normal_form(path)?),
            PathMatchSpec::Prefix(path) => {
                let prefix = normal_form(path)?;
                if &*prefix != "/" && prefix.ends_with('/') {
                    return Err(RouterErrorKind::PrefixTrailingSlash {
                        prefix: path.clone(),
                    });
                }
                PathPattern::Prefix(prefix)
            }
            PathMatchSpec::Regex(re) => PathPattern::Regex(compile_regex(re, "match.path.regex")?),
        })
    }

    pub(crate) fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(exact) => **exact == *path,
            PathPattern::Prefix(prefix) => prefix_matches(prefix, path),
            PathPattern::Regex(re) => re.is_match(path),
        }
    }
}

/// Whether `prefix` covers `path` on a segment boundary: `/api` covers `/api`,
/// `/api/` and `/api/x` but not `/apix`; `/` covers everything.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix == "/"
        || (path.starts_with(prefix)
            && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/')))
}

/// Config paths get the same normalisation as request paths, so `/%61pi` in a
/// config means `/api` rather than a route that can never match.
fn normal_form(path: &str) -> Result<Box<str>, RouterErrorKind> {
    normalize_path(path)
        .map(|p| p.into())
        .map_err(|reason| RouterErrorKind::InvalidPath {
            path: path.to_owned(),
            reason,
        })
}

pub(crate) fn compile_regex(re: &str, field: &str) -> Result<Regex, RouterErrorKind> {
    Regex::new(re).map_err(|source| RouterErrorKind::InvalidRegex {
        field: field.to_owned(),
        source,
    })
}

/// The test a header or query value must pass.
#[derive(Debug, Clone)]
pub(crate) enum ValueTest {
    Present,
    /// Byte-for-byte, case-sensitive equality.
    Equals(Box<[u8]>),
    Regex(BytesRegex),
}

impl ValueTest {
    fn compile(spec: &ValueMatchSpec, field: &str) -> Result<Self, RouterErrorKind> {
        match (&spec.value, &spec.regex) {
            (None, None) => Ok(ValueTest::Present),
            (Some(value), None) => Ok(ValueTest::Equals(value.as_bytes().into())),
            (None, Some(re)) => BytesRegex::new(re).map(ValueTest::Regex).map_err(|source| {
                RouterErrorKind::InvalidRegex {
                    field: field.to_owned(),
                    source,
                }
            }),
            (Some(_), Some(_)) => Err(RouterErrorKind::ValueAndRegex {
                field: field.to_owned(),
            }),
        }
    }

    fn holds(&self, value: &[u8]) -> bool {
        match self {
            ValueTest::Present => true,
            ValueTest::Equals(expected) => **expected == *value,
            ValueTest::Regex(re) => re.is_match(value),
        }
    }
}

/// One `match.headers` entry; holds when any value of the header passes.
#[derive(Debug, Clone)]
pub(crate) struct HeaderPredicate {
    name: HeaderName,
    test: ValueTest,
}

impl HeaderPredicate {
    pub(crate) fn compile(spec: &ValueMatchSpec, index: usize) -> Result<Self, RouterErrorKind> {
        let name = HeaderName::from_bytes(spec.name.as_bytes()).map_err(|_| {
            RouterErrorKind::InvalidHeaderName {
                name: spec.name.clone(),
            }
        })?;
        let test = ValueTest::compile(spec, &format!("match.headers[{index}]"))?;
        Ok(HeaderPredicate { name, test })
    }

    pub(crate) fn holds(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(&self.name)
            .iter()
            .any(|v| self.test.holds(v.as_bytes()))
    }
}

/// One `match.query` entry. Names and values are percent-decoded before they are
/// compared (`+` is not treated as a space); a parameter without `=` is present
/// with an empty value; any occurrence of the name that passes is enough.
#[derive(Debug, Clone)]
pub(crate) struct QueryPredicate {
    name: Box<str>,
    test: ValueTest,
}

impl QueryPredicate {
    pub(crate) fn compile(spec: &ValueMatchSpec, index: usize) -> Result<Self, RouterErrorKind> {
        let test = ValueTest::compile(spec, &format!("match.query[{index}]"))?;
        Ok(QueryPredicate {
            name: spec.name.as_str().into(),
            test,
        })
    }

    pub(crate) fn holds(&self, query: Option<&str>) -> bool {
        query.is_some_and(|q| {
            query_pairs(q).any(|(name, value)| {
                *decode(name) == *self.name.as_bytes() && self.test.holds(&decode(value))
            })
        })
    }
}

fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Percent-decodes without allocating when there is nothing to decode; a stray
/// `%` is kept literally.
fn decode(text: &str) -> Cow<'_, [u8]> {
    percent_decode_str(text).into()
}
