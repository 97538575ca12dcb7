-- wrk script: the no-op baseline, GET /healthz, sent the way the scripted phases send theirs
-- (the same Authorization header, requests formatted once and cycled through the same `request`
-- callback). wrk runs on the same cores as the server, so a baseline whose client does less work
-- per request than the measured phase's client would flatter the baseline.
local headers = {["Authorization"] = os.getenv("REGISTRYD_SAS")}
local requests = {}
local i = 0

init = function(args)
  for k = 1, 1000 do requests[k] = wrk.format("GET", "/healthz", headers) end
end

request = function()
  i = i % #requests + 1
  return requests[i]
end
