#!/usr/bin/env python3
"""Summarises the reports of scripts/bench.sh: the median of each metric
over the runs of a scenario (files NAME.RUN.json), one markdown table per
kind of scenario, and the mesero/Mosquitto ratios of the broker rows.

    python3 scripts/bench-summary.py target/bench/results
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def worst(r, key):
    """The worse of the SSE and WebSocket latencies that have samples."""
    vals = [r["latency"][k][key] for k in ("sse", "ws") if r["latency"][k]["count"] > 0]
    return max(vals) if vals else None


def streams_row(runs):
    d = [r["daemon"] for r in runs]
    mb = lambda v: None if v is None else v / 1024
    return {
        "p50 ms": median(worst(r, "p50_ms") for r in runs),
        "p99 ms": median(worst(r, "p99_ms") for r in runs),
        "p99.9 ms": median(worst(r, "p999_ms") for r in runs),
        "max ms": median(worst(r, "max_ms") for r in runs),
        "changes/s": median(r["changes"]["achieved_per_s"] for r in runs),
        "lost": max(r["correctness"]["lost"] for r in runs),
        "dup": max(r["correctness"]["duplicated"] for r in runs),
        "cores": median(x["cpu_cores"] for x in d),
        "RSS idle MB": median(mb(x["rss_idle_kib"]) for x in d),
        "RSS end MB": median(mb(x["rss_end_kib"]) for x in d),
        "KiB/client": median(x["rss_per_client_kib_end"] for x in d),
        "connects/s": median(r["clients"]["connects_per_s"] for r in runs),
        "load": median(r.get("load_1min") for r in runs),
    }


def ingest_row(runs):
    row = streams_row(runs)
    return {
        "readings/s": median(r["readings"]["achieved_per_s"] for r in runs),
        "events/s": median(r["writer"]["events_per_s"] for r in runs),
        "commits/s": median(r["writer"]["commits_per_s"] for r in runs),
        "fsyncs/s": median(r["writer"]["fsyncs_per_s"] for r in runs),
        "lost": row["lost"],
        "dup": row["dup"],
        "cores": row["cores"],
        "RSS end MB": row["RSS end MB"],
        "load": row["load"],
    }


def mqtt_row(runs):
    return {
        "delivered/s": median(r["delivered_per_s"] for r in runs),
        "lost share": median(r["lost_share"] for r in runs),
        "p50 ms": median(r["latency"]["p50_ms"] for r in runs),
        "p99 ms": median(r["latency"]["p99_ms"] for r in runs),
        "CPU s": median(r["broker_cpu_s"] for r in runs),
        "RSS end MB": median(None if r["rss_end_kib"] is None else r["rss_end_kib"] / 1024 for r in runs),
        "load": median(r.get("load_1min") for r in runs),
    }


def table(title, rows):
    if not rows:
        return
    cols = list(next(iter(rows.values())).keys())
    print(f"\n### {title}\n")
    print("| scenario | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(fmt(row[c]) for c in cols) + " |")


def main():
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "target/bench/results")
    groups = defaultdict(list)
    for path in sorted(results.glob("*.json")):
        name = path.stem.rsplit(".", 1)[0]
        with open(path) as f:
            groups[name].append(json.load(f))
    streams, ingest, mqtt, crash = {}, {}, {}, {}
    for name, runs in groups.items():
        kind = runs[0]["scenario"]
        if kind == "streams":
            streams[name] = streams_row(runs)
        elif kind == "ingest":
            ingest[name] = ingest_row(runs)
        elif kind == "mqtt":
            mqtt[name] = mqtt_row(runs)
        elif kind == "crash-loop":
            r = runs[0]
            crash[name] = {"ok": r["ok"], "rounds": r["rounds"], "integrity ok": r["integrity_ok"],
                           "failures": r["failures"], "restart s (median)": r["restart_s"]["median"],
                           "HTTP acked": r["http_changes"]["acked"], "MQTT sets acked": r["mqtt_sets_acked"],
                           "events": r["events"], "seconds": r["seconds"]}
    print(f"# mesero-bench summary ({results})")
    table("Streams (median of runs; latency: the worse of SSE and WebSocket)", streams)
    stalled = {k: v for k, v in streams.items() if k.startswith("stalled")}
    if "stalled0" in stalled:
        base = stalled["stalled0"]
        ratios = {}
        for k in ("stalled1", "stalled100"):
            if k in stalled and base["p99 ms"]:
                ratios[k] = {"p99 / p99 without": stalled[k]["p99 ms"] / base["p99 ms"],
                             "RSS growth MB": None if stalled[k]["RSS end MB"] is None or stalled[k]["RSS idle MB"] is None
                             else stalled[k]["RSS end MB"] - stalled[k]["RSS idle MB"]}
        table("Stalled clients vs none", ratios)
    table("Ingest", ingest)
    table("MQTT brokers", mqtt)
    ratios = {}
    for name, row in mqtt.items():
        if name.endswith(".mesero"):
            other = name[: -len("mesero")] + "mosquitto"
            if other in mqtt:
                o = mqtt[other]
                ratio = lambda k: None if not o[k] or row[k] is None else row[k] / o[k]
                ratios[name[: -len(".mesero")]] = {
                    "delivered/s": ratio("delivered/s"), "p99": ratio("p99 ms"),
                    "CPU": ratio("CPU s"), "RSS": ratio("RSS end MB")}
    table("mesero / Mosquitto ratios (delivered: higher is better; the rest: lower)", ratios)
    table("Crash loop", crash)


if __name__ == "__main__":
    main()
