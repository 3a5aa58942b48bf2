"""Scoring script whose run() burns BUSY_MS of CPU time (default 0.4 ms): overhead benchmark.

CPU time (not wall time) so that the worker's own overhead can be read as its CPU per request
minus BUSY_MS even on a loaded machine.
"""

import os
import time

BUSY_S = float(os.environ.get("BUSY_MS", "0.4")) / 1000.0


def init():
    pass


def run(raw_data):
    end = time.process_time() + BUSY_S
    while time.process_time() < end:
        pass
    return {"ok": True}
