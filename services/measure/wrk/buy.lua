-- wrk script for `make bench`: every request is a new user buying the product in the URL.
--
--   BENCH_RUN=<tag> wrk -t2 -c64 -d8s --latency -s buy.lua http://127.0.0.1:18000/api/seckill/990100
--
-- Each request: POST {"user_id": "<tag>-<thread>-<n>"} with its own X-Forwarded-For
-- (10.x.y.z), because the gateway counts its limits per user and per client IP. wrk cannot
-- bind a source address per client, so the bench starts the tiers with the load-test switch
-- (SECKILL_LOADTEST_FORWARDED=1: X-Forwarded-For believed from loopback). Each thread counts the answers by status and
-- keeps the order ids of the 200 answers (the bench checks every one of them is in
-- PostgreSQL: that is how "lost" is measured). done() gathers the threads and prints
-- ONE line, "BENCH_JSON {...}", that seckill.measure.bench parses.
--
-- The per-request Lua is kept small (one string concatenation for the body, one
-- for the address): the load generator must not be the bottleneck. The bench
-- checks that by pointing this same script at nginx's `return 200`.

local threads = {}

function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   run = os.getenv("BENCH_RUN") or "w"
   prefix = '{"user_id": "' .. run .. "-" .. tid .. "-"
   n = 0
   statuses = {}
   order_ids = {}
   headers = {["Content-Type"] = "application/json"}
   octet2 = (tid * 64) % 256
end

function request()
   n = n + 1
   headers["X-Forwarded-For"] = "10." .. (octet2 + math.floor(n / 65536) % 64) .. "."
      .. (math.floor(n / 256) % 256) .. "." .. (n % 256)
   return wrk.format("POST", nil, headers, prefix .. n .. '"}')
end

function response(status, hdrs, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status == 200 then
      local id = string.match(body, '"order_id"%s*:%s*"([^"]+)"')
      if id then
         order_ids[#order_ids + 1] = id
      end
   end
end

local function quote(s)
   return '"' .. string.gsub(tostring(s), '[%c"\\]', "") .. '"'
end

function done(summary, latency, requests)
   local counts, ids = {}, {}
   for _, thread in ipairs(threads) do
      for status, count in pairs(thread:get("statuses") or {}) do
         counts[status] = (counts[status] or 0) + count
      end
      for _, id in ipairs(thread:get("order_ids") or {}) do
         ids[#ids + 1] = quote(id)
      end
   end
   local parts = {}
   for status, count in pairs(counts) do
      parts[#parts + 1] = quote(status) .. ": " .. count
   end
   local e = summary.errors
   io.write("BENCH_JSON {",
      '"requests": ', summary.requests,
      ', "duration_us": ', summary.duration,
      ', "p50_us": ', latency:percentile(50),
      ', "p99_us": ', latency:percentile(99),
      ', "errors": {"connect": ', e.connect, ', "read": ', e.read, ', "write": ', e.write,
      ', "status": ', e.status, ', "timeout": ', e.timeout, "}",
      ', "statuses": {', table.concat(parts, ", "), "}",
      ', "order_ids": [', table.concat(ids, ", "), "]",
      "}\n")
end
