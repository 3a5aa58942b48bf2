"""tug's stand-in for the `inference_schema` package (inference-schema 1.8), stdlib only.

Scoring scripts use it to declare run()'s parameters (`@input_schema`) and result
(`@output_schema`); tug's worker reads the declarations to convert inputs and to generate
the Swagger documents, as azmlinfsrv does. The real package needs `wrapt`, `python-dateutil`
and `pytz`, which offline images may lack; this one needs nothing (numpy/pandas only for the
numpy/pandas parameter types, imported when such a type is built). Spark types are not
provided. An installed inference-schema wins (the shims directory is last on sys.path).
"""
