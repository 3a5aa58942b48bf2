"""tug's stand-in for ``mlflow``, used only where the real package is not installed.

Standard library only, Python >= 3.8. tug's ``sitecustomize`` puts this folder at the end of
``sys.path``, so ``import mlflow`` finds an installed MLflow first and this module only in
images without one (offline images built from Debian packages have none). It covers what
Azure ML's example scripts call:

- ``log_metric(s)``, ``log_param(s)``, ``set_tag(s)``: sent to tug through its run helper
  (``import tug``), so they reach the run on every compute target, the same records the real
  client makes (a metric logged without ``step`` has step 0, as MLflow logs it);
- ``log_artifact(s)``, ``log_dict``, ``log_text``: uploaded to the run's artifacts through
  tug's MLflow artifact API when ``MLFLOW_TRACKING_URI`` is set (so ``job download`` and
  ``model create --path runs:/<run>/<path>`` see them where the real client puts them);
  otherwise copied under ``./outputs/``;
- ``start_run``, ``end_run``, ``active_run``, ``set_experiment``: the job's own run (a run's
  state is decided by the script's exit code, as with the real client under tug);
- ``autolog()`` and ``mlflow.sklearn.autolog()``: a documented no-op that says so once on
  stderr; ``mlflow.sklearn.save_model`` / ``log_model`` write MLflow's model folder layout
  (``MLmodel``, ``model.pkl`` with ``serialization_format: pickle``, ``conda.yaml``,
  ``python_env.yaml``, ``requirements.txt``), which the real ``mlflow.sklearn.load_model``
  reads.

Anything else raises an AttributeError that names itself and the fix: install
``mlflow-skinny`` in the environment, or use one of tug's curated stand-ins.
"""

import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import tug

__version__ = "0.0.0+tug.fallback"
#: True here, absent from the real package: lets a script (or a test) tell them apart.
IS_TUG_FALLBACK = True

_lock = threading.Lock()
_state = {"active": None, "last": None, "offline_id": None, "uri": None, "warned": set()}


class MlflowException(Exception):
    """Raised like the real client's exception of the same name."""


def _warn_once(key, text):
    if key not in _state["warned"]:
        _state["warned"].add(key)
        sys.stderr.write("mlflow (tug fallback): %s\n" % text)


# --- runs -------------------------------------------------------------------------------------


def _run_id():
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        return run_id
    if _state["offline_id"] is None:
        _state["offline_id"] = uuid.uuid4().hex
    return _state["offline_id"]


def _experiment_id():
    return os.environ.get("MLFLOW_EXPERIMENT_ID", "0")


class RunInfo(object):
    def __init__(self, status="RUNNING"):
        self.run_id = self.run_uuid = _run_id()
        self.experiment_id = _experiment_id()
        self.run_name = os.environ.get("MLFLOW_RUN_NAME", self.run_id)
        self.status = status
        self.start_time = int(time.time() * 1000)
        self.end_time = None
        self.lifecycle_stage = "active"
        self.artifact_uri = get_artifact_uri()


class RunData(object):
    def __init__(self):
        self.metrics, self.params, self.tags = {}, {}, {}


class ActiveRun(object):
    """What ``start_run`` returns; ends the run when used as a context manager."""

    def __init__(self):
        self.info = RunInfo()
        self.data = RunData()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        end_run("FINISHED" if exc_type is None else "FAILED")
        return False


def start_run(run_id=None, experiment_id=None, run_name=None, nested=False,
              parent_run_id=None, tags=None, description=None, log_system_metrics=None):
    """The job's run. ``run_id`` may only name it; a nested run logs into it (with a note)."""
    with _lock:
        if run_id is not None and run_id != _run_id():
            raise MlflowException(
                "mlflow.start_run(run_id=%r): tug's fallback logs to this job's run (%s) only; "
                "install mlflow-skinny in the environment for other runs" % (run_id, _run_id()))
        if _state["active"] is not None and not nested:
            raise MlflowException(
                "Run with UUID %s is already active. To start a nested run, call start_run "
                "with nested=True" % _state["active"].info.run_id)
        if nested:
            _warn_once("nested", "nested runs are not separate runs here; they log into %s"
                       % _run_id())
            return _state["active"] or _new_active()
        active = _new_active()
    if tags:
        set_tags(tags)
    if run_name:
        set_tag("mlflow.runName", run_name)
    if description:
        set_tag("mlflow.note.content", description)
    return active


def _new_active():
    active = ActiveRun()
    _state["active"] = _state["last"] = active
    return active


def _ensure_run():
    # The real client starts a run on the first log call when none is active.
    if _state["active"] is None:
        with _lock:
            if _state["active"] is None:
                _new_active()
    return _state["active"]


def end_run(status="FINISHED"):
    """Ends the active run here; under tug the script's exit code sets the run's state."""
    active, _state["active"] = _state["active"], None
    if active is not None:
        active.info.status = status
        active.info.end_time = int(time.time() * 1000)


def active_run():
    return _state["active"]


def last_active_run():
    return _state["active"] or _state["last"]


def _check_run(run_id, where):
    if run_id is not None and run_id != _run_id():
        raise MlflowException("%s(run_id=%r): tug's fallback logs to this job's run (%s) only"
                              % (where, run_id, _run_id()))
    return _ensure_run()


# --- metrics, params, tags ----------------------------------------------------------------------


def log_metric(key, value, step=None, timestamp=None, synchronous=None, run_id=None, **kwargs):
    run = _check_run(run_id, "mlflow.log_metric")
    value, _ = tug._emit_metric(key, value, 0 if step is None else step, "mlflow.log_metric")
    run.data.metrics[key] = value


def log_metrics(metrics, step=None, synchronous=None, run_id=None, timestamp=None, **kwargs):
    run = _check_run(run_id, "mlflow.log_metrics")
    if not isinstance(metrics, dict):
        raise TypeError("mlflow.log_metrics: expected a dict, got %s" % type(metrics).__name__)
    step = 0 if step is None else step
    for key, value in metrics.items():  # check all before sending any
        tug._check_name(key, "metric", "mlflow.log_metrics")
        tug._metric_value(key, value, "mlflow.log_metrics")
        tug._metric_step(key, step, "mlflow.log_metrics")
    for key, value in metrics.items():
        run.data.metrics[key], _ = tug._emit_metric(key, value, step, "mlflow.log_metrics")


def log_param(key, value, synchronous=None):
    run = _ensure_run()
    tug.log_param(key, value)
    run.data.params[key] = str(value)
    return value


def log_params(params, synchronous=None, run_id=None):
    run = _check_run(run_id, "mlflow.log_params")
    tug.log_params(params)
    run.data.params.update((k, str(v)) for k, v in params.items())


def set_tag(key, value, synchronous=None):
    run = _ensure_run()
    tug.set_tag(key, value)
    run.data.tags[key] = str(value)


def set_tags(tags, synchronous=None):
    run = _ensure_run()
    tug.set_tags(tags)
    run.data.tags.update((k, str(v)) for k, v in tags.items())


# --- experiments and the tracking URI -----------------------------------------------------------


class Experiment(object):
    def __init__(self, experiment_id, name):
        self.experiment_id = experiment_id
        self.name = name
        self.lifecycle_stage = "active"
        self.tags = {}


def set_experiment(experiment_name=None, experiment_id=None):
    """A job belongs to its job file's experiment; this only answers it (as tug's server does)."""
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or experiment_name or "Default"
    return Experiment(_experiment_id(), name)


def get_experiment_by_name(name):
    if name == os.environ.get("MLFLOW_EXPERIMENT_NAME"):
        return Experiment(_experiment_id(), name)
    return None


def set_tracking_uri(uri):
    _state["uri"] = str(uri)


def get_tracking_uri():
    return _state["uri"] or os.environ.get("MLFLOW_TRACKING_URI", "")


def is_tracking_uri_set():
    return bool(get_tracking_uri())


def _server():
    uri = get_tracking_uri()
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else None


# --- artifacts ----------------------------------------------------------------------------------


def get_artifact_uri(artifact_path=None):
    if _server():
        base = "mlflow-artifacts:/%s/%s/artifacts" % (_experiment_id(), _run_id())
    else:
        base = "file://" + os.path.abspath("outputs")
    return base + ("/" + artifact_path.strip("/") if artifact_path else "")


def _clean(path, where):
    rel = os.path.normpath(str(path).replace("\\", "/")).replace(os.sep, "/")
    if rel in (".", "") or os.path.isabs(rel) or rel == ".." or rel.startswith("../"):
        raise MlflowException("%s: artifact path %r must be a relative path below the run"
                              % (where, path))
    return rel


def _upload(local_file, rel, where):
    _ensure_run()
    server = _server()
    if server is None:
        dest = os.path.join("outputs", rel)
        os.makedirs(os.path.dirname(dest) or ".", exist_ok=True)
        if not (os.path.exists(dest) and os.path.samefile(local_file, dest)):
            shutil.copyfile(local_file, dest)
        return
    url = "%s/api/2.0/mlflow-artifacts/artifacts/%s/%s/artifacts/%s" % (
        server, _experiment_id(), _run_id(), urllib.parse.quote(rel))
    headers = {"Content-Type": "application/octet-stream",
               "Content-Length": str(os.path.getsize(local_file))}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        headers["Authorization"] = "Bearer " + token
    for attempt in range(5):
        with open(local_file, "rb") as body:
            request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=120) as response:
                    response.read()
                return
            except urllib.error.HTTPError as e:
                text = e.read().decode("utf-8", "replace")
                if e.code < 500:
                    try:
                        text = json.loads(text).get("message", text)
                    except ValueError:
                        pass
                    raise MlflowException("%s: uploading %s failed: HTTP %d: %s"
                                          % (where, rel, e.code, text))
                error = "HTTP %d" % e.code
            except (urllib.error.URLError, OSError) as e:
                error = str(e)
        time.sleep(0.5 * 2 ** attempt)
    raise MlflowException("%s: uploading %s to %s failed: %s" % (where, rel, server, error))


def log_artifact(local_path, artifact_path=None, run_id=None):
    _check_run(run_id, "mlflow.log_artifact")
    name = os.path.basename(os.path.normpath(local_path))
    rel = _clean(os.path.join(artifact_path, name) if artifact_path else name,
                 "mlflow.log_artifact")
    _upload(local_path, rel, "mlflow.log_artifact")


def log_artifacts(local_dir, artifact_path=None, run_id=None):
    _check_run(run_id, "mlflow.log_artifacts")
    for root, dirs, files in os.walk(local_dir):
        dirs.sort()
        for f in sorted(files):
            full = os.path.join(root, f)
            inner = os.path.relpath(full, local_dir)
            rel = os.path.join(artifact_path, inner) if artifact_path else inner
            _upload(full, _clean(rel, "mlflow.log_artifacts"), "mlflow.log_artifacts")


def _log_bytes(data, artifact_file, where):
    rel = _clean(artifact_file, where)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "artifact")
        with open(path, "wb") as f:
            f.write(data)
        _upload(path, rel, where)


def log_text(text, artifact_file, run_id=None):
    _check_run(run_id, "mlflow.log_text")
    _log_bytes(str(text).encode("utf-8"), artifact_file, "mlflow.log_text")


def log_dict(dictionary, artifact_file, run_id=None):
    """JSON for every file name: JSON is also valid YAML, so ``.yaml`` files load as YAML."""
    _check_run(run_id, "mlflow.log_dict")
    data = json.dumps(dictionary, indent=2, default=str).encode("utf-8")
    _log_bytes(data, artifact_file, "mlflow.log_dict")


# --- autolog ------------------------------------------------------------------------------------


def autolog(*args, **kwargs):
    """No-op: the fallback has no framework hooks. Says so once on stderr."""
    _warn_once("autolog", "autolog() records nothing without the real MLflow; log metrics "
               "explicitly or install mlflow-skinny in the environment")


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    if name == "sklearn":  # loaded on first use, as the real package does
        import importlib

        return importlib.import_module("mlflow.sklearn")
    raise AttributeError(
        "mlflow.%s is not part of tug's stdlib MLflow fallback (the real mlflow is not "
        "installed in this image); add mlflow-skinny to the environment's conda file, or use "
        "a curated environment (`tug environment list --curated`)" % name)
