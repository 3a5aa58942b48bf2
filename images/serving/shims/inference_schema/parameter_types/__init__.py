"""Parameter types of the inference_schema stand-in; import the submodule you need
(`standard_py_parameter_type`, `numpy_parameter_type`, `pandas_parameter_type`), as with the
real package, so numpy/pandas are only needed by scripts that use them."""
