"""``azureml.core`` for tug: ``Run`` from the Azure ML SDK v1, logging to tug.

``from azureml.core import Run`` and ``from azureml.core.run import Run`` both work; see
``azureml.core.run`` for how each v1 call maps onto tug. Other v1 classes a training script
commonly imports (Workspace, Dataset, Model ...) can be imported, so the import line does not
break a script, but using them raises NotImplementedError naming what was used.
"""

from .run import Run, _unsupported

__all__ = ["Run"]


class _UnsupportedMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise _unsupported("azureml.core.%s.%s" % (cls.__name__, name))


def _placeholder(name):
    def __init__(self, *args, **kwargs):
        raise _unsupported("azureml.core.%s" % name)

    return _UnsupportedMeta(
        name,
        (object,),
        {
            "__init__": __init__,
            "__module__": __name__,
            "__doc__": "Not supported by tug yet: using it raises NotImplementedError.",
        },
    )


# Importable for compatibility, unusable: each use raises NotImplementedError.
_PLACEHOLDERS = (
    "Workspace", "Experiment", "Dataset", "Datastore", "Environment", "Model",
    "ScriptRunConfig", "RunConfiguration", "ComputeTarget", "Keyvault", "ScriptRun",
    "Image", "Webservice", "ContainerRegistry",
)


def __getattr__(name):
    if name in _PLACEHOLDERS:
        cls = _placeholder(name)
        globals()[name] = cls
        return cls
    raise AttributeError(
        "module 'azureml.core' has no attribute %r (tug's azureml.core provides Run only)" % name
    )
