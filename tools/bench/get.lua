-- wrk script: GET /devices/<id> over ids created before (prefix-T-N for N in 1..count, T in 1..2).
-- An optional per-request delay (ms, REGISTRYD_DELAY_MS) throttles each connection for the
-- "half of the maximum load" latency run.
local count = tonumber(os.getenv("REGISTRYD_IDS") or "1000")
local prefix = os.getenv("REGISTRYD_PREFIX") or "seed"
local delay_ms = tonumber(os.getenv("REGISTRYD_DELAY_MS") or "0")

request = function()
  local id = prefix .. "-" .. math.random(1, 2) .. "-" .. math.random(1, count)
  return wrk.format("GET", "/devices/" .. id .. "?api-version=2021-04-12", {["Authorization"] = os.getenv("REGISTRYD_SAS")})
end

if delay_ms > 0 then
  delay = function() return delay_ms end
end
