"""A scoring script without init()."""


def run(data):
    return data
