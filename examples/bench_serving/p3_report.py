#!/usr/bin/env python3
"""P3 table: tug-infsrv against azmlinfsrv per cell, with the goals' ratios.

usage: p3_report.py --model-dir DIR --harness HARNESS results.jsonl ...

Per (server, payload, conns) the median req/s over passes. The digits ceiling is what
the script itself allows: its run() cost is measured in-process here (init() once, then
run(body) in a loop, CPU time per call), and the ceiling is the CPU left after wrk in
that cell (2 cores − wrk's cores) divided by that cost.
"""
import argparse
import importlib.util
import json
import os
import statistics
import time


def run_cost_us(script, body, model_dir, n=20000):
    os.environ["AZUREML_MODEL_DIR"] = model_dir
    spec = importlib.util.spec_from_file_location("scoring", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.init()
    for _ in range(500):
        mod.run(body)
    t0 = time.process_time()
    for _ in range(n):
        mod.run(body)
    return (time.process_time() - t0) / n * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--harness", required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    rows = {}
    for path in a.files:
        for line in open(path):
            rec = json.loads(line)
            if "error" in rec:
                continue
            rows.setdefault((rec["name"], rec["conns"]), []).append(rec)

    def med(name, conns, key="rps"):
        recs = rows.get((name, conns), [])
        return statistics.median(r[key] for r in recs) if recs else None

    body = open(os.path.join(a.harness, "bodies", "digits.json")).read()
    cost = run_cost_us(os.path.join(a.harness, "scoring", "digits.py"), body, a.model_dir)
    print(f"digits.py run() in-process: {cost:.1f} µs CPU per call\n")
    print("| payload | conns | azmlinfsrv req/s (p99 ms) | tug req/s (p99 ms) | tug/azml | p99 tug/azml | tug conn-close req/s (p99 ms) | ceiling req/s | tug/ceiling |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for payload in ("echo", "digits"):
        for conns in (1, 8, 64):
            az, tu = med(f"azml-{payload}-w2", conns), med(f"tug-{payload}-w2", conns)
            azp, tup = med(f"azml-{payload}-w2", conns, "p99_ms"), med(f"tug-{payload}-w2", conns, "p99_ms")
            cc, ccp = med(f"tug-{payload}-w2-close", conns), med(f"tug-{payload}-w2-close", conns, "p99_ms")
            ceiling = ratio_c = ""
            if payload == "digits" and tu:
                wrk = med(f"tug-{payload}-w2", conns, "wrk_cpu_cores") or 0
                c = (2 - wrk) * 1e6 / cost
                ceiling, ratio_c = f"{c:.0f}", f"{tu / c:.0%}"
            fmt = lambda r, p: f"{r:.0f} ({p:.1f})" if r else "-"
            print(f"| {payload} | {conns} | {fmt(az, azp)} | {fmt(tu, tup)} | "
                  f"{(tu / az) if az and tu else 0:.2f}× | {(tup / azp) if azp and tup else 0:.2f} | "
                  f"{fmt(cc, ccp)} | {ceiling} | {ratio_c} |")


if __name__ == "__main__":
    main()
