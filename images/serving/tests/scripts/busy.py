"""Scoring script whose run() burns BUSY_MS of CPU (default 0.4 ms): per-request overhead benchmark."""

import os
import time

BUSY_S = float(os.environ.get("BUSY_MS", "0.4")) / 1000.0


def init():
    pass


def run(raw_data):
    end = time.perf_counter() + BUSY_S
    while time.perf_counter() < end:
        pass
    return {"ok": True}
