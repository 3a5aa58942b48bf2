"""`PandasParameterType` of the inference_schema stand-in (pandas imported when one is built).

Input JSON in the declared `orient` (records, split, index, columns, values, table) becomes a
DataFrame through `pandas.read_json`; column types and shape follow the sample unless turned
off.
"""

import json
from io import StringIO
from warnings import warn

from ._constants import SWAGGER_FORMAT_CONSTANTS
from ._util import get_swagger_for_list, get_swagger_for_nested_dict
from .abstract_parameter_type import AbstractParameterType

_ORIENTS = ("split", "records", "index", "columns", "values", "table")


def _pd():
    import pandas

    return pandas


def _time_format(dtype):
    text = str(dtype)
    if text.startswith("datetime"):
        return "date-time"
    if text.startswith("timedelta"):
        return "timedelta"
    return None


class PandasParameterType(AbstractParameterType):
    """A parameter declared by a sample DataFrame."""

    def __init__(self, sample_input, enforce_column_type=True, enforce_shape=True,
                 apply_column_names=False, orient="records"):
        if not isinstance(sample_input, _pd().DataFrame):
            raise Exception("Invalid sample input provided, must provide a sample Pandas Dataframe.")
        super().__init__(sample_input)
        self.enforce_column_type = enforce_column_type
        self.enforce_shape = enforce_shape
        if apply_column_names:
            warn("apply_column_names is a deprecated parameter and will be removed in a future update",
                 DeprecationWarning, stacklevel=2)
        self.apply_column_names = apply_column_names
        if orient not in _ORIENTS:
            raise Exception("Invalid orient provided, must be one of ('split', 'records', 'index', "
                            "'columns', 'values', or 'table')")
        self.orient = orient

    def deserialize_input(self, input_data):
        pd = _pd()
        if isinstance(input_data, pd.DataFrame):
            return input_data
        if not isinstance(input_data, (list, dict)):
            raise Exception("Error, unable to convert input of type {} into Pandas Dataframe".format(
                type(input_data)))
        frame = pd.read_json(StringIO(json.dumps(input_data)), orient=self.orient, dtype=False)
        if self.apply_column_names:
            frame.columns = self.sample_input.columns.copy()
        if self.enforce_column_type:
            sample_types = self.sample_input.dtypes.to_dict()
            wanted = {col: sample_types.get(col, object) for col in frame.columns}
            for col, kind in wanted.items():
                if str(kind).startswith("timedelta"):
                    frame[col] = pd.to_timedelta(frame[col])
            try:
                frame = frame.astype(dtype=wanted)
            except TypeError as ex:
                if "Cannot use .astype to convert from timezone-naive dtype to timezone-aware dtype" in ex.args[0]:
                    raise Exception("As of pandas 2.0, can no longer convert from timezone-naive dtype to "
                                    "timezone-aware dtype. Please make sure that the provided input data "
                                    "matches the expected timezone handling of the provided deployment "
                                    "sample.") from ex
                raise
        if self.enforce_shape:
            expected = self.sample_input.shape
            if len(frame.shape) != len(expected):
                raise ValueError(
                    "Invalid input data frame: a data frame with {0} dimensions is expected; "
                    "input has {1} [shape {2}]".format(len(expected), len(frame.shape), frame.shape))
            for dim in range(1, len(expected)):
                if frame.shape[dim] != expected[dim]:
                    raise ValueError(
                        "Invalid input data frame: data frame has size {0} on dimension #{1}, "
                        "while expected value is {2}".format(frame.shape[dim], dim, expected[dim]))
        return frame

    def input_to_swagger(self):
        sample = self.sample_input
        json_sample = json.loads(sample.to_json(orient=self.orient, date_format="iso"))
        if self.orient in ("records", "values"):
            schema = get_swagger_for_list(json_sample)
        else:
            schema = get_swagger_for_nested_dict(json_sample)
        # JSON has no date/duration types: mark such columns with a string format.
        for column in sample.columns:
            fmt = _time_format(sample.dtypes[column])
            if fmt is None:
                continue
            name = str(column)
            if self.orient == "records":
                schema["items"]["properties"][name]["format"] = fmt
            elif self.orient == "index":
                for row in schema["properties"].values():
                    row["properties"][name]["format"] = fmt
            elif self.orient == "columns":
                for cell in schema["properties"][name]["properties"].values():
                    cell["format"] = fmt
            elif self.orient == "table":
                schema["properties"]["data"]["items"]["properties"][name]["format"] = fmt
        schema["format"] = SWAGGER_FORMAT_CONSTANTS.PANDAS_FORMAT.format(self.orient)
        return schema
