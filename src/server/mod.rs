//! The control plane: one long-running process per workspace serving the HTTP API the
//! CLI talks to, driving runs, and exiting by itself when idle if asked to.

pub mod api;
pub mod component_api;
pub mod data_api;
pub mod endpoint_api;
mod mlflow_api;
mod mlflow_artifacts;
mod mlflow_models;
mod mlflow_queries;
pub mod pipeline_api;
mod registry_api;
pub mod schedule_api;
pub mod stream;
pub mod sweep_api;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::compute::docker::DockerTarget;
use crate::run::lifecycle::Runner;
use crate::store::Store;
use crate::workspace::Workspace;

/// What `server.json` holds: how a CLI reaches the running server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerInfo {
    pub pid: u32,
    pub url: String,
    pub workspace_id: String,
    pub version: String,
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Address to bind; loopback unless told otherwise.
    pub bind: SocketAddr,
    /// Exit after this long with no runs, no requests and no streaming clients.
    pub idle_timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "another tug server is already running for this workspace ({0}); stop it with `tug server stop`"
    )]
    AlreadyRunning(String),
    #[error("cannot {doing}: {source}")]
    Io {
        doing: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Compute(#[from] crate::compute::Error),
    #[error(transparent)]
    Run(#[from] crate::run::lifecycle::Error),
}

fn io(doing: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let doing = doing.into();
    move |source| Error::Io { doing, source }
}

pub(crate) struct AppState {
    pub runner: Arc<Runner>,
    pub endpoints: Arc<crate::endpoint::controller::Controller>,
    pub sweeps: Arc<crate::sweep::controller::Controller>,
    pub pipelines: Arc<crate::pipeline::controller::Controller>,
    pub schedules: Arc<crate::schedule::controller::Controller>,
    pub token: String,
    pub info: ServerInfo,
    gate: std::sync::Mutex<Gate>,
    pub shutdown: Notify,
    /// Flips to true when the server starts to close; long-lived streams end on it.
    pub closing: tokio::sync::watch::Sender<bool>,
}

/// Requests in progress and whether the server is closing, under one lock: the idle
/// check and a request's arrival can never both win.
struct Gate {
    in_flight: usize,
    last_activity: Instant,
    closing: bool,
}

impl AppState {
    /// Closes the gate if the server has been idle for `limit`; true when it did.
    fn close_if_idle(&self, limit: Duration) -> bool {
        let mut g = self.gate.lock().unwrap();
        if g.in_flight == 0
            && self.runner.active() == 0
            && self.endpoints.active() == 0
            && self.endpoints.forwarding() == 0
            && self.sweeps.active() == 0
            && self.pipelines.active() == 0
            // An enabled schedule needs a server to fire it.
            && self.schedules.enabled() == 0
            && g.last_activity.elapsed() >= limit
        {
            g.closing = true;
        }
        g.closing
    }

    fn close(&self) {
        self.gate.lock().unwrap().closing = true;
        self.closing.send_replace(true);
    }
}

/// Counts a request (or a streaming client) as activity until dropped.
pub(crate) struct Busy(Arc<AppState>);
impl Busy {
    /// `None` once the server is closing: the caller answers 503 and the client retries.
    pub(crate) fn new(state: &Arc<AppState>) -> Option<Busy> {
        let mut g = state.gate.lock().unwrap();
        if g.closing {
            return None;
        }
        g.in_flight += 1;
        g.last_activity = Instant::now();
        Some(Busy(state.clone()))
    }
}
impl Drop for Busy {
    fn drop(&mut self) {
        let mut g = self.0.gate.lock().unwrap();
        g.in_flight -= 1;
        g.last_activity = Instant::now();
    }
}

/// How long a starting server waits for an exiting one to let go of the workspace.
const LOCK_WAIT: Duration = Duration::from_secs(15);
/// How long a closing server waits for open connections before it exits anyway.
const DRAIN: Duration = Duration::from_secs(5);

/// Runs the server until stopped (API call, signal, or idle timeout).
pub async fn serve(ws: Workspace, opts: Options) -> Result<(), Error> {
    ws.create().map_err(|e| Error::Io {
        doing: "create the workspace".into(),
        source: std::io::Error::other(e),
    })?;
    // One server per workspace: the kernel drops this lock if we die, even by SIGKILL.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(ws.server_lock())
        .map_err(io("open the server lock"))?;
    // A server that is exiting holds the lock for a moment longer: wait for it.
    let waited = Instant::now();
    while lock.try_lock().is_err() {
        if waited.elapsed() >= LOCK_WAIT {
            let who = std::fs::read_to_string(ws.server_file()).unwrap_or_default();
            return Err(Error::AlreadyRunning(who.trim().to_string()));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = ws.token().map_err(|e| Error::Io {
        doing: "read the workspace token".into(),
        source: std::io::Error::other(e),
    })?;
    let store = Arc::new(Store::open(&ws.db_path())?);
    let workspace_id = store.workspace_id()?;
    let target = DockerTarget::connect_local(&workspace_id).await?;
    let target_gateway = target.bridge_gateway().await;
    let builder = crate::build::docker::Builder::new(target.docker().clone());
    let docker = target.docker().clone();
    // One set of connected targets for runs and endpoints (one client per cluster).
    let targets = Arc::new(crate::compute::targets::Targets::new(&workspace_id, target));
    let endpoints = Arc::new(crate::endpoint::controller::Controller::new(
        store.clone(),
        ws.clone(),
        docker,
        &workspace_id,
        targets.clone(),
    ));
    let tracking_listener = bind_tracking(&target_gateway, &store).await;
    if let Some(addr) = tracking_listener
        .as_ref()
        .and_then(|(l, _)| l.local_addr().ok())
    {
        targets.set_tracking(addr);
    }
    let runner = Arc::new(Runner::new(
        store,
        ws.clone(),
        workspace_id.clone(),
        targets,
        builder,
    ));
    if let Some((_, uri)) = &tracking_listener {
        runner.set_tracking(crate::run::lifecycle::TrackingEndpoint {
            uri: uri.clone(),
            workspace_token: token.clone(),
        });
    }

    if !opts.bind.ip().is_loopback() {
        tracing::warn!(
            bind = %opts.bind,
            "listening beyond loopback: the token travels in clear HTTP and lets its holder run containers on this host; put TLS in front"
        );
    }
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(io(format!("listen on {}", opts.bind)))?;
    let addr = listener
        .local_addr()
        .map_err(io("read the bound address"))?;
    let info = ServerInfo {
        pid: std::process::id(),
        url: format!("http://{addr}"),
        workspace_id,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let sweeps = Arc::new(crate::sweep::controller::Controller::new(
        runner.store.clone(),
        runner.clone(),
    ));
    let pipelines = Arc::new(crate::pipeline::controller::Controller::new(
        runner.store.clone(),
        runner.clone(),
        sweeps.clone(),
    ));
    let schedules = Arc::new(crate::schedule::controller::Controller::new(
        runner.store.clone(),
        Arc::new(schedule_api::ServerSubmit {
            runner: runner.clone(),
            sweeps: sweeps.clone(),
            pipelines: pipelines.clone(),
        }),
    ));
    let state = Arc::new(AppState {
        runner: runner.clone(),
        endpoints: endpoints.clone(),
        sweeps: sweeps.clone(),
        pipelines: pipelines.clone(),
        schedules: schedules.clone(),
        token,
        info: info.clone(),
        gate: std::sync::Mutex::new(Gate {
            in_flight: 0,
            last_activity: Instant::now(),
            closing: false,
        }),
        shutdown: Notify::new(),
        closing: tokio::sync::watch::channel(false).0,
    });

    if let Some((listener, uri)) = tracking_listener {
        tracing::info!(%uri, "MLflow tracking API for job containers");
        let app = container_router(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the tracking listener for containers stopped");
            }
        });
    }
    let resumed = runner.reconcile().await?;
    // After the runner: trials are driven again before their sweep looks at them.
    let sweeps_resumed = sweeps.reconcile().map_err(|e| Error::Io {
        doing: "resume sweeps".into(),
        source: std::io::Error::other(e),
    })?;
    let pipelines_resumed = pipelines.reconcile().map_err(|e| Error::Io {
        doing: "resume pipelines".into(),
        source: std::io::Error::other(e),
    })?;
    // After pipelines: a fire the last server left unsubmitted becomes a run now.
    let fires_resumed = schedules.start().map_err(|e| Error::Io {
        doing: "start schedules".into(),
        source: std::io::Error::other(e),
    })?;
    if let Err(e) = endpoints.reconcile().await {
        tracing::warn!(error = %e, "reconciling endpoints");
    }
    // While the server runs, endpoints that lost containers (an engine restart, a crash)
    // are brought back; without a server, the containers' restart policy does it.
    let healer = endpoints.clone();
    tokio::spawn(async move {
        loop {
            match healer.heal().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(actions = n, "endpoints healed"),
                Err(e) => tracing::debug!(error = %e, "healing endpoints"),
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });
    tracing::info!(url = %info.url, resumed, sweeps_resumed, pipelines_resumed, fires_resumed, schedules = schedules.enabled(), "tug server listening");
    write_server_file(&ws, &info)?;

    let app = router(state.clone());
    let idle_state = state.clone();
    let idle = async move {
        match opts.idle_timeout {
            None => std::future::pending::<()>().await,
            Some(limit) => loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if idle_state.close_if_idle(limit) {
                    tracing::info!(?limit, "idle: no runs and no clients; exiting");
                    return;
                }
            },
        }
    };
    let stop_state = state.clone();
    let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        tokio::select! {
            _ = idle => {}
            _ = stop_state.shutdown.notified() => tracing::info!("stop requested"),
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted"),
            _ = terminate() => tracing::info!("terminated"),
        }
        stop_state.close();
        let _ = drained_tx.send(());
    };
    let serve = axum::serve(listener, app).with_graceful_shutdown(shutdown);
    let result = tokio::select! {
        r = serve => r.map_err(io("serve HTTP")),
        // Connections that outstay the drain period are cut.
        _ = async {
            let _ = drained_rx.await;
            tokio::time::sleep(DRAIN).await;
        } => Ok(()),
    };
    // Runs keep going in their containers; the next server picks them up.
    if let Ok(text) = std::fs::read_to_string(ws.server_file())
        && text.contains(&format!("\"pid\":{}", info.pid))
    {
        let _ = std::fs::remove_file(ws.server_file());
    }
    // Held until the process exits: its drive tasks die with the runtime, and a new
    // server must not resume the same runs before then.
    std::mem::forget(lock);
    result
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

fn write_server_file(ws: &Workspace, info: &ServerInfo) -> Result<(), Error> {
    let tmp = ws.dir.join(format!(".server.json.{}", info.pid));
    let mut f = std::fs::File::create(&tmp).map_err(io("write server.json"))?;
    f.write_all(serde_json::to_string(info).unwrap().as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(io("write server.json"))?;
    std::fs::rename(&tmp, ws.server_file()).map_err(io("write server.json"))
}

fn router(state: Arc<AppState>) -> Router {
    api::routes()
        .merge(registry_api::routes())
        .merge(endpoint_api::routes())
        .merge(sweep_api::routes())
        .merge(pipeline_api::routes())
        .merge(schedule_api::routes())
        .merge(component_api::routes())
        .merge(data_api::routes())
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        // Authenticated on its own: run tokens are accepted there too.
        .merge(mlflow_api::routes(state.clone(), mlflow_api::Access::Host))
        .with_state(state)
}

/// Listens where job containers reach the host and nothing else does (Docker's bridge
/// gateway), on the port this workspace used last time if it is free, so runs that
/// outlive a server restart keep their `MLFLOW_TRACKING_URI`.
async fn bind_tracking(
    gateway: &Option<std::net::IpAddr>,
    store: &Store,
) -> Option<(tokio::net::TcpListener, String)> {
    const KEY: &str = "tracking_port";
    let Some(ip) = *gateway else {
        tracing::warn!(
            "the Docker engine has no default bridge: job containers get no MLflow tracking URI"
        );
        return None;
    };
    let last: Option<u16> = store
        .setting(KEY)
        .ok()
        .flatten()
        .and_then(|p| p.parse().ok());
    let mut listener = None;
    if let Some(port) = last {
        listener = tokio::net::TcpListener::bind((ip, port)).await.ok();
    }
    if listener.is_none() {
        listener = match tokio::net::TcpListener::bind((ip, 0)).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(%ip, error = %e, "cannot listen on the Docker bridge: job containers get no MLflow tracking URI");
                return None;
            }
        };
    }
    let listener = listener?;
    let addr = listener.local_addr().ok()?;
    if last != Some(addr.port()) {
        let _ = store.set_setting(KEY, &addr.port().to_string());
    }
    Some((listener, format!("http://{addr}")))
}

/// What the listener for job containers serves: the MLflow API, to run tokens only.
fn container_router(state: Arc<AppState>) -> Router {
    mlflow_api::routes(state.clone(), mlflow_api::Access::Containers).with_state(state)
}

/// Every route needs `Authorization: Bearer <workspace token>`.
async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(given.as_bytes(), state.token.as_bytes()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({
                "message": "missing or wrong token: send `Authorization: Bearer <contents of .tug/token>`"
            })),
        )
            .into_response();
    }
    let Some(_busy) = Busy::new(&state) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "message": "the tug server is shutting down; run the command again to start a new one"
            })),
        )
            .into_response();
    };
    next.run(req).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
