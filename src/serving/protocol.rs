//! Frames between the front and its Python workers (`images/serving/PROTOCOL.md`, version 1).
//!
//! Pure encode/decode, no I/O: the pool reads bytes from a worker's socket into a buffer and
//! asks [`frame_head`] whether a whole frame has arrived, then decodes its payload with
//! [`parse_ready`], [`parse_init_failed`] or [`parse_response`]. Requests are written with
//! [`encode_request_head`] followed by the body bytes.
//!
//! Wire format: `len:u32 kind:u8 payload[len - 1]`, little-endian; REQUEST and RESPONSE payloads
//! are `meta_len:u32 meta(JSON) body`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The protocol version this front speaks; READY carries the worker's.
pub const PROTOCOL_VERSION: u64 = 1;
/// Largest `len` a frame may declare (2^31 − 1), so a frame always fits an `i32` on either side.
pub const MAX_FRAME_LEN: usize = i32::MAX as usize;
/// Bytes before the payload: `len:u32` and `kind:u8`.
pub const FRAME_HEAD_LEN: usize = 5;
/// Bytes of a REQUEST/RESPONSE payload before the meta JSON: `meta_len:u32`.
const META_LEN_LEN: usize = 4;

/// What a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ready = 1,
    InitFailed = 2,
    Request = 3,
    Response = 4,
}

/// The shape of the scoring script's `run`, as the worker found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// Undecorated `run(data)`.
    Plain,
    /// `@input_schema` decorated.
    Schema,
    /// `@rawhttp` decorated: the worker also answers `OPTIONS`.
    Rawhttp,
}

/// Ways a worker's bytes can break the protocol. Any of them makes the pool kill and replace
/// the worker.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame declares length {0}; a frame is 1 to 2^31-1 bytes")]
    BadLength(u32),
    #[error("frame kind {0} is unknown (1 READY, 2 INIT_FAILED, 3 REQUEST, 4 RESPONSE)")]
    UnknownKind(u8),
    #[error("expected a {expected} frame, got {got:?}")]
    UnexpectedKind { expected: &'static str, got: Kind },
    #[error("{what} payload is {len} bytes, too short for its 4-byte meta length")]
    NoMetaLength { what: &'static str, len: usize },
    #[error("{what} meta length {meta_len} exceeds the {available} bytes that follow it")]
    MetaTooLong {
        what: &'static str,
        meta_len: usize,
        available: usize,
    },
    #[error("{what} meta is not the expected JSON object: {detail}")]
    BadMeta { what: &'static str, detail: String },
    #[error(
        "the worker speaks protocol version {0} and this front speaks {PROTOCOL_VERSION}: \
         tug_worker.py and tug-infsrv come from different builds; use the shims embedded in \
         this binary (omit --shim-dir) or rebuild the image"
    )]
    Version(u64),
    #[error("RESPONSE status {0} is not an HTTP status code (100-999)")]
    BadStatus(u16),
    #[error("a REQUEST frame of {0} bytes exceeds the 2^31-1 byte frame limit")]
    TooLarge(usize),
}

/// A frame whose head has arrived: its kind and the total bytes (head included) it spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHead {
    pub kind: Kind,
    pub total_len: usize,
}

impl FrameHead {
    /// The payload's range inside a buffer that starts with this frame.
    pub fn payload_range(&self) -> std::ops::Range<usize> {
        FRAME_HEAD_LEN..self.total_len
    }
}

/// Reads the head of the frame at the start of `buf`; `None` until its 5 bytes have arrived.
/// The whole frame is present once `buf.len() >= total_len`.
pub fn frame_head(buf: &[u8]) -> Result<Option<FrameHead>, ProtocolError> {
    let Some(head) = buf.get(..FRAME_HEAD_LEN) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    if len == 0 || len as usize > MAX_FRAME_LEN {
        return Err(ProtocolError::BadLength(len));
    }
    let kind = match head[4] {
        1 => Kind::Ready,
        2 => Kind::InitFailed,
        3 => Kind::Request,
        4 => Kind::Response,
        other => return Err(ProtocolError::UnknownKind(other)),
    };
    Ok(Some(FrameHead {
        kind,
        total_len: 4 + len as usize,
    }))
}

/// What a worker announced in READY, with the swagger documents already serialized.
#[derive(Clone, Debug, PartialEq)]
pub struct Ready {
    pub pid: u32,
    pub api: Api,
    pub wants_headers: bool,
    /// Swagger documents (JSON text) by version key ("2", "3", "3.1"); `None` when
    /// generation failed.
    pub swagger: Option<BTreeMap<String, Vec<u8>>>,
}

#[derive(Deserialize)]
struct ReadyWire {
    version: u64,
    pid: u32,
    api: Api,
    #[serde(default)]
    wants_headers: bool,
    #[serde(default)]
    swagger: Option<BTreeMap<String, serde_json::Value>>,
}

/// Decodes a READY payload; a version other than [`PROTOCOL_VERSION`] is an error.
pub fn parse_ready(payload: &[u8]) -> Result<Ready, ProtocolError> {
    let wire: ReadyWire = serde_json::from_slice(payload).map_err(|e| ProtocolError::BadMeta {
        what: "READY",
        detail: e.to_string(),
    })?;
    if wire.version != PROTOCOL_VERSION {
        return Err(ProtocolError::Version(wire.version));
    }
    // Each document is JSON text, sent unchanged (it may hold a bare NaN that a JSON value
    // could not); an object is accepted too and serialized.
    let swagger = wire.swagger.map(|docs| {
        docs.into_iter()
            .filter_map(|(version, doc)| match doc {
                serde_json::Value::Null => None,
                serde_json::Value::String(text) => Some((version, text.into_bytes())),
                other => Some((version, serde_json::to_vec(&other).unwrap_or_default())),
            })
            .collect()
    });
    Ok(Ready {
        pid: wire.pid,
        api: wire.api,
        wants_headers: wire.wants_headers,
        swagger,
    })
}

/// Decodes an INIT_FAILED payload into the traceback text. Lenient on purpose: this is the
/// message a user needs most, so a payload that is not the expected JSON is shown as text.
pub fn parse_init_failed(payload: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Wire {
        error: String,
    }
    match serde_json::from_slice::<Wire>(payload) {
        Ok(wire) => wire.error,
        Err(_) => String::from_utf8_lossy(payload).into_owned(),
    }
}

/// RESPONSE meta: the worker's final answer to one request.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ResponseMeta {
    pub id: u64,
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    #[serde(default)]
    pub run_failed: bool,
    /// Milliseconds inside `run()`; `None` when `run()` was not called.
    #[serde(default)]
    pub exec_ms: Option<f64>,
}

/// Decodes a RESPONSE payload into its meta and the offset of the body inside `payload`.
pub fn parse_response(payload: &[u8]) -> Result<(ResponseMeta, usize), ProtocolError> {
    let (meta, body_at) = split_meta("RESPONSE", payload)?;
    let meta: ResponseMeta = serde_json::from_slice(meta).map_err(|e| ProtocolError::BadMeta {
        what: "RESPONSE",
        detail: e.to_string(),
    })?;
    if !(100..=999).contains(&meta.status) {
        return Err(ProtocolError::BadStatus(meta.status));
    }
    Ok((meta, body_at))
}

fn split_meta<'a>(
    what: &'static str,
    payload: &'a [u8],
) -> Result<(&'a [u8], usize), ProtocolError> {
    let Some(len_bytes) = payload.get(..META_LEN_LEN) else {
        return Err(ProtocolError::NoMetaLength {
            what,
            len: payload.len(),
        });
    };
    let meta_len =
        u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
    let available = payload.len() - META_LEN_LEN;
    if meta_len > available {
        return Err(ProtocolError::MetaTooLong {
            what,
            meta_len,
            available,
        });
    }
    let body_at = META_LEN_LEN + meta_len;
    Ok((&payload[META_LEN_LEN..body_at], body_at))
}

/// REQUEST meta, borrowed from the HTTP request so nothing is copied before it is written.
pub struct RequestMeta<'a, H> {
    pub id: u64,
    pub method: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub content_type: Option<&'a [u8]>,
    /// Every request header (lower-case name, value), only when READY said `wants_headers`.
    pub headers: Option<H>,
    /// The client's IP address, sent along with `headers`.
    pub remote_addr: Option<&'a str>,
    pub timeout_ms: u64,
}

/// Appends a REQUEST frame's head and meta to `out`; the caller writes the `body_len` body
/// bytes right after. Hand-written JSON: this runs once per request and needs no allocation.
pub fn encode_request_head<'h, H>(
    out: &mut Vec<u8>,
    meta: RequestMeta<'_, H>,
    body_len: usize,
) -> Result<(), ProtocolError>
where
    H: Iterator<Item = (&'h str, &'h [u8])>,
{
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, Kind::Request as u8, 0, 0, 0, 0]);
    let meta_start = out.len();
    out.extend_from_slice(b"{\"id\":");
    push_u64(out, meta.id);
    out.extend_from_slice(b",\"method\":");
    push_json_str(out, meta.method.as_bytes());
    out.extend_from_slice(b",\"path\":");
    push_json_str(out, meta.path.as_bytes());
    out.extend_from_slice(b",\"query\":");
    push_json_str(out, meta.query.as_bytes());
    out.extend_from_slice(b",\"content_type\":");
    match meta.content_type {
        Some(value) => push_json_str(out, value),
        None => out.extend_from_slice(b"null"),
    }
    if let Some(headers) = meta.headers {
        out.extend_from_slice(b",\"headers\":[");
        for (i, (name, value)) in headers.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            push_json_str(out, name.as_bytes());
            out.push(b',');
            push_json_str(out, value);
            out.push(b']');
        }
        out.push(b']');
    }
    if let Some(addr) = meta.remote_addr {
        out.extend_from_slice(b",\"remote_addr\":");
        push_json_str(out, addr.as_bytes());
    }
    out.extend_from_slice(b",\"timeout_ms\":");
    push_u64(out, meta.timeout_ms);
    out.push(b'}');

    let meta_len = out.len() - meta_start;
    let frame_len = 1 + META_LEN_LEN + meta_len + body_len;
    if frame_len > MAX_FRAME_LEN {
        out.truncate(start);
        return Err(ProtocolError::TooLarge(frame_len + 4));
    }
    out[start..start + 4].copy_from_slice(&(frame_len as u32).to_le_bytes());
    out[start + 5..start + 9].copy_from_slice(&(meta_len as u32).to_le_bytes());
    Ok(())
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Writes `raw` as a JSON string, reading each byte as Latin-1 as WSGI servers do for header
/// values (so a byte ≥ 0x80 arrives as the character U+0080–U+00FF).
fn push_json_str(out: &mut Vec<u8>, raw: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut clean_from = 0;
    for (i, &b) in raw.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x80..=0xff => b"",
            _ => continue,
        };
        out.extend_from_slice(&raw[clean_from..i]);
        if !escape.is_empty() {
            out.extend_from_slice(escape);
        } else if b < 0x80 {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 0xf) as usize]);
        } else {
            // U+0080..U+00FF in UTF-8.
            out.push(0xc0 | (b >> 6));
            out.push(0x80 | (b & 0x3f));
        }
        clean_from = i + 1;
    }
    out.extend_from_slice(&raw[clean_from..]);
    out.push(b'"');
}

/// A RESPONSE header value as bytes: the worker writes each byte as one character
/// U+0000–U+00FF (Latin-1). `None` when a character is beyond U+00FF.
pub fn latin1_bytes(value: &str) -> Option<std::borrow::Cow<'_, [u8]>> {
    if value.is_ascii() {
        return Some(std::borrow::Cow::Borrowed(value.as_bytes()));
    }
    value
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .map(std::borrow::Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    type NoHeaders = std::iter::Empty<(&'static str, &'static [u8])>;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 1) as u32).to_le_bytes().to_vec();
        out.push(kind);
        out.extend_from_slice(payload);
        out
    }

    fn with_meta(meta: &str, body: &[u8]) -> Vec<u8> {
        let mut out = (meta.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(meta.as_bytes());
        out.extend_from_slice(body);
        out
    }

    fn request_frame(
        meta: RequestMeta<'_, impl Iterator<Item = (&'static str, &'static [u8])>>,
        body: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::new();
        encode_request_head(&mut out, meta, body.len()).unwrap();
        out.extend_from_slice(body);
        out
    }

    fn plain_meta(id: u64) -> RequestMeta<'static, NoHeaders> {
        RequestMeta {
            id,
            method: "POST",
            path: "/score",
            query: "",
            content_type: Some(b"application/json"),
            headers: None,
            remote_addr: None,
            timeout_ms: 3_600_000,
        }
    }

    #[test]
    fn request_round_trips_through_the_frame_head_and_meta() {
        let bytes = request_frame(plain_meta(17), b"{\"a\": 1}");
        let head = frame_head(&bytes).unwrap().unwrap();
        assert_eq!(head.kind, Kind::Request);
        assert_eq!(head.total_len, bytes.len());
        let payload = &bytes[head.payload_range()];
        let (meta, body_at) = split_meta("REQUEST", payload).unwrap();
        let meta: serde_json::Value = serde_json::from_slice(meta).unwrap();
        assert_eq!(
            meta,
            serde_json::json!({"id": 17, "method": "POST", "path": "/score", "query": "",
                               "content_type": "application/json", "timeout_ms": 3_600_000})
        );
        assert_eq!(&payload[body_at..], b"{\"a\": 1}");
    }

    #[test]
    fn request_headers_are_escaped_and_read_as_latin1() {
        let headers: Vec<(&'static str, &'static [u8])> = vec![
            ("x-quote", b"a\"b\\c"),
            ("x-ctl", b"tab\there\x01"),
            ("x-latin1", b"caf\xe9"),
            ("x-quote", b"again"),
        ];
        let meta = RequestMeta {
            id: u64::MAX,
            method: "GET",
            path: "/score",
            query: "a=1&b=%22",
            content_type: None,
            headers: Some(headers.into_iter()),
            remote_addr: Some("127.0.0.1"),
            timeout_ms: 1,
        };
        let bytes = request_frame(meta, b"");
        let head = frame_head(&bytes).unwrap().unwrap();
        let (meta, _) = split_meta("REQUEST", &bytes[head.payload_range()]).unwrap();
        let meta: serde_json::Value = serde_json::from_slice(meta).unwrap();
        assert_eq!(meta["id"], serde_json::json!(u64::MAX));
        assert_eq!(meta["content_type"], serde_json::Value::Null);
        assert_eq!(meta["remote_addr"], "127.0.0.1");
        assert_eq!(meta["query"], "a=1&b=%22");
        assert_eq!(
            meta["headers"],
            serde_json::json!([
                ["x-quote", "a\"b\\c"],
                ["x-ctl", "tab\there\u{1}"],
                ["x-latin1", "caf\u{e9}"],
                ["x-quote", "again"]
            ])
        );
    }

    #[test]
    fn frame_head_waits_for_five_bytes_and_rejects_bad_lengths_and_kinds() {
        assert_eq!(frame_head(&[]).unwrap(), None);
        assert_eq!(frame_head(&[1, 0, 0, 0]).unwrap(), None);
        assert_eq!(
            frame_head(&[0, 0, 0, 0, 1]),
            Err(ProtocolError::BadLength(0))
        );
        assert_eq!(
            frame_head(&[0, 0, 0, 0x80, 1]),
            Err(ProtocolError::BadLength(0x8000_0000))
        );
        assert_eq!(
            frame_head(&[1, 0, 0, 0, 9]),
            Err(ProtocolError::UnknownKind(9))
        );
        let head = frame_head(&[3, 0, 0, 0, 4]).unwrap().unwrap();
        assert_eq!((head.kind, head.total_len), (Kind::Response, 7));
    }

    #[test]
    fn response_decodes_meta_and_body_offset() {
        let meta = r#"{"id": 17, "status": 200, "headers": [["content-type", "application/json"]],
                       "run_failed": false, "exec_ms": 0.123}"#;
        let bytes = frame(4, &with_meta(meta, b"[1, 2]"));
        let head = frame_head(&bytes).unwrap().unwrap();
        let payload = &bytes[head.payload_range()];
        let (meta, body_at) = parse_response(payload).unwrap();
        assert_eq!(meta.id, 17);
        assert_eq!(meta.status, 200);
        assert_eq!(
            meta.headers,
            vec![("content-type".into(), "application/json".into())]
        );
        assert!(!meta.run_failed);
        assert_eq!(meta.exec_ms, Some(0.123));
        assert_eq!(&payload[body_at..], b"[1, 2]");
    }

    #[test]
    fn response_optional_fields_default() {
        let payload = with_meta(r#"{"id": 1, "status": 500, "exec_ms": null}"#, b"");
        let (meta, body_at) = parse_response(&payload).unwrap();
        assert_eq!(
            (meta.headers.len(), meta.run_failed, meta.exec_ms),
            (0, false, None)
        );
        assert_eq!(body_at, payload.len());
    }

    #[test]
    fn malformed_responses_are_protocol_errors() {
        assert_eq!(
            parse_response(&[1, 0]),
            Err(ProtocolError::NoMetaLength {
                what: "RESPONSE",
                len: 2
            })
        );
        let mut too_long = 50u32.to_le_bytes().to_vec();
        too_long.extend_from_slice(b"{}");
        assert_eq!(
            parse_response(&too_long),
            Err(ProtocolError::MetaTooLong {
                what: "RESPONSE",
                meta_len: 50,
                available: 2
            })
        );
        assert!(matches!(
            parse_response(&with_meta("{\"id\": 1", b"")),
            Err(ProtocolError::BadMeta {
                what: "RESPONSE",
                ..
            })
        ));
        assert!(matches!(
            parse_response(&with_meta(r#"{"id": "x", "status": 200}"#, b"")),
            Err(ProtocolError::BadMeta { .. })
        ));
        assert_eq!(
            parse_response(&with_meta(r#"{"id": 1, "status": 42}"#, b"")),
            Err(ProtocolError::BadStatus(42))
        );
    }

    #[test]
    fn ready_checks_the_version_and_serializes_swagger_documents() {
        let ready = parse_ready(
            br#"{"version": 1, "pid": 42, "api": "rawhttp", "wants_headers": true,
                 "swagger": {"2": {"swagger": "2.0"}, "3": {"openapi": "3.0.0"}}}"#,
        )
        .unwrap();
        assert_eq!(
            (ready.pid, ready.api, ready.wants_headers),
            (42, Api::Rawhttp, true)
        );
        let swagger = ready.swagger.unwrap();
        assert_eq!(swagger["2"], br#"{"swagger":"2.0"}"#.to_vec());
        assert!(!swagger.contains_key("3.1"));

        let no_swagger =
            parse_ready(br#"{"version": 1, "pid": 1, "api": "plain", "swagger": null}"#).unwrap();
        assert_eq!(
            (no_swagger.api, no_swagger.wants_headers, no_swagger.swagger),
            (Api::Plain, false, None)
        );

        assert_eq!(
            parse_ready(br#"{"version": 2, "pid": 1, "api": "plain"}"#),
            Err(ProtocolError::Version(2))
        );
        assert!(matches!(
            parse_ready(br#"{"version": 1, "pid": 1, "api": "grpc"}"#),
            Err(ProtocolError::BadMeta { what: "READY", .. })
        ));
    }

    #[test]
    fn init_failed_prefers_the_json_error_but_keeps_raw_text() {
        assert_eq!(
            parse_init_failed(br#"{"error": "Traceback: boom"}"#),
            "Traceback: boom"
        );
        assert_eq!(parse_init_failed(b"not json"), "not json");
    }

    #[test]
    fn response_header_values_are_latin1() {
        assert_eq!(latin1_bytes("plain").unwrap().as_ref(), b"plain");
        assert_eq!(latin1_bytes("caf\u{e9}").unwrap().as_ref(), b"caf\xe9");
        assert_eq!(latin1_bytes("\u{20ac}"), None);
    }

    #[test]
    fn oversized_request_is_refused_before_anything_is_written() {
        let mut out = b"keep".to_vec();
        let err = encode_request_head(&mut out, plain_meta(1), MAX_FRAME_LEN).unwrap_err();
        assert!(matches!(err, ProtocolError::TooLarge(_)));
        assert_eq!(out, b"keep");
    }
}
