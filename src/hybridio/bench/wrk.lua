-- wrk's summary as one JSON line after its own output, for `hybridio bench server` (_server.py
-- runs `wrk -s wrk.lua`). Times in microseconds; "non2xx" counts every status above 399.
function done(summary, latency, requests)
  io.write(string.format(
    '{"us": %d, "requests": %d, "non2xx": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.duration, summary.requests, summary.errors.status,
    latency:percentile(50), latency:percentile(99)))
end
