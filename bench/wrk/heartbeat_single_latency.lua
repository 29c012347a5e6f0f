-- wrk: heartbeat_single.lua's requests (one heartbeat for a random user in [0, HB_USERS)),
-- and at the end one machine-readable line of the latency distribution (microseconds) and
-- the error counts. Run from the repository's root (bench/persist_snapshot does):
--   HBLAT requests=N p50=.. p90=.. p99=.. p999=.. max=.. non2xx=N errors=N
dofile("bench/wrk/heartbeat_single.lua")
dofile("bench/wrk/latency_line.lua")
