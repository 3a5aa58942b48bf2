//! The schedule controller: one task in the server, the single writer of schedule state.
//! It sleeps until the earliest enabled schedule is due (or something changes), then fires
//! each due schedule once: the fire and the schedule's next occurrence are written in one
//! transaction, then the job is submitted under the fire's run id.
//!
//! Missed fires: occurrences that pass while no server runs (or while this one cannot keep
//! up) are fired once, for the latest of them, when the server next looks, and the fire
//! says how many it stood for. This is Azure ML's rule. A server that dies between writing
//! a fire and submitting its job submits that same run id when it comes back, so a fire is
//! never lost and never doubled.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;

use super::model::{ScheduleSubmission, ScheduledJob, fire_run_id};
use super::trigger::{Trigger, TriggerError};
use crate::run::model::new_run_id;
use crate::store::{FireCause, FireRecord, FireState, NewFire, ScheduleRecord, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("the stored schedule is unreadable: {0}")]
    Spec(#[from] serde_json::Error),
    #[error("trigger `{}`: {} ({})", .0.field, .0.message, .0.help)]
    Trigger(TriggerError),
    #[error("schedule `{0}` is enabled; disable it first with `tug schedule disable {0}`")]
    Enabled(String),
    #[error("schedule `{0}` would never fire: no occurrence lies ahead")]
    Never(String),
    #[error(
        "`{0}` cannot name a schedule: use letters, digits, `_` and `-`, starting with a letter or digit"
    )]
    BadName(String),
    #[error("the scheduled {kind} job cannot run: {message}")]
    Job { kind: &'static str, message: String },
}

/// How long the task sleeps at most before it looks again (the clock may have jumped).
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// Submits a scheduled job: the server's own create paths (runner, sweep and pipeline
/// controllers), so a fire is a submission like any other.
pub trait Submit: Send + Sync {
    fn submit(&self, job: ScheduledJob) -> Result<String, SubmitError>;
    /// Checks a job as its create path would, without creating anything.
    fn check(&self, job: &ScheduledJob) -> Result<(), String>;
}

#[derive(Debug)]
pub enum SubmitError {
    /// A run with that id exists: the fire was already submitted.
    Exists,
    Other(String),
}

pub struct Controller {
    store: Arc<Store>,
    submit: Arc<dyn Submit>,
    wake: Notify,
    enabled: AtomicUsize,
    /// An occurrence before this passed while no server ran.
    started: Timestamp,
    /// Held by a pass and by every API change: a pass never fires from a copy of a
    /// schedule that was disabled, deleted or replaced meanwhile.
    op: std::sync::Mutex<()>,
}

impl Controller {
    pub fn new(store: Arc<Store>, submit: Arc<dyn Submit>) -> Controller {
        Controller {
            store,
            submit,
            wake: Notify::new(),
            enabled: AtomicUsize::new(0),
            started: Timestamp::now(),
            op: std::sync::Mutex::new(()),
        }
    }

    /// Schedules that are enabled and have occurrences ahead: while there are any, the
    /// server must not exit when idle.
    pub fn enabled(&self) -> usize {
        self.enabled.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.op.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn recount(&self) -> Result<(), Error> {
        let n = self
            .store
            .schedules()?
            .iter()
            .filter(|s| s.enabled && s.next_fire.is_some())
            .count();
        self.enabled.store(n, Ordering::SeqCst);
        Ok(())
    }

    /// Creates or replaces a schedule. Its next fire is the first occurrence after now.
    pub fn put(&self, sub: ScheduleSubmission) -> Result<(ScheduleRecord, bool), Error> {
        let _op = self.lock();
        if !crate::run::model::valid_run_id(&sub.name) {
            return Err(Error::BadName(sub.name));
        }
        let now = Timestamp::now();
        let trigger = Trigger::compile(&sub.trigger, now).map_err(Error::Trigger)?;
        // The first occurrence at or after the later of now and the start, and after
        // any occurrence already fired (a schedule replaced right after a fire).
        let mut from = now.max(trigger.start) - jiff::SignedDuration::from_secs(1);
        if let Some(last) = self
            .store
            .schedule_fires(&sub.name, 20)?
            .iter()
            .filter(|f| f.cause != FireCause::Manual)
            .filter_map(|f| f.occurrence.parse::<Timestamp>().ok())
            .max()
        {
            from = from.max(last);
        }
        let Some(next) = trigger.next_after(from) else {
            return Err(Error::Never(sub.name));
        };
        self.submit.check(&sub.job).map_err(|message| Error::Job {
            kind: sub.job.kind(),
            message,
        })?;
        // The start is fixed now, so a later server counts intervals from the same point.
        let mut stored = sub;
        set_start(&mut stored, trigger.start);
        let created = self.store.put_schedule(
            &stored.name,
            &serde_json::to_value(&stored)?,
            &trigger.start.to_string(),
            Some(&next.to_string()),
        )?;
        self.recount()?;
        self.wake.notify_one();
        Ok((self.store.schedule(&stored.name)?, created))
    }

    pub fn enable(&self, name: &str) -> Result<ScheduleRecord, Error> {
        let _op = self.lock();
        let rec = self.store.schedule(name)?;
        let trigger = trigger_of(&rec)?;
        // Occurrences while it was disabled are not fires that were missed.
        let next = trigger.next_after(Timestamp::now());
        let rec =
            self.store
                .set_schedule_enabled(name, true, next.map(|t| t.to_string()).as_deref())?;
        self.recount()?;
        self.wake.notify_one();
        Ok(rec)
    }

    pub fn disable(&self, name: &str) -> Result<ScheduleRecord, Error> {
        let _op = self.lock();
        let rec = self.store.schedule(name)?;
        let rec = self
            .store
            .set_schedule_enabled(name, false, rec.next_fire.as_deref())?;
        self.recount()?;
        Ok(rec)
    }

    /// Deletes a disabled schedule (Azure ML's rule: disable first, so that deleting is a
    /// decision and not a typo).
    pub fn delete(&self, name: &str) -> Result<(), Error> {
        let _op = self.lock();
        if self.store.schedule(name)?.enabled {
            return Err(Error::Enabled(name.to_string()));
        }
        self.store.delete_schedule(name)?;
        self.recount()
    }

    /// Fires a schedule now, whether enabled or not; its next occurrence stays.
    pub fn trigger(&self, name: &str) -> Result<FireRecord, Error> {
        let _op = self.lock();
        let rec = self.store.schedule(name)?;
        let sub: ScheduleSubmission = serde_json::from_value(rec.spec.clone())?;
        let now = Timestamp::from_second(Timestamp::now().as_second())
            .unwrap_or_else(|_| Timestamp::now());
        let run_id = new_run_id();
        let fire = self.store.begin_fire(
            name,
            &NewFire {
                occurrence: &now.to_string(),
                run_id: &run_id,
                missed: 0,
                cause: FireCause::Manual,
                next_fire: None,
                note: None,
            },
        )?;
        Ok(self.submit_fire(&sub, fire))
    }

    /// Submits fires a dead server wrote but may not have submitted, then drives the
    /// schedules until the server exits.
    pub fn start(self: &Arc<Self>) -> Result<usize, Error> {
        self.recount()?;
        let unfinished = self.store.unfinished_fires()?;
        for fire in &unfinished {
            match self.store.schedule(&fire.schedule) {
                Ok(rec) => {
                    let sub: ScheduleSubmission = serde_json::from_value(rec.spec)?;
                    tracing::info!(schedule = %fire.schedule, run = %fire.run_id, "submitting a fire the last server left unsubmitted");
                    self.submit_fire(&sub, fire.clone());
                }
                Err(_) => self.store.end_fire(
                    fire.seq,
                    FireState::Failed,
                    Some("the schedule was deleted before its job was submitted"),
                )?,
            }
        }
        let me = self.clone();
        tokio::spawn(async move { me.run().await });
        Ok(unfinished.len())
    }

    async fn run(self: Arc<Self>) {
        loop {
            let sleep = match self.pass() {
                Ok(next) => next
                    .map(|t| {
                        let ms = t.as_millisecond() - Timestamp::now().as_millisecond();
                        Duration::from_millis(ms.max(0) as u64)
                    })
                    .unwrap_or(MAX_SLEEP)
                    .min(MAX_SLEEP),
                Err(e) => {
                    tracing::warn!(error = %e, "schedules: a pass failed; retrying");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
            }
        }
    }

    /// Fires every due schedule once; returns the earliest next occurrence.
    fn pass(&self) -> Result<Option<Timestamp>, Error> {
        let _op = self.lock();
        let now = Timestamp::now();
        let mut earliest: Option<Timestamp> = None;
        for rec in self.store.schedules()? {
            if !rec.enabled {
                continue;
            }
            let Some(next) = rec
                .next_fire
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
            else {
                continue;
            };
            let next = match self.fire_if_due(&rec, next, now) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(schedule = %rec.name, error = %e, "schedule could not fire");
                    Some(next.max(now) + jiff::SignedDuration::from_secs(5))
                }
            };
            if let Some(n) = next {
                earliest = Some(earliest.map_or(n, |e| e.min(n)));
            }
        }
        self.recount()?;
        Ok(earliest)
    }

    fn fire_if_due(
        &self,
        rec: &ScheduleRecord,
        next: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Timestamp>, Error> {
        let trigger = trigger_of(rec)?;
        let Some(due) = trigger.due(next, now) else {
            return Ok(Some(next));
        };
        let sub: ScheduleSubmission = serde_json::from_value(rec.spec.clone())?;
        // Before this server started, or late by more than a grace period (a suspended
        // host): no server was there to fire it on time.
        let late = now.as_second() - due.occurrence.as_second() > LATE_AFTER.as_secs() as i64;
        let (cause, note) = if due.missed > 0 || late || due.occurrence < self.started {
            let count = due.missed + 1;
            let text = if count == 1 {
                format!(
                    "the occurrence at {} passed while no server ran; fired for it at {now}",
                    due.occurrence
                )
            } else {
                let many = if due.missed >= super::trigger::MAX_COUNTED {
                    format!("more than {}", super::trigger::MAX_COUNTED)
                } else {
                    count.to_string()
                };
                format!(
                    "{many} occurrences from {next} to {} passed while no server ran; fired once for them at {now}, as Azure ML does",
                    due.occurrence
                )
            };
            (FireCause::CatchUp, Some(text))
        } else {
            (FireCause::Schedule, None)
        };
        let run_id = fire_run_id(&rec.name, due.occurrence);
        let next_text = due.next.map(|t| t.to_string());
        let fire = self.store.begin_fire(
            &rec.name,
            &NewFire {
                occurrence: &due.occurrence.to_string(),
                run_id: &run_id,
                missed: due.missed,
                cause,
                next_fire: Some(next_text.as_deref()),
                note: note.as_deref(),
            },
        )?;
        tracing::info!(schedule = %rec.name, run = %run_id, missed = due.missed, "schedule fired");
        self.submit_fire(&sub, fire);
        Ok(due.next)
    }

    /// Submits a written fire's job and records how that went.
    fn submit_fire(&self, sub: &ScheduleSubmission, fire: FireRecord) -> FireRecord {
        let outcome = sub
            .job
            .for_run(&fire.run_id)
            .map_err(|e| SubmitError::Other(e.to_string()))
            .and_then(|job| self.submit.submit(job));
        let (state, error) = match outcome {
            Ok(_) | Err(SubmitError::Exists) => (FireState::Submitted, None),
            Err(SubmitError::Other(e)) => {
                tracing::warn!(schedule = %sub.name, run = %fire.run_id, error = %e, "scheduled job was not submitted");
                (FireState::Failed, Some(e))
            }
        };
        if let Err(e) = self.store.end_fire(fire.seq, state, error.as_deref()) {
            tracing::warn!(schedule = %sub.name, error = %e, "recording a fire");
        }
        FireRecord {
            state,
            error,
            ..fire
        }
    }
}

/// A fire this late was not made on time by a running server.
const LATE_AFTER: Duration = Duration::from_secs(60);

pub fn trigger_of(rec: &ScheduleRecord) -> Result<Trigger, Error> {
    let sub: ScheduleSubmission = serde_json::from_value(rec.spec.clone())?;
    let created = rec
        .start_at
        .parse::<Timestamp>()
        .unwrap_or_else(|_| Timestamp::now());
    Trigger::compile(&sub.trigger, created).map_err(Error::Trigger)
}

fn set_start(sub: &mut ScheduleSubmission, start: Timestamp) {
    use super::trigger::TriggerSpec;
    let window = match &mut sub.trigger {
        TriggerSpec::Cron { window, .. } | TriggerSpec::Recurrence { window, .. } => window,
    };
    if window.start_time.is_none() {
        window.start_time = Some(start.to_string());
    }
}

#[cfg(test)]
#[path = "tests_controller.rs"]
mod tests;
