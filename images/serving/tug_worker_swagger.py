"""Swagger / OpenAPI documents of a scoring script, as azmlinfsrv 1.5.1 serves them.

`build_documents()` returns the text `GET /swagger.json?version=2|3|3.1` answers with, per
version: the user's file in AML_APP_ROOT when there is one (`swagger.json` or
`swagger2.json` for 2, `swagger3.json`, `swagger3.1.json`), else a document generated from
the service settings and run()'s inference-schema declarations (an undecorated run() is
described as `{"type": "object", "example": {}}`). A version the declarations cannot be
described in (Swagger 2 and mixed-type arrays) is left out.

The text is `json.dumps` of the document with Python's defaults, byte for byte what
azmlinfsrv sends (key order, `", "` separators, bare NaN in examples).
"""

import json
import os

__all__ = ["build_documents", "SwaggerFileError"]

# (key in READY, aliases inference-schema reports, user files in AML_APP_ROOT, first wins)
_VERSIONS = (
    ("2", ("2", "2.0"), ("swagger.json", "swagger2.json")),
    ("3", ("3", "3.0"), ("swagger3.json",)),
    ("3.1", ("3.1",), ("swagger3.1.json",)),
)

_ERROR_SCHEMA = {"type": "object", "properties": {"message": {"type": "string"}}}
_FAILED = "The service failed to execute due to an error."
_HEALTH_DESC = "Simple health check endpoint to ensure the service is up at any given point."
_HEALTHY_DESC = "If service is up and running, this response will be returned with the content 'Healthy'"
_SCORE_DESC = "Run web service's model and get the prediction output"
_INPUT_DESC = "The input payload for executing the real-time machine learning service."
_OUTPUT_DESC = "The service processed the input correctly and provided a result prediction, if applicable."
_BEARER = {"type": "apiKey", "name": "Authorization", "in": "header",
           "description": "For example: Bearer abc123"}


class SwaggerFileError(Exception):
    """A swagger file in AML_APP_ROOT exists but is not readable JSON (azmlinfsrv fails to start)."""


def build_documents(run, app_root, service_name, service_version, path_prefix, schema_util, log):
    """{"2": text, "3": text, "3.1": text} for the versions this script can be described in.

    `schema_util` is the imported `inference_schema.schema_util` module, or None when the
    script never imported inference_schema (then run() cannot be decorated).
    """
    decorated = schema_util is not None and schema_util.is_schema_decorated(run)
    if decorated:
        supported = set(schema_util.get_supported_versions(run))
        input_schema = schema_util.get_input_schema(run)
        output_schema = schema_util.get_output_schema(run)
    else:
        supported = {"2.0", "3.0", "3.1"}
        input_schema = output_schema = {"type": "object", "example": {}}
    prefix = "/" + path_prefix.strip("/") if path_prefix else ""
    docs, skipped = {}, []
    for key, aliases, files in _VERSIONS:
        text = _user_file(app_root, files, key, log)
        if text is None and any(a in supported for a in aliases):
            doc = _generate(key, service_name, service_version, prefix, input_schema, output_schema)
            text = json.dumps(doc)
        if text is None:
            skipped.append(key)
        else:
            docs[key] = text
    if docs and skipped:
        log.info("Swaggers are prepared for versions [%s] and skipped for versions [%s].",
                 ", ".join(docs), ", ".join(skipped))
    elif docs:
        log.info("Swaggers are prepared for the following versions: [%s].", ", ".join(docs))
    else:
        log.info("No swagger is prepared.")
    return docs


def _user_file(app_root, names, version, log):
    for name in names:
        path = os.path.join(app_root, name)
        try:
            with open(path, "r", encoding="utf-8") as fh:
                doc = json.load(fh)
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as ex:
            raise SwaggerFileError("cannot load %s: %s" % (path, ex)) from ex
        log.info("Loaded user's swagger file for version [%s] from %s", version, path)
        return json.dumps(doc)
    return None


def _info(service_name, service_version):
    return {"title": service_name,
            "description": "API specification for the Azure Machine Learning service " + service_name,
            "version": service_version}


def _generate(version, service_name, service_version, prefix, input_schema, output_schema):
    if version == "2":
        return _swagger2(service_name, service_version, prefix, input_schema, output_schema)
    doc = _openapi3(service_name, service_version, prefix, input_schema, output_schema)
    if version == "3.1":
        doc["openapi"] = "3.1.0"
    return doc


def _swagger2(name, version, prefix, input_schema, output_schema):
    ref = lambda what: {"$ref": "#/definitions/" + what}  # noqa: E731
    failed = {"description": _FAILED, "schema": ref("ErrorResponse")}
    return {
        "swagger": "2.0",
        "info": _info(name, version),
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {"Bearer": dict(_BEARER)},
        "paths": {
            prefix + "/": {"get": {
                "operationId": "ServiceHealthCheck",
                "description": _HEALTH_DESC,
                "responses": {
                    "200": {"description": _HEALTHY_DESC, "schema": {"type": "string"},
                            "examples": {"application/json": "Healthy"}},
                    "default": dict(failed)}}},
            prefix + "/score": {"post": {
                "operationId": "RunMLService",
                "description": _SCORE_DESC,
                "security": [{"Bearer": []}],
                "parameters": [{"name": "serviceInputPayload", "in": "body", "description": _INPUT_DESC,
                                "schema": ref("ServiceInput")}],
                "responses": {
                    "200": {"description": _OUTPUT_DESC, "schema": ref("ServiceOutput")},
                    "default": dict(failed)}}},
            prefix + "/swagger.json": {"get": {
                "operationId": "GetSwaggerSpec",
                "description": "Get the Swagger specification.",
                "parameters": [{"name": "version", "in": "query", "required": False, "type": "integer",
                                "enum": [2, 3]}],
                "responses": {
                    "200": {"description": "The Swagger specification.", "schema": {"type": "string"}},
                    "default": dict(failed)}}},
        },
        "definitions": {
            "ServiceInput": input_schema,
            "ServiceOutput": output_schema,
            "ErrorResponse": json.loads(json.dumps(_ERROR_SCHEMA)),
        },
    }


def _openapi3(name, version, prefix, input_schema, output_schema):
    def content(media, schema):
        return {media: {"schema": schema}}

    def ref(what):
        return {"$ref": "#/components/schemas/" + what}

    def failed():
        return {"description": _FAILED, "content": content("application/json", ref("ErrorResponse"))}

    return {
        "openapi": "3.0.3",
        "info": _info(name, version),
        "security": [{"Bearer": []}],
        "paths": {
            prefix + "/": {"get": {
                "operationId": "ServiceHealthCheck",
                "description": _HEALTH_DESC,
                "responses": {
                    "200": {"description": _HEALTHY_DESC,
                            "content": content("text/plain", {"type": "string", "example": "Healthy"})},
                    "default": failed()}}},
            prefix + "/score": {"post": {
                "operationId": "RunMLService",
                "description": _SCORE_DESC,
                "security": [{"Bearer": []}],
                "requestBody": {"description": _INPUT_DESC,
                                "content": content("application/json", ref("ServiceInput"))},
                "responses": {
                    "200": {"description": _OUTPUT_DESC,
                            "content": content("application/json", ref("ServiceOutput"))},
                    "default": failed()}}},
            prefix + "/swagger.json": {"get": {
                "operationId": "GetSwaggerSpec",
                "description": "Get the Swagger specification.",
                "parameters": [{"name": "version", "in": "query", "required": False,
                                "schema": {"type": "integer", "enum": [2, 3]}}],
                "responses": {
                    "200": {"description": "The Swagger specification.",
                            "content": content("text/plain", {"type": "string"})},
                    "default": failed()}}},
        },
        "components": {
            "schemas": {
                "ServiceInput": input_schema,
                "ServiceOutput": output_schema,
                "ErrorResponse": json.loads(json.dumps(_ERROR_SCHEMA)),
            },
            "securitySchemes": {"Bearer": dict(_BEARER)},
        },
    }
