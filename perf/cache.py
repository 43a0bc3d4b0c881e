#!/usr/bin/env python3
"""Portico's response cache under load: hit throughput and the memory bound.

Two parts, on loopback only, against the upstream nginx of perf/run.sh
(proxies.start_upstream: a fixed 1 KiB body on every path, 1 MiB on `/1m`,
no Cache-Control, so both caches take their freshness from their config):

1. Throughput. wrk GETs one object over keep-alive through, in turn: the
   upstream direct, nginx plain, nginx with `proxy_cache`, Portico plain
   (the same route without a cache section) and Portico with the route
   cached. A cached row is checked first: the second request must say
   `X-Cache-Status: HIT`. The notes give the upstream's CPU per request
   during the row, so a cache that went upstream would show.
2. Memory. Portico with `cache.max_size` M is sent `--factor` x M of distinct
   1 MiB objects (`/1m?i=N`, each a miss) over 8 keep-alive connections,
   while a sampler reads Portico's VmRSS and the admin listener's
   `portico_cache_stored_bytes` every 50 ms: start, peak and end RSS, and
   stored bytes against the bound.

Every process is started through procs.Service and stopped by PID, on exit
and on INT, TERM and HUP; every load has a duration and every tool a
timeout. Prints Markdown and writes it to --out (perf/CACHE-RESULTS.md).
Called by perf/cache.sh, which builds the binary; see perf/README.md.
"""

import argparse
import http.client
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import loadgen
import machine
import procs
from proxies import (BODY_1K, BODY_1M, RunEnv, Variant, _dir, _nginx_common, _nginx_service,
                     _write, nginx_supports_http2_directive, start_nginx, start_portico,
                     start_upstream)

MIB = 1024 * 1024
# Distinct objects are fetched over this many keep-alive connections.
MEMORY_CONNS = 8
SAMPLE_SECONDS = 0.05
# The memory phase gives up after this long, whatever is left to fetch.
MEMORY_LIMIT_SECONDS = 60.0
# How long the memory phase waits after its load before a last RSS reading.
IDLE_SECONDS = 2.0


def start_nginx_cache(env, max_mib):
    """nginx with `proxy_cache` on every path: 1 h validity for 200s (the
    upstream sends no Cache-Control), a lock so a burst of misses sends one
    request, and the cache status in `X-Cache-Status` as Portico does."""
    d = _dir(env, "nginx_cache")
    port = procs.free_port()
    conf = _nginx_common(d, env.threads, env.nofile) + f"""    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_max_temp_file_size 0;
    proxy_cache_path {d}/cache levels=1:2 keys_zone=perf:16m max_size={max_mib}m
                     inactive=1h use_temp_path=off;
    upstream up {{
        server 127.0.0.1:{env.upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://up;
            proxy_cache perf;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            add_header X-Cache-Status $upstream_cache_status always;
        }}
    }}
}}
"""
    service = _nginx_service(env, "nginx proxy_cache", d, _write(f"{d}/nginx.conf", conf),
                             env.server_cpus)
    service.start(port)
    return service, port


def start_portico_cache(env, max_mib, name="portico_cache", cached=True):
    """Portico with one catch-all route, cached (1 h for answers without
    freshness, objects up to 2 MiB) unless `cached` is false, and an admin
    listener for /metrics. Returns (service, port, admin port)."""
    d = _dir(env, name)
    port, admin = procs.free_port(), procs.free_port()
    conf = f"""version: 1
server:
  threads: {env.threads}
  pid_file: {d}/portico.pid
  upgrade_sock: {d}/portico_upgrade.sock
  grace_period: 1s
  graceful_shutdown_timeout: 1s
listeners:
  - address: 127.0.0.1:{port}
admin:
  address: 127.0.0.1:{admin}
access_log: {{target: off}}
logging: {{level: warn, format: text}}
cache:
  max_size: {max_mib}MiB
upstreams:
  up:
    backends:
      - address: 127.0.0.1:{env.upstream_port}
routes:
  - id: all
    match: {{path: {{prefix: /}}}}
    upstream: up
"""
    if cached:
        conf += "    cache: {default_ttl: 1h, max_object_size: 2MiB}\n"
    argv = [env.portico_bin, "run", "-c", _write(f"{d}/portico.yaml", conf)]
    service = procs.Service("portico cache", argv, env.server_cpus, f"{d}/stdout.log",
                            signal.SIGINT)
    service.start(port, timeout=60.0)
    procs_wait_port(admin)
    return service, port, admin


def procs_wait_port(port, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if procs.port_open(port):
            return
        time.sleep(0.05)
    raise procs.StartError(f"nothing listens on admin port {port} after {limit:.0f}s")


def cache_metrics(admin):
    """The cache's gauges and counters from the admin listener's /metrics:
    {name or name{labels}: value}."""
    conn = http.client.HTTPConnection("127.0.0.1", admin, timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode(errors="replace")
    finally:
        conn.close()
    out = {}
    for line in text.splitlines():
        if line.startswith("portico_cache_"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def check_hit(port, path, size):
    """None when a second GET of `path` is a HIT of the right size."""
    problem = loadgen.curl_check(port, path, size)
    if problem:
        return problem
    status = loadgen.response_headers(port, path).get("x-cache-status", "")
    if status.upper() != "HIT":
        return f"the second request said X-Cache-Status {status or '(none)'}, not HIT"
    return None


def measure(env, upstream, start, path, size, conns, args, load_cpus):
    """One throughput row: a fresh server, checked, warmed up, measured."""
    service, port, check = start()
    try:
        problem = check(port, path, size)
        if problem:
            return {"error": problem}
        loadgen.wrk(port, path, conns, args.warmup, args.wrk_threads, load_cpus)
        pids = service.pids()
        up_pids = upstream.pids()
        cpu0, up0 = procs.cpu_seconds(pids), procs.cpu_seconds(up_pids)
        res = loadgen.wrk(port, path, conns, args.duration, args.wrk_threads, load_cpus)
        cpu, up = procs.cpu_seconds(pids) - cpu0, procs.cpu_seconds(up_pids) - up0
        return {"res": res, "cpu": cpu, "up": up,
                "hwm": procs.memory_kib(service.pids(), "VmHWM")}
    finally:
        service.stop()


def throughput(env, upstream, args, load_cpus):
    def plain_check(port, path, size):
        return loadgen.curl_check(port, path, size)

    def direct():
        # The upstream is the one already running; nothing to stop.
        return _Running(upstream), env.upstream_port, plain_check

    def nginx():
        s, p = start_nginx(env, Variant())
        return s, p, plain_check

    def nginx_cache():
        s, p = start_nginx_cache(env, args.max_size)
        return s, p, check_hit

    def portico():
        s, p = start_portico(env, Variant())
        return s, p, plain_check

    def portico_cache():
        s, p, _ = start_portico_cache(env, args.max_size)
        return s, p, check_hit

    targets = [("direct", direct), ("nginx", nginx), ("nginx proxy_cache", nginx_cache),
               ("portico", portico), ("portico cache", portico_cache)]
    rows = []
    for path, size, conns_list in args.objects:
        for conns in conns_list:
            base = {}
            for label, start in targets:
                r = measure(env, upstream, start, path, size, conns, args, load_cpus)
                r.update(label=label, path=path, size=size, conns=conns)
                if "res" in r:
                    base[label] = r["res"].rps
                r["base"] = base
                rows.append(r)
                print(f"perf: {label} {path} x{conns}: "
                      + (f"{r['res'].rps:,.0f} req/s" if "res" in r else r["error"]),
                      flush=True)
    return rows


class _Running:
    """The already running upstream, seen as a row's server: stop does nothing."""

    def __init__(self, service):
        self.service = service

    def pids(self):
        return self.service.pids()

    def stop(self):
        pass


def throughput_table(rows):
    cols = ["object", "conns", "server", "req/s", "vs plain", "vs nginx proxy_cache",
            "p50 ms", "p99 ms", "CPU µs/req", "upstream CPU µs/req", "peak RSS MiB", "notes"]
    plain_of = {"portico cache": "portico", "nginx proxy_cache": "nginx"}
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        obj = "1 KiB" if r["size"] == BODY_1K else f"{r['size'] // MIB} MiB"
        if "error" in r:
            lines.append(f"| {obj} | {r['conns']} | {r['label']} | — | — | — | — | — | — "
                         f"| — | — | **FAILED**: {r['error']} |")
            continue
        res = r["res"]
        plain = r["base"].get(plain_of.get(r["label"], ""))
        ngx = r["base"].get("nginx proxy_cache")
        vs_plain = f"{res.rps / plain:.2f}" if plain else "—"
        vs_ngx = f"{res.rps / ngx:.2f}" if ngx and r["label"] != "direct" else "—"
        per = 1e6 / res.requests if res.requests else 0
        # The direct row's server is the upstream: its two CPU columns are one.
        up = "—" if r["label"] == "direct" else f"{r['up'] * per:.1f}"
        notes = ", ".join(f"{k} {v}" for k, v in res.errors.items())
        if r["size"] >= MIB:
            notes = (notes + ", " if notes else "") + f"{res.bytes / res.seconds / MIB:,.0f} MiB/s"
        lines.append(f"| {obj} | {r['conns']} | {r['label']} | {res.rps:,.0f} | {vs_plain} "
                     f"| {vs_ngx} | {res.p50_us / 1000:.2f} | {res.p99_us / 1000:.2f} "
                     f"| {r['cpu'] * per:.1f} | {up} | {r['hwm'] / 1024:.1f} | {notes} |")
    return "\n".join(lines)


def memory(env, args, cached, extra_env=()):
    """Distinct objects through a bounded cache (or, as a baseline, the same
    route uncached); RSS and stored bytes sampled. `extra_env`: KEY=VALUE
    strings set in Portico's environment (mimalloc's options, say)."""
    saved = dict(os.environ)
    os.environ.update(kv.split("=", 1) for kv in extra_env)
    try:
        service, port, admin = start_portico_cache(
            env, args.max_size, "portico_memory" + ("_cached" * cached) + str(len(extra_env)),
            cached)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    total = args.factor * args.max_size      # MiB of distinct content, one MiB each
    samples, lock, stop = [], threading.Lock(), threading.Event()
    peak = {"rss": 0, "stored": 0.0, "objects": 0.0}
    statuses, failures = {}, []
    next_index = [0]

    def sampler():
        last_metrics = 0.0
        while not stop.is_set():
            rss = procs.memory_kib(service.pids(), "VmRSS")
            peak["rss"] = max(peak["rss"], rss)
            now = time.monotonic()
            if now - last_metrics >= SAMPLE_SECONDS:
                last_metrics = now
                try:
                    m = cache_metrics(admin)
                except OSError:
                    m = {}
                peak["stored"] = max(peak["stored"], m.get("portico_cache_stored_bytes", 0))
                peak["objects"] = max(peak["objects"], m.get("portico_cache_objects", 0))
                samples.append((now, rss, m.get("portico_cache_stored_bytes")))
                if os.environ.get("CACHE_PERF_TRACE"):
                    print(f"trace: {now:.2f} rss {rss / 1024:.1f} MiB stored "
                          f"{m.get('portico_cache_stored_bytes', 0) / MIB:.1f} MiB "
                          f"done {sum(statuses.values())}", flush=True)
            stop.wait(SAMPLE_SECONDS)

    deadline = time.monotonic() + MEMORY_LIMIT_SECONDS

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next_index[0]
                    if i >= total:
                        return
                    next_index[0] += 1
                conn.request("GET", f"/1m?i={i}")
                resp = conn.getresponse()
                body = resp.read()
                status = resp.getheader("x-cache-status", "(none)")
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if resp.status != 200 or len(body) != BODY_1M:
                        failures.append(f"/1m?i={i}: {resp.status}, {len(body)} bytes")
        except (OSError, http.client.HTTPException) as e:
            with lock:
                failures.append(f"connection failed: {e}")
        finally:
            conn.close()

    try:
        problem = loadgen.curl_check(port, "/1m?i=warm", BODY_1M)
        if problem:
            return {"error": problem}
        time.sleep(0.2)    # let the allocator settle after start-up and the check
        start_rss = procs.memory_kib(service.pids(), "VmRSS")
        start_metrics = cache_metrics(admin)
        watcher = threading.Thread(target=sampler, daemon=True)
        watcher.start()
        t0 = time.monotonic()
        workers = [threading.Thread(target=client, daemon=True) for _ in range(args.memory_conns)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()) + 15)
        elapsed = time.monotonic() - t0
        stop.set()
        watcher.join(timeout=5)
        end_metrics = cache_metrics(admin)
        end_rss = procs.memory_kib(service.pids(), "VmRSS")
        hwm = procs.memory_kib(service.pids(), "VmHWM")
        # mimalloc hands freed pages back to the kernel after a delay; this
        # reading shows what stays once the load has stopped.
        time.sleep(IDLE_SECONDS)
        idle_rss = procs.memory_kib(service.pids(), "VmRSS")
        return {"total": total, "done": sum(statuses.values()), "elapsed": elapsed,
                "start_rss": start_rss, "peak_rss": max(peak["rss"], end_rss),
                "end_rss": end_rss, "idle_rss": idle_rss, "hwm": hwm, "peak_stored": peak["stored"],
                "end_stored": end_metrics.get("portico_cache_stored_bytes", 0),
                "start_stored": start_metrics.get("portico_cache_stored_bytes", 0),
                "peak_objects": peak["objects"],
                "end_objects": end_metrics.get("portico_cache_objects", 0),
                "evictions": end_metrics.get("portico_cache_evictions_total", 0),
                "statuses": statuses, "failures": failures, "samples": len(samples)}
    finally:
        service.stop()


def memory_table(runs, max_mib):
    """`runs`: [(label, result)], one column each."""
    bound = max_mib * MIB

    def mib(kib):
        return f"{kib / 1024:.1f}"

    def cells(m):
        if "error" in m:
            return [f"**FAILED**: {m['error']}"] + [""] * 8
        out = [
            f"{m['total']} MiB ({m['total']} objects of 1 MiB; {m['done']} answered in "
            f"{m['elapsed']:.1f} s)",
            ", ".join(f"{k} {v}" for k, v in sorted(m["statuses"].items())),
            f"{m['start_stored'] / MIB:.1f} / {m['peak_stored'] / MIB:.1f} / "
            f"{m['end_stored'] / MIB:.1f} MiB (peak {m['peak_stored']:,.0f} B, "
            f"{m['peak_stored'] / bound:.1%} of the bound)",
            f"{m['peak_objects']:.0f} / {m['end_objects']:.0f}, {m['evictions']:.0f} evicted",
            f"{mib(m['start_rss'])} / {mib(m['peak_rss'])} / {mib(m['end_rss'])} MiB",
            f"{mib(m['idle_rss'])} MiB",
            f"{mib(m['peak_rss'] - m['start_rss'])} / {mib(m['end_rss'] - m['start_rss'])} / "
            f"{mib(m['idle_rss'] - m['start_rss'])} MiB",
            f"{m['samples']}",
            (f"{len(m['failures'])}: {'; '.join(m['failures'][:3])}" if m["failures"]
             else "none"),
        ]
        return out

    names = ["distinct content requested", "X-Cache-Status",
             "stored bytes: start / peak / end", "objects: peak / end, evictions",
             "RSS: start / peak / end", f"RSS {IDLE_SECONDS:.0f} s after the load",
             "RSS growth over start: peak / end / idle",
             f"samples (every {SAMPLE_SECONDS * 1000:.0f} ms)", "failures"]
    columns = [cells(m) for _, m in runs]
    lines = ["| | " + " | ".join(label for label, _ in runs) + " |",
             "|---|" + "---|" * len(runs)]
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(c[i] for c in columns) + " |")
    return "\n".join(lines)


def parse_objects(text):
    """`1k:16,64;1m:16` -> [(path, size, [conns])]."""
    sizes = {"1k": ("/1k", BODY_1K), "1m": ("/1m", BODY_1M)}
    out = []
    for part in text.split(";"):
        name, _, conns = part.partition(":")
        if name not in sizes or not conns:
            raise argparse.ArgumentTypeError(f"bad object spec {part!r}: want 1k:16,64 or 1m:16")
        out.append(sizes[name] + ([int(c) for c in conns.split(",")],))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target-dir", required=True)
    ap.add_argument("--build-profile", default="release")
    ap.add_argument("--smoke", action="store_true",
                    help="1 s rows at 4 connections, max_size 8MiB: does it all answer?")
    ap.add_argument("--duration", type=int, default=None, help="measured seconds per row (5)")
    ap.add_argument("--warmup", type=int, default=None, help="unmeasured seconds per row (2)")
    ap.add_argument("--threads", type=int, default=1, help="worker threads of every proxy")
    ap.add_argument("--objects", type=parse_objects, default=None,
                    help="objects and connection counts: 1k:16,64;1m:16 (the default)")
    ap.add_argument("--max-size", type=int, default=None, help="cache.max_size in MiB (64)")
    ap.add_argument("--factor", type=int, default=10,
                    help="distinct content requested, as a multiple of max-size (10)")
    ap.add_argument("--memory-conns", type=int, default=MEMORY_CONNS,
                    help="connections of the memory phase (8)")
    ap.add_argument("--also-env", action="append", default=[], metavar="KEY=VALUE",
                    help="add a memory column: the cached run again with this in Portico's "
                         "environment, e.g. MIMALLOC_PURGE_DELAY=0 (repeatable)")
    ap.add_argument("--parts", default="tm", help="t: throughput, m: memory (both)")
    ap.add_argument("--out", default=os.path.join(machine.ROOT, "perf", "CACHE-RESULTS.md"))
    ap.add_argument("--keep-workdir", action="store_true")
    ap.add_argument("--portico-bin", default=None,
                    help="measure another Portico binary (a copy of the build before a change)")
    args = ap.parse_args()
    args.duration = args.duration or (1 if args.smoke else 5)
    args.warmup = args.warmup or (1 if args.smoke else 2)
    args.objects = args.objects or parse_objects("1k:4" if args.smoke else "1k:16,64;1m:16")
    args.max_size = args.max_size or (8 if args.smoke else 64)

    def on_signal(signum, _frame):
        procs.stop_all()
        sys.exit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    nofile = machine.raise_fd_limit(4096)
    server_cpus, load_cpus = machine.cpu_layout("", "")
    args.wrk_threads = max(1, len(machine.cpu_list(load_cpus))) if load_cpus else 1
    bins = os.path.join(args.target_dir, args.build_profile)
    workdir = tempfile.mkdtemp(prefix="portico-cache-perf-")
    env = RunEnv(workdir=workdir, threads=args.threads, server_cpus=server_cpus,
                 portico_bin=args.portico_bin or os.path.join(bins, "portico"), minimal_bin="",
                 nofile=nofile,
                 nginx_http2_directive=nginx_supports_http2_directive())
    info = machine.describe(args, [], server_cpus, load_cpus)
    shown = [a for a in sys.argv[1:] if a not in (args.target_dir, "--target-dir",
                                                  "--build-profile", args.build_profile)]
    facts = [(k, " ".join(["perf/cache.sh"] + shown) if k == "command" else v)
             for k, v in info["facts"]]
    facts.append(("build profile", args.build_profile))
    facts.append(("Portico binary", env.portico_bin))
    out = ["# Portico's response cache: hit throughput and the memory bound", ""]
    if args.smoke or args.build_profile != "release":
        out += ["> **Smoke or debug run: these numbers are not results.**", ""]
    if info.get("busy"):
        out += [f"> **Warning:** the load average was {info['busy']} at the start: other "
                "work shared the CPUs.", ""]
    out += [f"- {k}: {v}" for k, v in facts]
    ok = True
    try:
        upstream = start_upstream(env)
        if "t" in args.parts:
            rows = throughput(env, upstream, args, load_cpus)
            ok = ok and all("error" not in r for r in rows)
            out += ["", "## Cache-hit throughput", "",
                    f"wrk, HTTP/1.1 keep-alive, one object requested over and over; "
                    f"{args.warmup} s warm-up, {args.duration} s measured. `portico` is the "
                    "same route without its cache section; `nginx proxy_cache` keeps the "
                    "object in a file (in the page cache) with its key in shared memory. "
                    "vs plain: the cached row over the same server uncached. upstream CPU: "
                    "the upstream nginx's CPU time per request during the row (about 0 when "
                    "every request is a hit).", "", throughput_table(rows)]
        if "t" in args.parts and not ok:
            print("perf: a throughput row failed")
        if "m" in args.parts:
            runs = [("Portico, route uncached (baseline)", memory(env, args, False)),
                    (f"Portico, cache.max_size {args.max_size} MiB", memory(env, args, True))]
            if args.also_env:
                runs.append((f"the same with {' '.join(args.also_env)}",
                             memory(env, args, True, args.also_env)))
            for label, m in runs:
                if "error" in m or m["failures"] or m["done"] != m["total"]:
                    print(f"perf: {label}: wrong or missing answers")
                    ok = False
                elif m["peak_stored"] > args.max_size * MIB:
                    print(f"perf: {label}: stored bytes reached {m['peak_stored']:.0f}, over "
                          f"the bound of {args.max_size * MIB}")
                    ok = False
            out += ["", "## Memory under 10x the bound of distinct content", "",
                    f"Portico with `cache.max_size: {args.max_size}MiB`, one cached route, "
                    f"sent {args.factor * args.max_size} distinct 1 MiB objects (`/1m?i=N`) "
                    f"over {args.memory_conns} keep-alive connections; Portico's VmRSS and the "
                    "admin listener's `portico_cache_*` metrics sampled every "
                    f"{SAMPLE_SECONDS * 1000:.0f} ms. The baseline is the same load through "
                    "a fresh Portico whose route has no cache section: what proxying 1 MiB "
                    "bodies costs in RSS without storing any.", "",
                    memory_table(runs, args.max_size)]
    except (procs.StartError, loadgen.LoadError, OSError) as e:
        out += ["", f"**FAILED**: {e}"]
        ok = False
    finally:
        procs.stop_all()
        if args.keep_workdir:
            print(f"perf: configs and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    out.append(f"\n- load average at the end: {machine.loadavg()}")
    text = "\n".join(out) + "\n"
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
