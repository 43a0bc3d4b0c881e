//! Building and running the Pingora server from a validated configuration.
//!
//! Nothing here starts a thread or a runtime before Pingora's `run_forever`
//! (daemon mode forks there); name resolution runs on a short-lived
//! current-thread runtime that is gone before the fork.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::listeners::ListenerConfig;
use pingora::prelude::{background_service, Opt, Server};
use pingora::protocols::http::v2::server::default_h2_options;
use pingora::protocols::l4::stream::{L4BufferSettings, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora::proxy::ProxyServiceBuilder;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;
use tracing::info;

use crate::admin::Admin;
use crate::config::{self, Config};
use crate::gateway::{SharedSnapshot, Snapshot};
use crate::observe::logging;
use crate::proxy::handover::HandoverWatch;
use crate::proxy::{Gateway, SERVICE_NAME};
use crate::tls::proxy_protocol::ProxyProtocol;
use crate::upstream::health::HealthChecker;
use crate::upstream::resolve::resolve_all;

/// How long a connection on a `proxy_protocol` listener may take to send
/// its PROXY header; a balancer sends it with the connection's first bytes.
const PROXY_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Pingora's process flags, as given on Portico's command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunFlags {
    /// Take the listening sockets over from a running Portico (`-u`).
    pub upgrade: bool,
    /// Detach into the background (`-d`).
    pub daemon: bool,
    /// Check that the server can start, then exit (`-t`).
    pub test: bool,
}

/// Loads, validates and compiles the configuration, then serves until a
/// signal ends the process. Returns the problems when the process cannot
/// start; nothing is listening then.
pub fn run(path: &Path, flags: RunFlags) -> Result<(), Vec<String>> {
    let config = config::load_file(path)
        .map_err(|e| e.0.iter().map(|e| e.to_string()).collect::<Vec<_>>())?;
    let snapshot = compile(config)?;
    if !flags.upgrade {
        check_listen_addresses(&snapshot.config, flags.test)?;
    }
    logging::init(&snapshot.config.logging, &snapshot.config.access_log).map_err(|e| vec![e])?;
    let shared: SharedSnapshot = Arc::new(ArcSwap::from_pointee(snapshot));
    let mut server = Server::new_with_opt_and_conf(pingora_opt(flags), server_conf(&shared));
    server.bootstrap();
    add_services(&mut server, &shared);
    let cfg = &shared.load().config;
    info!(
        listeners = cfg.listeners.len(),
        routes = cfg.routes.len(),
        upstreams = cfg.upstreams.len(),
        "portico starting"
    );
    server.run_forever()
}

/// Binds each listener and the admin address once and lets go, so that an
/// address this host does not have, or one another process listens on, is a
/// problem reported before anything starts. Pingora would retry a busy port
/// for half a minute, then panic in that service's thread and leave the rest
/// of the process, admin listener included, up and reporting ready. Not done
/// on an upgrade, whose sockets come from the running process; with `-t` a
/// port in use counts as fine, since the instance being replaced holds it.
fn check_listen_addresses(config: &Config, test: bool) -> Result<(), Vec<String>> {
    let listeners = config
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("listeners[{i}].address"), l.address.as_str()));
    let admin = config
        .admin
        .iter()
        .map(|a| ("admin.address".to_owned(), a.address.as_str()));
    let mut problems = Vec::new();
    // Held until every address is tried, so `0.0.0.0:80` and `127.0.0.1:80`
    // in one file collide here as they would in Pingora.
    let mut bound = Vec::new();
    for (path, text) in listeners.chain(admin) {
        // Validation has checked that every address parses.
        let Ok(addr) = text.parse::<SocketAddr>() else {
            continue;
        };
        match try_bind(addr) {
            Ok(socket) => bound.push(socket),
            Err(e) if !(test && e.kind() == std::io::ErrorKind::AddrInUse) => {
                problems.push(format!(
                    "{path}: cannot listen on {addr} ({e}); fix: use an address of this \
                     host that no other process listens on"
                ));
            }
            Err(_) => {}
        }
    }
    drop(bound);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Listens as Pingora will: on Unix the standard library sets `SO_REUSEADDR`,
/// so connections left in TIME_WAIT do not make a port busy.
fn try_bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr)
}

/// Resolves backend names and compiles the snapshot.
pub fn compile(config: Config) -> Result<Snapshot, Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| vec![format!("cannot start the resolver runtime: {e}")])?;
    let resolved = rt.block_on(resolve_all(&config.upstreams))?;
    drop(rt);
    Snapshot::build(config, &resolved)
}

fn pingora_opt(flags: RunFlags) -> Opt {
    Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        nocapture: false,
        test: flags.test,
        conf: None,
    }
}

fn server_conf(shared: &SharedSnapshot) -> ServerConf {
    let s = &shared.load().config.server;
    ServerConf {
        threads: s.threads,
        work_stealing: s.work_stealing,
        pid_file: s.pid_file.clone(),
        upgrade_sock: s.upgrade_sock.clone(),
        error_log: s.error_log.clone(),
        user: s.user.clone(),
        group: s.group.clone(),
        grace_period_seconds: Some(s.grace_period.0.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(
            s.graceful_shutdown_timeout.0.as_secs_f64().ceil() as u64
        ),
        upstream_keepalive_pool_size: s.upstream_keepalive_pool_size,
        ..ServerConf::default()
    }
}

/// Socket buffers of a cleartext listener.
///
/// Pingora puts a 64 KiB read buffer under every accepted connection, sized
/// for TLS records. A cleartext HTTP/1.1 session reads the request head into
/// its own buffer and HTTP/2 has its own framing buffer, so the L4 one only
/// adds a copy per read and 64 KiB of heap per connection, most of the memory
/// of an idle keep-alive client (see perf/RESULTS.md). Reads go straight to the
/// socket; the small write buffer, which coalesces a response head with the
/// start of its body, stays.
fn plaintext_buffers() -> L4BufferSettings {
    L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE)
}

/// What h2 charges a DATA frame smaller than this many bytes for framing.
const H2_SMALL_FRAME_OVERHEAD: usize = 256;

/// h2's own budget with the default connection window (half of 64 KiB).
const H2_MIN_BUDGET: usize = 32 * 1024;

fn add_services(server: &mut Server, shared: &SharedSnapshot) {
    let snapshot = shared.load();
    let cfg = &snapshot.config;
    crate::cache::init(cfg.cache.max_size.0);
    // HTTP/2 prior knowledge is a per-service option in Pingora, so cleartext
    // listeners with and without it get a service each. TLS listeners join
    // the service without it: Pingora ignores the option on TLS, where ALPN
    // chooses the protocol.
    for h2c in [true, false] {
        let indexes: Vec<usize> = (0..cfg.listeners.len())
            .filter(|&i| {
                let l = &cfg.listeners[i];
                if l.tls.is_some() {
                    !h2c
                } else {
                    l.h2c == h2c
                }
            })
            .collect();
        if indexes.is_empty() {
            continue;
        }
        let mut options = HttpServerOptions::default();
        options.h2c = h2c;
        options.keepalive_request_limit =
            (cfg.server.keepalive_request_limit > 0).then_some(cfg.server.keepalive_request_limit);
        // Without it Pingora keeps an HTTP/2 connection with nothing in flight
        // open for ever; HTTP/1.1 gets the same idle timeout per request.
        options.h2_idle_timeout = Some(cfg.server.downstream_keepalive_timeout.0);
        let mut proxy =
            ProxyServiceBuilder::new(&server.configuration, Gateway::new(shared.clone()))
                .name(SERVICE_NAME)
                .server_options(options)
                .build();
        if let Some(app) = proxy.app_logic_mut() {
            let streams = cfg.server.h2_max_concurrent_streams;
            let mut h2 = default_h2_options();
            h2.max_concurrent_streams(streams);
            // h2 closes a connection (ENHANCE_YOUR_CALM) once the small DATA
            // frames it holds unread cost more framing overhead than its
            // budget, by default about 128 frames' worth: enough for 128
            // streams, not for 1,000 gRPC calls that each sent one message.
            // The budget grows with the streams allowed, one small frame's
            // overhead (256 bytes) each, so the flood guard keeps its bound.
            h2.data_frame_budget((streams as usize * H2_SMALL_FRAME_OVERHEAD).max(H2_MIN_BUDGET));
            app.h2_options = Some(h2);
        }
        let proxied: Vec<SocketAddr> = indexes
            .iter()
            .filter(|&&i| cfg.listeners[i].proxy_protocol)
            .filter_map(|&i| cfg.listeners[i].address.parse().ok())
            .collect();
        for i in indexes {
            let addr = cfg.listeners[i].address.as_str();
            let tls = snapshot.listeners.get(i).and_then(|l| l.tls.as_ref());
            let endpoint = match tls {
                // TLS records are read through Pingora's buffer.
                Some(tls) => ListenerConfig::tcp(addr).tls(tls.settings()),
                None => ListenerConfig::tcp(addr).l4_buffer(plaintext_buffers()),
            };
            proxy.add_listener(endpoint);
        }
        if !proxied.is_empty() {
            // Pingora runs the hook on every TLS listener of the service; it
            // reads a header only on those in `proxied`.
            proxy
                .endpoints()
                .set_pre_tls_callback(Arc::new(ProxyProtocol {
                    listeners: proxied,
                    snapshot: shared.clone(),
                    timeout: PROXY_HEADER_TIMEOUT,
                }));
        }
        server.add_service(proxy);
    }
    if let Some(admin) = &cfg.admin {
        let mut service = Service::new("admin".to_string(), Admin::new(shared.clone()));
        service.add_tcp(&admin.address);
        server.add_service(service);
    }
    server.add_service(background_service(
        "health",
        HealthChecker {
            snapshot: shared.clone(),
        },
    ));
    let handover = HandoverWatch::new(server.watch_execution_phase());
    server.add_service(background_service("handover", handover));
}
