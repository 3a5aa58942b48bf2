//! What `tug-infsrv` answers: azmlinfsrv's contract (`GET /`, `GET|POST|OPTIONS /score`,
//! `GET /swagger.json`) plus `GET /metrics`, key auth, request ids and CORS.
//!
//! `/score` goes to a worker through the [`Pool`]; everything else is answered here. Every
//! response carries `x-ms-run-function-failed` and `x-ms-server-version`; the contract's routes
//! also carry the request-id headers. Responses are built whole (`Full<Bytes>`), so hyper writes
//! each in one vectored write.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};

use super::headers::{self, Cors, RequestIds};
use super::metrics::{Metrics, Route};
use super::pool::{CallError, CallRequest, Pool};
use super::protocol::{self, Api};
use super::settings::Settings;

type ResBody = Full<Bytes>;

const RUN_FAILED: HeaderName = HeaderName::from_static("x-ms-run-function-failed");
const RUN_FN_EXEC_MS: HeaderName = HeaderName::from_static("x-ms-run-fn-exec-ms");
const SERVER_VERSION_NAME: HeaderName = HeaderName::from_static("x-ms-server-version");
const SERVER_VERSION: HeaderValue =
    HeaderValue::from_static(concat!("tug-infsrv/", env!("CARGO_PKG_VERSION")));
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_MS_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
const X_MS_CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");
const TRACE_ID: HeaderName = HeaderName::from_static("traceid");
const TRUE: HeaderValue = HeaderValue::from_static("True");
const FALSE: HeaderValue = HeaderValue::from_static("False");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// azmlinfsrv's bodies for unknown routes and methods (Werkzeug's descriptions).
const NOT_FOUND: &str = "The requested URL was not found on the server. If you entered the URL manually please \
                         check your spelling and try again.";
const NOT_ALLOWED: &str = "The method is not allowed for the requested URL.";

/// Worker headers the front owns or that describe the connection, not the answer.
const DROPPED_WORKER_HEADERS: [HeaderName; 5] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
];

/// The request handler: routes, checks and response decoration.
pub struct App {
    pool: Pool,
    metrics: Arc<Metrics>,
    path_prefix: String,
    auth_key_sha256: Vec<[u8; 32]>,
    cors: Cors,
    max_request_bytes: u64,
    worker_count: usize,
    max_queue: usize,
}

/// How a route's handler answered: the response and whether run() failed.
struct Answer {
    response: Response<ResBody>,
    run_failed: bool,
}

impl Answer {
    fn ok(response: Response<ResBody>) -> Answer {
        Answer {
            response,
            run_failed: false,
        }
    }
}

fn respond(
    status: StatusCode,
    content_type: HeaderValue,
    body: impl Into<Bytes>,
) -> Response<ResBody> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}

/// `{"message": ...}` with `status`, byte for byte as azmlinfsrv's `json.dumps` writes it.
fn message(status: StatusCode, text: &str) -> Response<ResBody> {
    let mut body = b"{\"message\": ".to_vec();
    let _ = serde_json::to_writer(&mut body, text);
    body.push(b'}');
    respond(status, JSON, body)
}

/// Which route a path names; the SERVICE_PATH_PREFIX form and the bare one both work
/// (azmlinfsrv serves bare paths; its swagger documents prefixed ones).
fn classify(path: &str, prefix: &str) -> Option<Route> {
    let path = match path.strip_prefix(prefix) {
        Some("") if !prefix.is_empty() => "/",
        Some(rest) if !prefix.is_empty() && rest.starts_with('/') => rest,
        _ => path,
    };
    match path {
        "/" => Some(Route::Health),
        "/score" => Some(Route::Score),
        "/swagger.json" => Some(Route::Swagger),
        "/metrics" => Some(Route::Metrics),
        _ => None,
    }
}

fn method_allowed(route: Route, method: &Method) -> bool {
    match route {
        Route::Score => matches!(*method, Method::GET | Method::POST | Method::OPTIONS),
        Route::Health | Route::Swagger | Route::Metrics => {
            matches!(*method, Method::GET | Method::HEAD)
        }
        Route::Other => false,
    }
}

/// The first `name=value` of a raw query string (values here need no percent-decoding).
fn query_param<'q>(query: Option<&'q str>, name: &str) -> Option<&'q str> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

enum BodyError {
    TooLarge,
    Aborted(hyper::Error),
}

/// Collects the request body, refusing more than `limit` bytes (by Content-Length before
/// reading anything, else as it arrives). A body that arrives in one chunk is not copied.
async fn read_body(mut body: Incoming, limit: u64) -> Result<Bytes, BodyError> {
    let declared = body.size_hint().exact();
    if declared.is_some_and(|n| n > limit) {
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Aborted)?.into_data() else {
            continue; // trailers
        };
        total += data.len() as u64;
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        if let Some(buf) = joined.as_mut() {
            buf.extend_from_slice(&data);
        } else if let Some(previous) = first.take() {
            let mut buf = BytesMut::with_capacity(declared.unwrap_or(total).max(total) as usize);
            buf.extend_from_slice(&previous);
            buf.extend_from_slice(&data);
            joined = Some(buf);
        } else {
            first = Some(data);
        }
    }
    Ok(joined.map(BytesMut::freeze).or(first).unwrap_or_default())
}

impl App {
    pub fn new(settings: &Settings, pool: Pool, metrics: Arc<Metrics>) -> App {
        App {
            pool,
            metrics,
            path_prefix: settings.path_prefix.clone(),
            auth_key_sha256: settings.auth_key_sha256.clone(),
            cors: Cors::new(&settings.cors_origins),
            max_request_bytes: settings.max_request_bytes,
            worker_count: settings.worker_count,
            max_queue: settings.max_queue,
        }
    }

    /// Answers one request from `remote` and counts it.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        remote: Option<IpAddr>,
    ) -> Response<ResBody> {
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let route = classify(parts.uri.path(), &self.path_prefix);
        let (answer, ids) = self.answer(&parts, route, body, remote).await;
        let Answer {
            mut response,
            run_failed,
        } = answer;
        let out = response.headers_mut();
        out.insert(RUN_FAILED, if run_failed { TRUE } else { FALSE });
        out.insert(SERVER_VERSION_NAME, SERVER_VERSION);
        if let Some(ids) = ids {
            out.insert(X_REQUEST_ID, ids.request_id);
            out.insert(X_MS_REQUEST_ID, ids.ms_request_id);
            if let Some(client) = ids.client_request_id {
                out.insert(X_MS_CLIENT_REQUEST_ID, client);
            }
            if let Some(trace) = parts.headers.get(&TRACE_ID) {
                out.insert(TRACE_ID, trace.clone());
            }
            if self.cors.enabled() {
                self.cors.apply(&parts.headers, out);
            }
        }
        let status = response.status().as_u16();
        self.metrics.record(
            route.unwrap_or(Route::Other),
            status,
            started.elapsed(),
            run_failed,
        );
        response
    }

    /// The checks in azmlinfsrv's order (auth first, as Azure's front door does), then the route.
    async fn answer(
        &self,
        parts: &Parts,
        route: Option<Route>,
        body: Incoming,
        remote: Option<IpAddr>,
    ) -> (Answer, Option<RequestIds>) {
        let method = &parts.method;
        let open_route =
            route == Some(Route::Health) && matches!(*method, Method::GET | Method::HEAD);
        let preflight = *method == Method::OPTIONS
            && self.cors.enabled()
            && headers::is_preflight(&parts.headers);
        if !self.auth_key_sha256.is_empty()
            && !open_route
            && !preflight
            && !headers::key_accepted(&parts.headers, &self.auth_key_sha256)
        {
            let mut response = message(
                StatusCode::UNAUTHORIZED,
                "Missing or wrong key: send the header 'Authorization: Bearer <key>'.",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return (Answer::ok(response), None);
        }
        let Some(route) = route else {
            return (Answer::ok(message(StatusCode::NOT_FOUND, NOT_FOUND)), None);
        };
        if !method_allowed(route, method) {
            return (
                Answer::ok(message(StatusCode::METHOD_NOT_ALLOWED, NOT_ALLOWED)),
                None,
            );
        }
        let ids = match headers::request_ids(&parts.headers, headers::new_uuid4) {
            Ok(ids) => ids,
            Err(text) => {
                let status = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                return (Answer::ok(message(status, text)), None);
            }
        };
        let answer = match route {
            Route::Health => Answer::ok(self.health()),
            Route::Score => self.score(parts, body, remote).await,
            Route::Swagger => Answer::ok(self.swagger(parts.uri.query())),
            Route::Metrics => Answer::ok(respond(
                StatusCode::OK,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                self.metrics.render(),
            )),
            Route::Other => Answer::ok(message(StatusCode::NOT_FOUND, NOT_FOUND)),
        };
        (answer, Some(ids))
    }

    fn health(&self) -> Response<ResBody> {
        if self.pool.ready_count() > 0 {
            respond(StatusCode::OK, HTML, Bytes::from_static(b"Healthy"))
        } else {
            message(
                StatusCode::SERVICE_UNAVAILABLE,
                "No worker is ready: init() is still running.",
            )
        }
    }

    fn swagger(&self, query: Option<&str>) -> Response<ResBody> {
        let Some(script) = self.pool.script() else {
            return message(
                StatusCode::SERVICE_UNAVAILABLE,
                "No worker is ready: init() is still running.",
            );
        };
        let Some(docs) = &script.swagger else {
            return message(
                StatusCode::NOT_FOUND,
                "Swagger is not available: generating it failed when the worker started (see the log).",
            );
        };
        let asked = query_param(query, "version").unwrap_or("2");
        let supported = docs
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        let key = match asked {
            "2" | "2.0" => "2",
            "3" | "3.0" => "3",
            "3.1" => "3.1",
            _ => {
                let text = format!(
                    "Swagger version [{asked}] is not valid. Supported versions: [{supported}]."
                );
                return message(StatusCode::NOT_FOUND, &text);
            }
        };
        match docs.get(key) {
            Some(doc) => respond(StatusCode::OK, JSON, doc.clone()),
            None => message(
                StatusCode::NOT_FOUND,
                &format!(
                    "Swagger version [{asked}] is not supported for the scoring script. Supported swagger \
                     versions: [{supported}]."
                ),
            ),
        }
    }

    async fn score(&self, parts: &Parts, body: Incoming, remote: Option<IpAddr>) -> Answer {
        let rawhttp = self.pool.script().is_some_and(|s| s.api == Api::Rawhttp);
        if parts.method == Method::OPTIONS && !rawhttp {
            return Answer::ok(respond(StatusCode::OK, HTML, Bytes::new()));
        }
        let body = match read_body(body, self.max_request_bytes).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => return Answer::ok(self.too_large()),
            Err(BodyError::Aborted(e)) => {
                let text = format!("The request body could not be read: {e}");
                return Answer::ok(message(StatusCode::BAD_REQUEST, &text));
            }
        };
        let request = CallRequest {
            method: parts.method.as_str(),
            path: "/score",
            query: parts.uri.query().unwrap_or(""),
            content_type: parts
                .headers
                .get(header::CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
            headers: &parts.headers,
            remote_addr: remote,
            body: &body,
        };
        let reply = match self.pool.call(&request).await {
            Ok(reply) => reply,
            Err(e) => return self.call_failed(e),
        };
        let meta = reply.meta;
        let mut response = Response::new(Full::new(reply.body));
        *response.status_mut() =
            StatusCode::from_u16(meta.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let out = response.headers_mut();
        for (name, value) in &meta.headers {
            let name = HeaderName::from_bytes(name.as_bytes());
            let value = protocol::latin1_bytes(value).map(|bytes| HeaderValue::from_bytes(&bytes));
            let (Ok(name), Some(Ok(value))) = (name, value) else {
                tracing::debug!(
                    "dropping a response header the scoring script set that HTTP cannot carry"
                );
                continue;
            };
            if !DROPPED_WORKER_HEADERS.contains(&name) {
                out.append(name, value);
            }
        }
        if let Some(ms) = meta.exec_ms
            && let Ok(value) = HeaderValue::try_from(format!("{ms:.3}"))
        {
            out.insert(RUN_FN_EXEC_MS, value);
        }
        Answer {
            response,
            run_failed: meta.run_failed,
        }
    }

    fn too_large(&self) -> Response<ResBody> {
        let text = format!(
            "The request body is larger than {} bytes (TUG_MAX_REQUEST_BYTES).",
            self.max_request_bytes
        );
        message(StatusCode::PAYLOAD_TOO_LARGE, &text)
    }

    fn call_failed(&self, error: CallError) -> Answer {
        let busy = |text: String| {
            let mut response = message(StatusCode::SERVICE_UNAVAILABLE, &text);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Answer::ok(response)
        };
        let died = |text: String| Answer {
            response: message(StatusCode::INTERNAL_SERVER_ERROR, &text),
            run_failed: true,
        };
        match error {
            CallError::QueueFull => busy(format!(
                "All {} workers are busy and {} requests are waiting (TUG_MAX_QUEUE); retry shortly.",
                self.worker_count, self.max_queue
            )),
            CallError::QueueTimeout(waited) => busy(format!(
                "No worker became free within {} s (WORKER_TIMEOUT); retry shortly.",
                waited.as_secs()
            )),
            CallError::ShuttingDown => busy("The server is shutting down.".to_string()),
            CallError::WorkerLost(_) => died(
                "The worker process running the scoring script died during this request; it is being \
                 replaced. Check the logs for more info."
                    .to_string(),
            ),
            CallError::WorkerTimeout(limit) => died(format!(
                "Worker timeout after {} s (WORKER_TIMEOUT): the worker was killed and is being replaced.",
                limit.as_secs()
            )),
            CallError::TooLarge(_) => Answer::ok(self.too_large()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_found_with_and_without_the_prefix() {
        assert_eq!(classify("/", ""), Some(Route::Health));
        assert_eq!(classify("/score", ""), Some(Route::Score));
        assert_eq!(classify("/swagger.json", ""), Some(Route::Swagger));
        assert_eq!(classify("/metrics", ""), Some(Route::Metrics));
        assert_eq!(classify("/scores", ""), None);
        assert_eq!(classify("/api/v1/score", "/api/v1"), Some(Route::Score));
        assert_eq!(classify("/api/v1", "/api/v1"), Some(Route::Health));
        assert_eq!(classify("/api/v1/", "/api/v1"), Some(Route::Health));
        assert_eq!(classify("/score", "/api/v1"), Some(Route::Score));
        assert_eq!(classify("/api/v1x/score", "/api/v1"), None);
    }

    #[test]
    fn methods_follow_the_contract() {
        for method in [Method::GET, Method::POST, Method::OPTIONS] {
            assert!(method_allowed(Route::Score, &method));
        }
        assert!(!method_allowed(Route::Score, &Method::PUT));
        assert!(method_allowed(Route::Health, &Method::HEAD));
        assert!(!method_allowed(Route::Health, &Method::POST));
        assert!(!method_allowed(Route::Swagger, &Method::DELETE));
    }

    #[test]
    fn query_param_takes_the_first_exact_name() {
        assert_eq!(query_param(Some("version=3.1"), "version"), Some("3.1"));
        assert_eq!(
            query_param(Some("a=1&version=3&version=2"), "version"),
            Some("3")
        );
        assert_eq!(query_param(Some("versions=3"), "version"), None);
        assert_eq!(query_param(None, "version"), None);
    }

    #[test]
    fn error_messages_are_json_objects_spaced_as_python_writes_them() {
        let response = message(StatusCode::METHOD_NOT_ALLOWED, NOT_ALLOWED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let body = response.into_body();
        let bytes = futures_util::FutureExt::now_or_never(body.collect())
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(
            &bytes[..],
            br#"{"message": "The method is not allowed for the requested URL."}"#
        );
    }
}
