-- wrk script: GET /devices/<id> over ids created before (prefix-T-N for N in 1..count, T in 1..2),
-- 4,096 random ids per thread formatted once and cycled (as tools/bench/noop.lua does for the
-- baseline: the client's work per request is the same in both). An optional per-request delay
-- (mean ms, REGISTRYD_DELAY_MS) throttles each connection for the "half of the maximum load" run.
local count = tonumber(os.getenv("REGISTRYD_IDS") or "1000")
local prefix = os.getenv("REGISTRYD_PREFIX") or "seed"
local delay_ms = tonumber(os.getenv("REGISTRYD_DELAY_MS") or "0")
local headers = {["Authorization"] = os.getenv("REGISTRYD_SAS")}
local requests = {}
local i = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

init = function(args)
  math.randomseed(seed or 1)
  for k = 1, 4096 do
    -- From 2: wrk calls each thread's request() once before connecting and never sends that
    -- request, so thread 1's first id is never created (seen as a few 404s per 100,000 GETs).
    local id = prefix .. "-" .. math.random(1, 2) .. "-" .. math.random(2, count)
    requests[k] = wrk.format("GET", "/devices/" .. id .. "?api-version=2021-04-12", headers)
  end
end

request = function()
  i = i % #requests + 1
  return requests[i]
end

-- Each connection waits a random time, uniform in [0, 2 x delay] (the mean is the delay asked
-- for): with one fixed delay every connection stays in step with the others, and the server sees
-- all of them at once, then nothing, which measures the bursts, not the load.
if delay_ms > 0 then
  delay = function() return math.random(0, 2 * delay_ms) end
end
