"""tug-infsrv's Python worker: runs one Azure ML scoring script for the Rust front.

Started as `python3 -u tug_worker.py` with a Unix stream socket on fd 3 (`TUG_WORKER_FD`).
It imports the script like azmlinfsrv 1.5.1 does, calls `init()`, announces itself with a
READY frame and then answers REQUEST frames one at a time with RESPONSE frames, applying
azmlinfsrv's rules for how run() is called and how its result or failure becomes an HTTP
response. The frame format and the division of work with the front are specified in
PROTOCOL.md next to this file.

Standard library only. The hot path (one plain run() call per request) is kept short on
purpose: one recv, JSON for the small meta object only, one sendall, nothing logged and
everything about the call shape decided once at startup.
"""

import faulthandler
import json
import os
import socket
import struct
import sys
import time
import traceback

# Imported before main() drops this directory from sys.path (see _setup_sys_path).
import tug_worker_handlers
import tug_worker_swagger

KIND_READY, KIND_INIT_FAILED, KIND_REQUEST, KIND_RESPONSE = 1, 2, 3, 4
EXIT_INIT_FAILED = 3
EXIT_PROTOCOL_ERROR = 2
MAX_FRAME = 2 ** 31 - 1
RECV_SIZE = 65536
DEFAULT_TIMEOUT_MS = 3600000

_HEAD = struct.Struct("<IBI")  # frame length, kind, meta length (REQUEST / RESPONSE)
_HEAD5 = struct.Struct("<IB")  # frame length, kind (READY / INIT_FAILED)

log = None  # the "azmlinfsrv" logger, set up by main()


class StartupError(Exception):
    """The script cannot be served: sent as INIT_FAILED, then the worker exits 3."""


class ProtocolError(Exception):
    """The front sent something PROTOCOL.md does not allow."""


# -- startup -------------------------------------------------------------------------------


def _setup_sys_path(app_root, source_dir):
    """sys.path as azmlinfsrv's workers have it, plus the shims last.

    gunicorn puts the working directory first; azmlinfsrv appends AML_APP_ROOT (and
    AML_APP_ROOT/AZUREML_SOURCE_DIRECTORY). Python put this script's folder first instead:
    it is dropped so the worker's own modules cannot shadow the script's imports.
    """
    here = os.path.dirname(os.path.realpath(__file__))
    if sys.path and os.path.realpath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    sys.path.append(app_root)
    if source_dir:
        sys.path.append(os.path.join(app_root, source_dir))
    shims = os.path.join(here, "shims")
    sys.path.append(shims)
    # An `azureml` package imported already (by a .pth file, say) computed its __path__
    # without the shims; `azureml.contrib.services` must still be found there.
    pkg = sys.modules.get("azureml")
    extra = os.path.join(shims, "azureml")
    if pkg is not None and isinstance(getattr(pkg, "__path__", None), list) and extra not in pkg.__path__:
        pkg.__path__.append(extra)


def _setup_logging(app_root, entry_path):
    """Logging as azmlinfsrv sets it up, with tracebacks (ERROR) on stderr.

    Logger "azmlinfsrv" (and its children such as "azmlinfsrv.print") writes azmlinfsrv's
    line format to stdout; the root logger gets `basicConfig()` (stderr, WARNING), which is
    what scoring scripts' own loggers see under azmlinfsrv. A logging.json in AML_APP_ROOT
    or next to the entry script replaces this, as there.
    """
    global log
    import logging

    logging.basicConfig()
    formatter = logging.Formatter("%(asctime)s %(levelname).1s [%(process)d] %(name)s - %(message)s")
    formatter.converter = time.gmtime
    out = logging.StreamHandler(sys.stdout)
    out.addFilter(lambda record: record.levelno < logging.ERROR)
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.ERROR)
    log = logging.getLogger("azmlinfsrv")
    for handler in (out, err):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    for folder in (app_root, os.path.dirname(os.path.realpath(entry_path)) if entry_path else None):
        path = os.path.join(folder, "logging.json") if folder else None
        if path and os.path.isfile(path):
            import logging.config

            try:
                with open(path) as fh:
                    logging.config.dictConfig(json.load(fh))
            except Exception as ex:
                raise StartupError("Invalid logging config %s:\n%s" % (path, traceback.format_exc())) from ex
            log.info("Loaded logging config from %s", path)
            break
    _redirect_print(logging.getLogger("azmlinfsrv.print"))


def _redirect_print(logger):
    """print() to stdout becomes an INFO line of logger "azmlinfsrv.print" (as in azmlinfsrv)."""
    import builtins
    import functools

    original = builtins.print

    @functools.wraps(original)
    def print_to_logger(*objects, sep=" ", end="\n", file=None, flush=False):
        if file is None:
            file = sys.stdout
        if file is sys.stdout:
            logger.info((" " if sep is None else sep).join(map(str, objects)))
        else:
            original(*objects, sep=sep, end=end, file=file, flush=flush)

    builtins.print = print_to_logger


def _load_script(app_root, entry_script):
    """Import the scoring script as azmlinfsrv does (module "entry_module", not in sys.modules)."""
    try:
        if entry_script:
            import importlib.util

            location = os.path.join(app_root, entry_script.replace("/", os.sep))
            spec = importlib.util.spec_from_file_location("entry_module", location)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            import main as module  # noqa: F401 -- azmlinfsrv's fallback without an entry script
    except BaseException as ex:
        raise StartupError("Failed to import user script because it raised an unhandled exception\n"
                           + traceback.format_exc()) from ex
    where = getattr(module, "__file__", entry_script)
    if not hasattr(module, "init"):
        raise StartupError("User script at %s does not have a init() function defined." % where)
    if not hasattr(module, "run"):
        raise StartupError("User script at %s does not have a run() function defined." % where)
    # Some Azure ML SDKs generate a driver module that forwards to the real script; its run()
    # mangles inference-schema arguments, so azmlinfsrv calls the inner run() directly.
    driver = getattr(module, "driver_module", None)
    if isinstance(driver, type(sys)) and hasattr(driver, "run"):
        log.info("Found driver script at %s and the score script at %s", where,
                 getattr(driver, "__file__", "?"))
        return module.init, driver.run
    log.info("Found user script at %s", where)
    return module.init, module.run


def _rawhttp_requested():
    for name in ("azureml_inference_server_http.api.aml_request", "azureml.contrib.services.aml_request"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "_rawHttpRequested", False):
            return True
    return False


def _analyze_run(run):
    """Decide once how run() is called: (api, parameters without request_headers, wants headers)."""
    import inspect

    try:
        params = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError) as ex:
        raise StartupError("run() cannot be inspected: %s" % ex) from ex
    allowed = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if any(p.kind not in allowed for p in params):
        raise StartupError("run() cannot accept positional-only arguments, *args, or **kwargs.")
    has_headers = any(p.name == "request_headers" for p in params)
    params = [p for p in params if p.name != "request_headers"]
    if not params:
        if has_headers:
            raise StartupError('run() needs to accept an argument other than "request_headers".')
        raise StartupError("run() needs to accept an argument for input data.")
    schema_util = sys.modules.get("inference_schema.schema_util")
    decorated = schema_util is not None and schema_util.is_schema_decorated(run)
    raw = _rawhttp_requested()
    if raw and decorated:
        raise StartupError("run() cannot be decorated with both @rawhttp and @input_schema")
    if raw:
        log.info("run() is decorated with @rawhttp. Server will invoke it with the flask request object.")
        return "rawhttp", params, has_headers
    if decorated:
        log.info("run() is decorated with @input_schema. Server will invoke it with the following "
                 "arguments: %s.", ", ".join(p.name for p in params))
        return "schema", params, has_headers
    log.info("run() is not decorated. Server will invoke it with the input in JSON string.")
    return "plain", params, has_headers


def _invoke_init(init):
    log.info("Invoking user's init function")
    try:
        init()
    except BaseException as ex:
        text = traceback.format_exc()
        log.error("User's init function failed")
        log.error("Encountered Exception %s", text)
        _log_model_dir()
        raise StartupError(text) from ex
    log.info("Users's init has completed successfully")


def _log_model_dir(limit=200):
    # azmlinfsrv lists the model folder when init() fails: most failures are a wrong path.
    import itertools

    root = os.environ.get("AZUREML_MODEL_DIR")
    if not root or not os.path.exists(root):
        return
    log.info("Model Directory Contents:")
    lines = _tree(os.path.normpath(root))
    for line in itertools.islice(lines, limit):
        log.info("%s", line)
    if next(lines, None) is not None:
        log.info("Output Truncated. First %d lines shown.", limit)


def _tree(path, depth=0):
    name = os.path.basename(path.rstrip(os.sep)) or path
    if os.path.isdir(path):
        yield " " * 4 * depth + name + os.sep
        for child in sorted(os.listdir(path)):
            yield from _tree(os.path.join(path, child), depth + 1)
    else:
        yield " " * 4 * depth + name


def start(env):
    """Everything before READY. Returns (READY object, request handler)."""
    app_root = env.get("AML_APP_ROOT") or "/var/azureml-app"
    entry = env.get("AZUREML_ENTRY_SCRIPT")
    _setup_sys_path(app_root, env.get("AZUREML_SOURCE_DIRECTORY"))
    _setup_logging(app_root, os.path.join(app_root, entry) if entry else None)
    init, run = _load_script(app_root, entry)
    try:
        api, params, has_headers = _analyze_run(run)
    except StartupError:
        raise
    except Exception as ex:
        raise StartupError(traceback.format_exc()) from ex
    _invoke_init(init)
    try:
        swagger = tug_worker_swagger.build_documents(
            run, app_root, env.get("SERVICE_NAME", "ML service"), env.get("SERVICE_VERSION", "1.0"),
            env.get("SERVICE_PATH_PREFIX", ""), sys.modules.get("inference_schema.schema_util"), log)
    except tug_worker_swagger.SwaggerFileError as ex:
        raise StartupError(str(ex)) from ex
    except Exception:
        log.error("Swagger generation failed: %s", traceback.format_exc())
        swagger = None
    timeout_ms = _timeout_setting(env)
    handler = tug_worker_handlers.make_handler(api, run, params, has_headers, timeout_ms, log)
    ready = {"version": 1, "pid": os.getpid(), "api": api,
             "wants_headers": api == "rawhttp" or has_headers, "swagger": swagger}
    log.info("Scoring timeout is set to %s", timeout_ms)
    log.info("Worker with pid %d ready for serving traffic", os.getpid())
    return ready, handler


def _timeout_setting(env):
    try:
        return int(env.get("SCORING_TIMEOUT_MS") or DEFAULT_TIMEOUT_MS)
    except ValueError:
        return DEFAULT_TIMEOUT_MS


# -- frames --------------------------------------------------------------------------------


def send_simple(sock, kind, obj):
    payload = json.dumps(obj).encode()
    sock.sendall(_HEAD5.pack(1 + len(payload), kind) + payload)


def response_frame(rid, status, headers_json, run_failed, exec_ms, body):
    """One RESPONSE frame; `headers_json` is the headers list already as JSON text."""
    meta = ('{"id":%s,"status":%d,"headers":%s,"run_failed":%s,"exec_ms":%s}' % (
        rid if type(rid) is int else json.dumps(rid), status, headers_json,
        "true" if run_failed else "false", "null" if exec_ms is None else repr(exec_ms))).encode()
    size = 5 + len(meta) + len(body)
    if size > MAX_FRAME:
        log.error("Response of %d bytes does not fit in a frame", len(body))
        return response_frame(rid, *tug_worker_handlers.INTERNAL_ERROR)
    return b"".join((_HEAD.pack(size, KIND_RESPONSE, len(meta)), meta, body))


def _recv_rest(sock, data, end):
    """Complete a frame whose first bytes are `data` (one copy into a buffer of its size)."""
    buf = bytearray(end)
    buf[:len(data)] = data
    view = memoryview(buf)
    got = len(data)
    while got < end:
        n = sock.recv_into(view[got:])
        if not n:
            raise EOFError
        got += n
    return view


def serve(sock, handle):
    """Answer REQUEST frames until the front closes the socket."""
    recv = sock.recv
    sendall = sock.sendall
    unpack = _HEAD.unpack_from
    # The decoder's scanner without json.loads' encoding detection and whitespace checks
    # (~2 us per request); the front writes compact UTF-8 JSON.
    scan = json.JSONDecoder().scan_once
    pending = b""
    while True:
        if pending:
            data, pending = pending, b""
        else:
            data = recv(RECV_SIZE)
            if not data:
                return
        while len(data) < 9:
            more = recv(RECV_SIZE)
            if not more:
                raise ProtocolError("connection closed inside a frame header")
            data += more
        size, kind, meta_len = unpack(data)
        end = 4 + size
        if kind != KIND_REQUEST or meta_len > size - 5:
            raise ProtocolError("bad frame header: length %d kind %d meta %d" % (size, kind, meta_len))
        if len(data) < end:
            data = _recv_rest(sock, data, end)
        elif len(data) > end:
            pending = data[end:]
        try:
            meta = scan(str(data[9:9 + meta_len], "utf-8"), 0)[0]
            rid = meta["id"]
        except (StopIteration, ValueError, KeyError, TypeError) as ex:
            raise ProtocolError("bad REQUEST meta: %r" % ex) from None
        body = bytes(data[9 + meta_len:end])
        try:
            out = handle(meta, body)
        except Exception:
            tug_worker_handlers.log_exception()
            out = tug_worker_handlers.INTERNAL_ERROR
        sendall(response_frame(rid, *out))


def main():
    faulthandler.enable()
    env = os.environ
    fd = int(env["TUG_WORKER_FD"])
    # Children the script starts (os.system, fork/exec) must not keep the channel open.
    os.set_inheritable(fd, False)
    sock = socket.socket(fileno=fd)
    text = None
    try:
        ready, handler = start(env)
    except StartupError as ex:
        text = str(ex)
        if log is None:
            sys.stderr.write(text + "\n")
        elif "Encountered Exception" not in text:
            log.error("%s", text)
    except BaseException:
        text = traceback.format_exc()
        sys.stderr.write(text)
    if text is not None:
        try:
            send_simple(sock, KIND_INIT_FAILED, {"error": text})
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            # os._exit: threads init() may have started must not keep the worker alive.
            os._exit(EXIT_INIT_FAILED)
    send_simple(sock, KIND_READY, ready)
    try:
        serve(sock, handler)
    except ProtocolError as ex:
        sys.stderr.write("tug_worker: protocol error: %s\n" % ex)
        sys.stderr.flush()
        os._exit(EXIT_PROTOCOL_ERROR)
    except (EOFError, ConnectionError):
        pass  # the front went away
    except KeyboardInterrupt:
        sys.exit(130)  # Ctrl-C on a terminal running tug-infsrv: no traceback per worker
    sys.exit(0)


if __name__ == "__main__":
    main()
