"""tug's fallback for the `azureml` namespace, used only when no other `azureml` exists.

It extends its path like the Azure ML SDK's namespace package (and tug's own helper at
/opt/tug/python/azureml), so `azureml.contrib.services` from this shims directory and any
installed `azureml.*` distribution are importable side by side.
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
