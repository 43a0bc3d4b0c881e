//! The PROXY protocol in front of TLS: the declared client address is taken
//! only from a trusted peer, a connection without a header is closed, and
//! both header versions are read.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::tls::{certificate_entry, start_gateway, Ca};
use crate::support::{free_port, upstreams_yaml, Gateway, Upstream};

/// A gateway whose one listener is TLS with `proxy_protocol: true`, trusting
/// `trusted` as proxies, in front of `up`; returns it with the CA its
/// certificate chains to.
fn gateway(up: &Upstream, trusted: &str) -> (Gateway, Ca) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("proxy-ca");
    let (cert, key) = ca.server(&["api.test"]).write(dir.path(), "api");
    let port = free_port();
    let listeners = format!(
        "  - address: 127.0.0.1:{port}\n    proxy_protocol: true\n    tls:\n      \
         certificates:\n{}",
        certificate_entry(&cert, &key, &[])
    );
    let rest = format!(
        "trusted_proxies: {trusted}\n{}routes:\n  - id: all\n    match: {{path: {{prefix: /}}}}\n    \
         upstream: app\n",
        upstreams_yaml(&[up])
    );
    (start_gateway(dir, port, &listeners, &rest), ca)
}

/// Writes `preamble` on a new connection, then speaks TLS and sends one GET
/// with an `X-Forwarded-For` of the client's own: the status, or the failure.
async fn exchange(port: u16, ca: &Ca, preamble: &[u8]) -> Result<u16, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let work = async {
        let mut tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        tcp.write_all(preamble).await.map_err(|e| e.to_string())?;
        let name = ServerName::try_from("api.test").unwrap();
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tls.write_all(
            b"GET /who HTTP/1.1\r\nHost: api.test\r\nX-Forwarded-For: 192.0.2.66\r\n\
              Connection: close\r\n\r\n",
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        let head = String::from_utf8_lossy(&answer);
        head.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no response: {head:?}"))
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), work)
        .await
        .map_err(|_| "timed out".to_owned())?
}

fn seen_forwarded_for(up: &Upstream) -> String {
    let headers = up.state.last_headers.lock().unwrap();
    headers
        .get("x-forwarded-for")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_trusted_balancer_s_v1_header_becomes_the_client_address() {
    let up = Upstream::start("app").await;
    let (gw, ca) = gateway(&up, "[127.0.0.1]");
    let header = format!("PROXY TCP4 203.0.113.7 127.0.0.1 51000 {}\r\n", gw.port);
    assert_eq!(exchange(gw.port, &ca, header.as_bytes()).await, Ok(200));
    // The declared client, and not the chain the client wrote itself: the
    // declared address is not a trusted proxy.
    assert_eq!(seen_forwarded_for(&up), "203.0.113.7");
}

#[tokio::test]
async fn a_trusted_balancer_s_v2_header_becomes_the_client_address() {
    let up = Upstream::start("app").await;
    let (gw, ca) = gateway(&up, "[127.0.0.1]");
    let header = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (
            "[2001:db8::7]:40000"
                .parse::<std::net::SocketAddr>()
                .unwrap(),
            "[2001:db8::1]:443".parse::<std::net::SocketAddr>().unwrap(),
        ),
    )
    .build()
    .unwrap();
    assert_eq!(exchange(gw.port, &ca, &header).await, Ok(200));
    assert_eq!(seen_forwarded_for(&up), "2001:db8::7");
}

#[tokio::test]
async fn a_header_from_an_untrusted_peer_changes_nothing() {
    let up = Upstream::start("app").await;
    let (gw, ca) = gateway(&up, "[]");
    let header = format!("PROXY TCP4 203.0.113.7 127.0.0.1 51000 {}\r\n", gw.port);
    assert_eq!(exchange(gw.port, &ca, header.as_bytes()).await, Ok(200));
    assert_eq!(seen_forwarded_for(&up), "127.0.0.1");
}

#[tokio::test]
async fn a_connection_without_a_header_or_with_a_broken_one_is_closed_unanswered() {
    let up = Upstream::start("app").await;
    let (gw, ca) = gateway(&up, "[127.0.0.1]");
    let refused = exchange(gw.port, &ca, b"").await;
    assert!(refused.is_err(), "{refused:?}");
    let refused = exchange(gw.port, &ca, b"PROXY TCP4 not-an-address\r\n").await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(up.hits(), 0);
    // The listener still serves a well-formed connection afterwards.
    let header = format!("PROXY TCP4 203.0.113.9 127.0.0.1 51000 {}\r\n", gw.port);
    assert_eq!(exchange(gw.port, &ca, header.as_bytes()).await, Ok(200));
}

#[test]
fn proxy_protocol_on_a_cleartext_listener_is_refused_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("p.yaml");
    std::fs::write(
        &conf,
        "version: 1\nlisteners:\n  - address: 127.0.0.1:1\n    proxy_protocol: true\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["check", "-c"])
        .arg(&conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("listeners[0].proxy_protocol: the PROXY protocol is read only"),
        "{stderr}"
    );
}
