//! The command line: `portico check` and `portico run` as an operator calls
//! them, on config files written to disk, with the real binary.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{client, free_port, Gateway, Upstream};

/// A variable no test sets, for the "unset `${VAR}`" cases.
const UNSET_VAR: &str = "PORTICO_CLI_TEST_NEVER_SET";

fn portico() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portico"));
    command.env_remove(UNSET_VAR).stdin(Stdio::null());
    command
}

/// Writes `text` as `portico.yaml` in a fresh directory.
fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portico.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn check(path: &Path) -> Output {
    portico().arg("check").arg("-c").arg(path).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The key paths of the problem lines of a failed `check` or `run`, in order.
fn problem_paths(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|line| line.strip_prefix("  "))
        .filter_map(|problem| problem.split_once(": ").map(|(path, _)| path.to_owned()))
        .collect()
}

/// A valid config with one listener on `port` and one route to `upstream`.
fn minimal_config(port: u16, upstream: &str) -> String {
    format!(
        "version: 1
listeners:
  - address: 127.0.0.1:{port}
upstreams:
  origin:
    backends: [{{ address: \"{upstream}\" }}]
routes:
  - id: all
    upstream: origin
"
    )
}

/// One problem of each kind `check` must find, each in its own place.
fn config_with_five_problems(port: u16) -> String {
    format!(
        "version: 1
server:
  pid_file: ${{{UNSET_VAR}}}/portico.pid
listeners:
  - address: 127.0.0.1:{port}
  - address: 127.0.0.1:{port}
upstreams:
  origin:
    backends: [{{ address: \"127.0.0.1:9\" }}]
    timeouts: {{ connect: 3 fortnights }}
routes:
  - id: users
    upstream: users
  - id: rest
    upstream: origin
    strip_prefixes: true
"
    )
}

#[test]
fn check_accepts_the_shipped_default_config() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/portico.yaml");
    let out = check(&shipped);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}, stderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    let expected = format!("{}: ok (", shipped.display());
    assert!(stdout.starts_with(&expected), "stdout: {stdout}");
}

#[test]
fn check_accepts_a_minimal_config_and_counts_its_parts() {
    let (_dir, path) = write_config(&minimal_config(free_port(), "127.0.0.1:9"));
    let out = check(&path);
    assert!(
        out.status.success(),
        "exit {:?}, stderr:\n{}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        format!(
            "{}: ok (1 listeners, 1 routes, 1 upstreams)\n",
            path.display()
        )
    );
}

#[test]
fn check_lists_every_problem_of_a_file_each_under_its_key_path() {
    let (_dir, path) = write_config(&config_with_five_problems(free_port()));
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert_eq!(
        problem_paths(&stderr),
        [
            "server.pid_file",
            "listeners[1].address",
            "upstreams.origin.timeouts.connect",
            "routes[0].upstream",
            "routes[1].strip_prefixes",
        ],
        "stderr:\n{stderr}"
    );
    assert!(stderr.contains(&format!("environment variable {UNSET_VAR} is not set")));
    assert!(stderr.contains("invalid duration \"3 fortnights\""));
    assert!(stderr.contains("no upstream named \"users\""));
    assert!(stderr.contains("unknown key `strip_prefixes`"));
    assert!(stderr.contains("is already used by listeners[0].address"));
    let header = format!("{}: 5 problem(s), nothing was started:", path.display());
    assert_eq!(stderr.lines().next(), Some(header.as_str()));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
}

#[test]
fn check_reports_two_problems_in_the_same_section() {
    let (_dir, path) = write_config(&format!(
        "version: 1
server:
  grace_periode: 2s
  graceful_shutdown_timeout: 1 parsec
listeners:
  - address: 127.0.0.1:{}
",
        free_port()
    ));
    let out = check(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert_eq!(
        problem_paths(&stderr),
        ["server.grace_periode", "server.graceful_shutdown_timeout"],
        "stderr:\n{stderr}"
    );
}

#[test]
fn run_on_a_bad_config_exits_with_its_problems_and_never_binds_the_listener() {
    let port = free_port();
    let (_dir, path) = write_config(&config_with_five_problems(port));
    let mut child = portico()
        .arg("run")
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        let listening = TcpStream::connect(("127.0.0.1", port)).is_ok();
        assert!(
            !listening,
            "port {port} accepted a connection while `run` was starting"
        );
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "`run` on a bad config did not exit"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let stderr = text(&child.wait_with_output().unwrap().stderr);
    assert_eq!(status.code(), Some(2), "stderr:\n{stderr}");
    assert_eq!(problem_paths(&stderr).len(), 5, "stderr:\n{stderr}");
    assert!(
        stderr.contains("no upstream named \"users\""),
        "stderr:\n{stderr}"
    );
    let refused = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn run_with_the_test_flag_exits_zero_on_a_good_config_without_serving() {
    let port = free_port();
    let (_dir, path) = write_config(&minimal_config(port, "127.0.0.1:9"));
    let out = run_to_exit(portico().arg("run").arg("-t").arg("-c").arg(&path));
    let stderr = text(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}, stderr:\n{stderr}",
        out.status
    );
    assert!(stderr.contains("Server Test passed"), "stderr:\n{stderr}");
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn run_with_the_test_flag_still_rejects_a_bad_config() {
    let (_dir, path) = write_config(&config_with_five_problems(free_port()));
    let out = run_to_exit(portico().arg("run").arg("-t").arg("-c").arg(&path));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{stderr}");
    assert_eq!(problem_paths(&stderr).len(), 5, "stderr:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_port_taken_from_the_environment_is_where_the_gateway_answers() {
    let up = Upstream::start("origin").await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let yaml = format!(
        "version: 1
server:
  pid_file: {dir}/portico.pid
  upgrade_sock: {dir}/upgrade.sock
listeners:
  - address: 127.0.0.1:${{PORTICO_CLI_TEST_PORT}}
admin:
  address: 127.0.0.1:{admin_port}
access_log:
  target: off
upstreams:
  origin:
    backends: [{{ address: \"{upstream}\" }}]
routes:
  - id: all
    upstream: origin
",
        dir = dir.path().display(),
        upstream = up.addr,
    );
    let conf = dir.path().join("portico.yaml");
    std::fs::write(&conf, &yaml).unwrap();

    let unset = portico()
        .args(["check", "-c"])
        .arg(&conf)
        .env_remove("PORTICO_CLI_TEST_PORT")
        .output()
        .unwrap();
    let unset_stderr = text(&unset.stderr);
    assert_eq!(unset.status.code(), Some(2), "stderr:\n{unset_stderr}");
    assert!(unset_stderr
        .contains("listeners[0].address: environment variable PORTICO_CLI_TEST_PORT is not set"));

    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let child = portico()
        .args(["run", "-c"])
        .arg(&conf)
        .env("PORTICO_CLI_TEST_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let gw = Gateway {
        child,
        port,
        admin_port,
        dir,
    };
    gw.wait_ready();
    let resp = client().get(gw.url("/from-env")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "origin");
    assert!(up.saw("/from-env"));
}

/// Runs a command that must end by itself, failing the test after 10 s.
fn run_to_exit(command: &mut Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}
