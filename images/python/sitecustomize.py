"""tug: make the stdlib MLflow fallback importable, after everything else.

tug puts ``/opt/tug/python`` on ``PYTHONPATH`` in every environment image. Python imports
``sitecustomize`` at start-up, so this file runs before the script and appends the fallback
folder at the *end* of ``sys.path``: an installed ``mlflow`` (site-packages come first) always
wins, and the fallback is found only where no real package exists.

This file shadows any other ``sitecustomize`` (Debian's installs the apport hook), so it runs
the one it shadows, as Python would have.
"""

import os
import sys


def _tug_setup():
    here = os.path.dirname(os.path.abspath(__file__))
    fallback = os.path.join(here, "_tug_fallback")
    if fallback not in sys.path:
        sys.path.append(fallback)
    import importlib.machinery
    import importlib.util

    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) not in (here, fallback)]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    shadowed = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(shadowed)
    except Exception as e:  # Python itself only warns when sitecustomize fails
        sys.stderr.write("Error in sitecustomize (%s); set PYTHONVERBOSE for traceback:\n%s: %s\n"
                         % (spec.origin, type(e).__name__, e))


_tug_setup()
del _tug_setup
