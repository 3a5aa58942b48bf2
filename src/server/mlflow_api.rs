//! The MLflow tracking REST API (`/api/2.0/mlflow/...`), served on the CLI's listener
//! (workspace token) and on the listener job containers reach (run tokens only). The
//! shapes and rules are `crate::tracking`; this file reads and writes the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::mlflow_models as models;
use super::mlflow_queries as queries;
use super::{AppState, Busy};
use crate::store::{ExperimentRecord, RunRecord, TRACKED_KIND, TrackingBatch};
use crate::tracking::protocol::{self as p, now_ms};
use crate::tracking::{ErrorCode, MlflowError, token};

pub(super) type MlResult<T> = Result<T, MlflowError>;

/// The tag MLflow clients put on a nested run: its parent's id.
const PARENT_TAG: &str = "mlflow.parentRunId";
pub(super) type Reply = MlResult<Json<Value>>;

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        (self.code.status(), Json(self.body())).into_response()
    }
}

/// Who is calling: the workspace's own clients, or one run's container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    Workspace,
    Run(String),
}

impl Caller {
    /// Writes to a run are the workspace's, or that run's own (its nested runs included).
    pub(crate) fn may_write(&self, s: &AppState, run_id: &str) -> MlResult<()> {
        match self {
            Caller::Workspace => Ok(()),
            Caller::Run(own) if own == run_id => Ok(()),
            Caller::Run(own)
                if store(s).run(run_id).is_ok_and(|r| {
                    r.kind == TRACKED_KIND && r.parent_id.as_deref() == Some(own)
                }) =>
            {
                Ok(())
            }
            Caller::Run(own) => Err(MlflowError::denied(format!(
                "this token belongs to run `{own}` and writes to that run and its nested runs only, not to `{run_id}`"
            ))),
        }
    }

    pub(crate) fn workspace_only(&self, what: &str) -> MlResult<()> {
        match self {
            Caller::Workspace => Ok(()),
            Caller::Run(own) => Err(MlflowError::denied(format!(
                "a job's token writes to its own run (`{own}`) only, so it cannot {what}; do that from the host with the workspace token"
            ))),
        }
    }
}

/// Which tokens a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The CLI's listener: the workspace token or a run token.
    Host,
    /// The listener containers reach: run tokens only.
    Containers,
}

pub(crate) fn routes(state: Arc<AppState>, access: Access) -> Router<Arc<AppState>> {
    const API: &str = "/api/2.0/mlflow";
    let r = Router::new()
        .route(&format!("{API}/experiments/get"), get(get_experiment))
        .route(
            &format!("{API}/experiments/get-by-name"),
            get(get_experiment_by_name),
        )
        .route(
            &format!("{API}/experiments/create"),
            post(create_experiment),
        )
        .route(
            &format!("{API}/experiments/search"),
            post(search_experiments).get(search_experiments),
        )
        .route(
            &format!("{API}/experiments/set-experiment-tag"),
            post(set_experiment_tag),
        )
        .route(&format!("{API}/runs/create"), post(create_run))
        .route(&format!("{API}/runs/get"), get(get_run))
        .route(&format!("{API}/runs/update"), post(update_run))
        .route(&format!("{API}/runs/delete"), post(delete_run))
        .route(&format!("{API}/runs/restore"), post(restore_run))
        .route(&format!("{API}/runs/log-metric"), post(log_metric))
        .route(&format!("{API}/runs/log-parameter"), post(log_param))
        .route(&format!("{API}/runs/set-tag"), post(set_tag))
        .route(&format!("{API}/runs/delete-tag"), post(delete_tag))
        .route(&format!("{API}/runs/log-batch"), post(log_batch))
        .route(&format!("{API}/runs/log-inputs"), post(log_inputs))
        .route(&format!("{API}/runs/outputs"), post(log_outputs))
        .route(&format!("{API}/runs/log-model"), post(log_model))
        .route(&format!("{API}/runs/search"), post(queries::search_runs))
        .route(
            &format!("{API}/metrics/get-history"),
            get(queries::metric_history),
        )
        .route(
            &format!("{API}/logged-models"),
            post(models::create_logged_model),
        )
        .route(
            &format!("{API}/logged-models/search"),
            post(models::search_logged_models),
        )
        .route(
            &format!("{API}/logged-models/{{model_id}}"),
            get(models::get_logged_model).patch(models::finalize_logged_model),
        )
        .route(
            &format!("{API}/logged-models/{{model_id}}/tags"),
            patch(models::set_logged_model_tags),
        )
        .route(
            &format!("{API}/logged-models/{{model_id}}/params"),
            post(models::log_logged_model_params),
        )
        .route(
            &format!("{API}/{{*rest}}"),
            axum::routing::any(unknown_endpoint),
        )
        .merge(super::mlflow_artifacts::routes());
    r.layer(middleware::from_fn_with_state(
        (state, access),
        authenticate,
    ))
}

async fn authenticate(
    State((state, access)): State<(Arc<AppState>, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_string();
    let caller = if access == Access::Host
        && super::constant_time_eq(given.as_bytes(), state.token.as_bytes())
    {
        Some(Caller::Workspace)
    } else {
        token::verify(&state.token, &given).map(Caller::Run)
    };
    let Some(caller) = caller else {
        let how = match access {
            Access::Host => {
                "set MLFLOW_TRACKING_TOKEN to the contents of .tug/token (the workspace token)"
            }
            Access::Containers => {
                "this listener takes the run token tug gives each job as MLFLOW_TRACKING_TOKEN"
            }
        };
        return MlflowError::new(
            ErrorCode::Unauthenticated,
            format!("missing or wrong token: {how}"),
        )
        .into_response();
    };
    let Some(_busy) = Busy::new(&state) else {
        return MlflowError::new(
            ErrorCode::TemporarilyUnavailable,
            "the tug server is shutting down; the client retries against the next one",
        )
        .into_response();
    };
    req.extensions_mut().insert(caller);
    // One line per request, by route (no ids), for `RUST_LOG=tug::mlflow::requests=debug`:
    // the request sequence tests compare across client versions.
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let response = next.run(req).await;
    tracing::debug!(
        target: "tug::mlflow::requests",
        "{access:?} {method} {route} {}",
        response.status().as_u16()
    );
    response
}

async fn unknown_endpoint(method: Method, Path(rest): Path<String>) -> MlflowError {
    MlflowError::new(
        ErrorCode::EndpointNotFound,
        format!("tug does not serve {method} /api/2.0/mlflow/{rest}"),
    )
}

pub(super) fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> MlResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        MlflowError::invalid(format!("the request body is not the JSON expected: {e}"))
    })
}

pub(super) fn query<'a>(q: &'a HashMap<String, String>, name: &str) -> MlResult<&'a str> {
    q.get(name)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            MlflowError::invalid(format!("missing value for required parameter '{name}'"))
        })
}

/// The run a GET names: `run_id`, or the `run_uuid` older clients send.
pub(super) fn run_id_query(q: &HashMap<String, String>) -> MlResult<&str> {
    q.get("run_id")
        .or(q.get("run_uuid"))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'run_id'"))
}

pub(super) fn experiment_id(text: &str) -> MlResult<i64> {
    text.trim()
        .parse()
        .map_err(|_| MlflowError::invalid(format!("experiment id '{text}' is not a number")))
}

pub(super) fn store(s: &AppState) -> &crate::store::Store {
    &s.runner.store
}

pub(super) fn experiment_of(s: &AppState, run: &RunRecord) -> MlResult<ExperimentRecord> {
    store(s)
        .experiment_named(&run.experiment)?
        .ok_or_else(|| MlflowError::missing(format!("experiment `{}` is gone", run.experiment)))
}

pub(super) fn run_json(s: &AppState, run: &RunRecord) -> MlResult<Value> {
    let exp = experiment_of(s, run)?;
    let tracking = store(s).run_tracking(&run.id)?;
    let latest = store(s).latest_metric_points(&run.id)?;
    Ok(p::run_json(run, exp.id, &tracking, &latest))
}

async fn get_experiment(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let e = store(&s).experiment(experiment_id(query(&q, "experiment_id")?)?)?;
    Ok(Json(json!({"experiment": p::experiment_json(&e)})))
}

/// For a job's token, every name is the job's own experiment: a script's
/// `mlflow.set_experiment(...)` is ignored inside a job, as on Azure ML (the job file's
/// `experiment_name` decides), so the run it resumes always belongs to the experiment.
async fn get_experiment_by_name(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let name = query(&q, "experiment_name")?;
    let e = match &caller {
        Caller::Run(own) => experiment_of(&s, &store(&s).run(own)?)?,
        Caller::Workspace => store(&s).experiment_named(name)?.ok_or_else(|| {
            MlflowError::missing(format!("no experiment named '{name}' in this workspace"))
        })?,
    };
    Ok(Json(json!({"experiment": p::experiment_json(&e)})))
}

async fn create_experiment(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    caller.workspace_only("create an experiment")?;
    let req: p::CreateExperiment = body(&bytes)?;
    let name = req.name.trim();
    if name.is_empty() || name.len() > p::MAX_EXPERIMENT_NAME {
        return Err(MlflowError::invalid(format!(
            "an experiment name is 1 to {} characters",
            p::MAX_EXPERIMENT_NAME
        )));
    }
    let tags = req
        .tags
        .iter()
        .map(|t| (t.key.clone(), t.value.clone().unwrap_or_default()))
        .collect();
    let e = store(&s).create_experiment(name, &tags)?;
    Ok(Json(json!({"experiment_id": e.id.to_string()})))
}

async fn search_experiments(State(s): State<Arc<AppState>>) -> Reply {
    let all: Vec<Value> = store(&s)
        .experiments()?
        .iter()
        .map(p::experiment_json)
        .collect();
    Ok(Json(json!({"experiments": all})))
}

async fn set_experiment_tag(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    caller.workspace_only("tag an experiment")?;
    let req: HashMap<String, Value> = body(&bytes)?;
    let field = |k: &str| {
        req.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let id = experiment_id(&field("experiment_id"))?;
    let key = field("key");
    p::check_key("tag", &key)?;
    store(&s).set_experiment_tag(id, &key, &field("value"))?;
    Ok(Json(json!({})))
}

async fn create_run(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::CreateRun = body(&bytes)?;
    let mut tags = BTreeMap::new();
    for t in &req.tags {
        let (k, v) = p::check_tag(t)?;
        tags.insert(k, v);
    }
    // A job may start runs nested under its own (`start_run(nested=True)` tags the parent);
    // they belong to the job's experiment, whatever the client asks for.
    let (exp, parent) = match &caller {
        Caller::Workspace => {
            let id = experiment_id(req.experiment_id.as_deref().unwrap_or("0"))?;
            (store(&s).experiment(id)?, None)
        }
        Caller::Run(own) if tags.get(PARENT_TAG) == Some(own) => {
            let parent = store(&s).run(own)?;
            (experiment_of(&s, &parent)?, Some(own.clone()))
        }
        Caller::Run(own) => {
            return Err(MlflowError::denied(format!(
                "a job's token starts only runs nested under its own (`{own}`): call `mlflow.start_run(nested=True)` inside the job's run, or start other runs from the host with the workspace token"
            )));
        }
    };
    let name = req
        .run_name
        .clone()
        .or_else(|| tags.get("mlflow.runName").cloned());
    if let Some(n) = &name {
        tags.insert("mlflow.runName".into(), n.clone());
    }
    let id = crate::run::model::new_run_id();
    let run =
        store(&s).insert_tracked_run(&id, &exp.name, name.as_deref(), &tags, parent.as_deref())?;
    Ok(Json(json!({"run": run_json(&s, &run)?})))
}

async fn get_run(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let id = run_id_query(&q)?;
    let run = store(&s).run(id)?;
    Ok(Json(json!({"run": run_json(&s, &run)?})))
}

/// A container run's state is decided by its exit code, not by the client: a script that
/// says FINISHED and then crashes has failed. A run an MLflow client started ends when
/// the client says so.
async fn update_run(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::UpdateRun = body(&bytes)?;
    let id = req.run.id()?.to_string();
    caller.may_write(&s, &id)?;
    let run = store(&s).run(&id)?;
    let status = match req.status.as_deref() {
        Some(st) => p::terminal_status(st)?,
        None => None,
    };
    if let Some(name) = req.run_name.as_deref().filter(|n| !n.is_empty()) {
        store(&s).set_display_name(&id, name)?;
        store(&s).log_tracking(
            &id,
            &TrackingBatch {
                tags: vec![("mlflow.runName".into(), name.into())],
                ..Default::default()
            },
        )?;
    }
    if let Some(to) = status
        && run.kind == TRACKED_KIND
        && !run.status.is_terminal()
    {
        store(&s).transition(&id, to, Default::default())?;
    }
    let run = store(&s).run(&id)?;
    let exp = experiment_of(&s, &run)?;
    let tracking = store(&s).run_tracking(&id)?;
    Ok(Json(
        json!({"run_info": p::run_info(&run, exp.id, &tracking)}),
    ))
}

async fn delete_run(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    mark_deleted(&s, &caller, &bytes, true)
}

async fn restore_run(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    mark_deleted(&s, &caller, &bytes, false)
}

fn mark_deleted(s: &AppState, caller: &Caller, bytes: &Bytes, deleted: bool) -> Reply {
    caller.workspace_only("delete or restore runs")?;
    let req: p::RunRef = body(bytes)?;
    let id = req.id()?;
    store(s).update_run_tracking(id, |t| t.deleted = deleted)?;
    Ok(Json(json!({})))
}

fn write(s: &AppState, caller: &Caller, id: &str, batch: TrackingBatch) -> Reply {
    caller.may_write(s, id)?;
    // A `mlflow.runName` tag renames the run, as on MLflow's own server.
    if let Some((_, name)) = batch.tags.iter().find(|(k, _)| k == "mlflow.runName") {
        store(s).set_display_name(id, name)?;
    }
    store(s).log_tracking(id, &batch)?;
    Ok(Json(json!({})))
}

async fn log_metric(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::LogMetric = body(&bytes)?;
    let id = req.run.id()?;
    let m = p::check_metric(&req.metric, now_ms())?;
    write(
        &s,
        &caller,
        id,
        TrackingBatch {
            metrics: vec![m],
            ..Default::default()
        },
    )
}

async fn log_param(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let (id, kv) = key_value(&bytes, p::check_param)?;
    let batch = TrackingBatch {
        params: vec![kv],
        ..Default::default()
    };
    write(&s, &caller, &id, batch)
}

async fn set_tag(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let (id, kv) = key_value(&bytes, p::check_tag)?;
    let batch = TrackingBatch {
        tags: vec![kv],
        ..Default::default()
    };
    write(&s, &caller, &id, batch)
}

/// The run and the checked pair of a `log-parameter` or `set-tag` body.
fn key_value(
    bytes: &Bytes,
    check: fn(&p::KeyValue) -> MlResult<(String, String)>,
) -> MlResult<(String, (String, String))> {
    let req: p::LogKeyValue = body(bytes)?;
    let kv = check(&p::KeyValue {
        key: req.key.clone(),
        value: req.value.clone(),
    })?;
    Ok((req.run.id()?.to_string(), kv))
}

async fn delete_tag(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::LogKeyValue = body(&bytes)?;
    let id = req.run.id()?;
    caller.may_write(&s, id)?;
    if !store(&s).delete_tag(id, &req.key)? {
        return Err(MlflowError::missing(format!(
            "no tag with name '{}' in run '{id}'",
            req.key
        )));
    }
    Ok(Json(json!({})))
}

async fn log_batch(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::LogBatch = body(&bytes)?;
    let id = req.run.id()?;
    let c = p::check_batch(&req, now_ms())?;
    write(
        &s,
        &caller,
        id,
        TrackingBatch {
            metrics: c.metrics,
            params: c.params,
            tags: c.tags,
        },
    )
}

async fn log_inputs(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::LogInputs = body(&bytes)?;
    let id = req.run.id()?;
    caller.may_write(&s, id)?;
    store(&s).update_run_tracking(id, |t| {
        for d in req.datasets {
            let key = |v: &Value| (v["dataset"]["name"].clone(), v["dataset"]["digest"].clone());
            if !t.datasets.iter().any(|have| key(have) == key(&d)) {
                t.datasets.push(d);
            }
        }
    })?;
    Ok(Json(json!({})))
}

async fn log_outputs(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::LogOutputs = body(&bytes)?;
    let id = req.run.id()?;
    caller.may_write(&s, id)?;
    store(&s).update_run_tracking(id, |t| {
        for m in req.models {
            if !t.model_outputs.contains(&m) {
                t.model_outputs.push(m);
            }
        }
    })?;
    Ok(Json(json!({})))
}

/// MLflow 2's `log_model` record: appended to the run's `mlflow.log-model.history` tag,
/// where MLflow's own server keeps it.
async fn log_model(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::LogModel = body(&bytes)?;
    let id = req.run.id()?.to_string();
    caller.may_write(&s, &id)?;
    let model: Value = serde_json::from_str(req.model_json.as_deref().unwrap_or(""))
        .map_err(|e| MlflowError::invalid(format!("model_json is not a JSON document: {e}")))?;
    let run = store(&s).run(&id)?;
    let mut history: Vec<Value> = run
        .tags
        .get("mlflow.log-model.history")
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    history.push(model);
    store(&s).log_tracking(
        &id,
        &TrackingBatch {
            tags: vec![(
                "mlflow.log-model.history".into(),
                serde_json::to_string(&history).unwrap_or_default(),
            )],
            ..Default::default()
        },
    )?;
    Ok(Json(json!({})))
}
