//! TLS from Portico to a pool's backends: SNI, verification of the backend's
//! certificate and name, a CA bundle of the pool's own, and a client
//! certificate for backends that ask for one.

use std::sync::Arc;

use pingora::upstreams::peer::{HttpPeer, PeerOptions};
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::read_certificates;
use crate::config::schema::UpstreamTlsSpec;

/// A pool's TLS, compiled.
pub struct UpstreamTls {
    /// The configured SNI; `None` sends each backend's own host.
    pub sni: Option<Arc<str>>,
    pub verify_cert: bool,
    pub verify_hostname: bool,
    ca: Option<Arc<[WrappedX509]>>,
    client: Option<Arc<CertKey>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("sni", &self.sni)
            .field("verify_cert", &self.verify_cert)
            .field("verify_hostname", &self.verify_hostname)
            .field("ca", &self.ca.as_ref().map(|c| c.len()))
            .field("client_cert", &self.client.is_some())
            .finish()
    }
}

impl UpstreamTls {
    /// Reads the CA bundle and the client certificate of the pool at `path`
    /// (`upstreams.NAME.tls`).
    pub fn build(path: &str, spec: &UpstreamTlsSpec) -> Result<UpstreamTls, Vec<String>> {
        let mut errors = Vec::new();
        let ca = match &spec.ca {
            Some(file) => match read_ca(&format!("{path}.ca"), file) {
                Ok(ca) => Some(ca),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            None => None,
        };
        let client = match (&spec.client_cert, &spec.client_key) {
            (Some(cert), Some(key)) => match read_client(path, cert, key) {
                Ok(client) => Some(client),
                Err(e) => {
                    errors.push(e);
                    None
                }
            },
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                errors.push(format!(
                    "{path}: client_cert and client_key go together; fix: set both or neither"
                ));
                None
            }
        };
        if let Some(sni) = &spec.sni {
            if sni.is_empty() || sni.bytes().any(|b| !b.is_ascii_graphic()) {
                errors.push(format!(
                    "{path}.sni: {sni:?} is not a host name; fix: write a name like \
                     api.internal.example.com"
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(UpstreamTls {
            sni: spec.sni.as_deref().map(Arc::from),
            verify_cert: spec.verify,
            verify_hostname: spec.verify && spec.verify_hostname,
            ca,
            client,
        })
    }

    /// A peer for the backend at `addr` whose configured host is `host`.
    pub fn peer(&self, addr: std::net::SocketAddr, host: &str) -> HttpPeer {
        let sni = self.sni.as_deref().unwrap_or(host).to_owned();
        let mut peer = match &self.client {
            Some(client) => HttpPeer::new_mtls(addr, sni, client.clone()),
            None => HttpPeer::new(addr, true, sni),
        };
        self.apply(&mut peer);
        peer
    }

    /// Sets the verification flags and the CA bundle on a peer that already
    /// speaks TLS (a health check's template).
    pub fn apply(&self, peer: &mut HttpPeer) {
        self.apply_options(&mut peer.options);
        if peer.client_cert_key.is_none() {
            peer.client_cert_key = self.client.clone();
        }
    }

    /// The verification flags and CA bundle alone, for a TCP probe's peer,
    /// which carries no client certificate.
    pub fn apply_options(&self, options: &mut PeerOptions) {
        options.verify_cert = self.verify_cert;
        options.verify_hostname = self.verify_hostname;
        options.ca = self.ca.clone();
    }
}

/// Each certificate is parsed here, since Pingora's wrapper panics on one it
/// cannot parse.
fn read_ca(at: &str, file: &str) -> Result<Arc<[WrappedX509]>, String> {
    let certs = read_parsed(at, file, "list valid X.509 CA certificates")?;
    let ca: Vec<WrappedX509> = certs
        .into_iter()
        .map(|cert| WrappedX509::new(cert.to_vec(), parse_x509))
        .collect();
    Ok(Arc::from(ca))
}

/// The certificates of a PEM file, each checked to parse as X.509.
fn read_parsed(
    at: &str,
    file: &str,
    fix: &str,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    let certs = read_certificates(at, file)?;
    for cert in &certs {
        if let Err(e) = X509Certificate::from_der(cert) {
            return Err(format!(
                "{at}: a certificate in {file:?} cannot be parsed ({e}); fix: {fix}"
            ));
        }
    }
    Ok(certs)
}

fn read_client(path: &str, cert: &str, key: &str) -> Result<Arc<CertKey>, String> {
    let chain = read_parsed(
        &format!("{path}.client_cert"),
        cert,
        "give the client certificate, then its intermediates, as PEM",
    )?;
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "{path}.client_key: cannot read a private key from {key:?} ({e}); fix: give a PEM \
             file holding the client certificate's key"
        )
    })?;
    // The same check the key gets when the client certificate is offered, so
    // a mismatched pair is refused here rather than at the first connection.
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).map_err(|e| {
        format!(
            "{path}.client_key: {key:?} is not a usable key ({e}); fix: use an RSA, ECDSA or \
             Ed25519 key"
        )
    })?;
    rustls::sign::CertifiedKey::new(chain.clone(), signing)
        .keys_match()
        .map_err(|e| {
            format!(
                "{path}: client_key {key:?} does not belong to client_cert {cert:?} ({e}); \
                 fix: pair the certificate with its own key"
            )
        })?;
    // Pingora turns the stored bytes back into a key with this conversion,
    // and unwraps it.
    if PrivateKeyDer::try_from(der.secret_der().to_vec()).is_err() {
        return Err(format!(
            "{path}.client_key: {key:?} is not a PKCS#8, PKCS#1 or SEC1 key; fix: convert it \
             with `openssl pkcs8 -topk8 -nocrypt`"
        ));
    }
    let raw = chain.iter().map(|c| c.to_vec()).collect();
    Ok(Arc::new(CertKey::new(raw, der.secret_der().to_vec())))
}
