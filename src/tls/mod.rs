//! TLS, on Pingora's rustls backend: the certificates a listener serves,
//! chosen by the client's SNI; the client certificates it asks for (mutual
//! TLS) and the identity read from them; the TLS a pool speaks to its
//! backends ([`upstream`]).
//!
//! Everything is read and checked when the snapshot is compiled, so a missing
//! file, a key that does not match its certificate or a CA file without a
//! certificate stops `portico check` and `portico run` with the key path,
//! never a handshake later. Each problem is written like a config error:
//! `"{key path}: {what is wrong}; fix: {how}"`.

pub mod proxy_protocol;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::schema::{HstsSpec, ListenerSpec, ListenerTlsSpec};

/// What the listeners do beyond accepting: TLS, HSTS and HTTPS redirects,
/// compiled from `listeners`.
#[derive(Debug, Default)]
pub struct Listeners {
    all: Vec<Listener>,
    /// Whether any listener sends HSTS or redirects, so requests on a file
    /// without either skip the lookup.
    has_rules: bool,
}

/// One listener, compiled.
#[derive(Debug)]
pub struct Listener {
    pub addr: std::net::SocketAddr,
    pub tls: Option<Arc<ListenerTls>>,
    /// The HTTPS port of `https_redirect`.
    pub redirect_port: Option<u16>,
}

impl Listeners {
    /// Reads every TLS listener's files; problems name the listener's key path.
    pub fn build(specs: &[ListenerSpec]) -> Result<Listeners, Vec<String>> {
        let mut errors = Vec::new();
        let mut all = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let path = format!("listeners[{i}]");
            let tls = match &spec.tls {
                Some(tls) => match ListenerTls::build(&format!("{path}.tls"), tls) {
                    Ok(tls) => Some(Arc::new(tls)),
                    Err(problems) => {
                        errors.extend(problems);
                        None
                    }
                },
                None => None,
            };
            if spec.proxy_protocol && spec.tls.is_none() {
                errors.push(format!(
                    "{path}.proxy_protocol: the PROXY protocol is read only in front of TLS \
                     (Pingora 0.9 has no hook for it on cleartext listeners); fix: add `tls` \
                     to this listener, or rely on X-Forwarded-For from trusted_proxies"
                ));
            }
            if spec.tls.is_some() && spec.https_redirect.is_some() {
                errors.push(format!(
                    "{path}.https_redirect: a TLS listener cannot redirect to HTTPS; fix: \
                     put https_redirect on a cleartext listener"
                ));
            }
            // Validation has checked that every address parses.
            let Ok(addr) = spec.address.parse() else {
                continue;
            };
            all.push(Listener {
                addr,
                tls,
                redirect_port: spec.https_redirect.as_ref().map(|r| r.port),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let has_rules = all
            .iter()
            .any(|l| l.redirect_port.is_some() || l.tls.as_ref().is_some_and(|t| t.hsts.is_some()));
        Ok(Listeners { all, has_rules })
    }

    /// The listener at `index` of the file.
    pub fn get(&self, index: usize) -> Option<&Listener> {
        self.all.get(index)
    }

    /// The listener a connection accepted on `local` came through, when any
    /// listener has HSTS or a redirect; `None` otherwise.
    #[inline]
    pub fn with_rules(&self, local: Option<std::net::SocketAddr>) -> Option<&Listener> {
        if !self.has_rules {
            return None;
        }
        let local = local?;
        self.all.iter().find(|l| {
            l.addr.port() == local.port()
                && (l.addr.ip() == local.ip() || l.addr.ip().is_unspecified())
        })
    }
}

/// The crypto provider of every TLS object Portico builds: ring, the one
/// Pingora's rustls backend installs.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A listener's TLS, compiled: the certificate resolver, the client
/// verifier, and the HSTS value its responses carry.
#[derive(Debug)]
pub struct ListenerTls {
    resolver: Arc<SniResolver>,
    client_verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// The whole `Strict-Transport-Security` value, made once.
    pub hsts: Option<http::HeaderValue>,
}

impl ListenerTls {
    /// Reads the certificates, keys and CA of the listener at `path`
    /// (`listeners[N].tls`).
    pub fn build(path: &str, spec: &ListenerTlsSpec) -> Result<ListenerTls, Vec<String>> {
        let mut errors = Vec::new();
        if spec.certificates.is_empty() {
            errors.push(format!(
                "{path}.certificates: no certificate is listed; fix: add one, like \
                 `certificates: [{{cert: /etc/portico/api.pem, key: /etc/portico/api.key}}]`"
            ));
        }
        let mut resolver = SniResolver::default();
        for (i, cert) in spec.certificates.iter().enumerate() {
            let at = format!("{path}.certificates[{i}]");
            match load_certified_key(&at, &cert.cert, &cert.key) {
                Ok((key, dns_names)) => {
                    let names = if cert.names.is_empty() {
                        dns_names
                    } else {
                        cert.names.clone()
                    };
                    if let Err(e) = resolver.add(&names, key) {
                        errors.push(format!("{at}.names: {e}"));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let client_verifier = match &spec.client_auth {
            Some(auth) => {
                match client_verifier(&format!("{path}.client_auth"), &auth.ca, auth.required) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            }
            None => None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ListenerTls {
            resolver: Arc::new(resolver),
            client_verifier,
            hsts: spec.hsts.as_ref().map(hsts_value),
        })
    }

    /// Pingora's settings for this listener: the SNI resolver, the client
    /// verifier, ALPN `h2` then `http/1.1`, and the handshake callback that
    /// keeps the client certificate's names for the request pipeline.
    pub fn settings(&self) -> TlsSettings {
        let callbacks: Box<dyn TlsAccept + Send + Sync> = Box::new(ClientCertNames);
        // `with_callbacks` cannot fail on the rustls backend; its `Result` is
        // the OpenSSL one's.
        let mut settings = match TlsSettings::with_callbacks(callbacks) {
            Ok(settings) => settings,
            Err(e) => unreachable!("rustls TlsSettings::with_callbacks failed: {e}"),
        };
        settings.set_cert_resolver(self.resolver.clone());
        if let Some(verifier) = &self.client_verifier {
            settings.set_client_cert_verifier(verifier.clone());
        }
        settings.enable_h2();
        settings
    }
}

fn hsts_value(spec: &HstsSpec) -> http::HeaderValue {
    let mut value = format!("max-age={}", spec.max_age.0.as_secs());
    if spec.include_subdomains {
        value.push_str("; includeSubDomains");
    }
    if spec.preload {
        value.push_str("; preload");
    }
    // Digits and fixed ASCII words only.
    http::HeaderValue::from_str(&value).unwrap_or(http::HeaderValue::from_static("max-age=0"))
}

/// Reads a PEM chain and its key; returns the signing key with the DNS names
/// the leaf certificate lists.
fn load_certified_key(
    at: &str,
    cert_path: &str,
    key_path: &str,
) -> Result<(Arc<CertifiedKey>, Vec<String>), String> {
    let chain = read_certificates(&format!("{at}.cert"), cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        format!(
            "{at}.key: cannot read a private key from {key_path:?} ({e}); fix: give a PEM \
             file holding the certificate's key (PKCS#8, PKCS#1 or SEC1)"
        )
    })?;
    let names = certificate_names(&chain[0]).dns;
    let certified = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| {
        format!(
            "{at}: the key in {key_path:?} cannot be used with the certificate in \
             {cert_path:?} ({e}); fix: pair each certificate with its own private key"
        )
    })?;
    Ok((Arc::new(certified), names))
}

/// Every certificate of a PEM file, in order; an error when there is none.
pub(crate) fn read_certificates(
    at: &str,
    path: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let fix = "fix: give a readable PEM file with at least one CERTIFICATE block";
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{at}: cannot read {path:?} ({e}); {fix}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{at}: {path:?} is not valid PEM ({e}); {fix}"))?;
    if certs.is_empty() {
        return Err(format!("{at}: {path:?} holds no certificate; {fix}"));
    }
    Ok(certs)
}

fn client_verifier(
    at: &str,
    ca_path: &str,
    required: bool,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(&format!("{at}.ca"), ca_path)? {
        roots.add(cert).map_err(|e| {
            format!(
                "{at}.ca: a certificate in {ca_path:?} cannot be a trust anchor ({e}); \
                 fix: list only CA certificates"
            )
        })?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| {
        format!("{at}.ca: cannot verify clients with {ca_path:?} ({e}); fix: list CA certificates")
    })
}

/// Chooses a listener's certificate from the SNI name: an exact name first,
/// then a wildcard one label deep (`*.example.com` covers `api.example.com`,
/// not `example.com` nor `a.b.example.com`), then the first certificate.
#[derive(Debug, Default)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    /// Adds a certificate for `names`; the first certificate added is the
    /// default. A name already taken by an earlier certificate keeps it.
    pub fn add(&mut self, names: &[String], key: Arc<CertifiedKey>) -> Result<(), String> {
        if self.default.is_none() {
            self.default = Some(key.clone());
        }
        for name in names {
            let name = name.trim().trim_end_matches('.').to_ascii_lowercase();
            let valid = |label: &str| {
                !label.is_empty()
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            };
            let (map, host) = match name.strip_prefix("*.") {
                Some(suffix) => (&mut self.wildcard, suffix),
                None => (&mut self.exact, name.as_str()),
            };
            if !host.split('.').all(valid) {
                return Err(format!(
                    "{name:?} is not a server name; fix: write names like api.example.com \
                     or *.example.com"
                ));
            }
            map.entry(host.to_owned()).or_insert_with(|| key.clone());
        }
        Ok(())
    }

    /// The certificate for the name a client asked for.
    pub fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = server_name else {
            return self.default.clone();
        };
        let lowered;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = name.to_ascii_lowercase();
            lowered.as_str()
        } else {
            name
        };
        if let Some(key) = self.exact.get(name) {
            return Some(key.clone());
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(key) = self.wildcard.get(parent) {
                return Some(key.clone());
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(client_hello.server_name())
    }
}

/// The names of a verified client certificate, for identifying its consumer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCert {
    /// The subject, written as RFC 4514 does (`CN=orders, O=Acme`).
    pub subject: String,
    /// The subject's common name, when it has one.
    pub common_name: Option<String>,
    /// DNS names, e-mail addresses and URIs of the subject alternative names.
    pub alt_names: Vec<String>,
}

impl ClientCert {
    /// Every name a consumer's `certificate_names` may match: the common
    /// name, then the alternative names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.common_name
            .iter()
            .map(String::as_str)
            .chain(self.alt_names.iter().map(String::as_str))
    }
}

/// Names read off a certificate.
struct Names {
    dns: Vec<String>,
    client: ClientCert,
}

fn certificate_names(der: &[u8]) -> Names {
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Names {
            dns: Vec::new(),
            client: ClientCert::default(),
        };
    };
    let common_name = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut dns = Vec::new();
    let mut alt_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => {
                    dns.push((*n).to_owned());
                    alt_names.push((*n).to_owned());
                }
                GeneralName::RFC822Name(n) | GeneralName::URI(n) => alt_names.push((*n).to_owned()),
                _ => {}
            }
        }
    }
    Names {
        dns,
        client: ClientCert {
            subject: cert.subject().to_string(),
            common_name,
            alt_names,
        },
    }
}

/// Reads the verified client certificate once per connection, after the
/// handshake, and hands its names to every request of that connection
/// through the TLS digest.
struct ClientCertNames;

#[async_trait]
impl TlsAccept for ClientCertNames {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        // Only a certificate the verifier accepted reaches here: rustls
        // ends the handshake of any other.
        let der = tls.peer_certificate_der()?;
        Some(Arc::new(certificate_names(der).client))
    }
}

#[cfg(test)]
mod tests;
