//! Forwarding one buffered request to a deployment's instances over a keep-alive pool, with
//! one retry on the next instance when a connection cannot be made.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::routing::DeploymentRoute;

pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// How long to wait for a TCP connection to an instance before trying the next one; short,
/// because a stopped container's address may never answer at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle keep-alive connections to instances are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A request as received, body fully read, ready to send to any instance (or twice: the live
/// deployment and a mirror).
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    pub method: Method,
    /// Path and query exactly as the caller sent them.
    pub path_and_query: String,
    /// The caller's headers less hop-by-hop ones; `Authorization` and request ids included.
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// An instance's whole response.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    /// The reason phrase on the wire when it is not the standard one for `status`.
    pub reason: Option<Bytes>,
    /// Less hop-by-hop headers.
    pub headers: HeaderMap,
    pub body: Bytes,
    pub instance: SocketAddr,
}

/// Why a deployment gave no response. Messages leave out the source; log them with
/// [`with_causes`].
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("deployment '{deployment}' has no ready instance")]
    NoInstance { deployment: String },
    #[error("deployment '{deployment}' did not answer within {timeout_ms} ms")]
    TimedOut {
        deployment: String,
        timeout_ms: u128,
    },
    #[error("no instance of deployment '{deployment}' accepted a connection (tried {tried})")]
    Unreachable {
        deployment: String,
        tried: String,
        source: hyper_util::client::legacy::Error,
    },
    #[error("instance {instance} of deployment '{deployment}' failed before answering")]
    Failed {
        deployment: String,
        instance: SocketAddr,
        source: hyper_util::client::legacy::Error,
    },
    #[error("instance {instance} of deployment '{deployment}' broke off its response")]
    BodyFailed {
        deployment: String,
        instance: SocketAddr,
        source: hyper::Error,
    },
}

/// The shared keep-alive pool to every instance of every deployment (pooled by address, so
/// it survives config reloads).
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Upstream {
    fn default() -> Self {
        Self::new()
    }
}

impl Upstream {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Upstream { client }
    }

    /// Sends `request` to the deployment's next instance (and, if that one refuses the
    /// connection, to the one after it) and reads the whole response, all within the
    /// deployment's `request_timeout`.
    pub async fn forward(
        &self,
        deployment: &DeploymentRoute,
        request: &ForwardRequest,
    ) -> Result<UpstreamResponse, ForwardError> {
        let attempts = deployment.instance_attempts();
        if attempts.is_empty() {
            return Err(ForwardError::NoInstance {
                deployment: deployment.name.clone(),
            });
        }
        tokio::time::timeout(
            deployment.request_timeout,
            self.forward_to_first_reachable(&deployment.name, &attempts, request),
        )
        .await
        .unwrap_or_else(|_| {
            Err(ForwardError::TimedOut {
                deployment: deployment.name.clone(),
                timeout_ms: deployment.request_timeout.as_millis(),
            })
        })
    }

    async fn forward_to_first_reachable(
        &self,
        deployment: &str,
        attempts: &[SocketAddr],
        request: &ForwardRequest,
    ) -> Result<UpstreamResponse, ForwardError> {
        let mut last_connect_error = None;
        for &instance in attempts {
            match self
                .client
                .request(upstream_request(instance, request))
                .await
            {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map_err(|source| ForwardError::BodyFailed {
                            deployment: deployment.to_string(),
                            instance,
                            source,
                        })?
                        .to_bytes();
                    let reason = parts
                        .extensions
                        .get::<hyper::ext::ReasonPhrase>()
                        .map(|reason| Bytes::copy_from_slice(reason.as_bytes()));
                    return Ok(UpstreamResponse {
                        status: parts.status,
                        reason,
                        headers: without_hop_by_hop(parts.headers),
                        body,
                        instance,
                    });
                }
                // Nothing was sent, so trying another instance cannot run the model twice.
                Err(error) if error.is_connect() => {
                    tracing::warn!(
                        deployment,
                        %instance,
                        "cannot connect to instance: {}",
                        with_causes(&error)
                    );
                    last_connect_error = Some(error);
                }
                Err(source) => {
                    return Err(ForwardError::Failed {
                        deployment: deployment.to_string(),
                        instance,
                        source,
                    });
                }
            }
        }
        Err(ForwardError::Unreachable {
            deployment: deployment.to_string(),
            tried: attempts
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            source: last_connect_error.expect("at least one attempt"),
        })
    }
}

fn upstream_request(instance: SocketAddr, request: &ForwardRequest) -> Request<Full<Bytes>> {
    let uri: Uri = format!("http://{instance}{}", request.path_and_query)
        .parse()
        .unwrap_or_else(|_| Uri::from_static("/"));
    let mut upstream = Request::new(Full::new(request.body.clone()));
    *upstream.method_mut() = request.method.clone();
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = request.headers.clone();
    upstream
}

/// The request's `x-request-id`, added (a new UUID4) when the caller sent none, so the
/// router's log, the instance's log and the caller's answer share one id.
pub fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    let id = headers.get(REQUEST_ID_HEADER).cloned().unwrap_or_else(|| {
        HeaderValue::try_from(uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid header")
    });
    headers.insert(REQUEST_ID_HEADER, id.clone());
    id
}

/// `error` followed by each of its sources ("client error (Connect): tcp connect error:
/// Connection refused"), since the outer messages alone rarely say what went wrong.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// `headers` without the hop-by-hop ones (RFC 9110 §7.6.1, plus those named in
/// `Connection`), without `Host` (the client sets the instance's) and without
/// `Content-Length` (the buffered body's own length is sent).
pub fn without_hop_by_hop(mut headers: HeaderMap) -> HeaderMap {
    let named_in_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named_in_connection {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HOST,
        header::CONTENT_LENGTH,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped_and_end_to_end_kept() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("host", "router:5001"),
            ("content-length", "12"),
            ("authorization", "Bearer k"),
            ("x-request-id", "abc"),
            ("content-type", "application/json"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        let kept = without_hop_by_hop(headers);
        let mut names: Vec<_> = kept.keys().map(|n| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["authorization", "content-type", "x-request-id"]);
    }

    #[test]
    fn a_request_id_is_kept_or_made() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", HeaderValue::from_static("caller-1"));
        assert_eq!(ensure_request_id(&mut headers), "caller-1");
        let mut headers = HeaderMap::new();
        let made = ensure_request_id(&mut headers);
        assert_eq!(made.len(), 36);
        assert_eq!(headers.get("x-request-id"), Some(&made));
    }

    #[test]
    fn causes_are_appended_in_order() {
        #[derive(Debug, thiserror::Error)]
        #[error("client error (Connect)")]
        struct Outer(#[source] std::io::Error);
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            with_causes(&Outer(refused)),
            "client error (Connect): refused"
        );
    }

    #[test]
    fn the_upstream_request_targets_the_instance_with_path_and_query() {
        let request = ForwardRequest {
            method: Method::POST,
            path_and_query: "/score?a=1".into(),
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
        };
        let upstream = upstream_request("10.0.0.7:5001".parse().unwrap(), &request);
        assert_eq!(upstream.uri().to_string(), "http://10.0.0.7:5001/score?a=1");
        assert_eq!(upstream.method(), Method::POST);
    }
}
