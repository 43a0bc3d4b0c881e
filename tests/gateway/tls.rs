//! TLS with the real binary: certificates chosen by SNI, protocol versions
//! and ALPN, HTTPS redirects and HSTS, mutual TLS and the identity read from
//! client certificates, TLS to the upstreams, and the problems `portico
//! check` finds in TLS files. Every CA, certificate and key is made when the
//! test runs.

use std::net::TcpStream as StdTcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustls::ProtocolVersion;

use crate::support::raw::{self, RawResponse};
use crate::support::tls::{
    certificate_entry, start_gateway, write, Ca, San, TlsClient, TlsUpstream,
};
use crate::support::{client, eventually, free_port, upstreams_yaml, Gateway, Upstream};

// ---- config pieces ----

/// A TLS listener on `port` with the `certificates:` entries `certs` and
/// `extra` (more keys of `tls:`, indented six spaces) after them.
fn tls_listener(port: u16, certs: &str, extra: &str) -> String {
    format!("  - address: 127.0.0.1:{port}\n    tls:\n      certificates:\n{certs}{extra}")
}

fn cleartext_listener(port: u16) -> String {
    format!("  - address: 127.0.0.1:{port}\n")
}

/// `up`'s pool and one route sending everything to it.
fn all_to(up: &Upstream) -> String {
    format!(
        "{}routes:\n  - {{id: all, upstream: {}}}\n",
        upstreams_yaml(&[up]),
        up.state.name
    )
}

/// A root CA and a server certificate for `api.test` from it, written into
/// a fresh directory that becomes the gateway's.
struct Site {
    root: Ca,
    dir: tempfile::TempDir,
    /// The `certificates:` entry of the `api.test` certificate.
    certs: String,
}

fn site() -> Site {
    let root = Ca::new("Portico Test Root");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = root.server(&["api.test"]).write(dir.path(), "api");
    Site {
        root,
        dir,
        certs: certificate_entry(&cert, &key, &[]),
    }
}

fn client_for(site_root: &Ca) -> TlsClient {
    TlsClient::new(site_root).sni("api.test")
}

fn body_text(resp: &RawResponse) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

// ---- SNI ----

struct SniSite {
    root: Ca,
    up: Upstream,
    gw: Gateway,
}

/// Four certificates: `default.test` (first, so the default),
/// `api.test` from an intermediate CA, `*.apps.test`, and one listing
/// `named.test` and `unlisted.test` whose config names are `named.test`
/// and `*.Configured.TEST`.
async fn sni_site() -> SniSite {
    let root = Ca::new("Portico Test Root");
    let intermediate = root.intermediate("Portico Test Intermediate");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (dc, dk) = root.server(&["default.test"]).write(d, "default");
    let (ac, ak) = intermediate.server(&["api.test"]).write(d, "api");
    let (wc, wk) = root.server(&["*.apps.test"]).write(d, "apps");
    let (nc, nk) = root
        .server(&["named.test", "unlisted.test"])
        .write(d, "named");
    let certs = [
        certificate_entry(&dc, &dk, &[]),
        certificate_entry(&ac, &ak, &[]),
        certificate_entry(&wc, &wk, &[]),
        certificate_entry(&nc, &nk, &["named.test", "*.Configured.TEST"]),
    ]
    .concat();
    let up = Upstream::start("a").await;
    let port = free_port();
    let gw = start_gateway(dir, port, &tls_listener(port, &certs, ""), &all_to(&up));
    SniSite { root, up, gw }
}

/// The DNS names of the certificate the gateway serves for `sni`.
async fn served(site: &SniSite, sni: Option<&str>) -> Vec<String> {
    let mut client = TlsClient::new(&site.root);
    if let Some(name) = sni {
        client = client.sni(name);
    }
    let conn = client
        .connect(site.gw.port)
        .await
        .unwrap_or_else(|e| panic!("SNI {sni:?}: {e}"));
    conn.server_cert().dns
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_picks_the_certificate_of_the_exact_name_with_its_intermediate() {
    let site = sni_site().await;
    let conn = TlsClient::new(&site.root)
        .sni("api.test")
        .connect(site.gw.port)
        .await
        .unwrap();
    assert_eq!(conn.server_cert().dns, ["api.test"]);
    // Leaf and intermediate: the client trusts only the root, so the chain
    // verified because the gateway sent the whole chain.
    assert_eq!(conn.server_chain_len(), 2);
    let resp = conn.get("api.test", "/hello").await.unwrap();
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    assert_eq!(resp.json()["upstream"], "a");
    assert!(site.up.saw("/hello"));
    // Names are matched without regard to case.
    assert_eq!(served(&site, Some("API.Test")).await, ["api.test"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wildcard_certificate_answers_for_exactly_one_label_under_its_name() {
    let site = sni_site().await;
    assert_eq!(served(&site, Some("x.apps.test")).await, ["*.apps.test"]);
    assert_eq!(served(&site, Some("shop.apps.test")).await, ["*.apps.test"]);
    // Neither the bare name nor two labels under it.
    assert_eq!(served(&site, Some("apps.test")).await, ["default.test"]);
    assert_eq!(served(&site, Some("a.b.apps.test")).await, ["default.test"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_without_sni_or_with_an_unknown_name_gets_the_first_certificate() {
    let site = sni_site().await;
    assert_eq!(served(&site, None).await, ["default.test"]);
    assert_eq!(served(&site, Some("unknown.test")).await, ["default.test"]);
    assert_eq!(served(&site, Some("test")).await, ["default.test"]);
    // The default certificate still serves requests.
    let resp = TlsClient::new(&site.root)
        .get(site.gw.port, "whatever.test", "/default")
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
}

#[tokio::test(flavor = "multi_thread")]
async fn names_in_the_config_replace_the_names_listed_in_the_certificate() {
    let site = sni_site().await;
    let named = ["named.test", "unlisted.test"];
    assert_eq!(served(&site, Some("named.test")).await, named);
    assert_eq!(served(&site, Some("x.configured.test")).await, named);
    // The certificate lists it, the config does not.
    assert_eq!(served(&site, Some("unlisted.test")).await, ["default.test"]);
}

// ---- protocol versions and ALPN ----

#[tokio::test(flavor = "multi_thread")]
async fn tls_1_2_and_tls_1_3_clients_both_complete_a_request() {
    let site = site();
    let up = Upstream::start("a").await;
    let port = free_port();
    let gw = start_gateway(
        site.dir,
        port,
        &tls_listener(port, &site.certs, ""),
        &all_to(&up),
    );
    let versions = [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ];
    for (offered, expected) in versions {
        let conn = client_for(&site.root)
            .only(offered)
            .connect(gw.port)
            .await
            .unwrap_or_else(|e| panic!("{expected:?}: {e}"));
        assert_eq!(conn.version(), expected);
        let resp = conn.get("api.test", "/version").await.unwrap();
        assert_eq!(resp.status, 200, "{expected:?}: {}", body_text(&resp));
        assert_eq!(resp.json()["upstream"], "a");
    }
    assert_eq!(up.hits(), 2);
}

/// `openssl s_client` against `port` with one protocol flag.
fn s_client(port: u16, flag: &str) -> Output {
    Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "api.test", flag])
        // Lets OpenSSL 3 offer the old versions at all.
        .args(["-cipher", "DEFAULT@SECLEVEL=0"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tls_1_1_or_1_0_client_is_refused_in_the_handshake() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("note: no `openssl` binary; TLS 1.1 cannot be offered otherwise, skipped");
        return;
    }
    let site = site();
    let up = Upstream::start("a").await;
    let port = free_port();
    let gw = start_gateway(
        site.dir,
        port,
        &tls_listener(port, &site.certs, ""),
        &all_to(&up),
    );
    // The same command with TLS 1.2 succeeds, so a failure below is the
    // listener's refusal.
    let ok = s_client(gw.port, "-tls1_2");
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "TLS 1.2 failed: {out}");
    assert!(out.contains("TLSv1.2"), "{out}");
    for flag in ["-tls1_1", "-tls1"] {
        let refused = s_client(gw.port, flag);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&refused.stdout),
            String::from_utf8_lossy(&refused.stderr)
        );
        assert!(!refused.status.success(), "{flag} was accepted: {text}");
        // rustls answers a hello without TLS 1.2 with an alert before any
        // certificate: `handshake failure` when the hello lacks the
        // signature_algorithms extension (as OpenSSL's TLS 1.1 and 1.0
        // hellos do), `protocol version` otherwise.
        assert!(
            text.contains("alert handshake failure") || text.contains("alert protocol version"),
            "{flag}: {text}"
        );
        assert!(
            text.contains("no peer certificate available"),
            "{flag}: {text}"
        );
    }
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_offering_h2_gets_h2_and_its_http2_request_reaches_the_upstream() {
    let site = site();
    let up = Upstream::start("a").await;
    let port = free_port();
    let gw = start_gateway(
        site.dir,
        port,
        &tls_listener(port, &site.certs, ""),
        &all_to(&up),
    );
    let conn = client_for(&site.root)
        .alpn(&["h2", "http/1.1"])
        .connect(gw.port)
        .await
        .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some("h2"));
    let resp = conn.h2_get("api.test", "/over/h2?x=1").await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.headers()["x-upstream"], "a");
    let echo: serde_json::Value = serde_json::from_slice(resp.body()).unwrap();
    assert_eq!(echo["path"], "/over/h2");
    assert!(
        up.saw("/over/h2?x=1"),
        "{:?}",
        up.state.paths.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_offering_only_http1_or_no_alpn_speaks_http1() {
    let site = site();
    let up = Upstream::start("a").await;
    let port = free_port();
    let gw = start_gateway(
        site.dir,
        port,
        &tls_listener(port, &site.certs, ""),
        &all_to(&up),
    );
    let conn = client_for(&site.root)
        .alpn(&["http/1.1"])
        .connect(gw.port)
        .await
        .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some("http/1.1"));
    let resp = conn.get("api.test", "/h1").await.unwrap();
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    let conn = client_for(&site.root)
        .alpn(&[])
        .connect(gw.port)
        .await
        .unwrap();
    assert_eq!(conn.alpn(), None);
    let resp = conn.get("api.test", "/no-alpn").await.unwrap();
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    assert!(up.saw("/h1") && up.saw("/no-alpn"));
}

// ---- HTTPS redirects and HSTS ----

#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_listener_sends_every_request_to_https_and_none_upstream() {
    let site = site();
    let up = Upstream::start("a").await;
    let (tls_port, redirect_port, default_port) = (free_port(), free_port(), free_port());
    let listeners = format!(
        "{}{}    https_redirect: {{port: 8443}}\n{}    https_redirect: {{port: 443}}\n",
        tls_listener(tls_port, &site.certs, ""),
        cleartext_listener(redirect_port),
        cleartext_listener(default_port),
    );
    let gw = start_gateway(site.dir, tls_port, &listeners, &all_to(&up));

    let target = "/shop/cart?item=1&q=a%20b";
    let get = raw::send(
        redirect_port,
        format!(
            "GET {target} HTTP/1.1\r\nHost: shop.test:{redirect_port}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(get.status, 301);
    assert_eq!(
        get.header("location"),
        Some(format!("https://shop.test:8443{target}").as_str())
    );
    let head = raw::send(
        redirect_port,
        b"HEAD /x HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(head.status, 301);
    assert_eq!(head.header("location"), Some("https://shop.test:8443/x"));
    let post = raw::send(
        redirect_port,
        b"POST /orders?draft=1 HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 3\r\n\
          Connection: close\r\n\r\na=1",
    )
    .await;
    assert_eq!(post.status, 308);
    assert_eq!(
        post.header("location"),
        Some("https://shop.test:8443/orders?draft=1")
    );
    // Port 443 is left out of the URL.
    let default = raw::get(default_port, "/x?y=1", &[]).await;
    assert_eq!(default.status, 301);
    assert_eq!(default.header("location"), Some("https://127.0.0.1/x?y=1"));
    assert_eq!(up.hits(), 0, "{:?}", up.state.paths.lock().unwrap());

    // The TLS listener beside them proxies as usual.
    let resp = client_for(&site.root)
        .get(gw.port, "shop.test", "/shop/cart")
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", body_text(&resp));
    assert_eq!(up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_asterisk_form_options_request_is_redirected_to_a_valid_https_url() {
    let up = Upstream::start("a").await;
    let port = free_port();
    let gw = start_gateway(
        tempfile::tempdir().unwrap(),
        port,
        &format!(
            "{}    https_redirect: {{port: 8443}}\n",
            cleartext_listener(port)
        ),
        &all_to(&up),
    );
    let resp = raw::send(
        gw.port,
        b"OPTIONS * HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 308);
    let location = resp.header("location").unwrap_or_default();
    let uri: Result<http::Uri, _> = location.parse();
    let valid = uri.as_ref().is_ok_and(|u| {
        u.scheme_str() == Some("https")
            && u.authority().map(|a| a.as_str()) == Some("shop.test:8443")
            && u.path().starts_with('/')
    });
    assert!(
        valid,
        "Location {location:?} is not an https URL of shop.test:8443"
    );
    assert_eq!(up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn hsts_is_sent_over_tls_even_on_a_404_and_never_over_cleartext() {
    let site = site();
    let up = Upstream::start("a").await;
    let (full, defaults, plain) = (free_port(), free_port(), free_port());
    let listeners = format!(
        "{}{}{}",
        tls_listener(
            full,
            &site.certs,
            "      hsts: {max_age: 1d, include_subdomains: true, preload: true}\n"
        ),
        tls_listener(defaults, &site.certs, "      hsts: {}\n"),
        cleartext_listener(plain),
    );
    let rest = format!(
        "{}routes:\n  - {{id: api, match: {{path: {{prefix: /api}}}}, upstream: a}}\n",
        upstreams_yaml(&[&up])
    );
    let gw = start_gateway(site.dir, full, &listeners, &rest);
    let sts = "strict-transport-security";
    let expected = "max-age=86400; includeSubDomains; preload";

    let ok = client_for(&site.root)
        .get(gw.port, "api.test", "/api/x")
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", body_text(&ok));
    assert_eq!(ok.header(sts), Some(expected));
    let missing = client_for(&site.root)
        .get(gw.port, "api.test", "/nothing")
        .await
        .unwrap();
    assert_eq!(missing.status, 404, "{}", body_text(&missing));
    assert_eq!(missing.header(sts), Some(expected));
    // Over HTTP/2 as well.
    let h2 = client_for(&site.root)
        .alpn(&["h2"])
        .connect(gw.port)
        .await
        .unwrap()
        .h2_get("api.test", "/api/h2")
        .await
        .unwrap();
    assert_eq!(h2.status(), 200);
    assert_eq!(h2.headers()[sts], expected);

    // `hsts: {}` is one year, nothing more.
    let one_year = client_for(&site.root)
        .get(defaults, "api.test", "/api/x")
        .await
        .unwrap();
    assert_eq!(one_year.status, 200);
    assert_eq!(one_year.header(sts), Some("max-age=31536000"));

    let cleartext = raw::get(plain, "/api/x", &[]).await;
    assert_eq!(cleartext.status, 200);
    assert!(!cleartext.has_header(sts), "{:?}", cleartext.headers);
    let cleartext_404 = raw::get(plain, "/nothing", &[]).await;
    assert_eq!(cleartext_404.status, 404);
    assert!(
        !cleartext_404.has_header(sts),
        "{:?}",
        cleartext_404.headers
    );
}

// ---- mutual TLS ----

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_requiring_client_certificates_lets_in_only_those_of_its_ca() {
    let site = site();
    let clients = Ca::new("Clients CA");
    let strangers = Ca::new("Strangers CA");
    let ca = clients.write(site.dir.path(), "clients-ca");
    let up = Upstream::start("a").await;
    let port = free_port();
    let listener = tls_listener(
        port,
        &site.certs,
        &format!("      client_auth: {{ca: \"{ca}\"}}\n"),
    );
    let gw = start_gateway(site.dir, port, &listener, &all_to(&up));

    let foreign = strangers.client("orders.clients.test", &[]);
    // TLS 1.3 clients finish their side of the handshake before the server
    // has judged their certificate, so the refusal arrives as an alert on
    // the first read; TLS 1.2 ones see it in the handshake itself.
    let versions = [
        (&rustls::version::TLS13, "CertificateRequired", "UnknownCA"),
        (&rustls::version::TLS12, "fatal alert", "fatal alert"),
    ];
    for (version, missing_alert, foreign_alert) in versions {
        let without = client_for(&site.root)
            .only(version)
            .get(gw.port, "api.test", "/m")
            .await;
        let err = without.expect_err("a client without a certificate got an answer");
        assert!(err.contains(missing_alert), "{version:?}: {err}");
        let other_ca = client_for(&site.root)
            .only(version)
            .identity(&foreign)
            .get(gw.port, "api.test", "/m")
            .await;
        let err = other_ca.expect_err("a certificate of another CA got an answer");
        assert!(err.contains(foreign_alert), "{version:?}: {err}");
    }
    assert_eq!(up.hits(), 0);

    let own = clients.client("orders.clients.test", &[]);
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let resp = client_for(&site.root)
            .only(version)
            .identity(&own)
            .get(gw.port, "api.test", "/m")
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{}", body_text(&resp));
    }
    assert_eq!(up.hits(), 2);
}

struct IdentitySite {
    root: Ca,
    clients: Ca,
    up: Upstream,
    gw: Gateway,
}

/// A listener asking for (not requiring) certificates of `clients`; route
/// `/orders` takes `client_cert` only, `/open` takes anyone.
async fn identity_site() -> IdentitySite {
    let site = site();
    let clients = Ca::new("Clients CA");
    let ca = clients.write(site.dir.path(), "clients-ca");
    let up = Upstream::start("a").await;
    let port = free_port();
    let listener = tls_listener(
        port,
        &site.certs,
        &format!("      client_auth: {{ca: \"{ca}\", required: false}}\n"),
    );
    let rest = format!(
        "consumers:
  - id: orders
    credentials: {{certificate_names: [orders.clients.test]}}
  - id: billing
    credentials: {{certificate_names: ['spiffe://clients.test/billing']}}
  - id: audit
    credentials: {{certificate_names: [audit@clients.test]}}
{}routes:
  - {{id: r, match: {{path: {{prefix: /orders}}}}, upstream: a, auth: {{methods: [client_cert]}}}}
  - {{id: open, match: {{path: {{prefix: /open}}}}, upstream: a, auth: none}}
",
        upstreams_yaml(&[&up])
    );
    let gw = start_gateway(site.dir, port, &listener, &rest);
    IdentitySite {
        root: site.root,
        clients,
        up,
        gw,
    }
}

impl IdentitySite {
    fn seen(&self, name: &str) -> Option<String> {
        let headers = self.up.state.last_headers.lock().unwrap();
        headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_naming_a_consumer_reaches_the_upstream_as_that_consumer() {
    let site = identity_site().await;
    let cases = [
        ("orders", site.clients.client("orders.clients.test", &[])),
        (
            "orders",
            site.clients
                .client("svc-1", &[San::Dns("orders.clients.test")]),
        ),
        (
            "billing",
            site.clients
                .client("svc-2", &[San::Uri("spiffe://clients.test/billing")]),
        ),
        (
            "audit",
            site.clients
                .client("svc-3", &[San::Email("audit@clients.test")]),
        ),
    ];
    for (consumer, cert) in &cases {
        let resp = client_for(&site.root)
            .identity(cert)
            .connect(site.gw.port)
            .await
            .unwrap()
            .send(
                b"GET /orders/1 HTTP/1.1\r\nHost: api.test\r\nX-Consumer-Id: admin\r\n\
                  Connection: close\r\n\r\n",
            )
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{consumer}: {}", body_text(&resp));
        assert_eq!(site.seen("x-consumer-id").as_deref(), Some(*consumer));
        let request_id = resp.header("x-request-id").unwrap();
        assert_eq!(site.gw.access_line(request_id)["consumer"], *consumer);
    }
    assert_eq!(site.up.hits(), cases.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_client_certificate_naming_no_consumer_is_refused_with_401() {
    let site = identity_site().await;
    let stranger = site.clients.client(
        "stranger.clients.test",
        &[
            San::Dns("stranger.clients.test"),
            San::Uri("spiffe://clients.test/x"),
        ],
    );
    let resp = client_for(&site.root)
        .identity(&stranger)
        .get(site.gw.port, "api.test", "/orders/1")
        .await
        .unwrap();
    assert_eq!(resp.status, 401, "{}", body_text(&resp));
    assert_eq!(site.up.hits(), 0);
    // The same connection is fine where no identity is asked for.
    let open = client_for(&site.root)
        .identity(&stranger)
        .get(site.gw.port, "api.test", "/open")
        .await
        .unwrap();
    assert_eq!(open.status, 200, "{}", body_text(&open));
    assert_eq!(site.seen("x-consumer-id"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_certificate_an_optional_mtls_listener_answers_401_on_client_cert_routes() {
    let site = identity_site().await;
    let resp = client_for(&site.root)
        .get(site.gw.port, "api.test", "/orders/1")
        .await
        .unwrap();
    assert_eq!(resp.status, 401, "{}", body_text(&resp));
    assert_eq!(site.up.hits(), 0);
    let open = client_for(&site.root)
        .get(site.gw.port, "api.test", "/open")
        .await
        .unwrap();
    assert_eq!(open.status, 200, "{}", body_text(&open));
    assert_eq!(site.up.hits(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_optional_mtls_listener_still_refuses_a_certificate_of_another_ca() {
    let site = identity_site().await;
    let foreign = Ca::new("Strangers CA").client("orders.clients.test", &[]);
    let resp = client_for(&site.root)
        .identity(&foreign)
        .get(site.gw.port, "api.test", "/open")
        .await;
    let err = resp.expect_err("a certificate of another CA got an answer");
    assert!(err.contains("alert"), "{err}");
    assert_eq!(site.up.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resumed_tls_session_keeps_the_identity_of_its_client_certificate() {
    let site = identity_site().await;
    let cert = site.clients.client("orders.clients.test", &[]);
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        // One client, so the second connection resumes the first's session.
        let client = client_for(&site.root).only(version).identity(&cert);
        for round in ["full", "resumed"] {
            let conn = client.connect(site.gw.port).await.unwrap();
            assert_eq!(conn.resumed(), round == "resumed", "{version:?} {round}");
            let resp = conn.get("api.test", "/orders/1").await.unwrap();
            assert_eq!(
                resp.status,
                200,
                "{version:?} {round}: {}",
                body_text(&resp)
            );
            assert_eq!(
                site.seen("x-consumer-id").as_deref(),
                Some("orders"),
                "{version:?} {round}"
            );
        }
    }
    assert_eq!(site.up.hits(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_certificate_identifies_its_consumer_over_http2_as_well() {
    let site = identity_site().await;
    let cert = site.clients.client("orders.clients.test", &[]);
    let conn = client_for(&site.root)
        .alpn(&["h2"])
        .identity(&cert)
        .connect(site.gw.port)
        .await
        .unwrap();
    assert_eq!(conn.alpn().as_deref(), Some("h2"));
    let resp = conn.h2_get("api.test", "/orders/2").await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.body());
    assert_eq!(site.seen("x-consumer-id").as_deref(), Some("orders"));

    let anonymous = client_for(&site.root)
        .alpn(&["h2"])
        .connect(site.gw.port)
        .await
        .unwrap()
        .h2_get("api.test", "/orders/3")
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "{:?}", anonymous.body());
    assert_eq!(site.up.hits(), 1);
}

// ---- TLS to the upstreams ----

/// A gateway with a cleartext listener and, for each `(pool, backend,
/// tls)`, a pool of that one backend with `tls:` set to the flow mapping
/// `tls`, and a route `/{pool}` to it.
fn upstream_gateway(dir: tempfile::TempDir, pools: &[(&str, &TlsUpstream, String)]) -> Gateway {
    let mut rest = String::from("upstreams:\n");
    for (name, backend, tls) in pools {
        rest.push_str(&format!(
            "  {name}:\n    backends: [{{address: \"{}\"}}]\n    tls: {tls}\n",
            backend.addr
        ));
    }
    rest.push_str("routes:\n");
    for (name, _, _) in pools {
        rest.push_str(&format!(
            "  - {{id: {name}, match: {{path: {{prefix: /{name}}}}}, upstream: {name}}}\n"
        ));
    }
    let port = free_port();
    start_gateway(dir, port, &cleartext_listener(port), &rest)
}

async fn status_of(gw: &Gateway, path: &str) -> (u16, String) {
    let resp = client().get(gw.url(path)).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Waits until `backend` has seen a handshake fail: the gateway did try it.
/// The gateway may answer its client before the backend has read the alert.
async fn saw_a_refused_handshake(backend: &TlsUpstream, what: &str) {
    let what = format!("{what}: a failed handshake at the backend");
    eventually(Duration::from_secs(5), &what, || {
        let failed = backend.failed_handshakes() >= 1;
        async move { failed }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_whose_certificate_chains_to_the_pool_ca_is_reached_over_tls() {
    let backend_ca = Ca::new("Backend CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = backend_ca.write(dir.path(), "backend-ca");
    let by_ip = TlsUpstream::start(
        "by_ip",
        &backend_ca.server(&["127.0.0.1", "backend.test"]),
        None,
    )
    .await;
    let by_name = TlsUpstream::start("by_name", &backend_ca.server(&["backend.test"]), None).await;
    let gw = upstream_gateway(
        dir,
        &[
            ("by_ip", &by_ip, format!("{{ca: \"{ca}\"}}")),
            (
                "by_name",
                &by_name,
                format!("{{ca: \"{ca}\", sni: backend.test}}"),
            ),
        ],
    );

    // Without `sni`, the backend's host, an IP here: checked against the
    // certificate's IP name, and not sent as SNI (SNI carries no IPs).
    let (status, body) = status_of(&gw, "/by_ip/x").await;
    assert_eq!((status, body.as_str()), (200, "hello from by_ip"));
    assert_eq!(by_ip.hits(), 1);
    assert_eq!(by_ip.last_sni(), None);

    let (status, body) = status_of(&gw, "/by_name/x").await;
    assert_eq!((status, body.as_str()), (200, "hello from by_name"));
    assert_eq!(by_name.hits(), 1);
    assert_eq!(by_name.last_sni().as_deref(), Some("backend.test"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_certificate_from_an_unknown_ca_is_refused_with_502() {
    let backend_ca = Ca::new("Backend CA");
    let rogue = Ca::new("Rogue CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = backend_ca.write(dir.path(), "backend-ca");
    let backend =
        TlsUpstream::start("rogue", &rogue.server(&["127.0.0.1", "backend.test"]), None).await;
    let gw = upstream_gateway(dir, &[("rogue", &backend, format!("{{ca: \"{ca}\"}}"))]);
    let (status, body) = status_of(&gw, "/rogue/x").await;
    assert_eq!(status, 502, "{body}");
    saw_a_refused_handshake(&backend, "rogue").await;
    assert_eq!(backend.handshakes(), 0);
    assert_eq!(backend.hits(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_certificate_without_the_name_asked_for_is_refused_with_502() {
    let backend_ca = Ca::new("Backend CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = backend_ca.write(dir.path(), "backend-ca");
    let named = TlsUpstream::start(
        "wrong_sni",
        &backend_ca.server(&["127.0.0.1", "backend.test"]),
        None,
    )
    .await;
    let no_ip = TlsUpstream::start("no_ip", &backend_ca.server(&["backend.test"]), None).await;
    let gw = upstream_gateway(
        dir,
        &[
            (
                "wrong_sni",
                &named,
                format!("{{ca: \"{ca}\", sni: other.test}}"),
            ),
            // The default SNI is the backend's IP, which this one lacks.
            ("no_ip", &no_ip, format!("{{ca: \"{ca}\"}}")),
        ],
    );
    for (path, backend) in [("/wrong_sni/x", &named), ("/no_ip/x", &no_ip)] {
        let (status, body) = status_of(&gw, path).await;
        assert_eq!(status, 502, "{path}: {body}");
        saw_a_refused_handshake(backend, path).await;
        assert_eq!(backend.hits(), 0, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_false_and_verify_hostname_false_reach_backends_that_fail_those_checks() {
    let backend_ca = Ca::new("Backend CA");
    let rogue = Ca::new("Rogue CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = backend_ca.write(dir.path(), "backend-ca");
    let unverified = TlsUpstream::start("unverified", &rogue.server(&["rogue.test"]), None).await;
    let misnamed =
        TlsUpstream::start("misnamed", &backend_ca.server(&["backend.test"]), None).await;
    let gw = upstream_gateway(
        dir,
        &[
            ("unverified", &unverified, "{verify: false}".to_owned()),
            (
                "misnamed",
                &misnamed,
                format!("{{ca: \"{ca}\", sni: other.test, verify_hostname: false}}"),
            ),
        ],
    );
    let (status, body) = status_of(&gw, "/unverified/x").await;
    assert_eq!((status, body.as_str()), (200, "hello from unverified"));
    assert_eq!(unverified.hits(), 1);
    let (status, body) = status_of(&gw, "/misnamed/x").await;
    assert_eq!((status, body.as_str()), (200, "hello from misnamed"));
    assert_eq!(misnamed.last_sni().as_deref(), Some("other.test"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_asking_for_a_client_certificate_gets_the_configured_one() {
    let backend_ca = Ca::new("Backend CA");
    let gateway_ca = Ca::new("Gateway Clients CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = backend_ca.write(dir.path(), "backend-ca");
    let (cert, key) = gateway_ca
        .client("portico-gateway", &[])
        .write(dir.path(), "gateway-client");
    let backend = TlsUpstream::start(
        "strict",
        &backend_ca.server(&["127.0.0.1"]),
        Some(&gateway_ca),
    )
    .await;
    let gw = upstream_gateway(
        dir,
        &[
            ("anonymous", &backend, format!("{{ca: \"{ca}\"}}")),
            (
                "identified",
                &backend,
                format!("{{ca: \"{ca}\", client_cert: \"{cert}\", client_key: \"{key}\"}}"),
            ),
        ],
    );
    let (status, body) = status_of(&gw, "/anonymous/x").await;
    assert_eq!(status, 502, "{body}");
    saw_a_refused_handshake(&backend, "anonymous").await;
    assert_eq!(backend.hits(), 0);

    let (status, body) = status_of(&gw, "/identified/x").await;
    assert_eq!((status, body.as_str()), (200, "hello from strict"));
    assert_eq!(backend.hits(), 1);
    assert_eq!(backend.last_client_cn().as_deref(), Some("portico-gateway"));
}

// ---- problems in TLS files ----

/// `portico check` on `text`; its exit code and stderr.
fn check(dir: &Path, text: &str) -> (Option<i32>, String) {
    let path = write(dir, "portico.yaml", text);
    let out = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["check", "-c", &path])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The key paths of the problem lines of a failed `check` or `run`.
fn problem_paths(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter_map(|problem| problem.split_once(": ").map(|(path, _)| path.to_owned()))
        .collect()
}

/// A config with one TLS listener on `port` made of `certs` and `extra`,
/// and `rest` after it.
fn tls_config(port: u16, certs: &str, extra: &str, rest: &str) -> String {
    format!(
        "version: 1\nlisteners:\n{}{rest}",
        tls_listener(port, certs, extra)
    )
}

#[test]
fn check_names_the_key_path_of_a_certificate_or_key_file_that_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new("Root");
    let (cert, key) = root.server(&["api.test"]).write(dir.path(), "api");
    let gone = dir.path().join("gone.pem").display().to_string();
    let certs = [
        certificate_entry(&gone, &key, &[]),
        certificate_entry(&cert, &gone, &[]),
    ]
    .concat();
    let (code, stderr) = check(dir.path(), &tls_config(free_port(), &certs, "", ""));
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert_eq!(
        problem_paths(&stderr),
        [
            "listeners[0].tls.certificates[0].cert",
            "listeners[0].tls.certificates[1].key"
        ],
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains(&gone), "stderr:\n{stderr}");
}

#[test]
fn check_names_the_certificate_whose_key_belongs_to_another_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new("Root");
    let (cert, key) = root.server(&["api.test"]).write(dir.path(), "api");
    let (other_cert, _) = root.server(&["other.test"]).write(dir.path(), "other");
    let certs = [
        certificate_entry(&cert, &key, &[]),
        certificate_entry(&other_cert, &key, &[]),
    ]
    .concat();
    let (code, stderr) = check(dir.path(), &tls_config(free_port(), &certs, "", ""));
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert_eq!(
        problem_paths(&stderr),
        ["listeners[0].tls.certificates[1]"],
        "stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("cannot be used with the certificate"),
        "stderr:\n{stderr}"
    );
}

#[test]
fn check_names_every_ca_file_that_holds_no_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new("Root");
    let leaf = root.server(&["api.test"]);
    let (cert, key) = leaf.write(dir.path(), "api");
    // A PEM file, but of a key.
    let not_ca = write(dir.path(), "not-a-ca.pem", &leaf.key_pem);
    let empty = write(dir.path(), "empty.pem", "");
    let rest = format!(
        "upstreams:
  secure:
    backends: [{{address: \"127.0.0.1:9\"}}]
    tls: {{ca: \"{empty}\"}}
routes:
  - {{id: all, upstream: secure}}
"
    );
    let (code, stderr) = check(
        dir.path(),
        &tls_config(
            free_port(),
            &certificate_entry(&cert, &key, &[]),
            &format!("      client_auth: {{ca: \"{not_ca}\"}}\n"),
            &rest,
        ),
    );
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    // Both are listed; in which order is not part of this test.
    let mut paths = problem_paths(&stderr);
    paths.sort();
    assert_eq!(
        paths,
        ["listeners[0].tls.client_auth.ca", "upstreams.secure.tls.ca"],
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains("holds no certificate"), "stderr:\n{stderr}");
}

#[test]
fn check_names_an_upstream_client_key_that_does_not_match_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new("Root");
    let (cert, _) = root.client("gateway", &[]).write(dir.path(), "client");
    let (_, other_key) = root.client("other", &[]).write(dir.path(), "other");
    let text = format!(
        "version: 1
listeners:
  - address: 127.0.0.1:{}
upstreams:
  secure:
    backends: [{{address: \"127.0.0.1:9\"}}]
    tls: {{client_cert: \"{cert}\", client_key: \"{other_key}\"}}
routes:
  - {{id: all, upstream: secure}}
",
        free_port()
    );
    let (code, stderr) = check(dir.path(), &text);
    assert_eq!(code, Some(2), "stderr:\n{stderr}");
    assert_eq!(
        problem_paths(&stderr),
        ["upstreams.secure.tls"],
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains("does not belong"), "stderr:\n{stderr}");
}

#[test]
fn run_refuses_to_start_on_a_missing_certificate_and_never_binds_the_listener() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gone = dir.path().join("gone.pem").display().to_string();
    let path = write(
        dir.path(),
        "portico.yaml",
        &tls_config(port, &certificate_entry(&gone, &gone, &[]), "", ""),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .args(["run", "-c", &path])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("`run` on a missing certificate did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = String::from_utf8_lossy(&child.wait_with_output().unwrap().stderr).into_owned();
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert_eq!(
        problem_paths(&stderr),
        ["listeners[0].tls.certificates[0].cert"],
        "stderr:\n{stderr}"
    );
    assert!(StdTcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_failing_verification_is_retried_on_another_and_then_ejected() {
    let backend_ca = Ca::new("Backend CA");
    let rogue_ca = Ca::new("Rogue CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = backend_ca.write(dir.path(), "backend-ca");
    let rogue = TlsUpstream::start("rogue", &rogue_ca.server(&["127.0.0.1"]), None).await;
    let good = TlsUpstream::start("good", &backend_ca.server(&["127.0.0.1"]), None).await;
    let rest = format!(
        "upstreams:
  mixed:
    backends: [{{address: \"{}\"}}, {{address: \"{}\"}}]
    tls: {{ca: \"{ca}\"}}
    passive_health: {{consecutive_failures: 2, ejection_time: 1m}}
routes:
  - {{id: all, upstream: mixed}}
",
        rogue.addr, good.addr
    );
    let port = free_port();
    let gw = start_gateway(dir, port, &cleartext_listener(port), &rest);
    for i in 0..10 {
        let (status, body) = status_of(&gw, &format!("/r/{i}")).await;
        assert_eq!(
            (status, body.as_str()),
            (200, "hello from good"),
            "request {i}"
        );
    }
    assert_eq!(good.hits(), 10);
    saw_a_refused_handshake(&rogue, "rogue").await;
    // Ejected after its second failure: round robin would have tried it
    // five times.
    let failed = rogue.failed_handshakes();
    assert!(failed <= 2, "the rogue backend was tried {failed} times");
    assert_eq!(rogue.handshakes(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_checks_of_a_tls_pool_verify_the_backend_as_the_proxy_does() {
    let backend_ca = Ca::new("Backend CA");
    let rogue = Ca::new("Rogue CA");
    let dir = tempfile::tempdir().unwrap();
    let ca = backend_ca.write(dir.path(), "backend-ca");
    let http_good = TlsUpstream::start("http_good", &backend_ca.server(&["127.0.0.1"]), None).await;
    let http_bad = TlsUpstream::start("http_bad", &rogue.server(&["127.0.0.1"]), None).await;
    let tcp_good = TlsUpstream::start("tcp_good", &backend_ca.server(&["127.0.0.1"]), None).await;
    let tcp_bad = TlsUpstream::start("tcp_bad", &rogue.server(&["127.0.0.1"]), None).await;
    let pools = [
        ("http_good", &http_good, "http"),
        ("http_bad", &http_bad, "http"),
        ("tcp_good", &tcp_good, "tcp"),
        ("tcp_bad", &tcp_bad, "tcp"),
    ];
    let mut rest = String::from("upstreams:\n");
    for (name, backend, kind) in pools {
        rest.push_str(&format!(
            "  {name}:
    backends: [{{address: \"{}\"}}]
    tls: {{ca: \"{ca}\"}}
    health_check: {{type: {kind}, path: /healthz, interval: 200ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}}
",
            backend.addr
        ));
    }
    rest.push_str("routes:\n  - {id: all, upstream: http_good}\n");
    let port = free_port();
    let gw = start_gateway(dir, port, &cleartext_listener(port), &rest);

    for (name, backend, _) in pools {
        let up = !name.ends_with("_bad");
        let what = format!(
            "{name} to be reported {}",
            if up { "healthy" } else { "unhealthy" }
        );
        eventually(Duration::from_secs(5), &what, || {
            let now = gw.backend_healthy(name, backend.addr) == Some(up);
            async move { now }
        })
        .await;
        if up {
            assert!(backend.handshakes() >= 1, "{name}: no TLS probe arrived");
        } else {
            saw_a_refused_handshake(backend, name).await;
            assert_eq!(backend.handshakes(), 0, "{name}");
        }
    }
    // HTTP probes are requests over TLS; TCP probes end after the handshake.
    assert!(http_good.hits() >= 1);
    assert_eq!(tcp_good.hits(), 0);
    assert_eq!(http_bad.hits(), 0);
    let (status, body) = status_of(&gw, "/anything").await;
    assert_eq!((status, body.as_str()), (200, "hello from http_good"));
}
