"""tug's stand-in for `azureml_inference_server_http.api.aml_request` (no Flask needed).

`@rawhttp` marks the scoring script's `run()` as wanting the raw HTTP request. As in
azmlinfsrv it only sets the module flag `_rawHttpRequested`, which the worker reads after
importing the script. `AMLRequest` is a small Flask-request-like object built from a WSGI
environ; the worker passes one to a `@rawhttp` run() when neither Flask nor Werkzeug is
installed (with them, it passes a real `flask.Request`, as azmlinfsrv does).

This module is only found when the real azureml-inference-server-http is not installed: the
shims directory is the last entry of sys.path.
"""

import io
import json
import re
import urllib.parse

from _tug_http import (
    BadRequestKeyError, Headers, MultiDict, is_json_mimetype, parse_form_data,
    parse_options_header, parse_qsl,
)

# BadRequestKeyError (a KeyError) is what request.args["missing"] raises, as in Werkzeug.
__all__ = ["AMLRequest", "BadRequestKeyError", "rawhttp"]

_rawHttpRequested = False


def rawhttp(func):
    """Decorator for run(): call it with the request object instead of the decoded body."""
    global _rawHttpRequested
    _rawHttpRequested = True
    return func


# Werkzeug reports URLs as IRIs: percent-escapes are decoded (UTF-8; invalid bytes stay
# escaped, upper-cased) except those of controls, space, "%", DEL and the part's delimiters.
_UNSAFE = "".join(map(chr, range(0x21))) + "%\x7f"
_KEEP = {}


def _iri(value, delimiters):
    pattern = _KEEP.get(delimiters)
    if pattern is None:
        codes = "|".join("%02X" % ord(c) for c in sorted(set(_UNSAFE + delimiters)))
        pattern = _KEEP[delimiters] = re.compile("((?:%%(?:%s))+)" % codes, re.I)
    pieces = pattern.split(value)
    return "".join(piece if i % 2 else urllib.parse.unquote(piece, "utf-8", "tug.url_quote")
                   for i, piece in enumerate(pieces))


class JSONDecodeFailed(ValueError):
    """get_json() on a body that is not JSON (Werkzeug answers 400 Bad Request)."""

    code = 400


class UnsupportedMediaType(ValueError):
    """get_json() on a request whose Content-Type is not JSON (Werkzeug: 415)."""

    code = 415


class AMLRequest:
    """The request a `@rawhttp` run() receives: Flask's request API over a WSGI environ."""

    def __init__(self, environ=None):
        environ = environ if environ is not None else {}
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        self.scheme = environ.get("wsgi.url_scheme", "http")
        self.path = "/" + environ.get("PATH_INFO", "").lstrip("/")
        self.root_path = self.script_root = environ.get("SCRIPT_NAME", "").rstrip("/")
        self.query_string = environ.get("QUERY_STRING", "").encode("latin-1")
        self.remote_addr = environ.get("REMOTE_ADDR") or None
        self.headers = Headers()
        for key, value in environ.items():
            if key.startswith("HTTP_") and key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                self.headers.add(key[5:].replace("_", "-").title(), value)
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                self.headers.add(key.replace("_", "-").title(), value)
        stream = environ.get("wsgi.input")
        self._body = stream.read() if stream is not None else b""
        self._cached_data = None
        self._form = None
        self._json = {}

    def __repr__(self):
        return "<AMLRequest %r [%s]>" % (self.url, self.method)

    # -- URL -----------------------------------------------------------------------------

    @property
    def host(self):
        host = self.headers.get("host")
        if host:
            return host
        name = self.environ.get("SERVER_NAME", "localhost")
        port = str(self.environ.get("SERVER_PORT", ""))
        default = "443" if self.scheme == "https" else "80"
        return name if not port or port == default else "%s:%s" % (name, port)

    @property
    def full_path(self):
        return "%s?%s" % (self.path, self.query_string.decode("latin-1"))

    @property
    def host_url(self):
        return "%s://%s/" % (self.scheme, self.host)

    @property
    def url_root(self):
        return "%s://%s%s/" % (self.scheme, self.host, self.root_path)

    root_url = url_root

    @property
    def base_url(self):
        path = urllib.parse.quote(self.root_path + self.path, safe="/:@&=+$,!*'()")
        return "%s://%s%s" % (self.scheme, self.host, _iri(path, "/?#"))

    @property
    def url(self):
        query = self.query_string.decode("latin-1")
        if not query:
            return self.base_url
        return "%s?%s" % (self.base_url, _iri(urllib.parse.quote(query, safe=":&%=+$!*'(),"), "&=+#"))

    @property
    def is_secure(self):
        return self.scheme in ("https", "wss")

    @property
    def access_route(self):
        forwarded = self.headers.get("x-forwarded-for")
        if forwarded:
            return [x.strip() for x in forwarded.split(",")]
        return [self.remote_addr] if self.remote_addr else []

    @property
    def args(self):
        return MultiDict(parse_qsl(self.query_string))

    @property
    def cookies(self):
        import http.cookies

        jar = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except http.cookies.CookieError:
            pass
        return MultiDict((k, m.value) for k, m in jar.items())

    @property
    def user_agent(self):
        return self.headers.get("user-agent", "")

    # -- content type ----------------------------------------------------------------------

    @property
    def content_type(self):
        return self.environ.get("CONTENT_TYPE") or None

    @property
    def content_length(self):
        try:
            return max(0, int(self.environ.get("CONTENT_LENGTH") or ""))
        except ValueError:
            return None

    @property
    def content_encoding(self):
        return self.environ.get("HTTP_CONTENT_ENCODING")

    @property
    def mimetype(self):
        return parse_options_header(self.content_type)[0]

    @property
    def mimetype_params(self):
        return parse_options_header(self.content_type)[1]

    @property
    def is_json(self):
        return is_json_mimetype(self.mimetype)

    # -- body --------------------------------------------------------------------------------

    @property
    def stream(self):
        return io.BytesIO(self.get_data())

    input_stream = stream

    def _load_form(self):
        if self._form is None:
            mimetype, params = parse_options_header(self.content_type)
            source = self._body if self._cached_data is None else self._cached_data
            form, files, consumed = parse_form_data(mimetype, params, source)
            if consumed and self._cached_data is None:
                # Werkzeug's parser reads the stream: get_data() has nothing left afterwards.
                self._body = b""
            self._form = (form, files)
        return self._form

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        data = self._cached_data
        if data is None:
            if parse_form_data:
                self._load_form()
            data = self._body
            if cache:
                self._cached_data = data
            else:
                self._body = b""
        if as_text:
            return data.decode("utf-8", "replace")
        return data

    @property
    def data(self):
        return self.get_data(parse_form_data=True)

    @property
    def form(self):
        return self._load_form()[0]

    @property
    def files(self):
        return self._load_form()[1]

    @property
    def values(self):
        merged = MultiDict(self.args)
        if self.method != "GET":
            for key, value in self.form.items(multi=True):
                merged.add(key, value)
        return merged

    def get_json(self, force=False, silent=False, cache=True):
        if cache and silent in self._json:
            return self._json[silent]
        if not (force or self.is_json):
            if silent:
                return None
            raise UnsupportedMediaType(
                "Did not attempt to load JSON data because the request Content-Type was not "
                "'application/json'.")
        try:
            value = json.loads(self.get_data(cache=cache))
        except ValueError as ex:
            if not silent:
                raise JSONDecodeFailed("Failed to decode JSON object: %s" % ex) from ex
            value = None
        if cache:
            self._json[silent] = value
        return value

    @property
    def json(self):
        return self.get_json()

    def on_json_loading_failed(self, e):
        raise JSONDecodeFailed("Failed to decode JSON object: %s" % e)

    def close(self):
        pass
