"""``azureml.core.run.Run`` for tug: the Azure ML SDK v1 run context, logging through ``tug``.

A v1 training script works unchanged::

    from azureml.core import Run
    run = Run.get_context()
    run.log("accuracy", 0.9)

How v1 calls map onto tug records (all sent with the ``tug`` helper's wire format):

- ``log(name, value, step=None)``: one metric value. A str value, which v1 stores as a text
  metric, becomes the tag ``name = value`` (tug metrics are numbers only). A list is rejected
  with TypeError, as in v1 (use ``log_list``).
- ``log_list(name, values)``: one metric value per element, steps 0 .. n-1.
- ``log_row(name, **cols)``: a table kept as one metric per column named ``<name>.<col>``; the
  row number is the step, so the values of one row share a step. Rows continue after earlier
  ``log_row``/``log_table`` calls for the same name.
- ``log_table(name, {col: [values]})``: like ``log_row`` once per row.
- ``tag``, ``set_tags``, ``add_properties``: tags (properties are tags in tug).
- ``upload_file(name, path)``: copied into ``./outputs`` (a leading ``outputs/`` in ``name`` is
  dropped, ``logs/...`` goes to ``./logs``), which tug collects when the run ends.
- ``get_metrics``, ``get_tags``, ``get_properties``: what this process logged (tug does not
  read back from the server here).
- ``complete``, ``fail``, ``flush``: no-ops, as in a v1 job.

Everything else that v1 has raises NotImplementedError naming the method.
Outside tug (``TUG_LOG_NONCE`` unset) the run is offline: calls print what they would record.
"""

import os
import shutil
import uuid

import tug

__all__ = ["Run"]


class _NotSupported(NotImplementedError, AttributeError):
    """Raised for v1 features tug does not provide. Also an AttributeError, so ``hasattr``
    and ``getattr(obj, name, default)`` treat the feature as absent instead of crashing."""


def _unsupported(what):
    return _NotSupported(
        "%s is not supported by tug yet (tug implements the Run logging API: log, log_list, "
        "log_row, log_table, tag, set_tags, add_properties, upload_file, get_metrics)" % what
    )


def _stub(name):
    def method(self, *args, **kwargs):
        raise _unsupported("Run.%s" % name)

    method.__name__ = name
    method.__doc__ = "Not supported by tug yet: raises NotImplementedError."
    return method


# Process-wide record of what was logged, shared by every Run.get_context() object (v1 hands
# out several objects for the same run).
_state = {"metrics": {}, "tags": {}, "properties": {}, "rows": {}, "offline_id": None}


class _Experiment(object):
    """The ``run.experiment`` of a tug run: its name only."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return "Experiment(name=%r)" % self.name

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported("Experiment.%s" % name)


_TOKEN = object()


class Run(object):
    """The run a script is executing in. Get it with ``Run.get_context()``."""

    def __init__(self, *args, **kwargs):
        if kwargs.pop("_tug_token", None) is not _TOKEN:
            raise _unsupported("Run(experiment, run_id) (constructing a Run for another run)")

    # --- context --------------------------------------------------------------------------

    @classmethod
    def get_context(cls, allow_offline=True, used_for_context_manager=False, **kwargs):
        """The current run. Outside tug it is an offline run when ``allow_offline`` is true
        (the default); otherwise RuntimeError."""
        if not allow_offline and not tug.is_tracking():
            raise RuntimeError(
                "Run.get_context(allow_offline=False): this script is not running inside a "
                "tug job (TUG_LOG_NONCE is not set)"
            )
        return cls(_tug_token=_TOKEN)

    @property
    def id(self):
        run_id = os.environ.get("AZUREML_RUN_ID") or os.environ.get("TUG_RUN_ID")
        if run_id:
            return run_id
        if _state["offline_id"] is None:
            _state["offline_id"] = "OfflineRun_%s" % uuid.uuid4()
        return _state["offline_id"]

    @property
    def experiment(self):
        name = os.environ.get("AZUREML_ARM_PROJECT_NAME") or os.environ.get(
            "TUG_EXPERIMENT_NAME"
        )
        if not name:
            name = "" if tug.is_tracking() else "offline"
        return _Experiment(name)

    @property
    def tags(self):
        return self.get_tags()

    @property
    def properties(self):
        return self.get_properties()

    @property
    def parent(self):
        raise _unsupported("Run.parent")

    @property
    def input_datasets(self):
        raise _unsupported("Run.input_datasets (use job inputs instead)")

    def __repr__(self):
        return "Run(id=%r, experiment=%r)" % (self.id, self.experiment.name)

    # --- metrics --------------------------------------------------------------------------

    def _metric(self, name, value, step, where):
        value, _ = tug._emit_metric(name, value, step, where)
        _state["metrics"].setdefault(name, []).append(value)

    def log(self, name, value, description="", step=None):
        """Log one value of metric ``name`` (a number; a str becomes a tag; a list is an
        error: use ``log_list``)."""
        if isinstance(value, str):
            self.tag(name, value)
            return
        if isinstance(value, (list, tuple, dict, set)):
            raise TypeError(
                "Run.log: metric %r must be a single value, got a %s; use Run.log_list for a "
                "list or Run.log_table for columns" % (name, type(value).__name__)
            )
        self._metric(name, value, step, "Run.log")

    def log_list(self, name, value, description=""):
        """Log every element of ``value`` as metric ``name``, with steps 0 .. n-1."""
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            raise TypeError(
                "Run.log_list: %r must be a list of numbers, got %s" % (name, type(value).__name__)
            )
        values = list(value)
        for v in values:  # check every element before sending any
            tug._metric_value(name, v, "Run.log_list")
        for step, v in enumerate(values):
            self._metric(name, v, step, "Run.log_list")

    def log_row(self, name, description=None, **kwargs):
        """Log one row of table ``name``: metric ``<name>.<col>`` per column, step = row."""
        if not kwargs:
            raise ValueError("Run.log_row: table %r needs at least one column value" % name)
        for col, v in kwargs.items():
            tug._metric_value("%s.%s" % (name, col), v, "Run.log_row")
        row = _state["rows"].get(name, 0)
        for col, v in kwargs.items():
            self._metric("%s.%s" % (name, col), v, row, "Run.log_row")
        _state["rows"][name] = row + 1

    def log_table(self, name, value, description=""):
        """Log table ``name`` given as ``{col: [values]}``: metric ``<name>.<col>`` per
        column, one step per row."""
        if not isinstance(value, dict):
            raise TypeError(
                "Run.log_table: %r must be a dict of columns, got %s" % (name, type(value).__name__)
            )
        columns = {}
        for col, values in value.items():
            if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
                values = [values]
            columns[col] = list(values)
            for v in columns[col]:
                tug._metric_value("%s.%s" % (name, col), v, "Run.log_table")
        start = _state["rows"].get(name, 0)
        rows = max([len(vs) for vs in columns.values()] or [0])
        for i in range(rows):
            for col, vs in columns.items():
                if i < len(vs):
                    self._metric("%s.%s" % (name, col), vs[i], start + i, "Run.log_table")
        _state["rows"][name] = start + rows

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False):
        """The metrics this process logged: ``{name: value}`` for a metric logged once,
        ``{name: [values]}`` for one logged more than once."""
        out = {}
        for key, values in _state["metrics"].items():
            if name is not None and key != name:
                continue
            out[key] = values[0] if len(values) == 1 else list(values)
        return out

    # --- tags and properties --------------------------------------------------------------

    def tag(self, key, value=None):
        """Set tag ``key`` (an empty value when ``value`` is None)."""
        value = "" if value is None else str(value)
        tug.set_tags({key: value})
        _state["tags"][key] = value

    def set_tags(self, tags):
        """Set several tags: a dict, or a list of keys (tags with empty values)."""
        if isinstance(tags, dict):
            values = dict((k, "" if v is None else str(v)) for k, v in tags.items())
        elif isinstance(tags, (list, tuple, set)):
            values = dict((k, "") for k in tags)
        else:
            raise TypeError("Run.set_tags: expected a dict or a list, got %s" % type(tags).__name__)
        tug.set_tags(values)
        _state["tags"].update(values)

    def get_tags(self):
        """The tags this process set (tags, ``log`` of text values, and properties)."""
        return dict(_state["tags"])

    def add_properties(self, properties):
        """Add properties; tug keeps them as tags."""
        if not isinstance(properties, dict):
            raise TypeError(
                "Run.add_properties: expected a dict, got %s" % type(properties).__name__
            )
        values = dict((k, "" if v is None else str(v)) for k, v in properties.items())
        tug.set_tags(values)
        _state["properties"].update(values)
        _state["tags"].update(values)

    def get_properties(self):
        """The properties this process added."""
        return dict(_state["properties"])

    # --- files ----------------------------------------------------------------------------

    @staticmethod
    def _destination(name):
        rel = os.path.normpath(str(name).replace("\\", "/"))
        if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep) or rel == ".":
            raise ValueError("Run.upload_file: artifact name %r must be a relative path" % name)
        parts = rel.split(os.sep)
        if parts[0] in ("outputs", "logs") and len(parts) > 1:
            return os.path.join(*parts)
        return os.path.join("outputs", rel)

    def upload_file(self, name, path_or_stream, datastore_name=None):
        """Copy a file (or the bytes of a stream) into ``./outputs/<name>``, which tug collects
        at the end of the run. Returns the destination path."""
        dest = self._destination(name)
        parent = os.path.dirname(dest)
        if parent:
            os.makedirs(parent, exist_ok=True)
        if hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            if isinstance(data, str):
                data = data.encode("utf-8")
            with open(dest, "wb") as f:
                f.write(data)
        else:
            src = os.fspath(path_or_stream)
            if not (os.path.exists(dest) and os.path.samefile(src, dest)):
                shutil.copyfile(src, dest)
        return dest

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None,
                     datastore_name=None):
        """``upload_file`` for each (name, path) pair."""
        if len(names) != len(paths):
            raise ValueError("Run.upload_files: names and paths must have the same length")
        return [self.upload_file(n, p) for n, p in zip(names, paths)]

    def upload_folder(self, name, path, datastore_name=None):
        """Copy a folder into ``./outputs/<name>``."""
        dest = self._destination(name)
        if os.path.abspath(dest) != os.path.abspath(path):
            shutil.copytree(path, dest, dirs_exist_ok=True)
        return dest

    # --- lifecycle (the job owns it) ------------------------------------------------------

    def complete(self, _set_status=True):
        """No-op: tug completes the run when the script exits."""

    def fail(self, error_details=None, error_code=None, _set_status=True):
        """No-op: tug fails the run when the script exits with an error."""

    def flush(self, timeout_seconds=300):
        """No-op: records are written immediately."""

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        raise _unsupported("Run.%s" % name)


# v1 methods that exist but tug does not implement: explicit, so they show up in dir() and
# help(), and raise NotImplementedError naming themselves.
for _name in (
    "log_image", "log_confusion_matrix", "log_accuracy_table", "log_residuals",
    "log_predictions", "remove_tags", "child_run", "create_children", "get_children",
    "submit_child", "register_model", "download_file", "download_files", "get_file_names",
    "get_details", "get_details_with_logs", "get_status", "get_environment", "get_secret",
    "get_secrets", "cancel", "wait_for_completion", "restore_snapshot", "take_snapshot",
    "get_all_logs", "get_portal_url", "start", "clean",
):
    setattr(Run, _name, _stub(_name))
del _name

for _name in ("get", "list"):
    setattr(Run, _name, classmethod(_stub(_name)))
del _name
