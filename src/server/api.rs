//! HTTP routes of the control plane. JSON in and out; errors are `{"message": ...}`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use crate::run::lifecycle;
use crate::run::model::JobSubmission;
use crate::store::{self, EnvironmentRecord, MetricPoint, RunRecord};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/health", get(health))
        .route("/api/server/stop", post(stop))
        .route("/api/snapshots", post(upload_snapshot))
        .route("/api/jobs", get(list_jobs).post(create_job))
        .route("/api/jobs/validate", post(validate_job))
        .route("/api/jobs/{id}", get(show_job))
        .route("/api/jobs/{id}/cancel", post(cancel_job))
        .route("/api/jobs/{id}/metrics", get(job_metrics))
        .route("/api/jobs/{id}/stream", get(super::stream::stream_job))
        .route("/api/jobs/{id}/download", get(download_job))
        .route(
            "/api/environments",
            get(list_environments).post(create_environment),
        )
        .route("/api/environments/{name}", get(show_environment))
        // Code snapshots are up to 300 MB.
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::snapshot::MAX_SNAPSHOT_BYTES as usize + (1 << 20),
        ))
}

/// An API error: a status and a message that says what to do.
pub(crate) struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub(crate) fn unavailable() -> ApiError {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the tug server is shutting down; run the command again to start a new one".into(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "message": self.1 }))).into_response()
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        let code = match e {
            store::Error::NoRun(_)
            | store::Error::NoModel(_)
            | store::Error::NoComponent(_)
            | store::Error::NoData(_)
            | store::Error::NoSchedule(_) => StatusCode::NOT_FOUND,
            store::Error::RunExists(_)
            | store::Error::ComponentConflict { .. }
            | store::Error::DataConflict { .. }
            | store::Error::EnvironmentConflict { .. }
            | store::Error::ModelExists { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl From<lifecycle::Error> for ApiError {
    fn from(e: lifecycle::Error) -> Self {
        match e {
            lifecycle::Error::Store(s) => s.into(),
            other => ApiError(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn health(State(s): State<Arc<AppState>>) -> Json<super::ServerInfo> {
    Json(s.info.clone())
}

async fn stop(State(s): State<Arc<AppState>>) -> StatusCode {
    s.shutdown.notify_one();
    StatusCode::ACCEPTED
}

#[derive(Serialize)]
struct SnapshotCreated {
    sha256: String,
    bytes: usize,
}

/// Stores a tar snapshot under its content hash (idempotent).
async fn upload_snapshot(
    State(s): State<Arc<AppState>>,
    body: Bytes,
) -> ApiResult<Json<SnapshotCreated>> {
    if tar::Archive::new(body.as_ref()).entries().is_err() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the body is not a tar archive".into(),
        ));
    }
    let sha = crate::snapshot::sha256_hex(&body);
    let dir = s.runner.ws.snapshots();
    let path = dir.join(format!("{sha}.tar"));
    if !path.exists() {
        let tmp = dir.join(format!(".{sha}.{}", crate::workspace::random_hex(4)));
        std::fs::write(&tmp, &body)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("storing snapshot: {e}"),
                )
            })?;
    }
    Ok(Json(SnapshotCreated {
        sha256: sha,
        bytes: body.len(),
    }))
}

fn nan_for_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let m = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(m.into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

/// A run as the API shows it: the record plus its last metric values.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct JobView {
    #[serde(flatten)]
    pub run: RunRecord,
    /// JSON has no NaN: a NaN metric travels as `null` and comes back as NaN.
    #[serde(default, deserialize_with = "nan_for_null")]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub history: Vec<(String, String, Option<String>)>,
    pub artifacts: String,
    /// For a sweep's parent run: its settings and trials, ranked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<super::sweep_api::SweepView>,
    /// For a pipeline's parent run: each step's state, run and reuse decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<super::pipeline_api::PipelineView>,
}

pub(crate) fn view(s: &AppState, run: RunRecord, detail: bool) -> ApiResult<JobView> {
    // A sweep's metrics are its best trial's, as Azure shows them on the parent.
    let metrics_of = match run.kind.as_str() {
        "sweep" => s.runner.store.sweep(&run.id)?.best_trial,
        _ => None,
    };
    let metrics = s
        .runner
        .store
        .last_metrics(metrics_of.as_deref().unwrap_or(&run.id))?;
    let history = if detail {
        s.runner.store.events(&run.id)?
    } else {
        vec![]
    };
    // A sweep's artifacts are its best trial's, as its downloads are.
    let artifacts = s
        .runner
        .ws
        .run_dir(metrics_of.as_deref().unwrap_or(&run.id))
        .display()
        .to_string();
    let sweep = if detail && run.kind == "sweep" {
        Some(super::sweep_api::sweep_view(s, &run)?)
    } else {
        None
    };
    let pipeline = if detail && run.kind == "pipeline" {
        Some(super::pipeline_api::pipeline_view(s, &run)?)
    } else {
        None
    };
    Ok(JobView {
        run,
        metrics,
        history,
        artifacts,
        sweep,
        pipeline,
    })
}

/// Checks a submission whose snapshots are not uploaded yet; creates nothing.
async fn validate_job(
    State(s): State<Arc<AppState>>,
    Json(sub): Json<JobSubmission>,
) -> ApiResult<Json<serde_json::Value>> {
    s.runner.validate_draft(&sub)?;
    Ok(Json(serde_json::json!({ "valid": true })))
}

async fn create_job(
    State(s): State<Arc<AppState>>,
    Json(sub): Json<JobSubmission>,
) -> ApiResult<(StatusCode, Json<JobView>)> {
    let run = s.runner.submit(sub)?;
    Ok((StatusCode::CREATED, Json(view(&s, run, false)?)))
}

#[derive(Deserialize)]
struct ListQuery {
    experiment: Option<String>,
    parent: Option<String>,
    limit: Option<usize>,
}

async fn list_jobs(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<JobView>>> {
    let runs = s.runner.store.runs(
        q.experiment.as_deref(),
        q.parent.as_deref(),
        q.limit.unwrap_or(50),
    )?;
    Ok(Json(
        runs.into_iter()
            .map(|r| view(&s, r, false))
            .collect::<ApiResult<_>>()?,
    ))
}

async fn show_job(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let run = s.runner.store.run(&id)?;
    Ok(Json(view(&s, run, true)?))
}

async fn cancel_job(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobView>> {
    let run = match s.runner.store.run(&id)?.kind.as_str() {
        "sweep" => s.sweeps.cancel(&id)?,
        "pipeline" => s.pipelines.cancel(&id)?,
        _ => s.runner.cancel(&id)?,
    };
    Ok(Json(view(&s, run, false)?))
}

#[derive(Deserialize)]
struct MetricQuery {
    name: Option<String>,
}

async fn job_metrics(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<MetricQuery>,
) -> ApiResult<Json<Vec<MetricPoint>>> {
    s.runner.store.run(&id)?;
    let points = s.runner.store.metrics(&id, q.name.as_deref(), 0)?;
    Ok(Json(points.into_iter().map(|(_, p)| p).collect()))
}

#[derive(Deserialize)]
struct DownloadQuery {
    output_name: Option<String>,
    #[serde(default)]
    all: bool,
}

/// The artifact folders under a run, as `az ml job download` names them.
const DEFAULT_ARTIFACTS: [&str; 4] = ["outputs", "logs", "user_logs", "system_logs"];

/// A tar laid out as `az ml job download` lays out its folder: default artifacts under
/// `artifacts/`, named outputs under `named-outputs/<name>/`. Written to a temporary
/// file and streamed, so a large model never sits in memory.
async fn download_job(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(q): Query<DownloadQuery>,
) -> ApiResult<Response> {
    let mut run = s.runner.store.run(&id)?;
    // A sweep's outputs are its best trial's (Azure's `best_child_run_id`).
    if run.kind == "sweep" {
        let best = s.runner.store.sweep(&id)?.best_trial.ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("sweep `{id}` has no best trial yet, so nothing to download; `tug job show {id}` shows its trials"),
            )
        })?;
        run = s.runner.store.run(&best)?;
    }
    let dir = s.runner.ws.run_dir(&run.id);
    // (folder under the run, name in the tar)
    let mut parts: Vec<(std::path::PathBuf, String)> = Vec::new();
    // The default artifacts are the run's folder but its named outputs: `./outputs`,
    // the logs, and whatever an MLflow client logged beside them.
    let default = |parts: &mut Vec<_>| {
        for sub in DEFAULT_ARTIFACTS {
            parts.push((dir.join(sub), format!("artifacts/{sub}")));
        }
        let mut logged: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n != "named-outputs"
                    && !DEFAULT_ARTIFACTS.contains(&n.as_str())
                    && !n.starts_with('.')
            })
            .collect();
        logged.sort();
        for name in logged {
            parts.push((dir.join(&name), format!("artifacts/{name}")));
        }
    };
    match q.output_name.as_deref() {
        Some("default") => default(&mut parts),
        Some(name) if run.submission.outputs.contains_key(name) => parts.push((
            dir.join("named-outputs").join(name),
            format!("named-outputs/{name}"),
        )),
        Some(name) => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!(
                    "job `{id}` has no output `{name}`; its outputs: default{}",
                    run.submission
                        .outputs
                        .keys()
                        .map(|k| format!(", {k}"))
                        .collect::<String>()
                ),
            ));
        }
        None => {
            default(&mut parts);
            if q.all {
                parts.push((dir.join("named-outputs"), "named-outputs".into()));
            }
        }
    }
    let tmp_dir = s.runner.ws.dir.join("tmp");
    let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        std::fs::create_dir_all(&tmp_dir)?;
        // Unlinked at once: the open handle is all that is left, gone when streamed.
        let file = tempfile::tempfile_in(&tmp_dir)?;
        let mut builder = tar::Builder::new(file);
        builder.follow_symlinks(false);
        for (from, name) in parts {
            match std::fs::symlink_metadata(&from) {
                Ok(m) if m.is_dir() => builder.append_dir_all(&name, &from)?,
                Ok(m) if m.is_file() => builder.append_path_with_name(&from, &name)?,
                _ => {}
            }
        }
        let mut file = builder.into_inner()?;
        std::io::Seek::rewind(&mut file)?;
        Ok(file)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("packing the download: {e}"),
        )
    })?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn create_environment(
    State(s): State<Arc<AppState>>,
    Json(mut rec): Json<EnvironmentRecord>,
) -> ApiResult<(StatusCode, Json<EnvironmentRecord>)> {
    if rec.version.is_empty() {
        rec.version = s.runner.store.next_environment_version(&rec.name)?;
    }
    if rec.created_at.is_empty() {
        rec.created_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    }
    s.runner.store.put_environment(&rec)?;
    let stored = s
        .runner
        .store
        .environment(&rec.name, Some(&rec.version))?
        .expect("just stored");
    Ok((StatusCode::CREATED, Json(stored)))
}

async fn list_environments(
    State(s): State<Arc<AppState>>,
) -> ApiResult<Json<Vec<EnvironmentRecord>>> {
    Ok(Json(s.runner.store.environments()?))
}

#[derive(Deserialize)]
struct EnvQuery {
    version: Option<String>,
}

async fn show_environment(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<EnvQuery>,
) -> ApiResult<Json<EnvironmentRecord>> {
    s.runner
        .store
        .environment(&name, q.version.as_deref())?
        .map(Json)
        .ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                match q.version {
                    Some(v) => format!("environment `{name}` has no version `{v}`; `tug environment list` shows what is registered"),
                    None => format!("no environment named `{name}` is registered; register it with `tug environment create -f <file>`"),
                },
            )
        })
}
