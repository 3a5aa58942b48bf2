"""`NumpyParameterType` of the inference_schema stand-in (numpy imported when one is built).

Input lists become arrays of the sample's dtype; with `enforce_shape` the number of dimensions
and every dimension but the first must match the sample's.
"""

from ._constants import SWAGGER_FORMAT_CONSTANTS
from ._swagger_from_dtype import Dtype2Swagger
from .abstract_parameter_type import AbstractParameterType

_TIME_UNITS = {
    "years": "Y", "months": "M", "weeks": "W", "days": "D", "hours": "h", "minutes": "m",
    "seconds": "s", "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns",
    "picoseconds": "ps", "femtoseconds": "fs", "attoseconds": "as",
}


def _np():
    import numpy

    return numpy


class NumpyParameterType(AbstractParameterType):
    """A parameter declared by a sample numpy array."""

    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True):
        if not isinstance(sample_input, _np().ndarray):
            raise Exception("Invalid sample input provided, must provide a sample Numpy array.")
        super().__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape

    def deserialize_input(self, input_data):
        np = _np()
        if isinstance(input_data, np.ndarray):
            return input_data
        if not isinstance(input_data, list):
            raise ValueError("Invalid input format: expected an array of items.")
        if self.enforce_column_type:
            dtype = self.sample_input.dtype
            for i, item in enumerate(input_data):
                input_data[i] = self._preprocess_json_input(item, dtype)
            array = np.array(input_data, dtype=dtype)
        else:
            array = np.array(input_data)
        if self.enforce_shape:
            expected = self.sample_input.shape
            if len(array.shape) != len(expected):
                raise ValueError(
                    "Invalid input array: an array with {0} dimensions is expected; "
                    "input has {1} [shape {2}]".format(len(expected), len(array.shape), array.shape))
            for dim in range(1, len(expected)):
                if array.shape[dim] != expected[dim]:
                    raise ValueError(
                        "Invalid input array: array has size {0} on dimension #{1}, "
                        "while expected value is {2}".format(array.shape[dim], dim, expected[dim]))
        return array

    def input_to_swagger(self):
        np = _np()
        dtype, shape = self.sample_input.dtype, self.sample_input.shape
        if not isinstance(shape, tuple):
            raise TypeError("Invalid shape parameter: must be a tuple with array dimensions")
        if not isinstance(dtype, np.dtype):
            raise TypeError("Invalid data_type parameter: must be a valid numpy.dtype")
        schema = Dtype2Swagger.handle_swagger_array(Dtype2Swagger.convert_dtype_to_swagger(dtype), shape)
        schema["example"] = self._get_swagger_sample(self.sample_input, len(self.sample_input), schema["items"])
        schema["format"] = SWAGGER_FORMAT_CONSTANTS.NUMPY_FORMAT
        return schema

    @classmethod
    def _preprocess_json_input(cls, json_input, sample_dtype):
        np = _np()
        if len(sample_dtype) > 0:
            # Structured dtype: a record given as a list (by position) or a dict (by name).
            fields = []
            for i in range(len(sample_dtype)):
                value = json_input[sample_dtype.names[i]] if type(json_input) is dict else json_input[i]
                fields.append(cls._preprocess_json_input(value, sample_dtype[i]))
            return tuple(fields)
        name = sample_dtype.name.lower()
        if name.startswith("datetime"):
            return np.datetime64(json_input)
        if name.startswith("timedelta"):
            return cls._parse_timedelta(json_input)
        return json_input

    @classmethod
    def _parse_timedelta(cls, timedelta_str):
        parts = timedelta_str.split(None, 1)
        if len(parts) != 2:
            raise ValueError("Invalid numpy.timestamp64 value specified: {0}. "
                             "Format should be <value> <time_unit_code>".format(timedelta_str))
        unit = parts[1].lower()
        if unit not in _TIME_UNITS:
            raise ValueError("Invalid numpy.timestamp64 value specified: {0}. "
                             "Unrecognized time unit code".format(timedelta_str))
        return _np().timedelta64(int(parts[0]), _TIME_UNITS[unit])

    @classmethod
    def _get_swagger_object_schema(cls):
        return {"type": "object", "properties": {}}
