"""Scoring script whose init() fails, as one with a missing model does."""


def init():
    raise FileNotFoundError("model.pkl not found (marker 7f3a)")


def run(raw_data):
    return raw_data
