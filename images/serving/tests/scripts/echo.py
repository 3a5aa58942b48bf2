"""Echo scoring script (the benchmark's): reports the length of the raw body."""


def init():
    pass


def run(raw_data):
    return {"ok": True, "n": len(raw_data)}
