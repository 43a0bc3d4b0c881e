//! How long a stored response stays fresh and how old it already is
//! (RFC 9111 sections 4.2.1 to 4.2.3), worked out by Portico because
//! Pingora's `resp_cacheable` measures `Expires` against the gateway's clock
//! instead of the response's `Date`, ignores the `Age` an upstream (or a
//! cache behind it) reports, and has no heuristic freshness.

use std::time::{Duration, SystemTime};

use http::header::{AGE, DATE, EXPIRES, LAST_MODIFIED};
use http::HeaderMap;
use httpdate::HttpDate;
use pingora::cache::cache_control::{CacheControl, InterpretCacheControl};

/// Statuses RFC 9110 section 15.1 calls heuristically cacheable.
const HEURISTIC_STATUSES: [u16; 12] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// The fraction of the time since `Last-Modified` a response may be
/// considered fresh without explicit freshness: RFC 9111 section 4.2.2
/// suggests a tenth, as Apache httpd and Squid use.
const LAST_MODIFIED_DIVISOR: u32 = 10;

/// What the route allows when the upstream states no freshness.
#[derive(Debug, Clone, Copy)]
pub struct Heuristics {
    /// The operator's lifetime for responses without explicit freshness.
    pub default_ttl: Option<Duration>,
    /// The most a `Last-Modified` heuristic may grant; zero turns it off.
    pub last_modified_max: Duration,
}

/// A response's caching directives and where they were read.
#[derive(Debug, Clone, Copy)]
pub struct Directives<'a> {
    pub cc: Option<&'a CacheControl>,
    /// Read from a targeted field such as `CDN-Cache-Control` (RFC 9213
    /// section 2.1), which stands in for `Expires` as well as
    /// `Cache-Control`.
    pub targeted: bool,
}

/// A response's freshness lifetime and the age it arrived with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    pub lifetime: Duration,
    pub age: Duration,
}

impl Freshness {
    /// Works out freshness at `now`, the time the response arrived; `None`
    /// when the response states none and no heuristic applies, so it is not
    /// stored.
    pub fn of(
        status: u16,
        headers: &HeaderMap,
        directives: Directives<'_>,
        heuristics: Heuristics,
        now: SystemTime,
    ) -> Option<Freshness> {
        // A missing or unreadable Date is replaced by the time it arrived
        // (RFC 9110 section 6.6.1).
        let date = single_date(headers, &DATE)
            .and_then(Result::ok)
            .unwrap_or(now);
        let lifetime = explicit(headers, directives, date)
            .or_else(|| heuristic(status, headers, directives.cc, heuristics, date))?;
        Some(Freshness {
            lifetime,
            age: initial_age(headers, date, now),
        })
    }

    /// The `(created, fresh_until)` pair Pingora's metadata wants: created
    /// is moved back by the age the response arrived with, so the `Age`
    /// Pingora sends on hits counts it too.
    pub fn times(&self, now: SystemTime) -> (SystemTime, SystemTime) {
        // Not before 1970: Pingora cannot store an earlier time.
        let created = (now.checked_sub(self.age))
            .filter(|t| *t >= SystemTime::UNIX_EPOCH)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        // Past any date a client will see, when the sum overflows.
        let expiry = (created.checked_add(self.lifetime))
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        let fresh_until = if self.lifetime > self.age {
            expiry
        } else {
            // Already stale: no later than one second back, because Pingora
            // counts a response fresh up to and including its `fresh_until`
            // and measures the stale-serving windows from it.
            let second_ago = now.checked_sub(Duration::from_secs(1));
            expiry.min(second_ago.unwrap_or(SystemTime::UNIX_EPOCH))
        };
        (created, fresh_until)
    }
}

/// `s-maxage`, then `max-age`, then `Expires` minus `Date` (section 4.2.1).
/// `no-cache` makes the response stale from the start; an `Expires` that is
/// unreadable or given twice means already expired (section 5.3).
/// A targeted field leaves `Expires` out.
fn explicit(headers: &HeaderMap, directives: Directives<'_>, date: SystemTime) -> Option<Duration> {
    if let Some(cc) = directives.cc {
        if let Some(ttl) = cc.fresh_duration() {
            return Some(ttl);
        }
        // A lifetime that does not parse (`max-age=-1`, `max-age=1.5`) is
        // stale from the start (section 4.2.1), never left to a heuristic.
        if cc.has_key("max-age") || cc.has_key("s-maxage") {
            return Some(Duration::ZERO);
        }
    }
    if directives.targeted {
        return None;
    }
    match single_date(headers, &EXPIRES)? {
        Ok(expires) => Some(expires.duration_since(date).unwrap_or(Duration::ZERO)),
        Err(()) => Some(Duration::ZERO),
    }
}

/// Heuristic freshness (section 4.2.2), only for heuristically cacheable
/// statuses or responses marked `public`: the route's `default_ttl` when it
/// has one, else a tenth of the time since `Last-Modified`, capped.
fn heuristic(
    status: u16,
    headers: &HeaderMap,
    cc: Option<&CacheControl>,
    heuristics: Heuristics,
    date: SystemTime,
) -> Option<Duration> {
    let public = cc.is_some_and(|cc| cc.public());
    if !public && !HEURISTIC_STATUSES.contains(&status) {
        return None;
    }
    if let Some(ttl) = heuristics.default_ttl {
        return Some(ttl);
    }
    if heuristics.last_modified_max.is_zero() {
        return None;
    }
    let modified = single_date(headers, &LAST_MODIFIED)?.ok()?;
    let since = date.duration_since(modified).ok()?;
    Some((since / LAST_MODIFIED_DIVISOR).min(heuristics.last_modified_max))
}

/// The age the response already had when it arrived (section 4.2.3,
/// without the request's round trip): the larger of its `Age` and how far
/// its `Date` lies behind our clock.
fn initial_age(headers: &HeaderMap, date: SystemTime, now: SystemTime) -> Duration {
    let apparent = now.duration_since(date).unwrap_or(Duration::ZERO);
    apparent.max(Duration::from_secs(age_value(headers).unwrap_or(0)))
}

/// The `Age` header as delta-seconds. Of several values (a list or
/// repeated lines) the first counts, as a recipient of a single-value field
/// sent as a list may do; an invalid value is ignored (section 5.1), one too
/// large to count saturates.
fn age_value(headers: &HeaderMap) -> Option<u64> {
    let line = headers.get(AGE)?.to_str().ok()?;
    let value = line.split(',').next()?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        value
            .parse::<u64>()
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX)),
    )
}

/// A date header given exactly once: `Ok` when it parses as an HTTP date,
/// `Err` when it is present but unusable (repeated or malformed).
fn single_date(headers: &HeaderMap, name: &http::HeaderName) -> Option<Result<SystemTime, ()>> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return Some(Err(()));
    }
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<HttpDate>().ok())
            .map(SystemTime::from)
            .ok_or(()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn date(secs: u64) -> String {
        httpdate::fmt_http_date(at(secs))
    }

    fn fresh(status: u16, fields: &[(&str, String)], h: Heuristics) -> Option<Freshness> {
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            headers.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let mut resp = pingora::http::ResponseHeader::build(status, None).unwrap();
        for (name, value) in &headers {
            resp.append_header(name.clone(), value.clone()).unwrap();
        }
        let cc = CacheControl::from_resp_headers(&resp);
        let directives = Directives {
            cc: cc.as_ref(),
            targeted: false,
        };
        Freshness::of(status, &headers, directives, h, at(NOW))
    }

    const NO_HEURISTIC: Heuristics = Heuristics {
        default_ttl: None,
        last_modified_max: Duration::ZERO,
    };
    const HOUR_CAP: Heuristics = Heuristics {
        default_ttl: None,
        last_modified_max: Duration::from_secs(3600),
    };

    fn secs(lifetime: u64, age: u64) -> Option<Freshness> {
        Some(Freshness {
            lifetime: Duration::from_secs(lifetime),
            age: Duration::from_secs(age),
        })
    }

    #[test]
    fn s_maxage_wins_over_max_age_and_max_age_over_expires() {
        let both = [("cache-control", "max-age=10, s-maxage=20".to_string())];
        assert_eq!(fresh(200, &both, NO_HEURISTIC), secs(20, 0));
        let cc_and_expires = [
            ("cache-control", "max-age=10".to_string()),
            ("expires", date(NOW + 500)),
        ];
        assert_eq!(fresh(200, &cc_and_expires, NO_HEURISTIC), secs(10, 0));
    }

    #[test]
    fn expires_counts_from_the_date_header_and_bad_expires_means_expired() {
        let skewed = [("date", date(NOW + 3600)), ("expires", date(NOW + 3630))];
        assert_eq!(fresh(200, &skewed, NO_HEURISTIC), secs(30, 0));
        assert_eq!(
            fresh(200, &[("expires", "0".into())], NO_HEURISTIC),
            secs(0, 0)
        );
        let twice = [("expires", date(NOW + 60)), ("expires", date(NOW + 60))];
        assert_eq!(fresh(200, &twice, NO_HEURISTIC), secs(0, 0));
    }

    #[test]
    fn age_is_the_larger_of_the_age_header_and_the_dates_lag() {
        let cc = ("cache-control", "max-age=100".to_string());
        assert_eq!(
            fresh(200, &[cc.clone(), ("age", "30".into())], NO_HEURISTIC),
            secs(100, 30)
        );
        let lagging = [cc.clone(), ("age", "5".into()), ("date", date(NOW - 40))];
        assert_eq!(fresh(200, &lagging, NO_HEURISTIC), secs(100, 40));
        let first = [cc.clone(), ("age", "50, 0".into()), ("age", "7".into())];
        assert_eq!(fresh(200, &first, NO_HEURISTIC), secs(100, 50));
        for bad in ["-1", "1.5", "", "abc", "3a"] {
            assert_eq!(
                fresh(200, &[cc.clone(), ("age", bad.into())], NO_HEURISTIC),
                secs(100, 0)
            );
        }
        let huge = [cc, ("age", "99999999999999999999999".into())];
        assert_eq!(
            fresh(200, &huge, NO_HEURISTIC),
            secs(100, u64::from(u32::MAX))
        );
    }

    #[test]
    fn last_modified_gives_a_tenth_of_its_age_up_to_the_cap_for_cacheable_statuses() {
        let lm = |ago: u64| [("date", date(NOW)), ("last-modified", date(NOW - ago))];
        assert_eq!(fresh(200, &lm(1000), HOUR_CAP), secs(100, 0));
        assert_eq!(fresh(200, &lm(1_000_000), HOUR_CAP), secs(3600, 0));
        assert_eq!(fresh(200, &lm(1000), NO_HEURISTIC), None);
        assert_eq!(fresh(302, &lm(1000), HOUR_CAP), None);
        let public = [("cache-control", "public".to_string()), lm(1000)[1].clone()];
        assert_eq!(fresh(302, &public, HOUR_CAP), secs(100, 0));
        // Modified "after" its Date: no heuristic.
        let future = [("date", date(NOW)), ("last-modified", date(NOW + 5))];
        assert_eq!(fresh(200, &future, HOUR_CAP), None);
    }

    #[test]
    fn default_ttl_comes_before_the_last_modified_heuristic() {
        let h = Heuristics {
            default_ttl: Some(Duration::from_secs(7)),
            ..HOUR_CAP
        };
        let lm = [("last-modified", date(NOW - 1000))];
        assert_eq!(fresh(200, &lm, h), secs(7, 0));
        assert_eq!(fresh(307, &lm, h), None);
    }

    #[test]
    fn no_cache_is_stored_stale_and_times_place_a_stale_response_in_the_past() {
        let f = fresh(200, &[("cache-control", "no-cache".into())], NO_HEURISTIC).unwrap();
        let (created, until) = f.times(at(NOW));
        assert_eq!(created, at(NOW));
        assert!(until < at(NOW));
        let aged = secs(100, 30).unwrap();
        assert_eq!(aged.times(at(NOW)), (at(NOW - 30), at(NOW + 70)));
    }

    #[test]
    fn a_response_arriving_stale_has_its_stale_windows_already_running() {
        // A minute of freshness, but it arrived a day old: it went stale
        // 86,340 s ago, which is where stale-if-error is measured from.
        let old = secs(60, 86_400).unwrap();
        assert_eq!(old.times(at(NOW)), (at(NOW - 86_400), at(NOW - 86_340)));
    }

    #[test]
    fn ages_and_lifetimes_too_large_for_the_clock_saturate() {
        let (created, until) = secs(60, 4_000_000_000).unwrap().times(at(NOW));
        assert_eq!(created, SystemTime::UNIX_EPOCH);
        assert!(until < at(NOW));
        let (_, until) = secs(u64::MAX, 0).unwrap().times(at(NOW));
        assert!(until > at(NOW + 50 * 365 * 86_400));
    }

    #[test]
    fn an_unreadable_lifetime_is_stale_at_once_not_left_to_the_heuristic() {
        let lm = ("last-modified", date(NOW - 86_400));
        for cc in ["max-age=-1", "max-age=1.5", "s-maxage=abc, max-age=600"] {
            let fields = [("cache-control", cc.to_string()), lm.clone()];
            assert_eq!(fresh(200, &fields, HOUR_CAP), secs(0, 0), "{cc}");
        }
    }
}
