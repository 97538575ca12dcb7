-- wrk script: POST /registry/auth/device (or /registry/auth/emqx) with request bodies prepared by
-- tools/bench-auth.sh, one JSON body per line of REGISTRYD_BODIES, cycled per thread.
local path = os.getenv("REGISTRYD_AUTH_PATH") or "/registry/auth/device"
local bodies = {}
for line in io.lines(os.getenv("REGISTRYD_BODIES")) do bodies[#bodies + 1] = line end
local headers = {["Authorization"] = os.getenv("REGISTRYD_SAS"), ["Content-Type"] = "application/json"}
local i = 0

request = function()
  i = i % #bodies + 1
  return wrk.format("POST", path, headers, bodies[i])
end

-- Every answer must be an allow: a benchmark of denials would measure the wrong thing.
response = function(status, _, body)
  if status ~= 200 or not string.find(body, '"allow"', 1, true) then
    io.stderr:write("unexpected answer " .. status .. ": " .. body .. "\n")
    os.exit(1)
  end
end
