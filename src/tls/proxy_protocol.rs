//! The PROXY protocol header (v1 text or v2 binary) that a load balancer in
//! front of Portico sends before the TLS handshake, naming the client it
//! accepted the connection from.
//!
//! The header is read on listeners with `proxy_protocol: true`, which must
//! start every connection with one; a connection without it is closed. The
//! address it declares replaces the socket peer only when that peer is a
//! trusted proxy, so anyone else who writes a header changes nothing.
//! Pingora 0.9 runs this hook only in front of TLS, so cleartext listeners
//! cannot use it (README, "Known limitations").

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, SocketDigest};
use pingora::{Error, ErrorType, Result};
use tokio::io::AsyncReadExt;

use crate::gateway::SharedSnapshot;

/// The 12 bytes that open a v2 header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 header, line end included (the specification's figure).
const V1_MAX: usize = 107;
/// The most v2 address and TLV bytes accepted; load balancers send far less.
const V2_MAX_BODY: usize = 1024;

/// The pre-TLS hook of the service's TLS listeners.
pub struct ProxyProtocol {
    /// The local addresses of listeners with `proxy_protocol: true`; the
    /// hook runs on every TLS listener of the service and reads only there.
    pub listeners: Vec<SocketAddr>,
    pub snapshot: SharedSnapshot,
    /// How long a connection may take to send its header.
    pub timeout: Duration,
}

#[async_trait]
impl PreTlsProcess for ProxyProtocol {
    async fn process(&self, stream: &mut L4Stream) -> Result<()> {
        let digest = stream.get_socket_digest();
        let local = digest
            .as_ref()
            .and_then(|d| d.local_addr().and_then(PingoraAddr::as_inet).copied());
        let peer = digest
            .as_ref()
            .and_then(|d| d.peer_addr().and_then(PingoraAddr::as_inet).copied());
        let wanted = local.is_some_and(|local| {
            self.listeners.iter().any(|l| {
                l.port() == local.port() && (l.ip() == local.ip() || l.ip().is_unspecified())
            })
        });
        if !wanted {
            return Ok(());
        }
        let header = match tokio::time::timeout(self.timeout, read_header(stream)).await {
            Ok(header) => header?,
            Err(_) => return Error::e_explain(ErrorType::ReadTimedout, "no PROXY protocol header"),
        };
        let Some(source) = source_address(&header)? else {
            // `LOCAL` or `UNKNOWN`: the balancer's own connection, such as a
            // health check; the socket peer stays.
            return Ok(());
        };
        let trusted = peer.is_some_and(|p| self.snapshot.load().is_trusted_proxy(p.ip()));
        if trusted {
            let replaced = SocketDigest::from_raw_fd(stream.as_raw_fd());
            let _ = replaced.peer_addr.set(Some(PingoraAddr::Inet(source)));
            if let Some(local) = local {
                let _ = replaced.local_addr.set(Some(PingoraAddr::Inet(local)));
            }
            stream.set_socket_digest(replaced);
        }
        Ok(())
    }
}

/// Reads exactly the header's bytes, so the TLS handshake that follows
/// starts at the right byte.
async fn read_header(stream: &mut L4Stream) -> Result<Vec<u8>> {
    let refuse = |why: &'static str| Error::e_explain(ErrorType::InvalidHTTPHeader, why);
    // Every header is at least 15 bytes (`PROXY UNKNOWN\r\n`), so 12 are
    // always the header's own.
    let mut buf = vec![0u8; 12];
    read_exact(stream, &mut buf).await?;
    if buf[..] == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        read_exact(stream, &mut fixed).await?;
        buf.extend_from_slice(&fixed);
        let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        if len > V2_MAX_BODY {
            return refuse("PROXY v2 header too long");
        }
        let start = buf.len();
        buf.resize(start + len, 0);
        read_exact(stream, &mut buf[start..]).await?;
        return Ok(buf);
    }
    if !buf.starts_with(b"PROXY ") {
        return refuse("connection does not start with a PROXY protocol header");
    }
    while !buf.ends_with(b"\r\n") {
        if buf.len() >= V1_MAX {
            return refuse("PROXY v1 header too long");
        }
        let mut byte = [0u8; 1];
        read_exact(stream, &mut byte).await?;
        buf.push(byte[0]);
    }
    Ok(buf)
}

async fn read_exact(stream: &mut L4Stream, buf: &mut [u8]) -> Result<()> {
    stream
        .read_exact(buf)
        .await
        .map(|_| ())
        .map_err(|e| Error::because(ErrorType::ReadError, "reading the PROXY protocol header", e))
}

/// The client address a header declares; `None` for `LOCAL` and `UNKNOWN`.
fn source_address(header: &[u8]) -> Result<Option<SocketAddr>> {
    let invalid = || Error::e_explain(ErrorType::InvalidHTTPHeader, "malformed PROXY header");
    match ppp::HeaderResult::parse(header) {
        ppp::HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => Some(inet(a.source_address.into(), a.source_port)),
            ppp::v1::Addresses::Tcp6(a) => Some(inet(a.source_address.into(), a.source_port)),
            ppp::v1::Addresses::Unknown => None,
        }),
        ppp::HeaderResult::V2(Ok(h)) => {
            if h.command == ppp::v2::Command::Local {
                return Ok(None);
            }
            Ok(match h.addresses {
                ppp::v2::Addresses::IPv4(a) => Some(inet(a.source_address.into(), a.source_port)),
                ppp::v2::Addresses::IPv6(a) => Some(inet(a.source_address.into(), a.source_port)),
                ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
            })
        }
        _ => invalid(),
    }
}

fn inet(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_name_their_source_and_local_ones_name_none() {
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n";
        assert_eq!(
            source_address(v1).unwrap(),
            Some("203.0.113.7:51000".parse().unwrap())
        );
        let v1_six = b"PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n";
        assert_eq!(
            source_address(v1_six).unwrap(),
            Some("[2001:db8::7]:51000".parse().unwrap())
        );
        assert_eq!(source_address(b"PROXY UNKNOWN\r\n").unwrap(), None);
        let v2 = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                "198.51.100.9:40000".parse::<SocketAddr>().unwrap(),
                "10.0.0.1:443".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        assert_eq!(
            source_address(&v2).unwrap(),
            Some("198.51.100.9:40000".parse().unwrap())
        );
        let local = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::Protocol::Stream,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(source_address(&local).unwrap(), None);
    }

    #[test]
    fn garbage_and_truncated_headers_are_refused() {
        assert!(source_address(b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n").is_err());
        assert!(source_address(b"PROXY TCP4 203.0.113.7\r\n").is_err());
        assert!(source_address(b"GET / HTTP/1.1\r\n").is_err());
        assert!(source_address(&V2_SIGNATURE).is_err());
    }
}
