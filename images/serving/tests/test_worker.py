"""Tests of tug's scoring worker (tug_worker.py + shims) against azmlinfsrv 1.5.1's behaviour.

Each test starts real worker processes on a socketpair (fd 3), exactly as tug-infsrv's front
does, and checks READY / INIT_FAILED / RESPONSE frames. Stdlib only:

    python3 -m unittest discover -s images/serving/tests -v

TUG_WORKER_TEST_PYTHON=/path/to/python runs the workers with another interpreter (e.g. a
venv with the real azureml-inference-server-http and inference-schema installed). numpy /
pandas cases are skipped when that interpreter lacks them. @rawhttp cases also run under
`python -S` (no site-packages, hence no Flask): the stand-in AMLRequest is used then.
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # the in-process check imports modules the front embeds

from worker_client import INIT_FAILED, READY, SCRIPTS, SERVING_DIR, Worker  # noqa: E402

PYTHON = os.environ.get("TUG_WORKER_TEST_PYTHON") or sys.executable
TUG_PYTHON_HELPERS = os.path.join(os.path.dirname(SERVING_DIR), "python")  # tug's `azureml` package
RUN_FAILED = b'{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}'
INTERNAL = b'{"message": "An unexpected internal error occurred. Check the logs for more info."}'
JSON_CT = [["content-type", "application/json"]]


def has_modules(*names):
    code = "import " + ", ".join(names)
    return subprocess.run([PYTHON, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


HAS_NUMPY_PANDAS = has_modules("numpy", "pandas")
HAS_NUMPY = HAS_NUMPY_PANDAS or has_modules("numpy")


class WorkerTest(unittest.TestCase):
    def start(self, script, **kwargs):
        kwargs.setdefault("python", PYTHON)
        worker = Worker(script, **kwargs)
        self.addCleanup(lambda: worker.proc.poll() is None and worker.close())
        return worker

    def started(self, script, **kwargs):
        worker = self.start(script, **kwargs)
        self.assertEqual(worker.kind, READY, worker.hello)
        return worker

    def assertJson(self, reply, status, body, run_failed=False, exec_ms=True):
        meta, out = reply
        self.assertEqual((meta["status"], out, meta["run_failed"]), (status, body, run_failed))
        self.assertEqual(meta["exec_ms"] is not None, exec_ms, meta)
        if exec_ms:
            self.assertGreaterEqual(meta["exec_ms"], 0.0)
        self.assertEqual(meta["headers"], JSON_CT)


class PlainRunTests(WorkerTest):
    """Undecorated run(raw_data): body as str, result as JSON, azmlinfsrv's error bodies."""

    @classmethod
    def setUpClass(cls):
        cls.w = Worker("results.py", python=PYTHON, env={"SCORING_TIMEOUT_MS": "400"})

    @classmethod
    def tearDownClass(cls):
        cls.code, cls.out, cls.err = cls.w.close()

    def test_ready(self):
        hello = self.w.hello
        self.assertEqual(self.w.kind, READY)
        self.assertEqual((hello["version"], hello["pid"], hello["api"], hello["wants_headers"]),
                         (1, self.w.proc.pid, "plain", False))
        self.assertEqual(sorted(hello["swagger"]), ["2", "3", "3.1"])
        doc = json.loads(hello["swagger"]["2"])
        self.assertEqual(doc["definitions"]["ServiceInput"], {"type": "object", "example": {}})
        self.assertEqual(doc["info"], {"title": "ML service", "version": "1.0", "description":
                                       "API specification for the Azure Machine Learning service ML service"})
        self.assertEqual(list(doc["paths"]), ["/", "/score", "/swagger.json"])

    def test_post_body_reaches_run_as_str(self):
        self.assertJson(self.w.request("POST", "h\u00e9 there", content_type="text/plain"), 200,
                        b'{"len": 8, "head": "h\\u00e9 there"}')

    def test_result_kinds(self):
        self.assertJson(self.w.request("POST", "none"), 200, b"{}")
        self.assertJson(self.w.request("POST", "nan"), 200, b"[NaN, Infinity, 1.5]")
        self.assertJson(self.w.request("POST", "str"), 200, b'"h\\u00e9llo"')

    def test_unencodable_result_is_internal_error(self):
        for body in ("bytes", "set"):
            self.assertJson(self.w.request("POST", body), 500, INTERNAL, run_failed=False, exec_ms=False)

    @unittest.skipUnless(HAS_NUMPY, "numpy not installed")
    def test_numpy_result_is_internal_error(self):
        self.assertJson(self.w.request("POST", "numpy"), 500, INTERNAL, run_failed=False, exec_ms=False)

    def test_run_raising(self):
        self.assertJson(self.w.request("POST", "raise"), 500, RUN_FAILED, run_failed=True, exec_ms=False)

    def test_timeout(self):
        start = time.monotonic()
        reply = self.w.request("POST", "sleep5", timeout_ms=300)
        self.assertLess(time.monotonic() - start, 3)
        self.assertJson(reply, 500, b'{"message": "Scoring timeout after 300 ms"}', run_failed=True, exec_ms=False)
        # Without timeout_ms in the meta, SCORING_TIMEOUT_MS (400 here) applies.
        self.assertJson(self.w.request("POST", "sleep5"), 500, b'{"message": "Scoring timeout after 400 ms"}',
                        run_failed=True, exec_ms=False)
        self.assertJson(self.w.request("POST", "sleep0.05", timeout_ms=0), 200, b'"slept"')

    def test_late_alarm_is_harmless(self):
        self.assertJson(self.w.request("POST", "sleep0.01", timeout_ms=60), 200, b'"slept"')
        time.sleep(0.15)  # the timer, left pending, fires while the worker waits
        self.assertJson(self.w.request("POST", "x"), 200, b'{"len": 1, "head": "x"}')

    def test_pending_timer_does_not_cut_the_next_request_short(self):
        # The timer armed by the first request fires ~200 ms into the second one, whose
        # own deadline is 300 ms after its start: it must run (and fail) at that deadline.
        self.assertJson(self.w.request("POST", "x", timeout_ms=300), 200, b'{"len": 1, "head": "x"}')
        time.sleep(0.1)
        self.assertJson(self.w.request("POST", "sleep0.25", timeout_ms=300), 200, b'"slept"')
        self.assertJson(self.w.request("POST", "y", timeout_ms=300), 200, b'{"len": 1, "head": "y"}')
        time.sleep(0.1)
        start = time.monotonic()
        self.assertJson(self.w.request("POST", "sleep5", timeout_ms=300), 500,
                        b'{"message": "Scoring timeout after 300 ms"}', run_failed=True, exec_ms=False)
        self.assertGreaterEqual(time.monotonic() - start, 0.29)
        # A shorter timeout than the pending timer's re-arms it.
        self.assertJson(self.w.request("POST", "z", timeout_ms=5000), 200, b'{"len": 1, "head": "z"}')
        start = time.monotonic()
        self.assertJson(self.w.request("POST", "sleep5", timeout_ms=100), 500,
                        b'{"message": "Scoring timeout after 100 ms"}', run_failed=True, exec_ms=False)
        self.assertLess(time.monotonic() - start, 1.0)

    def test_bad_utf8(self):
        self.assertJson(self.w.request("POST", b"\xff\xfe"), 400,
                        b'{"message": "Input cannot be decoded as UTF-8: \'utf-8\' codec can\'t decode byte '
                        b'0xff in position 0: invalid start byte"}', exec_ms=False)

    def test_form_bodies_become_empty(self):
        # Flask moves these bodies to request.form: run() gets "".
        for ctype in ("application/x-www-form-urlencoded", "Multipart/Form-Data; boundary=xx"):
            self.assertJson(self.w.request("POST", "a=1", content_type=ctype), 200, b'{"len": 0, "head": ""}')
        # Without a boundary Werkzeug does not parse it: the body stays.
        self.assertJson(self.w.request("POST", "a=1", content_type="multipart/form-data"), 200,
                        b'{"len": 3, "head": "a=1"}')

    def test_other_methods(self):
        meta, out = self.w.request("OPTIONS")
        self.assertEqual((meta["status"], out, meta["headers"], meta["exec_ms"]),
                         (200, b"", [["content-type", "text/html; charset=utf-8"]], None))
        self.assertJson(self.w.request("PUT", "x"), 405, b'{"message": "Method not allowed"}', exec_ms=False)

    def test_large_bodies(self):
        body = ("0123456789" * 200000).encode()  # 2 MB: several recv() calls
        self.assertJson(self.w.request("POST", body), 200, b'{"len": 2000000, "head": "01234567890123456789"}')
        meta, out = self.w.request("POST", "big")
        self.assertEqual((meta["status"], len(out)), (200, 3 * 1024 * 1024 + 2))

    def test_string_id_is_echoed(self):
        self.w.send_request({"id": "abc", "method": "POST", "path": "/score", "query": "", "content_type": None},
                            b"none")
        kind, payload = self.w.recv_frame()
        meta_len, = struct.unpack_from("<I", payload)
        self.assertEqual(json.loads(payload[4:4 + meta_len])["id"], "abc")


class LoggingTests(WorkerTest):
    def test_print_routing_and_tracebacks(self):
        w = self.started("results.py")
        w.request("POST", "print")
        reply = w.request("POST", "raise")
        self.assertNotIn(b"secret", reply[1])
        code, out, err = w.close()
        self.assertEqual(code, 0)
        self.assertRegex(out, r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} I \[%d\] azmlinfsrv.print - "
                              r"hello from run 42\n" % w.proc.pid)
        self.assertIn("azmlinfsrv.print - init says hello", out)
        self.assertIn("to stderr\n", err)
        self.assertNotIn("to stderr", out)
        self.assertIn("E [%d] azmlinfsrv - Encountered Exception: Traceback" % w.proc.pid, err)
        self.assertIn("ValueError: secret detail", err)


class HeadersAndQueryTests(WorkerTest):
    def test_request_headers_parameter(self):
        w = self.started("headers_param.py")
        self.assertTrue(w.hello["wants_headers"])
        headers = [["host", "h:1"], ["x-foo", "a"], ["x-foo", "b"], ["x_under", "1"], ["content-type", "text/plain"]]
        meta, out = w.request("POST", "hi", content_type="text/plain", headers=headers)
        self.assertEqual(json.loads(out), {"data": "hi", "headers": {
            "Host": "h:1", "X-Foo": "a,b", "Content-Type": "text/plain"}})

    def test_get_query_becomes_json_string(self):
        w = self.started("headers_param.py")
        meta, out = w.request("GET", query="a=1&b=x&b=2&c=null&d=[1,2]&e=&h=%ff&i=a+b", headers=[])
        self.assertEqual(json.loads(out)["data"],
                         '{"a": 1, "b": ["x", 2], "c": null, "d": [1, 2], "e": "", "h": "%FF", "i": "a b"}')
        meta, out = w.request("GET", headers=[])
        self.assertEqual(json.loads(out)["data"], "{}")


class RawHttpTests(WorkerTest):
    """@rawhttp with AMLResponse, under Flask when installed and with the stand-ins (-S)."""

    def check(self, **kwargs):
        w = self.started("raw_response.py", **kwargs)
        self.assertEqual((w.hello["api"], w.hello["wants_headers"]), ("rawhttp", True))
        meta, out = w.request("POST", query="mode=image")
        self.assertEqual((meta["status"], out, meta["run_failed"]), (200, b"\x89PNG\r\n\x00\xff", False))
        self.assertEqual(meta["headers"], [["Content-Type", "image/png"], ["X-Multi", "a"], ["X-Multi", "b"],
                                           ["X-Multi", "c"]])
        self.assertIsNotNone(meta["exec_ms"])
        meta, out = w.request("POST", query="mode=lowerct")
        self.assertEqual(meta["headers"], [["Content-Type", "text/html; charset=utf-8"], ["content-type", "image/png"]])
        meta, out = w.request("POST", query="mode=none")
        self.assertEqual((meta["status"], out, meta["headers"]), (201, b"{}", [["Content-Type", "application/json"]]))
        meta, out = w.request("POST", query="mode=s500")
        self.assertEqual((meta["status"], out, meta["run_failed"]), (503, b"bad", True))
        self.assertIsNotNone(meta["exec_ms"])
        meta, out = w.request("POST", query="mode=json")
        self.assertEqual((meta["status"], out), (202, b'{"a": [1, 2]}'))
        meta, out = w.request("POST", query="mode=failed")
        self.assertEqual((meta["status"], meta["run_failed"]), (200, True))
        meta, out = w.request("POST", query="mode=mutate")
        self.assertEqual((meta["status"], meta["headers"]), (404, [
            ["Content-Type", "text/plain; charset=utf-8"], ["Access-Control-Allow-Origin", "*"]]))
        self.assertJson(w.request("POST", query="mode=badheader"), 500, INTERNAL, exec_ms=False)
        self.assertJson(w.request("POST", query="mode=plain"), 200, b'{"plain": true}')
        self.assertJson(w.request("POST", "{}", query="mode=getjson", content_type="text/plain"), 500, RUN_FAILED,
                        run_failed=True, exec_ms=False)
        body = (b'--XX\r\nContent-Disposition: form-data; name="f1"\r\n\r\nv1\r\n--XX\r\nContent-Disposition: '
                b'form-data; name="up"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\nhel\r\nlo\r\n--XX--\r\n')
        headers = [["host", "example:5001"], ["x-custom", "v"], ["content-type", "multipart/form-data; boundary=XX"]]
        meta, out = w.request("PUT", body, query="x=1&x=2&y=%ff", headers=headers, remote_addr="10.1.2.3",
                              content_type="multipart/form-data; boundary=XX")
        got = json.loads(out)
        # The stand-in without site-packages; Flask's Request when Flask is installed.
        self.assertIn(got.pop("type"), ("azureml_inference_server_http",) if "-S" in kwargs.get("python_args", ())
                      else ("azureml_inference_server_http", "flask", "werkzeug"))
        del got["data"]
        self.assertEqual(got, {
            "method": "PUT", "path": "/score", "full_path": "/score?x=1&x=2&y=%ff",
            "url": "http://example:5001/score?x=1&x=2&y=%FF", "host": "example:5001", "remote_addr": "10.1.2.3",
            "args": {"x": ["1", "2"], "y": ["%FF"]}, "x": ["1", "2"],
            "headers": [["Host", "example:5001"], ["X-Custom", "v"], ["Content-Type", "multipart/form-data; boundary=XX"]],
            "h_ci": "v", "content_type": "multipart/form-data; boundary=XX", "mimetype": "multipart/form-data",
            "is_json": False, "json": None, "form": {"f1": ["v1"]}, "files": {"up": ["a.txt", "hel\r\nlo", "text/plain"]},
            "same_module": True, "dumped": True})
        meta, out = w.request("POST", '{"a": 1}', content_type="application/json")
        self.assertEqual(json.loads(out)["json"], {"a": 1})
        return w

    def test_rawhttp(self):
        self.check()

    def test_rawhttp_stand_ins_without_site_packages(self):
        self.check(python_args=["-S"])

    def test_rawhttp_with_tug_azureml_package(self):
        # tug images put their own `azureml` (azureml.core) on PYTHONPATH: the legacy
        # azureml.contrib.services names must still resolve.
        env = {"PYTHONPATH": TUG_PYTHON_HELPERS}
        self.check(python_args=["-S"], env=env)
        w = self.started("raw_response.py", env=env, python_args=["-S"])
        w.close()


def _importable(name):
    try:
        __import__(name)
        return True
    except Exception:
        return False


@unittest.skipUnless(_importable("werkzeug.wrappers"), "Werkzeug not installed here")
class StandInRequestTests(unittest.TestCase):
    """The stand-in AMLRequest reads requests as Werkzeug's Request does (in-process check)."""

    MULTIPART = (b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--B\r\nContent-Disposition: '
                 b'form-data; name="a"\r\n\r\n\xc3\xa9\r\n--B\r\nContent-Disposition: form-data; name="f"; '
                 b'filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n\x00\r\n\xff\r\n--B--\r\n')
    CASES = [
        ("GET", "q=%20x&r=%C3%A9&s=a+b&t=%zz&u&v=%41%26%3d%ff%e9&w=[1]", None, b"", []),
        ("POST", "", "application/json; charset=utf-8", b'{"a": 1}',
         [["x-a", "1"], ["x-a", "2"], ["cookie", "a=1; b=2"], ["x_dropped", "1"]]),
        ("POST", "", "application/x-www-form-urlencoded", b"a=1&a=2&b=%ff&c", []),
        ("POST", "", 'multipart/form-data; boundary="B"', MULTIPART, []),
        ("POST", "", "multipart/form-data; boundary=B", MULTIPART[:40], []),
        ("POST", "", "multipart/form-data", MULTIPART, []),
        ("PUT", "x=1", "text/plain", b"\xff\xfe", []),
    ]
    PROPS = ["method", "path", "full_path", "url", "base_url", "url_root", "host_url", "host", "scheme",
             "remote_addr", "mimetype", "mimetype_params", "content_type", "content_length", "is_json",
             "query_string", "script_root"]

    @staticmethod
    def snapshot(request, form_first):
        got = {p: getattr(request, p) for p in StandInRequestTests.PROPS}
        got.update(headers=list(request.headers.items()), args=request.args.to_dict(flat=False),
                   x_a=(request.headers.get("X-A"), request.headers.getlist("x-a")),
                   cookies=request.cookies.to_dict(flat=False), json=request.get_json(silent=True))
        if form_first:  # Werkzeug's parser consumes the body: data is empty afterwards
            got["form"] = request.form.to_dict(flat=False)
            got["files"] = {k: [f.filename, f.read(), f.mimetype] for k, f in request.files.items()}
            got["data"] = (request.data, request.get_data())
        else:
            got["data"] = (request.get_data(as_text=True), request.data)
            got["form"] = request.form.to_dict(flat=False)
        got["values"] = request.values.to_dict(flat=False)
        for upload in request.files.values():
            upload.close()
        return got

    def test_same_as_werkzeug(self):
        from werkzeug.wrappers import Request

        sys.path.insert(0, SERVING_DIR)
        sys.path.insert(0, os.path.join(SERVING_DIR, "shims"))
        try:
            import _tug_http
            import tug_worker_handlers
            from azureml_inference_server_http.api.aml_request import AMLRequest
        finally:
            del sys.path[:2]
        tug_worker_handlers._http = _tug_http
        for method, query, ctype, body, extra in self.CASES:
            headers = [["host", "h.example:8080"], ["content-length", str(len(body))]] + extra
            meta = {"method": method, "path": "/score", "query": query, "content_type": ctype,
                    "remote_addr": "10.0.0.1", "headers": headers + ([["content-type", ctype]] if ctype else [])}
            for form_first in (True, False):
                with self.subTest(method=method, query=query, content_type=ctype, form_first=form_first):
                    theirs = Request(tug_worker_handlers.wsgi_environ(meta, body))
                    ours = AMLRequest(tug_worker_handlers.wsgi_environ(meta, body))
                    self.assertEqual(self.snapshot(ours, form_first), self.snapshot(theirs, form_first))


class SchemaTests(WorkerTest):
    """@input_schema: JSON object body -> keyword arguments, azmlinfsrv's 400/415 errors."""

    @classmethod
    def setUpClass(cls):
        cls.w = Worker("schema_std.py", python=PYTHON)

    @classmethod
    def tearDownClass(cls):
        cls.w.close()

    def post(self, body, content_type="application/json"):
        return self.w.request("POST", body, content_type=content_type, headers=[["host", "h"]])

    def test_ready_and_swagger(self):
        self.assertEqual((self.w.hello["api"], self.w.hello["wants_headers"]), ("schema", True))
        doc = json.loads(self.w.hello["swagger"]["2"])
        self.assertEqual(doc["definitions"]["ServiceInput"], {
            "type": "object",
            "properties": {"data": {"type": "object", "required": ["a", "b"], "properties": {
                "a": {"type": "integer", "format": "int64"},
                "b": {"type": "array", "items": {"type": "number", "format": "double"}}}},
                "k": {"type": "number", "format": "double"}, "opt": {}, "request_headers": {}},
            "example": {"data": {"a": 1, "b": [1.0, 2.0]}, "k": 3.5, "opt": "", "request_headers": ""}})
        self.assertEqual(doc["definitions"]["ServiceOutput"], {
            "type": "object", "required": ["out"], "properties": {"out": {"type": "integer", "format": "int64"}},
            "example": {"out": 1}})
        self.assertEqual(json.loads(self.w.hello["swagger"]["3.1"])["openapi"], "3.1.0")

    def test_arguments(self):
        self.assertJson(self.post('{"data": {"a": 2, "b": []}, "k": 5, "extra": 1}'), 200,
                        b'{"data": {"a": 2, "b": []}, "k": 5, "opt": 7, "header_names": ["Host"]}')
        self.assertJson(self.post('{"data": {"a": 2, "b": []}, "k": 5.5, "opt": null}',
                                  content_type="application/vnd.x+json; charset=utf-8"), 200,
                        b'{"data": {"a": 2, "b": []}, "k": 5.5, "opt": null, "header_names": ["Host"]}')
        self.assertJson(self.w.request("GET", query='data={"a":1,"b":[]}&k=4', headers=[]), 200,
                        b'{"data": {"a": 1, "b": []}, "k": 4, "opt": 7, "header_names": []}')

    def test_input_errors(self):
        self.assertJson(self.post("{}", "text/plain"), 415,
                        b'{"message": "Expects Content-Type to be application/json"}', exec_ms=False)
        self.assertJson(self.post("{}", None), 415,
                        b'{"message": "Expects Content-Type to be application/json"}', exec_ms=False)
        try:
            json.loads("{bad")
        except ValueError as ex:
            detail = str(ex)
        self.assertJson(self.post("{bad"), 400, json.dumps(
            {"message": "POST body could not be decoded as JSON: " + detail}).encode(), exec_ms=False)
        self.assertJson(self.post(""), 400, b'{"message": "POST body is empty. Expecting a JSON dictionary."}',
                        exec_ms=False)
        self.assertJson(self.post("[1]"), 400, b'{"message": "POST body should be a JSON dictionary."}',
                        exec_ms=False)
        self.assertJson(self.post('{"data": {}}'), 400,
                        b'{"message": "A value is not provided for the \'k\' parameter."}', exec_ms=False)
        self.assertJson(self.post(b"\xff\xfe\xfd"), 500, INTERNAL, exec_ms=False)

    def test_conversion_failure_is_run_failure(self):
        self.assertJson(self.post('{"data": {"a": 1, "b": []}, "k": "5"}'), 500, RUN_FAILED,
                        run_failed=True, exec_ms=False)
        self.assertJson(self.post('{"data": [1], "k": 5}'), 500, RUN_FAILED, run_failed=True, exec_ms=False)

    def test_mixed_array_has_no_swagger_2(self):
        w = self.started("schema_mixed.py")
        self.assertEqual(sorted(w.hello["swagger"]), ["3", "3.1"])

    @unittest.skipUnless(HAS_NUMPY_PANDAS, "numpy/pandas not installed")
    def test_numpy_and_pandas(self):
        w = self.started("schema_numpy.py")
        meta, out = w.request("POST", '{"arr": [[1, 2, 3], [4, 5, 6]], "df": [{"a": 3, "b": "z"}]}',
                              content_type="application/json")
        self.assertEqual(json.loads(out), {"arr_type": "ndarray", "shape": [2, 3], "sum": 21.0,
                                           "df_type": "DataFrame", "columns": ["a", "b"], "rows": 1})
        self.assertJson(w.request("POST", '{"arr": [[1, 2]], "df": []}', content_type="application/json"),
                        500, RUN_FAILED, run_failed=True, exec_ms=False)
        doc = json.loads(w.hello["swagger"]["3"])["components"]["schemas"]
        self.assertEqual(doc["ServiceInput"]["properties"]["arr"]["format"], "numpy.ndarray")
        self.assertEqual(doc["ServiceInput"]["example"]["df"], [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}])
        self.assertEqual(doc["ServiceOutput"]["example"], [1.0])


class StartupTests(WorkerTest):
    """Scripts azmlinfsrv refuses: INIT_FAILED with the reason, then exit code 3."""

    def failed(self, script, expected, **kwargs):
        w = self.start(script, **kwargs)
        self.assertEqual(w.kind, INIT_FAILED, w.hello)
        self.assertIn(expected, w.hello["error"])
        code, out, err = w.close()
        self.assertEqual(code, 3)
        return out, err

    def test_refused_scripts(self):
        self.failed("no_run.py", "does not have a run() function defined.")
        self.failed("no_init.py", "does not have a init() function defined.")
        self.failed("bad_signature.py", "run() cannot accept positional-only arguments, *args, or **kwargs.")
        self.failed("only_headers.py", 'run() needs to accept an argument other than "request_headers".')
        self.failed("both_decorators.py", "run() cannot be decorated with both @rawhttp and @input_schema")
        self.failed("import_error.py", "No module named 'module_that_does_not_exist'")
        self.failed(os.path.join(SCRIPTS, "bad_swagger", "score.py"), "swagger.json")

    def test_init_raising(self):
        out, err = self.failed("init_raises.py", "RuntimeError: model file is missing",
                               env={"AZUREML_MODEL_DIR": os.path.join(SCRIPTS, "swagger_files")})
        self.assertIn("Traceback", err)
        self.assertIn("User's init function failed", err)
        self.assertIn("Model Directory Contents:", out)
        self.assertIn("    swagger3.json", out)


class SwaggerAndPathTests(WorkerTest):
    def test_swagger_files_and_settings(self):
        w = self.started(os.path.join(SCRIPTS, "swagger_files", "score.py"), env={
            "SERVICE_NAME": "svc", "SERVICE_VERSION": "2.1", "SERVICE_PATH_PREFIX": "/api/v1/"})
        swagger = w.hello["swagger"]
        self.assertEqual(swagger["2"], '{"swagger": "2.0", "info": {"title": "from file"}, "x-nan": NaN}')
        self.assertEqual(json.loads(swagger["3"]), {"openapi": "3.0.3", "info": {"title": "from file 3"}})
        generated = json.loads(swagger["3.1"])
        self.assertEqual((generated["openapi"], generated["info"]["title"], generated["info"]["version"]),
                         ("3.1.0", "svc", "2.1"))
        self.assertEqual(list(generated["paths"]), ["/api/v1/", "/api/v1/score", "/api/v1/swagger.json"])

    def test_sys_path(self):
        with tempfile.TemporaryDirectory() as cwd:
            w = self.started("sys_path.py", cwd=cwd, env={"AZUREML_SOURCE_DIRECTORY": "src"})
            meta, out = w.request("POST", "x")
        got = json.loads(out)
        path = got["path"]
        self.assertEqual((got["helper"], got["name"]), ("helper imported", "entry_module"))
        self.assertEqual(os.path.realpath(path[0]), os.path.realpath(cwd))  # gunicorn's first entry
        self.assertNotIn(SERVING_DIR, path)
        self.assertEqual(path[-3:], [SCRIPTS, os.path.join(SCRIPTS, "src"), os.path.join(SERVING_DIR, "shims")])
        stdlib = os.path.dirname(os.__file__) if PYTHON == sys.executable else None
        if stdlib in path:
            self.assertLess(path.index(stdlib), path.index(SCRIPTS))

    def test_driver_module_run_is_used(self):
        w = self.started("driver.py")
        self.assertJson(w.request("POST", "abc"), 200, b'{"ok": true, "n": 3}')


class ProtocolTests(WorkerTest):
    def test_exit_codes(self):
        w = self.started("echo.py")
        self.assertEqual(w.close()[0], 0)
        w = self.started("echo.py")
        w.sock.sendall(struct.pack("<IB", 1, 9))  # an unknown frame kind
        code, out, err = w.close()
        self.assertEqual(code, 2)
        self.assertIn("protocol error", err)

    def test_fd_not_inherited_by_children(self):
        w = self.started("echo.py")
        fds = os.listdir("/proc/%d/fd" % w.proc.pid)
        self.assertIn("3", fds)
        with open("/proc/%d/fdinfo/3" % w.proc.pid) as fh:
            flags = fh.read()
        self.assertIn("flags:", flags)
        self.assertEqual(int(flags.split("flags:")[1].split()[0], 8) & 0o2000000, 0o2000000)  # O_CLOEXEC


if __name__ == "__main__":
    unittest.main()
