//! Backend choice: the weighted round-robin schedule, the consistent-hash key,
//! and the helpers behind power-of-two-choices.

use crate::config::schema::HashKeySpec;

/// Where a consistent-hash key comes from, compiled from [`HashKeySpec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    ClientIp,
    Path,
    Header(http::HeaderName),
    Cookie(String),
}

impl HashKey {
    /// Compiles a validated spec. Header names were checked by validation; an
    /// invalid one here falls back to hashing the path, which `validate` rules out.
    pub fn from_spec(spec: &HashKeySpec) -> HashKey {
        match spec {
            HashKeySpec::ClientIp => HashKey::ClientIp,
            HashKeySpec::Path => HashKey::Path,
            HashKeySpec::Header(name) => match http::HeaderName::from_bytes(name.as_bytes()) {
                Ok(h) => HashKey::Header(h),
                Err(_) => HashKey::Path,
            },
            HashKeySpec::Cookie(name) => HashKey::Cookie(name.clone()),
        }
    }

    /// The key bytes for one request. A missing header or cookie yields an
    /// empty key, which still hashes to one stable backend.
    pub fn extract<'a>(
        &self,
        client_ip: &'a str,
        path: &'a str,
        headers: &'a http::HeaderMap,
    ) -> &'a [u8] {
        match self {
            HashKey::ClientIp => client_ip.as_bytes(),
            HashKey::Path => path.as_bytes(),
            HashKey::Header(name) => headers.get(name).map(|v| v.as_bytes()).unwrap_or(b""),
            HashKey::Cookie(name) => cookie_value(headers, name).unwrap_or(b""),
        }
    }
}

/// Finds one cookie's value in the `Cookie` headers.
fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a [u8]> {
    for value in headers.get_all(http::header::COOKIE) {
        for pair in value.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            if let Some(rest) = pair.strip_prefix(name.as_bytes()) {
                if let Some(v) = rest.strip_prefix(b"=") {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// Longest weighted round-robin schedule kept; larger weight sums are scaled.
const MAX_SCHEDULE: u64 = 4096;

/// A smooth weighted round-robin order of backend indexes: over one pass each
/// backend appears in proportion to its weight, spread out rather than in runs.
pub fn wrr_schedule(weights: &[u32]) -> Vec<u16> {
    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
    let scaled: Vec<i64> = if total > MAX_SCHEDULE {
        weights
            .iter()
            .map(|w| ((u64::from(*w) * MAX_SCHEDULE / total).max(1)) as i64)
            .collect()
    } else {
        weights.iter().map(|w| i64::from(*w)).collect()
    };
    let sum: i64 = scaled.iter().sum();
    let mut current = vec![0i64; scaled.len()];
    let mut out = Vec::with_capacity(sum as usize);
    for _ in 0..sum {
        let mut best = 0;
        for i in 0..scaled.len() {
            current[i] += scaled[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= sum;
        out.push(best as u16);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_gives_each_backend_its_weight() {
        let s = wrr_schedule(&[5, 1, 1]);
        assert_eq!(s.len(), 7);
        assert_eq!(s.iter().filter(|i| **i == 0).count(), 5);
        assert_eq!(s.iter().filter(|i| **i == 1).count(), 1);
    }

    #[test]
    fn schedule_spreads_the_heavy_backend_out() {
        let s = wrr_schedule(&[2, 1]);
        assert_eq!(s, vec![0, 1, 0]);
    }

    #[test]
    fn huge_weights_are_scaled_but_keep_their_ratio() {
        let s = wrr_schedule(&[3_000_000, 1_000_000]);
        assert!(s.len() as u64 <= MAX_SCHEDULE);
        let zeros = s.iter().filter(|i| **i == 0).count() as f64;
        assert!((zeros / s.len() as f64 - 0.75).abs() < 0.01);
    }

    #[test]
    fn cookie_value_is_found_among_several() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            "a=1; session=xyz; b=2".parse().unwrap(),
        );
        let key = HashKey::Cookie("session".into());
        assert_eq!(key.extract("", "", &h), b"xyz");
        let missing = HashKey::Cookie("sess".into());
        assert_eq!(missing.extract("", "", &h), b"");
    }
}
