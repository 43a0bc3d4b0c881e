"""Opens many keep-alive connections, sends one request on each, and holds them.

Used by the idle-connection memory scenario of perf/compare.py:

    python3 idle_conns.py PORT PATH COUNT EXPECTED_BYTES [--hold SECONDS]

Every connection gets one HTTP/1.1 request and reads the whole answer, so the
server has done the work of a real connection and is left holding it idle.
When all are done, one JSON line goes to stdout:
{"held": N, "failed": N, "errors": {"reason": count}}. The connections are then
held until stdin is closed or --hold seconds pass, whichever comes first, so the
client always ends by itself. Only 127.0.0.1 is ever contacted.
"""

import argparse
import asyncio
import json
import resource
import sys

HOST = "127.0.0.1"
OPENING_AT_ONCE = 200
STEP_TIMEOUT = 10.0


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, need)
    if hard != resource.RLIM_INFINITY and want > hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def open_one(port, path, expected, gate, held):
    """One connection and one request; the writer is kept open in `held`."""
    async with gate:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(HOST, port), STEP_TIMEOUT)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), STEP_TIMEOUT)
            lines = head.decode("latin-1").split("\r\n")
            status = lines[0].split(" ")[1]
            headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
            headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
            if "content-length" not in headers:
                raise ValueError("no content-length")
            body = await asyncio.wait_for(
                reader.readexactly(int(headers["content-length"])), STEP_TIMEOUT)
            if status != "200" or len(body) != expected:
                raise ValueError(f"status {status}, {len(body)} bytes")
        except BaseException:
            writer.close()
            raise
        held.append(writer)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("path")
    p.add_argument("count", type=int)
    p.add_argument("expected", type=int)
    p.add_argument("--hold", type=float, default=60.0)
    a = p.parse_args()
    raise_fd_limit(a.count + 100)
    gate = asyncio.Semaphore(OPENING_AT_ONCE)
    held = []
    results = await asyncio.gather(
        *(open_one(a.port, a.path, a.expected, gate, held) for _ in range(a.count)),
        return_exceptions=True)
    errors = {}
    for r in results:
        if isinstance(r, BaseException):
            reason = f"{type(r).__name__}: {r}"[:80]
            errors[reason] = errors.get(reason, 0) + 1
    print(json.dumps({"held": len(held), "failed": sum(errors.values()), "errors": errors}),
          flush=True)
    stdin = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    try:
        await asyncio.wait_for(stdin.read(), a.hold)
    except asyncio.TimeoutError:
        pass
    for w in held:
        w.close()


if __name__ == "__main__":
    asyncio.run(main())
