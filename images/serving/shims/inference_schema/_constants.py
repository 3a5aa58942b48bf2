"""Names shared by the inference_schema stand-in's decorators and schema registry."""

INPUT_SCHEMA_ATTR = "input_schema"
OUTPUT_SCHEMA_ATTR = "output_schema"
ALL_SUPPORTED_VERSIONS = ["2.0", "3.0", "3.1"]
