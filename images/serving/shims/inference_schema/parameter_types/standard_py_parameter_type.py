"""`StandardPythonParameterType` of the inference_schema stand-in.

Declares a parameter by a plain Python sample. Conversion only checks the input's type (an
int is accepted for a float sample); dates/times are parsed from strings and bytes from
base64. Dicts and lists may hold other parameter types, converted recursively by the
decorator.
"""

import base64
import datetime
import json

from ._constants import DATE_FORMAT, ERR_PYTHON_DATA_NOT_JSON_SERIALIZABLE
from ._util import handle_standard_types
from .abstract_parameter_type import AbstractParameterType


def _parse_datetime(text):
    # inference-schema uses dateutil; fall back to ISO 8601 when it is not installed.
    try:
        from dateutil import parser
    except ImportError:
        return datetime.datetime.fromisoformat(text)
    return parser.parse(text)


class StandardPythonParameterType(AbstractParameterType):
    """A parameter declared by a standard Python sample value."""

    def __init__(self, sample_input):
        super().__init__(sample_input)
        # Nested parameter types, converted by the decorator.
        self.sample_data_type_map = {}
        self.sample_data_type_list = []
        if self.sample_data_type is dict:
            self.sample_data_type_map = {k: v for k, v in sample_input.items()
                                         if isinstance(v, AbstractParameterType)}
        elif self.sample_data_type in (list, tuple):
            self.sample_data_type_list = [v for v in sample_input if isinstance(v, AbstractParameterType)]

    def deserialize_input(self, input_data):
        kind = self.sample_data_type
        if kind is datetime.date:
            # As inference-schema 1.8 calls it (date has no strptime before Python 3.14).
            input_data = datetime.date.strptime(input_data, DATE_FORMAT)
        elif kind is datetime.datetime:
            input_data = _parse_datetime(input_data)
        elif kind is datetime.time:
            input_data = _parse_datetime(input_data).timetz()
        elif kind in (bytes, bytearray):
            input_data = base64.b64decode(input_data.encode("utf-8"))
        if kind is float and type(input_data) is int:
            pass  # ints are welcome where floats are expected
        elif not isinstance(input_data, kind):
            raise ValueError("Invalid input data type to parse. Expected: {0} but got {1}".format(
                kind, type(input_data)))
        return input_data

    def input_to_swagger(self):
        if self.sample_input is None:
            raise ValueError("Sample input cannot be None")
        schema = handle_standard_types(self.sample_input)
        try:
            json.dumps(schema)
        except TypeError as ex:
            raise TypeError(ERR_PYTHON_DATA_NOT_JSON_SERIALIZABLE.format(str(ex)))
        return schema
