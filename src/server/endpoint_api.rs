//! HTTP routes of online endpoints and deployments.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::ApiError;
use crate::endpoint::controller::EndpointPatch;
use crate::endpoint::{
    self, Credentials, DeploymentRecord, DeploymentSubmission, EndpointRecord, EndpointRequest,
};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/endpoints", get(list_endpoints).post(create_endpoint))
        .route(
            "/api/endpoints/{name}",
            get(show_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route("/api/endpoints/{name}/credentials", get(credentials))
        .route("/api/endpoints/{name}/regenerate-keys", post(regenerate))
        .route(
            "/api/endpoints/{name}/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route(
            "/api/endpoints/{name}/deployments/{dep}",
            get(show_deployment)
                .put(update_deployment)
                .delete(delete_deployment),
        )
        .route(
            "/api/endpoints/{name}/deployments/{dep}/logs",
            get(deployment_logs),
        )
}

impl From<endpoint::Error> for ApiError {
    fn from(e: endpoint::Error) -> Self {
        use endpoint::Error as E;
        match e {
            E::Store(s) => s.into(),
            E::Registry(r) => r.into(),
            other => {
                let code = match &other {
                    E::NoEndpoint(_) | E::NoDeployment { .. } => StatusCode::NOT_FOUND,
                    E::EndpointExists(_) | E::DeploymentExists { .. } | E::Busy(..) => {
                        StatusCode::CONFLICT
                    }
                    E::BadName(_) | E::Invalid(_) | E::AuthMode(_) => StatusCode::BAD_REQUEST,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                ApiError(code, other.to_string())
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// An endpoint as the API shows it: the record plus its URIs and deployments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointView {
    #[serde(flatten)]
    pub endpoint: EndpointRecord,
    pub scoring_uri: String,
    pub openapi_uri: String,
    pub deployments: Vec<String>,
}

fn view(s: &AppState, ep: EndpointRecord) -> ApiResult<EndpointView> {
    let deployments = s
        .endpoints
        .store
        .deployments(&ep.name)
        .map_err(ApiError::from)?
        .into_iter()
        .map(|d| d.name)
        .collect();
    Ok(EndpointView {
        scoring_uri: ep.scoring_uri(),
        openapi_uri: ep.openapi_uri(),
        endpoint: ep,
        deployments,
    })
}

async fn create_endpoint(
    State(s): State<Arc<AppState>>,
    Json(req): Json<EndpointRequest>,
) -> ApiResult<(StatusCode, Json<EndpointView>)> {
    let ep = s.endpoints.create_endpoint(req)?;
    Ok((StatusCode::ACCEPTED, Json(view(&s, ep)?)))
}

async fn list_endpoints(State(s): State<Arc<AppState>>) -> ApiResult<Json<Vec<EndpointView>>> {
    let all = s.endpoints.store.endpoints().map_err(ApiError::from)?;
    Ok(Json(
        all.into_iter()
            .map(|e| view(&s, e))
            .collect::<ApiResult<_>>()?,
    ))
}

async fn show_endpoint(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<EndpointView>> {
    let ep = s.endpoints.endpoint(&name)?;
    Ok(Json(view(&s, ep)?))
}

async fn update_endpoint(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(patch): Json<EndpointPatch>,
) -> ApiResult<Json<EndpointView>> {
    let ep = s.endpoints.update_endpoint(&name, patch).await?;
    Ok(Json(view(&s, ep)?))
}

async fn delete_endpoint(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    s.endpoints.delete_endpoint(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn credentials(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Credentials>> {
    Ok(Json(s.endpoints.credentials(&name)?))
}

#[derive(Deserialize)]
struct RegenerateBody {
    key_type: String,
}

async fn regenerate(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Json(body): Json<RegenerateBody>,
) -> ApiResult<Json<Credentials>> {
    Ok(Json(
        s.endpoints.regenerate_key(&name, &body.key_type).await?,
    ))
}

#[derive(Deserialize)]
struct ApplyQuery {
    #[serde(default)]
    all_traffic: bool,
    /// Answer with the Kubernetes objects the deployment would become; apply nothing.
    #[serde(default)]
    dry_run: bool,
}

fn check_path(name: &str, sub: &DeploymentSubmission) -> ApiResult<()> {
    if sub.endpoint_name != name {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "the deployment names endpoint `{}` but was sent to `{name}`",
                sub.endpoint_name
            ),
        ));
    }
    Ok(())
}

async fn create_deployment(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(q): Query<ApplyQuery>,
    Json(sub): Json<DeploymentSubmission>,
) -> ApiResult<axum::response::Response> {
    check_path(&name, &sub)?;
    if q.dry_run {
        return Ok(Json(s.endpoints.plan_deployment(sub).await?).into_response());
    }
    let rec = s.endpoints.apply_deployment(sub, false, q.all_traffic)?;
    Ok((StatusCode::ACCEPTED, Json(rec)).into_response())
}

async fn update_deployment(
    State(s): State<Arc<AppState>>,
    Path((name, dep)): Path<(String, String)>,
    Query(q): Query<ApplyQuery>,
    Json(sub): Json<DeploymentSubmission>,
) -> ApiResult<axum::response::Response> {
    check_path(&name, &sub)?;
    if sub.name != dep {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "deployment name mismatch".into(),
        ));
    }
    if q.dry_run {
        return Ok(Json(s.endpoints.plan_deployment(sub).await?).into_response());
    }
    let rec = s.endpoints.apply_deployment(sub, true, q.all_traffic)?;
    Ok((StatusCode::ACCEPTED, Json(rec)).into_response())
}

async fn list_deployments(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Vec<DeploymentRecord>>> {
    s.endpoints.endpoint(&name)?;
    Ok(Json(
        s.endpoints
            .store
            .deployments(&name)
            .map_err(ApiError::from)?,
    ))
}

async fn show_deployment(
    State(s): State<Arc<AppState>>,
    Path((name, dep)): Path<(String, String)>,
) -> ApiResult<Json<DeploymentRecord>> {
    Ok(Json(s.endpoints.deployment(&name, &dep)?))
}

async fn delete_deployment(
    State(s): State<Arc<AppState>>,
    Path((name, dep)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.endpoints.delete_deployment(&name, &dep).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct LogsQuery {
    lines: Option<usize>,
}

async fn deployment_logs(
    State(s): State<Arc<AppState>>,
    Path((name, dep)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<String> {
    Ok(s.endpoints.deployment_logs(&name, &dep, q.lines).await?)
}
