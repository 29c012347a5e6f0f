-- wrk: heartbeats for bench/api_tls. HB_MODE=single (default): POST /v1/users/{id}/heartbeat
-- for a random user in [0, HB_USERS); HB_MODE=batch: POST /v1/users/heartbeat with HB_BATCH
-- random ids (64 bodies made up front and rotated). HB_TOKEN, if set and not empty, goes in
-- "Authorization: Bearer HB_TOKEN". Ends with one machine-readable line (microseconds):
--   HBLAT requests=N p50=.. p90=.. p99=.. p999=.. max=.. non2xx=N errors=N
local users = tonumber(os.getenv("HB_USERS") or "1000000")
local batch = tonumber(os.getenv("HB_BATCH") or "100")
local mode = os.getenv("HB_MODE") or "single"
local token = os.getenv("HB_TOKEN") or ""
local headers = {}
local bodies = {}
local next_body = 0
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  if token ~= "" then headers["Authorization"] = "Bearer " .. token end
  if mode == "batch" then
    headers["Content-Type"] = "application/json"
    for b = 1, 64 do
      local ids = {}
      for i = 1, batch do ids[i] = math.random(0, users - 1) end
      bodies[b] = '{"users":[' .. table.concat(ids, ",") .. ']}'
    end
  end
end
function request()
  if mode == "batch" then
    next_body = next_body % #bodies + 1
    return wrk.format("POST", "/v1/users/heartbeat", headers, bodies[next_body])
  end
  return wrk.format("POST", "/v1/users/" .. math.random(0, users - 1) .. "/heartbeat", headers)
end
dofile("bench/wrk/latency_line.lua")
