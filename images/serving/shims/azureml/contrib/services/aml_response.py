"""Legacy alias: `azureml.contrib.services.aml_response` is `azureml_inference_server_http.api.aml_response`.

The module replaces itself in sys.modules with the real target (see aml_request.py here).
"""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("azureml_inference_server_http.api.aml_response")
