#!/usr/bin/env python3
"""Redis memory per user for candidate presence data models (standard library only).

Starts its own redis-server on a free loopback port (--save "" --appendonly no, default
Redis settings otherwise), loads N presence records per model with a pipelined socket,
FLUSHALL between models, and prints markdown tables. Run by hand, never as a test; figures
go to bench/RESULTS.md with the date, machine and command.

A record: user id (uint64, decimal), last_seen (Unix ms, uniform over the last 24 h), and a
logged-out flag (5% of users; stored as a negative last_seen). Ids are either random 64-bit
values or dense 1..N. Models:

  zset-shards    S sorted sets "hb:u:{K}", K = splitmix64(id) mod S; member = decimal id,
                 score = last_seen ms (negative = logged out).
  strings        "hb:u:ID" -> last_seen as a string, SET ... PX forget_after (24 h).
  strings+zsets  the above plus zset-shards on top (exact online counts).
  hash-buckets   hashes "hb:b:B" of ~BUCKET users each (dense ids: B = id // BUCKET; random
                 ids: B = splitmix64(id) mod ceil(N / BUCKET)); field = id, value = last_seen.

Per model: used_memory growth (INFO memory, fresh connection, loader closed) / N, MEMORY
USAGE of a sample key, OBJECT ENCODING of every aggregate key (a sample for strings), and
the server CPU (INFO commandstats usec) of (a) an exact online count (last_seen within 5 min)
and (b) a forget sweep removing everything older than 23 h (~1/24 of the users): zsets do
one ZCOUNT / one ZREMRANGEBYSCORE per shard; hashes either read every bucket (HVALS, resp.
HGETALL then HDEL of the stale fields, decided client-side) or run one Lua script per bucket
(same work server-side); strings expire by themselves and cannot count online users exactly.
Both results are checked against the loaded data.

With --bench: redis-benchmark against the loaded zset-shards model (random ids, largest N).

Usage: bench/redis_memory.py [--users 100000 1000000] [--shards 64] [--ids random dense]
                             [--bucket 100] [--bench] [--bench-n 200000] [--seed 1]
                             [--bench-only]
"""
import argparse
import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

FORGET_MS = 86_400_000
ONLINE_MS = 300_000
SWEEP_AGE_MS = 23 * 3_600_000
LOGGED_OUT_SHARE = 0.05
MASK64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self):
        self.s.close()

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise ConnectionError("redis closed the connection")
        if self.pos:
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += d

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line, self.pos = self.buf[self.pos:i], i + 2
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError("redis error: " + rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < self.pos + n + 2:
                self._fill()
            v, self.pos = self.buf[self.pos:self.pos + n], self.pos + n + 2
            return v.decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise RuntimeError("bad reply %r" % line)

    def cmd(self, *args):
        self.s.sendall(resp(*args))
        return self.reply()

    def pipeline(self, commands, batch=20000):
        """Sends pre-encoded commands batch by batch; returns every reply, in order."""
        out = []
        for k in range(0, len(commands), batch):
            chunk = commands[k:k + batch]
            self.s.sendall(b"".join(chunk))
            out.extend(self.reply() for _ in chunk)
        return out

    def pipeline_single_line(self, commands, batch=20000):
        """Faster pipeline for commands whose replies are one line each (+OK, :n)."""
        for k in range(0, len(commands), batch):
            chunk = commands[k:k + batch]
            self.s.sendall(b"".join(chunk))
            want = len(chunk)
            while self.buf.count(b"\r\n", self.pos) < want:
                self._fill()
            lines = self.buf[self.pos:].split(b"\r\n", want)
            self.buf, self.pos = lines[want], 0
            for line in lines[:want]:
                if line[:1] == b"-":
                    raise RuntimeError("redis error: " + line.decode())


def info(c, section):
    d = {}
    for line in c.cmd("INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            d[k] = v
    return d


def used_memory(port):
    time.sleep(0.2)  # let the server process the loader's close
    c = Conn(port)
    a = int(info(c, "memory")["used_memory"])
    time.sleep(0.3)
    b = int(info(c, "memory")["used_memory"])
    c.close()
    return b if b == a else max(a, b)


def cmd_usec(c, name):
    d = info(c, "commandstats").get("cmdstat_" + name)
    if not d:
        return 0, 0
    f = dict(kv.split("=") for kv in d.split(","))
    return int(f["calls"]), int(f["usec"])


class Data:
    def __init__(self, n, kind, seed, now_ms):
        rnd = random.Random(seed)
        if kind == "random":
            seen = set()
            ids = []
            while len(ids) < n:
                x = rnd.getrandbits(64)
                if x not in seen:
                    seen.add(x)
                    ids.append(x)
        else:
            ids = list(range(1, n + 1))
        self.ids = ids
        self.ts = []
        for _ in ids:
            t = now_ms - rnd.randrange(FORGET_MS)
            self.ts.append(-t if rnd.random() < LOGGED_OUT_SHARE else t)
        self.kind = kind
        self.now_ms = now_ms


def load(port, cmds):
    c = Conn(port)
    t0 = time.time()
    c.pipeline_single_line(cmds)
    dt = time.time() - t0
    c.close()
    return dt


def zset_cmds(d, shards):
    return [b"*4\r\n$4\r\nZADD\r\n" + _bulk(b"hb:u:{%d}" % (splitmix64(i) % shards))
            + _bulk(b"%d" % t) + _bulk(b"%d" % i) for i, t in zip(d.ids, d.ts)]


def _bulk(b):
    return b"$%d\r\n%s\r\n" % (len(b), b)


def string_cmds(d):
    px = _bulk(b"PX") + _bulk(b"%d" % FORGET_MS)
    return [b"*5\r\n$3\r\nSET\r\n" + _bulk(b"hb:u:%d" % i) + _bulk(b"%d" % t) + px
            for i, t in zip(d.ids, d.ts)]


def bucket_of(d, i, bucket, nbuckets):
    return i // bucket if d.kind == "dense" else splitmix64(i) % nbuckets


def hash_cmds(d, bucket, nbuckets):
    return [b"*4\r\n$4\r\nHSET\r\n" + _bulk(b"hb:b:%d" % bucket_of(d, i, bucket, nbuckets))
            + _bulk(b"%d" % i) + _bulk(b"%d" % t) for i, t in zip(d.ids, d.ts)]


def encodings(c, keys):
    got = c.pipeline([resp("OBJECT", "ENCODING", k) for k in keys])
    counts = {}
    for e in got:
        counts[e] = counts.get(e, 0) + 1
    return ", ".join("%s %d" % (e, n) for e, n in sorted(counts.items(), key=lambda x: -x[1]))


def sizes(c, keys, card_cmd):
    cards = c.pipeline([resp(card_cmd, k) for k in keys])
    return min(cards), max(cards)


HASH_ONLINE = """
local since = tonumber(ARGV[1]); local n = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
  if tonumber(v) >= since then n = n + 1 end
end
return n"""
HASH_SWEEP = """
local cutoff = tonumber(ARGV[1]); local t = redis.call('HGETALL', KEYS[1]); local del = {}
for i = 1, #t, 2 do
  local v = tonumber(t[i + 1]); if v < 0 then v = -v end
  if v < cutoff then del[#del + 1] = t[i] end
end
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
return #del"""


def zset_ops(c, d, shards):
    """Exact online count and a forget sweep on the zset shards: (online, us, removed, us)."""
    keys = ["hb:u:{%d}" % k for k in range(shards)]
    since, cutoff = d.now_ms - ONLINE_MS, d.now_ms - SWEEP_AGE_MS
    c.cmd("CONFIG", "RESETSTAT")
    online = sum(c.pipeline([resp("ZCOUNT", k, since, "+inf") for k in keys]))
    _, us_online = cmd_usec(c, "zcount")
    removed = sum(c.pipeline([resp("ZREMRANGEBYSCORE", k, -cutoff, cutoff) for k in keys]))
    _, us_sweep = cmd_usec(c, "zremrangebyscore")
    return online, us_online, removed, us_sweep


def hash_ops(c, d, keys):
    since, cutoff = d.now_ms - ONLINE_MS, d.now_ms - SWEEP_AGE_MS
    sha_on = c.cmd("SCRIPT", "LOAD", HASH_ONLINE)
    sha_sw = c.cmd("SCRIPT", "LOAD", HASH_SWEEP)
    c.cmd("CONFIG", "RESETSTAT")
    online = sum(c.pipeline([resp("EVALSHA", sha_on, 1, k, since) for k in keys]))
    _, us_online = cmd_usec(c, "evalsha")
    c.cmd("CONFIG", "RESETSTAT")
    removed = sum(c.pipeline([resp("EVALSHA", sha_sw, 1, k, cutoff) for k in keys]))
    _, us_sweep = cmd_usec(c, "evalsha")
    return online, us_online, removed, us_sweep


def hash_ops_client(c, d, keys):
    """The same with plain commands, decided client-side: HVALS per bucket; HGETALL per
    bucket, then one HDEL per bucket with stale fields. Server CPU of those commands."""
    since, cutoff = d.now_ms - ONLINE_MS, d.now_ms - SWEEP_AGE_MS
    c.cmd("CONFIG", "RESETSTAT")
    online = sum(1 for vals in c.pipeline([resp("HVALS", k) for k in keys], batch=500)
                 for v in vals if int(v) >= since)
    _, us_online = cmd_usec(c, "hvals")
    c.cmd("CONFIG", "RESETSTAT")
    dels = []
    for k, fv in zip(keys, c.pipeline([resp("HGETALL", k) for k in keys], batch=500)):
        stale = [fv[j] for j in range(0, len(fv), 2) if abs(int(fv[j + 1])) < cutoff]
        if stale:
            dels.append(resp("HDEL", k, *stale))
    removed = sum(c.pipeline(dels, batch=500))
    _, us_get = cmd_usec(c, "hgetall")
    _, us_del = cmd_usec(c, "hdel")
    return online, us_online, removed, us_get + us_del


def expected(d):
    since, cutoff = d.now_ms - ONLINE_MS, d.now_ms - SWEEP_AGE_MS
    return sum(1 for t in d.ts if t >= since), sum(1 for t in d.ts if abs(t) < cutoff)


def measure(port, n, kind, shards, bucket, seed, log):
    ctl = Conn(port)
    d = Data(n, kind, seed, int(time.time() * 1000))
    exp_online, exp_removed = expected(d)
    rows = []
    zkeys = ["hb:u:{%d}" % k for k in range(shards)]

    def check(model, online, removed):
        if (online, removed) != (exp_online, exp_removed):
            raise RuntimeError("%s: online %d removed %d, expected %d %d" % (
                model, online, removed, exp_online, exp_removed))

    # 1. zset-shards
    ctl.cmd("FLUSHALL")
    base = used_memory(port)
    zc = zset_cmds(d, shards)
    dt = load(port, zc)
    grown = used_memory(port) - base
    lo, hi = sizes(ctl, zkeys, "ZCARD")
    sample = ctl.cmd("MEMORY", "USAGE", zkeys[0], "SAMPLES", "0")
    enc = encodings(ctl, zkeys)
    on, us_on, rm, us_rm = zset_ops(ctl, d, shards)
    check("zset", on, rm)
    in_first = sum(1 for i in d.ids if splitmix64(i) % shards == 0)
    rows.append(("zset-shards (S=%d)" % shards, grown, dt,
                 "`hb:u:{0}`: %d B, %d members (%.1f B/member); %d..%d members/shard" % (
                     sample, in_first, sample / max(1, in_first), lo, hi),
                 enc, "%d ZCOUNT: %.1f ms" % (shards, us_on / 1000),
                 "%d ZREMRANGEBYSCORE: %.1f ms" % (shards, us_rm / 1000)))
    log("  zset-shards loaded in %.1f s" % dt)
    del zc

    # 2. strings, then strings + zsets
    ctl.cmd("FLUSHALL")
    base = used_memory(port)
    sc = string_cmds(d)
    dt = load(port, sc)
    del sc
    grown = used_memory(port) - base
    skeys = ["hb:u:%d" % i for i in d.ids[:: max(1, n // 1000)]]
    sample_key = skeys[len(skeys) // 2]
    sample = ctl.cmd("MEMORY", "USAGE", sample_key)
    enc = encodings(ctl, skeys)
    expires = info(ctl, "keyspace").get("db0", "")
    rows.append(("strings (SET PX)", grown, dt,
                 "`%s`: %d B (key + value, not the expires entry); %s" % (
                     "hb:u:ID", sample, expires),
                 enc + " (sample of %d)" % len(skeys), "not exact (needs zsets or SCAN)",
                 "none (key TTL)"))
    log("  strings loaded in %.1f s" % dt)
    zc = zset_cmds(d, shards)
    dt2 = load(port, zc)
    del zc
    grown2 = used_memory(port) - base
    rows.append(("strings + zset-shards", grown2, dt + dt2, "as above", "as above",
                 "as zset-shards", "zsets: as zset-shards; strings: TTL"))

    # 3. hash-buckets
    ctl.cmd("FLUSHALL")
    base = used_memory(port)
    nb = math.ceil(n / bucket)
    hc = hash_cmds(d, bucket, nb)
    dt = load(port, hc)
    del hc
    grown = used_memory(port) - base
    hkeys = sorted({"hb:b:%d" % bucket_of(d, i, bucket, nb) for i in d.ids})
    lo, hi = sizes(ctl, hkeys, "HLEN")
    sk = hkeys[len(hkeys) // 2]
    sample = ctl.cmd("MEMORY", "USAGE", sk, "SAMPLES", "0")
    slen = ctl.cmd("HLEN", sk)
    enc = encodings(ctl, hkeys)
    on, us_on, rm, us_rm = hash_ops_client(ctl, d, hkeys)
    check("hash (client)", on, rm)
    # the Lua sweep needs the stale fields back: reload and sweep again
    ctl.cmd("FLUSHALL")
    load(port, hash_cmds(d, bucket, nb))
    on2, us_on2, rm2, us_rm2 = hash_ops(ctl, d, hkeys)
    check("hash (Lua)", on2, rm2)
    rows.append(("hash-buckets (~%d/bucket)" % bucket, grown, dt,
                 "a bucket of %d fields: %d B (%.1f B/field); %d buckets, %d..%d fields" % (
                     slen, sample, sample / slen, len(hkeys), lo, hi),
                 enc,
                 "%d HVALS: %.1f ms (+ client parses all N values); or %d Lua scripts: "
                 "%.1f ms" % (len(hkeys), us_on / 1000, len(hkeys), us_on2 / 1000),
                 "%d HGETALL + HDEL: %.1f ms (+ client parses all N pairs); or %d Lua "
                 "scripts: %.1f ms" % (len(hkeys), us_rm / 1000, len(hkeys), us_rm2 / 1000)))
    log("  hash-buckets loaded in %.1f s" % dt)
    ctl.cmd("FLUSHALL")
    ctl.close()
    return rows, exp_online, exp_removed


COMMANDS = {
    "zset-shards (S=%d)": ("1 ZADD (GT for heartbeats; plain ZADD to log out)",
                           "1 ZSCORE; batch: 1 ZMSCORE per shard touched"),
    "strings (SET PX)": ("1 SET PX", "1 GET; batch: 1 MGET"),
    "strings + zset-shards": ("2 (SET PX + ZADD; one round trip pipelined or MULTI)",
                              "1 GET; batch: 1 MGET"),
    "hash-buckets (~%d/bucket)": ("1 HSET", "1 HGET; batch: 1 HMGET per bucket touched"),
}


def commands_for(model):
    for k, v in COMMANDS.items():
        if model.split(" (")[0] == k.split(" (")[0]:
            return v
    return ("", "")


def bench(port, n_req, log):
    if not shutil.which("redis-benchmark"):
        log("redis-benchmark not found; skipping")
        return []
    tests = [
        ["ZADD", "hb:u:{1}", "GT", "__rand_int__", "__rand_int__"],
        ["ZSCORE", "hb:u:{1}", "__rand_int__"],
        ["SET", "hb:u:__rand_int__", "__rand_int__"],
        ["SET", "hb:u:__rand_int__", "__rand_int__", "PX", str(FORGET_MS)],
    ]
    out = []
    for p in (1, 16):
        for t in tests:
            argv = ["redis-benchmark", "-p", str(port), "-n", str(n_req), "-c", "50",
                    "-P", str(p), "-r", "1000000", "--csv"] + t
            r = subprocess.run(argv, capture_output=True, text=True, check=True)
            lines = [l for l in r.stdout.splitlines() if l.startswith('"') and "rps" not in l]
            f = [x.strip('"') for x in lines[-1].split('","')]
            out.append((" ".join(argv[:-len(t) - 1] + t), float(f[1]), f[4], f[6]))
            log("  %s: %s req/s" % (out[-1][0], f[1]))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, nargs="+", default=[100000, 1000000])
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--ids", nargs="+", default=["random", "dense"], choices=["random", "dense"])
    ap.add_argument("--bucket", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bench", action="store_true")
    ap.add_argument("--bench-n", type=int, default=200000)
    ap.add_argument("--bench-only", action="store_true", help="skip the memory tables")
    args = ap.parse_args()
    log = lambda m: print(m, file=sys.stderr, flush=True)

    work = tempfile.mkdtemp(prefix="hb-redis-mem-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", work,
                            "--logfile", os.path.join(work, "redis.log")])
    try:
        for _ in range(100):
            try:
                c = Conn(port)
                c.cmd("PING")
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("redis-server did not come up")
        version = info(c, "server")["redis_version"]
        cfg = c.cmd("CONFIG", "GET", "*-max-listpack-entries")
        c.close()
        print("Redis %s, %s; forget_after 24 h, online = last_seen within 5 min, sweep = "
              "forget older than 23 h; %d%% logged out.\n" % (
                  version, ", ".join("%s %s" % (cfg[k], cfg[k + 1])
                                     for k in range(0, len(cfg), 2)),
                  LOGGED_OUT_SHARE * 100))
        for n in ([] if args.bench_only else args.users):
            for kind in args.ids:
                log("N=%d, %s ids" % (n, kind))
                rows, on, rm = measure(port, n, kind, args.shards, args.bucket, args.seed, log)
                print("### %d users, %s ids (%d online, sweep removes %d)\n" % (
                    n, "random 64-bit" if kind == "random" else "dense 1..N", on, rm))
                print("| model | used_memory B/user | commands per heartbeat | per status "
                      "| sample key (MEMORY USAGE) | OBJECT ENCODING | exact online count "
                      "(server CPU) | forget sweep (server CPU) | load s |")
                print("|---|---:|---|---|---|---|---|---|---:|")
                for model, grown, dt, sample, enc, onl, sw in rows:
                    hb, st = commands_for(model)
                    print("| %s | %.1f | %s | %s | %s | %s | %s | %s | %.1f |" % (
                        model, grown / n, hb, st, sample, enc, onl, sw, dt))
                print()
        if args.bench or args.bench_only:
            n = max(args.users)
            log("bench: loading zset-shards, %d random ids" % n)
            d = Data(n, "random", args.seed, int(time.time() * 1000))
            c = Conn(port)
            c.cmd("FLUSHALL")
            c.close()
            load(port, zset_cmds(d, args.shards))
            del d
            res = bench(port, args.bench_n, log)
            print("### redis-benchmark, zset-shards preloaded with %d random ids (S=%d)\n" % (
                n, args.shards))
            print("| command | req/s | p50 ms | p99 ms |")
            print("|---|---:|---:|---:|")
            for cmd, rps, p50, p99 in res:
                print("| `%s` | %.0f | %s | %s |" % (cmd, rps, p50, p99))
            print()
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
