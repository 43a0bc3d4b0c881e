//! TLS for the tests, all made when a test runs:
//!
//! - [`Ca`]: a certificate authority (a root, or an intermediate under one)
//!   that signs server certificates (DNS and IP names) and client
//!   certificates (a common name and DNS, e-mail or URI names), written as
//!   PEM files for the gateway's config;
//! - [`TlsClient`]: a rustls client with a chosen SNI, ALPN list, protocol
//!   version and client certificate; its [`TlsConn`] reports what the
//!   handshake settled on and sends a raw HTTP/1.1 request or an HTTP/2 one;
//! - [`TlsUpstream`]: a hyper HTTP/1.1 server behind rustls, optionally
//!   asking for client certificates, that counts handshakes and requests;
//! - [`start_gateway`]: the real gateway with listeners of the test's own.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, ProtocolVersion, RootCertStore, SignatureScheme,
    SupportedProtocolVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::raw::{parse, RawResponse};
use super::{base_config, free_port, Gateway};

/// How long any one TLS exchange of a test may take before it fails.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Writes `text` to `dir/name`; returns the path as the config spells it.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

// ---- certificates ----

/// A certificate authority: a self-signed root, or an intermediate signed by
/// another `Ca`.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The PEM of this CA and of the intermediates above it, without the
    /// root: what a server sends after its leaf.
    intermediates_pem: String,
    /// Their DER, in the same order.
    intermediates: Vec<CertificateDer<'static>>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Ca {
    /// A self-signed root CA whose common name is `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let cert = ca_params(name).self_signed(&key).unwrap();
        Ca {
            cert,
            key,
            intermediates_pem: String::new(),
            intermediates: Vec::new(),
        }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = ca_params(name);
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let mut intermediates = vec![cert.der().clone()];
        intermediates.extend(self.intermediates.iter().cloned());
        Ca {
            intermediates_pem: format!("{}{}", cert.pem(), self.intermediates_pem),
            intermediates,
            cert,
            key,
        }
    }

    /// This CA's own certificate, as PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Writes this CA's certificate to `dir/{stem}.pem`; returns the path.
    pub fn write(&self, dir: &Path, stem: &str) -> String {
        write(dir, &format!("{stem}.pem"), &self.pem())
    }

    /// A server certificate for `names`, each a DNS name (wildcards allowed)
    /// or an IP address; its common name is the first of them.
    pub fn server(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        let cn = names.first().map_or("server", String::as_str);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate whose common name is `cn`, with `sans` as its
    /// alternative names.
    pub fn client(&self, cn: &str, sans: &[San]) -> Leaf {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans.iter().map(San::to_rcgen).collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Leaf {
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let mut chain = vec![cert.der().clone()];
        chain.extend(self.intermediates.iter().cloned());
        Leaf {
            cert_pem: format!("{}{}", cert.pem(), self.intermediates_pem),
            key_pem: key.serialize_pem(),
            chain,
            key_der: key.serialize_der(),
        }
    }
}

/// An alternative name of a client certificate.
pub enum San<'a> {
    Dns(&'a str),
    Email(&'a str),
    Uri(&'a str),
}

impl San<'_> {
    fn to_rcgen(&self) -> SanType {
        match *self {
            San::Dns(n) => SanType::DnsName(n.try_into().unwrap()),
            San::Email(n) => SanType::Rfc822Name(n.try_into().unwrap()),
            San::Uri(n) => SanType::URI(n.try_into().unwrap()),
        }
    }
}

/// A certificate signed by a [`Ca`], with its private key.
#[derive(Clone)]
pub struct Leaf {
    /// The certificate, then the intermediates of its CA, as PEM.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: Vec<u8>,
}

impl Leaf {
    /// Writes `dir/{stem}.pem` (the chain) and `dir/{stem}.key`; returns
    /// their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (String, String) {
        (
            write(dir, &format!("{stem}.pem"), &self.cert_pem),
            write(dir, &format!("{stem}.key"), &self.key_pem),
        )
    }

    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.clone()
    }

    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key_der.clone()).into()
    }

    /// A server configuration that serves this certificate, for test servers
    /// of other kinds (a JWK set endpoint).
    pub fn server_config(&self) -> rustls::ServerConfig {
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(self.chain(), self.key())
            .unwrap()
    }
}

/// The names a certificate carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertNames {
    pub common_name: Option<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

/// The common name and the DNS and IP alternative names of a DER certificate.
pub fn cert_names(der: &[u8]) -> CertNames {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).expect("an X.509 certificate");
    let common_name = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut names = CertNames {
        common_name,
        ..CertNames::default()
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => names.dns.push((*n).to_owned()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => names
                        .ips
                        .push(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap())),
                    16 => names
                        .ips
                        .push(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    names
}

// ---- the client ----

/// Checks the server's chain against the client's roots but not its name:
/// the tests about certificate selection read the names themselves, and
/// want the certificate even when it does not cover the name asked for.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A TLS client for the gateway's listeners. By default it trusts one CA,
/// sends no SNI, offers ALPN `http/1.1` only, TLS 1.2 and 1.3, and no client
/// certificate. It verifies the server's chain, never its name (see
/// [`TlsConn::server_cert`]). Like a browser, one `TlsClient` keeps the
/// sessions of its connections and resumes them on the next ones; each
/// builder method starts afresh.
#[derive(Clone)]
pub struct TlsClient {
    roots: Arc<RootCertStore>,
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
    versions: Vec<&'static SupportedProtocolVersion>,
    identity: Option<Leaf>,
    config: OnceLock<Arc<rustls::ClientConfig>>,
}

impl TlsClient {
    pub fn new(trusted: &Ca) -> TlsClient {
        let mut roots = RootCertStore::empty();
        roots.add(trusted.der()).unwrap();
        TlsClient {
            roots: Arc::new(roots),
            sni: None,
            alpn: vec![b"http/1.1".to_vec()],
            versions: vec![&rustls::version::TLS13, &rustls::version::TLS12],
            identity: None,
            config: OnceLock::new(),
        }
    }

    /// Sends `name` as SNI.
    pub fn sni(mut self, name: &str) -> TlsClient {
        self.sni = Some(name.to_owned());
        self.config = OnceLock::new();
        self
    }

    /// Offers these ALPN protocols, in order (none for an empty list).
    pub fn alpn(mut self, protocols: &[&str]) -> TlsClient {
        self.alpn = protocols.iter().map(|p| p.as_bytes().to_vec()).collect();
        self.config = OnceLock::new();
        self
    }

    /// Offers this protocol version only.
    pub fn only(mut self, version: &'static SupportedProtocolVersion) -> TlsClient {
        self.versions = vec![version];
        self.config = OnceLock::new();
        self
    }

    /// Presents `leaf` as the client certificate.
    pub fn identity(mut self, leaf: &Leaf) -> TlsClient {
        self.identity = Some(leaf.clone());
        self.config = OnceLock::new();
        self
    }

    fn build_config(&self) -> Arc<rustls::ClientConfig> {
        let provider = provider();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(self.roots.clone(), provider.clone())
                .build()
                .unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&self.versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)));
        let mut config = match &self.identity {
            Some(leaf) => builder
                .with_client_auth_cert(leaf.chain(), leaf.key())
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        config.enable_sni = self.sni.is_some();
        Arc::new(config)
    }

    /// Connects to `127.0.0.1:port` and completes the handshake; the error is
    /// the TCP or TLS failure, as text.
    pub async fn connect(&self, port: u16) -> Result<TlsConn, String> {
        let config = self.config.get_or_init(|| self.build_config()).clone();
        // Without SNI the name is only what sessions are filed under.
        let name = ServerName::try_from(self.sni.as_deref().unwrap_or("no-sni.invalid"))
            .unwrap()
            .to_owned();
        let handshake = async {
            let tcp = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("TCP connect: {e}"))?;
            TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))
        };
        let stream = tokio::time::timeout(EXCHANGE_LIMIT, handshake)
            .await
            .map_err(|_| "TLS handshake timed out".to_owned())??;
        Ok(TlsConn { stream })
    }

    /// Connects and sends `GET {target}` with `Host: {host}`: the response,
    /// or the first failure of the handshake or of the exchange.
    pub async fn get(&self, port: u16, host: &str, target: &str) -> Result<RawResponse, String> {
        self.connect(port).await?.get(host, target).await
    }
}

/// One established TLS connection to the gateway.
pub struct TlsConn {
    stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl TlsConn {
    /// The protocol version negotiated.
    pub fn version(&self) -> ProtocolVersion {
        self.stream.get_ref().1.protocol_version().unwrap()
    }

    /// Whether the handshake resumed an earlier session of the same client.
    pub fn resumed(&self) -> bool {
        self.stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The ALPN protocol the server chose, if any.
    pub fn alpn(&self) -> Option<String> {
        self.stream
            .get_ref()
            .1
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// The names of the leaf certificate the server sent.
    pub fn server_cert(&self) -> CertNames {
        let certs = self.stream.get_ref().1.peer_certificates().unwrap();
        cert_names(&certs[0])
    }

    /// How many certificates the server sent (leaf and intermediates).
    pub fn server_chain_len(&self) -> usize {
        self.stream
            .get_ref()
            .1
            .peer_certificates()
            .map_or(0, |c| c.len())
    }

    /// `GET {target}` with `Host: {host}` and `Connection: close`.
    pub async fn get(self, host: &str, target: &str) -> Result<RawResponse, String> {
        let head = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        self.send(head.as_bytes()).await
    }

    /// Writes `request` as given and reads one HTTP/1.1 response. A failure
    /// before a complete response (a TLS alert, a reset, the end of the
    /// stream) is the error.
    pub async fn send(mut self, request: &[u8]) -> Result<RawResponse, String> {
        let exchange = async {
            self.stream
                .write_all(request)
                .await
                .map_err(|e| format!("write: {e}"))?;
            self.stream
                .flush()
                .await
                .map_err(|e| format!("flush: {e}"))?;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            loop {
                if let Some(resp) = parse(&buf, false) {
                    return Ok(resp);
                }
                match self.stream.read(&mut chunk).await {
                    Ok(0) => {
                        return parse(&buf, true).ok_or_else(|| {
                            format!(
                                "connection closed before a response: {:?}",
                                String::from_utf8_lossy(&buf)
                            )
                        })
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) => {
                        return parse(&buf, true).ok_or_else(|| format!("read: {e}"));
                    }
                }
            }
        };
        tokio::time::timeout(EXCHANGE_LIMIT, exchange)
            .await
            .map_err(|_| "no response within 10 s".to_owned())?
    }

    /// One HTTP/2 `GET https://{authority}{path}` over this connection, with
    /// hyper's HTTP/2 client; the response with its whole body.
    pub async fn h2_get(self, authority: &str, path: &str) -> Result<Response<Bytes>, String> {
        let exchange = async {
            let (mut sender, conn) = hyper::client::conn::http2::handshake(
                TokioExecutor::new(),
                TokioIo::new(self.stream),
            )
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            let req = Request::get(format!("https://{authority}{path}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("h2 request: {e}"))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("h2 body: {e}"))?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(EXCHANGE_LIMIT, exchange)
            .await
            .map_err(|_| "no HTTP/2 response within 10 s".to_owned())?
    }
}

// ---- the TLS upstream ----

/// What a [`TlsUpstream`] has seen.
pub struct TlsUpstreamState {
    pub name: String,
    /// Handshakes completed, and handshakes that failed (a client that
    /// refused the certificate, or one without the certificate asked for).
    pub handshakes: AtomicUsize,
    pub failed_handshakes: AtomicUsize,
    /// Requests answered.
    pub hits: AtomicUsize,
    /// The SNI of the last completed handshake (`None` when none was sent).
    pub last_sni: Mutex<Option<String>>,
    /// The common name of the last client certificate received.
    pub last_client_cn: Mutex<Option<String>>,
    /// Headers of the last request.
    pub last_headers: Mutex<http::HeaderMap>,
}

/// An HTTP/1.1 upstream behind TLS that answers every request 200 with
/// `x-upstream: <name>` and the body `hello from <name>`. Stops when dropped.
pub struct TlsUpstream {
    pub addr: SocketAddr,
    pub state: Arc<TlsUpstreamState>,
    tasks: JoinSet<()>,
}

impl TlsUpstream {
    /// Serves `leaf` (and its intermediates); with `client_ca`, every client
    /// must present a certificate that CA signed.
    pub async fn start(name: &str, leaf: &Leaf, client_ca: Option<&Ca>) -> TlsUpstream {
        let provider = provider();
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap();
        let builder = match client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca.der()).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(leaf.chain(), leaf.key()).unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(TlsUpstreamState {
            name: name.to_owned(),
            handshakes: AtomicUsize::new(0),
            failed_handshakes: AtomicUsize::new(0),
            hits: AtomicUsize::new(0),
            last_sni: Mutex::new(None),
            last_client_cn: Mutex::new(None),
            last_headers: Mutex::new(http::HeaderMap::new()),
        });
        let mut tasks = JoinSet::new();
        let st = state.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (st, acceptor) = (st.clone(), acceptor.clone());
                conns.spawn(async move {
                    let accepted = tokio::time::timeout(EXCHANGE_LIMIT, acceptor.accept(tcp)).await;
                    let Ok(Ok(tls)) = accepted else {
                        st.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    {
                        let conn = tls.get_ref().1;
                        *st.last_sni.lock().unwrap() = conn.server_name().map(str::to_owned);
                        *st.last_client_cn.lock().unwrap() = conn
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .and_then(|c| cert_names(c).common_name);
                    }
                    st.handshakes.fetch_add(1, Ordering::SeqCst);
                    let svc = service_fn(move |req| answer(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        TlsUpstream { addr, state, tasks }
    }

    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn handshakes(&self) -> usize {
        self.state.handshakes.load(Ordering::SeqCst)
    }

    pub fn failed_handshakes(&self) -> usize {
        self.state.failed_handshakes.load(Ordering::SeqCst)
    }

    pub fn last_sni(&self) -> Option<String> {
        self.state.last_sni.lock().unwrap().clone()
    }

    pub fn last_client_cn(&self) -> Option<String> {
        self.state.last_client_cn.lock().unwrap().clone()
    }

    /// A header of the last request.
    pub fn seen(&self, name: &str) -> Option<String> {
        let headers = self.state.last_headers.lock().unwrap();
        headers.get(name).map(|v| v.to_str().unwrap().to_owned())
    }
}

impl Drop for TlsUpstream {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

async fn answer(
    st: Arc<TlsUpstreamState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    st.hits.fetch_add(1, Ordering::SeqCst);
    *st.last_headers.lock().unwrap() = req.headers().clone();
    Ok(Response::builder()
        .status(200)
        .header("x-upstream", &st.name)
        .body(Full::new(Bytes::from(format!("hello from {}", st.name))))
        .unwrap())
}

// ---- the gateway ----

/// Starts the gateway with `base_config` whose single listener is replaced
/// by `listeners` (YAML list items, each `  - address: ...`), followed by
/// `rest`; waits until it is ready. `port` is the first listener's port and
/// becomes `Gateway::port`; `dir` already holds the test's PEM files.
pub fn start_gateway(dir: tempfile::TempDir, port: u16, listeners: &str, rest: &str) -> Gateway {
    let admin_port = free_port();
    let base = base_config(port, admin_port, dir.path());
    let single = format!("listeners:\n  - address: 127.0.0.1:{port}\n");
    assert!(base.contains(&single), "base_config changed shape:\n{base}");
    let text = format!(
        "{}{rest}",
        base.replacen(&single, &format!("listeners:\n{listeners}"), 1)
    );
    let gw = Gateway::spawn_with(dir, port, admin_port, &text, &[]);
    gw.wait_ready();
    // `/readyz` speaks for the pools' health checks, not for the listeners:
    // a TLS listener can still be binding when it turns 200.
    let ports = listeners
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- address: 127.0.0.1:"))
        .map(|p| p.trim().parse::<u16>().unwrap());
    for port in ports {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "listener {port} never accepted; stderr:\n{}",
                gw.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    gw
}

/// One entry of a listener's `certificates:` list, `names` left out when
/// empty.
pub fn certificate_entry(cert: &str, key: &str, names: &[&str]) -> String {
    let names = if names.is_empty() {
        String::new()
    } else {
        let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        format!(", names: [{}]", quoted.join(", "))
    };
    format!("        - {{cert: \"{cert}\", key: \"{key}\"{names}}}\n")
}
