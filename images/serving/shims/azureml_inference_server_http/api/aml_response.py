"""tug's stand-in for `azureml_inference_server_http.api.aml_response` (no Flask needed).

`AMLResponse(message, status_code, response_headers={}, json_str=False,
run_function_failed=False)` behaves like azmlinfsrv 1.5.1's Flask-based class as far as the
response on the wire goes:

- `json_str=True`: body `json.dumps(message)`, Content-Type `application/json`;
- otherwise the str/bytes message as is, Content-Type `text/html; charset=utf-8` unless
  `response_headers` has a `"Content-Type"` key (that exact spelling, as azmlinfsrv checks);
- `message=None`: body `{}` as `application/json`;
- each `response_headers` value is split on commas into repeated headers;
- `x-ms-run-function-failed` carries `run_function_failed` (a status >= 500 forces True later).

The object keeps Werkzeug's Response API for what scoring scripts touch: `headers`
(mutable, case-insensitive), `status_code`, `status`, `mimetype`, `content_type`, `data`,
`get_data()`, `set_data()`. Found only when the real package is not installed.
"""

import http
import json

from _tug_http import Headers, content_type_for, parse_options_header

__all__ = ["AMLResponse"]


def _status_line(code):
    try:
        return "%d %s" % (code, http.HTTPStatus(code).phrase.upper())
    except ValueError:
        return "%d UNKNOWN" % code


class AMLResponse:
    """An HTTP response returned by run(); sent to the client as it is."""

    default_mimetype = "text/html"

    def __init__(self, message, status_code, response_headers={}, json_str=False,
                 run_function_failed=False):
        self.headers = Headers()
        self.status = status_code
        if message is not None:
            if json_str:
                self._set_body(json.dumps(message))
                self.headers["Content-Type"] = "application/json"
            else:
                self._set_body(message)
                self.headers["Content-Type"] = content_type_for(self.default_mimetype)
                if "Content-Type" in response_headers:
                    # azmlinfsrv drops its default only for this exact key; 'content-type'
                    # leaves both headers in the response, as it does there.
                    self.headers.remove("Content-Type")
        else:
            self._set_body("{}")
            self.headers["Content-Type"] = "application/json"
        self.headers["x-ms-run-function-failed"] = run_function_failed
        for header, value in response_headers.items():
            for part in value.split(","):
                self.headers.add_header(header, part.strip())

    def __repr__(self):
        return "<AMLResponse %d bytes [%s]>" % (len(self.get_data()), self.status)

    # -- status ------------------------------------------------------------------------------

    @property
    def status_code(self):
        return self._status_code

    @status_code.setter
    def status_code(self, code):
        self._status_code = int(code)
        self._status = _status_line(self._status_code)

    @property
    def status(self):
        return self._status

    @status.setter
    def status(self, value):
        if value is None:
            value = 200  # Werkzeug's default status
        if isinstance(value, int) or isinstance(value, http.HTTPStatus):
            self.status_code = int(value)
            return
        text = str(value).strip()
        code, _, reason = text.partition(" ")
        self._status_code = int(code)
        self._status = "%s %s" % (code, reason.upper()) if reason else _status_line(int(code))

    # -- body ----------------------------------------------------------------------------------

    def _set_body(self, value):
        if isinstance(value, str):
            self._data, self._iterable = value.encode("utf-8"), None
        elif isinstance(value, (bytes, bytearray, memoryview)):
            self._data, self._iterable = bytes(value), None
        else:
            # Werkzeug treats other values as an iterable of str/bytes chunks, read lazily.
            self._data, self._iterable = None, value

    def get_data(self, as_text=False):
        if self._data is None:
            chunks = []
            for chunk in self._iterable:
                chunks.append(chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk))
            self._data, self._iterable = b"".join(chunks), None
        return self._data.decode("utf-8") if as_text else self._data

    def set_data(self, value):
        self._set_body(value)

    @property
    def data(self):
        return self.get_data()

    @data.setter
    def data(self, value):
        self.set_data(value)

    @property
    def response(self):
        return [self.get_data()]

    @property
    def content_length(self):
        return len(self.get_data())

    # -- content type ----------------------------------------------------------------------

    @property
    def content_type(self):
        return self.headers.get("Content-Type")

    @content_type.setter
    def content_type(self, value):
        self.headers["Content-Type"] = value

    @property
    def mimetype(self):
        ctype = self.headers.get("Content-Type")
        return parse_options_header(ctype)[0] if ctype else None

    @mimetype.setter
    def mimetype(self, value):
        self.headers["Content-Type"] = content_type_for(value)

    @property
    def mimetype_params(self):
        return parse_options_header(self.headers.get("Content-Type", ""))[1]

    @property
    def is_json(self):
        mimetype = self.mimetype or ""
        return mimetype == "application/json" or (
            mimetype.startswith("application/") and mimetype.endswith("+json"))

    def get_json(self, force=False, silent=False):
        if not (force or self.is_json):
            return None
        try:
            return json.loads(self.get_data())
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json()
