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

use super::{AppState, Busy};
use crate::store::{ExperimentRecord, LoggedModelRecord, RunRecord, TRACKED_KIND, TrackingBatch};
use crate::tracking::protocol::{self as p, now_ms};
use crate::tracking::search::{self, RunFacts};
use crate::tracking::{ErrorCode, MlflowError, token};

type MlResult<T> = Result<T, MlflowError>;
type Reply = MlResult<Json<Value>>;

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
    /// Writes to a run are the workspace's, or that run's own.
    pub(crate) fn may_write(&self, run_id: &str) -> MlResult<()> {
        match self {
            Caller::Workspace => Ok(()),
            Caller::Run(own) if own == run_id => Ok(()),
            Caller::Run(own) => Err(MlflowError::denied(format!(
                "this token belongs to run `{own}` and writes to that run only, not to `{run_id}`"
            ))),
        }
    }

    fn workspace_only(&self, what: &str) -> MlResult<()> {
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
        .route(&format!("{API}/runs/search"), post(search_runs))
        .route(&format!("{API}/metrics/get-history"), get(metric_history))
        .route(&format!("{API}/logged-models"), post(create_logged_model))
        .route(
            &format!("{API}/logged-models/search"),
            post(search_logged_models),
        )
        .route(
            &format!("{API}/logged-models/{{model_id}}"),
            get(get_logged_model).patch(finalize_logged_model),
        )
        .route(
            &format!("{API}/logged-models/{{model_id}}/tags"),
            patch(set_logged_model_tags),
        )
        .route(
            &format!("{API}/logged-models/{{model_id}}/params"),
            post(log_logged_model_params),
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
    next.run(req).await
}

async fn unknown_endpoint(method: Method, Path(rest): Path<String>) -> MlflowError {
    MlflowError::new(
        ErrorCode::EndpointNotFound,
        format!("tug does not serve {method} /api/2.0/mlflow/{rest}"),
    )
}

fn body<T: DeserializeOwned + Default>(bytes: &Bytes) -> MlResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| {
        MlflowError::invalid(format!("the request body is not the JSON expected: {e}"))
    })
}

fn query<'a>(q: &'a HashMap<String, String>, name: &str) -> MlResult<&'a str> {
    q.get(name)
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            MlflowError::invalid(format!("missing value for required parameter '{name}'"))
        })
}

fn experiment_id(text: &str) -> MlResult<i64> {
    text.trim()
        .parse()
        .map_err(|_| MlflowError::invalid(format!("experiment id '{text}' is not a number")))
}

fn store(s: &AppState) -> &crate::store::Store {
    &s.runner.store
}

fn experiment_of(s: &AppState, run: &RunRecord) -> MlResult<ExperimentRecord> {
    store(s)
        .experiment_named(&run.experiment)?
        .ok_or_else(|| MlflowError::missing(format!("experiment `{}` is gone", run.experiment)))
}

pub(crate) fn run_json(s: &AppState, run: &RunRecord) -> MlResult<Value> {
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
    caller.workspace_only(
        "start another run (nested runs inside a job are not supported yet; log to the job's run)",
    )?;
    let req: p::CreateRun = body(&bytes)?;
    let exp = store(&s).experiment(experiment_id(req.experiment_id.as_deref().unwrap_or("0"))?)?;
    let mut tags = BTreeMap::new();
    for t in &req.tags {
        let (k, v) = p::check_tag(t)?;
        tags.insert(k, v);
    }
    let name = req
        .run_name
        .clone()
        .or_else(|| tags.get("mlflow.runName").cloned());
    if let Some(n) = &name {
        tags.insert("mlflow.runName".into(), n.clone());
    }
    let id = crate::run::model::new_run_id();
    let run = store(&s).insert_tracked_run(&id, &exp.name, name.as_deref(), &tags)?;
    Ok(Json(json!({"run": run_json(&s, &run)?})))
}

async fn get_run(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let id = q
        .get("run_id")
        .or(q.get("run_uuid"))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'run_id'"))?;
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
    caller.may_write(&id)?;
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
    caller.may_write(id)?;
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
    let req: p::LogKeyValue = body(&bytes)?;
    let id = req.run.id()?;
    let kv = p::check_param(&p::KeyValue {
        key: req.key.clone(),
        value: req.value.clone(),
    })?;
    write(
        &s,
        &caller,
        id,
        TrackingBatch {
            params: vec![kv],
            ..Default::default()
        },
    )
}

async fn set_tag(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::LogKeyValue = body(&bytes)?;
    let id = req.run.id()?;
    let kv = p::check_tag(&p::KeyValue {
        key: req.key.clone(),
        value: req.value.clone(),
    })?;
    write(
        &s,
        &caller,
        id,
        TrackingBatch {
            tags: vec![kv],
            ..Default::default()
        },
    )
}

async fn delete_tag(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::LogKeyValue = body(&bytes)?;
    let id = req.run.id()?;
    caller.may_write(id)?;
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
    caller.may_write(id)?;
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
    caller.may_write(id)?;
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
    caller.may_write(&id)?;
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

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SearchRuns {
    experiment_ids: Vec<String>,
    filter: Option<String>,
    run_view_type: Option<String>,
    max_results: Option<i64>,
    order_by: Vec<String>,
    page_token: Option<String>,
}

fn page(token: Option<&str>) -> MlResult<usize> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => t
            .parse()
            .map_err(|_| MlflowError::invalid(format!("invalid page token '{t}'"))),
    }
}

async fn search_runs(State(s): State<Arc<AppState>>, bytes: Bytes) -> Reply {
    let req: SearchRuns = body(&bytes)?;
    let clauses = search::parse_filter(req.filter.as_deref().unwrap_or(""))?;
    let mut order = search::parse_order(&req.order_by)?;
    if order.is_empty() {
        order = search::parse_order(&["attributes.start_time DESC".into()])?;
    }
    let max = req.max_results.unwrap_or(1000).clamp(1, 50_000) as usize;
    let start = page(req.page_token.as_deref())?;
    let mut names = Vec::new();
    let mut ids = HashMap::new();
    for e in &req.experiment_ids {
        let exp = store(&s).experiment(experiment_id(e)?)?;
        ids.insert(exp.name.clone(), exp.id);
        names.push(exp.name);
    }
    let view = req.run_view_type.as_deref().unwrap_or("ACTIVE_ONLY");
    let mut found: Vec<(RunFacts, RunRecord)> = Vec::new();
    for run in store(&s).runs_of_experiments(&names)? {
        let tracking = store(&s).run_tracking(&run.id)?;
        let keep = match view {
            "DELETED_ONLY" => tracking.deleted,
            "ALL" => true,
            _ => !tracking.deleted,
        };
        if !keep {
            continue;
        }
        let exp_id = ids.get(&run.experiment).copied().unwrap_or(0);
        let info = p::run_info(&run, exp_id, &tracking);
        let mut attributes = BTreeMap::new();
        for key in ["status", "run_name", "run_id", "user_id", "artifact_uri"] {
            if let Some(v) = info[key].as_str() {
                attributes.insert(key.to_string(), search::Value::Text(v.into()));
            }
        }
        for key in ["start_time", "end_time"] {
            if let Some(v) = info[key].as_i64() {
                attributes.insert(key.to_string(), search::Value::Number(v as f64));
            }
        }
        let mut tags = run.tags.clone();
        tags.entry("mlflow.runName".into())
            .or_insert_with(|| p::run_name(&run));
        let facts = RunFacts {
            metrics: store(&s).last_metrics(&run.id)?,
            params: run.params.clone(),
            tags,
            attributes,
        };
        if search::matches(&facts, &clauses) {
            found.push((facts, run));
        }
    }
    found.sort_by(|a, b| search::order(&a.0, &b.0, &order));
    let mut runs = Vec::new();
    for (_, run) in found.iter().skip(start).take(max) {
        runs.push(run_json(&s, run)?);
    }
    let mut out = json!({"runs": runs});
    if start + max < found.len() {
        out["next_page_token"] = json!((start + max).to_string());
    }
    Ok(Json(out))
}

async fn metric_history(
    State(s): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Reply {
    let id = q
        .get("run_id")
        .or(q.get("run_uuid"))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| MlflowError::invalid("missing value for required parameter 'run_id'"))?;
    let key = query(&q, "metric_key")?;
    store(&s).run(id)?;
    let max = match q.get("max_results") {
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| MlflowError::invalid(format!("max_results '{m}' is not a number")))?,
        None => 25_000,
    }
    .clamp(1, 25_000);
    let start = page(q.get("page_token").map(String::as_str))?;
    let points = store(&s).metrics(id, Some(key), 0)?;
    let metrics: Vec<Value> = points
        .iter()
        .skip(start)
        .take(max)
        .map(|(_, p)| p::metric_json(p))
        .collect();
    let mut out = json!({"metrics": metrics});
    if start + max < points.len() {
        out["next_page_token"] = json!((start + max).to_string());
    }
    Ok(Json(out))
}

async fn create_logged_model(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::CreateLoggedModel = body(&bytes)?;
    let source = match (&caller, &req.source_run_id) {
        (_, Some(r)) if !r.is_empty() => {
            caller.may_write(r)?;
            Some(store(&s).run(r)?)
        }
        (Caller::Run(own), _) => Some(store(&s).run(own)?),
        (Caller::Workspace, _) => None,
    };
    let exp = match (&req.experiment_id, &source) {
        (Some(e), _) if !e.is_empty() => store(&s).experiment(experiment_id(e)?)?,
        (_, Some(run)) => experiment_of(&s, run)?,
        _ => store(&s).experiment(0)?,
    };
    let name = req
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".into());
    crate::tracking::artifacts::clean_path(&name)?;
    let id = format!("m-{}", crate::workspace::random_hex(16));
    // The model's files go where MLflow 2 put them, `<run>/<name>`, so
    // `runs:/<run>/<name>` finds them; a second model of that name in the run gets its id.
    let artifact_path = match &source {
        Some(run) => {
            let taken = store(&s)
                .logged_models(&[exp.id])?
                .iter()
                .any(|m| m.source_run_id.as_deref() == Some(&run.id) && m.artifact_path == name);
            let reserved = crate::tracking::artifacts::reserved(&name);
            if taken || reserved {
                format!("{name}-{id}")
            } else {
                name.clone()
            }
        }
        None => String::new(),
    };
    let now = now_ms();
    let rec = LoggedModelRecord {
        id,
        experiment_id: exp.id,
        name,
        source_run_id: source.map(|r| r.id),
        model_type: req.model_type.clone(),
        status: "LOGGED_MODEL_PENDING".into(),
        status_message: None,
        artifact_path,
        created_ms: now,
        updated_ms: now,
        tags: req
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone().unwrap_or_default()))
            .collect(),
        params: req
            .params
            .iter()
            .map(|t| (t.key.clone(), t.value.clone().unwrap_or_default()))
            .collect(),
    };
    store(&s).insert_logged_model(&rec)?;
    Ok(Json(json!({"model": p::logged_model_json(&rec)})))
}

fn model_writable(s: &AppState, caller: &Caller, id: &str) -> MlResult<LoggedModelRecord> {
    let m = store(s).logged_model(id)?;
    match &m.source_run_id {
        Some(run) => caller.may_write(run)?,
        None => caller.workspace_only("change a logged model that belongs to no run")?,
    }
    Ok(m)
}

async fn get_logged_model(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Reply {
    let m = store(&s).logged_model(&id)?;
    Ok(Json(json!({"model": p::logged_model_json(&m)})))
}

async fn finalize_logged_model(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply {
    model_writable(&s, &caller, &id)?;
    let req: HashMap<String, Value> = body(&bytes)?;
    let status = req
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("LOGGED_MODEL_READY")
        .to_string();
    if !matches!(
        status.as_str(),
        "LOGGED_MODEL_READY" | "LOGGED_MODEL_UPLOAD_FAILED" | "LOGGED_MODEL_PENDING"
    ) {
        return Err(MlflowError::invalid(format!(
            "unknown logged model status '{status}'"
        )));
    }
    let m = store(&s).update_logged_model(&id, |m| {
        m.status = status;
        m.updated_ms = now_ms();
    })?;
    Ok(Json(json!({"model": p::logged_model_json(&m)})))
}

async fn set_logged_model_tags(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply {
    model_writable(&s, &caller, &id)?;
    let req: p::LogBatch = body(&bytes)?;
    let tags = req
        .tags
        .iter()
        .map(p::check_tag)
        .collect::<MlResult<Vec<_>>>()?;
    let m = store(&s).update_logged_model(&id, |m| m.tags.extend(tags))?;
    Ok(Json(json!({"model": p::logged_model_json(&m)})))
}

async fn log_logged_model_params(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Reply {
    model_writable(&s, &caller, &id)?;
    let req: p::LogBatch = body(&bytes)?;
    let params = req
        .params
        .iter()
        .map(p::check_param)
        .collect::<MlResult<Vec<_>>>()?;
    store(&s).update_logged_model(&id, |m| m.params.extend(params))?;
    Ok(Json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SearchLoggedModels {
    experiment_ids: Vec<String>,
    max_results: Option<i64>,
}

async fn search_logged_models(State(s): State<Arc<AppState>>, bytes: Bytes) -> Reply {
    let req: SearchLoggedModels = body(&bytes)?;
    let ids = req
        .experiment_ids
        .iter()
        .map(|e| experiment_id(e))
        .collect::<MlResult<Vec<_>>>()?;
    let max = req.max_results.unwrap_or(100).clamp(1, 10_000) as usize;
    let models: Vec<Value> = store(&s)
        .logged_models(&ids)?
        .iter()
        .take(max)
        .map(p::logged_model_json)
        .collect();
    Ok(Json(json!({"models": models})))
}
