"""Records where one proxy spends its CPU under the plain keep-alive load.

    python3 perf/profile.py [PROXY] [--conns N] [--seconds S] [--out DIR]

Starts the same upstream and the same proxy configuration as perf/run.sh
(scenario a), puts wrk on the load CPU, and runs `perf record -g` on the
proxy's process for the measured seconds. Writes DIR/PROXY.perf.data and
DIR/PROXY.top.txt (the hottest symbols, self time, from `perf report`), and
prints the top of that list; with --flamegraph also DIR/PROXY.svg (inferno). Every process started is stopped by PID at the
end, as in the harness. Needs the release builds (perf/run.sh builds them) and
`perf` (Debian's linux-perf).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import loadgen
import machine
import procs
from proxies import STARTERS, RunEnv, Variant, nginx_supports_http2_directive, start_upstream


def thread_switches(pids):
    """Context switches of each thread of `pids`: {tid: (name, voluntary, involuntary)}."""
    out = {}
    for pid in pids:
        out.update(_switches_of(pid))
    return out


def _switches_of(pid):
    out = {}
    base = f"/proc/{pid}/task"
    for tid in os.listdir(base):
        try:
            with open(f"{base}/{tid}/status") as f:
                fields = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        out[int(tid)] = (fields.get("Name", "?"), int(fields.get("voluntary_ctxt_switches", 0)),
                         int(fields.get("nonvoluntary_ctxt_switches", 0)))
    return out


def main(argv):
    p = argparse.ArgumentParser(prog="perf/profile.py")
    p.add_argument("proxy", nargs="?", default="portico", choices=sorted(STARTERS))
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--seconds", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "portico-profile"))
    p.add_argument("--target-dir", default=os.path.join(loadgen.HERE, "..", "target"))
    p.add_argument("--portico-bin", help="the Portico binary to profile")
    p.add_argument("--flamegraph", action="store_true",
                   help="also write DIR/PROXY.svg (needs inferno: cargo install inferno)")
    p.add_argument("--strace", action="store_true",
                   help="count the proxy's system calls (strace -c) instead of sampling")
    a = p.parse_args(argv)
    if not shutil.which("perf"):
        print("profile: `perf` is missing (apt-get install linux-perf)")
        return 1
    os.makedirs(a.out, exist_ok=True)
    target = os.path.abspath(a.target_dir)
    nofile = machine.raise_fd_limit(4096)
    server_cpus, load_cpus = machine.cpu_layout(None, None)
    env = RunEnv(workdir=tempfile.mkdtemp(prefix="portico-profile-"), threads=a.threads,
                 server_cpus=server_cpus,
                 portico_bin=os.path.abspath(a.portico_bin) if a.portico_bin
                 else os.path.join(target, "release", "portico"),
                 minimal_bin=os.path.join(target, "release", "examples", "minimal_pingora"),
                 nofile=nofile, nginx_http2_directive=nginx_supports_http2_directive())
    data = os.path.join(a.out, f"{a.proxy}.perf.data")
    top = os.path.join(a.out, f"{a.proxy}.top.txt")
    try:
        start_upstream(env)
        service, port = STARTERS[a.proxy](env, Variant())
        problem = loadgen.curl_check(port, "/1k", 1024)
        if problem:
            print(f"profile: {a.proxy} answered wrongly: {problem}")
            return 1
        loadgen.wrk(port, "/1k", a.conns, 2, 1, load_cpus)  # warm-up
        pid = str(service.pid)
        switches_before = thread_switches(service.pids())
        if a.strace:
            tracer = ["timeout", "-s", "INT", str(a.seconds), "strace", "-c", "-f", "-p", pid,
                      "-o", os.path.join(a.out, f"{a.proxy}.strace.txt")]
            for child in service.pids():
                if str(child) != pid:
                    tracer[5:5] = ["-p", str(child)]
        else:
            tracer = ["perf", "record", "-q", "--call-graph", "dwarf,16384", "-F", "499", "-p", pid,
                      "-o", data, "--",
                      "sleep", str(a.seconds)]
        recorder = subprocess.Popen(tracer, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = loadgen.wrk(port, "/1k", a.conns, a.seconds, 1, load_cpus)
        recorder.wait(timeout=a.seconds + 60)
        print(f"profile: {a.proxy} at {a.conns} conns: {r.rps:,.0f} req/s while recorded")
        after = thread_switches(service.pids())
        for tid, (name, vol, invol) in sorted(after.items()):
            v0, i0 = switches_before.get(tid, (name, 0, 0))[1:]
            if r.requests and (vol - v0 or invol - i0):
                print(f"profile:   thread {tid} {name}: {(vol - v0) / r.requests:.2f} voluntary "
                      f"and {(invol - i0) / r.requests:.2f} involuntary switches per request")
    finally:
        procs.stop_all()
        shutil.rmtree(env.workdir, ignore_errors=True)
    if a.strace:
        with open(os.path.join(a.out, f"{a.proxy}.strace.txt")) as f:
            print(f.read())
        print(f"profile: {r.requests} requests while traced")
        return 0
    with open(top, "w") as f:
        subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "symbol",
                        "--stdio", "-g", "none", "--percent-limit", "0.4"],
                       stdout=f, stderr=subprocess.DEVNULL, check=False)
    if a.flamegraph:
        svg = os.path.join(a.out, f"{a.proxy}.svg")
        if not (shutil.which("inferno-collapse-perf") and shutil.which("inferno-flamegraph")):
            print("profile: no flamegraph: inferno is missing (cargo install inferno)")
        else:
            script = subprocess.run(["perf", "script", "-i", data], capture_output=True,
                                    check=False).stdout
            folded = subprocess.run(["inferno-collapse-perf"], input=script,
                                    capture_output=True, check=False).stdout
            with open(svg, "wb") as f:
                subprocess.run(["inferno-flamegraph", "--minwidth", "0.1", "--title",
                                f"{a.proxy}, perf/profile.py, {a.conns} conns"],
                               input=folded, stdout=f, check=False)
            print(f"profile: flamegraph in {svg}")
    with open(top) as f:
        lines = [line.rstrip() for line in f if line.strip() and not line.startswith("#")]
    print("\n".join(lines[:40]))
    print(f"profile: {data} and {top} written")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
