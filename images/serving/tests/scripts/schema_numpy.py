"""@input_schema with numpy and pandas parameter types (tests skip it without numpy/pandas)."""

import numpy as np
import pandas as pd
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema, output_schema


def init():
    pass


@input_schema("arr", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
@input_schema("df", PandasParameterType(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})))
@output_schema(NumpyParameterType(np.array([1.0])))
def run(arr, df):
    return {"arr_type": type(arr).__name__, "shape": list(arr.shape), "sum": float(arr.sum()),
            "df_type": type(df).__name__, "columns": list(df.columns), "rows": len(df)}
