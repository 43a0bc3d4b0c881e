//! Request-path and host normalisation, applied once per request before routing.
//!
//! Every later step (route matching, prefix stripping, rewriting, the upstream
//! request) sees only the output of [`normalize_path`], so these rules are part of
//! the gateway's security contract: two spellings of one resource must reach the
//! router as one string, or a route guarding `/admin` could be bypassed.
//!
//! [`normalize_path`] takes the path of a request target (no query) and applies,
//! in this order:
//!
//! 1. The path must start with `/`; anything else is rejected.
//! 2. Raw control characters (C0, DEL, and C1 encoded as UTF-8) are rejected.
//! 3. Percent-escapes are checked: `%` must be followed by two hex digits (`%zz`
//!    and a truncated `%4` are rejected) and `%00` is rejected. Escapes of
//!    unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; every other escape
//!    is kept with its hex digits uppercased. In particular `%2F` and `%5C` stay
//!    encoded and are never segment separators, so a route for `/a/b` does not see
//!    `/a%2Fb`. A raw `\` is kept as it is and is not a separator either.
//! 4. Repeated slashes are merged (empty segments are dropped).
//! 5. Dot-segments `.` and `..`, including ones produced by decoding `%2e`, are
//!    resolved as in RFC 3986 section 5.2.4; `..` never climbs above the root.
//! 6. A trailing slash is preserved, and a final dot-segment leaves one:
//!    `/a/b/` stays `/a/b/`, `/a/.` becomes `/a/`, `/a/b/..` becomes `/a/`.
//!
//! Non-ASCII characters are passed through unchanged. The output is a fixpoint:
//! normalising it again returns it unchanged, and it never contains `//`, nor a
//! `.` or `..` segment. When the input is already normal the result borrows it, so
//! the common case does not allocate.
//!
//! Known limitation: only the RFC 3986 grammar is applied. Backends with their own
//! path dialects can still read a path differently: a servlet container treats
//! `/public/..;/admin` as `/admin` (here `..;` is an ordinary segment), and some
//! Windows servers split segments at a raw `\`. Routes in front of such backends
//! should not rely on a path prefix alone to deny access.
//!
//! [`normalize_host`] lowercases a `Host` value, strips a `:port` (also after a
//! bracketed IPv6 literal `[v6]:port`) and strips one trailing dot.

use std::borrow::Cow;

/// Why a request path was refused by [`normalize_path`]. Offsets are byte
/// positions in the raw path; the responder maps every variant to `400`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("path does not start with '/'")]
    NotAbsolute,
    #[error("invalid percent-escape at byte {offset}")]
    InvalidEscape { offset: usize },
    #[error("truncated percent-escape at byte {offset}")]
    TruncatedEscape { offset: usize },
    #[error("encoded NUL (%00) at byte {offset}")]
    EncodedNul { offset: usize },
    #[error("control character at byte {offset}")]
    ControlCharacter { offset: usize },
}

/// Normalises the path of a request target; see the module documentation for the
/// rules. Returns `Cow::Borrowed(raw)` when `raw` is already normal.
///
/// ```
/// use portico::router::normalize_path;
///
/// assert_eq!(normalize_path("/public/../%61dmin").unwrap(), "/admin");
/// assert_eq!(normalize_path("//a/./b/../c/").unwrap(), "/a/c/");
/// assert_eq!(normalize_path("/a%2fb").unwrap(), "/a%2Fb");
/// assert!(normalize_path("/%zz").is_err());
/// ```
pub fn normalize_path(raw: &str) -> Result<Cow<'_, str>, NormalizeError> {
    if scan(raw)? {
        Ok(Cow::Owned(resolve_segments(&decode_unreserved(raw))))
    } else {
        Ok(Cow::Borrowed(raw))
    }
}

/// Normalises a `Host` header or authority: lowercase, no `:port`, no trailing
/// dot. An unbracketed value with several colons (a bare IPv6 literal) keeps
/// them, since no port can be told apart. Never fails; it borrows when it can.
pub fn normalize_host(raw: &str) -> Cow<'_, str> {
    let host = strip_port(raw);
    let host = if host.starts_with('[') {
        host
    } else {
        host.strip_suffix('.').unwrap_or(host)
    };
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    }
}

fn strip_port(raw: &str) -> &str {
    if raw.starts_with('[') {
        return match raw.find(']') {
            Some(end) => &raw[..=end],
            None => raw,
        };
    }
    match raw.split_once(':') {
        Some((name, port)) if !port.contains(':') => name,
        _ => raw,
    }
}

/// Validates `raw` and reports whether rewriting it would change it.
fn scan(raw: &str) -> Result<bool, NormalizeError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(NormalizeError::NotAbsolute);
    }
    let mut dirty = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'%' => {
                let (value, lowercase) = escape_at(bytes, i)?;
                if value == 0 {
                    return Err(NormalizeError::EncodedNul { offset: i });
                }
                dirty |= lowercase || is_unreserved(value);
                i += 3;
                continue;
            }
            b'/' => dirty |= starts_removable_segment(&bytes[i + 1..]),
            0x00..=0x1F | 0x7F => return Err(NormalizeError::ControlCharacter { offset: i }),
            0xC2 if matches!(bytes.get(i + 1), Some(0x80..=0x9F)) => {
                return Err(NormalizeError::ControlCharacter { offset: i });
            }
            _ => {}
        }
        i += 1;
    }
    Ok(dirty)
}

/// Whether the text after a '/' begins with an empty, `.` or `..` segment.
fn starts_removable_segment(rest: &[u8]) -> bool {
    let segment_end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    match &rest[..segment_end] {
        b"" => segment_end < rest.len(),
        b"." | b".." => true,
        _ => false,
    }
}

/// Decodes the escape starting at `bytes[at]` (a '%'); also says whether it used
/// lowercase hex digits.
fn escape_at(bytes: &[u8], at: usize) -> Result<(u8, bool), NormalizeError> {
    let (Some(&hi), Some(&lo)) = (bytes.get(at + 1), bytes.get(at + 2)) else {
        let truncated = bytes[at + 1..].iter().all(u8::is_ascii_hexdigit);
        return Err(if truncated {
            NormalizeError::TruncatedEscape { offset: at }
        } else {
            NormalizeError::InvalidEscape { offset: at }
        });
    };
    match (hex_value(hi), hex_value(lo)) {
        (Some(h), Some(l)) => Ok((
            (h << 4) | l,
            hi.is_ascii_lowercase() || lo.is_ascii_lowercase(),
        )),
        _ => Err(NormalizeError::InvalidEscape { offset: at }),
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes unreserved escapes and uppercases the others. Expects input that
/// [`scan`] accepted; an escape it cannot parse is copied through untouched.
fn decode_unreserved(raw: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let escape = rest.get(pos..pos + 3).map(str::as_bytes);
        match escape.and_then(|e| escape_at(e, 0).ok()) {
            Some((value, _)) if is_unreserved(value) => out.push(char::from(value)),
            Some((value, _)) => {
                out.push('%');
                out.push(char::from(HEX[usize::from(value >> 4)]));
                out.push(char::from(HEX[usize::from(value & 0x0F)]));
            }
            None => {
                out.push('%');
                rest = &rest[pos + 1..];
                continue;
            }
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    out
}

/// Merges slashes and resolves dot-segments of a path starting with '/'.
fn resolve_segments(path: &str) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/').skip(1) {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            name => kept.push(name),
        }
    }
    let mut out = String::with_capacity(path.len());
    for name in &kept {
        out.push('/');
        out.push_str(name);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
