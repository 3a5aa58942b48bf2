"""Namespace part `azureml.contrib` of tug's scoring shims (path extended like the SDK's)."""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
