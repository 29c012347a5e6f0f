-- wrk: GET /v1/users/{id} for a random user in [0, HB_USERS), and at the end the same
-- HBLAT line as heartbeat_single_latency.lua (microseconds). Run from the repository's root.
dofile("bench/wrk/heartbeat_single_latency.lua")
local users = tonumber(os.getenv("HB_USERS") or "1000000")
function request()
  return wrk.format("GET", "/v1/users/" .. math.random(0, users - 1))
end
function response(status, headers, body)
  if status ~= 200 then error("unexpected status " .. status .. ": " .. body) end
end
