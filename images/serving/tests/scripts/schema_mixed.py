"""@input_schema whose sample is a mixed-type list: no Swagger 2 document (as in azmlinfsrv)."""

from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema


def init():
    pass


@input_schema("items", StandardPythonParameterType([1, "two"]))
def run(items):
    return items
