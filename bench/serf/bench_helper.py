#!/usr/bin/env python3
"""Helper for bench/membership_vs_serf (standard library only).

  free BASE COUNT                 exit 0 if 127.0.0.1:BASE..BASE+COUNT-1 are free (TCP and UDP)
  snap PID...                     one JSON line: wall time, CPU ticks of the PIDs, RSS,
                                  /proc/net/snmp UDP/TCP counters, /proc/stat jiffies
  hb-wait SECONDS N PORT...       until every heartbeatd API at PORT lists N alive members
  serf-wait SECONDS N SERF RPC... until every Serf agent (RPC port) lists N alive members
  wait-detect SYSTEM SECONDS VICTIM PHASE_DIR
                                  until every survivor has logged VICTIM dead/failed
                                  (Serf: and its member-failed handler has run) since the
                                  offsets recorded in PHASE_DIR/offsets
  offsets PHASE_DIR               record the current size of every log/event file
  analyze PHASE_DIR               detection times, CPU, datagrams, false positives -> JSON
  summary RESULTS.jsonl           markdown tables of every analysed phase
"""
import datetime
import glob
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- ports
def cmd_free(base, count):
    for port in range(int(base), int(base) + int(count)):
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(socket.AF_INET, kind)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return 1
            finally:
                s.close()
    return 0


# ---------------------------------------------------------------------------- snapshots
def snmp():
    out = {}
    with open("/proc/net/snmp") as f:
        lines = f.read().splitlines()
    for head, vals in zip(lines[0::2], lines[1::2]):
        proto = head.split(":")[0]
        if proto not in ("Udp", "Tcp"):
            continue
        for k, v in zip(head.split()[1:], vals.split()[1:]):
            out[proto + "." + k] = int(v)
    return out


def proc_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        with open(f"/proc/{pid}/status") as f:
            rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
    except OSError:
        return None
    fields = data[data.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return int(fields[11]) + int(fields[12]), rss


def cmd_snap(*pids):
    ticks = rss = missing = 0
    for pid in pids:
        r = proc_ticks(pid)
        if r is None:
            missing += 1
            continue
        ticks += r[0]
        rss += r[1]
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    snap = {"t": time.time(), "ticks": ticks, "rss_kb": rss, "pids": len(pids),
            "missing": missing, "cpu_total": sum(cpu[:8]), "cpu_idle": cpu[3] + cpu[4],
            "load1": load}
    snap.update(snmp())
    print(json.dumps(snap))
    return 0


# ---------------------------------------------------------------------------- convergence
def cmd_hb_wait(seconds, n, *ports):
    deadline = time.time() + float(seconds)
    n = int(n)
    pending = list(ports)
    seen = {}
    while True:
        still = []
        for port in pending:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/members", timeout=2) as r:
                    members = json.load(r)["members"]
                alive = sum(1 for m in members if m["state"] == "alive")
            except Exception:
                alive = -1
            seen[port] = alive
            if alive != n:
                still.append(port)
        if not still:
            # one more pass over everyone: nobody may have regressed meanwhile
            if pending == list(ports):
                return 0
            pending = list(ports)
            continue
        pending = still
        if time.time() > deadline:
            print("not converged: " + ", ".join(f"api {p} sees {seen[p]} alive" for p in pending),
                  file=sys.stderr)
            return 1
        time.sleep(0.5)


def cmd_serf_wait(seconds, n, serf, *rpcs):
    deadline = time.time() + float(seconds)
    n = int(n)
    pending = list(rpcs)
    seen = {}
    while True:
        still = []
        for rpc in pending:
            try:
                out = subprocess.run([serf, "members", f"-rpc-addr=127.0.0.1:{rpc}", "-status=alive"],
                                     capture_output=True, text=True, timeout=10).stdout
                alive = sum(1 for l in out.splitlines() if l.strip())
            except Exception:
                alive = -1
            seen[rpc] = alive
            if alive != n:
                still.append(rpc)
        if not still:
            if pending == list(rpcs):
                return 0
            pending = list(rpcs)
            continue
        pending = still
        if time.time() > deadline:
            print("not converged: " + ", ".join(f"rpc {p} sees {seen[p]} alive" for p in pending),
                  file=sys.stderr)
            return 1
        time.sleep(0.5)


# ---------------------------------------------------------------------------- log parsing
HB_RE = re.compile(r"^(\S+Z) \w+: cluster: member (\S+) is (suspect|dead)\b")
SERF_FAILED_RE = re.compile(r"^(\d+\.\d+) .*\[INFO\] serf: EventMemberFailed: (\S+)")
SERF_SUSPECT_RE = re.compile(r"^(\d+\.\d+) .*memberlist: Suspect (\S+) has failed")


def hb_time(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def node_files(phase, sub, ext):
    return {os.path.basename(p)[:-len(ext)]: p
            for p in glob.glob(os.path.join(phase, sub, "*" + ext))}


def parse_events(system, path, reporter, offset=0):
    """[(t, kind, reporter, subject, line)]; kind: suspect, dead, handler."""
    events = []
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return events
    for line in data.splitlines():
        if path.endswith(".events"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "member-failed":
                events.append((int(parts[0]) / 1e9, "handler", parts[2], parts[3], line))
            continue
        if system == "heartbeatd":
            m = HB_RE.match(line)
            if m:
                events.append((hb_time(m.group(1)), m.group(3), reporter, m.group(2), line))
        else:
            m = SERF_FAILED_RE.match(line)
            if m:
                events.append((float(m.group(1)), "dead", reporter, m.group(2), line))
                continue
            m = SERF_SUSPECT_RE.match(line)
            if m:
                events.append((float(m.group(1)), "suspect", reporter, m.group(2), line))
    return events


def all_files(phase):
    files = [(name, p) for name, p in node_files(phase, "logs", ".log").items()]
    files += [(name, p) for name, p in node_files(phase, "events", ".events").items()]
    return files


def cmd_offsets(phase):
    with open(os.path.join(phase, "offsets"), "w") as out:
        for name, p in all_files(phase):
            out.write(f"{p}\t{os.path.getsize(p)}\n")
    return 0


def cmd_wait_detect(system, seconds, victim, phase):
    deadline = time.time() + float(seconds)
    offsets = {}
    with open(os.path.join(phase, "offsets")) as f:
        for line in f:
            p, off = line.rstrip("\n").split("\t")
            offsets[p] = int(off)
    logs = node_files(phase, "logs", ".log")
    survivors = sorted(n for n in logs if n != victim)
    events_dir = os.path.join(phase, "events")
    while True:
        logged, handled = set(), set()
        for name in survivors:
            p = logs[name]
            if any(k == "dead" and s == victim
                   for _, k, _, s, _ in parse_events(system, p, name, offsets.get(p, 0))):
                logged.add(name)
            if system == "serf":
                p = os.path.join(events_dir, name + ".events")
                if any(s == victim for *_, s, _ in parse_events(system, p, name, offsets.get(p, 0))):
                    handled.add(name)
        done = len(logged) == len(survivors) and (system != "serf" or len(handled) == len(survivors))
        if done:
            return 0
        if time.time() > deadline:
            print(f"  detection incomplete after {seconds}s: {len(logged)}/{len(survivors)} logged"
                  + (f", {len(handled)}/{len(survivors)} handlers" if system == "serf" else ""),
                  file=sys.stderr)
            return 1
        time.sleep(0.25)


# ---------------------------------------------------------------------------- analysis
def load_kv(path):
    kv = {}
    with open(path) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                kv[k] = v
    return kv


def ms(x):
    return None if x is None else round(x * 1000)


def cmd_analyze(phase):
    info = load_kv(os.path.join(phase, "info"))
    system, n = info["system"], int(info["n"])
    snaps = {}
    for key in ("base0", "base1", "steady0", "steady1"):
        p = os.path.join(phase, key + ".json")
        if os.path.exists(p):
            with open(p) as f:
                snaps[key] = json.load(f)
    trials = []
    tp = os.path.join(phase, "trials.tsv")
    if os.path.exists(tp):
        with open(tp) as f:
            for line in f:
                idx, victim, t_kill, t_restart, t_rejoined = line.split()
                trials.append({"trial": int(idx), "victim": victim, "t_kill": float(t_kill),
                               "t_restart": float(t_restart),
                               "t_rejoined": float(t_rejoined) if t_rejoined != "-" else None})
    events = []
    for name, p in all_files(phase):
        events += parse_events(system, p, name)
    events.sort()
    nodes = sorted(node_files(phase, "logs", ".log"))
    t_end = float(info.get("t_end", time.time()))

    res = {"system": system, "n": n, "phase": phase, "steady_s": None,
           "encrypt": info.get("encrypt") == "1"}
    # --- baseline and steady state
    if "base0" in snaps and "base1" in snaps:
        b0, b1 = snaps["base0"], snaps["base1"]
        bw = b1["t"] - b0["t"]
        res["baseline_udp_out_per_s"] = (b1["Udp.OutDatagrams"] - b0["Udp.OutDatagrams"]) / bw
        res["baseline_udp_in_per_s"] = (b1["Udp.InDatagrams"] - b0["Udp.InDatagrams"]) / bw
        res["baseline_tcp_out_per_s"] = (b1["Tcp.OutSegs"] - b0["Tcp.OutSegs"]) / bw
    else:
        res["baseline_udp_out_per_s"] = res["baseline_udp_in_per_s"] = res["baseline_tcp_out_per_s"] = 0.0
    if "steady0" in snaps and "steady1" in snaps:
        s0, s1 = snaps["steady0"], snaps["steady1"]
        w = s1["t"] - s0["t"]
        res["steady_s"] = round(w, 1)
        res["missing_pids"] = s1["missing"]
        res["cpu_pct_per_node"] = (s1["ticks"] - s0["ticks"]) / CLK_TCK / n / w * 100
        res["udp_out_per_node_s"] = ((s1["Udp.OutDatagrams"] - s0["Udp.OutDatagrams"]) / w
                                     - res["baseline_udp_out_per_s"]) / n
        res["udp_in_per_node_s"] = ((s1["Udp.InDatagrams"] - s0["Udp.InDatagrams"]) / w
                                    - res["baseline_udp_in_per_s"]) / n
        res["udp_rcvbuf_errors"] = s1["Udp.RcvbufErrors"] - s0["Udp.RcvbufErrors"]
        res["tcp_out_per_node_s"] = ((s1["Tcp.OutSegs"] - s0["Tcp.OutSegs"]) / w
                                     - res["baseline_tcp_out_per_s"]) / n
        res["rss_mb_per_node"] = s1["rss_kb"] / 1024 / n
        tot = s1["cpu_total"] - s0["cpu_total"]
        res["machine_busy_pct"] = 100 * (1 - (s1["cpu_idle"] - s0["cpu_idle"]) / tot) if tot else None
        res["load1"] = [s0["load1"], s1["load1"]]
        st0, st1 = s0["t"], s1["t"]
    else:
        st0 = st1 = None

    # --- false positives: steady window, and trial windows (anything not about the victim,
    # or about the victim after it was seen alive again everywhere)
    fp_steady, fp_trials, startup = [], [], []
    windows = []
    for i, tr in enumerate(trials):
        end = trials[i + 1]["t_kill"] if i + 1 < len(trials) else t_end
        windows.append((tr["t_kill"], end, tr))
    for ev in events:
        t, kind, reporter, subject, line = ev
        if st0 is not None and st0 <= t <= st1:
            fp_steady.append(ev)
            continue
        if t < (st0 if st0 is not None else (trials[0]["t_kill"] if trials else t_end)):
            startup.append(ev)
            continue
        w = next((w for w in windows if w[0] <= t < w[1]), None)
        if w is None:
            if t < t_end:
                fp_trials.append(ev)  # between the steady window and the first kill
            continue  # after t_end: shutdown
        tr = w[2]
        if subject != tr["victim"] or (tr["t_rejoined"] is not None and t > tr["t_rejoined"]):
            fp_trials.append(ev)

    def count(evs, kind):
        return sum(1 for e in evs if e[1] == kind)

    res["fp_steady_dead"] = count(fp_steady, "dead")
    res["fp_steady_suspect"] = count(fp_steady, "suspect")
    res["fp_steady_handler"] = count(fp_steady, "handler")
    res["fp_trials_dead"] = count(fp_trials, "dead")
    res["fp_trials_suspect"] = count(fp_trials, "suspect")
    res["fp_trials_handler"] = count(fp_trials, "handler")
    res["startup_suspect"] = count(startup, "suspect")
    res["startup_dead"] = count(startup, "dead")
    res["fp_lines"] = [f"{e[2]}: {e[4]}" for e in (fp_steady + fp_trials)][:40]
    res["startup_lines"] = [f"{e[2]}: {e[4]}" for e in startup][:20]

    # --- detection per trial
    out_trials = []
    for start, end, tr in windows:
        survivors = [x for x in nodes if x != tr["victim"]]
        per = {}
        for kind in ("dead", "handler", "suspect"):
            first_by = {}
            for t, k, reporter, subject, _ in events:
                if k == kind and subject == tr["victim"] and start <= t < end and reporter != tr["victim"]:
                    first_by.setdefault(reporter, t)
            got = [first_by[x] - tr["t_kill"] for x in survivors if x in first_by]
            per[kind] = {"reported": len(got), "first": min(got) if got else None,
                         "last": max(got) if len(got) == len(survivors) else None}
        out_trials.append({"trial": tr["trial"], "victim": tr["victim"], "survivors": len(survivors),
                           "first_ms": ms(per["dead"]["first"]), "last_ms": ms(per["dead"]["last"]),
                           "reported": per["dead"]["reported"],
                           "first_suspect_ms": ms(per["suspect"]["first"]),
                           "handler_first_ms": ms(per["handler"]["first"]),
                           "handler_last_ms": ms(per["handler"]["last"]),
                           "handler_reported": per["handler"]["reported"],
                           "rejoin_s": None if tr["t_rejoined"] is None
                           else round(tr["t_rejoined"] - tr["t_restart"], 1)})
    res["trials"] = out_trials

    def stat(key, f):
        vals = [t[key] for t in out_trials if t[key] is not None]
        return f(vals) if vals and len(vals) == len(out_trials) else None

    res["td_median_ms"] = stat("last_ms", statistics.median)
    res["td_max_ms"] = stat("last_ms", max)
    res["first_median_ms"] = stat("first_ms", statistics.median)
    res["handler_td_median_ms"] = stat("handler_last_ms", statistics.median)
    res["handler_td_max_ms"] = stat("handler_last_ms", max)
    res["incomplete_trials"] = sum(1 for t in out_trials if t["last_ms"] is None)
    print(json.dumps(res))
    return 0


def fmt(x, nd=0):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def cmd_summary(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    print("| system | N | trials | T_D median (ms) | T_D max (ms) | first detection median (ms) "
          "| CPU per node (% of a core) | UDP datagrams out / in per node per s | TCP segs out per node per s "
          "| RSS per node (MB) | false positives steady: dead / suspect | false positives in trials: dead / suspect "
          "| steady (s) | machine busy (%) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        trials = len(r["trials"])
        if r["incomplete_trials"]:
            trials = f"{trials} ({r['incomplete_trials']} incomplete)"
        td_med = fmt(r["td_median_ms"])
        td_max = fmt(r["td_max_ms"])
        if r["system"] == "serf" and r.get("handler_td_median_ms") is not None:
            td_med += f" (handler {fmt(r['handler_td_median_ms'])})"
            td_max += f" (handler {fmt(r['handler_td_max_ms'])})"
        label = r["system"] + (" (encrypted)" if r.get("encrypt") else "")
        print(f"| {label} | {r['n']} | {trials} | {td_med} | {td_max} | {fmt(r['first_median_ms'])} "
              f"| {fmt(r.get('cpu_pct_per_node'), 2)} "
              f"| {fmt(r.get('udp_out_per_node_s'), 1)} / {fmt(r.get('udp_in_per_node_s'), 1)} "
              f"| {fmt(r.get('tcp_out_per_node_s'), 2)} | {fmt(r.get('rss_mb_per_node'), 1)} "
              f"| {r['fp_steady_dead']} / {r['fp_steady_suspect']} "
              f"| {r['fp_trials_dead']} / {r['fp_trials_suspect']} "
              f"| {fmt(r['steady_s'])} | {fmt(r.get('machine_busy_pct'), 0)} |")
    by = {(r["system"], r["n"]): r for r in rows}
    ns = sorted({r["n"] for r in rows})
    lines = []
    for n in ns:
        hb, sf = by.get(("heartbeatd", n)), by.get(("serf", n))
        if not hb or not sf:
            continue

        def ratio(key):
            a, b = hb.get(key), sf.get(key)
            return f"{a / b:.3f}" if a is not None and b else "–"
        lines.append(f"| {n} | {ratio('td_median_ms')} | {ratio('td_max_ms')} | {ratio('cpu_pct_per_node')} "
                     f"| {ratio('udp_out_per_node_s')} |")
    if lines:
        print()
        print("| N | heartbeatd/serf T_D median | T_D max | CPU per node | datagrams out per node |")
        print("|---:|---:|---:|---:|---:|")
        print("\n".join(lines))
    print()
    print("Trials (ms after kill -9; last = the last survivor to report the victim dead/failed):")
    print()
    print("| system | N | trial | victim | first suspect | first dead | last dead | reported "
          "| serf handler first / last | rejoin (s) |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        for t in r["trials"]:
            h = (f"{fmt(t['handler_first_ms'])} / {fmt(t['handler_last_ms'])}"
                 if r["system"] == "serf" else "")
            print(f"| {r['system']} | {r['n']} | {t['trial']} | {t['victim']} | {fmt(t['first_suspect_ms'])} "
                  f"| {fmt(t['first_ms'])} | {fmt(t['last_ms'])} | {t['reported']}/{t['survivors']} "
                  f"| {h} | {fmt(t['rejoin_s'], 1)} |")
    for r in rows:
        if r["fp_lines"]:
            print(f"\nFalse-positive events, {r['system']} N={r['n']} (reporter: log line):")
            for l in r["fp_lines"]:
                print("    " + l)
        if r["startup_lines"]:
            print(f"\nSuspicions/failures during start-up (not counted), {r['system']} N={r['n']}:")
            for l in r["startup_lines"]:
                print("    " + l)
    return 0


def main(argv):
    cmds = {"free": cmd_free, "snap": cmd_snap, "hb-wait": cmd_hb_wait, "serf-wait": cmd_serf_wait,
            "offsets": cmd_offsets, "wait-detect": cmd_wait_detect, "analyze": cmd_analyze,
            "summary": cmd_summary}
    if len(argv) < 2 or argv[1] not in cmds:
        print(__doc__, file=sys.stderr)
        return 2
    return cmds[argv[1]](*argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
