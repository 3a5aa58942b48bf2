//! Data asset routes: register a version, list, show one.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::ApiError;
use crate::store::DataRecord;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/data", post(create_data).get(list_data))
        .route("/api/data/{name}", get(show_data))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataCreated {
    pub created: bool,
    pub data: DataRecord,
}

async fn create_data(
    State(s): State<Arc<AppState>>,
    Json(mut rec): Json<DataRecord>,
) -> Result<(StatusCode, Json<DataCreated>), ApiError> {
    if !crate::spec::valid_model_name(&rec.name) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "`{}` is not a valid data asset name: letters, digits, `-` and `_`, starting with a letter or digit",
                rec.name
            ),
        ));
    }
    if !matches!(rec.data_type.as_str(), "uri_file" | "uri_folder") {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "data type `{}`: tug registers uri_file and uri_folder data",
                rec.data_type
            ),
        ));
    }
    super::component_api::check_version(&rec.version)?;
    rec.created_at = crate::store::now();
    let (data, created) = s.runner.store.put_data(&rec)?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(DataCreated { created, data })))
}

async fn list_data(State(s): State<Arc<AppState>>) -> Result<Json<Vec<DataRecord>>, ApiError> {
    Ok(Json(s.runner.store.data_assets()?))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

async fn show_data(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<DataRecord>, ApiError> {
    Ok(Json(s.runner.store.data(&name, q.version.as_deref())?))
}
