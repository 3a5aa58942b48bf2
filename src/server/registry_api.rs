//! HTTP routes of the model registry.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::AppState;
use super::api::ApiError;
use crate::registry::{self, ModelRef, ModelRequest};
use crate::store::ModelRecord;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/models", get(list_models).post(create_model))
        .route("/api/models/{name}/{version}", get(show_model))
        .route("/api/models/{name}/{version}/archive", post(archive_model))
        .route("/api/models/{name}/{version}/restore", post(restore_model))
        .route("/api/models/{name}/{version}/download", get(download_model))
}

impl From<registry::Error> for ApiError {
    fn from(e: registry::Error) -> Self {
        match e {
            registry::Error::Store(s) => s.into(),
            e @ registry::Error::Io { .. } => {
                ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            e @ registry::Error::NoRunOutput { .. } => {
                ApiError(StatusCode::NOT_FOUND, e.to_string())
            }
            other => ApiError(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn create_model(
    State(s): State<Arc<AppState>>,
    Json(req): Json<ModelRequest>,
) -> ApiResult<(StatusCode, Json<ModelRecord>)> {
    let state = s.clone();
    let rec = tokio::task::spawn_blocking(move || {
        registry::register(&state.runner.ws, &state.runner.store, req)
    })
    .await
    .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok((StatusCode::CREATED, Json(rec)))
}

#[derive(Deserialize)]
struct ListQuery {
    name: Option<String>,
    #[serde(default)]
    archived: bool,
}

async fn list_models(
    State(s): State<Arc<AppState>>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<ModelRecord>>> {
    Ok(Json(s.runner.store.models(q.name.as_deref(), q.archived)?))
}

/// `version` is a number or `latest`.
fn lookup(s: &AppState, name: &str, version: &str) -> ApiResult<ModelRecord> {
    let reference = ModelRef {
        name: name.to_string(),
        version: (version != "latest").then(|| version.to_string()),
    };
    Ok(registry::resolve(&s.runner.store, &reference)?)
}

async fn show_model(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ModelRecord>> {
    Ok(Json(lookup(&s, &name, &version)?))
}

async fn archive_model(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ModelRecord>> {
    let rec = lookup(&s, &name, &version)?;
    Ok(Json(s.runner.store.set_model_archived(
        &rec.name,
        &rec.version,
        true,
    )?))
}

async fn restore_model(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ModelRecord>> {
    Ok(Json(
        s.runner.store.set_model_archived(&name, &version, false)?,
    ))
}

async fn download_model(
    State(s): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let rec = lookup(&s, &name, &version)?;
    let state = s.clone();
    let tar = tokio::task::spawn_blocking(move || registry::model_tar(&state.runner.ws, &rec))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], tar).into_response())
}
