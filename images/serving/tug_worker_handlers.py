"""Per-request rules of tug's scoring worker: azmlinfsrv 1.5.1's /score behaviour.

`make_handler()` returns, once per worker, a function `handle(meta, body)` for the script's
call shape (PROTOCOL.md: `api`):

- plain: run(<body decoded as UTF-8>) (GET: the query as a JSON string);
- schema: run(**<keys of the JSON body object>) (GET: the query), defaults for absent keys;
- rawhttp: run(<Flask request>) (tug's AMLRequest stand-in without Flask);

each optionally with `request_headers=<dict>`. A handler returns `(status, headers as JSON
text, run_failed, exec_ms, body bytes)`; tug_worker.py frames it. Failures of the script
are answered here with azmlinfsrv's bodies; tracebacks go to the log, never to the client.
"""

import io
import json
import re
import signal
import sys
import time
import traceback

MSG_RUN_FAILED = "An unexpected error occurred in scoring script. Check the logs for more info."
MSG_INTERNAL = "An unexpected internal error occurred. Check the logs for more info."

JSON_CT = '[["content-type","application/json"]]'
HTML_CT = '[["content-type","text/html; charset=utf-8"]]'

_http = None  # the shims' _tug_http, imported by make_handler once the shims are on sys.path
log = None
_response_types = ()  # AMLResponse / Werkzeug Response classes run() may return

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")  # header values: Latin-1 text, no controls
_HOP_BY_HOP = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive"))


def error(status, message, run_failed=False):
    """An azmlinfsrv error response: JSON {"message": ...}, no exec time."""
    return status, JSON_CT, run_failed, None, json.dumps({"message": message}).encode()


RUN_FAILED = error(500, MSG_RUN_FAILED, True)
INTERNAL_ERROR = error(500, MSG_INTERNAL)
OPTIONS_OK = (200, HTML_CT, False, None, b"")


def log_exception():
    log.error("Encountered Exception: %s", traceback.format_exc())


def make_handler(api, run, params, has_headers, default_timeout_ms, logger):
    """The request handler for this script (see the module docstring)."""
    global _http, log, _response_types
    import _tug_http

    _http, log = _tug_http, logger
    request_class = _request_class() if api == "rawhttp" else None
    _response_types = _known_response_types()
    # Installed once rather than around every call as azmlinfsrv does (see _make_invoker).
    signal.signal(signal.SIGALRM, _on_alarm)
    invoke = _make_invoker(run, default_timeout_ms)
    if api == "rawhttp":
        return _rawhttp_handler(invoke, params[0].name, has_headers, request_class)
    if api == "schema":
        return _schema_handler(invoke, params, has_headers)
    return _plain_handler(invoke, params[0].name, has_headers)


# -- calling run() -------------------------------------------------------------------------

_INF = float("inf")
# [deadline of the run() in progress (time.perf_counter() seconds; inf when none),
#  when the pending SIGALRM is due (None when no timer is set)]
_alarm = [_INF, None]


def _on_alarm(signum, frame):
    """SIGALRM: time out the run() in progress, or re-arm for its deadline, or ignore."""
    _alarm[1] = None
    deadline = _alarm[0]
    if deadline == _INF:
        return  # between requests: the interrupted recv is simply retried
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        _alarm[0] = _INF
        raise TimeoutError
    # A timer armed for an earlier request fired first: wait for this request's deadline.
    _alarm[1] = deadline
    signal.setitimer(signal.ITIMER_REAL, max(remaining, 1e-5))


def _make_invoker(run, default_timeout_ms):
    setitimer, real, clock, alarm, inf = signal.setitimer, signal.ITIMER_REAL, time.perf_counter, _alarm, _INF

    def invoke(kwargs, timeout_ms):
        """run(**kwargs) under SCORING_TIMEOUT_MS (SIGALRM, like azmlinfsrv), timed.

        azmlinfsrv arms and disarms an interval timer around every call. Here a timer that
        is already pending and due no later than this request's deadline is left alone (its
        handler re-arms it for the rest of the time when it fires early), so in the steady
        state no syscall is spent on the timeout at all.
        """
        if timeout_ms is None:
            timeout_ms = default_timeout_ms
        start = clock()
        try:
            if timeout_ms > 0:
                # Deadline first: an alarm firing from here on already sees it.
                deadline = alarm[0] = start + timeout_ms / 1000.0
                due = alarm[1]
                if due is None or due > deadline:
                    alarm[1] = deadline
                    setitimer(real, timeout_ms / 1000.0)
            try:
                result = run(**kwargs)
            finally:
                elapsed = clock() - start
                alarm[0] = inf
        except TimeoutError:
            log_exception()
            if timeout_ms == int(timeout_ms):
                timeout_ms = int(timeout_ms)
            return error(500, "Scoring timeout after %s ms" % timeout_ms, True)
        except Exception:
            log_exception()
            return RUN_FAILED
        return _result(result, elapsed * 1000.0)

    return invoke


def _json_dumps():
    """json.dumps with its defaults, minus the per-call encoder construction (~2 us saved).

    The C encoder json.dumps builds for every call is built once here; without circular
    reference checks a self-containing result ends in RecursionError instead of ValueError,
    which is answered the same way (500, internal error).
    """
    from json import encoder

    if encoder.c_make_encoder is None:
        return json.dumps
    encode = encoder.c_make_encoder(None, json.JSONEncoder().default, encoder.encode_basestring_ascii,
                                    None, ": ", ", ", False, False, True)
    join = "".join

    def dumps(obj):
        return join(encode(obj, 0))

    return dumps


def _result(result, exec_ms, dumps=_json_dumps()):
    """run()'s return value as a response: a Response as it is, anything else as JSON."""
    global _response_types
    if result is None:
        return 200, JSON_CT, False, exec_ms, b"{}"  # azmlinfsrv: None -> {}
    if isinstance(result, _response_types):
        return _from_response(result, exec_ms)
    try:
        body = dumps(result).encode()
    except Exception:
        # Maybe a Response class imported by run() after startup; else unencodable (bytes,
        # numpy...): azmlinfsrv's generic 500 with run_failed False.
        _response_types = _known_response_types()
        if isinstance(result, _response_types):
            return _from_response(result, exec_ms)
        log_exception()
        return INTERNAL_ERROR
    return 200, JSON_CT, False, exec_ms, body


def _known_response_types():
    types = []
    for name in ("azureml_inference_server_http.api.aml_response", "azureml.contrib.services.aml_response"):
        cls = getattr(sys.modules.get(name), "AMLResponse", None)
        if isinstance(cls, type) and cls not in types:
            types.append(cls)
    cls = getattr(sys.modules.get("werkzeug.wrappers"), "Response", None)
    if isinstance(cls, type):
        types.append(cls)  # covers flask.Response and the real AMLResponse
    return tuple(types)


def _from_response(resp, exec_ms):
    """An AMLResponse / Flask Response: status, headers and body as the script set them."""
    try:
        status = int(resp.status_code)
        if not 100 <= status <= 999:
            raise ValueError("invalid HTTP status %d" % status)
        run_failed = False
        headers = []
        for name, value in resp.headers.items():
            name, value = str(name), str(value)
            low = name.lower()
            if low == "x-ms-run-function-failed":
                run_failed = value == "True"
            elif low not in _HOP_BY_HOP:  # the front frames the body itself
                if not _TOKEN.match(name) or _BAD_VALUE.search(value):
                    raise ValueError("invalid response header %r: %r" % (name, value))
                headers.append([name, value])
        body = resp.get_data()
        if not isinstance(body, bytes):
            body = bytes(body)
    except Exception:
        log_exception()
        return INTERNAL_ERROR
    return status, json.dumps(headers), run_failed or status >= 500, exec_ms, body


def _other_method(method):
    # Only rawhttp scripts see other methods in azmlinfsrv; the front answers them otherwise.
    if method == "OPTIONS":
        return OPTIONS_OK
    return error(405, "Method not allowed")


# -- request decoding --------------------------------------------------------------------------


def _json_or_str(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


def query_values(query):
    """GET parameters as azmlinfsrv reads them: JSON values where they parse, repeats as lists."""
    grouped = {}
    for key, value in _http.parse_qsl(query):
        grouped.setdefault(key, []).append(value)
    return {key: _json_or_str(values[0]) if len(values) == 1 else [_json_or_str(v) for v in values]
            for key, values in grouped.items()}


def header_dict(pairs):
    """`request_headers` as azmlinfsrv passes it: dict(Werkzeug headers) behind gunicorn.

    Names are Title-Cased, repeated headers joined with ",", names with "_" dropped.
    """
    out = {}
    for name, value in pairs:
        if "_" in name:
            continue
        key = name.title()
        out[key] = out[key] + "," + value if key in out else value
    return out


def _is_form(content_type):
    # Werkzeug's form parser takes these bodies, leaving request.data empty.
    mimetype, params = _http.parse_options_header(content_type)
    return mimetype == "application/x-www-form-urlencoded" or (
        mimetype == "multipart/form-data" and bool(params.get("boundary")))


def _plain_handler(invoke, name, has_headers):
    dumps = json.dumps

    def handle(meta, body):
        method = meta["method"]
        if method == "POST":
            ctype = meta.get("content_type")
            if ctype is not None and "form" in ctype.lower() and _is_form(ctype):
                data = ""
            else:
                try:
                    data = str(body, "utf-8")
                except UnicodeDecodeError as ex:
                    return error(400, "Input cannot be decoded as UTF-8: %s" % ex)
        elif method == "GET":
            data = dumps(query_values(meta.get("query") or ""))
        else:
            return _other_method(method)
        if has_headers:
            return invoke({name: data, "request_headers": header_dict(meta.get("headers") or ())},
                          meta.get("timeout_ms"))
        return invoke({name: data}, meta.get("timeout_ms"))

    return handle


def _schema_handler(invoke, params, has_headers):
    wanted = [(p.name, p.default, p.empty) for p in params]

    def handle(meta, body):
        method = meta["method"]
        if method == "POST":
            if not _http.is_json_mimetype(_http.parse_options_header(meta.get("content_type"))[0]):
                return error(415, "Expects Content-Type to be application/json")
            try:
                doc = json.loads(body)
            except json.JSONDecodeError as ex:
                if body:
                    return error(400, "POST body could not be decoded as JSON: %s" % ex)
                return error(400, "POST body is empty. Expecting a JSON dictionary.")
            if not isinstance(doc, dict):
                return error(400, "POST body should be a JSON dictionary.")
        elif method == "GET":
            doc = query_values(meta.get("query") or "")
        else:
            return _other_method(method)
        kwargs = {}
        for name, default, empty in wanted:
            value = doc.get(name, default)
            if value is empty:
                return error(400, "A value is not provided for the %r parameter." % name)
            kwargs[name] = value
        if has_headers:
            kwargs["request_headers"] = header_dict(meta.get("headers") or ())
        return invoke(kwargs, meta.get("timeout_ms"))

    return handle


def _request_class():
    """What a @rawhttp run() receives: flask.Request as under azmlinfsrv, else our stand-in."""
    # Any failure (not only ImportError: broken Flask installs raise all sorts) means the
    # stand-in, which needs nothing.
    try:
        from flask import Request
        return Request
    except Exception:
        pass
    try:
        from werkzeug.wrappers import Request
        return Request
    except Exception:
        pass
    import importlib

    return importlib.import_module("azureml_inference_server_http.api.aml_request").AMLRequest


def wsgi_environ(meta, body):
    """The WSGI environ gunicorn would build for this request."""
    env = {
        "REQUEST_METHOD": meta["method"], "SCRIPT_NAME": "", "PATH_INFO": meta.get("path") or "/score",
        "QUERY_STRING": meta.get("query") or "", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True, "wsgi.errors": sys.stderr, "wsgi.multithread": False,
        "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    if meta.get("remote_addr"):
        env["REMOTE_ADDR"] = meta["remote_addr"]
    host = None
    for name, value in meta.get("headers") or ():
        if "_" in name:
            continue  # gunicorn drops these
        if name == "content-type":
            env["CONTENT_TYPE"] = value
            continue
        if name == "content-length":
            env["CONTENT_LENGTH"] = value
            continue
        if name == "host":
            host = value
        key = "HTTP_" + name.upper().replace("-", "_")
        env[key] = env[key] + "," + value if key in env else value
    if "CONTENT_TYPE" not in env and meta.get("content_type"):
        env["CONTENT_TYPE"] = meta["content_type"]
    server, port = host or "localhost", "80"
    if host and not host.endswith("]") and ":" in host:
        server, _, port = host.rpartition(":")
    env["SERVER_NAME"], env["SERVER_PORT"] = server, port
    return env


def _rawhttp_handler(invoke, name, has_headers, request_class):
    def handle(meta, body):
        request = request_class(wsgi_environ(meta, body))
        if has_headers:
            return invoke({name: request, "request_headers": header_dict(meta.get("headers") or ())},
                          meta.get("timeout_ms"))
        return invoke({name: request}, meta.get("timeout_ms"))

    return handle
