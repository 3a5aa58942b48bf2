"""`@input_schema` / `@output_schema` of the inference_schema stand-in.

Each decorator records a Swagger fragment built from its sample in `schema_util`'s registry
(when applied, as inference-schema does) and wraps the function. The input wrapper converts
the argument named `param_name` to the sample's type before calling the function (a list of
floats to a numpy array, records to a DataFrame...); a conversion failure raises inside
run(), which azmlinfsrv reports as a scoring-script error (500).
"""

import copy
import functools
import inspect

from ._constants import INPUT_SCHEMA_ATTR, OUTPUT_SCHEMA_ATTR
from .parameter_types.abstract_parameter_type import AbstractParameterType
from .schema_util import BASE_ATTR, __functions_schema__, __versions__, _base_function, _qualified_name

__all__ = ["input_schema", "output_schema"]


def input_schema(param_name, param_type, convert_to_provided_type=True, optional=False):
    """Declare (and convert) the run() parameter `param_name` as `param_type`."""
    if not isinstance(param_type, AbstractParameterType):
        raise Exception("Error, provided param_type must be a subclassof the AbstractParameterType.")
    fragment = {param_name: param_type.input_to_swagger()}
    versions = param_type.supported_versions()

    def decorate(func):
        base = _base_function(func)
        arg_names = inspect.getfullargspec(base).args
        _record_input(_qualified_name(func), arg_names, fragment)
        _record_versions(_qualified_name(func), INPUT_SCHEMA_ATTR, versions)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if convert_to_provided_type and not _is_hf_transformers_v2(args):
                if param_name not in kwargs and not optional:
                    if param_name not in arg_names:
                        raise Exception('Error, provided param_name "{}" is not in the decorated '
                                        "function.".format(param_name))
                    position = arg_names.index(param_name)
                    args = list(args)
                    args[position] = _deserialize_input_argument(args[position], param_type, param_name)
                    args = tuple(args)
                elif optional and (param_name not in kwargs or not kwargs[param_name]):
                    pass
                else:
                    kwargs[param_name] = _deserialize_input_argument(kwargs[param_name], param_type, param_name)
            return func(*args, **kwargs)

        setattr(wrapper, BASE_ATTR, base)
        return wrapper

    return decorate


def output_schema(output_type):
    """Declare run()'s result as `output_type` (documentation only; nothing is converted)."""
    if not isinstance(output_type, AbstractParameterType):
        raise Exception("Error, provided param_type must be a subclass of the AbstractParameterType.")
    schema = output_type.input_to_swagger()
    versions = output_type.supported_versions()

    def decorate(func):
        base = _base_function(func)
        name = _qualified_name(func)
        entry = __functions_schema__.setdefault(name, {})
        if OUTPUT_SCHEMA_ATTR in entry:
            raise Exception("Error, output schema already defined for function: {}.".format(name))
        entry[OUTPUT_SCHEMA_ATTR] = schema
        _record_versions(name, OUTPUT_SCHEMA_ATTR, versions)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            return func(*args, **kwargs)

        setattr(wrapper, BASE_ATTR, base)
        return wrapper

    return decorate


def _is_hf_transformers_v2(args):
    # inference-schema leaves a {"input_string", "parameters"} payload (Hugging Face
    # transformers v2 scoring) unconverted.
    return bool(args) and type(args[0]) is dict and set(args[0]) == {"parameters", "input_string"}


def _record_input(name, arg_names, fragment):
    entry = __functions_schema__.setdefault(name, {})
    schema = entry.get(INPUT_SCHEMA_ATTR)
    if schema is None:
        # Every positional parameter is listed, declared or not (request_headers included).
        schema = entry[INPUT_SCHEMA_ATTR] = {
            "type": "object",
            "properties": {arg: {} for arg in arg_names},
            "example": {arg: "" for arg in arg_names},
        }
    for key, item in fragment.items():
        item = copy.deepcopy(item)
        schema["example"][key] = item.pop("example")
        schema["properties"][key] = item


def _record_versions(name, attr, versions):
    # The decorator applied last (the outermost) decides, as in inference-schema.
    __versions__.setdefault(name, {})[attr] = {"type": "object", "versions": versions}


def _deserialize_input_argument(input_data, param_type, param_name):
    """Convert `input_data` to `param_type`, recursing into dicts/lists of parameter types."""
    sample_type = param_type.sample_data_type
    if sample_type is dict:
        if not isinstance(input_data, dict):
            raise ValueError("Invalid input data type to parse. Expected: {0} but got {1}".format(
                sample_type, type(input_data)))
        for key, inner_type in param_type.sample_data_type_map.items():
            if key in input_data:
                input_data[key] = _deserialize_input_argument(input_data[key], inner_type, key)
    elif sample_type in (list, tuple):
        if not isinstance(input_data, (list, tuple)):
            raise ValueError("Invalid input data type to parse. Expected: {0} but got {1}".format(
                sample_type, type(input_data)))
        inner_types = param_type.sample_data_type_list
        if inner_types:
            # Only the first declared item type is used (Swagger 2 has no mixed arrays).
            input_data = [_deserialize_input_argument(x, inner_types[0], param_name) for x in input_data]
    elif not isinstance(input_data, sample_type):
        input_data = param_type.deserialize_input(input_data)
    return input_data
