-- wrk: ends a run with one machine-readable line of the latency distribution (microseconds)
-- and the error counts. Scripts that want it dofile() this (from the repository's root):
--   HBLAT requests=N p50=.. p90=.. p99=.. p999=.. max=.. non2xx=N errors=N
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "HBLAT requests=%d p50=%d p90=%d p99=%d p999=%d max=%d non2xx=%d errors=%d\n",
    summary.requests, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
