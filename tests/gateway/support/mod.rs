//! Test harness: real upstream HTTP servers and the real `portico` binary,
//! all on ephemeral loopback ports.

#![allow(dead_code)]

pub mod graphql;
pub mod grpc;
pub mod introspect;
pub mod jwks;
pub mod raw;
pub mod redis;
pub mod shaped;
pub mod tls;
pub mod upstream;
pub mod websocket;

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use upstream::Upstream;

/// A loopback port nobody listens on, never handed out twice by this process.
///
/// Ports come from just below the kernel's ephemeral range, so no `bind(:0)`
/// and no outgoing connection (ours or another test's) can take one between
/// this check and the moment the gateway or redis-server binds it. Picking
/// with `bind(:0)` instead once gave one test the same port for its listener
/// and its admin listener. The walk starts at a point derived from the pid so
/// two test processes on one machine rarely probe the same ports.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let high = ephemeral_low.clamp(12_000, 65_535);
    let low = high - 10_000;
    let span = high - low;
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::SeqCst) % span;
        let port = (low + offset) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// A running `portico run` process with its own config, logs and ports.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
}

/// The parts of a config every test shares: a listener, an admin listener,
/// unique pid and upgrade-socket paths, short shutdown timers.
pub fn base_config(port: u16, admin_port: u16, dir: &std::path::Path) -> String {
    format!(
        "version: 1
server:
  threads: 2
  pid_file: {dir}/portico.pid
  upgrade_sock: {dir}/upgrade.sock
  grace_period: 2s
  graceful_shutdown_timeout: 1s
listeners:
  - address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin_port}
access_log:
  target: file
  path: {dir}/access.log
logging:
  level: info
",
        dir = dir.display()
    )
}

impl Gateway {
    /// Starts the gateway with `base_config` followed by `rest` (the
    /// `upstreams:` and `routes:` sections, and anything else), and waits
    /// until `/readyz` answers 200.
    pub fn start(rest: &str) -> Gateway {
        let gw = Gateway::spawn(rest, &[]);
        gw.wait_ready();
        gw
    }

    /// Starts the gateway without waiting; `extra` are more `run` arguments.
    pub fn spawn(rest: &str, extra: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let text = format!("{}{rest}", base_config(port, admin_port, dir.path()));
        Gateway::spawn_with(dir, port, admin_port, &text, extra)
    }

    /// Like [`Gateway::start`], with `env` added to the process environment.
    pub fn start_with_env(rest: &str, env: &[(&str, &str)]) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin_port) = (free_port(), free_port());
        let text = format!("{}{rest}", base_config(port, admin_port, dir.path()));
        let gw = Gateway::spawn_full(dir, port, admin_port, &text, &[], env);
        gw.wait_ready();
        gw
    }

    /// Starts `portico run` on a config text that the caller wrote.
    pub fn spawn_with(
        dir: tempfile::TempDir,
        port: u16,
        admin_port: u16,
        text: &str,
        extra: &[&str],
    ) -> Gateway {
        Gateway::spawn_full(dir, port, admin_port, text, extra, &[])
    }

    fn spawn_full(
        dir: tempfile::TempDir,
        port: u16,
        admin_port: u16,
        text: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let conf = dir.path().join("portico.yaml");
        std::fs::write(&conf, text).unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_portico"))
            .arg("run")
            .arg("-c")
            .arg(&conf)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Gateway {
            child,
            port,
            admin_port,
            dir,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("portico.yaml")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin_port)
    }

    /// Blocks until `/readyz` is 200; panics with the gateway's stderr after 30 s.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(200) = blocking_status(&self.admin_url("/readyz")) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("gateway never became ready; stderr:\n{}", self.stderr());
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Every access-log line written so far, parsed.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The access-log line of one request id, waiting briefly for it.
    pub fn access_line(&self, request_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(line) = self
                .access_log()
                .into_iter()
                .find(|l| l["request_id"] == request_id)
            {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no access-log line for {request_id}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The Prometheus text from the admin listener.
    pub fn metrics(&self) -> String {
        let mut s = String::new();
        let resp = blocking_get(&self.admin_url("/metrics")).unwrap();
        s.push_str(&resp);
        s
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The `portico_backend_healthy` gauge of one backend, read from
    /// `/metrics`: `Some(true)` when it takes traffic, `None` when absent.
    pub fn backend_healthy(&self, upstream: &str, backend: std::net::SocketAddr) -> Option<bool> {
        let text = blocking_get(&self.admin_url("/metrics")).ok()?;
        let (b, u) = (
            format!("backend=\"{backend}\""),
            format!("upstream=\"{upstream}\""),
        );
        text.lines()
            .filter(|l| l.starts_with("portico_backend_healthy{"))
            .find(|l| l.contains(&b) && l.contains(&u))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.trim() == "1")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking GET over a fresh connection, for polling from any
/// thread without a runtime. Returns the status code.
pub fn blocking_status(url: &str) -> std::io::Result<u16> {
    let (status, _) = blocking_request(url)?;
    Ok(status)
}

/// A blocking GET that returns the body.
pub fn blocking_get(url: &str) -> std::io::Result<String> {
    Ok(blocking_request(url)?.1)
}

fn blocking_request(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::Write;
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut s = std::net::TcpStream::connect(authority)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status line"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A reqwest client that never pools connections across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap()
}

/// Waits until `check` holds, polling; panics with `what` after `limit`.
pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The `upstreams:` section for one single-backend pool per upstream, each
/// pool named after its upstream (`Upstream::start("a")` gives pool `a`).
pub fn upstreams_yaml(upstreams: &[&Upstream]) -> String {
    let mut yaml = String::from("upstreams:\n");
    for up in upstreams {
        yaml.push_str(&format!(
            "  {}:\n    backends: [{{ address: \"{}\" }}]\n",
            up.state.name, up.addr
        ));
    }
    yaml
}
