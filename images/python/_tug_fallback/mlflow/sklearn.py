"""``mlflow.sklearn`` in tug's stdlib fallback: MLflow's model folder, written with pickle.

``save_model`` writes what the real ``mlflow.sklearn.save_model(..., serialization_format=
"pickle")`` writes, so the folder loads with the real ``mlflow.sklearn.load_model`` and
registers with ``tug model create --type mlflow_model``. ``autolog()`` is a no-op (see
``mlflow.autolog``).
"""

import datetime
import os
import pickle
import platform
import tempfile
import uuid

import mlflow

FLAVOR_NAME = "sklearn"
SERIALIZATION_FORMAT_PICKLE = "pickle"
_MODEL_FILE = "model.pkl"


class ModelInfo(object):
    def __init__(self, artifact_path, model_uri):
        self.artifact_path = artifact_path
        self.model_uri = model_uri


def autolog(*args, **kwargs):
    mlflow.autolog()


def _sklearn_version():
    try:
        import sklearn

        return sklearn.__version__
    except ImportError:
        return None


def _requirements(sklearn_version, extra):
    reqs = ["mlflow"]
    if sklearn_version:
        reqs.append("scikit-learn==%s" % sklearn_version)
    return reqs + [str(r) for r in (extra or [])]


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


def save_model(sk_model, path, conda_env=None, code_paths=None, mlflow_model=None,
               serialization_format=SERIALIZATION_FORMAT_PICKLE, signature=None,
               input_example=None, pip_requirements=None, extra_pip_requirements=None,
               pyfunc_predict_fn="predict", metadata=None, **kwargs):
    """Write ``sk_model`` as an MLflow model folder at ``path`` (which must not hold files)."""
    if serialization_format not in (SERIALIZATION_FORMAT_PICKLE, "cloudpickle"):
        raise mlflow.MlflowException("unknown serialization_format %r" % serialization_format)
    if os.path.exists(path) and os.listdir(path):
        raise mlflow.MlflowException("Path '%s' already exists and is not empty" % path)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, _MODEL_FILE), "wb") as f:
        pickle.dump(sk_model, f)
    python = platform.python_version()
    version = _sklearn_version()
    reqs = list(pip_requirements) if pip_requirements else _requirements(
        version, extra_pip_requirements)
    _write(os.path.join(path, "requirements.txt"), "".join(r + "\n" for r in reqs))
    _write(os.path.join(path, "python_env.yaml"),
           "python: %s\nbuild_dependencies:\n- pip\n- setuptools\n- wheel\ndependencies:\n"
           "- -r requirements.txt\n" % python)
    _write(os.path.join(path, "conda.yaml"),
           "channels:\n- conda-forge\ndependencies:\n- python=%s\n- pip\n- pip:\n%sname: mlflow-env\n"
           % (python, "".join("  - %s\n" % r for r in reqs)))
    created = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    # The real client writes `cloudpickle` here by default; this one has pickle only.
    lines = [
        "flavors:",
        "  python_function:",
        "    env:",
        "      conda: conda.yaml",
        "      virtualenv: python_env.yaml",
        "    loader_module: mlflow.sklearn",
        "    model_path: %s" % _MODEL_FILE,
        "    predict_fn: %s" % pyfunc_predict_fn,
        "    python_version: %s" % python,
        "  sklearn:",
        "    code: null",
        "    pickled_model: %s" % _MODEL_FILE,
        "    serialization_format: %s" % SERIALIZATION_FORMAT_PICKLE,
        "    sklearn_version: %s" % (version or "null"),
        "mlflow_version: %s" % mlflow.__version__,
        "model_uuid: %s" % uuid.uuid4().hex,
        "utc_time_created: '%s'" % created,
    ]
    if metadata:
        lines.append("metadata:")
        lines.extend("  %s: %s" % (k, _scalar(v)) for k, v in sorted(metadata.items()))
    _write(os.path.join(path, "MLmodel"), "\n".join(lines) + "\n")


def _scalar(value):
    text = str(value)
    return "'%s'" % text.replace("'", "''")


def log_model(sk_model, artifact_path=None, name=None, registered_model_name=None, **kwargs):
    """``save_model`` into a temporary folder, then ``log_artifacts`` under ``name``."""
    name = name or artifact_path or "model"
    if registered_model_name:
        mlflow._warn_once("register", "registered_model_name is ignored; register the logged "
                          "model with `tug model create --path runs:/<run>/%s`" % name)
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "model")
        save_model(sk_model, folder, **kwargs)
        mlflow.log_artifacts(folder, name)
    run_id = mlflow.active_run().info.run_id
    return ModelInfo(name, "runs:/%s/%s" % (run_id, name))


def load_model(model_uri, dst_path=None):
    """Loads a model folder on this machine (a path or ``file://`` URI)."""
    path = model_uri[len("file://"):] if model_uri.startswith("file://") else model_uri
    if "://" in path or path.startswith("runs:/"):
        raise mlflow.MlflowException(
            "mlflow.sklearn.load_model(%r): tug's fallback loads local folders only" % model_uri)
    with open(os.path.join(path, _MODEL_FILE), "rb") as f:
        return pickle.load(f)


__all__ = ["autolog", "save_model", "log_model", "load_model"]
