#!/usr/bin/env python3
"""A digits body whose run() costs about TARGET µs here: the harness's rows, repeated.

usage: heavy_body.py SCRIPT MODEL_DIR BODY OUT [--target-us 400]

The issue sizes digits.py at "~0.4 ms of Python per call"; on the benchmark machines the
harness's one-row body costs 0.12-0.29 ms, so the fixed cost of any HTTP hop weighs 1.5-3x
more against the ceiling than the issue assumed. This writes {"data": rows * k} with the
smallest k whose run() costs at least TARGET µs (timed in-process, like ceiling_probe.py), so
the paired measurement can also be made at the cost the goal was set for. Prints k and the cost.
"""
import argparse
import json

from ceiling_probe import call_cost_us, load  # this folder is on sys.path when run as a script


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("script")
    ap.add_argument("model_dir")
    ap.add_argument("body")
    ap.add_argument("out")
    ap.add_argument("--target-us", type=float, default=400.0)
    a = ap.parse_args()
    rows = json.load(open(a.body))["data"]
    mod = load(a.script, a.model_dir, open(a.body).read())
    for k in range(1, 257):
        body = json.dumps({"data": rows * k}, separators=(",", ":"))
        for _ in range(100):
            mod.run(body)
        cost = call_cost_us(mod, body, 1000)
        if cost >= a.target_us:
            break
    with open(a.out, "w") as fh:
        fh.write(body)
    print(json.dumps({"rows": len(rows) * k, "bytes": len(body), "run_us": round(cost, 1)}))


if __name__ == "__main__":
    main()
