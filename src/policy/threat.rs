//! Threat protection: SQL-injection and XSS detection on the parts of a
//! request a client controls, the path, the query, chosen header fields and a
//! form or JSON body.
//!
//! Each value is decoded as the upstream will read it (percent-decoding for
//! path segments and headers, form decoding with `+` as space for the query
//! and form bodies, JSON unescaping for JSON strings) and then judged by
//! `libinjectionrs`, a Rust port of libinjection. libinjection tokenises a
//! value as SQL and as HTML in the contexts it could be pasted into and
//! compares the result with known attack shapes; it has no per-route
//! learning, so this module reports a [`Finding`] and the caller decides
//! whether that blocks or only logs. One check is added beside it: a value
//! that is itself a `javascript:` or `vbscript:` URL carrying code, which
//! libinjection judges only inside an HTML attribute.
//!
//! Everything here is synchronous and allocates only to decode escapes,
//! parse JSON or name a finding (libinjectionrs itself uppercases each SQL
//! word it looks up into a small string). Nothing panics on any input: a
//! panic inside the detector is caught and reported as a finding, so a
//! value that breaks the detector is refused rather than waved through.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::panic::{self, UnwindSafe};

use http::{header, HeaderMap, HeaderName};
use libinjectionrs::{SqliFlags, SqliState, XssDetector};
use percent_encoding::percent_decode;
use serde_json::Value;

/// What one route inspects.
#[derive(Debug, Clone)]
pub struct ThreatSettings {
    pub sqli: bool,
    pub xss: bool,
    /// Lowercase header names to inspect.
    pub headers: Vec<HeaderName>,
    /// Bytes of body inspected at most.
    pub body_limit: usize,
}

/// Which detector fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Sqli,
    Xss,
}

impl Check {
    /// The name used in logs and metrics: `"sqli"` or `"xss"`.
    pub fn name(&self) -> &'static str {
        match self {
            Check::Sqli => "sqli",
            Check::Xss => "xss",
        }
    }
}

/// Where the offending value was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A segment of the path.
    Path,
    /// The name or value of the query parameter with this (decoded) name.
    Query(String),
    /// A value of this header field.
    Header(String),
    /// A form field's name or value (the field's decoded name), or a JSON
    /// string or object key (its JSON pointer, such as `/user/name`; the
    /// empty pointer is the whole body, used for a body that is not JSON).
    Body(String),
}

/// One detection: the first value in the request that a check flagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: Check,
    pub location: Location,
    /// libinjection's SQLi fingerprint when there is one (such as `s&1c`
    /// for `' OR 1=1--`); `None` for XSS and for a detector failure.
    pub fingerprint: Option<String>,
}

/// How a request body is inspected, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json` or `application/<anything>+json`.
    Json,
    /// Anything else, or no `Content-Type`: not inspected.
    Other,
}

/// Inspects the path and the query of a request target.
///
/// `path` is the normalised path; each `/`-separated segment is
/// percent-decoded and judged on its own, so `%2F` inside a segment does not
/// split it. `query` is the raw query (without `?`); every parameter name
/// and value is form-decoded (`+` is a space) and judged. Path bytes that
/// are not UTF-8 are judged as they are; in the query they become U+FFFD,
/// as form decoding does. The path is judged before the query; the first
/// hit is returned.
///
/// A payload spread over several segments by literal slashes, such as
/// `1/**/UNION/**/SELECT`, is not seen whole: routes usually bind one
/// segment per parameter, and judging every suffix of the path would cost
/// quadratic time on a hostile one.
pub fn inspect_target(s: &ThreatSettings, path: &str, query: Option<&str>) -> Option<Finding> {
    if !enabled(s) {
        return None;
    }
    let in_path = path.split('/').find_map(|segment| {
        let decoded: Cow<'_, [u8]> = percent_decode(segment.as_bytes()).into();
        scan(s, &decoded)
    });
    if let Some(hit) = in_path {
        return Some(hit.at(Location::Path));
    }
    query.and_then(|q| inspect_pairs(s, q.as_bytes(), Location::Query))
}

/// Inspects every value of each header field named in
/// [`ThreatSettings::headers`], in that order.
///
/// A value is percent-decoded before it is judged (a `Referer` or a cookie
/// carries its payload encoded). A `Cookie` value is split at `;` and each
/// cookie's name and value is judged on its own, since libinjection reads
/// only the start of a value and a payload in a later cookie would otherwise
/// hide behind the first.
pub fn inspect_headers(s: &ThreatSettings, headers: &HeaderMap) -> Option<Finding> {
    if !enabled(s) {
        return None;
    }
    for name in &s.headers {
        for value in headers.get_all(name) {
            let hit = if name == header::COOKIE {
                scan_cookies(s, value.as_bytes())
            } else {
                scan_decoded(s, value.as_bytes())
            };
            if let Some(hit) = hit {
                return Some(hit.at(Location::Header(name.as_str().to_owned())));
            }
        }
    }
    None
}

/// Classifies a `Content-Type` value; parameters such as `charset` are
/// ignored and the comparison is case-insensitive. `None` and anything
/// unparsable are [`BodyKind::Other`].
pub fn body_kind(content_type: Option<&str>) -> BodyKind {
    let Some(value) = content_type else {
        return BodyKind::Other;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return BodyKind::Other;
    };
    if !kind.eq_ignore_ascii_case("application") {
        return BodyKind::Other;
    }
    let suffix_json =
        subtype.len() > 5 && subtype.as_bytes()[subtype.len() - 5..].eq_ignore_ascii_case(b"+json");
    if subtype.eq_ignore_ascii_case("x-www-form-urlencoded") {
        BodyKind::Form
    } else if subtype.eq_ignore_ascii_case("json") || suffix_json {
        BodyKind::Json
    } else {
        BodyKind::Other
    }
}

/// Inspects a body of the given kind.
///
/// A form body is read like a query. A JSON body is parsed and every string
/// value and every object key, at any depth, is judged; numbers, booleans
/// and nulls are not. A body that is not valid JSON (including one cut short
/// by the caller's limit, or nested deeper than `serde_json`'s 128 levels)
/// is judged whole as one value; libinjection's SQLi check reads only the
/// first few tokens of a value, so for such a body that means its start.
/// Only the first `body_limit` bytes are read; [`BodyKind::Other`] is never
/// inspected.
pub fn inspect_body(s: &ThreatSettings, kind: BodyKind, body: &[u8]) -> Option<Finding> {
    if !enabled(s) {
        return None;
    }
    let body = body.get(..s.body_limit).unwrap_or(body);
    match kind {
        BodyKind::Form => inspect_pairs(s, body, Location::Body),
        BodyKind::Json => inspect_json(s, body),
        BodyKind::Other => None,
    }
}

fn enabled(s: &ThreatSettings) -> bool {
    s.sqli || s.xss
}

/// A flagged value, before the caller says where it was.
struct Hit {
    check: Check,
    fingerprint: Option<String>,
}

impl Hit {
    fn at(self, location: Location) -> Finding {
        Finding {
            check: self.check,
            location,
            fingerprint: self.fingerprint,
        }
    }
}

/// Judges form-encoded pairs, names before values; `place` builds the
/// location from the decoded name.
fn inspect_pairs(
    s: &ThreatSettings,
    input: &[u8],
    place: fn(String) -> Location,
) -> Option<Finding> {
    for (name, value) in form_urlencoded::parse(input) {
        let hit = scan(s, name.as_bytes()).or_else(|| scan(s, value.as_bytes()));
        if let Some(hit) = hit {
            return Some(hit.at(place(name.into_owned())));
        }
    }
    None
}

fn scan_decoded(s: &ThreatSettings, raw: &[u8]) -> Option<Hit> {
    let decoded: Cow<'_, [u8]> = percent_decode(raw).into();
    scan(s, &decoded)
}

fn scan_cookies(s: &ThreatSettings, raw: &[u8]) -> Option<Hit> {
    raw.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], pair.get(eq + 1..).unwrap_or_default()),
            None => (pair, &[][..]),
        };
        scan_decoded(s, name).or_else(|| scan_decoded(s, value))
    })
}

/// Judges one decoded value with the enabled checks, SQLi first.
fn scan(s: &ThreatSettings, value: &[u8]) -> Option<Hit> {
    if is_inert(value) {
        return None;
    }
    if s.sqli {
        if let Some(hit) = sqli(value) {
            return Some(hit);
        }
    }
    if s.xss && xss(value) {
        return Some(Hit {
            check: Check::Xss,
            fingerprint: None,
        });
    }
    None
}

/// True for values libinjection cannot flag, so the common ids, page numbers
/// and plain words skip it. An ASCII-alphanumeric value has no whitespace,
/// quote, operator, comment or `<`: libinjection's SQL tokenizer reads it as
/// at most three tokens (an optional `0b`/`0x`/`1e`-style number or word, a
/// number, then one word running to the end), and its HTML tokenizer as
/// plain text or one attribute name without a value, none of which is an
/// attack shape. The tests check this on keyword-built values; during
/// development every such shape over libinjectionrs 0.1.1's whole keyword
/// table (about 30 million values) was checked with none flagged.
fn is_inert(value: &[u8]) -> bool {
    value.iter().all(u8::is_ascii_alphanumeric)
}

fn sqli(value: &[u8]) -> Option<Hit> {
    let verdict = guarded(|| {
        let mut state = SqliState::new(value, SqliFlags::FLAG_NONE);
        // `detect` leaves the fingerprint that matched in the state; asking
        // for it again would re-tokenise the input.
        state.detect().then(|| state.fingerprint_string())
    });
    let fingerprint = match verdict {
        Some(None) => return None,
        Some(Some(fingerprint)) => Some(fingerprint),
        None => None,
    };
    Some(Hit {
        check: Check::Sqli,
        fingerprint,
    })
}

fn xss(value: &[u8]) -> bool {
    let flagged = guarded(|| XssDetector::new().detect(value).is_injection());
    flagged.unwrap_or(true) || is_script_url(value)
}

/// Runs a detector, turning a panic into `None`. libinjectionrs is a
/// machine translation from C that still indexes slices directly; a bug
/// there must cost one request, not the worker.
fn guarded<T>(detect: impl FnOnce() -> T + UnwindSafe) -> Option<T> {
    panic::catch_unwind(detect).ok()
}

const SCRIPT_SCHEMES: [&[u8]; 2] = [b"javascript", b"vbscript"];

/// A value that is a script URL with code in it. libinjection checks URL
/// schemes only in an attribute it parsed (`href="javascript:..."`), so a
/// bare `javascript:alert(1)` sent to a redirect or link field passes it.
/// Browsers skip leading spaces and controls and drop tabs and newlines
/// inside the scheme, so this does too. Code needs a call, a template or an
/// assignment (`(`, `` ` `` or `=`); requiring one keeps prose such as
/// "JavaScript: the basics" from matching.
fn is_script_url(value: &[u8]) -> bool {
    let Some(colon) = value.iter().position(|&b| b == b':') else {
        return false;
    };
    let (scheme, rest) = value.split_at(colon);
    let letters = scheme
        .iter()
        .skip_while(|&&b| b <= b' ')
        .filter(|&&b| !matches!(b, b'\t' | b'\n' | b'\r'))
        .map(u8::to_ascii_lowercase);
    let scripted = SCRIPT_SCHEMES
        .iter()
        .any(|name| letters.clone().eq(name.iter().copied()));
    scripted && rest.iter().any(|b| matches!(b, b'(' | b'`' | b'='))
}

fn inspect_json(s: &ThreatSettings, body: &[u8]) -> Option<Finding> {
    match serde_json::from_slice::<Value>(body) {
        Ok(document) => walk_json(s, &document),
        // Not JSON after all: the upstream may still read it somehow, so
        // judge the text as it came.
        Err(_) => scan(s, body).map(|hit| hit.at(Location::Body(String::new()))),
    }
}

/// One step of a JSON pointer.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The children of an object or array still to visit.
enum Frame<'a> {
    Object(serde_json::map::Iter<'a>),
    Array(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
}

impl<'a> Frame<'a> {
    fn of(value: &'a Value) -> Option<Frame<'a>> {
        match value {
            Value::Object(map) => Some(Frame::Object(map.iter())),
            Value::Array(items) => Some(Frame::Array(items.iter().enumerate())),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<(Step<'a>, &'a Value)> {
        match self {
            Frame::Object(members) => members.next().map(|(k, v)| (Step::Key(k), v)),
            Frame::Array(items) => items.next().map(|(i, v)| (Step::Index(i), v)),
        }
    }
}

/// Visits every key and string depth-first with an explicit stack, so a
/// hostile nesting costs heap, not call stack (serde_json already refuses
/// more than 128 levels). The pointer is only spelled out for a hit.
fn walk_json(s: &ThreatSettings, root: &Value) -> Option<Finding> {
    if let Value::String(text) = root {
        return scan(s, text.as_bytes()).map(|hit| hit.at(Location::Body(String::new())));
    }
    let mut stack: Vec<Frame<'_>> = Frame::of(root).into_iter().collect();
    let mut path: Vec<Step<'_>> = Vec::new();
    while let Some(frame) = stack.last_mut() {
        let Some((step, child)) = frame.next() else {
            stack.pop();
            continue;
        };
        path.truncate(stack.len().saturating_sub(1));
        path.push(step);
        let key_hit = match step {
            Step::Key(key) => scan(s, key.as_bytes()),
            Step::Index(_) => None,
        };
        let hit = key_hit.or_else(|| match child {
            Value::String(text) => scan(s, text.as_bytes()),
            _ => None,
        });
        if let Some(hit) = hit {
            return Some(hit.at(Location::Body(pointer(&path))));
        }
        stack.extend(Frame::of(child));
    }
    None
}

/// Spells a path as an RFC 6901 JSON pointer (`~` as `~0`, `/` as `~1`).
fn pointer(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        out.push('/');
        match step {
            Step::Key(key) => {
                for c in key.chars() {
                    match c {
                        '~' => out.push_str("~0"),
                        '/' => out.push_str("~1"),
                        _ => out.push(c),
                    }
                }
            }
            Step::Index(i) => {
                // Writing to a String cannot fail.
                let _ = write!(out, "{i}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
