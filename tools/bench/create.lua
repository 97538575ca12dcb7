-- wrk script: PUT /devices/<unique id> with an empty body (the server generates SAS keys).
-- Each wrk thread gets its own prefix, so ids never collide across threads or runs.
local counter = 0
local prefix = ""
local threads = {}
local headers = {["Authorization"] = os.getenv("REGISTRYD_SAS"), ["Content-Type"] = "application/json; charset=utf-8"}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = (args[1] or "bench") .. "-" .. tostring(tid) .. "-"
end

request = function()
  counter = counter + 1
  return wrk.format("PUT", "/devices/" .. prefix .. counter .. "?api-version=2021-04-12", headers, "{}")
end
