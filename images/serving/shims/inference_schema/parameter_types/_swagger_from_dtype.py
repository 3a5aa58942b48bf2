"""numpy dtype -> Swagger type mapping for the inference_schema stand-in (no numpy import:
it only reads attributes of the dtype objects it is given)."""

_SIMPLE = {
    "int8": ("integer", "int8"), "int16": ("integer", "int16"),
    "int32": ("integer", "int32"), "int64": ("integer", "int64"),
    "uint8": ("integer", "uint8"), "uint16": ("integer", "uint16"),
    "uint32": ("integer", "uint32"), "uint64": ("integer", "uint64"),
    "bool": ("boolean", None), "float16": ("number", "float"), "float32": ("number", "float"),
    "float64": ("number", "double"), "object": ("object", None),
}


def _schema(kind, fmt=None):
    return {"type": kind, "format": fmt} if fmt else {"type": kind}


class Dtype2Swagger:
    """Swagger schemas of numpy dtypes: scalars, sub-arrays and structured records."""

    @staticmethod
    def convert_dtype_to_swagger(dtype):
        if len(dtype) == 0:
            if dtype.subdtype is None:
                return Dtype2Swagger._convert_simple_dtype_to_swagger(dtype)
            item = Dtype2Swagger.convert_dtype_to_swagger(dtype.subdtype[0])
            return Dtype2Swagger.handle_swagger_array(item, dtype.subdtype[1])
        return {"type": "object",
                "properties": {name: Dtype2Swagger.convert_dtype_to_swagger(dtype[name])
                               for name in dtype.names}}

    @staticmethod
    def handle_swagger_array(item_swagger_type, shape):
        schema = {"type": "array", "items": item_swagger_type}
        for _ in range(len(shape) - 1):
            schema = {"type": "array", "items": schema}
        return schema

    @staticmethod
    def get_swagger_object_schema():
        return {"type": "object", "properties": {}}

    @staticmethod
    def _convert_simple_dtype_to_swagger(numpy_type):
        name = numpy_type.name.lower()
        if name in _SIMPLE:
            return _schema(*_SIMPLE[name])
        if name.startswith("datetime"):
            return _schema("string", "date-time")
        if name.startswith("str"):
            return _schema("string")
        if name.startswith("bytes") or name.startswith("void"):
            return _schema("string", "binary")
        if name.startswith("timedelta"):
            return _schema("string", "timedelta")
        raise TypeError("We currently do not support extracting schema from data of type {}".format(name))
