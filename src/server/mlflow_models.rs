//! MLflow 3's logged models (`/api/2.0/mlflow/logged-models/...`). A model logged from a
//! run keeps its files in the run's folder under the model's name, where MLflow 2 put
//! them, so `runs:/<run>/<name>` and `tug model create --path` find them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::{Value, json};

use super::AppState;
use super::mlflow_api::{Caller, MlResult, Reply, body, experiment_id, experiment_of, store};
use crate::store::LoggedModelRecord;
use crate::tracking::MlflowError;
use crate::tracking::protocol::{self as p, now_ms};

pub(super) async fn create_logged_model(
    State(s): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    bytes: Bytes,
) -> Reply {
    let req: p::CreateLoggedModel = body(&bytes)?;
    let source = match (&caller, &req.source_run_id) {
        (_, Some(r)) if !r.is_empty() => {
            caller.may_write(&s, r)?;
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
        Some(run) => caller.may_write(s, run)?,
        None => caller.workspace_only("change a logged model that belongs to no run")?,
    }
    Ok(m)
}

pub(super) async fn get_logged_model(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Reply {
    let m = store(&s).logged_model(&id)?;
    Ok(Json(json!({"model": p::logged_model_json(&m)})))
}

pub(super) async fn finalize_logged_model(
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

pub(super) async fn set_logged_model_tags(
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

pub(super) async fn log_logged_model_params(
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

pub(super) async fn search_logged_models(State(s): State<Arc<AppState>>, bytes: Bytes) -> Reply {
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
