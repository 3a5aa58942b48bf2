//! The router's HTTP server: the accept loop, one request from auth to the deployment's
//! answer, mirroring in the background, SIGHUP reload and the SIGTERM drain.

use std::convert::Infallible;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::{ConfigError, RouterConfig};
use super::metrics::Metrics;
use super::proxy::{
    ForwardRequest, REQUEST_ID_HEADER, Upstream, ensure_request_id, with_causes, without_hop_by_hop,
};
use super::responses::{self, DEPLOYMENT_HEADER, RouterResponse};
use super::routing::{Choice, RouteTable};

/// Azure's request body limit (the v1 images' nginx `client_max_body_size 100m` too).
pub const BODY_LIMIT_BYTES: u64 = 100 * 1024 * 1024;
/// How long SIGTERM waits for in-flight requests before exiting anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        source: std::io::Error,
    },
}

/// What the router needs to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub config_path: PathBuf,
    pub address: SocketAddr,
    /// A config to follow besides SIGHUP (on a cluster: the endpoint's ConfigMap, which
    /// the kubelet updates in place): when its content changes, it becomes the config.
    pub seed: Option<PathBuf>,
}

/// How often a followed seed is read.
const SEED_EVERY: Duration = Duration::from_secs(5);

/// Loads the config, listens, and serves until SIGTERM or SIGINT, then drains. Returns once
/// drained (or after [`DRAIN_TIMEOUT`]).
pub async fn run(options: Options) -> Result<(), Error> {
    let metrics = Metrics::default();
    let config = RouterConfig::load(&options.config_path)?;
    let table = RouteTable::build(&config, &metrics)?;
    tracing::info!(
        "config {}: {}",
        options.config_path.display(),
        table.summary()
    );
    let seed_seen = options.seed.as_ref().and_then(|p| std::fs::read(p).ok());
    let router = Arc::new(Router {
        config_path: options.config_path,
        seed: options.seed,
        seed_seen: std::sync::Mutex::new(seed_seen),
        table: RwLock::new(Arc::new(table)),
        metrics,
        upstream: Upstream::new(),
    });
    let listener = TcpListener::bind(options.address)
        .await
        .map_err(|source| Error::Bind {
            address: options.address,
            source,
        })?;
    serve(listener, router).await
}

/// The shared state of every connection.
struct Router {
    config_path: PathBuf,
    seed: Option<PathBuf>,
    /// The seed's content when last read.
    seed_seen: std::sync::Mutex<Option<Vec<u8>>>,
    /// Swapped whole on reload; each request clones the `Arc` it starts with.
    table: RwLock<Arc<RouteTable>>,
    metrics: Metrics,
    upstream: Upstream,
}

async fn serve(listener: TcpListener, router: Arc<Router>) -> Result<(), Error> {
    // Installed before announcing the address, so a SIGHUP right after start is a reload and
    // not the default action (exit).
    let install = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| Error::Signal {
            signal: name,
            source,
        })
    };
    let mut hangup = install(SignalKind::hangup(), "SIGHUP")?;
    let mut terminate = install(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = install(SignalKind::interrupt(), "SIGINT")?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!("listening on http://{address}");
    }

    let (stop_sender, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    // One timer for the whole loop: a sleep made anew each turn would never fire while
    // connections keep arriving.
    let mut seed_tick = tokio::time::interval(SEED_EVERY);
    let signal_name = loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&router), stop.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!("accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = hangup.recv() => router.reload("SIGHUP"),
            _ = seed_tick.tick(), if router.seed.is_some() => router.follow_seed(),
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
        }
    };

    drop(listener);
    let open = connections.len();
    tracing::info!(
        "{signal_name}: stopped accepting; draining {open} connection(s) for at most {} s",
        DRAIN_TIMEOUT.as_secs()
    );
    let _ = stop_sender.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    match drained {
        Ok(()) => tracing::info!("drained; exiting"),
        Err(_) => tracing::warn!(
            "{} connection(s) still busy after {} s; exiting anyway",
            connections.len(),
            DRAIN_TIMEOUT.as_secs()
        ),
    }
    Ok(())
}

async fn serve_connection(stream: TcpStream, router: Arc<Router>, mut stop: watch::Receiver<bool>) {
    // Scoring requests and answers are small; don't let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |request| {
        let router = Arc::clone(&router);
        async move { Ok::<_, Infallible>(router.handle(request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!("connection ended: {error}");
            }
        }
        // The guard `wait_for` returns is not Send: drop it inside.
        _ = async { drop(stop.wait_for(|&stopping| stopping).await) } => {
            // Finishes the request in progress (if any), then closes; idle ones close now.
            connection.as_mut().graceful_shutdown();
            if let Err(error) = connection.await {
                tracing::debug!("connection ended while draining: {error}");
            }
        }
    }
}

impl Router {
    fn current(&self) -> Arc<RouteTable> {
        Arc::clone(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// SIGHUP: re-reads the config file; a file that does not parse or validate leaves the
    /// current table in place. Requests already running keep the table they started with.
    /// Adopts the seed when its content changed since last read. A pod that started from
    /// an old seed (a config pushed while it was starting) comes to the current one so.
    fn follow_seed(&self) {
        let Some(seed) = &self.seed else { return };
        let Ok(now) = std::fs::read(seed) else { return };
        let mut seen = self
            .seed_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if seen.as_deref() == Some(now.as_slice()) {
            return;
        }
        *seen = Some(now.clone());
        drop(seen);
        match write_atomically(&self.config_path, &now) {
            Ok(()) => self.reload("the seed changed"),
            Err(error) => tracing::warn!("cannot adopt the changed seed config: {error}"),
        }
    }

    fn reload(&self, cause: &str) {
        match load_table(&self.config_path, &self.metrics) {
            Ok(table) => {
                let summary = table.summary();
                *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
                // Logged after the swap: whoever sees this line gets the new table.
                tracing::info!("{cause}: reloaded {summary}");
            }
            Err(error) => tracing::warn!("{cause}: keeping the previous config: {error}"),
        }
    }

    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> RouterResponse {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_string();
        let is_read = parts.method == Method::GET || parts.method == Method::HEAD;
        // `GET /` is the router's own liveness, unless it names a deployment: then it is
        // that deployment's health as seen through the router (forwarded like any request).
        if path == "/" && is_read && !parts.headers.contains_key(DEPLOYMENT_HEADER) {
            return responses::healthy();
        }

        let table = self.current();
        let authorization = parts.headers.get(header::AUTHORIZATION);
        if let Err(denied) = table.keys.check(authorization.map(HeaderValue::as_bytes)) {
            return self.unrouted(responses::unauthorized(denied));
        }
        if path == "/metrics" && is_read {
            return responses::metrics_text(self.metrics.render());
        }

        let body = match read_body(&parts.headers, body).await {
            Ok(body) => body,
            Err(refusal) => return self.unrouted(refusal),
        };

        let named = parts
            .headers
            .get(DEPLOYMENT_HEADER)
            .and_then(|value| value.to_str().ok());
        let choice = table.choose(named, random_percent());
        let index = match choice {
            Choice::Live(index) | Choice::Named(index) => index,
            Choice::UnknownName => {
                let known: Vec<&str> = table.deployments.iter().map(|d| d.name.as_str()).collect();
                let name = named.unwrap_or_default().trim();
                return self.unrouted(responses::unknown_deployment(&table.endpoint, name, &known));
            }
            Choice::NoLiveTraffic => {
                return self.unrouted(responses::no_live_traffic(&table.endpoint));
            }
        };

        let mut headers = without_hop_by_hop(parts.headers);
        let request_id = ensure_request_id(&mut headers);
        let forward = ForwardRequest {
            method: parts.method,
            path_and_query: parts
                .uri
                .path_and_query()
                .map_or_else(|| path.clone(), |pq| pq.as_str().to_string()),
            headers,
            body,
        };
        let deployment = &table.deployments[index];
        let started = Instant::now();
        // No instance at all is a 503 from `forward`, not a 429 from a limit of zero.
        let admitted = if deployment.instances.is_empty() {
            None
        } else {
            let limit = deployment.in_flight_limit();
            match deployment.stats.in_flight.try_admit(limit) {
                Some(admitted) => Some(admitted),
                None => {
                    let response = responses::too_many_requests(
                        &deployment.name,
                        limit,
                        deployment.max_concurrent_requests_per_instance,
                        deployment.instances.len(),
                    );
                    deployment
                        .stats
                        .record(response.status().as_u16(), started.elapsed());
                    return with_request_id(response, request_id);
                }
            }
        };
        if let Some(mirror) = table.mirror_target(choice, random_percent()) {
            self.spawn_mirror(Arc::clone(&table), mirror, forward.clone());
        }

        let result = self.upstream.forward(deployment, &forward).await;
        drop(admitted);
        let id = request_id.to_str().unwrap_or_default();
        if let Err(error) = &result {
            tracing::warn!(
                request_id = id,
                "{} {path}: {}",
                forward.method,
                with_causes(error)
            );
        }
        let instance = result
            .as_ref()
            .map_or_else(|_| "-".to_string(), |r| r.instance.to_string());
        let response = responses::from_upstream(&deployment.name, &path, result);
        let elapsed = started.elapsed();
        deployment.stats.record(response.status().as_u16(), elapsed);
        tracing::debug!(
            deployment = %deployment.name,
            instance,
            status = response.status().as_u16(),
            ms = elapsed.as_millis() as u64,
            request_id = id,
            "{} {path}",
            forward.method
        );
        with_request_id(response, request_id)
    }

    /// Sends a copy to the mirror deployment on its own task: the caller's answer never
    /// waits for it, and its answer is only counted.
    fn spawn_mirror(
        self: &Arc<Self>,
        table: Arc<RouteTable>,
        index: usize,
        request: ForwardRequest,
    ) {
        let router = Arc::clone(self);
        tokio::spawn(async move {
            let deployment = &table.deployments[index];
            deployment.stats.record_mirror_sent();
            let Some(_admitted) = deployment
                .stats
                .in_flight
                .try_admit(deployment.in_flight_limit())
            else {
                deployment.stats.record_mirror_failed();
                tracing::debug!(deployment = %deployment.name, "mirror copy refused: deployment at its in-flight limit");
                return;
            };
            match router.upstream.forward(deployment, &request).await {
                Ok(response) if response.status.is_success() => {}
                Ok(response) => {
                    deployment.stats.record_mirror_failed();
                    tracing::debug!(deployment = %deployment.name, status = response.status.as_u16(), "mirror copy answered non-2xx");
                }
                Err(error) => {
                    deployment.stats.record_mirror_failed();
                    tracing::debug!("mirror copy failed: {}", with_causes(&error));
                }
            }
        });
    }

    /// Counts an answer given before any deployment was chosen.
    fn unrouted(&self, response: RouterResponse) -> RouterResponse {
        self.metrics.record_unrouted(response.status().as_u16());
        if response.status() != StatusCode::UNAUTHORIZED {
            tracing::debug!(
                status = response.status().as_u16(),
                "answered by the router"
            );
        }
        response
    }
}

/// Adds `x-request-id` to an answer that lacks it (the router's own errors; an instance
/// echoes it itself).
fn with_request_id(mut response: RouterResponse, request_id: HeaderValue) -> RouterResponse {
    response
        .headers_mut()
        .entry(REQUEST_ID_HEADER)
        .or_insert(request_id);
    response
}

/// The whole request body, or the 413 (over [`BODY_LIMIT_BYTES`], refused before reading
/// when `Content-Length` says so) or 400 answer.
async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, RouterResponse> {
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > BODY_LIMIT_BYTES) {
        return Err(responses::payload_too_large(BODY_LIMIT_BYTES));
    }
    match Limited::new(body, BODY_LIMIT_BYTES as usize)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(responses::payload_too_large(BODY_LIMIT_BYTES))
        }
        Err(error) => Err(responses::unreadable_body(&error.to_string())),
    }
}

fn load_table(path: &Path, metrics: &Metrics) -> Result<RouteTable, ConfigError> {
    RouteTable::build(&RouterConfig::load(path)?, metrics)
}

/// A uniform draw in `0..100` for the traffic split and the mirror decision. SipHash with
/// fresh per-call keys over a counter: unpredictable enough for load spreading, no
/// dependency.
fn random_percent() -> u32 {
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let draw = DRAWS.fetch_add(1, Ordering::Relaxed);
    (std::collections::hash_map::RandomState::new().hash_one(draw) % 100) as u32
}

/// Writes `bytes` to `path` through a file of this process's own next to it, renamed over.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("json.{}.new", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_percent_covers_the_range_evenly() {
        let draws = 100_000;
        let mut counts = [0u32; 100];
        for _ in 0..draws {
            counts[random_percent() as usize] += 1;
        }
        // Each bucket: binomial(100 000, 1/100), mean 1000, sigma ≈ 31.5; 6 sigma over 100
        // buckets keeps false alarms negligible.
        for (bucket, &count) in counts.iter().enumerate() {
            assert!((811..=1189).contains(&count), "bucket {bucket}: {count}");
        }
    }
}
