"""Counts the user-space instructions a proxy spends per request.

    python3 perf/instructions.py [PROXY ...] [--requests N] [--conns C] [--out DIR]

This machine's timings move by about 15 % from one run to the next, so a
change worth a few per cent cannot be seen in requests/s. Instruction counts
under `valgrind --tool=callgrind` do not move: the same binary, config and
requests give the same count whatever else the machine is doing. Each proxy
is run under callgrind twice, in front of the harness's upstream, once
serving N requests and once 2N (h2load over HTTP/1.1 keep-alive, C
connections); the difference divided by N is its cost per request with
start-up and shut-down cancelled out. Kernel time (system calls, wake-ups,
context switches) is not in this figure: that is what the harness's CPU per
request adds. Writes DIR/PROXY.callgrind.out (the 2N run) for
`callgrind_annotate`.

The proxies counted are Portico and the minimal Pingora proxy: the figure is
for Portico's overhead over its framework, and for steps that change either.
Needs valgrind and h2load.
"""

import argparse
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import loadgen
import machine
import procs
from proxies import STARTERS, RunEnv, Variant, nginx_supports_http2_directive, start_upstream


def _wrapper(workdir, binary, out_file):
    """A script that runs `binary` with its arguments under callgrind."""
    path = os.path.join(workdir, f"callgrind-{os.path.basename(binary)}")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                f"exec valgrind --tool=callgrind --callgrind-out-file={out_file} "
                f"--dump-instr=no --trace-children=no {binary} \"$@\"\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
    return path


def _total_ir(out_file):
    with open(out_file) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    raise RuntimeError(f"no totals line in {out_file}")


def _one(env, proxy, requests, conns, out_file):
    binary = env.portico_bin if proxy == "portico" else env.minimal_bin
    real = (env.portico_bin, env.minimal_bin)
    wrapped = _wrapper(env.workdir, binary, out_file)
    if proxy == "portico":
        env.portico_bin = wrapped
    else:
        env.minimal_bin = wrapped
    try:
        service, port = STARTERS[proxy](env, Variant())
    finally:
        env.portico_bin, env.minimal_bin = real
    # Under valgrind the proxy starts slowly, and Portico's start-up check
    # binds its addresses briefly before Pingora does: retry for a while.
    for _ in range(120):
        problem = loadgen.curl_check(port, "/1k", 1024)
        if not problem:
            break
        time.sleep(0.5)
    if problem:
        raise RuntimeError(f"{proxy} answered wrongly: {problem}")
    argv = ["h2load", "--h1", "-n", str(requests), "-c", str(conns), "-t", "1",
            f"http://127.0.0.1:{port}/1k"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    m = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded",
                  done.stdout)
    if not m or int(m.group(2)) != requests:
        raise RuntimeError(f"h2load did not complete {requests} requests: {done.stdout[-400:]}")
    service.stop(grace=60.0)
    # valgrind writes its output as the process exits; wait for the file.
    for _ in range(600):
        if os.path.exists(out_file) and os.path.getsize(out_file) > 0:
            break
        time.sleep(0.1)
    return _total_ir(out_file)


def main(argv):
    p = argparse.ArgumentParser(prog="perf/instructions.py")
    p.add_argument("proxies", nargs="*", help="minimal_pingora and/or portico (both)")
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "portico-instructions"))
    p.add_argument("--target-dir", default=os.path.join(loadgen.HERE, "..", "target"))
    p.add_argument("--portico-bin", help="the Portico binary to count")
    a = p.parse_args(argv)
    a.proxies = a.proxies or ["minimal_pingora", "portico"]
    if set(a.proxies) - {"minimal_pingora", "portico"}:
        p.error("proxies are minimal_pingora and portico")
    for tool in ("valgrind", "h2load"):
        if not shutil.which(tool):
            print(f"instructions: `{tool}` is missing")
            return 1
    os.makedirs(a.out, exist_ok=True)
    target = os.path.abspath(a.target_dir)
    env = RunEnv(workdir=tempfile.mkdtemp(prefix="portico-instr-"), threads=1,
                 server_cpus=machine.cpu_layout(None, None)[0],
                 portico_bin=os.path.abspath(a.portico_bin) if a.portico_bin
                 else os.path.join(target, "release", "portico"),
                 minimal_bin=os.path.join(target, "release", "examples", "minimal_pingora"),
                 nofile=machine.raise_fd_limit(4096),
                 nginx_http2_directive=nginx_supports_http2_directive())
    try:
        start_upstream(env)
        for proxy in a.proxies:
            small = _one(env, proxy, a.requests, a.conns,
                         os.path.join(env.workdir, f"{proxy}.small.out"))
            out_file = os.path.join(a.out, f"{proxy}.callgrind.out")
            if os.path.exists(out_file):
                os.remove(out_file)
            large = _one(env, proxy, 2 * a.requests, a.conns, out_file)
            per = (large - small) / a.requests
            print(f"instructions: {proxy}: {per:,.0f} instructions per request "
                  f"({small:,} for {a.requests}, {large:,} for {2 * a.requests}); "
                  f"profile in {out_file}", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(env.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    sys.exit(main(sys.argv[1:]))
