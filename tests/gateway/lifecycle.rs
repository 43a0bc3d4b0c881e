//! Process lifecycle with the real binary: zero-downtime upgrade, graceful
//! stop and daemon mode.
//!
//! `an_upgrade_under_load_fails_no_request_and_hands_new_connections_over`
//! proves the procedure of the README's "Upgrades and shutdown". While
//! clients keep sending requests, over a fresh connection each and over a
//! keep-alive connection, a new process started with `-u` takes over the
//! listening sockets of the old one, which gets `SIGQUIT`. Then: not one
//! request fails (no refused or reset connection, every answer 200); a slow
//! request in flight on the old process completes with 200; every request sent
//! once the old process has stopped accepting is served by the new one; and
//! the old process exits by itself, with status 0, within 10 s. Each process
//! writes its own access log (the config says `path: ${LOG_PATH}`), which
//! tells which process served which request.
//!
//! Pingora's timing drives the test: after `SIGQUIT` the old process sends
//! its sockets, keeps accepting for 5 s ([`CLOSE_TIMEOUT`]), then stops
//! accepting, closes its idle keep-alive connections and serves what it has
//! in flight for `grace_period` (2 s here) plus at most
//! `graceful_shutdown_timeout` (1 s here). The keep-alive client survives
//! that close because the old process answers `Connection: close` from the
//! hand-over on, so the client has moved to a new connection long before.
//!
//! The other tests: `SIGTERM` without a successor refuses new connections at
//! once, lets an in-flight request finish (and tells its client to close), and
//! the process exits 0; `-d` detaches, writes the pid file, serves, and stops
//! on `SIGTERM` sent to the pid in that file.

use std::collections::HashSet;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{base_config, blocking_status, client, free_port, raw, Upstream};

/// How long Pingora's old process keeps accepting after handing its sockets
/// over (`CLOSE_TIMEOUT` in pingora-core, not configurable).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bounds of the load, so a hang cannot make it run forever.
const LOAD_MAX_REQUESTS: usize = 20_000;
const LOAD_MAX_TIME: Duration = Duration::from_secs(40);

/// A config with a listener, an admin listener, one upstream, a catch-all
/// route and short shutdown timers. The access log goes to `${LOG_PATH}`, so
/// two processes on this one file each write their own.
fn config(dir: &Path, port: u16, admin_port: u16, upstream: SocketAddr) -> String {
    let base = base_config(port, admin_port, dir).replace(
        &format!("path: {}/access.log", dir.display()),
        "path: ${LOG_PATH}",
    );
    format!(
        "{base}upstreams:
  origin:
    backends: [{{ address: \"{upstream}\" }}]
routes:
  - id: all
    upstream: origin
"
    )
}

/// One `portico run` process with its own access log and stderr file. It is
/// killed when dropped, so a failing test leaves nothing running.
struct Instance {
    child: Child,
    access_log: PathBuf,
    stderr: PathBuf,
}

impl Instance {
    /// Starts `portico run -c conf` with `extra` arguments; `LOG_PATH` is
    /// `{dir}/{name}.access.log`.
    fn start(name: &str, conf: &Path, dir: &Path, extra: &[&str]) -> Instance {
        let access_log = dir.join(format!("{name}.access.log"));
        let stderr = dir.join(format!("{name}.stderr.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_portico"))
            .args(["run", "-c"])
            .arg(conf)
            .args(extra)
            .env("LOG_PATH", &access_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Instance {
            child,
            access_log,
            stderr,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    /// The exit status, once the process has ended by itself within `limit`.
    async fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The request ids in this process's access log.
    fn served(&self) -> HashSet<String> {
        request_ids(&self.access_log)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request_ids(access_log: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(access_log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|line| line["request_id"].as_str().map(str::to_owned))
        .collect()
}

/// Blocks until the admin listener on `admin_port` says ready.
fn wait_ready(admin_port: u16, stderr: impl Fn() -> String) {
    let url = format!("http://127.0.0.1:{admin_port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(200) = blocking_status(&url) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("gateway never became ready; stderr:\n{}", stderr());
}

/// Waits up to `limit` for `done`, polling.
async fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One request of the load and how it ended: the status, or the client error.
#[derive(Debug)]
struct Sent {
    id: String,
    /// When it was sent, from the start of the test.
    at: Duration,
    result: Result<u16, String>,
}

/// Which connections a load loop uses.
#[derive(Clone, Copy)]
enum Connections {
    /// A new TCP connection per request (`Connection: close`).
    Fresh,
    /// One pooled connection, reused while the server keeps it open.
    KeepAlive,
}

/// Sends GET requests one after another until `stop` is set (or a bound is
/// reached), reading each answer in full, and records how each ended.
async fn load(port: u16, kind: Connections, t0: Instant, stop: Arc<AtomicBool>) -> Vec<Sent> {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10));
    let (client, name) = match kind {
        Connections::Fresh => (builder.pool_max_idle_per_host(0).build().unwrap(), "fresh"),
        Connections::KeepAlive => (builder.build().unwrap(), "kept"),
    };
    let mut sent = Vec::new();
    while !stop.load(Ordering::SeqCst)
        && sent.len() < LOAD_MAX_REQUESTS
        && t0.elapsed() < LOAD_MAX_TIME
    {
        let id = format!("{name}-{}", sent.len());
        let mut request = client
            .get(format!("http://127.0.0.1:{port}/load/{id}"))
            .header("x-request-id", &id);
        if let Connections::Fresh = kind {
            request = request.header("connection", "close");
        }
        let at = t0.elapsed();
        let result = match request.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                resp.bytes()
                    .await
                    .map(|_| status)
                    .map_err(|e| format!("{e:?}"))
            }
            Err(e) => Err(format!("{e:?}")),
        };
        sent.push(Sent { id, at, result });
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    sent
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_under_load_fails_no_request_and_hands_new_connections_over() {
    let up = Upstream::start("origin").await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let conf = dir.path().join("portico.yaml");
    std::fs::write(&conf, config(dir.path(), port, admin_port, up.addr)).unwrap();
    let t0 = Instant::now();
    let mut old = Instance::start("old", &conf, dir.path(), &[]);
    wait_ready(admin_port, || old.stderr());

    let stop = Arc::new(AtomicBool::new(false));
    let loads = [Connections::Fresh, Connections::KeepAlive]
        .map(|kind| tokio::spawn(load(port, kind, t0, stop.clone())));
    let slow = tokio::spawn(
        client()
            .get(format!("http://127.0.0.1:{port}/slow?ms=3000"))
            .header("x-request-id", "slow")
            .send(),
    );
    wait_for(Duration::from_secs(5), "the slow request upstream", || {
        up.saw("/slow?ms=3000")
    })
    .await;

    // The new process binds the upgrade socket and waits there for the old
    // one's listeners; signal the old process once it can connect.
    let new_started = t0.elapsed();
    let new = Instance::start("new", &conf, dir.path(), &["-u"]);
    let sock = dir.path().join("upgrade.sock");
    wait_for(Duration::from_secs(5), "the upgrade socket", || {
        sock.exists()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let quit_at = t0.elapsed();
    old.signal(Signal::SIGQUIT);
    let old_status = old.exit_within(Duration::from_secs(15)).await;
    let old_exited = t0.elapsed();
    // Keep the load running on the new process alone for a while.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for handle in loads {
        sent.extend(handle.await.unwrap());
    }
    let slow = slow.await.unwrap();

    eprintln!(
        "upgrade timings: new process started at {new_started:?}, SIGQUIT at {quit_at:?}, \
         old process exited at {old_exited:?} ({:?} after SIGQUIT), {} requests sent",
        old_exited - quit_at,
        sent.len()
    );
    let old_status = old_status.unwrap_or_else(|| {
        panic!(
            "the old process did not exit within 15 s; stderr:\n{}",
            old.stderr()
        )
    });
    assert!(
        old_status.success(),
        "old process: {old_status}; stderr:\n{}",
        old.stderr()
    );
    assert!(
        old_exited - quit_at < Duration::from_secs(10),
        "the old process took {:?} to exit after SIGQUIT",
        old_exited - quit_at
    );

    let failed: Vec<&Sent> = sent.iter().filter(|s| s.result != Ok(200)).collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed, first ones: {:#?}",
        failed.len(),
        sent.len(),
        &failed[..failed.len().min(5)]
    );

    let slow = slow.expect("the slow request in flight on the old process failed");
    assert_eq!(slow.status(), 200);
    assert_eq!(slow.text().await.unwrap(), "slept 3000");
    assert!(
        old.served().contains("slow"),
        "the slow request was not served by the old process"
    );

    // Every request is in exactly one of the two access logs.
    wait_for(
        Duration::from_secs(5),
        "every request in an access log",
        || {
            let (by_old, by_new) = (old.served(), new.served());
            sent.iter()
                .all(|s| by_old.contains(&s.id) || by_new.contains(&s.id))
        },
    )
    .await;
    let (by_old, by_new) = (old.served(), new.served());
    let in_both: Vec<&str> = sent
        .iter()
        .map(|s| s.id.as_str())
        .filter(|id| by_old.contains(*id) && by_new.contains(*id))
        .collect();
    assert!(in_both.is_empty(), "logged by both processes: {in_both:?}");

    // Once the old process has stopped accepting (5 s after SIGQUIT; one
    // more second covers its last in-flight keep-alive answer), new
    // requests reach the new process only.
    let handed_over = quit_at + CLOSE_TIMEOUT + Duration::from_secs(1);
    let after: Vec<&Sent> = sent.iter().filter(|s| s.at >= handed_over).collect();
    let on_old: Vec<&str> = after
        .iter()
        .map(|s| s.id.as_str())
        .filter(|id| by_old.contains(*id))
        .collect();
    assert!(
        on_old.is_empty(),
        "sent after the hand-over but served by the old process: {on_old:?}"
    );
    assert!(
        after.len() >= 100,
        "only {} requests were sent after the hand-over",
        after.len()
    );
    let before_quit_on_new = sent
        .iter()
        .filter(|s| s.at < quit_at && by_new.contains(&s.id))
        .count();
    assert_eq!(
        before_quit_on_new, 0,
        "the new process served requests sent before SIGQUIT"
    );
    eprintln!(
        "served: {} by the old process, {} by the new one; {} sent after the hand-over",
        sent.iter().filter(|s| by_old.contains(&s.id)).count(),
        sent.iter().filter(|s| by_new.contains(&s.id)).count(),
        after.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_request_finish_refuses_new_connections_and_exits() {
    let up = Upstream::start("origin").await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let conf = dir.path().join("portico.yaml");
    std::fs::write(&conf, config(dir.path(), port, admin_port, up.addr)).unwrap();
    let mut gw = Instance::start("gw", &conf, dir.path(), &[]);
    wait_ready(admin_port, || gw.stderr());

    // A keep-alive request: the client would send its next one on this connection.
    let request = format!("GET /slow?ms=1500 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let slow = tokio::spawn(async move { raw::send(port, request.as_bytes()).await });
    wait_for(Duration::from_secs(5), "the slow request upstream", || {
        up.saw("/slow?ms=1500")
    })
    .await;
    let signalled = Instant::now();
    gw.signal(Signal::SIGTERM);

    // The listener closes at once: a new client is refused, not left waiting
    // in a backlog nobody accepts from, while the slow request still runs.
    wait_for(
        Duration::from_secs(1),
        "new connections to be refused",
        || {
            matches!(
                TcpStream::connect(("127.0.0.1", port)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        },
    )
    .await;
    assert!(
        !slow.is_finished(),
        "the slow request ended before the listener closed"
    );

    let slow = slow.await.expect("the in-flight request failed");
    assert_eq!(slow.status, 200);
    assert_eq!(slow.body, b"slept 1500");
    // The process closes the connection after this answer, so the answer
    // must say so; otherwise the client's next request meets a closed socket.
    assert_eq!(
        slow.header("connection"),
        Some("close"),
        "headers: {:?}",
        slow.headers
    );
    let status = gw
        .exit_within(Duration::from_secs(8))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the gateway did not exit within 8 s of SIGTERM; stderr:\n{}",
                gw.stderr()
            )
        });
    eprintln!("SIGTERM: exited {:?} after the signal", signalled.elapsed());
    assert!(status.success(), "exit: {status}; stderr:\n{}", gw.stderr());
}

/// A process that is not our child; killed when dropped if still running.
struct Daemon(Pid);

impl Daemon {
    /// Whether the process still runs (a zombie waiting for its reaper counts
    /// as ended).
    fn running(&self) -> bool {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", self.0)) else {
            return false;
        };
        // The state follows the parenthesised command name.
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        !matches!(state, None | Some('Z') | Some('X'))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.running() {
            let _ = kill(self.0, Signal::SIGKILL);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn daemon_mode_writes_its_pid_file_serves_and_stops_on_sigterm() {
    let up = Upstream::start("origin").await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let conf = dir.path().join("portico.yaml");
    std::fs::write(&conf, config(dir.path(), port, admin_port, up.addr)).unwrap();
    let pid_file = dir.path().join("portico.pid");

    let mut launcher = Instance::start("daemon", &conf, dir.path(), &["-d"]);
    let launched = launcher
        .exit_within(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("`run -d` did not return; stderr:\n{}", launcher.stderr()));
    assert!(
        launched.success(),
        "`run -d`: {launched}; stderr:\n{}",
        launcher.stderr()
    );
    wait_for(Duration::from_secs(10), "the pid file", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.trim().parse::<i32>().is_ok())
    })
    .await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let daemon = Daemon(Pid::from_raw(pid));
    assert_ne!(
        pid,
        launcher.pid().as_raw(),
        "the pid file names the launcher, not the daemon"
    );
    assert!(
        daemon.running(),
        "pid {pid} from the pid file is not running"
    );

    wait_ready(admin_port, || launcher.stderr());
    let resp = client()
        .get(format!("http://127.0.0.1:{port}/from-daemon"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(up.saw("/from-daemon"));

    kill(daemon.0, Signal::SIGTERM).unwrap();
    wait_for(
        Duration::from_secs(8),
        "the daemon to exit after SIGTERM",
        || !daemon.running(),
    )
    .await;
    let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}
