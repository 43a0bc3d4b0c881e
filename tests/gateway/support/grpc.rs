//! A real tonic gRPC server and client, written out by hand so that no
//! protoc is needed: the messages derive `prost::Message`, the service is a
//! `tower` service that hands each path to `tonic::server::Grpc`, and the
//! client calls `tonic::client::Grpc` with the path.
//!
//! Service `portico.test.Echo`:
//! - `Unary`: echoes the message after `delay_ms`; answers the status named
//!   by `fail_code` instead when it is not 0;
//! - `Serve`: sends `count` copies of the message;
//! - `Collect`: answers one message joining the texts received and their count;
//! - `Chat`: echoes each message, then ends with trailers `x-echoed: <n>`.
//!
//! The server also runs the standard `grpc.health.v1.Health` service, and
//! counts the TCP connections it accepted.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use http::uri::PathAndQuery;
use tokio::net::TcpListener;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_health::server::HealthReporter;
use tonic_prost::ProstCodec;

/// Up to 16 MiB per message on both ends, so a 4 MiB message passes with room.
pub const MAX_MESSAGE: usize = 16 * 1024 * 1024;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Msg {
    #[prost(string, tag = "1")]
    pub text: String,
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
    #[prost(uint64, tag = "3")]
    pub delay_ms: u64,
    #[prost(uint32, tag = "4")]
    pub count: u32,
    #[prost(int32, tag = "5")]
    pub fail_code: i32,
}

impl Msg {
    pub fn text(text: &str) -> Msg {
        Msg {
            text: text.into(),
            ..Msg::default()
        }
    }
}

pub const SERVICE: &str = "portico.test.Echo";

/// What the server saw, for the tests to check.
#[derive(Default)]
pub struct Seen {
    pub connections: AtomicUsize,
    pub calls: AtomicUsize,
    /// The last request's metadata.
    pub last_metadata: std::sync::Mutex<Option<MetadataMap>>,
}

/// A running tonic server; stops when dropped.
pub struct GrpcServer {
    pub addr: SocketAddr,
    pub seen: Arc<Seen>,
    pub health: HealthReporter,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl GrpcServer {
    /// Starts the server on an ephemeral loopback port, cleartext h2.
    pub async fn start() -> GrpcServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        GrpcServer::serve(listener, None).await
    }

    /// Starts the server over TLS with `tls` (which must offer ALPN h2).
    pub async fn start_tls(tls: tokio_rustls::rustls::ServerConfig) -> GrpcServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        GrpcServer::serve(listener, Some(Arc::new(tls))).await
    }

    async fn serve(
        listener: TcpListener,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    ) -> GrpcServer {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_serving::<EchoServer>().await;
        let echo = EchoServer {
            seen: Arc::clone(&seen),
        };
        let counted = Arc::clone(&seen);
        let accepted = async_stream(listener, counted, tls);
        let router = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(echo);
        let task = tokio::spawn(async move {
            let _ = router.serve_with_incoming(accepted).await;
        });
        GrpcServer {
            addr,
            seen,
            health,
            task,
        }
    }

    pub fn connections(&self) -> usize {
        self.seen.connections.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> usize {
        self.seen.calls.load(Ordering::SeqCst)
    }
}

/// A connection the server reads, cleartext or TLS.
pub trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> IoStream for T {}

impl tonic::transport::server::Connected for Box<dyn IoStream> {
    type ConnectInfo = ();
    fn connect_info(&self) {}
}

/// The accepted connections as a stream, counted, with TLS when asked.
fn async_stream(
    listener: TcpListener,
    seen: Arc<Seen>,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
) -> impl Stream<Item = Result<Box<dyn IoStream>, std::io::Error>> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    futures_util::stream::unfold(
        (listener, seen, acceptor),
        |(listener, seen, acceptor)| async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                seen.connections.fetch_add(1, Ordering::SeqCst);
                let conn: Box<dyn IoStream> = match &acceptor {
                    None => Box::new(tcp),
                    Some(a) => match a.accept(tcp).await {
                        Ok(s) => Box::new(s),
                        Err(_) => continue,
                    },
                };
                return Some((Ok(conn), (listener, seen, acceptor)));
            }
        },
    )
}

/// The hand-written `portico.test.Echo` service.
#[derive(Clone)]
struct EchoServer {
    seen: Arc<Seen>,
}

impl NamedService for EchoServer {
    const NAME: &'static str = SERVICE;
}

fn grpc() -> tonic::server::Grpc<ProstCodec<Msg, Msg>> {
    tonic::server::Grpc::new(ProstCodec::default())
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

impl Service<http::Request<Body>> for EchoServer {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        self.seen.calls.fetch_add(1, Ordering::SeqCst);
        let seen = Arc::clone(&self.seen);
        let method = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
        Box::pin(async move {
            let response = match method.as_str() {
                "Unary" => {
                    let svc = tower::service_fn(move |r: Request<Msg>| {
                        *seen.last_metadata.lock().unwrap() = Some(r.metadata().clone());
                        unary(r)
                    });
                    grpc().unary(svc, req).await
                }
                "Serve" => {
                    let svc = tower::service_fn(serve);
                    grpc().server_streaming(svc, req).await
                }
                "Collect" => {
                    let svc = tower::service_fn(collect);
                    grpc().client_streaming(svc, req).await
                }
                "Chat" => {
                    let svc = tower::service_fn(chat);
                    grpc().streaming(svc, req).await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

async fn unary(req: Request<Msg>) -> Result<Response<Msg>, Status> {
    let msg = req.into_inner();
    if msg.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(msg.delay_ms)).await;
    }
    if msg.fail_code != 0 {
        return Err(Status::new(Code::from(msg.fail_code), "asked to fail"));
    }
    Ok(Response::new(msg))
}

async fn serve(req: Request<Msg>) -> Result<Response<MsgStream>, Status> {
    let msg = req.into_inner();
    let copies = (0..msg.count).map(move |i| {
        Ok(Msg {
            count: i,
            ..msg.clone()
        })
    });
    Ok(Response::new(Box::pin(futures_util::stream::iter(copies))))
}

async fn collect(req: Request<Streaming<Msg>>) -> Result<Response<Msg>, Status> {
    let mut stream = req.into_inner();
    let mut joined = String::new();
    let mut count = 0;
    while let Some(msg) = stream.message().await? {
        joined.push_str(&msg.text);
        count += 1;
    }
    Ok(Response::new(Msg {
        text: joined,
        count,
        ..Msg::default()
    }))
}

async fn chat(req: Request<Streaming<Msg>>) -> Result<Response<MsgStream>, Status> {
    let incoming = req.into_inner();
    let echoed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&echoed);
    let replies = incoming.map(move |m| {
        counter.fetch_add(1, Ordering::SeqCst);
        m
    });
    // A status with code OK at the end of the stream is how tonic sends
    // custom trailers on a successful call.
    let end = futures_util::stream::once(async move {
        let mut trailers = MetadataMap::new();
        let n = echoed.load(Ordering::SeqCst).to_string();
        trailers.insert("x-echoed", n.parse().unwrap());
        Err(Status::with_metadata(Code::Ok, "", trailers))
    });
    Ok(Response::new(Box::pin(replies.chain(end))))
}

/// A client for `portico.test.Echo` over one HTTP/2 connection.
#[derive(Clone)]
pub struct EchoClient {
    grpc: tonic::client::Grpc<Channel>,
}

fn path(method: &str) -> PathAndQuery {
    PathAndQuery::try_from(format!("/{SERVICE}/{method}")).unwrap()
}

impl EchoClient {
    /// Connects over cleartext h2 (prior knowledge) to `addr`.
    pub async fn connect(addr: SocketAddr) -> EchoClient {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        EchoClient::over(channel)
    }

    /// Connects over TLS to `127.0.0.1:port`, offering ALPN `h2` only,
    /// trusting `ca` and sending `sni`.
    pub async fn connect_tls(port: u16, ca: &super::tls::Ca, sni: &str) -> EchoClient {
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        roots.add(ca.der()).unwrap();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = tokio_rustls::rustls::pki_types::ServerName::try_from(sni.to_owned()).unwrap();
        let connect = tower::service_fn(move |_uri: http::Uri| {
            let (connector, name) = (connector.clone(), name.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                let tls = connector.connect(name, tcp).await?;
                let (_, session) = tls.get_ref();
                assert_eq!(
                    session.alpn_protocol(),
                    Some(&b"h2"[..]),
                    "ALPN chose no h2"
                );
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        });
        // The URI only names the endpoint; the connector above dials it.
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{sni}:{port}"))
            .unwrap()
            .connect_with_connector(connect)
            .await
            .unwrap();
        EchoClient::over(channel)
    }

    /// A client on an existing channel.
    pub fn over(channel: Channel) -> EchoClient {
        let grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        EchoClient { grpc }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unknown(format!("not ready: {e}")))
    }

    pub async fn unary(&mut self, req: impl tonic::IntoRequest<Msg>) -> Result<Msg, Status> {
        self.call_unary("Unary", req.into_request()).await
    }

    /// A unary call to any method of the service, by name.
    pub async fn call_unary(&mut self, method: &str, req: Request<Msg>) -> Result<Msg, Status> {
        self.ready().await?;
        let codec = ProstCodec::<Msg, Msg>::default();
        let resp = self.grpc.unary(req, path(method), codec).await?;
        Ok(resp.into_inner())
    }

    pub async fn serve(&mut self, msg: Msg) -> Result<Vec<Msg>, Status> {
        self.ready().await?;
        let codec = ProstCodec::<Msg, Msg>::default();
        let resp = self
            .grpc
            .server_streaming(Request::new(msg), path("Serve"), codec)
            .await?;
        let mut stream = resp.into_inner();
        let mut out = Vec::new();
        while let Some(m) = stream.message().await? {
            out.push(m);
        }
        Ok(out)
    }

    pub async fn collect(&mut self, msgs: Vec<Msg>) -> Result<Msg, Status> {
        self.ready().await?;
        let codec = ProstCodec::<Msg, Msg>::default();
        let outgoing = futures_util::stream::iter(msgs);
        let resp = self
            .grpc
            .client_streaming(Request::new(outgoing), path("Collect"), codec)
            .await?;
        Ok(resp.into_inner())
    }

    /// Sends `msgs` on a bidirectional call; returns the replies and the
    /// trailers.
    pub async fn chat(&mut self, msgs: Vec<Msg>) -> Result<(Vec<Msg>, MetadataMap), Status> {
        self.ready().await?;
        let codec = ProstCodec::<Msg, Msg>::default();
        let outgoing = futures_util::stream::iter(msgs);
        let resp = self
            .grpc
            .streaming(Request::new(outgoing), path("Chat"), codec)
            .await?;
        let mut stream = resp.into_inner();
        let mut out = Vec::new();
        while let Some(m) = stream.message().await? {
            out.push(m);
        }
        let trailers = stream.trailers().await?.unwrap_or_default();
        Ok((out, trailers))
    }
}

/// The `upstreams:` entry of a pool named `name` for `servers`, over h2c.
pub fn h2c_upstream(name: &str, servers: &[&GrpcServer], extra: &str) -> String {
    let backends: Vec<String> = servers
        .iter()
        .map(|s| format!("{{ address: \"{}\" }}", s.addr))
        .collect();
    format!(
        "  {name}:\n    protocol: h2c\n    backends: [{}]\n{extra}",
        backends.join(", ")
    )
}

/// An h2c backend that takes every request and never answers it, recording
/// the `grpc-timeout` each request carried.
pub struct SilentBackend {
    pub addr: SocketAddr,
    pub timeouts: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SilentBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SilentBackend {
    pub async fn start() -> SilentBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let timeouts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&timeouts);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let seen = Arc::clone(&seen);
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    let value = req
                        .headers()
                        .get("grpc-timeout")
                        .map(|v| v.to_str().unwrap_or("?").to_owned())
                        .unwrap_or_default();
                    seen.lock().unwrap().push(value);
                    async move {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        let _keep = req;
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Empty::<bytes::Bytes>::new(),
                        ))
                    }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(io, svc)
                    .await;
                });
            }
        });
        SilentBackend {
            addr,
            timeouts,
            task,
        }
    }
}
