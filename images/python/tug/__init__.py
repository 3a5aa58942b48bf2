"""tug run helper: log metrics, params and tags from inside a tug job.

Standard library only, Python >= 3.8. tug puts this package on ``PYTHONPATH`` in every
environment image; a training script uses it like this::

    import tug
    tug.log_param("lr", 0.01)
    for epoch in range(10):
        tug.log("loss", loss, step=epoch)
    tug.set_tag("model", "resnet")

Wire format (parsed by tug's run module; keep the two in step). Each record is one line,
written to file descriptor 1 with a single ``os.write`` after flushing ``sys.stdout`` (so it
lands after anything the script printed before it)::

    b"\\x1e" + b"tug:" + NONCE + b" " + compact JSON + b"\\n"

NONCE is the value of ``TUG_LOG_NONCE``, set per run by tug, so text that merely looks like a
record (a printed data set, a log file being echoed) is never taken for one. The JSON objects:

    {"k":"metric","name":N,"value":V,"step":S or null,"ts":unix seconds (float)}
    {"k":"params","values":{name: str, ...}}
    {"k":"tags","values":{name: str, ...}}

Metric values are JSON numbers, except NaN and the infinities, which JSON cannot carry: they are
sent as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. Booleans are sent as 1 and 0.
A step left as None stays null: tug numbers such values itself. Every record is at most
``MAX_RECORD_BYTES`` bytes so that a write to a pipe is atomic (below PIPE_BUF, 4096 on Linux)
and records from several processes or threads never interleave; params and tags that do not
fit in one record are split over several.

Outside tug (``TUG_LOG_NONCE`` unset) the functions print a readable line such as
``tug (offline): metric accuracy = 0.97 (step 3)`` instead, so a script runs unchanged on a
laptop. Values are checked the same way in both modes.
"""

import json
import math
import numbers
import os
import re
import sys
import threading
import time

__all__ = [
    "log",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "set_tag",
    "set_tags",
    "is_tracking",
    "MAX_RECORD_BYTES",
]

__version__ = "0.1.0"

#: Upper bound on the size of one record, newline included (below PIPE_BUF = 4096).
MAX_RECORD_BYTES = 3800

_NONCE_ENV = "TUG_LOG_NONCE"
_NONCE_RE = re.compile(r"^[0-9A-Za-z]+$")
_write_lock = threading.Lock()
_warned_bad_nonce = False


# --- mode -------------------------------------------------------------------------------------


def _nonce():
    """The run's nonce, or None when not running under tug (offline mode)."""
    global _warned_bad_nonce
    nonce = os.environ.get(_NONCE_ENV)
    if not nonce:
        return None
    if not _NONCE_RE.match(nonce):
        if not _warned_bad_nonce:
            _warned_bad_nonce = True
            sys.stderr.write(
                "tug: ignoring %s: it must be letters and digits only; "
                "metrics are printed, not recorded\n" % _NONCE_ENV
            )
        return None
    return nonce


def is_tracking():
    """True when running under tug (records reach tug), False in offline mode."""
    return _nonce() is not None


# --- values -----------------------------------------------------------------------------------


def _describe(value):
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return "%s %s" % (type(value).__name__, text)


def _metric_value(name, value, where="tug.log"):
    """Convert a metric value to int or float; raise TypeError for anything else."""
    original = value
    # numpy scalars, 0-d arrays, one-element tensors: unwrap to a Python scalar.
    if not isinstance(value, (bool, int, float, str, bytes)) and hasattr(value, "item"):
        try:
            value = value.item()
        except Exception:  # a multi-element array, or an item() that is something else
            pass
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if type(value).__name__ == "Decimal":
        return float(value)
    if type(value).__name__ == "bool_":  # numpy.bool_ without .item() support
        return int(bool(value))
    raise TypeError(
        "%s: metric %r must be a number (int, float or bool), got %s; "
        "use tug.set_tag or tug.log_param for text" % (where, name, _describe(original))
    )


def _json_number(value):
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value


def _metric_step(name, step, where="tug.log"):
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        if hasattr(step, "item") and not isinstance(step, (str, bytes)):
            try:
                return _metric_step(name, step.item(), where)
            except (TypeError, ValueError):
                pass
        raise TypeError(
            "%s: step for metric %r must be an int or None, got %s"
            % (where, name, _describe(step))
        )
    return int(step)


def _check_name(name, what, where):
    if not isinstance(name, str):
        raise TypeError("%s: %s name must be a str, got %s" % (where, what, _describe(name)))
    if not name:
        raise ValueError("%s: %s name must not be empty" % (where, what))


# --- framing ----------------------------------------------------------------------------------


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _frame(nonce, obj):
    return b"\x1etug:" + nonce.encode("ascii") + b" " + _dumps(obj).encode("ascii") + b"\n"


def _write(data):
    """Write one record to fd 1 after whatever the script has buffered in sys.stdout."""
    with _write_lock:
        stdout = sys.stdout
        if stdout is not None:
            try:
                stdout.flush()
            except (OSError, ValueError):  # closed or broken stdout: the record still goes out
                pass
        # One write: records are below PIPE_BUF, so on a pipe this is atomic and complete.
        # On a regular file a short write is possible in theory; finish it.
        view = memoryview(data)
        while view:
            written = os.write(1, view)
            view = view[written:]


def _offline(text):
    stdout = sys.stdout
    if stdout is None:
        return
    with _write_lock:
        try:
            stdout.write("tug (offline): %s\n" % text)
            stdout.flush()
        except (OSError, ValueError):
            pass


def _split_values(nonce, kind, values, where):
    """Yield {"k": kind, "values": {...}} records, each encoding to <= MAX_RECORD_BYTES."""
    empty = len(_frame(nonce, {"k": kind, "values": {}}))
    budget = MAX_RECORD_BYTES - empty
    chunk, size = {}, 0
    for key, value in values.items():
        # Compact JSON of a dict is exactly the items joined by commas.
        item = len(_dumps(key)) + 1 + len(_dumps(value))
        if item > budget:
            raise ValueError(
                "%s: %s %r is too long to record (%d bytes as JSON; at most %d fit in one "
                "record, and non-ASCII characters take 6 bytes each)"
                % (where, kind[:-1], key[:40], item, budget)
            )
        extra = item + (1 if chunk else 0)
        if chunk and size + extra > budget:
            yield {"k": kind, "values": chunk}
            chunk, size = {}, 0
            extra = item
        chunk[key] = value
        size += extra
    if chunk:
        yield {"k": kind, "values": chunk}


def _string_map(values, what, where):
    if not isinstance(values, dict):
        raise TypeError("%s: expected a dict of %ss, got %s" % (where, what, _describe(values)))
    out = {}
    for key, value in values.items():
        _check_name(key, what, where)
        out[key] = value if isinstance(value, str) else str(value)
    return out


def _emit_map(kind, values, where):
    if not values:
        return
    nonce = _nonce()
    if nonce is None:
        for key, value in values.items():
            _offline("%s %s = %s" % (kind[:-1], key, value))
        return
    records = [_frame(nonce, rec) for rec in _split_values(nonce, kind, values, where)]
    for data in records:
        _write(data)


# --- public API -------------------------------------------------------------------------------


def _emit_metric(name, value, step=None, where="tug.log"):
    """Validate and send one metric; return the converted (value, step). Used by the shims."""
    _check_name(name, "metric", where)
    value = _metric_value(name, value, where)
    step = _metric_step(name, step, where)
    nonce = _nonce()
    if nonce is None:
        text = "metric %s = %r" % (name, value)
        if step is not None:
            text += " (step %d)" % step
        _offline(text)
        return value, step
    record = {"k": "metric", "name": name, "value": _json_number(value), "step": step,
              "ts": time.time()}
    data = _frame(nonce, record)
    if len(data) > MAX_RECORD_BYTES:
        raise ValueError(
            "%s: metric name %r is too long (the record would be %d bytes; at most %d)"
            % (where, name[:40] + "...", len(data), MAX_RECORD_BYTES)
        )
    _write(data)
    return value, step


def log(name, value, step=None):
    """Record one value of the metric ``name``.

    ``value`` must be a number: int, float or bool (sent as 1/0); numpy scalars and one-element
    arrays or tensors are unwrapped. NaN and the infinities are allowed. ``step`` is an int or
    None; with None, tug numbers the values of a metric in the order they arrive.
    Raises TypeError for a non-numeric value and ValueError for an over-long name.
    """
    _emit_metric(name, value, step, "tug.log")


def log_metric(name, value, step=None):
    """Alias of :func:`log`, spelled like ``mlflow.log_metric``."""
    _emit_metric(name, value, step, "tug.log_metric")


def log_metrics(metrics, step=None):
    """Record several metrics at once (``{name: value}``), all with the same ``step``.

    Every value is checked before any is sent, so a bad value sends nothing.
    """
    where = "tug.log_metrics"
    if not isinstance(metrics, dict):
        raise TypeError("%s: expected a dict of metrics, got %s" % (where, _describe(metrics)))
    for name, value in metrics.items():
        _check_name(name, "metric", where)
        _metric_value(name, value, where)
        _metric_step(name, step, where)
    for name, value in metrics.items():
        _emit_metric(name, value, step, where)


def log_param(name, value):
    """Record one parameter; the value is converted with str()."""
    _check_name(name, "param", "tug.log_param")
    _emit_map("params", _string_map({name: value}, "param", "tug.log_param"), "tug.log_param")


def log_params(params):
    """Record several parameters (``{name: value}``); values are converted with str()."""
    _emit_map("params", _string_map(params, "param", "tug.log_params"), "tug.log_params")


def set_tag(name, value):
    """Set one tag on the run; the value is converted with str()."""
    _check_name(name, "tag", "tug.set_tag")
    _emit_map("tags", _string_map({name: value}, "tag", "tug.set_tag"), "tug.set_tag")


def set_tags(tags):
    """Set several tags (``{name: value}``); values are converted with str()."""
    _emit_map("tags", _string_map(tags, "tag", "tug.set_tags"), "tug.set_tags")
