"""tug's stand-in for the ``azureml`` namespace (Azure ML SDK v1 compatibility).

Only ``azureml.core`` (``Run``) is provided, so v1 training scripts log to tug unchanged. The
package extends its path like the real SDK's namespace package, so other ``azureml.*``
distributions installed in the environment (``azureml.mlflow``, ``azureml.train`` ...) stay
importable next to it.
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
