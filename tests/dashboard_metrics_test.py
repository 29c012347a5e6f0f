#!/usr/bin/env python3
"""The example dashboard and alerts use only metrics heartbeatd exports.

Every metric name in examples/grafana/heartbeatd.json's queries and in
examples/prometheus/alerts.yaml (and the series its unit tests feed in) must be a family
of docs/API.md's metric table (a histogram's _bucket, _sum and _count included), or
Prometheus' own `up`. metrics_test checks the other half: every family a live daemon
exports is in that table. With promtool installed, every dashboard query must also parse as
PromQL (Grafana's variables replaced by plain values).

Usage: dashboard_metrics_test.py SOURCE_DIR   (standard library only)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

NAME = re.compile(r"\b(?:heartbeatd|process)_[a-zA-Z0-9_]+")


def documented(api_md):
    names = {}
    in_metrics = False
    for line in open(api_md, encoding="utf-8"):
        if line.startswith("## "):
            in_metrics = line.strip() == "## Metrics"
        m = re.match(r"\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \| (\w+) \|", line)
        if in_metrics and m:
            names[m.group(1)] = m.group(2)
    known = {"up"}
    for name, kind in names.items():
        known.add(name)
        if kind == "histogram":
            known.update(name + s for s in ("_bucket", "_sum", "_count"))
    return names, known


def dashboard_queries(dash):
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))

    walk(dash.get("panels", []))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            out.append(("variable " + v["name"], q["query"]))
    return out


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.getcwd()
    families, known = documented(os.path.join(src, "docs", "API.md"))
    errors = []
    if len(families) < 40:
        errors.append(f"docs/API.md: only {len(families)} metrics found in the Metrics table")

    with open(os.path.join(src, "examples", "grafana", "heartbeatd.json"), encoding="utf-8") as f:
        dash = json.load(f)
    queries = dashboard_queries(dash)
    if not queries:
        errors.append("heartbeatd.json: no queries found")
    for where, expr in queries:
        names = NAME.findall(expr)
        if not names and "up" not in expr:
            errors.append(f"heartbeatd.json, {where}: no heartbeatd metric in {expr!r}")
        for n in names:
            if n not in known:
                errors.append(f"heartbeatd.json, {where}: {n} is not in docs/API.md's metric table")

    for rel in ("alerts.yaml", "alerts_test.yaml"):
        path = os.path.join(src, "examples", "prometheus", rel)
        for lineno, line in enumerate(open(path, encoding="utf-8"), 1):
            for n in NAME.findall(line):
                if n not in known:
                    errors.append(f"{rel}:{lineno}: {n} is not in docs/API.md's metric table")

    # The queries parse: as recording rules, with Grafana's variables filled in.
    if subprocess.run(["sh", "-c", "command -v promtool"], capture_output=True).returncode == 0:
        with tempfile.TemporaryDirectory() as tmp:
            rules = os.path.join(tmp, "dashboard_rules.yaml")
            with open(rules, "w", encoding="utf-8") as f:
                f.write("groups:\n  - name: dashboard\n    rules:\n")
                for i, (_, expr) in enumerate(queries):
                    expr = (expr.replace("$__rate_interval", "5m")
                            .replace("$job", ".*").replace("$instance", ".*"))
                    if expr.startswith("label_values("):
                        continue  # Grafana's, not PromQL
                    f.write(f"      - record: dashboard:query{i}\n        expr: {json.dumps(expr)}\n")
            r = subprocess.run(["promtool", "check", "rules", rules], capture_output=True, text=True)
            if r.returncode != 0:
                errors.append("promtool cannot parse the dashboard's queries:\n" + r.stdout + r.stderr)

    for e in errors:
        print(e)
    print(f"{len(queries)} dashboard queries, alerts.yaml and its tests checked against "
          f"{len(families)} documented metrics: {'FAILED' if errors else 'ok'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
