#!/usr/bin/env python3
"""P3 table: tug-infsrv against azmlinfsrv per cell, with the goals' ratios.

usage: p3_report.py --model-dir DIR --harness HARNESS results.jsonl ...

Per (server, payload, conns) the median req/s over passes. The digits ceiling is what the
script itself allows, measured in the same pass as tug's cells (`ceiling_probe.py`: two
processes, like the two workers, each calling run(body) in-process in a loop at the same
time): their calls per second together, scaled to the CPU wrk leaves in that cell
(× (2 − wrk cores) / 2). tug/ceiling is the median over passes of each pass's ratio.
When no probe is recorded (older results), the cost of run() in one process measured at
report time stands in: 2 cores minus wrk's, divided by that cost.
"""
import argparse
import json
import os
import statistics

from ceiling_probe import call_cost_us, load  # this folder is on sys.path when run as a script


def run_cost_us(script, body, model_dir, n=20000):
    return call_cost_us(load(script, model_dir, body, warmup=500), body, n)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--harness", required=True)
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    rows = {}
    probes = {}
    paired = {}
    for path in a.files:
        for line in open(path):
            rec = json.loads(line)
            if "error" in rec:
                continue
            if rec["name"] == "ceiling-digits":
                probes[path] = rec  # one pass per results file
                continue
            if rec["name"].startswith("paired-"):
                body = rec.get("body", "digits.json")
                paired.setdefault((rec["name"], body, rec["conns"]), []).append(rec)
                continue
            rec["_file"] = path
            rows.setdefault((rec["name"], rec["conns"]), []).append(rec)

    def med(name, conns, key="rps"):
        recs = rows.get((name, conns), [])
        return statistics.median(r[key] for r in recs) if recs else None

    body = open(os.path.join(a.harness, "bodies", "digits.json")).read()
    cost = run_cost_us(os.path.join(a.harness, "scoring", "digits.py"), body, a.model_dir)
    print(f"digits.py run() in one process now: {cost:.1f} µs CPU per call")
    for path, rec in sorted(probes.items()):
        print(f"pass {rec['pass']}: two processes calling run() together: {rec['rps']:.0f} calls/s, "
              f"{rec['cost_us']:.1f} µs CPU per call")
    print()

    def ceiling_ratio(conns):
        """Median over passes of tug's req/s over that pass's ceiling (and the ceilings)."""
        ratios, ceilings = [], []
        for rec in rows.get(("tug-digits-w2", conns), []):
            probe = probes.get(rec["_file"])
            if probe is None:
                continue
            c = probe["rps"] * (2 - (rec.get("wrk_cpu_cores") or 0)) / 2
            ratios.append(rec["rps"] / c)
            ceilings.append(c)
        if not ratios:
            return None
        return statistics.median(ceilings), statistics.median(ratios)
    print("| payload | conns | azmlinfsrv req/s (p99 ms) | tug req/s (p99 ms) | tug/azml | p99 tug/azml | tug conn-close req/s (p99 ms) | ceiling req/s | tug/ceiling |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for payload in ("echo", "digits"):
        for conns in (1, 8, 64):
            az, tu = med(f"azml-{payload}-w2", conns), med(f"tug-{payload}-w2", conns)
            azp, tup = med(f"azml-{payload}-w2", conns, "p99_ms"), med(f"tug-{payload}-w2", conns, "p99_ms")
            cc, ccp = med(f"tug-{payload}-w2-close", conns), med(f"tug-{payload}-w2-close", conns, "p99_ms")
            ceiling = ratio_c = ""
            if payload == "digits" and tu:
                probed = ceiling_ratio(conns)
                if probed:
                    ceiling, ratio_c = f"{probed[0]:.0f}", f"{probed[1]:.0%}"
                else:
                    wrk = med(f"tug-{payload}-w2", conns, "wrk_cpu_cores") or 0
                    c = (2 - wrk) * 1e6 / cost
                    ceiling, ratio_c = f"{c:.0f}", f"{tu / c:.0%}"
            fmt = lambda r, p: f"{r:.0f} ({p:.1f})" if r else "-"
            print(f"| {payload} | {conns} | {fmt(az, azp)} | {fmt(tu, tup)} | "
                  f"{(tu / az) if az and tu else 0:.2f}× | {(tup / azp) if azp and tup else 0:.2f} | "
                  f"{fmt(cc, ccp)} | {ceiling} | {ratio_c} |")

    print_paired(paired)


def print_paired(paired):
    """tug and the no-front bound against the ceiling measured in alternating slices."""
    if not paired:
        return
    print()
    print("Against the ceiling in alternating half-second slices (paired_ceiling.py), per pass;")
    print("run() µs: the probes' time per call, and the server's own x-ms-run-fn-exec-ms under load:")
    print()
    print("| body | server | conns | req/s | ceiling req/s | of the ceiling, median [range] "
          "| run() µs probe / in server | errors |")
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    labels = {"paired-tug": "tug-infsrv", "paired-bound": "no-front bound"}
    for body in ("digits.json", "digits-heavy.json"):
        for name in ("paired-tug", "paired-bound"):
            for conns in (8, 64):
                recs = paired.get((name, body, conns), [])
                if not recs:
                    continue
                ratios = [r["ratio"] for r in recs]
                errors = sum(len(r["errors"]) for r in recs)
                sampled = [r for r in recs if "run_us_server" in r]
                run_us = "-"
                if sampled:
                    run_us = (f"{statistics.median(r['run_us_probe'] for r in sampled):.0f} / "
                              f"{statistics.median(r['run_us_server'] for r in sampled):.0f}")
                print(f"| {body} | {labels[name]} | {conns} | {statistics.median(r['rps'] for r in recs):.0f} | "
                      f"{statistics.median(r['ceiling'] for r in recs):.0f} | "
                      f"**{statistics.median(ratios):.0%}** [{min(ratios):.0%}–{max(ratios):.0%}] | "
                      f"{run_us} | {errors} |")


if __name__ == "__main__":
    main()
