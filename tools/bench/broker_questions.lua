-- wrk script (tools/bench-broker.sh): the questions brokers ask registryd, one per line of
-- REGISTRYD_BODIES as `PATH<TAB>BODY` (a device's login and its first publish and subscribe, on
-- EMQX's JSON routes and RabbitMQ's form-encoded ones), formatted once per thread and cycled, as
-- tools/bench/noop.lua formats the baseline's. Answers are checked afterwards on the server's
-- decision counters.
local sas = os.getenv("REGISTRYD_SAS")
local requests = {}
local i = 0

init = function(args)
  for line in io.lines(os.getenv("REGISTRYD_BODIES")) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    local contentType = path:find("/rabbitmq/") and "application/x-www-form-urlencoded" or "application/json"
    requests[#requests + 1] = wrk.format("POST", path, {["Authorization"] = sas, ["Content-Type"] = contentType}, body)
  end
end

request = function()
  i = i % #requests + 1
  return requests[i]
end
