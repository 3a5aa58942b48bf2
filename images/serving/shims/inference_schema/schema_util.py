"""Schema registry of the inference_schema stand-in and the queries azmlinfsrv makes of it.

Decorated functions are recorded under "<module>.<name>" of the undecorated function, as in
inference-schema, so a run() wrapped by further decorators is still recognised:
`is_schema_decorated`, `get_input_schema`, `get_output_schema`, `get_supported_versions`.
"""

import copy

from ._constants import ALL_SUPPORTED_VERSIONS, INPUT_SCHEMA_ATTR, OUTPUT_SCHEMA_ATTR

__functions_schema__ = {}
__versions__ = {}

# Attribute the stand-in's wrappers carry: the function they ultimately decorate.
BASE_ATTR = "__tug_schema_base__"


def _base_function(func):
    """The user's undecorated function behind `func`.

    Our own wrappers name it directly; other decorators are looked through via `__wrapped__`
    (functools.wraps) or, like inference-schema does, via the callables in their closure.
    """
    seen = set()

    def search(obj):
        if id(obj) in seen:
            return None
        seen.add(id(obj))
        base = getattr(obj, BASE_ATTR, None)
        if base is not None:
            return base
        inner = [getattr(obj, "__wrapped__", None)]
        for cell in getattr(obj, "__closure__", None) or ():
            try:
                inner.append(cell.cell_contents)
            except ValueError:  # empty cell
                pass
        for candidate in inner:
            if candidate is not None and callable(candidate):
                found = search(candidate)
                if found is not None:
                    return found
        return None

    found = search(func)
    if found is not None:
        return found
    seen.clear()
    while getattr(func, "__wrapped__", None) is not None and id(func) not in seen:
        seen.add(id(func))
        func = func.__wrapped__
    return func


def _qualified_name(func):
    base = _base_function(func)
    return "%s.%s" % (getattr(base, "__module__", "<unknown>"), getattr(base, "__name__", "<unknown>"))


def get_input_schema(func):
    """The Swagger schema of the function's inputs ({"type": "object"} when undeclared)."""
    return __functions_schema__.get(_qualified_name(func), {}).get(INPUT_SCHEMA_ATTR, {"type": "object"})


def get_output_schema(func):
    """The Swagger schema of the function's result ({"type": "object"} when undeclared)."""
    return __functions_schema__.get(_qualified_name(func), {}).get(OUTPUT_SCHEMA_ATTR, {"type": "object"})


def get_supported_versions(func):
    """Swagger versions every decorator of `func` can be described in, sorted."""
    entry = __versions__.get(_qualified_name(func), {})
    inputs = entry.get(INPUT_SCHEMA_ATTR, {}).get("versions", [])
    outputs = entry.get(OUTPUT_SCHEMA_ATTR, {}).get("versions", [])
    if inputs and outputs:
        versions = set(inputs) & set(outputs)
    elif inputs or outputs:
        versions = set(inputs or outputs)
    else:
        versions = ALL_SUPPORTED_VERSIONS
    return sorted(versions)


def get_schemas_dict():
    """A deep copy of every recorded schema, by qualified function name."""
    return copy.deepcopy(__functions_schema__)


def is_schema_decorated(func):
    """Whether @input_schema or @output_schema was applied to `func`."""
    return _qualified_name(func) in __functions_schema__
