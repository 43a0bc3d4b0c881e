//! The cache key: the URL as the gateway serves it (scheme, host, port,
//! normalised path, query with its parameters in a stable order), then the
//! parts the route adds (request headers, cookies, the consumer).
//!
//! A key without the host once let one site's response be served for
//! another; here the host and port are always in it. The URL comes first so
//! that the admin listener can purge by URL and by URL prefix. Added parts
//! follow a newline, which no URL, header value or cookie holds, so no part
//! can be made to read as another.

use std::borrow::Cow;

use crate::config::schema::{IgnoreQuery, RouteCacheSpec};

/// What a key is built from, taken from the request by the proxy.
pub struct KeyInput<'a> {
    pub https: bool,
    /// Lowercase host without a port.
    pub host: &'a str,
    pub port: u16,
    /// The normalised path.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    pub consumer: Option<&'a str>,
}

/// The URL part of the key, as the admin listener's purge takes it.
pub fn url(input: &KeyInput<'_>, ignore: &IgnoreQuery) -> String {
    let scheme = if input.https { "https" } else { "http" };
    let mut url = format!("{scheme}://{}:{}{}", input.host, input.port, input.path);
    if let Some(query) = input.query.map(|q| normalise_query(q, ignore)) {
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
    }
    url
}

/// The whole primary key of a request on a route with `spec`.
pub fn primary(input: &KeyInput<'_>, spec: &RouteCacheSpec) -> String {
    let mut key = url(input, &spec.key.ignore_query);
    for name in &spec.key.headers {
        key.push_str("\nh:");
        key.push_str(name);
        key.push('=');
        for (i, value) in input.headers.get_all(name.as_str()).iter().enumerate() {
            if i > 0 {
                key.push(',');
            }
            key.push_str(&String::from_utf8_lossy(value.as_bytes()));
        }
    }
    for name in &spec.key.cookies {
        key.push_str("\nc:");
        key.push_str(name);
        key.push('=');
        if let Some(value) = cookie(input.headers, name) {
            key.push_str(&value);
        }
    }
    if spec.key.consumer {
        key.push_str("\nu:");
        key.push_str(input.consumer.unwrap_or(""));
    }
    key
}

/// The query without the ignored parameters, sorted by name; parameters of
/// one name keep their order, as applications read repeated ones in order.
fn normalise_query<'a>(query: &'a str, ignore: &IgnoreQuery) -> Cow<'a, str> {
    let names = match ignore {
        IgnoreQuery::All(true) => return Cow::Borrowed(""),
        IgnoreQuery::All(false) => &[][..],
        IgnoreQuery::Names(names) => &names[..],
    };
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split_once('=').map_or(*p, |(n, _)| n);
            !names.iter().any(|n| n == name)
        })
        .collect();
    pairs.sort_by_key(|p| p.split_once('=').map_or(*p, |(n, _)| n));
    Cow::Owned(pairs.join("&"))
}

/// The value of cookie `name`, from every `Cookie` field of the request.
fn cookie(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::CacheKeySpec;

    fn input<'a>(
        host: &'a str,
        query: Option<&'a str>,
        headers: &'a http::HeaderMap,
    ) -> KeyInput<'a> {
        KeyInput {
            https: false,
            host,
            port: 8080,
            path: "/items",
            query,
            headers,
            consumer: Some("alice"),
        }
    }

    #[test]
    fn the_url_holds_scheme_host_port_and_a_sorted_query() {
        let h = http::HeaderMap::new();
        let all = IgnoreQuery::All(false);
        assert_eq!(
            url(&input("a.example", Some("b=2&a=1&b=1"), &h), &all),
            "http://a.example:8080/items?a=1&b=2&b=1"
        );
        assert_ne!(
            url(&input("a.example", None, &h), &all),
            url(&input("b.example", None, &h), &all)
        );
    }

    #[test]
    fn ignored_query_parameters_leave_the_key() {
        let h = http::HeaderMap::new();
        let some = IgnoreQuery::Names(vec!["utm_source".into()]);
        assert_eq!(
            url(&input("a", Some("utm_source=x&id=3"), &h), &some),
            "http://a:8080/items?id=3"
        );
        assert_eq!(
            url(&input("a", Some("id=3"), &h), &IgnoreQuery::All(true)),
            "http://a:8080/items"
        );
    }

    #[test]
    fn keyed_headers_cookies_and_the_consumer_follow_the_url() {
        let mut h = http::HeaderMap::new();
        h.insert("x-tenant", "t1".parse().unwrap());
        h.insert("cookie", "a=1; lang=fr".parse().unwrap());
        let spec: RouteCacheSpec = serde_norway::from_str("{}").unwrap();
        let spec = RouteCacheSpec {
            key: CacheKeySpec {
                headers: vec!["x-tenant".into()],
                cookies: vec!["lang".into()],
                consumer: true,
                ignore_query: IgnoreQuery::All(false),
            },
            ..spec
        };
        assert_eq!(
            primary(&input("a", None, &h), &spec),
            "http://a:8080/items\nh:x-tenant=t1\nc:lang=fr\nu:alice"
        );
    }
}
