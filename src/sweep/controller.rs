//! The sweep controller: one task per live sweep, the single writer of that sweep's state.
//!
//! Each pass reads the sweep and its trials from the store, decides with the pure functions
//! of `plan.rs`, the sampler and the policy, and carries the decisions out: stop trials the
//! policy names (the rule is stored on the trial before it is canceled), propose new trials
//! up to the limits (each stored with its index in one transaction, then driven by the
//! run [`Runner`]), and end the sweep when nothing is live and nothing more will come.
//! Because every decision is re-derived from the store and proposals are deterministic in
//! (seed, index, history), a server killed at any point resumes with no duplicate and no
//! lost trial.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::model::SweepSubmission;
use super::plan::{self, Stop, TrialSnapshot};
use super::policy;
use super::sampler::{self, Sampler};
use super::space::Params;
use crate::run::lifecycle::{self, Runner};
use crate::run::model::{RunStatus, new_run_id, valid_run_id};
use crate::store::{RunRecord, Store, Transition, TrialInsert};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Run(#[from] lifecycle::Error),
    #[error("the sweep's sampler: {0}")]
    Sampler(#[from] sampler::SamplerError),
    #[error("the stored sweep definition is unreadable: {0}")]
    Spec(#[from] serde_json::Error),
    #[error(
        "`{0}` cannot name a sweep: use letters, digits, `_` and `-`, starting with a letter or digit"
    )]
    BadName(String),
}

/// How often a sweep looks again when nothing wakes it.
const TICK: Duration = Duration::from_secs(2);
/// The least time between two passes: metrics arrive in bursts.
const SETTLE: Duration = Duration::from_millis(200);
/// Store errors in a row a sweep rides out before it fails.
const MAX_PASS_ERRORS: u32 = 5;

/// What a sweep's task keeps between passes.
struct DriveState {
    /// Per trial: the last metric row read and the primary metric's values so far.
    series: HashMap<String, (i64, Vec<f64>)>,
    best_stored: Option<String>,
}

pub struct Controller {
    store: Arc<Store>,
    runner: Arc<Runner>,
    tasks: crate::run::driver::Tasks,
}

impl Controller {
    pub fn new(store: Arc<Store>, runner: Arc<Runner>) -> Controller {
        Controller {
            store,
            runner,
            tasks: Default::default(),
        }
    }

    /// Sweeps being driven now.
    pub fn active(&self) -> usize {
        self.tasks.active()
    }

    /// Checks a sweep as far as can be before anything is stored, and draws its seed
    /// (the file's, or a new one kept with the sweep).
    pub fn prepare(&self, sub: &SweepSubmission) -> Result<u64, Error> {
        if let Some(name) = &sub.trial.name
            && !valid_run_id(name)
        {
            return Err(Error::BadName(name.clone()));
        }
        self.runner.validate(&sub.trial)?;
        Self::seed_for(sub)
    }

    /// The sweep's seed, once its space is known to suit its sampler: what a pipeline's
    /// sweep step needs when it starts, its trial checked when the pipeline was submitted
    /// (a trial that cannot run now fails as a trial, and the step with it).
    pub fn seed_for(sub: &SweepSubmission) -> Result<u64, Error> {
        let seed = match sub.sampling_algorithm {
            super::SamplingAlgorithm::Random { seed: Some(s), .. } => s,
            _ => u64::from_str_radix(&crate::workspace::random_hex(8), 16).unwrap_or(0),
        };
        // A space the sampler refuses is refused before anything is stored.
        sampler::sampler_for(&sub.sampling_algorithm, &sub.search_space, seed)?;
        Ok(seed)
    }

    /// Starts driving sweep `id`, stored by another controller (a pipeline's sweep step).
    pub fn adopt(self: &Arc<Self>, id: String) {
        self.spawn(id);
    }

    /// Checks and stores a new sweep, then starts driving it.
    pub fn submit(self: &Arc<Self>, sub: SweepSubmission) -> Result<RunRecord, Error> {
        let seed = self.prepare(&sub)?;
        let id = sub.trial.name.clone().unwrap_or_else(new_run_id);
        self.store
            .insert_sweep(&id, &sub.trial, &serde_json::to_value(&sub)?, seed)?;
        self.spawn(id.clone());
        Ok(self.store.run(&id)?)
    }

    /// Asks a sweep to stop: its live trials are canceled, then the sweep.
    pub fn cancel(&self, id: &str) -> Result<RunRecord, Error> {
        let rec = self.store.request_cancel(id)?;
        self.wake(id);
        Ok(rec)
    }

    fn wake(&self, id: &str) {
        self.tasks.wake(id);
    }

    /// Resumes every sweep the store says is live (after a restart). Trials themselves
    /// are resumed by the runner.
    pub fn reconcile(self: &Arc<Self>) -> Result<usize, Error> {
        let live = self.store.live_sweeps()?;
        for id in &live {
            tracing::info!(sweep = %id, "resuming sweep");
            self.spawn(id.clone());
        }
        Ok(live.len())
    }

    fn spawn(self: &Arc<Self>, id: String) {
        let me = self.clone();
        self.tasks.spawn(id.clone(), move |rx| async move {
            if let Err(e) = me.drive(&id, rx).await {
                tracing::error!(sweep = %id, error = %e, "sweep failed in tug itself");
                me.fail(&id, &format!("tug could not drive this sweep: {e}"));
            }
        });
    }

    /// Ends a sweep that cannot go on: its live trials are canceled first.
    fn fail(&self, id: &str, message: &str) {
        if let Ok(trials) = self.store.trials(id) {
            for t in trials.iter().filter(|t| !t.run.status.is_terminal()) {
                let _ = self.runner.cancel(&t.run.id);
            }
        }
        let _ = self.store.transition(
            id,
            RunStatus::Failed,
            Transition {
                error: Some(message.to_string()),
                ..Default::default()
            },
        );
    }

    async fn drive(&self, id: &str, wake: watch::Receiver<()>) -> Result<(), Error> {
        let record = self.store.sweep(id)?;
        let sub: SweepSubmission = serde_json::from_value(record.spec.clone())?;
        let sampler: Arc<dyn Sampler> =
            sampler::sampler_for(&sub.sampling_algorithm, &sub.search_space, record.seed)?.into();
        let mut state = DriveState {
            series: HashMap::new(),
            best_stored: record.best_trial.clone(),
        };
        let mut pacer = crate::run::driver::Pacer::new(&self.store, wake, TICK, SETTLE);
        let mut errors = 0;
        loop {
            match self.pass(id, &sub, &sampler, &mut state).await {
                Ok(true) => return Ok(()),
                Ok(false) => errors = 0,
                // The store can be busy for a moment; a pass is safe to repeat.
                Err(Error::Store(e)) if errors < MAX_PASS_ERRORS => {
                    errors += 1;
                    tracing::warn!(sweep = %id, error = %e, "sweep pass failed; retrying");
                }
                Err(e) => return Err(e),
            }
            // Wait for a change (a step's or trial's status, a metric), a cancel, or the tick.
            pacer.wait().await;
        }
    }

    /// One look at the sweep: halt, stop, propose or finish. True once the sweep has ended.
    async fn pass(
        &self,
        id: &str,
        sub: &SweepSubmission,
        sampler: &Arc<dyn Sampler>,
        state: &mut DriveState,
    ) -> Result<bool, Error> {
        let record = self.store.sweep(id)?;
        if record.run.status.is_terminal() {
            return Ok(true);
        }
        if record.run.status == RunStatus::Queued {
            self.store
                .transition(id, RunStatus::Running, Transition::default())?;
        }
        let run = self.store.run(id)?;
        let trials = self.snapshots(id, sub, &mut state.series)?;
        let live: Vec<&TrialSnapshot> = trials.iter().filter(|t| !t.status.is_terminal()).collect();
        let best = plan::best(&trials, &sub.objective).map(|t| t.run_id.clone());
        if best != state.best_stored {
            self.store.set_sweep_outcome(id, best.as_deref(), None)?;
            state.best_stored = best.clone();
        }
        let timed_out = sub.limits.timeout_seconds.is_some_and(|limit| {
            elapsed_since(run.started_at.as_deref()) >= Duration::from_secs(limit)
        });
        let halt = if run.cancel_requested {
            Some(Stop::Canceled)
        } else if timed_out {
            Some(Stop::TimedOut)
        } else if let Some(text) = &record.halt {
            Some(Stop::from_halt(text))
        } else if plan::failing(&trials) {
            self.halt(id, &Stop::Failing)?;
            Some(Stop::Failing)
        } else {
            None
        };
        if let Some(stop) = halt {
            // A failed sampler lets live trials finish; every other halt cancels them.
            if !matches!(stop, Stop::SamplerFailed(_)) {
                for t in &live {
                    self.runner.cancel(&t.run_id)?;
                }
            }
            if live.is_empty() {
                self.finish(id, stop, &trials, sub, best.as_deref())?;
                return Ok(true);
            }
            return Ok(false);
        }
        if let Some(rule) = &sub.early_termination {
            self.apply_policy(id, rule, sub, &trials)?;
        }
        let mut proposed = trials.len() as u64;
        let mut live_count = live.len() as u64;
        let mut exhausted = false;
        let mut history = plan::observations(&trials, sub.objective.goal);
        while plan::open_slots(&sub.limits, proposed, live_count) > 0 {
            // A Bayesian proposal fits Gaussian processes: keep it off the async threads.
            let (s, h) = (sampler.clone(), history.clone());
            let suggested = match tokio::task::spawn_blocking(move || s.suggest(proposed, &h)).await
            {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(e) => Err(format!("the sampler panicked: {e}")),
            };
            let params = match suggested {
                Ok(Some(params)) => params,
                Ok(None) => {
                    exhausted = true;
                    break;
                }
                Err(message) => {
                    tracing::error!(sweep = %id, error = %message, "the sampler failed");
                    self.halt(id, &Stop::SamplerFailed(message))?;
                    return Ok(false);
                }
            };
            if !self.start_trial(id, sub, proposed, &params)? {
                return Ok(false); // canceled meanwhile: the next pass winds down
            }
            history.push(super::space::Observation {
                params,
                state: super::space::TrialState::Pending,
            });
            proposed += 1;
            live_count += 1;
        }
        if live_count > 0 {
            return Ok(false);
        }
        let stop = if proposed >= sub.limits.max_total_trials {
            Stop::TotalReached
        } else if exhausted {
            Stop::Exhausted
        } else {
            return Ok(false);
        };
        self.finish(id, stop, &trials, sub, best.as_deref())?;
        Ok(true)
    }

    fn halt(&self, id: &str, stop: &Stop) -> Result<(), Error> {
        if let Some(text) = stop.halt_text() {
            tracing::warn!(sweep = %id, halt = %text, "the sweep stops proposing trials");
            self.store.set_sweep_halt(id, &text)?;
        }
        Ok(())
    }

    /// Reads the trials with their primary metric series (only the new points of each).
    fn snapshots(
        &self,
        id: &str,
        sub: &SweepSubmission,
        series: &mut HashMap<String, (i64, Vec<f64>)>,
    ) -> Result<Vec<TrialSnapshot>, Error> {
        let metric = sub.objective.primary_metric.as_str();
        let mut out = Vec::new();
        for t in self.store.trials(id)? {
            let (after, values) = series.entry(t.run.id.clone()).or_default();
            for (row, point) in self.store.metrics(&t.run.id, Some(metric), *after)? {
                *after = row;
                values.push(point.value);
            }
            out.push(TrialSnapshot {
                index: t.index,
                run_id: t.run.id,
                status: t.run.status,
                params: t.params.into_iter().collect(),
                series: values.clone(),
                // A trial that completed was not stopped, whatever raced with its end.
                stopped_by: t
                    .stopped_by
                    .filter(|_| t.run.status != RunStatus::Completed),
            });
        }
        Ok(out)
    }

    fn apply_policy(
        &self,
        id: &str,
        rule: &policy::EarlyTermination,
        sub: &SweepSubmission,
        trials: &[TrialSnapshot],
    ) -> Result<(), Error> {
        // Only a trial whose script runs can be stopped; one that is finishing is done.
        let running =
            |t: &TrialSnapshot| matches!(t.status, RunStatus::Starting | RunStatus::Running);
        for t in trials
            .iter()
            .filter(|t| running(t) && t.stopped_by.is_some())
        {
            // Stopped before a restart that came before the cancel: send it again.
            self.runner.cancel(&t.run_id)?;
        }
        let progress: Vec<policy::TrialProgress> = trials
            .iter()
            .map(|t| policy::TrialProgress {
                id: t.run_id.clone(),
                running: running(t),
                metrics: t.series.clone(),
            })
            .collect();
        for decision in policy::evaluate(rule, sub.objective.goal, &progress) {
            let Some(t) = trials.iter().find(|t| t.run_id == decision.id) else {
                continue;
            };
            if t.stopped_by.is_some() {
                continue;
            }
            // Stored before the cancel, and only while the trial runs: a restart in
            // between still knows why, and a trial that already ended keeps its result.
            if self
                .store
                .set_trial_stopped(id, t.index, &decision.reason)?
            {
                tracing::info!(sweep = %id, trial = %t.run_id, reason = %decision.reason, "early termination");
                self.runner.cancel(&t.run_id)?;
            }
        }
        Ok(())
    }

    /// Stores and starts trial `index`; false when the sweep is stopping.
    fn start_trial(
        &self,
        id: &str,
        sub: &SweepSubmission,
        index: u64,
        params: &Params,
    ) -> Result<bool, Error> {
        let json: serde_json::Map<String, serde_json::Value> =
            params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let nonce = crate::workspace::random_hex(12);
        let mut run_id = plan::trial_run_id(id, index);
        let mut trial = plan::trial_submission(sub, id, index, params);
        let inserted = loop {
            match self
                .store
                .insert_trial(id, index, &run_id, &trial, &nonce, &json)
            {
                // Another run already has the name (a job named like a trial): the index,
                // not the name, is the trial's identity.
                Err(crate::store::Error::RunExists(_)) => {
                    run_id = format!(
                        "{}_{}",
                        plan::trial_run_id(id, index),
                        crate::workspace::random_hex(2)
                    );
                    trial.name = Some(run_id.clone());
                }
                other => break other?,
            }
        };
        match inserted {
            TrialInsert::Inserted => {
                tracing::info!(sweep = %id, trial = %run_id, ?params, "trial proposed");
                self.runner.spawn(run_id);
                Ok(true)
            }
            TrialInsert::IndexTaken => Ok(true),
            TrialInsert::SweepStopping => Ok(false),
        }
    }

    fn finish(
        &self,
        id: &str,
        stop: Stop,
        trials: &[TrialSnapshot],
        sub: &SweepSubmission,
        best: Option<&str>,
    ) -> Result<(), Error> {
        let (mut status, mut note) = plan::ending(stop, trials, &sub.limits);
        if status == RunStatus::Completed
            && let Err(why) = self.take_best_outputs(id, sub, best)
        {
            // A pipeline's steps after a sweep step read its outputs: without them it has
            // failed. A sweep of its own has done what it was asked; the note says the rest.
            if self.store.run(id)?.parent_id.is_some() {
                status = RunStatus::Failed;
            }
            note = format!("{note}; {why}");
        }
        self.store.set_sweep_outcome(id, best, Some(&note))?;
        self.store.transition(
            id,
            status,
            Transition {
                error: (status == RunStatus::Failed).then(|| note.clone()),
                ..Default::default()
            },
        )?;
        tracing::info!(sweep = %id, %status, %note, "sweep ended");
        Ok(())
    }
}

impl Controller {
    /// The best trial's named outputs become the sweep's own (Azure's rule), linked file by
    /// file into the sweep's folder and published at its datastore paths, so a pipeline
    /// step after the sweep, or one reusing it, reads them as any run's outputs.
    fn take_best_outputs(
        &self,
        id: &str,
        sub: &SweepSubmission,
        best: Option<&str>,
    ) -> Result<(), String> {
        let own = self.runner.ws.run_dir(id);
        std::fs::create_dir_all(&own).map_err(|e| format!("creating {}: {e}", own.display()))?;
        if sub.trial.outputs.is_empty() {
            return Ok(());
        }
        let Some(best) = best else {
            return Err(format!(
                "no trial completed with a value of `{}`, so there is no best trial whose outputs are the sweep's",
                sub.objective.primary_metric
            ));
        };
        let from = self.runner.ws.run_dir(best).join("named-outputs");
        let to = own.join("named-outputs");
        for name in sub.trial.outputs.keys() {
            let (src, dest) = (from.join(name), to.join(name));
            if !src.exists() || dest.exists() {
                continue;
            }
            // Into a fresh name, then renamed: a restart mid-copy leaves no half copy.
            let partial = to.join(format!(".{name}.partial"));
            let _ = std::fs::remove_dir_all(&partial);
            crate::datastore::upload::link_or_copy(&src, &partial)
                .and_then(|()| std::fs::rename(&partial, &dest))
                .map_err(|e| format!("taking output `{name}` of best trial `{best}`: {e}"))?;
        }
        crate::run::publish::publish(
            &crate::datastore::upload::workspace_datastore(&self.runner.ws),
            &own,
            id,
            &sub.trial,
        )
        .map_err(|e| format!("writing outputs to the datastore failed: {e}"))
    }
}

fn elapsed_since(started: Option<&str>) -> Duration {
    started
        .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}
