"""Starting, accounting and stopping the processes of a comparison run.

Every server the harness starts goes through `Service`, which records its PID
in a module-level registry; `stop_all` ends whatever is still registered, by
PID, and is what the harness's signal handlers and `finally` call. Nothing is
ever killed by name.

CPU time and memory are read from /proc: a service's figures are the sums over
its main process and all its descendants (nginx's master and workers, for
example), so multi-process and multi-threaded servers are counted alike.
"""

import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

_registry = []


class StartError(Exception):
    """A service did not come up; the message says why (log tail included)."""


class Service:
    """One server process, pinned with taskset, logging to a file.

    `stop_signal` is the signal that makes this server exit promptly (nginx
    and HAProxy: SIGTERM; Pingora: SIGINT, its fast shutdown).
    """

    def __init__(self, name, argv, cpus, log_path, stop_signal=signal.SIGTERM):
        self.name = name
        self.argv = argv
        self.cpus = cpus
        self.log_path = log_path
        self.stop_signal = stop_signal
        self.popen = None

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def start(self, port, timeout=30.0):
        """Starts the process and waits until `port` accepts connections."""
        argv = list(self.argv)
        if self.cpus:
            argv = ["taskset", "-c", self.cpus] + argv
        with open(self.log_path, "ab") as log:
            # A session of its own keeps a terminal's Ctrl-C away from the
            # servers: the harness stops them itself, in order, by PID.
            self.popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _registry.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise StartError(f"{self.name} exited with {self.popen.returncode}: "
                                 f"{log_tail(self.log_path)}")
            if port_open(port):
                return
            time.sleep(0.05)
        raise StartError(f"{self.name} did not listen on port {port} within {timeout:.0f}s: "
                         f"{log_tail(self.log_path)}")

    def pids(self):
        """The main PID and every live descendant."""
        if self.popen is None or self.popen.poll() is not None:
            return []
        return [self.pid] + descendants(self.pid)

    def stop(self, grace=5.0):
        """Signals the main process, waits, then SIGKILLs what is left."""
        if self.popen is None:
            return
        family = self.pids()
        if self.popen.poll() is None:
            _signal(self.pid, self.stop_signal)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=grace)
        # Workers that outlived their master are ended by the PIDs seen before.
        for pid in family[1:]:
            if _alive(pid):
                _signal(pid, signal.SIGKILL)
        if self in _registry:
            _registry.remove(self)


def stop_all():
    """Stops every registered service, newest first."""
    for service in reversed(list(_registry)):
        try:
            service.stop(grace=3.0)
        except Exception as e:  # keep stopping the others
            print(f"perf: could not stop {service.name} (pid {service.pid}): {e}")


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def port_open(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def free_port():
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path, lines=8):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name, or None if gone.

    Index 0 is field 3 (state) of proc(5), so ppid is [1], utime [11], stime [12].
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pids):
    """utime + stime summed over `pids`, in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def memory_kib(pids, key):
    """A /proc/PID/status memory line (VmRSS, VmHWM) summed over `pids`, in KiB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total
