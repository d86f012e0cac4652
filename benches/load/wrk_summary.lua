-- wrk script for benches/load/compare.sh: no per-request Lua (that would slow wrk down), only a
-- summary at the end as one JSON line, with the exact counts the shell cannot read from wrk's
-- rounded text: requests, bytes, every error kind, latency percentiles in microseconds and the
-- slowest request. wrk corrects its percentiles for coordinated omission before this runs: a
-- request that took L adds samples at L minus each multiple of a connection's mean time a request
-- (64 connections at 100,000 requests/s: 0.64 ms), so one request stuck for a second counts as
-- some 1,500 slow ones, and a few such lift the p99 of a whole round; the slowest request (not
-- corrected) tells such a round from one slow throughout.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
