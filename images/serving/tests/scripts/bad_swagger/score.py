"""Undecorated script whose folder ships a broken swagger.json (azmlinfsrv fails to start)."""


def init():
    pass


def run(data):
    return data
