#!/usr/bin/env python3
"""A server's digits throughput over the script's own ceiling, measured in alternating slices.

usage: paired_ceiling.py --url URL --body BODY --lua POST_LUA --script SCRIPT --model-dir DIR
                         [--conns 8] [--seconds 20] [--slice 0.5] [--gap 0.03] [--procs 2]
                         [--sample-exec RATE]

Why: on the benchmark VM the cost of the same run() call moves by up to 1.5x within tens of
seconds, so a ceiling probed after a 10 s wrk run can be 20 % off the one that held during
it (per-round ratios spread 41-101 % that way; 65-87 % +-1.5 % this way). Here the server's load and the ceiling probe take
turns every SLICE seconds for SECONDS in all, so both see the same machine:

  - PROCS probe processes import SCRIPT, run init(), warm up, then are stopped (SIGSTOP);
  - wrk (one thread, CONNS connections, the harness's post.lua) loads the server;
  - slice A: wrk runs; then wrk is stopped and the server drains for GAP seconds, which count
    for neither side; slice B: the probes run run(body) in a loop; they are stopped; GAP;
  - the server's rate is wrk's completed requests over the A time, the probe's rate is its
    calls over the B time, and the ceiling is the probe's rate scaled to the CPU wrk leaves
    (x (cores - wrk cores) / cores), as the issue defines it.

With --sample-exec RATE, a side connection also sends RATE requests per second during the A
slices and records each answer's `x-ms-run-fn-exec-ms` (the server's own timing of run());
`run_us_server` is their median and `run_us_probe` the probes' time per call, so the JSON line
shows how much slower run() itself is inside a loaded server than in the probes' loop
(cache sharing with the server's I/O). The side requests are not counted in `rps`.

Prints one JSON line. Requests in flight when wrk stops finish in the gap: at most CONNS per
slice, a bias of under 2 % in the server's favour at the defaults (stated with the figures).
"""
import argparse
import json
import multiprocessing as mp
import os
import re
import signal
import statistics
import subprocess
import threading
import time
import urllib.parse
from http.client import HTTPConnection

from ceiling_probe import load  # this folder is on sys.path when run as a script


def probe_loop(script, model_dir, body, counter, ready):
    mod = load(script, model_dir, body)
    ready.set()
    n = 0
    while True:
        for _ in range(10):
            mod.run(body)
        n += 10
        counter.value = n


def sample_exec(url, body, rate, during_a, stop, out):
    """While `during_a` is set, one request per 1/rate s; appends run()'s exec ms to `out`."""
    u = urllib.parse.urlsplit(url)
    conn = HTTPConnection(u.hostname, u.port, timeout=10)
    data = body.encode()
    while not stop.is_set():
        if not during_a.wait(0.1):
            continue
        try:
            conn.request("POST", u.path, data, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
        except OSError:
            conn.close()  # reconnects on the next request
            time.sleep(0.1)
            continue
        value = resp.getheader("x-ms-run-fn-exec-ms")
        if value is not None:
            out.append(float(value))
        time.sleep(1.0 / rate)


def signal_all(pids, sig):
    for pid in pids:
        os.kill(pid, sig)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--lua", required=True, help="the harness's post.lua")
    ap.add_argument("--script", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0, help="A + B time in all")
    ap.add_argument("--slice", type=float, default=0.5)
    ap.add_argument("--gap", type=float, default=0.03)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--sample-exec", type=float, default=0.0, metavar="RATE",
                    help="requests/s on a side connection to sample x-ms-run-fn-exec-ms (0: off)")
    ap.add_argument("--name", default="paired")
    ap.add_argument("--pass", dest="pass_", type=int, default=0)
    a = ap.parse_args()
    body = open(a.body).read()

    ctx = mp.get_context("fork")
    counters = [ctx.Value("q", 0, lock=False) for _ in range(a.procs)]
    readies = [ctx.Event() for _ in range(a.procs)]
    probes = [ctx.Process(target=probe_loop, args=(a.script, a.model_dir, body, c, r), daemon=True)
              for c, r in zip(counters, readies)]
    for p in probes:
        p.start()
    for r in readies:
        r.wait()
    pids = [p.pid for p in probes]
    signal_all(pids, signal.SIGSTOP)

    slices = max(1, int(a.seconds / (2 * a.slice)))
    env = dict(os.environ, BODY_FILE=a.body)
    total = slices * 2 * (a.slice + a.gap) + 30  # wrk is interrupted long before this
    wrk = subprocess.Popen(["wrk", "-t1", f"-c{a.conns}", f"-d{int(total)}s", "-s", a.lua, a.url],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    calls = 0
    during_a, stop, exec_ms = threading.Event(), threading.Event(), []
    if a.sample_exec > 0:
        threading.Thread(target=sample_exec, args=(a.url, body, a.sample_exec, during_a, stop, exec_ms),
                         daemon=True).start()

    def server_slice(resume):
        """One A slice: wrk (resumed first if stopped) and the sampler load the server; then both stop."""
        t0 = time.perf_counter()
        if resume:
            os.kill(wrk.pid, signal.SIGCONT)
        during_a.set()
        time.sleep(a.slice)
        during_a.clear()
        os.kill(wrk.pid, signal.SIGSTOP)
        elapsed = time.perf_counter() - t0
        time.sleep(a.gap)
        return elapsed

    try:
        # The first slice also opens the connections; it counts as A time like the others.
        a_time, b_time = server_slice(resume=False), 0.0
        for i in range(slices):
            before = sum(c.value for c in counters)
            t0 = time.perf_counter()
            signal_all(pids, signal.SIGCONT)
            time.sleep(a.slice)
            signal_all(pids, signal.SIGSTOP)
            b_time += time.perf_counter() - t0
            time.sleep(a.gap)  # also lets a probe that was mid-batch publish its count
            calls += sum(c.value for c in counters) - before
            if i == slices - 1:
                break
            a_time += server_slice(resume=True)
        os.kill(wrk.pid, signal.SIGINT)  # wrk stops and prints its summary on SIGINT
        os.kill(wrk.pid, signal.SIGCONT)
        out = wrk.stdout.read()
        _, _, usage = os.wait4(wrk.pid, 0)
        wrk.returncode = 0  # reaped here, for its rusage
    finally:
        stop.set()
        if wrk.returncode is None:
            wrk.kill()
        for p in probes:
            p.kill()
    m = re.search(r"(\d+) requests in", out)
    if not m:
        raise SystemExit(f"wrk printed no summary:\n{out}")
    requests = int(m.group(1))
    errors = re.findall(r"(Non-2xx or 3xx responses: \d+|Socket errors: .*)", out)
    wrk_cores = (usage.ru_utime + usage.ru_stime) / a_time
    server_rps = requests / a_time
    probe_rps = calls / b_time
    cores = os.cpu_count() or 1
    ceiling = probe_rps * (cores - wrk_cores) / cores
    record = {"name": a.name, "pass": a.pass_, "conns": a.conns, "slices": slices,
              "body": os.path.basename(a.body), "rps": server_rps, "probe_rps": probe_rps,
              "wrk_cpu_cores": wrk_cores, "ceiling": ceiling, "ratio": server_rps / ceiling,
              "errors": errors}
    if exec_ms:
        record["run_us_server"] = statistics.median(exec_ms) * 1000
        record["run_us_probe"] = a.procs * 1e6 / probe_rps
        record["exec_samples"] = len(exec_ms)
    print(json.dumps(record))


if __name__ == "__main__":
    main()
