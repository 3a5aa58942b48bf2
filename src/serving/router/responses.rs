//! Every answer the router gives, as plain `http::Response` values: its own (health, 401,
//! 404, 413, 429, metrics) and a deployment's, mapped the way Azure's front door maps them
//! (non-2xx from `/score` → 424, timeout → 408, unreachable → 502). Pure.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};

use super::auth::Denied;
use super::proxy::{ForwardError, UpstreamResponse};

pub type RouterResponse = Response<Full<Bytes>>;

/// Names the deployment that answered, on every response that came from one.
pub const DEPLOYMENT_HEADER: HeaderName = HeaderName::from_static("azureml-model-deployment");
/// On a 424: the status code the model's container returned.
pub const MODEL_ERROR_STATUS_HEADER: HeaderName =
    HeaderName::from_static("ms-azureml-model-error-statuscode");
/// On a 424: the reason phrase the model's container returned.
pub const MODEL_ERROR_REASON_HEADER: HeaderName =
    HeaderName::from_static("ms-azureml-model-error-reason");

/// What the router does with an instance's status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusMapping {
    /// Sent to the caller unchanged.
    PassThrough,
    /// Azure's "model error": 424 to the caller, the original status in headers.
    ModelError,
}

/// Azure turns a scoring container's non-2xx answer to `/score` into 424; other paths
/// (`/swagger.json`, ...) pass through.
pub fn map_upstream_status(path: &str, status: StatusCode) -> StatusMapping {
    if is_score_path(path) && !status.is_success() {
        StatusMapping::ModelError
    } else {
        StatusMapping::PassThrough
    }
}

/// `/score`, also under a `SERVICE_PATH_PREFIX`, with or without a trailing slash.
fn is_score_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.strip_suffix('/').unwrap_or(path);
    path == "/score" || path.ends_with("/score")
}

/// `GET /`: the router's own liveness, answered without auth, like the scoring server's.
pub fn healthy() -> RouterResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(b"Healthy")));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// `{"message": ...}` with `status`, the error shape Azure's endpoints use.
pub fn json_message(status: StatusCode, message: &str) -> RouterResponse {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn unauthorized(denied: Denied) -> RouterResponse {
    let mut response = json_message(StatusCode::UNAUTHORIZED, denied.message());
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

pub fn metrics_text(text: String) -> RouterResponse {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub fn unknown_deployment(endpoint: &str, name: &str, known: &[&str]) -> RouterResponse {
    json_message(
        StatusCode::NOT_FOUND,
        &format!(
            "Endpoint '{endpoint}' has no deployment '{name}' (named in the azureml-model-deployment header); its deployments: {}.",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ),
    )
}

pub fn no_live_traffic(endpoint: &str) -> RouterResponse {
    json_message(
        StatusCode::NOT_FOUND,
        &format!(
            "No deployment with traffic in endpoint '{endpoint}'. Give one traffic with `tug online-endpoint update --name {endpoint} --traffic \"<deployment>=100\"`, or name a deployment in the azureml-model-deployment header."
        ),
    )
}

pub fn payload_too_large(limit_bytes: u64) -> RouterResponse {
    json_message(
        StatusCode::PAYLOAD_TOO_LARGE,
        &format!(
            "Request body is larger than the endpoint's limit of {} MiB.",
            limit_bytes / (1024 * 1024)
        ),
    )
}

pub fn unreadable_body(detail: &str) -> RouterResponse {
    json_message(
        StatusCode::BAD_REQUEST,
        &format!("Could not read the request body: {detail}"),
    )
}

/// 429: the deployment already has its maximum in flight.
pub fn too_many_requests(
    deployment: &str,
    limit: usize,
    max_concurrent_requests_per_instance: u32,
    instances: usize,
) -> RouterResponse {
    let response = json_message(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "Too many requests for deployment '{deployment}': {limit} already in flight (2 × max_concurrent_requests_per_instance {max_concurrent_requests_per_instance} × {instances} instance(s)). Retry later, or raise instance_count or request_settings.max_concurrent_requests_per_instance."
        ),
    );
    with_deployment(response, deployment)
}

/// The caller's answer for a forwarded request: the instance's response (mapped per
/// [`map_upstream_status`]) or the router's error for why there is none.
pub fn from_upstream(
    deployment: &str,
    path: &str,
    result: Result<UpstreamResponse, ForwardError>,
) -> RouterResponse {
    let response = match result {
        Ok(upstream) => from_instance(path, upstream),
        Err(error) => from_forward_error(&error),
    };
    with_deployment(response, deployment)
}

fn from_instance(path: &str, upstream: UpstreamResponse) -> RouterResponse {
    let mapping = map_upstream_status(path, upstream.status);
    let mut response = Response::new(Full::new(upstream.body));
    *response.headers_mut() = upstream.headers;
    if mapping == StatusMapping::PassThrough {
        *response.status_mut() = upstream.status;
        return response;
    }
    *response.status_mut() = StatusCode::FAILED_DEPENDENCY;
    let reason = upstream
        .reason
        .and_then(|reason| HeaderValue::from_maybe_shared(reason).ok())
        .unwrap_or_else(|| {
            HeaderValue::from_static(upstream.status.canonical_reason().unwrap_or(""))
        });
    let headers = response.headers_mut();
    headers.insert(MODEL_ERROR_STATUS_HEADER, upstream.status.as_u16().into());
    headers.insert(MODEL_ERROR_REASON_HEADER, reason);
    response
}

fn from_forward_error(error: &ForwardError) -> RouterResponse {
    match error {
        ForwardError::NoInstance { deployment } => json_message(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "Deployment '{deployment}' has no ready instance yet; check it with `tug online-deployment get-logs --name {deployment}`."
            ),
        ),
        ForwardError::TimedOut {
            deployment,
            timeout_ms,
        } => json_message(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "Deployment '{deployment}' did not answer within request_timeout_ms ({timeout_ms} ms). Raise request_settings.request_timeout_ms or make scoring faster."
            ),
        ),
        ForwardError::Unreachable { deployment, .. } => json_message(
            StatusCode::BAD_GATEWAY,
            &format!(
                "No instance of deployment '{deployment}' could be reached; check it with `tug online-deployment get-logs --name {deployment}`."
            ),
        ),
        ForwardError::Failed { deployment, .. } | ForwardError::BodyFailed { deployment, .. } => {
            json_message(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "An instance of deployment '{deployment}' closed the connection before answering; check it with `tug online-deployment get-logs --name {deployment}`."
                ),
            )
        }
    }
}

fn with_deployment(mut response: RouterResponse, deployment: &str) -> RouterResponse {
    if let Ok(value) = HeaderValue::from_str(deployment) {
        response.headers_mut().insert(DEPLOYMENT_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use hyper::header::HeaderMap;

    fn upstream(status: u16, reason: Option<&'static str>, body: &'static str) -> UpstreamResponse {
        let mut headers = HeaderMap::new();
        headers.insert("x-ms-run-function-failed", HeaderValue::from_static("True"));
        UpstreamResponse {
            status: StatusCode::from_u16(status).unwrap(),
            reason: reason.map(|r| Bytes::from_static(r.as_bytes())),
            headers,
            body: Bytes::from_static(body.as_bytes()),
            instance: "127.0.0.1:1".parse().unwrap(),
        }
    }

    fn body_of(response: RouterResponse) -> String {
        let bytes = futures_util::FutureExt::now_or_never(response.into_body().collect())
            .unwrap()
            .unwrap()
            .to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn header<'a>(response: &'a RouterResponse, name: &str) -> Option<&'a str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn status_mapping_only_touches_score_errors() {
        use StatusMapping::*;
        let ok = StatusCode::OK;
        let error = StatusCode::INTERNAL_SERVER_ERROR;
        assert_eq!(map_upstream_status("/score", ok), PassThrough);
        assert_eq!(
            map_upstream_status("/score", StatusCode::CREATED),
            PassThrough
        );
        assert_eq!(map_upstream_status("/score", error), ModelError);
        assert_eq!(
            map_upstream_status("/score?x=1", StatusCode::BAD_REQUEST),
            ModelError
        );
        assert_eq!(map_upstream_status("/svc/score/", error), ModelError);
        assert_eq!(
            map_upstream_status("/swagger.json", StatusCode::NOT_FOUND),
            PassThrough
        );
        assert_eq!(map_upstream_status("/scores", error), PassThrough);
    }

    #[test]
    fn upstream_200_passes_through_with_the_deployment_header() {
        let response = from_upstream("blue", "/score", Ok(upstream(200, None, "\"blue\"")));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "azureml-model-deployment"), Some("blue"));
        assert_eq!(header(&response, "x-ms-run-function-failed"), Some("True"));
        assert_eq!(header(&response, "ms-azureml-model-error-statuscode"), None);
        assert_eq!(body_of(response), "\"blue\"");
    }

    #[test]
    fn upstream_500_becomes_424_with_model_error_headers() {
        let body = r#"{"message": "An unexpected error occurred in scoring script."}"#;
        let response = from_upstream("blue", "/score", Ok(upstream(500, None, body)));
        assert_eq!(response.status(), StatusCode::FAILED_DEPENDENCY);
        assert_eq!(
            header(&response, "ms-azureml-model-error-statuscode"),
            Some("500")
        );
        assert_eq!(
            header(&response, "ms-azureml-model-error-reason"),
            Some("Internal Server Error")
        );
        assert_eq!(header(&response, "azureml-model-deployment"), Some("blue"));
        assert_eq!(body_of(response), body);

        let custom = from_upstream("blue", "/score", Ok(upstream(503, Some("Warming Up"), "")));
        assert_eq!(
            header(&custom, "ms-azureml-model-error-reason"),
            Some("Warming Up")
        );
    }

    #[test]
    fn timeout_becomes_408() {
        let error = ForwardError::TimedOut {
            deployment: "blue".into(),
            timeout_ms: 5000,
        };
        let response = from_upstream("blue", "/score", Err(error));
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(header(&response, "azureml-model-deployment"), Some("blue"));
        assert!(body_of(response).contains("5000 ms"));
    }

    #[test]
    fn no_instance_is_503_and_too_many_is_429() {
        let error = ForwardError::NoInstance {
            deployment: "blue".into(),
        };
        let response = from_upstream("blue", "/score", Err(error));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = too_many_requests("blue", 2, 1, 1);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&response, "azureml-model-deployment"), Some("blue"));
    }

    #[test]
    fn router_errors_are_json_messages() {
        let response = no_live_traffic("ep");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(header(&response, "content-type"), Some("application/json"));
        let message: serde_json::Value = serde_json::from_str(&body_of(response)).unwrap();
        let message = message["message"].as_str().unwrap();
        assert!(
            message.starts_with("No deployment with traffic"),
            "{message}"
        );
        assert!(message.contains("tug online-endpoint update"), "{message}");

        let response = unauthorized(Denied::WrongKey);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));

        let response = unknown_deployment("ep", "red", &["blue", "green"]);
        assert!(body_of(response).contains("blue, green"));
        assert_eq!(healthy().status(), StatusCode::OK);
    }
}
