"""@input_schema with StandardPythonParameterType (new-style imports), defaults and headers."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("data", StandardPythonParameterType({"a": 1, "b": [1.0, 2.0]}))
@input_schema("k", StandardPythonParameterType(3.5))
@output_schema(StandardPythonParameterType({"out": 1}))
def run(data, k, opt=7, request_headers=None):
    return {"data": data, "k": k, "opt": opt, "header_names": sorted(request_headers)}
