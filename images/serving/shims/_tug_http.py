"""Small HTTP data structures for tug's scoring shims (stdlib only).

Shared by the worker (`tug_worker.py`) and the stand-ins for azmlinfsrv's `AMLRequest` /
`AMLResponse`: a case-insensitive multi-valued header map, a multi-dict for query strings
and forms, content-type parsing and form/multipart decoding. They follow what Werkzeug (under
Flask, under azmlinfsrv) does closely enough that scoring scripts written against a Flask
request or response object see the same values; they are not a general HTTP library.
"""

import codecs
import io
import shutil
import urllib.parse

__all__ = [
    "BadRequestKeyError", "FileStorage", "Headers", "MultiDict", "content_type_for",
    "is_json_mimetype", "parse_form_data", "parse_options_header", "parse_qsl",
]


def _quote_invalid_bytes(err):
    # Werkzeug >= 2.3 keeps bytes that are not UTF-8 percent-encoded ("%ff" -> "%FF") instead
    # of replacing them; the same error handler gives the same values here.
    return urllib.parse.quote(err.object[err.start:err.end], safe=""), err.end


codecs.register_error("tug.url_quote", _quote_invalid_bytes)


def parse_qsl(query):
    """(name, value) pairs of a query string or urlencoded body, blank values kept."""
    if isinstance(query, (bytes, bytearray)):
        query = bytes(query).decode("latin-1")
    return urllib.parse.parse_qsl(query, keep_blank_values=True, errors="tug.url_quote")


def parse_options_header(value):
    """'Text/Plain; charset="utf-8"' -> ('text/plain', {'charset': 'utf-8'})."""
    if not value:
        return "", {}
    parts = _split_unquoted(value, ";")
    mimetype = parts[0].strip().lower()
    params = {}
    for part in parts[1:]:
        name, sep, val = part.partition("=")
        name = name.strip().lower()
        if not sep or not name:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params[name] = val
    return mimetype, params


def _split_unquoted(text, sep):
    # Split on `sep` outside double quotes (boundary="a;b" is one parameter).
    out, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def is_json_mimetype(mimetype):
    """Flask's `is_json`: application/json or any application/*+json."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))


_CHARSET_MIMETYPES = frozenset((
    "application/ecmascript", "application/javascript", "application/sql", "application/xml",
    "application/xml-dtd", "application/xml-external-parsed-entity",
))


def content_type_for(mimetype):
    """The Content-Type Werkzeug writes for a mimetype (text types get '; charset=utf-8')."""
    if mimetype.startswith("text/") or mimetype in _CHARSET_MIMETYPES or mimetype.endswith("+xml"):
        return mimetype + "; charset=utf-8"
    return mimetype


class BadRequestKeyError(KeyError):
    """A missing key in request.args/form/files (Werkzeug raises a KeyError subclass too)."""


class MultiDict:
    """Ordered multi-valued mapping with Werkzeug's MultiDict reading API.

    `d[key]` and `get` give the first value, `getlist` all of them; iteration yields keys.
    """

    def __init__(self, pairs=()):
        self._pairs = []
        if isinstance(pairs, dict):
            pairs = pairs.items()
        elif isinstance(pairs, MultiDict):
            pairs = pairs.items(multi=True)
        for key, value in pairs:
            self._pairs.append((key, value))

    def __getitem__(self, key):
        for k, v in self._pairs:
            if k == key:
                return v
        raise BadRequestKeyError(key)

    def __setitem__(self, key, value):
        self.setlist(key, [value])

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        self._pairs = [(k, v) for k, v in self._pairs if k != key]

    def __contains__(self, key):
        return any(k == key for k, _ in self._pairs)

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def __bool__(self):
        return bool(self._pairs)

    def __eq__(self, other):
        if isinstance(other, MultiDict):
            return self._pairs == other._pairs
        if isinstance(other, dict):
            return self.to_dict() == other
        return NotImplemented

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self._pairs)

    def get(self, key, default=None, type=None):
        for k, v in self._pairs:
            if k == key:
                if type is None:
                    return v
                try:
                    return type(v)
                except (ValueError, TypeError):
                    return default
        return default

    def getlist(self, key, type=None):
        out = []
        for k, v in self._pairs:
            if k == key:
                if type is None:
                    out.append(v)
                else:
                    try:
                        out.append(type(v))
                    except (ValueError, TypeError):
                        pass
        return out

    def add(self, key, value):
        self._pairs.append((key, value))

    def setlist(self, key, values):
        rest = [(k, v) for k, v in self._pairs if k != key]
        self._pairs = rest + [(key, v) for v in values]

    def keys(self):
        seen = []
        for k, _ in self._pairs:
            if k not in seen:
                seen.append(k)
        return seen

    def values(self):
        return [self[k] for k in self.keys()]

    def items(self, multi=False):
        if multi:
            return list(self._pairs)
        return [(k, self[k]) for k in self.keys()]

    def lists(self):
        return [(k, self.getlist(k)) for k in self.keys()]

    def to_dict(self, flat=True):
        if flat:
            return dict(self.items())
        return dict(self.lists())

    def copy(self):
        return type(self)(self._pairs)


class Headers:
    """Case-insensitive, ordered, multi-valued header map (Werkzeug's Headers API).

    Iterating yields (name, value) pairs, as Werkzeug's does; `dict(headers)` works through
    keys()/__getitem__.
    """

    def __init__(self, pairs=()):
        self._list = []
        if isinstance(pairs, dict):
            pairs = pairs.items()
        for key, value in pairs:
            self.add(key, value)

    @staticmethod
    def _value(value):
        value = str(value)
        if "\n" in value or "\r" in value:
            raise ValueError("Header values must not contain newline characters.")
        return value

    def __getitem__(self, key):
        if isinstance(key, int):
            return self._list[key]
        low = key.lower()
        for k, v in self._list:
            if k.lower() == low:
                return v
        raise BadRequestKeyError(key)

    def __setitem__(self, key, value):
        self.set(key, value)

    def __delitem__(self, key):
        self.remove(key)

    def __contains__(self, key):
        low = key.lower()
        return any(k.lower() == low for k, _ in self._list)

    def __iter__(self):
        return iter(list(self._list))

    def __len__(self):
        return len(self._list)

    def __bool__(self):
        return bool(self._list)

    def __eq__(self, other):
        if isinstance(other, Headers):
            return self._list == other._list
        return NotImplemented

    def __repr__(self):
        return "%s(%r)" % (type(self).__name__, self._list)

    def __str__(self):
        return "".join("%s: %s\r\n" % kv for kv in self._list) + "\r\n"

    def get(self, key, default=None, type=None):
        try:
            value = self[key]
        except KeyError:
            return default
        if type is None:
            return value
        try:
            return type(value)
        except (ValueError, TypeError):
            return default

    def getlist(self, key, type=None):
        low = key.lower()
        out = []
        for k, v in self._list:
            if k.lower() == low:
                if type is None:
                    out.append(v)
                else:
                    try:
                        out.append(type(v))
                    except (ValueError, TypeError):
                        pass
        return out

    get_all = getlist

    def keys(self, lower=False):
        return [k.lower() if lower else k for k, _ in self._list]

    def values(self):
        return [v for _, v in self._list]

    def items(self, lower=False):
        return [(k.lower() if lower else k, v) for k, v in self._list]

    def add(self, key, value, **params):
        if params:
            value = str(value) + "".join(
                "; %s" % k if v is None else '; %s="%s"' % (k.replace("_", "-"), v)
                for k, v in params.items())
        self._list.append((str(key), self._value(value)))

    def add_header(self, key, value, **params):
        self.add(key, value, **params)

    def set(self, key, value, **params):
        if params:
            value = str(value) + "".join(
                "; %s" % k if v is None else '; %s="%s"' % (k.replace("_", "-"), v)
                for k, v in params.items())
        value = self._value(value)
        low = key.lower()
        for i, (k, _) in enumerate(self._list):
            if k.lower() == low:
                self._list[i] = (str(key), value)
                self._list[i + 1:] = [kv for kv in self._list[i + 1:] if kv[0].lower() != low]
                return
        self._list.append((str(key), value))

    def setdefault(self, key, default):
        if key in self:
            return self[key]
        self.set(key, default)
        return self[key]

    def remove(self, key):
        low = key.lower()
        self._list = [kv for kv in self._list if kv[0].lower() != low]

    def pop(self, key=None, default=KeyError):
        if key is None:
            return self._list.pop()
        try:
            value = self[key]
        except KeyError:
            if default is KeyError:
                raise
            return default
        self.remove(key)
        return value

    def extend(self, *args, **kwargs):
        for arg in args:
            pairs = arg.items() if hasattr(arg, "items") else arg
            for k, v in pairs:
                self.add(k, v)
        for k, v in kwargs.items():
            self.add(k, v)

    def update(self, *args, **kwargs):
        for arg in args:
            pairs = arg.items() if hasattr(arg, "items") else arg
            for k, v in pairs:
                self.set(k, v)
        for k, v in kwargs.items():
            self.set(k, v)

    def clear(self):
        self._list = []

    def copy(self):
        return type(self)(self._list)

    def to_wsgi_list(self):
        return list(self._list)


class FileStorage:
    """An uploaded file from a multipart body (Werkzeug's FileStorage API)."""

    def __init__(self, stream=None, filename=None, name=None, content_type=None, headers=None):
        self.stream = stream if stream is not None else io.BytesIO()
        self.filename = filename
        self.name = name
        self.headers = headers if headers is not None else Headers()
        if content_type is not None and "content-type" not in self.headers:
            self.headers["Content-Type"] = content_type

    @property
    def content_type(self):
        return self.headers.get("content-type")

    @property
    def content_length(self):
        return int(self.headers.get("content-length") or 0)

    @property
    def mimetype(self):
        return parse_options_header(self.content_type)[0]

    @property
    def mimetype_params(self):
        return parse_options_header(self.content_type)[1]

    def read(self, *args):
        return self.stream.read(*args)

    def readline(self, *args):
        return self.stream.readline(*args)

    def seek(self, *args):
        return self.stream.seek(*args)

    def tell(self):
        return self.stream.tell()

    def save(self, dst, buffer_size=16384):
        if isinstance(dst, str) or hasattr(dst, "__fspath__"):
            with open(dst, "wb") as out:
                shutil.copyfileobj(self.stream, out, buffer_size)
        else:
            shutil.copyfileobj(self.stream, dst, buffer_size)

    def close(self):
        self.stream.close()

    def __bool__(self):
        return bool(self.filename)

    def __iter__(self):
        return iter(self.stream)

    def __repr__(self):
        return "<FileStorage: %r (%r)>" % (self.filename, self.content_type)


def parse_form_data(mimetype, params, body):
    """Decode a form body as Werkzeug does: (form, files, consumed).

    `consumed` tells whether the parser read the body (Werkzeug then leaves nothing for a
    later get_data()); a multipart body without a boundary is left alone.
    """
    if mimetype == "application/x-www-form-urlencoded":
        return MultiDict(parse_qsl(body)), MultiDict(), True
    if mimetype == "multipart/form-data" and params.get("boundary"):
        form, files = MultiDict(), MultiDict()
        try:
            _parse_multipart(body, params["boundary"].encode("latin-1"), form, files)
        except ValueError:
            pass  # Werkzeug's parser is silent about malformed bodies
        return form, files, True
    return MultiDict(), MultiDict(), False


def _parse_multipart(body, boundary, form, files):
    # Split by hand rather than through the email package so that file contents stay
    # byte-exact (no line-ending or transfer-encoding handling).
    delim = b"--" + boundary
    body = bytes(body)
    pos = body.find(delim)
    if pos < 0:
        raise ValueError("no boundary in body")
    while True:
        pos += len(delim)
        if body[pos:pos + 2] == b"--":
            return
        if body[pos:pos + 2] == b"\r\n":
            pos += 2
        elif body[pos:pos + 1] == b"\n":
            pos += 1
        end = body.find(b"\r\n" + delim, pos)
        if end < 0:
            raise ValueError("unterminated part")
        _add_part(body[pos:end], form, files)
        pos = end + 2


def _add_part(part, form, files):
    head, sep, content = part.partition(b"\r\n\r\n")
    if not sep:
        if part.startswith(b"\r\n"):
            head, content = b"", part[2:]
        else:
            raise ValueError("part without headers")
    headers = Headers()
    for line in head.decode("latin-1").split("\r\n"):
        name, colon, value = line.partition(":")
        if colon:
            headers.add(name.strip(), value.strip())
    _, disp = parse_options_header(headers.get("content-disposition", ""))
    name = disp.get("name")
    filename = disp.get("filename*") or disp.get("filename")
    if filename is not None and filename.lower().startswith("utf-8''"):
        filename = urllib.parse.unquote(filename[7:])
    if name is None:
        return
    if filename is None:
        # A part without a filename is a text field, decoded with its charset (UTF-8 default).
        charset = parse_options_header(headers.get("content-type", ""))[1].get("charset", "utf-8")
        try:
            form.add(name, content.decode(charset, "replace"))
        except LookupError:
            form.add(name, content.decode("utf-8", "replace"))
    else:
        files.add(name, FileStorage(io.BytesIO(content), filename, name, headers=headers))
