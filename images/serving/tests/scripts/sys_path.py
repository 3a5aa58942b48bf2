"""Reports the worker's sys.path and imports a helper module from AML_APP_ROOT."""

import sys

import helper_module


def init():
    pass


def run(data):
    return {"path": sys.path, "helper": helper_module.VALUE, "name": __name__}
