//! WebSocket echo throughput through Portico against the same echo server
//! reached directly, on loopback.
//!
//! ```sh
//! cargo build --release --bin portico --example ws_echo
//! target/release/examples/ws_echo [--portico target/release/portico] [--messages 20000]
//! ```
//!
//! The example starts a tokio-tungstenite echo server and a `portico run`
//! with one route to it, then for each message size and connection count
//! sends a fixed number of messages (spread over the connections, each
//! connection keeping up to 32 in flight) and waits for every echo. Every
//! run is bounded by its message count and by a 60 s deadline. It prints a
//! Markdown table: messages and payload MiB per second, direct and through
//! Portico, and their ratio. Client, echo server and gateway share the
//! machine, so the figures compare the two paths, not absolute capacity.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Messages a connection sends before it waits for echoes.
const WINDOW: usize = 32;
/// No run may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(60);

struct Args {
    portico: String,
    messages: usize,
}

fn args() -> Args {
    let mut out = Args {
        portico: "target/release/portico".into(),
        messages: 20_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--portico" => out.portico = value,
            "--messages" => out.messages = value.parse().expect("--messages is a number"),
            other => panic!("unknown flag {other}; flags: --portico PATH, --messages N"),
        }
    }
    out
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo server");
    let addr = listener.local_addr().expect("echo server address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config())).await
                else {
                    return;
                };
                let (mut sink, mut stream) = ws.split();
                while let Some(Ok(msg)) = stream.next().await {
                    if (msg.is_text() || msg.is_binary()) && sink.send(msg).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A gateway process; killed when dropped.
struct Gateway {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn start_gateway(binary: &str, upstream: SocketAddr) -> Gateway {
    let (port, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("portico-ws-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = format!(
        "version: 1
server:
  threads: 1
  pid_file: {dir}/portico.pid
  upgrade_sock: {dir}/upgrade.sock
listeners:
  - address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
access_log:
  target: off
logging:
  level: warn
upstreams:
  echo:
    backends: [{{ address: \"{upstream}\" }}]
routes:
  - id: echo
    match: {{ path: {{ prefix: / }} }}
    upstream: echo
    websocket: {{ max_message_size: 1MiB }}
",
        dir = dir.display()
    );
    let path = dir.join("portico.yaml");
    std::fs::write(&path, conf).expect("write config");
    let child = Command::new(binary)
        .args(["run", "-c"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary}: {e}; build it with --release"));
    let gw = Gateway {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ready(admin).await {
            return gw;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the gateway did not become ready within 30 s");
}

async fn ready(admin: u16) -> bool {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", admin)).await else {
        return false;
    };
    let request = b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n";
    if tcp.write_all(request).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = tcp.read_to_end(&mut answer).await;
    answer.starts_with(b"HTTP/1.1 200")
}

/// Sends `count` messages of `size` bytes on one connection, at most
/// [`WINDOW`] ahead of the echoes, and waits for every echo.
async fn one_connection(addr: SocketAddr, size: usize, count: usize) {
    let url = format!("ws://{addr}/echo");
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config()), true)
        .await
        .expect("connect");
    let (mut sink, mut stream) = ws.split();
    let payload = vec![0x61u8; size];
    let (mut sent, mut received) = (0, 0);
    while received < count {
        while sent < count && sent - received < WINDOW {
            sink.feed(Message::binary(payload.clone()))
                .await
                .expect("send");
            sent += 1;
        }
        sink.flush().await.expect("flush");
        match stream.next().await {
            Some(Ok(msg)) if msg.len() == size => received += 1,
            other => panic!("expected an echo of {size} bytes, got {other:?}"),
        }
    }
    let _ = sink.close().await;
}

/// Messages per second for `total` messages over `conns` connections.
async fn run(addr: SocketAddr, size: usize, conns: usize, total: usize) -> f64 {
    let per = total / conns;
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(one_connection(addr, size, per)))
        .collect();
    let all = async {
        for t in tasks {
            t.await.expect("a load connection failed");
        }
    };
    tokio::time::timeout(RUN_LIMIT, all)
        .await
        .expect("a run passed its time limit");
    (per * conns) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args = args();
    let upstream = echo_server().await;
    let gw = start_gateway(&args.portico, upstream).await;
    let through: SocketAddr = ([127, 0, 0, 1], gw.port).into();
    // One warm-up run per path, not reported.
    run(upstream, 64, 4, 2_000).await;
    run(through, 64, 4, 2_000).await;
    println!(
        "| message | conns | direct msg/s | direct MiB/s | portico msg/s | portico MiB/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for size in [64usize, 1024, 16 * 1024] {
        for conns in [1usize, 16, 64] {
            let total = if size >= 16 * 1024 {
                args.messages / 4
            } else {
                args.messages
            };
            let direct = run(upstream, size, conns, total).await;
            let portico = run(through, size, conns, total).await;
            let mib = |rate: f64| rate * size as f64 / (1024.0 * 1024.0);
            println!(
                "| {size} B | {conns} | {direct:.0} | {:.1} | {portico:.0} | {:.1} | {:.2} |",
                mib(direct),
                mib(portico),
                portico / direct
            );
        }
    }
}
