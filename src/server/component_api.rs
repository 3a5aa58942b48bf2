//! Component routes: register a version (its file text and the snapshot of the files it
//! names), list, show one; and snapshot download, so a CLI can unpack a registered
//! component's files where a pipeline names it.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::ApiError;
use crate::store::ComponentRecord;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/components",
            post(create_component).get(list_components),
        )
        .route("/api/components/{name}", get(show_component))
        .route("/api/snapshots/{sha}", get(download_snapshot))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentCreated {
    pub created: bool,
    pub component: ComponentRecord,
}

async fn create_component(
    State(s): State<Arc<AppState>>,
    Json(mut rec): Json<ComponentRecord>,
) -> Result<(StatusCode, Json<ComponentCreated>), ApiError> {
    if !crate::spec::valid_component_name(&rec.name) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "`{}` is not a valid component name: a lowercase letter first, then lowercase letters, digits and `_`",
                rec.name
            ),
        ));
    }
    check_version(&rec.version)?;
    if !snapshot_path(&s, &rec.snapshot).is_some_and(|p| p.exists()) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "the component's snapshot {} was never uploaded to this workspace",
                rec.snapshot
            ),
        ));
    }
    rec.created_at = crate::store::now();
    let (component, created) = s.runner.store.put_component(&rec)?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(ComponentCreated { created, component })))
}

async fn list_components(
    State(s): State<Arc<AppState>>,
) -> Result<Json<Vec<ComponentRecord>>, ApiError> {
    Ok(Json(s.runner.store.components()?))
}

#[derive(Deserialize)]
struct VersionQuery {
    version: Option<String>,
}

async fn show_component(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Json<ComponentRecord>, ApiError> {
    Ok(Json(s.runner.store.component(&name, q.version.as_deref())?))
}

/// An asset version: it becomes part of a folder name, so letters, digits, `.`, `-` and
/// `_` only, not starting with `.` (empty: the next number).
pub(crate) fn check_version(version: &str) -> Result<(), ApiError> {
    let ok = version.is_empty()
        || (version.len() <= 64
            && !version.starts_with('.')
            && version
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')));
    if ok {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "`{version}` is not a valid version: use letters, digits, `.`, `-` and `_` (e.g. `1` or `2.1`), not starting with `.`"
            ),
        ))
    }
}

/// The stored snapshot `sha`, if `sha` is one (hex only: it becomes a file name).
fn snapshot_path(s: &AppState, sha: &str) -> Option<std::path::PathBuf> {
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| s.runner.ws.snapshots().join(format!("{sha}.tar")))
}

async fn download_snapshot(
    State(s): State<Arc<AppState>>,
    Path(sha): Path<String>,
) -> Result<Bytes, ApiError> {
    let missing = || {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("no snapshot {sha} in this workspace"),
        )
    };
    let path = snapshot_path(&s, &sha).ok_or_else(missing)?;
    match tokio::fs::read(&path).await {
        Ok(bytes) => Ok(Bytes::from(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading snapshot {sha}: {e}"),
        )),
    }
}
