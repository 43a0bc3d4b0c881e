"""The comparison harness behind perf/run.sh (see perf/README.md).

Starts one upstream, then, for every scenario and every proxy in turn, a
fresh proxy in front of it; checks with curl that the proxy answers correctly,
warms it up, measures it under the scenario's load, and stops it (a row that
needs Redis gets a fresh redis-server of its own, started before the proxy and
stopped after it; its CPU time is reported in the notes, not in the proxy's
column). The tables go to perf/RESULTS.md. Everything started is stopped by PID on exit, on
SIGINT, SIGTERM and SIGHUP alike.

Exit status: 0 when every proxy answered every check, every load ran and
every table is in the output file; 1 otherwise (the tables are still written);
2 on a usage error. That is all a smoke run asserts: no figure is judged.
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field

import loadgen
import machine
import procs
import tables
from proxies import (BODY_1K, BODY_1M, ROUTE_COUNT, ROUTE_PATH, STARTERS, RunEnv, Variant,
                     nginx_supports_http2_directive, redis_script_calls, start_redis,
                     start_upstream)

PLAIN = Variant()
PROXIES = ["nginx", "haproxy", "portico", "minimal_pingora"]
H2_STREAMS = 8          # concurrent streams per HTTP/2 connection (h2load -m)
IDLE_REPORT_TIMEOUT = 300


@dataclass
class Scenario:
    key: str
    title: str
    kind: str                   # "wrk", "h2load" or "idle"
    path: str
    size: int
    conns: list                 # full run
    smoke_conns: list
    what: str                   # one sentence for RESULTS.md
    variant: Variant = PLAIN
    headers: list = field(default_factory=list)
    # (label, proxy kind, variant); None means direct + every proxy, plain variant.
    rows: list = None


SCENARIOS = [
    Scenario("a", "Plain proxying of a 1 KiB response over keep-alive", "wrk", "/1k", BODY_1K,
             [16, 64, 256], [4, 16],
             "wrk, HTTP/1.1 keep-alive, GET of a 1 KiB body."),
    Scenario("b", "A new connection per request", "wrk", "/1k", BODY_1K, [16], [4],
             "wrk with `Connection: close`: every request opens a new client connection "
             "(upstream connections stay pooled).", headers=["Connection: close"]),
    Scenario("c", "1 MiB response bodies", "wrk", "/1m", BODY_1M, [16], [4],
             "wrk, keep-alive, GET of a 1 MiB body; the notes give the transfer rate."),
    Scenario("d", f"A table of {ROUTE_COUNT:,} routes", "wrk", ROUTE_PATH, BODY_1K, [64], [8],
             f"{ROUTE_COUNT:,} prefix routes (Portico routes, nginx `location` blocks, "
             f"a HAProxy `map_beg` map); the request `{ROUTE_PATH}` hits one near the end. "
             "The minimal Pingora proxy and the direct row have no table.",
             variant=Variant(routes=ROUTE_COUNT)),
    Scenario("e", "Cleartext HTTP/2 (prior knowledge)", "h2load", "/1k", BODY_1K, [16], [4],
             f"h2load, `conns` connections with {H2_STREAMS} concurrent streams each; the proxy "
             "speaks HTTP/1.1 to the upstream. The direct row is the upstream nginx's own "
             "HTTP/2 listener.", variant=Variant(h2=True)),
    Scenario("f", "Memory of idle keep-alive connections", "idle", "/1k", BODY_1K, [10_000],
             [500], "A python asyncio client opens the connections, sends one request on "
             "each, reads the answer and holds them idle; RSS (summed over the proxy's "
             "processes) is read before the client starts and once all are held."),
    Scenario("g", "Portico's policies on against Portico plain", "wrk", "/1k", BODY_1K, [64],
             [16], "As (a), Portico with one policy at a time: the access log written to a "
             "file; an API key checked on every request (SHA-256 of the key, looked up among "
             "the consumers' hashes); a JWT checked on every request (HS256, `iss` and `exp`); "
             "the whole security pipeline (IP allow list, size limits, SQL-injection and XSS "
             "checks of path, query and two headers, CORS headers for an allowed Origin, "
             "and the JWT); a rate limit on the route (`key: client`, a limit of 10⁹ an hour "
             "so nothing is refused: the cost of deciding) counted in the local store, in "
             "Redis (one round trip per request), and in Redis taking 100 requests per round "
             "trip (`local_allowance: 100`). The Redis rows run a redis-server of their own "
             "on the servers' CPU; its CPU time is not in Portico's column but in the notes, "
             "with the Lua script calls Redis served per request.",
             rows=[("direct", "direct", PLAIN),
                   ("portico (no policy)", "portico", PLAIN),
                   ("portico (access_log to a file)", "portico", Variant(access_log=True)),
                   ("portico (API key)", "portico", Variant(auth="api_key")),
                   ("portico (JWT, HS256)", "portico", Variant(auth="jwt")),
                   ("portico (security pipeline + JWT)", "portico",
                    Variant(auth="jwt", protection=True)),
                   ("portico (rate limit, local)", "portico", Variant(rate_limit="local")),
                   ("portico (rate limit, Redis)", "portico", Variant(rate_limit="redis")),
                   ("portico (rate limit, Redis, allowance 100)", "portico",
                    Variant(rate_limit="redis_batched"))]),
]


class Interrupted(Exception):
    pass


def _on_signal(signum, _frame):
    raise Interrupted(f"stopped by signal {signal.Signals(signum).name}")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="perf/run.sh",
                                description="Portico vs nginx vs HAProxy on loopback.")
    p.add_argument("--smoke", action="store_true",
                   help="a couple of seconds per row at low load; checks answers only")
    p.add_argument("--duration", type=int, help="seconds per measurement (10; smoke 2)")
    p.add_argument("--warmup", type=int, help="warm-up seconds before each (3; smoke 1)")
    p.add_argument("--threads", type=int, default=1, help="worker threads of every proxy")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure each load row this many times, fresh proxy each time, and "
                   "report the median by req/s with the spread in the notes")
    p.add_argument("--scenarios", default="abcdefg", help="subset, e.g. 'ace'")
    p.add_argument("--proxies", default=",".join(PROXIES), help="comma-separated subset")
    p.add_argument("--conns", help="comma-separated connection counts for every load "
                   "scenario, instead of each scenario's own (e.g. 64 or 16,256)")
    p.add_argument("--portico-bin", help="the Portico binary to measure, instead of the "
                   "release build (to compare two builds)")
    p.add_argument("--portico-server", action="append", default=[], metavar="'KEY: VALUE'",
                   help="an extra line under Portico's `server:` section, e.g. "
                   "'work_stealing: false' (repeatable)")
    p.add_argument("--idle-conns", type=int, help="connections held in (f) (10000; smoke 500)")
    p.add_argument("--server-cpus", help="CPU list for proxies and upstream (taskset -c)")
    p.add_argument("--load-cpus", help="CPU list for the load generators")
    p.add_argument("--out", default=os.path.join(loadgen.HERE, "RESULTS.md"))
    p.add_argument("--target-dir", default=os.path.join(loadgen.HERE, "..", "target"),
                   help="cargo's target directory holding the builds")
    p.add_argument("--build-profile", default="release",
                   help="the cargo profile directory the binaries are taken from (release; "
                   "the CI smoke run uses debug, whose figures mean nothing)")
    p.add_argument("--keep-workdir", action="store_true", help="keep configs and logs")
    a = p.parse_args(argv)
    a.duration = a.duration or (2 if a.smoke else 10)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.smoke else 3)
    a.idle_conns = a.idle_conns or (500 if a.smoke else 10_000)
    a.proxies = [x for x in a.proxies.split(",") if x]
    try:
        a.conns = [int(x) for x in a.conns.split(",") if x] if a.conns else None
    except ValueError:
        p.error(f"bad --conns {a.conns!r}: want numbers separated by commas")
    if a.conns is not None and (not a.conns or min(a.conns) < 1):
        p.error("bad --conns: want at least one count, each above 0")
    unknown = set(a.proxies) - set(PROXIES) | set(a.scenarios) - {s.key for s in SCENARIOS}
    if unknown or a.threads < 1 or a.duration < 1 or a.repeat < 1:
        p.error(f"bad value(s): {', '.join(sorted(unknown)) or 'threads/duration/repeat'}")
    return a


class Run:
    """One invocation: its settings, its upstream, and the rows measured so far."""

    def __init__(self, args, env, upstream, load_cpus):
        self.args = args
        self.env = env
        self.upstream = upstream
        self.load_cpus = load_cpus
        self.load_threads = len(machine.cpu_list(load_cpus)) if load_cpus else 1
        self.results = {}      # scenario key -> list of row dicts
        self.failures = []

    def rows_of(self, s):
        if s.rows:
            return s.rows
        return [("direct", "direct", s.variant)] + [(p, p, s.variant) for p in self.args.proxies]

    def run_scenario(self, s):
        rows = []
        self.results[s.key] = rows
        conns_list = self.args.conns or (s.smoke_conns if self.args.smoke else s.conns)
        if s.kind == "idle":
            conns_list = [self.args.idle_conns]
        for conns in conns_list:
            for label, kind, variant in self.rows_of(s):
                print(f"perf: ({s.key}) {label}, {conns} conns", flush=True)
                row = {"label": label, "kind": kind, "conns": conns}
                try:
                    row.update(self.measure_repeated(s, kind, variant, conns))
                except (procs.StartError, loadgen.LoadError, CheckFailed) as e:
                    row["error"] = str(e)[:300]
                    self.failures.append(f"({s.key}) {label}: {row['error']}")
                    print(f"perf:   FAILED: {row['error']}", flush=True)
                rows.append(row)

    def measure_repeated(self, s, kind, variant, conns):
        """The row with the median req/s of --repeat measurements, each with a
        fresh proxy; its notes give the spread."""
        n = 1 if s.kind == "idle" else self.args.repeat
        runs = [self.measure(s, kind, variant, conns) for _ in range(n)]
        if n == 1:
            return runs[0]
        runs.sort(key=lambda r: r["rps"])
        row = runs[n // 2]
        spread = (f"median of {n}: req/s {runs[0]['rps']:,.0f} to {runs[-1]['rps']:,.0f}, "
                  f"CPU µs/req {min(_cpu_us(r) for r in runs):.1f} "
                  f"to {max(_cpu_us(r) for r in runs):.1f}")
        row["notes"] = _join(row.get("notes"), spread)
        return row

    def measure(self, s, kind, variant, conns):
        service = redis = None
        try:
            if kind == "direct":
                port = self.env.upstream_h2_port if variant.h2 else self.env.upstream_port
                accounted = self.upstream
            else:
                if variant.needs_redis:
                    redis = start_redis(self.env)
                service, port = STARTERS[kind](self.env, variant)
                accounted = service
            problem = loadgen.curl_check(port, s.path, s.size, h2=variant.h2,
                                         headers=variant.headers())
            if problem:
                raise CheckFailed(problem)
            if variant.rate_limit:
                self.check_rate_limited(port, s.path, variant, redis)
            if s.kind == "idle":
                return self.measure_idle(s, accounted, port)
            row = self.measure_load(s, accounted, port, conns, variant.headers(), redis)
            if variant.access_log and service:
                log = os.path.join(self.env.workdir, "portico", "access.log")
                row["notes"] = _join(row.get("notes"), f"access log {_size(log)}")
            return row
        finally:
            if service:
                service.stop()
            if redis:
                redis.stop()
                self.env.redis_port = 0

    def check_rate_limited(self, port, path, variant, redis):
        """That the rate limit is really applied: the answer carries its
        RateLimit-Policy header, and a Redis limit has asked Redis."""
        head = loadgen.response_headers(port, path, variant.headers())
        if "ratelimit-policy" not in head:
            raise CheckFailed("no RateLimit-Policy header in the answer: the route's rate "
                              f"limit is not applied (headers: {', '.join(sorted(head))})")
        if redis and self.redis_calls() == 0:
                raise CheckFailed("the Redis rate limit answered without asking Redis")

    def redis_calls(self):
        try:
            return redis_script_calls(self.env.redis_port)
        except (OSError, ValueError) as e:
            raise loadgen.LoadError(f"cannot read redis-server's command stats: {e}")

    def load(self, s, port, conns, seconds, headers=()):
        if s.kind == "h2load":
            log = os.path.join(self.env.workdir, "h2load.log")
            return loadgen.h2load(port, s.path, conns, H2_STREAMS, seconds, self.load_threads,
                                  self.load_cpus, log)
        return loadgen.wrk(port, s.path, conns, seconds, self.load_threads, self.load_cpus,
                           list(s.headers) + list(headers))

    def measure_load(self, s, service, port, conns, headers=(), redis=None):
        """One measured load; `redis`, when given, is a redis-server the proxy
        uses, accounted apart: its CPU time and script calls go to the notes."""
        if self.args.warmup:
            self.load(s, port, conns, self.args.warmup, headers)
        pids = service.pids()
        cpu_before = procs.cpu_seconds(pids)
        if redis:
            redis_pids = redis.pids()
            redis_cpu_before = procs.cpu_seconds(redis_pids)
            redis_calls_before = self.redis_calls()
        r = self.load(s, port, conns, self.args.duration, headers)
        pids = sorted(set(pids) | set(service.pids()))
        row = {"rps": r.rps, "requests": r.requests, "p50_us": r.p50_us, "p99_us": r.p99_us,
               "p999_us": r.p999_us, "cpu_s": procs.cpu_seconds(pids) - cpu_before,
               "hwm_kib": procs.memory_kib(pids, "VmHWM")}
        notes = [f"{k.replace('_', ' ')}: {n}" for k, n in r.errors.items()]
        if redis and r.requests:
            redis_pids = sorted(set(redis_pids) | set(redis.pids()))
            redis_cpu = procs.cpu_seconds(redis_pids) - redis_cpu_before
            calls = self.redis_calls() - redis_calls_before
            row["redis_cpu_s"] = redis_cpu
            notes.append(f"Redis: {redis_cpu / r.requests * 1e6:.1f} CPU µs/req (not in the "
                         f"CPU column), {calls / r.requests:.3f} script calls/req, peak RSS "
                         f"{procs.memory_kib(redis_pids, 'VmHWM') / 1024:.1f} MiB")
        if r.requests and r.bytes / r.requests < s.size:
            notes.append("responses shorter than the body on average")
        if s.size >= BODY_1M and r.seconds:
            notes.append(f"{r.bytes / r.seconds / 2**20:,.0f} MiB/s")
        if r.requests == 0:
            raise loadgen.LoadError(f"no request completed ({r.errors or 'no errors counted'})")
        row["notes"] = "; ".join(notes)
        return row

    def measure_idle(self, s, service, port):
        pids = service.pids()
        before = procs.memory_kib(pids, "VmRSS")
        hold = IDLE_REPORT_TIMEOUT + 60
        with loadgen.IdleClient(port, s.path, self.args.idle_conns, s.size, self.load_cpus,
                                hold) as client:
            report = client.wait_held(IDLE_REPORT_TIMEOUT)
            time.sleep(1.0)  # let the server settle after the last answer
            pids = service.pids()
            after = procs.memory_kib(pids, "VmRSS")
            hwm = procs.memory_kib(pids, "VmHWM")
        if report["held"] == 0:
            raise loadgen.LoadError(f"no connection held: {report['errors']}")
        notes = [f"{n} failed: {e}" for e, n in report["errors"].items()]
        return {"held": report["held"], "rss_before_kib": before, "rss_after_kib": after,
                "hwm_kib": hwm, "notes": "; ".join(notes)}

    def nginx_from_a(self, conns):
        for r in self.results.get("a", []):
            if r["kind"] == "nginx" and r["conns"] == conns and "rps" in r:
                return r["rps"]
        return None


class CheckFailed(Exception):
    """The proxy did not answer the curl check correctly."""


def _cpu_us(row):
    return row["cpu_s"] / row["requests"] * 1e6 if row["requests"] else 0.0


def _join(a, b):
    return "; ".join(x for x in (a, b) if x)


def _size(path):
    try:
        return f"{os.path.getsize(path) / 2**20:,.1f} MiB"
    except OSError:
        return "missing"


# In RESULTS.md, everything from this line on is written by hand (the
# micro-benchmark baselines, the record of each optimisation step) and is
# carried over when a run rewrites the tables above it.
NOTES_MARKER = "<!-- Below: notes kept across runs; perf/run.sh rewrites only what is above. -->"


def _kept_notes(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    i = text.find(NOTES_MARKER)
    return text[i:] if i >= 0 else ""


def write_results(run, info, path):
    notes = _kept_notes(path)
    parts = [tables.header(info, run.args.smoke)]
    for s in SCENARIOS:
        if s.key not in run.results:
            continue
        rows = run.results[s.key]
        body = (tables.idle_table(rows) if s.kind == "idle"
                else tables.load_table(rows, run.nginx_from_a))
        parts.append(f"## ({s.key}) {s.title}\n\n{s.what}\n\n{body}\n")
    if notes:
        parts.append(notes.rstrip("\n") + "\n")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    # Read back: the count of tables actually on disk is what the exit status
    # (and the smoke run's promise of "a table was produced") rests on.
    with open(path) as f:
        return sum(1 for line in f if line.startswith("| proxy |"))


def main(argv):
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    nofile = machine.raise_fd_limit(4 * args.idle_conns + 1000)
    server_cpus, load_cpus = machine.cpu_layout(args.server_cpus, args.load_cpus)
    target = os.path.abspath(args.target_dir)
    env = RunEnv(workdir=tempfile.mkdtemp(prefix="portico-perf-"), threads=args.threads,
                 server_cpus=server_cpus,
                 portico_bin=os.path.abspath(args.portico_bin) if args.portico_bin
                 else os.path.join(target, args.build_profile, "portico"),
                 minimal_bin=os.path.join(target, args.build_profile, "examples",
                                          "minimal_pingora"),
                 nofile=nofile, nginx_http2_directive=nginx_supports_http2_directive(),
                 portico_server=tuple(args.portico_server))
    shown = [x for i, x in enumerate(argv)
             if x != "--target-dir" and (i == 0 or argv[i - 1] != "--target-dir")]
    info = machine.describe(args, shown, server_cpus, load_cpus)
    if any(v.needs_redis for s in SCENARIOS if s.key in args.scenarios
           for _, _, v in (s.rows or [])):
        info["facts"].append(("redis-server (the Redis rate-limit rows' store)",
                              machine.first_line(["redis-server", "--version"])))
    started = time.monotonic()
    try:
        for binary in (env.portico_bin, env.minimal_bin):
            if not os.access(binary, os.X_OK):
                print(f"perf: {binary} is missing; build it with cargo build "
                      f"--profile {args.build_profile} --bins --example minimal_pingora")
                return 1
        upstream = start_upstream(env)
        run = Run(args, env, upstream, load_cpus)
        for s in SCENARIOS:
            if s.key in args.scenarios:
                run.run_scenario(s)
        info["facts"].append(("load average at the end (this run's own load included)",
                              machine.loadavg()))
        info["facts"].append(("wall time", f"{time.monotonic() - started:.0f} s"))
        produced = write_results(run, info, args.out)
    except Interrupted as e:
        print(f"perf: {e}; stopping what was started")
        return 130
    except procs.StartError as e:
        print(f"perf: the upstream did not start: {e}")
        return 1
    finally:
        procs.stop_all()
        if args.keep_workdir:
            print(f"perf: configs and logs kept in {env.workdir}")
        else:
            shutil.rmtree(env.workdir, ignore_errors=True)
    print(f"perf: wrote {args.out} ({produced} table(s)) in {time.monotonic() - started:.0f} s")
    for f in run.failures:
        print(f"perf: FAILED {f}")
    wanted = sum(1 for s in SCENARIOS if s.key in args.scenarios)
    if produced != wanted:
        print(f"perf: FAILED: {produced} table(s) in {args.out}, {wanted} expected")
        return 1
    if run.failures:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
