-- wrk script of `missive-bench wrk`: authenticated `POST /messages` from
-- sender/receiver pairs, counting every answer that is not a 201.
--
-- Usage: wrk -t2 -c64 -d20s --latency -s post_messages.lua http://127.0.0.1:8080 -- PAIRS_FILE THREADS
--   PAIRS_FILE: one "<bearer token> <chat id>" per line (the sender's token and the pair's chat);
--   THREADS:    the same number as -t (to rotate the pairs over all threads' requests).
-- Request k of thread t (of n) goes from pair (k * n + t) mod #pairs, so the
-- pairs rotate over the connections; the content varies per request.
-- done() prints one line `missive-wrk requests=… non201=… p50_us=… p99_us=… p999_us=… max_us=… first=…`
-- that `missive-bench wrk` parses (first: status and body start of the first non-201).

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  pairs_list = {}
  local file = assert(io.open(args[1], "r"), "cannot open the pairs file")
  for line in file:lines() do
    local token, chat = line:match("^(%S+)%s+(%S+)$")
    if token then
      table.insert(pairs_list, { auth = "Bearer " .. token, chat = chat })
    end
  end
  file:close()
  assert(#pairs_list > 0, "no pairs in the pairs file")
  nthreads = tonumber(args[2]) or 1
  sent = 0
  non201 = 0
  first_bad = ""
end

function request()
  local k = sent * nthreads + id
  sent = sent + 1
  local pair = pairs_list[(k % #pairs_list) + 1]
  local body = '{"chatId":"' .. pair.chat .. '","content":"wrk ' .. id .. "-" .. sent .. '"}'
  return wrk.format("POST", "/messages", {
    ["Authorization"] = pair.auth,
    ["Content-Type"] = "application/json",
  }, body)
end

function response(status, headers, body)
  if status ~= 201 then
    non201 = non201 + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body or "", 1, 200)
    end
  end
end

function done(summary, latency, requests)
  local non = 0
  local first = ""
  for _, thread in ipairs(threads) do
    non = non + (thread:get("non201") or 0)
    local bad = thread:get("first_bad") or ""
    if first == "" then
      first = bad
    end
  end
  first = string.gsub(first, "%c", " ")
  io.write(string.format(
    "missive-wrk requests=%d non201=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d first=%s\n",
    summary.requests, non,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    first))
end
