"""Configurations of the upstream and of every proxy under test.

Each proxy gets a fresh directory, config and port per measurement, and is
configured to be comparable with the others:

- the same worker thread count (nginx `worker_processes`, HAProxy `nbthread`,
  Portico `server.threads`, the minimal Pingora proxy's THREADS argument);
- keep-alive to the upstream, with at most 128 idle upstream connections kept
  (nginx `upstream { keepalive 128 }` with HTTP/1.1 and an empty `Connection`
  header; HAProxy `http-reuse always` and `pool-max-conn 128`; Pingora's pool,
  whose default size, and Portico's `upstream_keepalive_pool_size`, is 128);
- no per-request limit on client or upstream keep-alive (nginx's default of
  1000 requests per connection is raised to match Pingora and HAProxy);
- no access log, except Portico's in the policy scenario;
- streaming of large bodies: nginx buffers in memory as usual but never spills
  a response to a temporary file (`proxy_max_temp_file_size 0`), as the others
  never do.

The upstream is a separate nginx instance with one worker that serves fixed
bodies: `/1m` gives 1 MiB, every other path 1 KiB. It also listens for
cleartext HTTP/2 on a second port, for the direct row of the HTTP/2 scenario.

The Redis rate-limit rows of (g) get a fresh redis-server of their own per
measurement (Debian's package, on a free loopback port, nothing persisted,
pinned with the servers), started before Portico and stopped after it.
"""

import base64
import hashlib
import hmac
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass

from procs import Service, free_port

BODY_1K = 1024
BODY_1M = 1024 * 1024
ROUTE_COUNT = 10_000
# The route the route-table scenario requests: near the end of the table, so a
# proxy that scans its routes in order pays for nearly all of them.
ROUTE_HIT = 9_990


def route_prefix(i):
    return f"/r{i:05d}"


ROUTE_PATH = route_prefix(ROUTE_HIT) + "/1k"


@dataclass(frozen=True)
class Variant:
    """What a scenario asks of a proxy beyond plain HTTP/1.1 proxying."""
    h2: bool = False            # cleartext HTTP/2 (prior knowledge) listener
    routes: int = 0             # size of the generated route table, 0 = one catch-all
    access_log: bool = False    # Portico's access log to a file
    auth: str = ""              # Portico's route policy: "", "api_key" or "jwt"
    protection: bool = False    # Portico's IP filter, limits, threat checks and CORS
    rate_limit: str = ""        # Portico's rate limit: "", "local", "redis", "redis_batched"

    @property
    def needs_redis(self):
        """Whether the row needs the harness's own redis-server."""
        return self.rate_limit in ("redis", "redis_batched")

    def headers(self):
        """What the client sends for this variant's credentials."""
        if self.auth == "api_key":
            return (f"x-api-key: {BENCH_API_KEY}",)
        extra = ("origin: https://app.example.com",) if self.protection else ()
        if self.auth == "jwt":
            return (f"authorization: Bearer {bench_jwt()}",) + extra
        return extra


# Credentials of the policy rows of (g). The key's hash goes in the config,
# as `portico hash-key` would write it; the JWT is HS256 with the provider's
# secret, issued now and valid for a day.
BENCH_API_KEY = "perf-bench-api-key-0123456789abcdef"
BENCH_JWT_SECRET = "perf-bench-hmac-secret-0123456789abcdef0123"


def _b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bench_jwt():
    now = int(time.time())
    head = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64url(json.dumps({"sub": "bench", "iss": "perf", "iat": now,
                               "exp": now + 86400}).encode())
    mac = hmac.new(BENCH_JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256)
    return f"{head}.{body}.{_b64url(mac.digest())}"


def _portico_auth(variant):
    """The identity sections and the route policy line for a variant."""
    if not variant.auth:
        return "", ""
    key_hash = hashlib.sha256(BENCH_API_KEY.encode()).hexdigest()
    identity = f"""consumers:
  - id: bench
    tier: gold
    credentials:
      api_keys: ["sha256:{key_hash}"]
jwt_providers:
  perf:
    issuer: perf
    keys:
      - {{kid: k1, alg: HS256, secret: "{BENCH_JWT_SECRET}"}}
"""
    method = "api_key" if variant.auth == "api_key" else '"jwt:perf"'
    return identity, f"    auth: {{methods: [{method}]}}\n"


# The rate limits of (g), one per store. The limit is far above what any run
# can send (a few million requests an hour at most), so nothing is ever
# refused: the rows measure the cost of deciding. Every request comes from
# 127.0.0.1, so `key: client` makes one hot key (the case local_allowance is
# for). `on_store_failure: closed` turns a Redis failure or timeout into a 503,
# which the notes count, where the default (`open`) would admit without asking
# Redis and quietly measure less work than the row claims.
RATE_LIMITS = {   # Variant.rate_limit -> (limit name, its spec)
    "local": ("bench", "{limit: 1000000000, window: 1h, key: client}"),
    "redis": ("bench_redis", "{limit: 1000000000, window: 1h, key: client, store: redis, "
                             "on_store_failure: closed}"),
    "redis_batched": ("bench_batched", "{limit: 1000000000, window: 1h, key: client, "
                                       "store: redis, on_store_failure: closed, "
                                       "local_allowance: 100}"),
}
REDIS_PREFIX = "perf"


def _portico_rate_limit(env, variant):
    """The `rate_limiting` section and the route's policy line for a variant."""
    if not variant.rate_limit:
        return "", ""
    if variant.rate_limit not in RATE_LIMITS:
        raise ValueError(f"unknown rate_limit {variant.rate_limit!r}")
    section = "rate_limiting:\n"
    if variant.needs_redis:
        if not env.redis_port:
            raise ValueError("a Redis rate limit needs the harness's redis-server started first")
        section += (f'  redis: {{url: "redis://127.0.0.1:{env.redis_port}/0", timeout: 100ms, '
                    f"prefix: {REDIS_PREFIX}}}\n")
    name, spec = RATE_LIMITS[variant.rate_limit]
    section += f"  limits:\n    {name}: {spec}\n"
    return section, f"    policies: {{rate_limits: [{name}]}}\n"


# Every protection step on, each doing its work on every request: the client
# (127.0.0.1) is looked up in an allow list, the head measured, the path,
# query and two headers run through the SQL-injection and XSS checks, and the
# Origin matched for the CORS response headers.
PROTECTION = """policies:
  ip_filter: {allow: [127.0.0.0/8, 10.0.0.0/8, "2001:db8::/32"], deny: [192.0.2.0/24]}
  limits: {max_uri_bytes: 4KiB, max_headers: 50, max_body_bytes: 1MiB}
  threat_protection: {headers: [user-agent, referer]}
  cors: {origins: ["https://*.example.com"], credentials: true, max_age: 600}
"""


@dataclass
class RunEnv:
    """Run-wide settings the config writers need."""
    workdir: str
    threads: int
    server_cpus: str
    portico_bin: str
    minimal_bin: str
    nofile: int
    upstream_port: int = 0
    upstream_h2_port: int = 0
    redis_port: int = 0                   # the running redis-server's, while a row needs one
    nginx_http2_directive: bool = False   # nginx >= 1.25.1 spells it `http2 on`
    portico_server: tuple = ()            # extra `key: value` lines under Portico's `server:`


def nginx_supports_http2_directive():
    out = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
    m = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out)
    return bool(m) and tuple(map(int, m.groups())) >= (1, 25, 1)


def _dir(env, name):
    path = os.path.join(env.workdir, name)
    os.makedirs(os.path.join(path, "tmp"), exist_ok=True)
    return path


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def _nginx_common(d, workers, nofile):
    temp = "\n".join(f"    {k}_temp_path {d}/tmp/{k};"
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # Workers run as the harness's user, so they can read and write its temp dir
    # (nginx would otherwise switch to an unprivileged user when run as root).
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes {workers};
worker_rlimit_nofile {nofile};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
daemon off;
events {{ worker_connections {nofile - 200}; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type application/octet-stream;
{temp}
"""


def _nginx_service(env, name, d, conf, cpus):
    argv = ["nginx", "-p", d, "-c", conf, "-e", f"{d}/error.log"]
    return Service(name, argv, cpus, f"{d}/stdout.log", signal.SIGTERM)


def start_upstream(env):
    """Starts the upstream nginx (1 worker) and fills in its ports."""
    d = _dir(env, "upstream")
    html = os.path.join(d, "html")
    os.makedirs(html, exist_ok=True)
    pattern = bytes(range(33, 127))
    for name, size in (("1k.bin", BODY_1K), ("1m.bin", BODY_1M)):
        with open(os.path.join(html, name), "wb") as f:
            f.write((pattern * (size // len(pattern) + 1))[:size])
    env.upstream_port, env.upstream_h2_port = free_port(), free_port()
    conf = _nginx_common(d, 1, env.nofile) + f"""    sendfile on;
    tcp_nopush on;
    open_file_cache max=16 inactive=1h;
    open_file_cache_valid 1h;
    server {{
        listen 127.0.0.1:{env.upstream_port};
        listen 127.0.0.1:{env.upstream_h2_port}{"" if env.nginx_http2_directive else " http2"};
        {"http2 on;" if env.nginx_http2_directive else ""}
        root {html};
        location = /1m {{ try_files /1m.bin =404; }}
        location / {{ try_files /1k.bin =404; }}
    }}
}}
"""
    service = _nginx_service(env, "upstream nginx", d, _write(f"{d}/nginx.conf", conf),
                             env.server_cpus)
    service.start(env.upstream_port)
    return service


def start_nginx(env, variant):
    d = _dir(env, "nginx")
    port = free_port()
    if variant.h2:
        listen = (f"listen 127.0.0.1:{port};\n        http2 on;" if env.nginx_http2_directive
                  else f"listen 127.0.0.1:{port} http2;")
    else:
        listen = f"listen 127.0.0.1:{port};"
    if variant.routes:
        locations = "".join(f"        location {route_prefix(i)}/ {{ proxy_pass http://up; }}\n"
                            for i in range(variant.routes))
        locations += "        location / { return 404; }\n"
    else:
        locations = "        location / { proxy_pass http://up; }\n"
    conf = _nginx_common(d, env.threads, env.nofile) + f"""    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_max_temp_file_size 0;
    upstream up {{
        server 127.0.0.1:{env.upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        {listen}
{locations}    }}
}}
"""
    service = _nginx_service(env, "nginx", d, _write(f"{d}/nginx.conf", conf), env.server_cpus)
    service.start(port)
    return service, port


def start_haproxy(env, variant):
    d = _dir(env, "haproxy")
    port = free_port()
    maxconn = env.nofile - 1000
    if variant.routes:
        _write(f"{d}/routes.map",
               "".join(f"{route_prefix(i)}/ up\n" for i in range(variant.routes)))
        routing = (f"    use_backend %[path,map_beg({d}/routes.map,nomatch)]\n"
                   "    default_backend nomatch\n")
    else:
        routing = "    default_backend up\n"
    # HAProxy reserves two descriptors per connection (client and server side)
    # and by default refuses to start when the limit is below that; but at most
    # 128 server connections stay idle here, so the real need is about one per
    # client connection, which the limit covers. `no strict-limits` makes the
    # shortfall a warning in the log instead of a refusal.
    conf = f"""global
    nbthread {env.threads}
    maxconn {maxconn}
    no strict-limits
    pidfile {d}/haproxy.pid

defaults
    mode http
    maxconn {maxconn}
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-keep-alive 75s
    http-reuse always

frontend fe
    bind 127.0.0.1:{port}{" proto h2" if variant.h2 else ""}
{routing}
backend up
    server s1 127.0.0.1:{env.upstream_port} pool-max-conn 128

backend nomatch
    http-request return status 404
"""
    argv = ["haproxy", "-db", "-f", _write(f"{d}/haproxy.cfg", conf)]
    service = Service("haproxy", argv, env.server_cpus, f"{d}/stdout.log", signal.SIGTERM)
    service.start(port)
    return service, port


def start_portico(env, variant):
    d = _dir(env, "portico")
    port = free_port()
    if variant.access_log:
        access = f"{{target: file, path: {d}/access.log}}"
    else:
        access = "{target: off}"
    if variant.routes:
        routes = "".join(f"  - id: r{i:05d}\n    match: {{path: {{prefix: {route_prefix(i)}}}}}\n"
                         "    upstream: up\n" for i in range(variant.routes))
    else:
        routes = "  - id: all\n    match: {path: {prefix: /}}\n    upstream: up\n"
    identity, policy = _portico_auth(variant)
    routes += policy
    if variant.protection:
        identity += PROTECTION
    limits, limit_policy = _portico_rate_limit(env, variant)
    identity += limits
    routes += limit_policy
    server_extra = "".join(f"  {line}\n" for line in env.portico_server)
    conf = f"""version: 1
server:
  threads: {env.threads}
{server_extra}  pid_file: {d}/portico.pid
  upgrade_sock: {d}/portico_upgrade.sock
  grace_period: 1s
  graceful_shutdown_timeout: 1s
listeners:
  - address: 127.0.0.1:{port}
access_log: {access}
logging: {{level: warn, format: text}}
{identity}upstreams:
  up:
    backends:
      - address: 127.0.0.1:{env.upstream_port}
routes:
{routes}"""
    argv = [env.portico_bin, "run", "-c", _write(f"{d}/portico.yaml", conf)]
    service = Service("portico", argv, env.server_cpus, f"{d}/stdout.log", signal.SIGINT)
    service.start(port, timeout=60.0)
    return service, port


def start_redis(env):
    """A fresh redis-server on a free loopback port, for the Redis rate-limit
    rows: nothing persisted, pinned with the servers; fills in env.redis_port."""
    d = _dir(env, "redis")
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--dir", d,
            "--logfile", f"{d}/redis.log"]
    service = Service("redis-server", argv, env.server_cpus, f"{d}/stdout.log",
                      signal.SIGTERM)
    service.start(port)
    env.redis_port = port
    return service


def redis_script_calls(port):
    """Lua script calls (EVAL and EVALSHA) the redis-server on `port` has
    served: one per round trip of Portico's rate limiter."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"INFO commandstats\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("redis-server closed the connection")
            data += chunk
        head, _, body = data.partition(b"\r\n")
        if not head.startswith(b"$"):
            raise OSError(f"unexpected answer from redis-server: {head[:80]!r}")
        want = int(head[1:]) + 2
        while len(body) < want:
            chunk = s.recv(65536)
            if not chunk:
                raise OSError("redis-server closed the connection")
            body += chunk
    calls = 0
    for line in body.decode(errors="replace").splitlines():
        if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")):
            m = re.search(r"calls=(\d+)", line)
            calls += int(m.group(1)) if m else 0
    return calls


def start_minimal(env, variant):
    d = _dir(env, "minimal_pingora")
    port = free_port()
    argv = [env.minimal_bin, f"127.0.0.1:{port}", f"127.0.0.1:{env.upstream_port}",
            str(env.threads)]
    service = Service("minimal_pingora", argv, env.server_cpus, f"{d}/stdout.log",
                      signal.SIGINT)
    service.start(port)
    return service, port


STARTERS = {
    "nginx": start_nginx,
    "haproxy": start_haproxy,
    "portico": start_portico,
    "minimal_pingora": start_minimal,
}
