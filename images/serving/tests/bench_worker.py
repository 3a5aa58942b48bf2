"""Microbenchmark of tug_worker.py alone: requests over the socketpair, no HTTP front.

    python3 images/serving/tests/bench_worker.py [-n 20000] [--busy-ms 0.4] [--python PY]

Drives one worker with the echo script (the serving benchmark's echo.py: 44-byte POST body,
`{"ok": true, "n": 44}` back) and then with a run() that burns 0.4 ms, one request at a time
as the front does. Prints requests/s and µs per request, round trip (this client included)
and the worker's own CPU time per request (from /proc/<pid>/schedstat), and for the busy
script (run() burns --busy-ms of CPU time) the worker's CPU on top of run().
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from worker_client import Worker  # noqa: E402

BODY = b'{"data": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]}\n'  # 44 bytes, like bench/serving/bodies/echo.json


def cpu_ns(pid):
    """CPU time used by the process so far, in ns (schedstat; else clock ticks from stat)."""
    try:
        with open("/proc/%d/schedstat" % pid) as fh:
            return int(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 10 ** 9 // os.sysconf("SC_CLK_TCK")


def measure(script, n, env=None, python=None):
    worker = Worker(script, env=env, python=python, capture=False)
    assert worker.kind == 1, worker.hello
    for _ in range(min(2000, n)):  # warm-up
        worker.request("POST", BODY, content_type="application/json")
    cpu0 = cpu_ns(worker.proc.pid)
    t0 = time.perf_counter()
    exec_total = 0.0
    for _ in range(n):
        meta, _ = worker.request("POST", BODY, content_type="application/json")
        exec_total += meta["exec_ms"]
    wall = time.perf_counter() - t0
    cpu = cpu_ns(worker.proc.pid) - cpu0
    code, _, _ = worker.close()
    assert code == 0, code
    return {"rps": n / wall, "rtt_us": wall / n * 1e6, "worker_cpu_us": cpu / n / 1e3,
            "run_us": exec_total / n * 1e3}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20000, help="requests per script (default 20000)")
    parser.add_argument("--busy-ms", type=float, default=0.4, help="run() cost of the second script")
    parser.add_argument("--python", default=None, help="interpreter for the worker (default: this one)")
    args = parser.parse_args()
    print("python %s, %d requests each, one at a time" % (
        args.python or sys.version.split()[0], args.n))
    echo = measure("echo.py", args.n, python=args.python)
    print("echo:      %8.0f req/s round trip, %6.1f us/request round trip, "
          "worker CPU %5.1f us/request (run() itself %.1f us)" % (
              echo["rps"], echo["rtt_us"], echo["worker_cpu_us"], echo["run_us"]))
    busy = measure("busy.py", max(1000, args.n // 4), env={"BUSY_MS": str(args.busy_ms)}, python=args.python)
    run_cpu_us = args.busy_ms * 1000.0
    overhead = busy["worker_cpu_us"] - run_cpu_us
    print("busy %.1fms: %6.0f req/s round trip, %6.1f us/request round trip, worker CPU %5.1f us/request "
          "(run() %.1f us CPU, worker overhead %.1f us = %.1f %%)" % (
              args.busy_ms, busy["rps"], busy["rtt_us"], busy["worker_cpu_us"], run_cpu_us,
              overhead, 100.0 * overhead / run_cpu_us))


if __name__ == "__main__":
    main()
