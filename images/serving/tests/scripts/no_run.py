"""A scoring script without run()."""


def init():
    pass
