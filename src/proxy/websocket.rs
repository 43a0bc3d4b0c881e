//! WebSocket on the gateway side: the handshake checks, the connection to the
//! upstream, and the hand-off to the frame relay.
//!
//! Portico relays WebSocket itself instead of using Pingora's upgrade
//! proxying. In Pingora 0.9.1 (its issue #946, unfixed in that release) an
//! upstream that answers 101 before the proxy has passed on the request's
//! empty end of body makes the proxy treat that end as the end of the
//! tunnel: the client gets its 101 and then a closed connection, most often
//! with fast local upstreams. The relay also has to parse every frame for
//! the route's limits, which Pingora's byte tunnel does not offer. So, once
//! the route's policies have admitted the handshake in `request_filter`,
//! [`serve`] checks it, opens its own connection to a backend chosen like any
//! other request's, writes the client's 101, relays frames until either
//! side ends, and tells Pingora the request is answered. Writing a 101 to an
//! HTTP/1.1 upgrade request is what switches Pingora's server session to raw
//! bytes (pingora-core 0.9.1, `v1::server::prepare_response_header`: it sets
//! the session upgraded, makes the request body reader close-delimited and
//! the response body writer close-delimited), so `read_request_body` and
//! `write_response_body` then carry frames unchanged.

mod relay;
mod upstream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use http::header;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use portico_protocols::websocket::{accept_key, key_is_valid, VERSION};
use tracing::debug;

use super::ctx::RequestCtx;
use super::error::Failure;
use crate::config::schema::WebSocketSpec;
use crate::observe::metrics::metrics;

/// Whether the request asks to switch to WebSocket: such a request is served
/// by [`serve`], never by Pingora's upgrade proxying.
pub fn is_upgrade(req: &RequestHeader) -> bool {
    req.headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"websocket"))
}

/// The header fields that go with a refused handshake.
pub fn refusal_fields(failure: Failure) -> Vec<(http::HeaderName, http::HeaderValue)> {
    match failure {
        // RFC 6455 section 4.4: say which versions the server speaks.
        Failure::WebSocketVersion => vec![(
            header::SEC_WEBSOCKET_VERSION,
            http::HeaderValue::from_static(VERSION),
        )],
        _ => Vec::new(),
    }
}

/// Serves an admitted WebSocket handshake to its end: a refusal before any
/// upstream is involved is returned as a [`Failure`]; anything after that
/// (the upstream's own refusal, or a whole relayed connection) is answered
/// here and returns `Ok`.
pub async fn serve(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), Failure> {
    let snapshot = Arc::clone(&ctx.snapshot);
    let default = WebSocketSpec::default();
    let spec = ctx
        .route
        .and_then(|i| snapshot.config.routes.get(i))
        .and_then(|r| r.websocket.as_ref())
        .unwrap_or(&default);
    check_handshake(session.req_header(), spec)?;
    let route = ctx.route_id().to_owned();
    let _slot = OpenSlot::take(&route, spec.max_connections)?;
    let key = session
        .req_header()
        .headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| accept_key(k.as_bytes()))
        .ok_or(Failure::Internal)?;
    let (stream, head, early) = upstream::open(session, ctx).await?;
    if head.status != 101 {
        upstream::pass_refusal(session, ctx, stream, head, early).await;
        return Ok(());
    }
    let response = upstream::switching_response(&head, &key, &ctx.request_id)?;
    // Counted from before the client can see its 101 until the relay ends.
    let _open = OpenGauge::new(&route);
    // Past this point no refusal can be written: the client has its 101.
    if let Err(e) = session.write_response_header(response, false).await {
        debug!(request_id = %ctx.request_id, error = %e, "websocket client gone at 101");
        return Ok(());
    }
    // The relay's own timers govern the connection from now on; Pingora's
    // read timer would end a quiet but healthy connection.
    session.set_read_timeout(None);
    let limits = relay::Limits {
        max_message: spec.max_message_size.0,
        idle_timeout: spec.idle_timeout.0,
        ping_interval: Some(spec.ping_interval.0).filter(|d| !d.is_zero()),
    };
    let end = relay::run(session, stream, early, &limits, &route).await;
    debug!(request_id = %ctx.request_id, route = %route, end = ?end, "websocket closed");
    Ok(())
}

/// RFC 6455 section 4.2.1, and the route's origin allow-list. The version is
/// checked before the key so that a client speaking another version learns
/// which one to use.
fn check_handshake(req: &RequestHeader, spec: &WebSocketSpec) -> Result<(), Failure> {
    if req.method != http::Method::GET {
        return Err(Failure::BadRequest(
            "a WebSocket handshake must be a GET request",
        ));
    }
    if req.version != http::Version::HTTP_11 {
        return Err(Failure::BadRequest("a WebSocket handshake needs HTTP/1.1"));
    }
    let connection_upgrade = req
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| has_token(v.as_bytes(), b"upgrade"));
    if !connection_upgrade {
        return Err(Failure::BadRequest(
            "a WebSocket handshake needs Connection: Upgrade",
        ));
    }
    // Once the connection switches, body bytes would be read as frames.
    let has_body = req.headers.contains_key(header::TRANSFER_ENCODING)
        || req
            .headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .any(|v| v.as_bytes().trim_ascii() != b"0");
    if has_body {
        return Err(Failure::BadRequest("a WebSocket handshake carries no body"));
    }
    let version = single(req, &header::SEC_WEBSOCKET_VERSION);
    if version.map(|v| v.trim_ascii()) != Some(VERSION.as_bytes()) {
        return Err(Failure::WebSocketVersion);
    }
    if !single(req, &header::SEC_WEBSOCKET_KEY).is_some_and(|k| key_is_valid(k.trim_ascii())) {
        return Err(Failure::BadRequest(
            "Sec-WebSocket-Key must be one base64 nonce of 16 bytes",
        ));
    }
    if !spec.origins.is_empty() {
        let origin = single(req, &header::ORIGIN).map(|o| o.to_ascii_lowercase());
        let listed = origin.is_some_and(|o| spec.origins.iter().any(|a| a.as_bytes() == o));
        if !listed {
            return Err(Failure::OriginDenied);
        }
    }
    Ok(())
}

/// The value of a header that must appear exactly once.
fn single<'a>(req: &'a RequestHeader, name: &header::HeaderName) -> Option<&'a [u8]> {
    let mut values = req.headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first.as_bytes())
}

/// Whether a comma-separated header value lists `token`, ignoring case.
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// One connection in the route's open-connections gauge while it lives.
struct OpenGauge(prometheus::IntGauge);

impl OpenGauge {
    fn new(route: &str) -> OpenGauge {
        let gauge = metrics().ws_open.with_label_values(&[route]);
        gauge.inc();
        OpenGauge(gauge)
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One open connection counted against its route's `max_connections`.
///
/// Counts are kept by route id for the life of the process, so a reload
/// neither forgets the connections opened under the old configuration nor
/// lets a new limit be passed by them.
struct OpenSlot(Arc<AtomicU64>);

impl OpenSlot {
    fn take(route: &str, max: Option<u64>) -> Result<Option<OpenSlot>, Failure> {
        let Some(max) = max else {
            return Ok(None);
        };
        static COUNTS: OnceLock<Mutex<HashMap<String, Arc<AtomicU64>>>> = OnceLock::new();
        let counter = {
            let mut counts = COUNTS
                .get_or_init(Default::default)
                .lock()
                .map_err(|_| Failure::Internal)?;
            Arc::clone(counts.entry(route.to_owned()).or_default())
        };
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| {
                metrics()
                    .concurrency_rejected
                    .with_label_values(&[route])
                    .inc();
                Failure::ConcurrencyLimited
            })?;
        Ok(Some(OpenSlot(counter)))
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(edit: impl FnOnce(&mut RequestHeader)) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/chat", None).unwrap();
        req.insert_header("host", "example.com").unwrap();
        req.insert_header("upgrade", "websocket").unwrap();
        req.insert_header("connection", "keep-alive, Upgrade")
            .unwrap();
        req.insert_header("sec-websocket-version", "13").unwrap();
        req.insert_header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .unwrap();
        edit(&mut req);
        req
    }

    #[test]
    fn a_complete_handshake_passes() {
        let spec = WebSocketSpec::default();
        assert_eq!(check_handshake(&handshake(|_| {}), &spec), Ok(()));
        assert!(is_upgrade(&handshake(|_| {})));
    }

    #[test]
    fn each_defect_is_refused_with_its_status() {
        let spec = WebSocketSpec::default();
        let status = |edit: fn(&mut RequestHeader)| {
            check_handshake(&handshake(edit), &spec).map_err(Failure::status)
        };
        assert_eq!(status(|r| r.set_method(http::Method::POST)), Err(400));
        assert_eq!(
            status(|r| {
                r.remove_header("connection");
            }),
            Err(400)
        );
        assert_eq!(
            status(|r| {
                r.remove_header("sec-websocket-key");
            }),
            Err(400)
        );
        assert_eq!(
            status(|r| r.insert_header("sec-websocket-key", "c2hvcnQ=").unwrap()),
            Err(400)
        );
        assert_eq!(
            status(|r| r.insert_header("sec-websocket-version", "8").unwrap()),
            Err(426)
        );
        assert_eq!(
            status(|r| r.insert_header("content-length", "5").unwrap()),
            Err(400)
        );
        assert_eq!(
            status(|r| r.insert_header("transfer-encoding", "chunked").unwrap()),
            Err(400)
        );
        assert_eq!(
            status(|r| r.insert_header("content-length", "0").unwrap()),
            Ok(())
        );
        assert_eq!(
            status(|r| {
                r.append_header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .unwrap();
            }),
            Err(400)
        );
    }

    #[test]
    fn only_listed_origins_may_connect_when_a_list_is_set() {
        let spec = WebSocketSpec {
            origins: vec!["https://app.example.com".into()],
            ..WebSocketSpec::default()
        };
        let from = |origin: &'static str| handshake(|r| r.insert_header("origin", origin).unwrap());
        assert_eq!(
            check_handshake(&from("https://APP.example.com"), &spec),
            Ok(())
        );
        assert_eq!(
            check_handshake(&from("https://evil.example.com"), &spec),
            Err(Failure::OriginDenied)
        );
        assert_eq!(
            check_handshake(&handshake(|_| {}), &spec),
            Err(Failure::OriginDenied)
        );
    }

    #[test]
    fn the_connection_cap_counts_and_releases_slots() {
        let route = "slot-test-route";
        let first = OpenSlot::take(route, Some(1)).unwrap();
        assert!(first.is_some());
        assert_eq!(
            OpenSlot::take(route, Some(1)).err(),
            Some(Failure::ConcurrencyLimited)
        );
        drop(first);
        assert!(OpenSlot::take(route, Some(1)).unwrap().is_some());
        assert!(OpenSlot::take(route, None).unwrap().is_none());
    }
}
