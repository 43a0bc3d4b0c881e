//! Request size caps: the target, the header fields, and the body, both as
//! declared by `Content-Length` and as it streams.

use pingora::http::RequestHeader;

use crate::config::schema::LimitsSpec;

/// Built-in caps, for a field neither the route nor the file sets. The target
/// cap is nginx's default request-line buffer, the header count Apache's
/// `LimitRequestFields`, the header bytes Envoy's default header-size cap.
pub const DEFAULT_MAX_URI_BYTES: u64 = 8 * 1024;
pub const DEFAULT_MAX_HEADERS: usize = 100;
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 60 * 1024;

/// One route's effective caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_uri_bytes: u64,
    pub max_headers: usize,
    pub max_header_bytes: u64,
    pub max_body_bytes: Option<u64>,
}

/// Which cap a request passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    Uri,
    Headers,
    Body,
}

impl Limits {
    /// The caps of a route: each field from the route, else the file, else
    /// the built-in default.
    pub fn merged(file: Option<&LimitsSpec>, route: Option<&LimitsSpec>) -> Limits {
        let pick = |get: fn(&LimitsSpec) -> Option<u64>| {
            route.and_then(get).or_else(|| file.and_then(get))
        };
        Limits {
            max_uri_bytes: pick(|l| l.max_uri_bytes.map(|s| s.0)).unwrap_or(DEFAULT_MAX_URI_BYTES),
            max_headers: route
                .and_then(|l| l.max_headers)
                .or_else(|| file.and_then(|l| l.max_headers))
                .unwrap_or(DEFAULT_MAX_HEADERS),
            max_header_bytes: pick(|l| l.max_header_bytes.map(|s| s.0))
                .unwrap_or(DEFAULT_MAX_HEADER_BYTES),
            max_body_bytes: pick(|l| l.max_body_bytes.map(|s| s.0)),
        }
    }

    /// Checks the target, the header fields and a declared body length.
    /// The target is measured as received, before normalisation.
    pub fn check_head(&self, req: &RequestHeader) -> Result<(), Exceeded> {
        if req.raw_path().len() as u64 > self.max_uri_bytes {
            return Err(Exceeded::Uri);
        }
        if req.headers.len() > self.max_headers {
            return Err(Exceeded::Headers);
        }
        let header_bytes: u64 = req
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().len() + value.len()) as u64)
            .sum();
        if header_bytes > self.max_header_bytes {
            return Err(Exceeded::Headers);
        }
        match (self.max_body_bytes, declared_length(req)) {
            (Some(cap), Some(length)) if length > cap => Err(Exceeded::Body),
            _ => Ok(()),
        }
    }

    /// Whether a body of `seen` bytes so far is still within the cap.
    #[inline]
    pub fn body_within(&self, seen: u64) -> bool {
        self.max_body_bytes.is_none_or(|cap| seen <= cap)
    }
}

/// The `Content-Length` of a request, when it declares one that parses.
/// Pingora has already refused conflicting or malformed values.
pub fn declared_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::Size;

    fn request(target: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        for (name, value) in headers {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    #[test]
    fn route_fields_override_file_fields_one_by_one_over_the_defaults() {
        let file = LimitsSpec {
            max_uri_bytes: Some(Size(100)),
            max_body_bytes: Some(Size(10)),
            ..Default::default()
        };
        let route = LimitsSpec {
            max_body_bytes: Some(Size(20)),
            ..Default::default()
        };
        let limits = Limits::merged(Some(&file), Some(&route));
        assert_eq!(limits.max_uri_bytes, 100);
        assert_eq!(limits.max_body_bytes, Some(20));
        assert_eq!(limits.max_headers, DEFAULT_MAX_HEADERS);
        assert_eq!(Limits::merged(None, None).max_body_bytes, None);
    }

    #[test]
    fn each_cap_is_reported_by_name() {
        let limits = Limits {
            max_uri_bytes: 10,
            max_headers: 2,
            max_header_bytes: 30,
            max_body_bytes: Some(5),
        };
        assert_eq!(limits.check_head(&request("/short", &[])), Ok(()));
        assert_eq!(
            limits.check_head(&request("/much-too-long", &[])),
            Err(Exceeded::Uri)
        );
        let many = [("a", "1"), ("b", "2"), ("c", "3")];
        assert_eq!(
            limits.check_head(&request("/", &many)),
            Err(Exceeded::Headers)
        );
        let big = [("a", "0123456789012345678901234567890")];
        assert_eq!(
            limits.check_head(&request("/", &big)),
            Err(Exceeded::Headers)
        );
        let declared = [("content-length", "6")];
        assert_eq!(
            limits.check_head(&request("/", &declared)),
            Err(Exceeded::Body)
        );
        assert!(limits.body_within(5));
        assert!(!limits.body_within(6));
    }
}
