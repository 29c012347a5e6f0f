-- wrk: one heartbeat per request for a random user in [0, HB_USERS).
local users = tonumber(os.getenv("HB_USERS") or "1000000")
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  return wrk.format("POST", "/v1/users/" .. math.random(0, users - 1) .. "/heartbeat")
end
