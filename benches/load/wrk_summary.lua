-- wrk script for benches/load/compare.sh: no per-request Lua (that would slow wrk down), only a
-- summary at the end as one JSON line, with the exact counts the shell cannot read from wrk's
-- rounded text: requests, bytes, every error kind, and latency percentiles in microseconds.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"bytes":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
