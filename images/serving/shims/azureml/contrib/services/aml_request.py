"""Legacy alias: `azureml.contrib.services.aml_request` is `azureml_inference_server_http.api.aml_request`.

The module replaces itself in sys.modules with the real target, so both names are the same
module object (one `_rawHttpRequested` flag), as azmlinfsrv's own aliasing makes them.
"""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("azureml_inference_server_http.api.aml_request")
