"""The load generators: wrk (HTTP/1.1), h2load (cleartext HTTP/2), the idle
connection client, and the curl check that runs before any load.

Every call is bounded: the tools get a duration, and the subprocess a timeout
on top of it, after which it is killed. All of them run pinned to the load
generator's CPUs and only ever target 127.0.0.1.
"""

import json
import os
import re
import select
import subprocess
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_SCRIPT = os.path.join(HERE, "wrk_report.lua")
IDLE_CLIENT = os.path.join(HERE, "idle_conns.py")
# Added to every tool's own duration before it is killed.
SLACK_SECONDS = 30


@dataclass
class LoadResult:
    requests: int
    seconds: float
    p50_us: float
    p99_us: float
    p999_us: float
    bytes: int = 0
    errors: dict = field(default_factory=dict)

    @property
    def rps(self):
        return self.requests / self.seconds if self.seconds else 0.0


class LoadError(Exception):
    """A load generator failed or printed nothing usable."""


def _pinned(cpus, argv):
    return (["taskset", "-c", cpus] if cpus else []) + argv


def _run(argv, timeout):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LoadError(f"{argv[0]} did not finish within {timeout:.0f}s")
    return done


def curl_check(port, path, expected_bytes, h2=False, headers=()):
    """None when `path` answers 200 with `expected_bytes`, else what went wrong."""
    argv = ["curl", "-sS", "-o", "/dev/null", "--max-time", "10",
            "-w", "%{http_code} %{size_download} %{http_version}"]
    for h in headers:
        argv += ["-H", h]
    argv += ["--http2-prior-knowledge"] if h2 else ["--http1.1"]
    done = _run(argv + [f"http://127.0.0.1:{port}{path}"], 20)
    if done.returncode != 0:
        return f"curl failed: {done.stderr.strip()}"
    status, size, version = done.stdout.split()
    want_version = "2" if h2 else "1.1"
    if status != "200" or int(size) != expected_bytes or version != want_version:
        return (f"got status {status}, {size} bytes over HTTP/{version}; "
                f"want 200, {expected_bytes} bytes over HTTP/{want_version}")
    return None


def response_headers(port, path, headers=()):
    """The response headers of one HTTP/1.1 GET, names lowercased; {} when
    curl fails."""
    argv = ["curl", "-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10", "--http1.1"]
    for h in headers:
        argv += ["-H", h]
    done = _run(argv + [f"http://127.0.0.1:{port}{path}"], 20)
    if done.returncode != 0:
        return {}
    out = {}
    for line in done.stdout.splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def wrk(port, path, conns, seconds, threads, cpus, headers=()):
    argv = ["wrk", "-t", str(min(threads, conns)), "-c", str(conns), "-d", f"{seconds}s",
            "--timeout", "5s", "-s", WRK_SCRIPT]
    for h in headers:
        argv += ["-H", h]
    done = _run(_pinned(cpus, argv + [f"http://127.0.0.1:{port}{path}"]),
                seconds + SLACK_SECONDS)
    m = re.search(r"^PERF_RESULT (.*)$", done.stdout, re.M)
    if not m:
        raise LoadError(f"wrk printed no result (exit {done.returncode}): "
                        f"{(done.stderr or done.stdout).strip()[-300:]}")
    v = {k: int(x) for k, x in (kv.split("=") for kv in m.group(1).split())}
    errors = {k: v[k] for k in ("connect_errors", "read_errors", "write_errors",
                                "status_errors", "timeouts") if v[k]}
    return LoadResult(v["requests"], v["duration_us"] / 1e6, v["p50_us"], v["p99_us"],
                      v["p999_us"], v["bytes"], errors)


def h2load(port, path, clients, streams, seconds, threads, cpus, log_file):
    """Cleartext HTTP/2 with prior knowledge; percentiles from --log-file."""
    argv = ["h2load", "-t", str(min(threads, clients)), "-c", str(clients),
            "-m", str(streams), "-D", f"{seconds}s", f"--log-file={log_file}",
            f"http://127.0.0.1:{port}{path}"]
    done = _run(_pinned(cpus, argv), seconds + SLACK_SECONDS)
    out = done.stdout
    fin = re.search(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    traffic = re.search(r"traffic: .*?\((\d+)\) total", out)
    if "Application protocol: h2c" not in out:
        raise LoadError("h2load did not speak cleartext HTTP/2 (h2c) to the server")
    if not (fin and req and codes):
        raise LoadError(f"h2load printed no result (exit {done.returncode}): "
                        f"{(done.stderr or out).strip()[-300:]}")
    latencies = _h2load_latencies(log_file)
    elapsed = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    failed, errored, timeout = (int(req.group(i)) for i in (5, 6, 7))
    non_2xx = sum(int(codes.group(i)) for i in (2, 3, 4))
    errors = {k: n for k, n in (("failed", failed), ("errored", errored),
                                ("timeouts", timeout), ("non_2xx", non_2xx)) if n}
    return LoadResult(int(req.group(4)), elapsed, _pct(latencies, 50), _pct(latencies, 99),
                      _pct(latencies, 99.9), int(traffic.group(1)) if traffic else 0, errors)


def _h2load_latencies(log_file):
    latencies = []
    try:
        with open(log_file) as f:
            for line in f:
                cols = line.split("\t")
                if len(cols) >= 3 and cols[1] != "-1":
                    latencies.append(int(cols[2]))
        os.remove(log_file)
    except OSError:
        pass
    latencies.sort()
    return latencies


def _pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return float(sorted_values[i])


class IdleClient:
    """The idle-connection client as a child process; use as a context manager."""

    def __init__(self, port, path, count, expected, cpus, hold_seconds):
        self.argv = _pinned(cpus, [sys.executable, IDLE_CLIENT, str(port), path, str(count),
                                   str(expected), "--hold", str(hold_seconds)])
        self.popen = None

    def __enter__(self):
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
        return self

    def wait_held(self, timeout):
        """Waits until every connection is open and answered (or failed)."""
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise LoadError(f"idle client did not report within {timeout:.0f}s")
        line = self.popen.stdout.readline()
        if not line:
            self.popen.wait(timeout=SLACK_SECONDS)
            raise LoadError(f"idle client failed: {self.popen.stderr.read().strip()[-300:]}")
        return json.loads(line)

    def __exit__(self, *exc):
        try:
            self.popen.stdin.close()
            self.popen.wait(timeout=SLACK_SECONDS)
        except (subprocess.TimeoutExpired, OSError):
            self.popen.kill()
            self.popen.wait()
        return False
