//! IP allow and deny lists, checked against the client address that the
//! trusted-proxy rule produced (the socket peer unless that peer is a trusted
//! proxy), so a spoofed `X-Forwarded-For` from anyone else changes nothing.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use iprange::IpRange;

use crate::config::schema::IpFilterSpec;

/// One compiled `ip_filter`: each list as merged ranges, looked up in
/// logarithmic time whatever its length.
#[derive(Debug, Clone, Default)]
pub struct IpFilter {
    allow: Option<Ranges>,
    deny: Ranges,
}

#[derive(Debug, Clone, Default)]
struct Ranges {
    v4: IpRange<Ipv4Net>,
    v6: IpRange<Ipv6Net>,
}

impl Ranges {
    fn new(nets: &[IpNet]) -> Ranges {
        let mut ranges = Ranges::default();
        for net in nets {
            match net.trunc() {
                IpNet::V4(v4) => {
                    ranges.v4.add(v4);
                }
                IpNet::V6(v6) => {
                    ranges.v6.add(v6);
                }
            }
        }
        ranges.v4.simplify();
        ranges.v6.simplify();
        ranges
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => self.v4.contains(&v4),
            // An IPv4-mapped IPv6 address (a dual-stack listener's view of an
            // IPv4 client) is the IPv4 client: it matches the IPv4 lists too.
            IpAddr::V6(v6) => {
                self.v6.contains(&v6) || v6.to_ipv4_mapped().is_some_and(|v4| self.v4.contains(&v4))
            }
        }
    }
}

impl IpFilter {
    pub fn new(spec: &IpFilterSpec) -> IpFilter {
        IpFilter {
            allow: (!spec.allow.is_empty()).then(|| Ranges::new(&spec.allow)),
            deny: Ranges::new(&spec.deny),
        }
    }

    /// Whether `client` may pass: not denied, and allowed when an allow list
    /// exists. A request without a known client address (a Unix socket
    /// peer) passes only a filter with no allow list.
    pub fn admits(&self, client: Option<IpAddr>) -> bool {
        match client {
            Some(ip) => {
                !self.deny.contains(ip) && self.allow.as_ref().is_none_or(|a| a.contains(ip))
            }
            None => self.allow.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(allow: &[&str], deny: &[&str]) -> IpFilter {
        let nets = |list: &[&str]| list.iter().map(|n| n.parse().unwrap()).collect();
        IpFilter::new(&IpFilterSpec {
            allow: nets(allow),
            deny: nets(deny),
        })
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn an_allow_list_admits_only_its_networks_in_both_families() {
        let f = filter(&["10.0.0.0/8", "2001:db8::/32"], &[]);
        assert!(f.admits(ip("10.1.2.3")));
        assert!(f.admits(ip("2001:db8::1")));
        assert!(!f.admits(ip("11.0.0.1")));
        assert!(!f.admits(ip("2001:db9::1")));
        assert!(!f.admits(None));
    }

    #[test]
    fn deny_wins_over_allow() {
        let f = filter(&["10.0.0.0/8"], &["10.9.0.0/16"]);
        assert!(f.admits(ip("10.8.255.255")));
        assert!(!f.admits(ip("10.9.0.1")));
    }

    #[test]
    fn a_deny_list_alone_admits_everything_else() {
        let f = filter(&[], &["192.0.2.7/32"]);
        assert!(!f.admits(ip("192.0.2.7")));
        assert!(f.admits(ip("192.0.2.8")));
        assert!(f.admits(None));
    }

    #[test]
    fn an_ipv4_mapped_address_is_judged_as_its_ipv4_client() {
        let f = filter(&["192.0.2.0/24"], &[]);
        assert!(f.admits(ip("::ffff:192.0.2.10")));
        assert!(!f.admits(ip("::ffff:198.51.100.1")));
    }

    #[test]
    fn networks_with_host_bits_set_cover_their_whole_network() {
        let f = filter(&["10.1.2.3/16"], &[]);
        assert!(f.admits(ip("10.1.200.1")));
    }
}
