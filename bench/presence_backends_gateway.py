#!/usr/bin/env python3
"""A gateway's heartbeats for bench/presence_backends, part (d): USERS users, each sent a
heartbeat every INTERVAL_MS for SECONDS, in rounds (every user once per round, rounds
INTERVAL_MS apart; a round that overruns is followed at once by the next).

  presence_backends_gateway.py PORT USERS INTERVAL_MS SECONDS single|batch [CONNECTIONS]

single: POST /v1/users/{id}/heartbeat per user; batch: POST /v1/users/heartbeat with
1000-id batches. CONNECTIONS keep-alive connections (threads) share each round's requests.
Prints one line: "heartbeats=N requests=N non2xx=N rounds=N mean_interval_ms=F", where
mean_interval_ms is the mean time between the starts of consecutive rounds, i.e. between a
user's consecutive heartbeats as actually sent (above INTERVAL_MS when rounds overran).
"""
import http.client
import sys
import threading
import time

port, users, interval_ms, seconds = (int(a) for a in sys.argv[1:5])
mode = sys.argv[5]
conns = int(sys.argv[6]) if len(sys.argv) > 6 else 8

if mode == "single":
    work = [("/v1/users/%d/heartbeat" % u, None) for u in range(users)]
else:
    work = []
    for start in range(0, users, 1000):
        ids = ",".join(str(u) for u in range(start, min(users, start + 1000)))
        work.append(("/v1/users/heartbeat", '{"users":[%s]}' % ids))

lock = threading.Lock()
totals = {"requests": 0, "non2xx": 0}


def body_of(r):
    return r.answer[:300].decode("utf-8", "replace")


def send(slice_):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    requests = bad = 0
    for path, body in slice_:
        headers = {"Content-Type": "application/json"} if body else {}
        c.request("POST", path, body, headers)
        r = c.getresponse()
        r.answer = r.read()
        requests += 1
        if r.status // 100 != 2:
            bad += 1
            # the first few on stderr, to say what they were
            with lock:
                totals["shown"] = totals.get("shown", 0) + 1
                if totals["shown"] <= 3:
                    print("non-2xx: %s %d %s" % (path, r.status, body_of(r)), file=sys.stderr)
    c.close()
    with lock:
        totals["requests"] += requests
        totals["non2xx"] += bad


slices = [work[i::conns] for i in range(conns)]
slices = [s for s in slices if s]
start = time.monotonic()
rounds = 0
next_round = start
last_round = start
while time.monotonic() - start < seconds:
    now = time.monotonic()
    if now < next_round:
        time.sleep(next_round - now)
    last_round = time.monotonic()
    next_round = max(last_round, next_round) + interval_ms / 1000.0
    threads = [threading.Thread(target=send, args=(s,)) for s in slices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rounds += 1
# From the first round's start to the last's, over the intervals between them.
mean_interval = (last_round - start) * 1000.0 / max(1, rounds - 1)
print("heartbeats=%d requests=%d non2xx=%d rounds=%d mean_interval_ms=%.0f" % (
    users * rounds, totals["requests"], totals["non2xx"], rounds, mean_interval))
