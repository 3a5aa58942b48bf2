#!/usr/bin/env python3
"""What a scoring script allows by itself on this machine, measured right now.

usage: ceiling_probe.py SCRIPT MODEL_DIR BODY [--procs 2] [--seconds 5] [--name N] [--pass N]

Starts PROCS processes (as many as the server's workers), each of which imports the script,
runs init() once, warms up, then calls run(body) in a loop for SECONDS. All of them run at
the same time, so they share the cores the way busy workers do. Prints one JSON line: the
calls per second they managed together (`rps`, the ceiling with nothing else on the machine)
and the CPU time per call (`cost_us`). The benchmark runs this next to each server
measurement because on a shared VM the cost of the same call moves by 2x within minutes.
"""
import argparse
import importlib.util
import json
import multiprocessing as mp
import os
import time


def load(script, model_dir, body, warmup=300):
    """The scoring script imported as the server would, init() run, run(body) warmed up."""
    os.environ["AZUREML_MODEL_DIR"] = model_dir
    spec = importlib.util.spec_from_file_location("scoring", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.init()
    for _ in range(warmup):
        mod.run(body)
    return mod


def call_cost_us(mod, body, n):
    """CPU µs per run(body) call, over n calls in this process."""
    t0 = time.process_time()
    for _ in range(n):
        mod.run(body)
    return (time.process_time() - t0) / n * 1e6


def worker(script, model_dir, body, seconds, start, out):
    mod = load(script, model_dir, body)
    start.wait()
    calls, cpu0, t0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(50):
            mod.run(body)
        calls += 50
    out.put((calls, time.process_time() - cpu0, time.perf_counter() - t0))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("script")
    ap.add_argument("model_dir")
    ap.add_argument("body")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--name", default="ceiling")
    ap.add_argument("--pass", dest="pass_", type=int, default=0)
    a = ap.parse_args()
    body = open(a.body).read()
    start, out = mp.Barrier(a.procs), mp.Queue()
    procs = [mp.Process(target=worker, args=(a.script, a.model_dir, body, a.seconds, start, out))
             for _ in range(a.procs)]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    calls = sum(r[0] for r in results)
    cpu = sum(r[1] for r in results)
    wall = max(r[2] for r in results)
    print(json.dumps({"name": a.name, "pass": a.pass_, "procs": a.procs, "rps": calls / wall,
                      "cost_us": cpu / calls * 1e6}))


if __name__ == "__main__":
    main()
