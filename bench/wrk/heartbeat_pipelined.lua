-- wrk: HTTP/1.1 pipelining. Each write on a connection carries HB_DEPTH (default 16) single
-- heartbeats, each for a random user in [0, HB_USERS); wrk counts every answer, and writes
-- the next HB_DEPTH once all of them are in. Latency runs from the write to each answer.
local users = tonumber(os.getenv("HB_USERS") or "1000000")
local depth = tonumber(os.getenv("HB_DEPTH") or "16")
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end
function request()
  local requests = {}
  for i = 1, depth do
    requests[i] = wrk.format("POST", "/v1/users/" .. math.random(0, users - 1) .. "/heartbeat")
  end
  return table.concat(requests)
end
