-- Prints one machine-readable line at the end of a wrk run, for perf/loadgen.py.
-- wrk's own --latency report stops at p99; the p99.9 figure needs this script.
-- Latencies are in microseconds.

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "PERF_RESULT requests=%d duration_us=%d bytes=%d connect_errors=%d read_errors=%d "
      .. "write_errors=%d status_errors=%d timeouts=%d p50_us=%d p99_us=%d p999_us=%d\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9)))
end
