"""Legacy `azureml.contrib.services` (SDK v1) names for the scoring-script request/response API.

As in azmlinfsrv, `aml_request` and `aml_response` here are aliases of
`azureml_inference_server_http.api.aml_request` / `.aml_response` (the installed package if
any, else tug's stand-in), so `@rawhttp` from either name sets the same flag.
"""

__path__ = __import__("pkgutil").extend_path(__path__, __name__)
