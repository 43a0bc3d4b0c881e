"""Markdown for perf/RESULTS.md: the run's header and one table per scenario."""

import math

LOAD_COLUMNS = ["proxy", "conns", "req/s", "vs direct", "vs nginx", "p50 ms", "p99 ms",
                "p99.9 ms", "CPU µs/req", "peak RSS MiB", "notes"]
IDLE_COLUMNS = ["proxy", "held", "RSS before MiB", "RSS after MiB", "KiB per conn",
                "peak RSS MiB", "notes"]

COLUMN_NOTES = """\
How to read the tables:

- **req/s**: completed requests divided by the measured time (wrk or h2load),
  after a warm-up that is not counted.
- **vs direct**, **vs nginx**: req/s divided by the direct row's (the load
  generator straight at the upstream: the ceiling) and by nginx's, at the same
  connection count in the same run.
- **p50 / p99 / p99.9**: request latency percentiles from wrk's histogram (a
  `done()` script) or from h2load's per-request log.
- **CPU µs/req**: utime + stime of the proxy's processes (from /proc/PID/stat,
  summed over master and workers) during the measured load, divided by the
  requests. The direct row shows the upstream nginx's own figure. The Redis
  rate-limit rows leave their redis-server out of it; their notes give
  Redis's own CPU µs/req and Lua script calls per request.
- **peak RSS**: VmHWM summed over the proxy's processes after the load (shared
  pages of nginx's master and workers are counted once per process). Every
  proxy is started fresh for each row, so this is the peak of that row alone;
  the direct row shows the upstream nginx's peak since the run began.
- **notes**: errors counted by the load generator (non-2xx answers, socket
  errors, timeouts); a row with errors is not a clean measurement.
"""


def _num(x, fmt):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return format(x, fmt)


def _ratio(x, base):
    if not x or not base:
        return "—"
    return f"{x / base:.2f}"


def _mib(kib):
    return _num(kib / 1024 if kib else None, ".1f")


def _table(columns, rows):
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load_table(rows, nginx_fallback):
    """`rows` are measurement dicts of one scenario, in run order.

    `nginx_fallback(conns)` gives an nginx req/s from elsewhere in the run (or
    None) for a scenario that has no nginx row of its own.
    """
    direct = {r["conns"]: r["rps"] for r in rows if r["kind"] == "direct" and "rps" in r}
    nginx = {r["conns"]: r["rps"] for r in rows if r["kind"] == "nginx" and "rps" in r}
    out, borrowed = [], False
    for r in rows:
        if "error" in r:
            out.append([r["label"], r["conns"]] + ["—"] * 8 + [f"**FAILED**: {r['error']}"])
            continue
        base_nginx = nginx.get(r["conns"])
        if base_nginx is None and r["kind"] != "nginx":
            base_nginx = nginx_fallback(r["conns"])
            borrowed = borrowed or base_nginx is not None
        cpu = r["cpu_s"] / r["requests"] * 1e6 if r["requests"] else None
        out.append([
            r["label"], r["conns"], _num(r["rps"], ",.0f"),
            _ratio(r["rps"], direct.get(r["conns"])), _ratio(r["rps"], base_nginx),
            _num(r["p50_us"] / 1000, ".2f"), _num(r["p99_us"] / 1000, ".2f"),
            _num(r["p999_us"] / 1000, ".2f"), _num(cpu, ".1f"), _mib(r["hwm_kib"]),
            r.get("notes", ""),
        ])
    text = _table(LOAD_COLUMNS, out)
    if borrowed:
        text += ("\n\n'vs nginx' here uses nginx's row of scenario (a) at the same "
                 "connection count in this run (the load is the same).")
    return text


def idle_table(rows):
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["label"]] + ["—"] * 5 + [f"**FAILED**: {r['error']}"])
            continue
        per_conn = (r["rss_after_kib"] - r["rss_before_kib"]) / r["held"] if r["held"] else None
        out.append([r["label"], r["held"], _mib(r["rss_before_kib"]),
                    _mib(r["rss_after_kib"]), _num(per_conn, ".1f"), _mib(r["hwm_kib"]),
                    r.get("notes", "")])
    return _table(IDLE_COLUMNS, out)


def header(info, smoke):
    lines = ["# Portico against nginx and HAProxy: load test results", ""]
    if smoke:
        lines += ["> **SMOKE RUN: these numbers are not results.** A smoke run only checks",
                  "> that every proxy answers and that the tables are produced; its loads",
                  "> are a couple of seconds at low concurrency. Run `perf/run.sh` without",
                  "> `--smoke` on an idle machine for figures worth reading.", ""]
    if info.get("busy"):
        lines += [f"> **Warning:** the load average was {info['busy']} when the run "
                  "started: other work shared the CPUs, so these numbers are noise.", ""]
    lines += [f"- {k}: {v}" for k, v in info["facts"]]
    lines += ["", COLUMN_NOTES]
    return "\n".join(lines)
