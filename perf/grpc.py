#!/usr/bin/env python3
"""gRPC unary throughput through Portico against the same server direct.

Starts the tonic echo server (perf/grpc_echo.rs), Portico in front of it
(an h2c listener, an h2c upstream pool with max_h2_streams 100) and, beside
it, the minimal Pingora proxy (perf/minimal_pingora.rs, h2c on both sides
with the same stream limit) as the framework's floor, then runs h2load with
the same gRPC request against each in turn, on loopback only, and prints one
Markdown table. Every process started is stopped by PID, on
exit and on INT, TERM and HUP; every load has a duration and every tool a
timeout, so a run ends by itself. Called by perf/grpc.sh, which builds the
binaries; see perf/README.md.

h2load counts HTTP statuses only, and Portico answers its own failures with
HTTP 200 and a grpc-status header; so before measuring, one call through each
target is checked with curl for grpc-status 0 in its trailers.
"""

import argparse
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

STARTED = []


def stop_all(*_):
    for proc in reversed(STARTED):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    STARTED.clear()


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"grpc perf: {what} never listened on port {port}")


def start(args, **kw):
    proc = subprocess.Popen(args, **kw)
    STARTED.append(proc)
    return proc


def request_body(workdir):
    """One framed `Msg { text: "hello portico" }`."""
    text = b"hello portico"
    message = b"\x0a" + bytes([len(text)]) + text
    path = os.path.join(workdir, "request.bin")
    with open(path, "wb") as f:
        f.write(b"\x00" + struct.pack(">I", len(message)) + message)
    return path


def portico_config(workdir, port, admin, upstream, threads, streams):
    return f"""version: 1
server:
  threads: {threads}
  pid_file: {workdir}/portico.pid
  upgrade_sock: {workdir}/upgrade.sock
  grace_period: 1s
  graceful_shutdown_timeout: 1s
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
    protocol: h2c
    max_h2_streams: {streams}
    backends: [{{address: "127.0.0.1:{upstream}"}}]
routes:
  - id: echo
    match: {{grpc: {{service: portico.perf.Echo, method: Unary}}}}
    upstream: echo
"""


def check_call(port, body):
    """One call with curl; exits unless it ends with grpc-status 0."""
    out = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "--max-time", "10", "-D", "-",
         "-o", "/dev/null", "-H", "content-type: application/grpc",
         "-H", "te: trailers", "--data-binary", f"@{body}",
         f"http://127.0.0.1:{port}/portico.perf.Echo/Unary"],
        capture_output=True, text=True, timeout=20, check=False)
    if not re.search(r"^grpc-status: ?0\r?$", out.stdout, re.M):
        sys.exit(f"grpc perf: the check call on port {port} did not end with "
                 f"grpc-status 0:\n{out.stdout}{out.stderr}")


def h2load(port, body, conns, streams, duration, warmup):
    cmd = ["h2load", "-c", str(conns), "-m", str(streams), "-t", "1",
           "-D", str(duration), f"--warm-up-time={warmup}",
           "-d", body, "-H", "content-type: application/grpc",
           "-H", "te: trailers",
           f"http://127.0.0.1:{port}/portico.perf.Echo/Unary"]
    out = subprocess.run(cmd, capture_output=True, text=True,
                         timeout=duration + warmup + 30, check=False)
    text = out.stdout
    rate = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text)
    done = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored", text)
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", text)
    if out.returncode != 0 or not (rate and done and mean):
        sys.exit(f"grpc perf: h2load failed on port {port}:\n{text}{out.stderr}")
    return {
        "rate": float(rate.group(1)),
        "ok": int(done.group(1)),
        "failed": int(done.group(2)) + int(done.group(3)),
        "mean": mean.group(1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-dir", required=True)
    ap.add_argument("--build-profile", default="release")
    ap.add_argument("--smoke", action="store_true",
                    help="2 s per row after 1 s of warm-up, one load: does it answer?")
    ap.add_argument("--duration", type=int, default=None, help="measured seconds per row")
    ap.add_argument("--warmup", type=int, default=None, help="unmeasured seconds per row")
    ap.add_argument("--threads", type=int, default=1, help="Portico's worker threads")
    ap.add_argument("--max-h2-streams", type=int, default=100,
                    help="the pool's max_h2_streams")
    ap.add_argument("--loads", default=None,
                    help="connections x streams, e.g. 1x1,4x16,16x64 (the default)")
    args = ap.parse_args()
    duration = args.duration or (2 if args.smoke else 10)
    warmup = args.warmup or (1 if args.smoke else 3)
    loads = args.loads or ("4x16" if args.smoke else "1x1,4x16,16x64")
    loads = [tuple(int(n) for n in l.split("x")) for l in loads.split(",")]

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    bins = os.path.join(args.target_dir, args.build_profile)
    workdir = tempfile.mkdtemp(prefix="portico-grpc-perf-")
    body = request_body(workdir)
    try:
        upstream = free_port()
        start([os.path.join(bins, "examples", "grpc_echo"), f"127.0.0.1:{upstream}"],
              stdout=subprocess.DEVNULL)
        wait_port(upstream, "grpc_echo")
        port, admin = free_port(), free_port()
        conf = os.path.join(workdir, "portico.yaml")
        with open(conf, "w") as f:
            f.write(portico_config(workdir, port, admin, upstream, args.threads,
                                 args.max_h2_streams))
        log = open(os.path.join(workdir, "portico.log"), "w")
        start([os.path.join(bins, "portico"), "run", "-c", conf],
              stdout=subprocess.DEVNULL, stderr=log)
        wait_port(port, "portico")
        floor = free_port()
        env = dict(os.environ, MINIMAL_PINGORA_H2_STREAMS=str(args.max_h2_streams))
        start([os.path.join(bins, "examples", "minimal_pingora"), f"127.0.0.1:{floor}",
               f"127.0.0.1:{upstream}", str(args.threads)],
              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        wait_port(floor, "minimal_pingora")
        for target in (upstream, floor, port):
            check_call(target, body)

        print(f"gRPC unary echo, {args.build_profile} build, {duration} s per row "
              f"after {warmup} s warm-up, Portico with {args.threads} thread(s) and "
              f"max_h2_streams {args.max_h2_streams}"
              + (" (smoke run: the figures mean nothing)" if args.smoke else ""))
        print()
        print("| connections x streams | direct req/s | minimal Pingora req/s "
              "| Portico req/s | Portico / direct | Portico / Pingora "
              "| direct mean | Pingora mean | Portico mean | failed (direct, Pingora, Portico) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for conns, streams in loads:
            direct = h2load(upstream, body, conns, streams, duration, warmup)
            bare = h2load(floor, body, conns, streams, duration, warmup)
            proxied = h2load(port, body, conns, streams, duration, warmup)
            ratio = proxied["rate"] / direct["rate"] if direct["rate"] else 0.0
            to_floor = proxied["rate"] / bare["rate"] if bare["rate"] else 0.0
            print(f"| {conns} x {streams} | {direct['rate']:.0f} | {bare['rate']:.0f} "
                  f"| {proxied['rate']:.0f} | {ratio:.0%} | {to_floor:.0%} "
                  f"| {direct['mean']} | {bare['mean']} | {proxied['mean']} "
                  f"| {direct['failed']}, {bare['failed']}, {proxied['failed']} |")
            if direct["failed"] or bare["failed"] or proxied["failed"]:
                sys.exit("grpc perf: some requests failed")
    finally:
        stop_all()


if __name__ == "__main__":
    main()
