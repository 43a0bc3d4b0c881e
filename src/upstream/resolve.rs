//! Turning configured backend addresses into socket addresses.
//!
//! Pingora's `HttpPeer::new` resolves names with the blocking std resolver and
//! panics when that fails, so Portico never hands it a name: every backend is
//! resolved here, on the async resolver, before a snapshot is built.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::config::schema::UpstreamSpec;

/// The resolved addresses of every backend, keyed by its configured address.
pub type Resolved = BTreeMap<String, Vec<SocketAddr>>;

/// Resolves every backend of every pool. Addresses that are already `ip:port`
/// need no lookup. Errors name the pool and the backend.
pub async fn resolve_all(
    upstreams: &BTreeMap<String, UpstreamSpec>,
) -> Result<Resolved, Vec<String>> {
    let mut out = Resolved::new();
    let mut errors = Vec::new();
    for (name, spec) in upstreams {
        for (i, b) in spec.backends.iter().enumerate() {
            if out.contains_key(&b.address) {
                continue;
            }
            match resolve_one(&b.address).await {
                Ok(addrs) => {
                    out.insert(b.address.clone(), addrs);
                }
                Err(e) => errors.push(format!(
                    "upstreams.{name}.backends[{i}].address: cannot resolve {:?} ({e}); \
                     fix: use a name the resolver knows, or an ip:port",
                    b.address
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

async fn resolve_one(address: &str) -> std::io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(address).await?.collect();
    addrs.sort();
    addrs.dedup();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no addresses",
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literal_addresses_need_no_lookup() {
        let addrs = resolve_one("127.0.0.1:8080").await.unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:8080".parse::<SocketAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn localhost_resolves_to_loopback() {
        let addrs = resolve_one("localhost:8080").await.unwrap();
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080));
    }

    #[tokio::test]
    async fn an_unknown_name_is_an_error() {
        assert!(resolve_one("no-such-host.invalid:80").await.is_err());
    }
}
