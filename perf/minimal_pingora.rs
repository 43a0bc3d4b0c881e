//! The smallest useful Pingora 0.9 reverse proxy: every request goes to one
//! fixed upstream, with nothing else done on the way.
//!
//! It is a row of every table in `perf/RESULTS.md`, so that the distance
//! between Portico and the framework it is built on can be read off directly.
//! Only `upstream_peer` is implemented; every other hook keeps Pingora's
//! default. Like Portico's listeners it accepts HTTP/1.1 and cleartext
//! HTTP/2 with prior knowledge, and it keeps upstream connections alive in
//! Pingora's pool.
//!
//! ```text
//! minimal_pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]
//! ```
//!
//! Both addresses are `ip:port` (no name lookup happens). THREADS defaults
//! to 1. A bad argument prints usage and exits with status 2.
//!
//! With `MINIMAL_PINGORA_H2_STREAMS=N` in the environment the upstream is
//! spoken to in cleartext HTTP/2 (prior knowledge) with up to N streams per
//! connection, as Portico's `protocol: h2c` pools do: the floor under
//! Portico's gRPC figures (perf/grpc.sh).

use std::net::SocketAddr;
use std::process::ExitCode;

use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::prelude::{Opt, Server};
use pingora::proxy::{ProxyHttp, ProxyServiceBuilder, Session};
use pingora::server::configuration::ServerConf;
use pingora::upstreams::peer::HttpPeer;
use pingora::Result;

const USAGE: &str = "usage: minimal_pingora LISTEN_ADDR UPSTREAM_ADDR [THREADS]";

/// Sends every request to `upstream`.
struct FixedUpstream {
    upstream: SocketAddr,
    /// `Some(streams)`: h2c upstream with that many streams per connection.
    h2_streams: Option<usize>,
}

#[async_trait]
impl ProxyHttp for FixedUpstream {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        if let Some(streams) = self.h2_streams {
            peer.options.alpn = pingora::protocols::ALPN::H2;
            peer.options.max_h2_streams = streams;
        }
        Ok(Box::new(peer))
    }
}

struct Args {
    listen: SocketAddr,
    upstream: SocketAddr,
    threads: usize,
}

fn parse_args() -> std::result::Result<Args, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, upstream, threads) = match args.as_slice() {
        [l, u] => (l, u, "1"),
        [l, u, t] => (l, u, t.as_str()),
        _ => return Err("expected two or three arguments".into()),
    };
    let addr = |s: &str| {
        s.parse::<SocketAddr>()
            .map_err(|e| format!("bad address {s:?}: {e}"))
    };
    let threads = match threads.parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            return Err(format!(
                "bad thread count {threads:?}: want a number above 0"
            ))
        }
    };
    Ok(Args {
        listen: addr(listen)?,
        upstream: addr(upstream)?,
        threads,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("minimal_pingora: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let conf = ServerConf {
        threads: args.threads,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(Opt::default(), conf);
    server.bootstrap();
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    let h2_streams = match std::env::var("MINIMAL_PINGORA_H2_STREAMS") {
        Err(_) => None,
        Ok(n) => match n.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                eprintln!(
                    "minimal_pingora: MINIMAL_PINGORA_H2_STREAMS={n:?}: want a number above 0"
                );
                return ExitCode::from(2);
            }
        },
    };
    let proxy = FixedUpstream {
        upstream: args.upstream,
        h2_streams,
    };
    let mut service = ProxyServiceBuilder::new(&server.configuration, proxy)
        .name("minimal_pingora")
        .server_options(options)
        .build();
    service.add_tcp(&args.listen.to_string());
    server.add_service(service);
    server.run_forever()
}
