"""init() raises: the worker reports INIT_FAILED and exits 3."""


def init():
    raise RuntimeError("model file is missing")


def run(data):
    return data
