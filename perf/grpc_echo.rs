//! The gRPC upstream of `perf/grpc.sh`: a tonic server (h2c) whose one
//! method, `portico.perf.Echo/Unary`, answers each message with itself.
//! Written out by hand like the test services, so no protoc is needed.
//!
//!   cargo run --release --example grpc_echo -- 127.0.0.1:50051
//!
//! It prints `listening <addr>` once it accepts connections, and runs on one
//! tokio worker thread, as the HTTP upstream of `perf/run.sh` does.

use std::convert::Infallible;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(string, tag = "1")]
    text: String,
}

#[derive(Clone)]
struct Echo;

impl NamedService for Echo {
    const NAME: &'static str = "portico.perf.Echo";
}

impl Service<http::Request<Body>> for Echo {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let unary = req.uri().path() == "/portico.perf.Echo/Unary";
        Box::pin(async move {
            if !unary {
                return Ok(Status::unimplemented("only Unary").into_http());
            }
            let echo = tower::service_fn(|r: Request<Msg>| async move {
                Ok::<_, Status>(Response::new(r.into_inner()))
            });
            let mut grpc = tonic::server::Grpc::new(ProstCodec::<Msg, Msg>::default());
            Ok(grpc.unary(echo, req).await)
        })
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:50051".into())
        .parse()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        println!("listening {}", listener.local_addr()?);
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tonic::transport::Server::builder()
            .add_service(Echo)
            .serve_with_incoming(incoming)
            .await?;
        Ok(())
    })
}
