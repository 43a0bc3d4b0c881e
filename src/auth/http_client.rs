//! The HTTP client of the identity services Portico calls itself: JWK set
//! endpoints and token introspection. It speaks `http://` and `https://`,
//! the latter verified against the system's roots, read once per process
//! (`SSL_CERT_FILE` and `SSL_CERT_DIR` point it elsewhere, as for OpenSSL).

use std::sync::{Arc, OnceLock};

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use tracing::warn;

/// A pooled client for `http://` and `https://` URLs.
pub type HttpsClient<B> = Client<HttpsConnector<HttpConnector>, B>;

/// The system's trust anchors, loaded on first use. Certificates that do
/// not parse are skipped; no roots at all leaves `https://` URLs failing
/// their handshake with an error naming the certificate.
fn roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                warn!(error = %e, "reading the system's CA certificates");
            }
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                warn!("no CA certificate found on this system: https identity endpoints will fail");
            }
            Arc::new(store)
        })
        .clone()
}

/// A client for one endpoint; connections are kept and reused.
pub fn build<B>() -> HttpsClient<B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let config = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots()).with_no_client_auth());
    let config = match config {
        Ok(config) => config,
        // The ring provider supports the default versions; this is unreachable
        // short of a rustls change, and then only `https://` URLs fail.
        Err(e) => {
            warn!(error = %e, "cannot build the TLS client configuration");
            ClientConfig::builder_with_provider(crate::tls::provider())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map(|b| b.with_root_certificates(roots()).with_no_client_auth())
                .unwrap_or_else(|e| unreachable!("rustls refused TLS 1.3 with ring: {e}"))
        }
    };
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}
