//! The pipeline controller: one task per live pipeline, the single writer of that
//! pipeline's state, built like the sweep controller.
//!
//! Each pass reads the pipeline's steps from the store, decides with the pure
//! [`graph::next`] what starts, what is canceled and skipped and whether the pipeline has
//! ended, and carries it out. A step that may start is fingerprinted from the files it
//! will read (code, data, upstream outputs) and decided with [`reuse::decide`]: reused
//! from an earlier completed run with the same fingerprint, or started as a child run.
//! Either is stored in one transaction with the step's row, so a server killed at any
//! point resumes with no step decided twice and none lost. `tug job plan` asks the same
//! [`Controller::plan`] the questions the pass asks, before anything runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::fingerprint::{self, HashCache};
use super::graph::{self, Graph, PipelineEnd, StepState};
use super::model::{PipelineSubmission, StepSubmission};
use super::reuse::{self, DataContent, Decision, Fingerprint, Prior, ReusePolicy};
use crate::run::lifecycle::{self, Runner};
use crate::run::model::{InputBinding, JobSubmission, RunStatus, new_run_id, valid_run_id};
use crate::store::{RunRecord, StepDecision, StepRecord, StepRow, StepStart, Store, Transition};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("step `{step}`: {source}")]
    Step {
        step: String,
        source: lifecycle::Error,
    },
    #[error(transparent)]
    Run(#[from] lifecycle::Error),
    #[error("the stored pipeline definition is unreadable: {0}")]
    Spec(#[from] serde_json::Error),
    #[error("the pipeline's steps do not form a valid graph: {0}")]
    Graph(String),
    #[error(
        "`{0}` cannot name a pipeline: use letters, digits, `_` and `-`, starting with a letter or digit"
    )]
    BadName(String),
    #[error("step `{step}`: {message}")]
    Fingerprint { step: String, message: String },
    #[error("step `{step}`: {source}")]
    Sweep {
        step: String,
        source: Box<crate::sweep::controller::Error>,
    },
}

/// How often a pipeline looks again when nothing wakes it.
const TICK: Duration = Duration::from_secs(2);
/// The least time between two passes: a step's end is a burst of store writes, and the
/// next step waits on this, so it is short.
const SETTLE: Duration = Duration::from_millis(20);
/// Store errors in a row a pipeline rides out before it fails.
const MAX_PASS_ERRORS: u32 = 5;

pub struct Controller {
    store: Arc<Store>,
    runner: Arc<Runner>,
    /// Drives sweep steps, as it drives any sweep.
    sweeps: Arc<crate::sweep::controller::Controller>,
    tasks: crate::run::driver::Tasks,
    hashes: HashCache,
}

/// One step of a plan: what the controller would do with it now, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedStep {
    pub step: String,
    /// `reuse`, `run` or `wait`.
    pub action: String,
    /// The earlier run a reused step takes its outputs from.
    #[serde(default)]
    pub reuse: Option<String>,
    pub reason: String,
    /// The decision as data: `{decision, reason: {why, changes}}`.
    pub decision: serde_json::Value,
    /// The fingerprint's hash, once every input is known.
    #[serde(default)]
    pub key: Option<String>,
}

impl Controller {
    pub fn new(
        store: Arc<Store>,
        runner: Arc<Runner>,
        sweeps: Arc<crate::sweep::controller::Controller>,
    ) -> Controller {
        Controller {
            store,
            runner,
            sweeps,
            tasks: Default::default(),
            hashes: HashCache::default(),
        }
    }

    /// Pipelines being driven now.
    pub fn active(&self) -> usize {
        self.tasks.active()
    }

    /// Checks a submission as far as the server can before anything runs.
    pub fn check(&self, sub: &PipelineSubmission) -> Result<Graph, Error> {
        if let Some(name) = &sub.name
            && !valid_run_id(name)
        {
            return Err(Error::BadName(name.clone()));
        }
        let graph = sub.checked_graph().map_err(Error::Graph)?;
        for (name, step) in &sub.steps {
            self.runner
                .validate(&step.checkable())
                .map_err(|source| Error::Step {
                    step: name.clone(),
                    source,
                })?;
            if let Some(sweep) = step.sweep_submission(step.checkable()) {
                crate::sweep::controller::Controller::seed_for(&sweep).map_err(|source| {
                    Error::Sweep {
                        step: name.clone(),
                        source: Box::new(source),
                    }
                })?;
            }
        }
        Ok(graph)
    }

    /// Checks and stores a new pipeline, then starts driving it.
    pub fn submit(self: &Arc<Self>, sub: PipelineSubmission) -> Result<RunRecord, Error> {
        let graph = self.check(&sub)?;
        let id = sub.name.clone().unwrap_or_else(new_run_id);
        let mut parent = sub.parent_submission();
        parent.name = Some(id.clone());
        self.store
            .insert_pipeline(&id, &parent, &serde_json::to_value(&sub)?, graph.order())?;
        tracing::info!(pipeline = %id, steps = sub.steps.len(), "pipeline submitted");
        self.spawn(id.clone());
        Ok(self.store.run(&id)?)
    }

    /// Asks a pipeline to stop: its live steps are canceled, then the pipeline.
    pub fn cancel(&self, id: &str) -> Result<RunRecord, Error> {
        let rec = self.store.request_cancel(id)?;
        self.wake(id);
        Ok(rec)
    }

    fn wake(&self, id: &str) {
        self.tasks.wake(id);
    }

    /// Resumes every pipeline the store says is live (after a restart). Step runs are
    /// resumed by the runner.
    pub fn reconcile(self: &Arc<Self>) -> Result<usize, Error> {
        let live = self.store.live_pipelines()?;
        for id in &live {
            tracing::info!(pipeline = %id, "resuming pipeline");
            self.spawn(id.clone());
        }
        Ok(live.len())
    }

    fn spawn(self: &Arc<Self>, id: String) {
        let me = self.clone();
        self.tasks.spawn(id.clone(), move |rx| async move {
            if let Err(e) = me.drive(&id, rx).await {
                tracing::error!(pipeline = %id, error = %e, "pipeline failed in tug itself");
                me.fail(&id, &format!("tug could not drive this pipeline: {e}"));
            }
        });
    }

    /// Ends a pipeline that cannot go on: its live steps are canceled first.
    fn fail(&self, id: &str, message: &str) {
        if let Ok(steps) = self.store.pipeline_steps(id) {
            for r in steps.iter().filter_map(|s| s.run.as_ref()) {
                if !r.status.is_terminal() {
                    let _ = self.cancel_run(r);
                }
            }
        }
        let _ = self.store.set_pipeline_note(id, message);
        let _ = self.store.transition(
            id,
            RunStatus::Failed,
            Transition {
                error: Some(message.to_string()),
                ..Default::default()
            },
        );
    }

    /// Cancels a step's run, through the controller that drives it.
    fn cancel_run(&self, run: &RunRecord) -> Result<(), Error> {
        if run.kind == "sweep" {
            self.sweeps.cancel(&run.id).map_err(|source| Error::Sweep {
                step: run.id.clone(),
                source: Box::new(source),
            })?;
        } else {
            self.runner.cancel(&run.id)?;
        }
        Ok(())
    }

    async fn drive(&self, id: &str, wake: watch::Receiver<()>) -> Result<(), Error> {
        let record = self.store.pipeline(id)?;
        let sub: PipelineSubmission = serde_json::from_value(record.spec)?;
        let graph = sub.checked_graph().map_err(Error::Graph)?;
        let mut pacer = crate::run::driver::Pacer::new(&self.store, wake, TICK, SETTLE);
        let mut errors = 0;
        loop {
            match self.pass(id, &sub, &graph).await {
                Ok(true) => return Ok(()),
                Ok(false) => errors = 0,
                Err(Error::Store(e)) if errors < MAX_PASS_ERRORS => {
                    errors += 1;
                    tracing::warn!(pipeline = %id, error = %e, "pipeline pass failed; retrying");
                }
                Err(e) => return Err(e),
            }
            // Wait for a change (a step's or trial's status, a metric), a cancel, or the tick.
            pacer.wait().await;
        }
    }

    /// One look at the pipeline. True once it has ended.
    async fn pass(&self, id: &str, sub: &PipelineSubmission, graph: &Graph) -> Result<bool, Error> {
        // Reusing a step can make the next one startable at once: decide again until a
        // pass changes nothing, so a fully reused pipeline ends in one pass.
        loop {
            let run = self.store.run(id)?;
            if run.status.is_terminal() {
                return Ok(true);
            }
            if run.status == RunStatus::Queued {
                self.store
                    .transition(id, RunStatus::Running, Transition::default())?;
            }
            let steps = self.store.pipeline_steps(id)?;
            let states = step_states(&steps);
            if run.cancel_requested {
                return self.wind_down(id, &steps);
            }
            let next = graph::next(
                graph,
                &states,
                sub.settings.continue_on_step_failure,
                sub.settings.max_concurrent_steps,
            );
            for step in &next.cancel {
                if let Some(r) = run_of(&steps, step) {
                    tracing::info!(pipeline = %id, %step, "canceling step: another step failed");
                    self.cancel_run(r)?;
                }
            }
            for (step, why) in &next.skip {
                tracing::info!(pipeline = %id, %step, reason = %why, "skipping step");
                self.store.skip_step(id, step, why)?;
            }
            if let Some(end) = next.end {
                self.finish(id, end)?;
                return Ok(true);
            }
            let mut reused = false;
            for step in &next.start {
                match self.start(id, &run.experiment, sub, step, &steps).await? {
                    Started::Reused => reused = true,
                    Started::Ran => {}
                    Started::Stopping => return Ok(false),
                }
            }
            if !reused && next.skip.is_empty() {
                return Ok(false);
            }
        }
    }

    /// A canceled pipeline: live steps canceled, waiting ones skipped, and the end once
    /// nothing runs.
    fn wind_down(&self, id: &str, steps: &[StepRecord]) -> Result<bool, Error> {
        let mut live = 0;
        for s in steps {
            match (&s.run, s.row) {
                (Some(r), _) if !r.status.is_terminal() => {
                    self.cancel_run(r)?;
                    live += 1;
                }
                (None, StepRow::Waiting) => {
                    self.store
                        .skip_step(id, &s.step, "the pipeline was canceled")?;
                }
                _ => {}
            }
        }
        if live > 0 {
            return Ok(false);
        }
        self.finish(id, PipelineEnd::Canceled)?;
        Ok(true)
    }

    fn finish(&self, id: &str, end: PipelineEnd) -> Result<(), Error> {
        // Read again: this pass may have skipped steps since its first read.
        let steps = &self.store.pipeline_steps(id)?;
        let states = &step_states(steps);
        let count = |st: StepState| states.values().filter(|s| **s == st).count();
        let mut note = format!(
            "{} steps: {} ran, {} reused",
            steps.len(),
            count(StepState::Completed),
            count(StepState::Reused)
        );
        for (label, st) in [
            ("failed", StepState::Failed),
            ("canceled", StepState::Canceled),
        ] {
            if count(st) > 0 {
                note.push_str(&format!(", {} {label}", count(st)));
            }
        }
        let skipped = steps.iter().filter(|s| s.row == StepRow::Skipped).count();
        if skipped > 0 {
            note.push_str(&format!(", {skipped} skipped"));
        }
        let failed: Vec<&str> = steps
            .iter()
            .filter(|s| states.get(&s.step) == Some(&StepState::Failed))
            .map(|s| s.step.as_str())
            .collect();
        let status = match end {
            PipelineEnd::Completed => RunStatus::Completed,
            PipelineEnd::Failed => RunStatus::Failed,
            PipelineEnd::Canceled => RunStatus::Canceled,
        };
        let error = (status == RunStatus::Failed).then(|| {
            if failed.is_empty() {
                format!("the pipeline did not complete: {note}")
            } else {
                format!("step `{}` failed ({note})", failed.join("`, `"))
            }
        });
        self.store.set_pipeline_note(id, &note)?;
        self.store.transition(
            id,
            status,
            Transition {
                error,
                ..Default::default()
            },
        )?;
        tracing::info!(pipeline = %id, %status, %note, "pipeline ended");
        Ok(())
    }

    /// Decides one step that may start and carries the decision out.
    async fn start(
        &self,
        id: &str,
        experiment: &str,
        sub: &PipelineSubmission,
        name: &str,
        steps: &[StepRecord],
    ) -> Result<Started, Error> {
        let step = &sub.steps[name];
        let outputs_of = |s: &str| {
            steps
                .iter()
                .find(|r| r.step == s)
                .and_then(|r| r.outputs_run().map(str::to_string))
        };
        let upstream: BTreeMap<String, Option<String>> = step
            .bound
            .values()
            .map(|(from, _)| (from.clone(), outputs_of(from)))
            .collect();
        let (job, missing) = self.resolve_inputs(step, &upstream, false);
        if let Some(why) = missing {
            tracing::warn!(pipeline = %id, step = %name, reason = %why, "skipping step");
            self.store.skip_step(id, name, &why)?;
            return Ok(Started::Ran);
        }
        let (fp, decision) = self
            .decide_or_run(
                name,
                step,
                &job,
                sub.settings.force_rerun,
                experiment,
                Some(id),
            )
            .await?;
        let fp_json = serde_json::to_value(&fp)?;
        let decision_json = serde_json::to_value(&decision)?;
        let reason = decision.why();
        let key = fp.as_ref().and_then(Fingerprint::key);
        let decided = StepDecision {
            fingerprint: &fp_json,
            key: key.as_deref(),
            decision: &decision_json,
            reason: &reason,
        };
        match &decision {
            Decision::Reuse { run } => {
                tracing::info!(pipeline = %id, step = %name, from = %run, "step reused");
                match self.store.reuse_step(id, name, run, &decided)? {
                    StepStart::PipelineStopping => Ok(Started::Stopping),
                    StepStart::Done => {
                        self.copy_reused_outputs(id, name, run, &job);
                        Ok(Started::Reused)
                    }
                    StepStart::Taken => Ok(Started::Reused),
                }
            }
            Decision::Run { .. } => {
                let mut run_id = format!("{id}_{name}");
                let mut job = job;
                job.name = Some(run_id.clone());
                // `${{name}}` in a datastore path is the pipeline's name, as in Azure's
                // files; the fingerprint saw it unexpanded, so reuse does not depend on it.
                for out in job.outputs.values_mut() {
                    if let Some(p) = &mut out.datastore_path {
                        *p = super::binding::expand_name(p, id);
                    }
                }
                job.experiment_name = experiment.to_string();
                let nonce = crate::workspace::random_hex(12);
                let started = loop {
                    let stored = match step.sweep_submission(job.clone()) {
                        Some(sweep) => {
                            let seed =
                                self.sweeps.prepare(&sweep).map_err(|source| Error::Sweep {
                                    step: name.to_string(),
                                    source: Box::new(source),
                                })?;
                            self.store.start_sweep_step(
                                id,
                                name,
                                &run_id,
                                &sweep.trial,
                                &serde_json::to_value(&sweep)?,
                                seed,
                                &decided,
                            )
                        }
                        None => self
                            .store
                            .start_step(id, name, &run_id, &job, &nonce, &decided),
                    };
                    match stored {
                        // A job already has the name: the row, not the name, is the identity.
                        Err(crate::store::Error::RunExists(_)) => {
                            run_id = format!("{id}_{name}_{}", crate::workspace::random_hex(2));
                            job.name = Some(run_id.clone());
                        }
                        other => break other?,
                    }
                };
                match started {
                    StepStart::Done => {
                        tracing::info!(pipeline = %id, step = %name, run = %run_id, %reason, "step started");
                        if step.sweep.is_some() {
                            self.sweeps.adopt(run_id);
                        } else {
                            self.runner.spawn(run_id);
                        }
                        Ok(Started::Ran)
                    }
                    StepStart::Taken => Ok(Started::Ran),
                    StepStart::PipelineStopping => Ok(Started::Stopping),
                }
            }
            // A step starts only once what it reads exists; a submission that binds an
            // input to a step output it does not declare would wait forever.
            Decision::WaitFor { step: upstream } => Err(Error::Fingerprint {
                step: name.to_string(),
                message: format!(
                    "it reads an output of `{upstream}` that the pipeline does not bind; resubmit the pipeline"
                ),
            }),
        }
    }

    /// A reused step's outputs go where this pipeline's outputs say (`${{name}}` this
    /// pipeline's name), as the run's own did for its pipeline. A copy that fails leaves
    /// the step reused and says why in the log: the outputs themselves are the earlier run's.
    fn copy_reused_outputs(&self, id: &str, step: &str, run: &str, job: &JobSubmission) {
        let mut job = job.clone();
        job.outputs.retain(|_, o| o.datastore_path.is_some());
        if job.outputs.is_empty() {
            return;
        }
        for out in job.outputs.values_mut() {
            if let Some(p) = &mut out.datastore_path {
                *p = super::binding::expand_name(p, id);
            }
        }
        if let Err(e) = crate::run::publish::publish(
            &crate::datastore::upload::workspace_datastore(&self.runner.ws),
            &self.runner.ws.run_dir(run),
            run,
            &job,
        ) {
            tracing::warn!(pipeline = %id, %step, from = %run, error = %e, "copying a reused step's outputs failed");
        }
    }

    /// The step's job with each bound input at the host path of the run whose outputs
    /// stand for the upstream step; or why it cannot be had (the output was not written).
    /// `dry` (a plan): nothing is created, not even an empty output folder.
    fn resolve_inputs(
        &self,
        step: &StepSubmission,
        upstream: &BTreeMap<String, Option<String>>,
        dry: bool,
    ) -> (JobSubmission, Option<String>) {
        let mut missing = None;
        let job = step.resolved(|from, output| {
            let Some(Some(run)) = upstream.get(from) else {
                return crate::spec::step_output_uri(from, output);
            };
            let path = self.output_path(step, run, from, output);
            if !path.exists() {
                // An empty folder output is an empty folder; a file output must be there.
                if step_reads_file(step, from, output) {
                    missing.get_or_insert(format!(
                        "step `{from}` wrote no file to its output `{output}` (uri_file)"
                    ));
                } else if !dry {
                    let _ = std::fs::create_dir_all(&path);
                }
            }
            path.display().to_string()
        });
        (job, missing)
    }

    fn output_path(&self, step: &StepSubmission, run: &str, from: &str, output: &str) -> PathBuf {
        let folder = self
            .runner
            .ws
            .run_dir(run)
            .join("named-outputs")
            .join(output);
        if step_reads_file(step, from, output) {
            folder.join(output)
        } else {
            folder
        }
    }

    /// The fingerprint of `step` run as `job`, and what to do with it.
    async fn decide(
        &self,
        name: &str,
        step: &StepSubmission,
        job: &JobSubmission,
        force_rerun: bool,
        experiment: &str,
        pipeline: Option<&str>,
    ) -> Result<(Fingerprint, Decision), Error> {
        let fp = self
            .fingerprint(name, step, job, pipeline.is_some())
            .await?;
        let policy = ReusePolicy {
            force_rerun,
            not_deterministic: !step.is_deterministic,
        };
        let candidates = match fp.key() {
            Some(key) => self.store.completed_steps_with_key(&key)?,
            None => vec![],
        };
        let same_key = candidates.iter().find(|run| self.outputs_exist(run));
        // Same content ran before, but no such run can be used now: say why.
        let unusable = match (same_key, candidates.first()) {
            (None, Some(run)) => Some(reuse::Unusable::OutputsGone { run: run.clone() }),
            _ => None,
        };
        let latest = self
            .store
            .latest_step_fingerprint(experiment, name, pipeline)?
            .and_then(|(run_id, v)| {
                serde_json::from_value(v).ok().map(|fingerprint| Prior {
                    run_id,
                    fingerprint,
                })
            });
        let decision = reuse::decide(
            &fp,
            policy,
            same_key.map(String::as_str),
            unusable,
            latest.as_ref(),
        );
        Ok((fp, decision))
    }

    /// [`Controller::decide`], except that a step whose inputs cannot be read to compare
    /// (a folder gone, the engine away) runs, so that its own run fails or succeeds on
    /// its merits and `continue_on_step_failure` applies, instead of failing the pipeline.
    #[allow(clippy::too_many_arguments)]
    async fn decide_or_run(
        &self,
        name: &str,
        step: &StepSubmission,
        job: &JobSubmission,
        force_rerun: bool,
        experiment: &str,
        pipeline: Option<&str>,
    ) -> Result<(Option<Fingerprint>, Decision), Error> {
        match self
            .decide(name, step, job, force_rerun, experiment, pipeline)
            .await
        {
            Ok((fp, decision)) => Ok((Some(fp), decision)),
            Err(Error::Fingerprint { message, .. }) => {
                tracing::warn!(step = %name, %message, "cannot fingerprint the step; it runs");
                Ok((
                    None,
                    Decision::Run {
                        reason: reuse::Reason::Unreadable { message },
                    },
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// Whether `run`'s outputs are still on disk: a reused step's are read later.
    fn outputs_exist(&self, run: &str) -> bool {
        self.runner.ws.run_dir(run).is_dir()
    }

    async fn fingerprint(
        &self,
        name: &str,
        step: &StepSubmission,
        job: &JobSubmission,
        pull: bool,
    ) -> Result<Fingerprint, Error> {
        let fail = |message: String| Error::Fingerprint {
            step: name.to_string(),
            message,
        };
        let environment = self
            .runner
            .environment_hash(&job.environment, pull)
            .await
            .map_err(|e| fail(format!("its environment: {e}")))?;
        let code = match &job.code_snapshot {
            Some(sha) => match self.hashes.snapshot(sha) {
                Some(c) => c,
                None => {
                    let bytes = self
                        .runner
                        .snapshot_bytes(sha)
                        .map_err(|e| fail(e.to_string()))?;
                    let c = fingerprint::hash_snapshot(&bytes)
                        .map_err(|e| fail(format!("reading its code snapshot: {e}")))?;
                    self.hashes.remember_snapshot(sha, &c);
                    c
                }
            },
            None => BTreeMap::new(),
        };
        let mut data = BTreeMap::new();
        for (input, binding) in &job.inputs {
            let InputBinding::Data { host_path, .. } = binding else {
                continue;
            };
            if let Some(from) = host_path
                .strip_prefix(crate::spec::STEP_OUTPUT_SCHEME)
                .and_then(|rest| rest.split('/').next())
            {
                data.insert(
                    input.clone(),
                    DataContent::Pending {
                        step: from.to_string(),
                    },
                );
                continue;
            }
            let path = PathBuf::from(host_path);
            let cache = self.hashes.clone();
            let files = tokio::task::spawn_blocking(move || cache.tree(&path))
                .await
                .map_err(|e| fail(format!("hashing input `{input}`: {e}")))?
                .map_err(|e| fail(format!("hashing input `{input}` ({host_path}): {e}")))?;
            data.insert(input.clone(), DataContent::Files(files));
        }
        Ok(fingerprint::assemble(step, job, environment, code, data))
    }

    /// What the controller would do with each step of `sub` now, in graph order: reused
    /// steps stand for their upstream outputs, so a chain of reusable steps is decided
    /// to its end; a step reading one that runs waits for it.
    pub async fn plan(&self, sub: &PipelineSubmission) -> Result<Vec<PlannedStep>, Error> {
        let graph = self.check(sub)?;
        let mut outputs: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut out = Vec::new();
        for name in graph.order() {
            let step = &sub.steps[name];
            let upstream: BTreeMap<String, Option<String>> = step
                .bound
                .values()
                .map(|(from, _)| (from.clone(), outputs.get(from).cloned().flatten()))
                .collect();
            let (job, _) = self.resolve_inputs(step, &upstream, true);
            let (fp, decision) = self
                .decide_or_run(
                    name,
                    step,
                    &job,
                    sub.settings.force_rerun,
                    &sub.experiment_name,
                    None,
                )
                .await?;
            let (action, reuse) = match &decision {
                Decision::Reuse { run } => ("reuse", Some(run.clone())),
                Decision::Run { .. } => ("run", None),
                Decision::WaitFor { .. } => ("wait", None),
            };
            outputs.insert(name.clone(), reuse.clone());
            out.push(PlannedStep {
                step: name.clone(),
                action: action.into(),
                reuse,
                reason: decision.why(),
                decision: serde_json::to_value(&decision)?,
                key: fp.as_ref().and_then(Fingerprint::key),
            });
        }
        Ok(out)
    }
}

enum Started {
    Reused,
    Ran,
    Stopping,
}

/// Each step's state: its row, and its run's status once it has one.
pub fn step_states(steps: &[StepRecord]) -> BTreeMap<String, StepState> {
    steps
        .iter()
        .map(|s| {
            let state = match (s.row, &s.run) {
                (StepRow::Reused, _) => StepState::Reused,
                (StepRow::Skipped, _) => StepState::Skipped,
                (_, Some(r)) => match r.status {
                    RunStatus::Completed => StepState::Completed,
                    RunStatus::Failed => StepState::Failed,
                    RunStatus::Canceled => StepState::Canceled,
                    _ => StepState::Running,
                },
                _ => StepState::Waiting,
            };
            (s.step.clone(), state)
        })
        .collect()
}

fn run_of<'a>(steps: &'a [StepRecord], step: &str) -> Option<&'a RunRecord> {
    steps.iter().find(|s| s.step == step)?.run.as_ref()
}

/// Whether `step` reads `from`'s `output` as a file (a uri_file output).
fn step_reads_file(step: &StepSubmission, from: &str, output: &str) -> bool {
    step.bound.iter().any(|(input, (f, o))| {
        f == from
            && o == output
            && matches!(
                step.job.inputs.get(input),
                Some(InputBinding::Data { is_file: true, .. })
            )
    })
}
