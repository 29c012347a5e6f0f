-- wrk: batches of HB_BATCH random user ids in [0, HB_USERS) posted to HB_PATH
-- (/v1/users/heartbeat or /v1/users/status). 64 bodies are made up front and rotated.
-- Any answer but 200 stops wrk, unless HB_ALLOW_NON2XX is set and not empty (wrk then counts them).
-- A script that dofile()s this one may first set batch_type and batch_body(ids) for another
-- body form (batch_binary.lua); JSON otherwise.
local users = tonumber(os.getenv("HB_USERS") or "1000000")
local batch = tonumber(os.getenv("HB_BATCH") or "1000")
local path = os.getenv("HB_PATH") or "/v1/users/heartbeat"
local strict = (os.getenv("HB_ALLOW_NON2XX") or "") == ""
batch_type = batch_type or "application/json"
batch_body = batch_body or function(ids) return '{"users":[' .. table.concat(ids, ",") .. ']}' end
local bodies = {}
local next_body = 0
function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  for b = 1, 64 do
    local ids = {}
    for i = 1, batch do ids[i] = math.random(0, users - 1) end
    bodies[b] = batch_body(ids)
  end
end
function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", path, {["Content-Type"] = batch_type}, bodies[next_body])
end
function response(status, headers, body)
  if status ~= 200 and strict then error("unexpected status " .. status .. ": " .. body) end
end
