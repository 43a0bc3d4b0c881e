"""What the run knows about the machine: CPU layout, file limits, and the
description (hardware, kernel, tool versions) written at the top of RESULTS.md.
"""

import datetime
import os
import platform
import re
import resource
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
BUSY_LOAD = 1.0


def cpu_list(text):
    """Expands a taskset-style list such as "0,2-3"."""
    cpus = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus


def cpu_layout(server_cpus, load_cpus):
    """(server CPUs, load CPUs) as taskset lists; empty strings mean no pinning.

    Unless given, the first half of the usable CPUs run the proxy and the
    upstream and the second half the load generator: on 2 CPUs, 0 and 1.
    """
    if server_cpus and load_cpus:
        return server_cpus, load_cpus
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "", ""
    half = len(cpus) // 2
    return (server_cpus or ",".join(map(str, cpus[:half])),
            load_cpus or ",".join(map(str, cpus[half:])))


def raise_fd_limit(want):
    """Raises this process's open-file limit (inherited by everything it
    starts) towards `want`; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def loadavg():
    return " / ".join(f"{x:.2f}" for x in os.getloadavg()) + " (1 / 5 / 15 min)"


def first_line(argv):
    """The first line a command prints (stdout, else stderr), for versions."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "no output"


def _cpu_model():
    with open("/proc/cpuinfo") as f:
        m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
    return m.group(1) if m else platform.processor() or "unknown"


def _memory():
    with open("/proc/meminfo") as f:
        kib = int(re.search(r"^MemTotal:\s*(\d+)", f.read(), re.M).group(1))
    return f"{kib / 2**20:.1f} GiB"


def _pingora_version():
    try:
        with open(os.path.join(ROOT, "Cargo.lock")) as f:
            m = re.search(r'name = "pingora"\nversion = "([^"]+)"', f.read())
        return m.group(1) if m else "unknown"
    except OSError:
        return "unknown"


def _portico_commit():
    head = first_line(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    return head + (" with uncommitted changes under src/" if dirty else "")


def _sysctl(name):
    try:
        with open(f"/proc/sys/{name}") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def describe(args, argv, server_cpus, load_cpus):
    load1 = os.getloadavg()[0]
    pinning = (f"proxy and upstream on CPU {server_cpus}, load generator on CPU {load_cpus} "
               "(taskset)" if server_cpus else "no pinning (fewer than 2 CPUs)")
    facts = [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("command", " ".join(["perf/run.sh"] + argv)),
        ("machine", f"{os.cpu_count()} CPUs (nproc), {_cpu_model()}, {_memory()} memory, "
                    f"Linux {platform.release()}"),
        ("nginx", first_line(["nginx", "-v"])),
        ("haproxy", first_line(["haproxy", "-v"])),
        ("wrk", first_line(["wrk", "-v"])),
        ("h2load", first_line(["h2load", "--version"])),
        ("rustc", first_line(["rustc", "--version"])),
        ("Pingora", _pingora_version()),
        ("Portico", _portico_commit()),
        ("worker threads per proxy", str(args.threads)),
        ("upstream", "nginx, 1 worker, fixed 1 KiB and 1 MiB files"),
        ("pinning", pinning),
        ("per measurement", f"{args.warmup} s warm-up, then {args.duration} s measured"),
        ("net.ipv4.tcp_tw_reuse", _sysctl("net/ipv4/tcp_tw_reuse")),
        ("open-file limit", str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])),
        ("load average at the start", loadavg()),
    ]
    return {"facts": facts, "busy": f"{load1:.2f}" if load1 > BUSY_LOAD else None}
