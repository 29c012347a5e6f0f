-- wrk: batches of HB_BATCH random user ids in [0, HB_USERS) posted to HB_PATH as binary
-- bodies (Content-Type: application/octet-stream, 8 bytes per id, little-endian: docs/API.md).
-- 64 bodies are made up front and rotated, as in batch.lua. wrk's LuaJIT has no string.pack:
-- the bytes are built with string.char. Any answer but 200 stops wrk, unless HB_ALLOW_NON2XX
-- is set and not empty (wrk then counts them).
local users = tonumber(os.getenv("HB_USERS") or "1000000")
local batch = tonumber(os.getenv("HB_BATCH") or "1000")
local path = os.getenv("HB_PATH") or "/v1/users/heartbeat"
local strict = (os.getenv("HB_ALLOW_NON2XX") or "") == ""
local bodies = {}
local next_body = 0

-- 8 bytes, least significant first; ids stay below 2^53, which a Lua number holds exactly.
local function le64(id)
  local bytes = {}
  for i = 1, 8 do
    bytes[i] = id % 256
    id = math.floor(id / 256)
  end
  return string.char(unpack(bytes))
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  for b = 1, 64 do
    local ids = {}
    for i = 1, batch do ids[i] = le64(math.random(0, users - 1)) end
    bodies[b] = table.concat(ids)
  end
end
function request()
  next_body = next_body % #bodies + 1
  return wrk.format("POST", path, {["Content-Type"] = "application/octet-stream"}, bodies[next_body])
end
function response(status, headers, body)
  if status ~= 200 and strict then error("unexpected status " .. status .. ": " .. body) end
end
