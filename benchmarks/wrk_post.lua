-- wrk script for scripts/bench: POST the JSON body in the file given after
-- `--` (with the Content-Type and Accept given after it, if any: binary
-- bodies), and print one JSON line of results (throughput, errors, latency
-- percentiles in microseconds) for the driver to parse.
--   wrk -t2 -c32 -d5s -s wrk_post.lua URL -- BODY_FILE [CONTENT_TYPE [ACCEPT]]

function init(args)
    local f = assert(io.open(args[1], "rb"))
    wrk.body = f:read("*a")
    f:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = args[2] or "application/json"
    if args[3] and args[3] ~= "" then
        wrk.headers["Accept"] = args[3]
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90), latency:percentile(99),
        latency.max, latency.mean))
end
