"""tug's stand-in for the `azureml_inference_server_http` package (azmlinfsrv 1.5.1).

Only the parts a scoring script imports are provided: `api.aml_request` (`rawhttp`,
`AMLRequest`), `api.aml_response` (`AMLResponse`) and `log_config` (named by logging.json
files copied from azmlinfsrv). The server itself is tug-infsrv. An installed
azureml-inference-server-http wins over this package (the shims directory is the last
sys.path entry).
"""

__version__ = "1.5.1"
