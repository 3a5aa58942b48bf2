//! Schedule routes: create (or replace), list, show, enable, disable, trigger, delete; and
//! the bridge that lets the schedule controller submit jobs through the server's own
//! create paths.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::api::ApiError;
use crate::run::lifecycle::{self, Runner};
use crate::schedule::controller::{self, Submit, SubmitError, trigger_of};
use crate::schedule::trigger::{Trigger, TriggerSpec};
use crate::schedule::{ScheduleSubmission, ScheduledJob};
use crate::store::{self, FireRecord, ScheduleRecord};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/schedules", post(put_schedule).get(list_schedules))
        .route(
            "/api/schedules/{name}",
            get(show_schedule).delete(delete_schedule),
        )
        .route("/api/schedules/{name}/enable", post(enable_schedule))
        .route("/api/schedules/{name}/disable", post(disable_schedule))
        .route("/api/schedules/{name}/trigger", post(trigger_schedule))
}

impl From<controller::Error> for ApiError {
    fn from(e: controller::Error) -> Self {
        match e {
            controller::Error::Store(store::Error::NoSchedule(n)) => ApiError(
                StatusCode::NOT_FOUND,
                store::Error::NoSchedule(n).to_string(),
            ),
            controller::Error::Store(s) => s.into(),
            controller::Error::Enabled(_) => ApiError(StatusCode::CONFLICT, e.to_string()),
            other => ApiError(StatusCode::BAD_REQUEST, other.to_string()),
        }
    }
}

/// A schedule as `schedule show` and `schedule list` present it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleView {
    pub name: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    pub enabled: bool,
    pub trigger: TriggerSpec,
    /// The trigger in words.
    pub trigger_text: String,
    /// The zone the trigger is read in, as IANA names it.
    pub time_zone: String,
    /// `command`, `sweep` or `pipeline`.
    pub job_type: String,
    pub job_source: Option<String>,
    pub source: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The occurrence it waits for (UTC), and the same in its zone; none once ended.
    pub next_fire: Option<String>,
    pub next_fire_local: Option<String>,
    pub note: Option<String>,
    /// Newest first (the last 20 in `show`, the last one in `list`).
    pub fires: Vec<FireView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FireView {
    #[serde(flatten)]
    pub fire: FireRecord,
    /// The status of the run it made, when it made one.
    pub run_status: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleCreated {
    pub created: bool,
    pub schedule: ScheduleView,
}

fn view(s: &AppState, rec: ScheduleRecord, fires: usize) -> Result<ScheduleView, ApiError> {
    let sub: ScheduleSubmission = serde_json::from_value(rec.spec.clone())
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let trigger = trigger_of(&rec).ok();
    let next_fire_local = match (&trigger, rec.next_fire.as_deref()) {
        (Some(t), Some(next)) => next
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|ts| {
                jiff::tz::TimeZone::get(&t.iana)
                    .ok()
                    .map(|tz| ts.to_zoned(tz))
            })
            .map(|z| z.strftime("%Y-%m-%d %H:%M:%S %Z").to_string()),
        _ => None,
    };
    let fires = s
        .runner
        .store
        .schedule_fires(&rec.name, fires)?
        .into_iter()
        .map(|fire| FireView {
            run_status: s
                .runner
                .store
                .run(&fire.run_id)
                .ok()
                .map(|r| r.status.to_string()),
            fire,
        })
        .collect();
    Ok(ScheduleView {
        name: rec.name,
        display_name: sub.display_name,
        description: sub.description,
        tags: sub.tags,
        enabled: rec.enabled,
        trigger_text: Trigger::describe(&sub.trigger),
        time_zone: trigger.map(|t| t.iana).unwrap_or_default(),
        trigger: sub.trigger,
        job_type: sub.job.kind().to_string(),
        job_source: sub.job_source,
        source: sub.source,
        created_at: rec.created_at,
        updated_at: rec.updated_at,
        next_fire: rec.next_fire,
        next_fire_local,
        note: rec.note,
        fires,
    })
}

async fn put_schedule(
    State(s): State<Arc<AppState>>,
    Json(sub): Json<ScheduleSubmission>,
) -> Result<(StatusCode, Json<ScheduleCreated>), ApiError> {
    let (rec, created) = s.schedules.put(sub)?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        code,
        Json(ScheduleCreated {
            created,
            schedule: view(&s, rec, 1)?,
        }),
    ))
}

async fn list_schedules(
    State(s): State<Arc<AppState>>,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    let recs = s.runner.store.schedules()?;
    Ok(Json(
        recs.into_iter()
            .map(|r| view(&s, r, 1))
            .collect::<Result<_, _>>()?,
    ))
}

async fn show_schedule(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let rec = s
        .runner
        .store
        .schedule(&name)
        .map_err(controller::Error::from)?;
    Ok(Json(view(&s, rec, 20)?))
}

async fn enable_schedule(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let rec = s.schedules.enable(&name)?;
    Ok(Json(view(&s, rec, 1)?))
}

async fn disable_schedule(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    let rec = s.schedules.disable(&name)?;
    Ok(Json(view(&s, rec, 1)?))
}

async fn trigger_schedule(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<FireView>), ApiError> {
    let fire = s.schedules.trigger(&name)?;
    let run_status = s
        .runner
        .store
        .run(&fire.run_id)
        .ok()
        .map(|r| r.status.to_string());
    Ok((StatusCode::CREATED, Json(FireView { fire, run_status })))
}

async fn delete_schedule(
    State(s): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.schedules.delete(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Submits scheduled jobs through the runner and the sweep and pipeline controllers.
pub(crate) struct ServerSubmit {
    pub runner: Arc<Runner>,
    pub sweeps: Arc<crate::sweep::controller::Controller>,
    pub pipelines: Arc<crate::pipeline::controller::Controller>,
}

fn exists(e: &store::Error) -> bool {
    matches!(e, store::Error::RunExists(_))
}

fn run_exists(e: &lifecycle::Error) -> bool {
    matches!(e, lifecycle::Error::Store(s) if exists(s))
}

impl Submit for ServerSubmit {
    fn submit(&self, job: ScheduledJob) -> Result<String, SubmitError> {
        use crate::pipeline::controller::Error as P;
        use crate::sweep::controller::Error as S;
        match job {
            ScheduledJob::Command(j) => self.runner.submit(*j).map(|r| r.id).map_err(|e| {
                if run_exists(&e) {
                    SubmitError::Exists
                } else {
                    SubmitError::Other(e.to_string())
                }
            }),
            ScheduledJob::Sweep(j) => self.sweeps.submit(*j).map(|r| r.id).map_err(|e| match &e {
                S::Store(s) if exists(s) => SubmitError::Exists,
                S::Run(r) if run_exists(r) => SubmitError::Exists,
                _ => SubmitError::Other(e.to_string()),
            }),
            ScheduledJob::Pipeline(j) => {
                self.pipelines
                    .submit(*j)
                    .map(|r| r.id)
                    .map_err(|e| match &e {
                        P::Store(s) if exists(s) => SubmitError::Exists,
                        P::Run(r) if run_exists(r) => SubmitError::Exists,
                        _ => SubmitError::Other(e.to_string()),
                    })
            }
        }
    }

    fn check(&self, job: &ScheduledJob) -> Result<(), String> {
        match job {
            ScheduledJob::Command(j) => self.runner.validate(j).map_err(|e| e.to_string()),
            ScheduledJob::Sweep(s) => self.runner.validate(&s.trial).map_err(|e| e.to_string()),
            ScheduledJob::Pipeline(p) => self
                .pipelines
                .check(p)
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}
