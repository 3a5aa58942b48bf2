"""Plain run() whose body picks what it does: result kinds, failures, timeout, print routing."""

import sys
import time


def init():
    print("init says hello")


def run(raw_data):
    if raw_data == "none":
        return None
    if raw_data == "nan":
        return [float("nan"), float("inf"), 1.5]
    if raw_data == "bytes":
        return b"raw bytes are not JSON"
    if raw_data == "set":
        return {1, 2}
    if raw_data == "str":
        return "h\u00e9llo"
    if raw_data == "raise":
        raise ValueError("secret detail that must stay in the log")
    if raw_data.startswith("sleep"):
        time.sleep(float(raw_data[5:] or "5"))
        return "slept"
    if raw_data == "print":
        print("hello from run", 42)
        print("to stderr", file=sys.stderr)
        return "printed"
    if raw_data == "numpy":
        import numpy
        return numpy.arange(3)
    if raw_data == "big":
        return "x" * (3 * 1024 * 1024)
    return {"len": len(raw_data), "head": raw_data[:20]}
