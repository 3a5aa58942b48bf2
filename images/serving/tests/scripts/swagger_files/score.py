"""Undecorated script whose folder ships its own swagger.json and swagger3.json."""


def init():
    pass


def run(data):
    return data
