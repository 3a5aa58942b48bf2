"""@rawhttp run() (legacy azureml.contrib.services imports) returning AMLResponse objects."""

import json

from azureml.contrib.services.aml_request import AMLRequest, rawhttp  # noqa: F401
from azureml.contrib.services.aml_response import AMLResponse


def init():
    pass


@rawhttp
def run(request):
    mode = request.args.get("mode")
    if mode == "image":
        return AMLResponse(b"\x89PNG\r\n\x00\xff", 200, {"Content-Type": "image/png", "X-Multi": "a, b,c"})
    if mode == "lowerct":
        return AMLResponse(b"x", 200, {"content-type": "image/png"})
    if mode == "none":
        return AMLResponse(None, 201)
    if mode == "s500":
        return AMLResponse("bad", 503)
    if mode == "json":
        return AMLResponse({"a": [1, 2]}, 202, json_str=True)
    if mode == "failed":
        return AMLResponse("x", 200, run_function_failed=True)
    if mode == "mutate":
        resp = AMLResponse("text", 404)
        resp.headers["Access-Control-Allow-Origin"] = "*"
        resp.mimetype = "text/plain"
        return resp
    if mode == "badheader":
        resp = AMLResponse("x", 200)
        resp.headers.add("Bad Name", "v")
        return resp
    if mode == "plain":
        return {"plain": True}
    if mode == "getjson":
        return {"json": request.get_json()}
    files = {k: [f.filename, f.read().decode("latin-1"), f.content_type] for k, f in request.files.items()}
    return {
        "method": request.method, "path": request.path, "full_path": request.full_path,
        "url": request.url, "host": request.host, "remote_addr": request.remote_addr,
        "args": request.args.to_dict(flat=False), "x": request.args.getlist("x"),
        "headers": [list(kv) for kv in request.headers.items()],
        "h_ci": request.headers.get("X-CUSTOM"), "content_type": request.content_type,
        "mimetype": request.mimetype, "is_json": request.is_json,
        "data": request.get_data(as_text=True), "json": request.get_json(silent=True),
        "form": request.form.to_dict(flat=False), "files": files,
        "type": type(request).__module__.split(".")[0],
        "same_module": __import__("sys").modules["azureml.contrib.services.aml_request"] is
        __import__("sys").modules["azureml_inference_server_http.api.aml_request"],
        "dumped": json.dumps(dict(request.headers)) is not None,
    }
