#!/usr/bin/env python3
"""Helper for bench/ops_overhead (standard library only).

  subscribe PORT USERS WATCHED PER_STREAM SEED
        WATCHED distinct random ids in [0, USERS) (random.Random(SEED)), followed by
        ceil(WATCHED / PER_STREAM) streams GET /v1/events?members=&users=<PER_STREAM ids>, one
        thread each; prints "ready STREAMS SECONDS" once every stream has sent its initial
        state (one user event per id), then reads and discards until SIGTERM. Exits 1 on a
        non-200 answer or a "dropped" event.
  cpu PID SECONDS
        CPU time of PID over SECONDS of wall time: "STAT_S SCHED_S" — utime+stime from
        /proc/PID/stat (10 ms ticks) and the sum of /proc/PID/task/*/schedstat (ns; threads
        alive at both ends).
  get-times PORT PATH N
        N sequential GET PATH on fresh connections; prints the seconds of each (time to
        the whole body) and the body size.
"""
import http.client
import os
import random
import signal
import sys
import threading
import time


def cmd_subscribe(port, users, watched, per, seed):
    port, users, watched, per = int(port), int(users), int(watched), int(per)
    ids = sorted(random.Random(int(seed)).sample(range(users), watched))
    chunks = [ids[k:k + per] for k in range(0, watched, per)]
    ready = threading.Semaphore(0)
    failed = []
    t0 = time.time()

    def stream(chunk):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=None)
        c.request("GET", "/v1/events?members=&users=" + ",".join(map(str, chunk)))
        r = c.getresponse()
        if r.status != 200:
            failed.append(f"{r.status} {r.read()[:200]!r}")
            ready.release()
            return
        n = 0
        while n < len(chunk):
            line = r.readline()
            if not line:
                failed.append("stream closed during the initial state")
                ready.release()
                return
            if line == b"event: user\n":
                n += 1
            elif line == b"event: dropped\n":
                failed.append("dropped")
                ready.release()
                return
        ready.release()
        while True:
            data = r.read1(65536)
            if not data:
                failed.append("stream closed")
                return
            if b"event: dropped" in data:
                failed.append("dropped")

    for ch in chunks:
        threading.Thread(target=stream, args=(ch,), daemon=True).start()
    for _ in chunks:
        ready.acquire()
    if failed:
        sys.exit("subscribe: " + "; ".join(failed))
    print(f"ready {len(chunks)} {time.time() - t0:.3f}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(1 if failed else 0))
    while True:
        time.sleep(1)
        if failed:
            print("subscribe: " + "; ".join(failed), file=sys.stderr, flush=True)
            os._exit(1)


def stat_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sched_ns(pid):
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                out[t] = int(f.read().split()[0])
        except OSError:
            pass
    return out


def cmd_cpu(pid, seconds):
    a, sa = stat_s(pid), sched_ns(pid)
    time.sleep(float(seconds))
    b, sb = stat_s(pid), sched_ns(pid)
    sched = sum(sb[t] - sa[t] for t in sb if t in sa) / 1e9
    print(f"{b - a:.3f} {sched:.4f}")


def cmd_get_times(port, path, n):
    for _ in range(int(n)):
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        t0 = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        t = time.perf_counter() - t0
        if r.status != 200:
            sys.exit(f"GET {path}: {r.status}")
        print(f"{t:.6f} {len(body)}")
        c.close()


if __name__ == "__main__":
    cmds = {"subscribe": cmd_subscribe, "cpu": cmd_cpu, "get-times": cmd_get_times}
    cmds[sys.argv[1]](*sys.argv[2:])
