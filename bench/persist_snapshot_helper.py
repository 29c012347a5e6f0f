#!/usr/bin/env python3
"""Helper for bench/persist_snapshot (standard library only).

  free tcp|udp                       print a free loopback port
  load PORT USERS BATCH CONNS        heartbeat ids 0..USERS-1 in batches of BATCH over CONNS
                                     parallel connections; prints "SECONDS USERS_PER_S"
  monitor PORT PID OUT               every 100 ms one JSON line to OUT: wall time, VmRSS,
                                     VmHWM, the health's persistence fields (until SIGTERM)
  field PORT NAME                    one field of GET /v1/health's "persistence" ("null" if none)
  wait-snap PORT AFTER TIMEOUT [USERS]
                                     until a snapshot newer than last_snapshot_ms AFTER
                                     ("null": any) has completed (with USERS users, if given);
                                     prints "last_ms duration_ms users observed_unix_s"
  wait-api PORT PID T0 TIMEOUT       T0: $EPOCHREALTIME of the daemon's launch; polls
                                     /v1/health every 5 ms, then GET /v1/users; prints
                                     "api_s tracked_s tracked"
  window SAMPLES T0 T1 [LOG]         snapshots completed within [T0, T1] (unix s), the share
                                     of the window they covered, their durations, peak VmRSS
                                     and disk_bytes range, and the "snapshot N written" lines
                                     of the daemon's debug LOG in the window -> JSON
  summary RESULTS                    the summary table from the key=value file RESULTS
"""
import datetime
import http.client
import json
import os
import signal
import socket
import statistics
import sys
import threading
import time


def conn(port):
    return http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)


def get_json(c, path):
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
    return json.loads(body)


def persistence(c):
    return get_json(c, "/v1/health").get("persistence") or {}


def cmd_free(kind):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])


def cmd_load(port, users, batch, conns):
    users, batch, conns = int(users), int(batch), int(conns)
    # Bodies are made before the clock starts: the figure is the daemon's, not Python's.
    bodies = [
        ('{"users":[%s]}' % ",".join(map(str, range(s, min(users, s + batch))))).encode()
        for s in range(0, users, batch)
    ]
    lock = threading.Lock()
    todo = list(range(len(bodies)))
    errors = []

    def worker():
        c = conn(port)
        while True:
            with lock:
                if not todo or errors:
                    return
                i = todo.pop()
            try:
                c.request("POST", "/v1/users/heartbeat", bodies[i],
                          {"Content-Type": "application/json"})
                r = c.getresponse()
                body = r.read()
                if r.status != 200:
                    raise RuntimeError(f"batch {i}: {r.status} {body[:200]!r}")
            except Exception as e:  # noqa: BLE001 - reported and fatal
                with lock:
                    errors.append(str(e))
                return

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.time() - t0
    if errors:
        sys.exit("load failed: " + errors[0])
    print(f"{dt:.2f} {users / dt:.0f}")


def proc_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    k, v = line.split(":")
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cmd_monitor(port, pid, out):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    c = conn(port)
    with open(out, "a") as f:
        while not stop:
            t = time.time()
            rec = {"t": t}
            st = proc_status(pid)
            rec["rss_kb"] = st.get("VmRSS")
            rec["hwm_kb"] = st.get("VmHWM")
            try:
                p = persistence(c)
                rec.update({k: p.get(k) for k in ("last_snapshot_ms", "last_snapshot_users",
                                                   "last_snapshot_bytes",
                                                   "last_snapshot_duration_ms", "disk_bytes",
                                                   "failures")})
            except Exception:  # noqa: BLE001 - the daemon may be stopping
                c.close()
                c = conn(port)
            f.write(json.dumps(rec) + "\n")
            f.flush()
            time.sleep(max(0.0, 0.1 - (time.time() - t)))


def cmd_field(port, name):
    v = persistence(conn(port)).get(name)
    print("null" if v is None else v)


def cmd_wait_snap(port, after, timeout, users=None):
    after = None if after == "null" else int(after)
    deadline = time.time() + float(timeout)
    c = conn(port)
    while time.time() < deadline:
        p = persistence(c)
        ms = p.get("last_snapshot_ms")
        if ms is not None and (after is None or ms > after) and (
                users is None or p.get("last_snapshot_users") == int(users)):
            print(ms, p["last_snapshot_duration_ms"], p["last_snapshot_users"],
                  f"{time.time():.3f}")
            return
        time.sleep(0.02)
    print("timeout")
    sys.exit(1)


def cmd_wait_api(port, pid, t0, timeout):
    t0 = float(t0)
    deadline = time.time() + float(timeout)
    while True:
        try:
            c = conn(port)
            get_json(c, "/v1/health")
            break
        except (OSError, http.client.HTTPException, RuntimeError):
            if time.time() > deadline or not os.path.exists(f"/proc/{pid}"):
                sys.exit("the API did not answer (see the daemon's log)")
            time.sleep(0.005)
    t_api = time.time() - t0
    counts = get_json(c, "/v1/users")
    print(f"{t_api:.3f} {time.time() - t0:.3f} {counts['tracked']}")


def load_samples(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def log_written(log, t0, t1):
    """'persist: snapshot N written' debug lines stamped within [t0, t1] (None: no such lines)."""
    if not log or not os.path.exists(log):
        return None
    n, any_line = 0, False
    with open(log) as f:
        for line in f:
            if " persist: snapshot " not in line or " written: " not in line:
                continue
            any_line = True
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f")
            t = stamp.replace(tzinfo=datetime.timezone.utc).timestamp()
            n += t0 <= t <= t1
    return n if any_line else None


def cmd_window(samples, t0, t1, log=None):
    t0, t1 = float(t0), float(t1)
    rows = load_samples(samples)
    seen = {}
    for r in rows:
        ms = r.get("last_snapshot_ms")
        if ms is not None and ms not in seen:
            seen[ms] = r
    # A snapshot counts for the window if it completed inside it (first observed there).
    done = [r for r in seen.values() if t0 <= r["t"] <= t1]
    covered = 0.0
    for r in seen.values():
        s = r["last_snapshot_ms"] / 1000.0
        e = s + r["last_snapshot_duration_ms"] / 1000.0
        covered += max(0.0, min(e, t1) - max(s, t0))
    inside = [r for r in rows if t0 <= r["t"] <= t1]
    durs = [r["last_snapshot_duration_ms"] for r in done]
    disks = [r["disk_bytes"] for r in inside if r.get("disk_bytes")]
    print(json.dumps({
        "snapshots": len(done),
        "log_snapshots": log_written(log, t0, t1),
        "durs": durs,
        "covered": covered / (t1 - t0) if t1 > t0 else 0,
        "dur_min": min(durs) if durs else None,
        "dur_med": statistics.median(durs) if durs else None,
        "dur_max": max(durs) if durs else None,
        "rss_max_kb": max((r["rss_kb"] or 0) for r in inside) if inside else None,
        "disk_min": min(disks) if disks else None,
        "disk_max": max(disks) if disks else None,
    }))


def cmd_summary(path):
    r = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                r[k] = v
    n = int(r["users"])

    def num(k):
        v = r.get(k, "")
        try:
            return float(v)
        except ValueError:
            return None

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    def w(phase, k):
        return json.loads(r.get(f"{phase}_window", "{}")).get(k)

    def lat(phase, k):
        return num(f"{phase}_{k}")

    mb = lambda kb: None if kb is None else kb / 1024  # noqa: E731
    print(f"\npersist_snapshot: {n} users, {r['duration']} s per phase, {r['cores']} cores, "
          f"api.threads {r.get('threads', 'default')}, wrk -t1 -c{r['conns']}")
    print(f"heartbeatd {r.get('binary', '?')}; the tree at {r.get('commit', '?')} "
          f"({r.get('dirty', '?')} files modified)")
    print(f"load: {fmt(num('load_s'), '.1f')} s ({fmt(num('load_rate'), ',.0f')} users/s, "
          f"batches of {r['batch']})")
    bi = r.get("b_interval", "100ms")
    print(f"\nsingle heartbeats                  (a) off  {'(b) ' + bi:>12}    (a2) off   b/a")
    for label, k, spec in (("requests/s", "rps", ",.0f"), ("p50 ms", "p50", ".3f"),
                           ("p90 ms", "p90", ".3f"), ("p99 ms", "p99", ".3f"),
                           ("p99.9 ms", "p999", ".3f"), ("max ms", "max", ".1f")):
        a, b, a2 = lat("a", k), lat("b", k), lat("a2", k)
        ratio = f"{b / a:.2f}" if a and b else "-"
        print(f"  {label:<32}{fmt(a, spec):>9} {fmt(b, spec):>12} {fmt(a2, spec):>11} {ratio:>5}")
    print(f"  {'snapshots completed (health)':<32}{w('a', 'snapshots'):>9} "
          f"{w('b', 'snapshots'):>12} {w('a2', 'snapshots'):>11}")
    print(f"  {'snapshots written (debug log)':<32}{fmt(w('a', 'log_snapshots'), 'd'):>9} "
          f"{fmt(w('b', 'log_snapshots'), 'd'):>12} {fmt(w('a2', 'log_snapshots'), 'd'):>11}")
    cov = [w(p, "covered") for p in ("a", "b", "a2")]
    print(f"  {'window covered by a snapshot':<32}{cov[0]:>9.0%} {cov[1]:>12.0%} {cov[2]:>11.0%}")
    print(f"  {'non-2xx / socket errors':<32}{r.get('a_err', '-'):>9} {r.get('b_err', '-'):>12} "
          f"{r.get('a2_err', '-'):>11}")

    print("\nsnapshots at", n, "users")
    print(f"  duration, idle (ms)              {r.get('idle_durations', '-')}")
    print(f"  duration, during (b) (ms)        min {fmt(w('b', 'dur_min'), '.0f')} / median "
          f"{fmt(w('b', 'dur_med'), '.0f')} / max {fmt(w('b', 'dur_max'), '.0f')}")
    print(f"  duration, final on SIGTERM (ms)  {r.get('final_snapshot_ms', '-')}")
    print(f"  SIGHUP off->{bi}: first start".ljust(35) + f"{fmt(num('hup_to_first_s'), '.2f')} s "
          f"(interval was {r['off']}; the first snapshot started at the old deadline if > 0.1 s)")
    sb = num("snap_bytes")
    print(f"  snapshot bytes                   {fmt(sb, ',.0f')} ({fmt(sb / n if sb else None, '.2f')} B/user)")
    for label, k in (("disk_bytes (health), during (b)", None),
                     ("du -sb db, after (b)+(a2)", "du_after_b"),
                     ("du -sb db, after SIGTERM", "du_after_stop"),
                     ("du -sb db, after 2 restarts", "du_final")):
        if k is None:
            lo, hi = w("b", "disk_min"), w("b", "disk_max")
            print(f"  {label:<33}{fmt(lo, ',.0f')} .. {fmt(hi, ',.0f')} "
                  f"({fmt(lo / n if lo else None, '.2f')} .. {fmt(hi / n if hi else None, '.2f')} B/user)")
        else:
            v = num(k)
            print(f"  {label:<33}{fmt(v, ',.0f')} ({fmt(v / n if v else None, '.2f')} B/user)")

    print("\nrestart with", n, "users                   stop s   API answers s   tracked s   tracked   restore (log) ms")
    print(f"  SIGTERM (final snapshot), start   {fmt(num('stop1_s'), '>6.2f')}   "
          f"{fmt(num('start2_api_s'), '>13.2f')}   {fmt(num('start2_tracked_s'), '>9.2f')}   "
          f"{r.get('start2_tracked', '-'):>7}   {r.get('start2_restore_ms', '-'):>16}")
    print(f"  kill -9 ({r.get('kill_state', '?')}), start   {'0 (kill)':>8}   "
          f"{fmt(num('start3_api_s'), '>13.2f')}   {fmt(num('start3_tracked_s'), '>9.2f')}   "
          f"{r.get('start3_tracked', '-'):>7}   {r.get('start3_restore_ms', '-'):>16}")
    print(f"  SIGTERM after that restart        {fmt(num('stop3_s'), '>6.2f')}   "
          f"(final snapshot {r.get('final3_snapshot_ms', '-')} ms)")

    print("\nRSS (MB)                                    VmRSS      VmHWM")
    rows = (("empty, before loading", "rss_empty", None),
            ("after loading (5 s snapshots meanwhile)", "rss_loaded", "hwm_loaded"),
            ("after an idle snapshot at N, before (a)", "rss_pre_a", None),
            ("phase (a), snapshots off (max / HWM)", "rss_a_max", "hwm_a"),
            ("phase (b), back-to-back (max / HWM)", "rss_b_max", "hwm_b"),
            ("after restore (no snapshot yet)", "rss_restored", "hwm_restored"))
    for label, k1, k2 in rows:
        print(f"  {label:<40}{fmt(mb(num(k1)), '>9.1f')}  {fmt(mb(num(k2)) if k2 else None, '>9.1f')}")
    print(f"  (HWM reset with /proc/PID/clear_refs before (a) and before (b))")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {"free": cmd_free, "load": cmd_load, "monitor": cmd_monitor, "field": cmd_field,
          "wait-snap": cmd_wait_snap, "wait-api": cmd_wait_api, "window": cmd_window,
          "summary": cmd_summary}[cmd]
    fn(*args)


if __name__ == "__main__":
    main()
