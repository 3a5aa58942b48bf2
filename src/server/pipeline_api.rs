//! Pipeline routes: create a pipeline, plan one (what would run, what would be reused,
//! and why) without creating anything, and the pipeline part of a job's view.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::{ApiError, JobView, view};
use crate::pipeline::PipelineSubmission;
use crate::pipeline::controller::{self, PlannedStep, step_states};
use crate::pipeline::graph::StepState;
use crate::run::model::RunStatus;
use crate::store::RunRecord;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/pipelines", post(create_pipeline))
        .route("/api/pipelines/plan", post(plan_pipeline))
}

impl From<controller::Error> for ApiError {
    fn from(e: controller::Error) -> Self {
        match e {
            controller::Error::Store(s) => s.into(),
            controller::Error::Run(r) => r.into(),
            controller::Error::Step { step, source } => {
                let inner: ApiError = source.into();
                ApiError(inner.0, format!("step `{step}`: {}", inner.1))
            }
            other => ApiError(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

async fn create_pipeline(
    State(s): State<Arc<AppState>>,
    Json(sub): Json<PipelineSubmission>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let run = s.pipelines.submit(sub)?;
    Ok((StatusCode::CREATED, Json(view(&s, run, false)?)))
}

/// What `tug job plan` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PlanView {
    pub steps: Vec<PlannedStep>,
    /// Steps that would run now, be reused, or be decided once an upstream step has run.
    pub run: usize,
    pub reuse: usize,
    pub wait: usize,
}

async fn plan_pipeline(
    State(s): State<Arc<AppState>>,
    Json(sub): Json<PipelineSubmission>,
) -> Result<Json<PlanView>, ApiError> {
    let steps = s.pipelines.plan(&sub).await?;
    let count = |a: &str| steps.iter().filter(|p| p.action == a).count();
    Ok(Json(PlanView {
        run: count("run"),
        reuse: count("reuse"),
        wait: count("wait"),
        steps,
    }))
}

/// A pipeline as `job show` presents it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipelineView {
    /// Why it ended (counts of steps run, reused, failed, skipped).
    pub note: Option<String>,
    pub continue_on_step_failure: bool,
    pub force_rerun: bool,
    /// In graph order: each step after the steps it reads.
    pub steps: Vec<StepView>,
    /// `pipeline output → (step, its output)`.
    pub outputs: BTreeMap<String, (String, String)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepView {
    pub step: String,
    pub state: StepState,
    /// The step's own run, when it ran.
    pub run: Option<String>,
    pub status: Option<RunStatus>,
    /// The earlier run whose outputs a reused step uses.
    pub reused_from: Option<String>,
    /// Why it ran, was reused, or was skipped.
    pub reason: Option<String>,
    pub decision: Option<serde_json::Value>,
    pub upstream: Vec<String>,
    pub seconds: Option<f64>,
    pub error: Option<String>,
}

pub(crate) fn pipeline_view(s: &AppState, run: &RunRecord) -> Result<PipelineView, ApiError> {
    let store = &s.runner.store;
    let rec = store.pipeline(&run.id)?;
    let sub: PipelineSubmission = serde_json::from_value(rec.spec).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the stored pipeline is unreadable: {e}"),
        )
    })?;
    let graph = sub.checked_graph().map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the stored pipeline's graph is invalid: {e}"),
        )
    })?;
    let steps = store.pipeline_steps(&run.id)?;
    let states = step_states(&steps);
    let views = graph
        .order()
        .iter()
        .filter_map(|name| {
            let rec = steps.iter().find(|s| &s.step == name)?;
            Some(StepView {
                step: name.clone(),
                state: states.get(name).copied().unwrap_or(StepState::Waiting),
                run: rec.run.as_ref().map(|r| r.id.clone()),
                status: rec.run.as_ref().map(|r| r.status),
                reused_from: rec.reused_from.clone(),
                reason: rec.reason.clone(),
                decision: rec.decision.clone(),
                upstream: graph.upstream(name).map(str::to_string).collect(),
                seconds: rec.run.as_ref().and_then(super::sweep_api::duration),
                error: rec.run.as_ref().and_then(|r| r.error.clone()),
            })
        })
        .collect();
    Ok(PipelineView {
        note: rec.note,
        continue_on_step_failure: sub.settings.continue_on_step_failure,
        force_rerun: sub.settings.force_rerun,
        steps: views,
        outputs: sub.outputs,
    })
}
