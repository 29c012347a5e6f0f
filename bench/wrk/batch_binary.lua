-- wrk: batch.lua's batches (HB_BATCH random user ids in [0, HB_USERS) posted to HB_PATH) as
-- binary bodies: Content-Type application/octet-stream, 8 bytes per id, little-endian
-- (docs/API.md). wrk's LuaJIT has no string.pack: the bytes are built with string.char.
-- Run from the repository's root (bench/presence_vs_redis does).

-- 8 bytes, least significant first; ids stay below 2^53, which a Lua number holds exactly.
local function le64(id)
  local bytes = {}
  for i = 1, 8 do
    bytes[i] = id % 256
    id = math.floor(id / 256)
  end
  return string.char(unpack(bytes))
end

batch_type = "application/octet-stream"
function batch_body(ids)
  local parts = {}
  for i, id in ipairs(ids) do parts[i] = le64(id) end
  return table.concat(parts)
end
dofile("bench/wrk/batch.lua")
