-- wrk script: POST /registry/auth/device (or /registry/auth/emqx) with request bodies prepared by
-- tools/bench-auth.sh, one JSON body per line of REGISTRYD_BODIES, formatted once per thread and
-- cycled (as tools/bench/noop.lua does for the baseline). Answers are not parsed here: the script
-- checks the server's decision counters afterwards (every answer must be an allow), which costs
-- the client nothing per response.
local path = os.getenv("REGISTRYD_AUTH_PATH") or "/registry/auth/device"
local headers = {["Authorization"] = os.getenv("REGISTRYD_SAS"), ["Content-Type"] = "application/json"}
local requests = {}
local i = 0

init = function(args)
  for line in io.lines(os.getenv("REGISTRYD_BODIES")) do requests[#requests + 1] = wrk.format("POST", path, headers, line) end
end

request = function()
  i = i % #requests + 1
  return requests[i]
end
