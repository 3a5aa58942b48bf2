"""Base class of the inference_schema stand-in's parameter types.

A parameter type holds a sample value: `input_to_swagger()` describes it (with the sample as
`example`), `deserialize_input()` turns JSON-decoded input into the sample's type. Scripts
may subclass it for their own types, as with inference-schema.
"""

import base64
import datetime as dt
from abc import ABC, abstractmethod


class AbstractParameterType(ABC):
    """A run() parameter or result declared by a sample value."""

    def __init__(self, sample_input):
        self.sample_input = sample_input
        self.sample_data_type = type(sample_input)

    def supported_versions(self):
        """Swagger versions the sample can be described in (no 2.0 for mixed-type arrays)."""
        versions = ["3.0", "3.1"]
        if self._supports_swagger_2(self.input_to_swagger()["example"]):
            versions.append("2.0")
        return sorted(versions)

    def _supports_swagger_2(self, obj):
        if type(obj) is list and obj:
            first = type(obj[0])
            for item in obj:
                if type(item) is not first:
                    return False
                if type(item) is list and not self._supports_swagger_2(item):
                    return False
        elif type(obj) is dict:
            return all(self._supports_swagger_2(v) for v in obj.values())
        return True

    @abstractmethod
    def deserialize_input(self, input_data):
        """Convert JSON-like input into the declared type."""

    @abstractmethod
    def input_to_swagger(self):
        """The Swagger schema object of the sample, with an `example`."""

    # Helpers the numpy/pandas types use to turn sample records into JSON examples.

    @classmethod
    def _date_item_to_string(cls, date_item):
        return date_item.astype(dt.datetime).strftime("%Y-%m-%d")

    @classmethod
    def _timestamp_item_to_string(cls, date_item):
        try:
            from pandas import Timestamp
        except ImportError:
            return cls._datetime_item_to_string(date_item)
        if type(date_item) is Timestamp:
            return date_item.strftime("%Y-%m-%d %H:%M:%S,%f")
        return cls._datetime_item_to_string(date_item)

    @classmethod
    def _datetime_item_to_string(cls, date_item):
        return date_item.astype(dt.datetime).strftime("%Y-%m-%d %H:%M:%S,%f")

    @classmethod
    def _get_swagger_sample(cls, iterable_records, max_count, item_schema):
        return [cls._get_data_record_swagger_sample(item_schema, iterable_records[i])
                for i in range(max_count)]

    @classmethod
    def _get_data_record_swagger_sample(cls, item_swagger_schema, data_item):
        kind = item_swagger_schema["type"]
        if kind == "object":
            if "properties" in item_swagger_schema:
                props = item_swagger_schema["properties"]
                return {f: cls._get_data_record_swagger_sample(props[f], data_item[f]) for f in props}
            if "additionalProperties" in item_swagger_schema:
                inner = item_swagger_schema["additionalProperties"]
                return {f: cls._get_data_record_swagger_sample(inner, data_item[f]) for f in data_item}
            return str(data_item)
        if kind == "array":
            inner = item_swagger_schema["items"]
            return [cls._get_data_record_swagger_sample(inner, data_item[i]) for i in range(len(data_item))]
        if kind == "number":
            return float(data_item)
        if kind == "integer":
            return int(data_item)
        if kind == "bool":
            return bool(data_item)
        fmt = item_swagger_schema.get("format") if kind == "string" else None
        if fmt == "date":
            return cls._date_item_to_string(data_item)
        if fmt == "date-time":
            return cls._timestamp_item_to_string(data_item)
        if fmt == "binary":
            return base64.b64encode(data_item).decode("utf-8")
        return str(data_item)
