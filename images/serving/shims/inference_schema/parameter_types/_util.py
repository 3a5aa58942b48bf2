"""Swagger schemas of plain Python samples (inference_schema stand-in).

`handle_standard_types(sample)` maps int/float/str/bool/bytes/date/time/datetime/list/dict
(nested, possibly holding parameter types) to a schema with the sample as `example`.
"""

import base64
from datetime import date, datetime, time, timezone

from ._constants import DATE_FORMAT, DATETIME_FORMAT, TIME_FORMAT
from .abstract_parameter_type import AbstractParameterType


def handle_standard_types(sample_input):
    """Swagger schema (with `example`) of a standard Python value."""
    kind = type(sample_input)
    if kind is int:
        return {"type": "integer", "format": "int64", "example": sample_input}
    if kind in (bytes, bytearray):
        # Not JSON: the example is the base64 text.
        return {"type": "string", "format": "byte",
                "example": base64.b64encode(sample_input).decode("utf-8")}
    if kind is str:
        return {"type": "string", "example": sample_input}
    if kind is float:
        return {"type": "number", "format": "double", "example": sample_input}
    if kind is bool:
        return {"type": "boolean", "example": sample_input}
    if kind is date:
        return {"type": "string", "format": "date", "example": sample_input.strftime(DATE_FORMAT)}
    if kind is datetime:
        value = sample_input if sample_input.tzinfo is not None else sample_input.replace(tzinfo=timezone.utc)
        return {"type": "string", "format": "date-time", "example": value.strftime(DATETIME_FORMAT)}
    if kind is time:
        value = sample_input if sample_input.tzinfo is not None else sample_input.replace(tzinfo=timezone.utc)
        return {"type": "string", "format": "time", "example": value.strftime(TIME_FORMAT)}
    if kind in (list, tuple, range):
        return get_swagger_for_list(sample_input)
    if kind is dict:
        return get_swagger_for_nested_dict(sample_input)
    return {"type": "object", "example": sample_input}


def _item_schema(item):
    if isinstance(item, AbstractParameterType):
        return item.input_to_swagger()
    return handle_standard_types(item)


def get_swagger_for_list(python_data):
    """Array schema; the item schema is the last item's (examples keep every item)."""
    items = {"type": "object"}
    example = []
    if python_data:
        first_is_type = issubclass(type(python_data[0]), AbstractParameterType)
        for data in python_data:
            items = data.input_to_swagger() if first_is_type else handle_standard_types(data)
            example.append(items.pop("example"))
    return {"type": "array", "items": items, "example": example}


def get_swagger_for_nested_dict(python_data):
    """Object schema: every key required, one property per key."""
    properties, examples = {}, {}
    for key, data in python_data.items():
        schema = _item_schema(data)
        examples[key] = schema.pop("example")
        properties[key] = schema
    return {"type": "object", "required": list(python_data), "properties": properties,
            "example": examples}
