"""Scoring script for tests/serving_front.rs: each request body picks a behaviour.

"die" kills the worker mid-request, "raise" makes run() raise, "sleep:S" sleeps S seconds,
"append:X" appends the line X to $RUN_LOG (so a test can count how often a request ran),
anything else is parsed as JSON (so bad JSON makes run() raise) and echoed with the pid.
Every init() appends the worker's pid to $INIT_LOG, so a test can count inits. With
$FAIL_REINIT set, only the first init() succeeds (it creates that file; later ones raise).
"""
import json
import os
import time


def init():
    once = os.environ.get("FAIL_REINIT")
    if once:
        if os.path.exists(once):
            raise RuntimeError("init() refuses to run twice (marker 91c2)")
        open(once, "w").close()
    path = os.environ.get("INIT_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write("%d\n" % os.getpid())


def run(raw_data):
    if raw_data == "die":
        os._exit(1)
    if raw_data == "raise":
        raise ValueError("run() was told to raise")
    if raw_data.startswith("sleep_die:"):
        time.sleep(float(raw_data[len("sleep_die:"):]))
        os._exit(1)
    if raw_data.startswith("append:"):
        with open(os.environ["RUN_LOG"], "a") as fh:
            fh.write(raw_data[len("append:"):] + "\n")
        return {"appended": raw_data[len("append:"):], "pid": os.getpid()}
    if raw_data.startswith("sleep:"):
        seconds = float(raw_data[len("sleep:"):])
        time.sleep(seconds)
        return {"slept": seconds, "pid": os.getpid()}
    return {"echo": json.loads(raw_data), "pid": os.getpid()}
