//! The upstream half of a WebSocket handshake: connecting to a backend with
//! Pingora's connector (so the pool's TLS and connect timeout apply), sending
//! the handshake, reading the answer's head, and passing a refusal on.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header;
use pingora::connectors::TransportConnector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::Session;
use pingora::ErrorType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;

use super::super::ctx::RequestCtx;
use super::super::error::Failure;
use super::super::{headers, prepare_upstream_request, select_backend};
use crate::observe::metrics::metrics;
use crate::upstream::Outcome;

/// The longest response head accepted from an upstream.
const MAX_HEAD: usize = 64 * 1024;
/// Header fields accepted in a response head.
const MAX_FIELDS: usize = 100;

fn connector() -> &'static TransportConnector {
    static CONNECTOR: OnceLock<TransportConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| TransportConnector::new(None))
}

/// Connects to a backend of the route's pool, moving on to another one when
/// a connect fails (as many times as the pool's `retries`), sends the
/// handshake and reads the final response head. Also returns the bytes that
/// came after the head: an upstream may send frames right behind its 101.
pub(super) async fn open(
    session: &Session,
    ctx: &mut RequestCtx,
) -> Result<(Stream, ResponseHeader, BytesMut), Failure> {
    let pool = ctx.pool().cloned().ok_or(Failure::NoRoute)?;
    loop {
        let mut peer = select_backend(session, ctx)
            .map_err(|_| ctx.failure.unwrap_or(Failure::NoHealthyBackend))?;
        // WebSocket over HTTP/2 (RFC 8441) is not spoken upstream.
        peer.options.alpn = ALPN::H1;
        let idx = ctx.backend.ok_or(Failure::Internal)?;
        let read_timeout = peer.options.read_timeout.unwrap_or(Duration::from_secs(30));
        match connector().new_stream(&*peer).await {
            Ok(mut stream) => {
                ctx.upstream_sent = Some(std::time::Instant::now());
                let request = upstream_request(session, ctx)?;
                let (head, early) = match exchange(&mut stream, &request, read_timeout).await {
                    Ok(answer) => answer,
                    Err(failure) => {
                        // Connected but no usable answer: the backend's
                        // fault, as a broken response is for any request.
                        pool.report(idx, Outcome::ServerError);
                        return Err(failure);
                    }
                };
                ctx.upstream_latency = ctx.upstream_sent.map(|t| t.elapsed());
                report(ctx, &head);
                return Ok((stream, head, early));
            }
            Err(e) => {
                let backend = &pool.backends()[idx];
                pool.report(idx, Outcome::ConnectFailure);
                metrics()
                    .connect_failures
                    .with_label_values(&[&*pool.name, &backend.label])
                    .inc();
                warn!(
                    request_id = %ctx.request_id, upstream = %pool.name,
                    backend = %backend.label, error = e.etype().as_str(),
                    "upstream connect failed"
                );
                ctx.inflight = None;
                let timed_out = matches!(
                    e.etype(),
                    ErrorType::ConnectTimedout | ErrorType::TLSHandshakeTimedout
                );
                let failure = if timed_out {
                    Failure::UpstreamTimeout
                } else {
                    Failure::UpstreamFailed
                };
                ctx.failure = Some(failure);
                if ctx.tried.len() > pool.retries {
                    return Err(failure);
                }
            }
        }
    }
}

/// The pool and its circuit hear of the answer as they do for any request.
fn report(ctx: &mut RequestCtx, head: &ResponseHeader) {
    let failed = head.status.is_server_error();
    if let Some(attempt) = ctx.circuit.take() {
        if failed {
            attempt.failed();
        } else {
            attempt.succeeded();
        }
    }
    if let (Some(pool), Some(idx)) = (ctx.pool(), ctx.backend) {
        let outcome = if failed {
            Outcome::ServerError
        } else {
            Outcome::Success
        };
        pool.report(idx, outcome);
    }
}

/// The client's handshake with the forwarding headers any request gets, and
/// without `Sec-WebSocket-Extensions`: a compressed message could not be
/// measured against the route's limits, so no extension is negotiated.
fn upstream_request(session: &Session, ctx: &RequestCtx) -> Result<Bytes, Failure> {
    let mut req: RequestHeader = session.req_header().clone();
    prepare_upstream_request(session, &mut req, ctx).map_err(|_| Failure::Internal)?;
    for name in [
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        req.remove_header(&name);
    }
    req.insert_header(header::CONNECTION, "Upgrade")
        .and_then(|_| req.insert_header(header::UPGRADE, "websocket"))
        .map_err(|_| Failure::Internal)?;
    let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = BytesMut::with_capacity(512);
    out.extend_from_slice(req.method.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(out.freeze())
}

/// Sends the handshake and reads the final answer's head within the pool's
/// read timeout; informational answers other than 101 are skipped.
async fn exchange(
    stream: &mut Stream,
    request: &[u8],
    read_timeout: Duration,
) -> Result<(ResponseHeader, BytesMut), Failure> {
    let io = async {
        stream.write_all(request).await.map_err(broken)?;
        stream.flush().await.map_err(broken)?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            if let Some((head, used)) = parse_head(&buf)? {
                buf.advance(used);
                if head.status.is_informational() && head.status != 101 {
                    continue;
                }
                return Ok((head, buf));
            }
            if buf.len() >= MAX_HEAD {
                return Err(Failure::UpstreamFailed);
            }
            if stream.read_buf(&mut buf).await.map_err(broken)? == 0 {
                return Err(Failure::UpstreamFailed);
            }
        }
    };
    match tokio::time::timeout(read_timeout, io).await {
        Ok(result) => result,
        Err(_) => Err(Failure::UpstreamTimeout),
    }
}

/// An upstream connection that failed mid-exchange.
fn broken(_: std::io::Error) -> Failure {
    Failure::UpstreamFailed
}

/// A complete response head at the start of `buf`, and its length.
fn parse_head(buf: &[u8]) -> Result<Option<(ResponseHeader, usize)>, Failure> {
    let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut fields);
    let used = match parsed.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Failure::UpstreamFailed),
    };
    let status = parsed.code.ok_or(Failure::UpstreamFailed)?;
    let mut head = ResponseHeader::build(status, Some(parsed.headers.len()))
        .map_err(|_| Failure::UpstreamFailed)?;
    for field in parsed.headers.iter() {
        let name = header::HeaderName::from_bytes(field.name.as_bytes())
            .map_err(|_| Failure::UpstreamFailed)?;
        let value =
            http::HeaderValue::from_bytes(field.value).map_err(|_| Failure::UpstreamFailed)?;
        head.append_header(name, value)
            .map_err(|_| Failure::UpstreamFailed)?;
    }
    Ok(Some((head, used)))
}

/// The 101 for the client, after checking that the upstream really accepted
/// this handshake and negotiated nothing the relay cannot inspect.
pub(super) fn switching_response(
    head: &ResponseHeader,
    expected_accept: &str,
    request_id: &str,
) -> Result<Box<ResponseHeader>, Failure> {
    let accept = head.headers.get(header::SEC_WEBSOCKET_ACCEPT);
    if accept.map(|a| a.as_bytes()) != Some(expected_accept.as_bytes()) {
        return Err(Failure::UpstreamFailed);
    }
    if head.headers.contains_key(header::SEC_WEBSOCKET_EXTENSIONS) {
        return Err(Failure::UpstreamFailed);
    }
    let mut response = head.clone();
    strip_hop_by_hop(&mut response);
    response
        .insert_header(header::CONNECTION, "Upgrade")
        .and_then(|_| response.insert_header(header::UPGRADE, "websocket"))
        .and_then(|_| response.insert_header("x-request-id", request_id))
        .map_err(|_| Failure::Internal)?;
    Ok(Box::new(response))
}

fn strip_hop_by_hop(head: &mut ResponseHeader) {
    let named = headers::connection_tokens(&head.headers);
    for name in headers::HOP_BY_HOP.iter().chain([&header::UPGRADE]) {
        head.remove_header(name);
    }
    for name in named {
        head.remove_header(&name);
    }
}

/// Passes the upstream's refusal of the handshake to the client: its status,
/// its end-to-end headers and its body, streamed.
pub(super) async fn pass_refusal(
    session: &mut Session,
    ctx: &RequestCtx,
    mut stream: Stream,
    mut head: ResponseHeader,
    early: BytesMut,
) {
    strip_hop_by_hop(&mut head);
    let _ = head.insert_header("x-request-id", &ctx.request_id);
    let framing = Framing::of(&head);
    if session
        .write_response_header(Box::new(head), matches!(framing, Framing::Length(0)))
        .await
        .is_err()
    {
        return;
    }
    let mut body = BodyReader {
        stream: &mut stream,
        buf: early,
    };
    // An upstream that breaks off mid-body leaves the client's response
    // short; closing the connection is all that can be done then.
    let _ = body.copy(framing, session).await;
    let _ = session.write_response_body(None, true).await;
}

/// How a refusal's body ends.
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

impl Framing {
    fn of(head: &ResponseHeader) -> Framing {
        if matches!(head.status.as_u16(), 204 | 304) {
            return Framing::Length(0);
        }
        let chunked = head
            .headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .any(|v| super::has_token(v.as_bytes(), b"chunked"));
        if chunked {
            return Framing::Chunked;
        }
        head.headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map_or(Framing::UntilClose, Framing::Length)
    }
}

/// Reads a refusal's body from the upstream, starting with the bytes that
/// came with its head.
struct BodyReader<'a> {
    stream: &'a mut Stream,
    buf: BytesMut,
}

impl BodyReader<'_> {
    async fn fill(&mut self) -> Result<(), Failure> {
        self.buf.reserve(16 * 1024);
        match self.stream.read_buf(&mut self.buf).await.map_err(broken)? {
            0 => Err(Failure::UpstreamFailed),
            _ => Ok(()),
        }
    }

    async fn copy(&mut self, framing: Framing, session: &mut Session) -> Result<(), Failure> {
        match framing {
            Framing::Length(n) => self.copy_exact(n, session).await,
            Framing::UntilClose => loop {
                if !self.buf.is_empty() {
                    let chunk = self.buf.split().freeze();
                    write(session, chunk).await?;
                }
                if self.fill().await.is_err() {
                    return Ok(());
                }
            },
            Framing::Chunked => loop {
                let size = self.chunk_size().await?;
                if size == 0 {
                    return Ok(());
                }
                self.copy_exact(size, session).await?;
                while self.buf.len() < 2 {
                    self.fill().await?;
                }
                self.buf.advance(2);
            },
        }
    }

    async fn copy_exact(&mut self, mut left: u64, session: &mut Session) -> Result<(), Failure> {
        while left > 0 {
            if self.buf.is_empty() {
                self.fill().await?;
            }
            let take = usize::try_from(left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
            let chunk = self.buf.split_to(take).freeze();
            left -= take as u64;
            write(session, chunk).await?;
        }
        Ok(())
    }

    async fn chunk_size(&mut self) -> Result<u64, Failure> {
        loop {
            match httparse::parse_chunk_size(&self.buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    self.buf.advance(used);
                    return Ok(size);
                }
                Ok(httparse::Status::Partial) if self.buf.len() < 1024 => self.fill().await?,
                _ => return Err(Failure::UpstreamFailed),
            }
        }
    }
}

async fn write(session: &mut Session, chunk: Bytes) -> Result<(), Failure> {
    session
        .write_response_body(Some(chunk), false)
        .await
        .map_err(|_| Failure::UpstreamFailed)
}
