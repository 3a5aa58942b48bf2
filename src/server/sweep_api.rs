//! Sweep routes: create a sweep, and the sweep part of a job's view (trials ranked by the
//! primary metric).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::{ApiError, JobView, view};
use crate::run::model::RunStatus;
use crate::store::RunRecord;
use crate::sweep::controller;
use crate::sweep::plan::{self, TrialSnapshot};
use crate::sweep::{Objective, SweepLimits, SweepSubmission};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/sweeps", post(create_sweep))
}

impl From<controller::Error> for ApiError {
    fn from(e: controller::Error) -> Self {
        match e {
            controller::Error::Store(s) => s.into(),
            controller::Error::Run(r) => r.into(),
            other => ApiError(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

async fn create_sweep(
    State(s): State<Arc<AppState>>,
    Json(sub): Json<SweepSubmission>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let run = s.sweeps.submit(sub)?;
    Ok((StatusCode::CREATED, Json(view(&s, run, false)?)))
}

/// A sweep as `job show` presents it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepView {
    pub objective: Objective,
    pub sampling_algorithm: String,
    pub limits: SweepLimits,
    #[serde(default)]
    pub early_termination: Option<serde_json::Value>,
    pub best_trial: Option<String>,
    /// Why the sweep ended.
    pub note: Option<String>,
    /// Best first by the primary metric; trials without a value last.
    pub trials: Vec<TrialView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialView {
    pub index: u64,
    pub id: String,
    pub status: RunStatus,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The last reported value of the primary metric.
    pub value: Option<f64>,
    /// How many times the primary metric was reported.
    pub reports: usize,
    /// The early-termination rule that stopped the trial.
    pub stopped_by: Option<String>,
    /// Seconds between start and end (or now, while it runs).
    pub seconds: Option<f64>,
}

/// The sweep part of a parent run's view.
pub(crate) fn sweep_view(s: &AppState, run: &RunRecord) -> Result<SweepView, ApiError> {
    let store = &s.runner.store;
    let rec = store.sweep(&run.id)?;
    let sub: SweepSubmission = serde_json::from_value(rec.spec).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the stored sweep is unreadable: {e}"),
        )
    })?;
    let metric = sub.objective.primary_metric.as_str();
    let trials = store.trials(&run.id)?;
    let mut snapshots = Vec::with_capacity(trials.len());
    for t in &trials {
        let series = store
            .metrics(&t.run.id, Some(metric), 0)?
            .into_iter()
            .map(|(_, p)| p.value)
            .collect();
        snapshots.push(TrialSnapshot {
            index: t.index,
            run_id: t.run.id.clone(),
            status: t.run.status,
            params: t.params.clone().into_iter().collect(),
            series,
            stopped_by: t.stopped_by.clone(),
        });
    }
    let ranked = plan::ranked(&snapshots, &sub.objective);
    let trials_view = ranked
        .into_iter()
        .map(|snap| {
            let rec = &trials[trials.iter().position(|t| t.index == snap.index).unwrap()];
            TrialView {
                index: snap.index,
                id: snap.run_id.clone(),
                status: snap.status,
                params: rec.params.clone(),
                value: snap.final_value(),
                reports: snap.series.len(),
                stopped_by: snap.stopped_by.clone(),
                seconds: duration(&rec.run),
            }
        })
        .collect();
    Ok(SweepView {
        sampling_algorithm: match &sub.sampling_algorithm {
            crate::sweep::SamplingAlgorithm::Random { rule, .. } => match rule {
                crate::sweep::RandomRule::Random => "random".into(),
                crate::sweep::RandomRule::Sobol => "random (sobol)".into(),
            },
            crate::sweep::SamplingAlgorithm::Grid => "grid".into(),
            crate::sweep::SamplingAlgorithm::Bayesian => "bayesian".into(),
        },
        objective: sub.objective,
        limits: sub.limits,
        early_termination: sub
            .early_termination
            .as_ref()
            .and_then(|e| serde_json::to_value(e).ok()),
        best_trial: rec.best_trial,
        note: rec.note,
        trials: trials_view,
    })
}

/// A run's time on the compute, in seconds: start to end, or to now while it runs.
pub fn duration(run: &RunRecord) -> Option<f64> {
    let parse = |s: &str| humantime::parse_rfc3339_weak(s).ok();
    let start = parse(run.started_at.as_deref()?)?;
    let end = match run.ended_at.as_deref() {
        Some(e) => parse(e)?,
        None => std::time::SystemTime::now(),
    };
    end.duration_since(start).ok().map(|d| d.as_secs_f64())
}
