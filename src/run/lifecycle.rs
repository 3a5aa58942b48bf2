//! Driving runs through their lifecycle on a compute target.
//!
//! `Runner::drive` is written so it can start from any stored state: a fresh run
//! starts at Queued, a server restarted after a crash calls it again for every live
//! run and it picks up where the store says the run was. Every transition is stored
//! before the work it announces is done.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;

use crate::build::docker::Builder;
use crate::compute::config::WorkspaceConfig;
use crate::compute::targets::Targets;
use crate::compute::{ComputeTarget, ContainerState, Target};
use crate::run::model::{
    InputBinding, InputMode, JobSubmission, ResolvedEnvironment, RunStatus, new_run_id,
    valid_run_id,
};
use crate::run::plan::{self, Ending, FAILURE_TAIL_LINES, SpecInputs};
use crate::store::{RunRecord, Store, Transition};
use crate::workspace::Workspace;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error(transparent)]
    Config(#[from] crate::compute::config::Error),
    #[error("the code snapshot {0} was never uploaded to this workspace")]
    MissingSnapshot(String),
    #[error("compute `{0}` has `type: {1}`; tug runs jobs on `docker` and `kubernetes` targets")]
    UnsupportedTarget(String, String),
    #[error(
        "compute `{0}` sets `host:`; remote Docker engines are not supported yet, use the local engine"
    )]
    RemoteHost(String),
    #[error(
        "`{0}` cannot be a job name: use letters, digits, `_` and `-`, starting with a letter or digit, at most 255 characters"
    )]
    BadName(String),
    #[error("input `{name}`: {path} does not exist on the server's host")]
    MissingInput { name: String, path: String },
    #[error("input `{name}`: cannot read {path}: {source}")]
    ReadInput {
        name: String,
        path: String,
        source: std::io::Error,
    },
    #[error("the code snapshot {sha} in this workspace is corrupt: {source}")]
    CorruptSnapshot { sha: String, source: std::io::Error },
    #[error("lost track of the run's container: {0}")]
    Compute(#[from] crate::compute::Error),
    #[error(transparent)]
    Secret(#[from] crate::secrets::Error),
}

/// Runs jobs for one workspace, each on the compute target its `compute:` names (the
/// local Docker engine unless told otherwise). Environment images are built on this
/// machine's Docker engine either way.
pub struct Runner {
    pub store: Arc<Store>,
    pub ws: Workspace,
    pub workspace_id: String,
    targets: std::sync::Arc<Targets>,
    builder: Builder,
    cancels: Mutex<HashMap<String, watch::Sender<bool>>>,
    active: AtomicUsize,
    /// Where runs reach the MLflow API, once the server has its container listener.
    tracking: std::sync::OnceLock<TrackingEndpoint>,
}

/// The MLflow tracking listener containers reach, and the key run tokens are made with.
pub struct TrackingEndpoint {
    pub uri: String,
    pub workspace_token: String,
}

fn host_path_is_step_output(input: &InputBinding) -> bool {
    matches!(input, InputBinding::Data { host_path, .. } if host_path.starts_with(crate::spec::STEP_OUTPUT_SCHEME))
}

/// Counts a drive task as active for as long as it lives.
struct ActiveGuard<'a>(&'a AtomicUsize);
impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Runner {
    pub fn new(
        store: Arc<Store>,
        ws: Workspace,
        workspace_id: String,
        targets: std::sync::Arc<Targets>,
        builder: Builder,
    ) -> Runner {
        Runner {
            store,
            ws,
            workspace_id,
            targets,
            builder,
            cancels: Mutex::default(),
            active: AtomicUsize::new(0),
            tracking: std::sync::OnceLock::new(),
        }
    }

    /// Runs started from now on get MLflow settings pointing at `endpoint`.
    pub fn set_tracking(&self, endpoint: TrackingEndpoint) {
        let _ = self.tracking.set(endpoint);
    }

    /// Number of runs being driven now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    fn config(&self) -> Result<WorkspaceConfig, Error> {
        Ok(self.ws.read_config()?)
    }

    /// Checks a submission before its snapshots are uploaded: everything but them.
    pub fn validate_draft(&self, sub: &JobSubmission) -> Result<(), Error> {
        self.check(sub, false)
    }

    /// Checks what the server can check before anything is created.
    pub fn validate(&self, sub: &JobSubmission) -> Result<(), Error> {
        self.check(sub, true)
    }

    fn check(&self, sub: &JobSubmission, snapshots_uploaded: bool) -> Result<(), Error> {
        if let Some(name) = &sub.name
            && !valid_run_id(name)
        {
            return Err(Error::BadName(name.clone()));
        }
        let config = self.config()?;
        let file = self.ws.config_path().display().to_string();
        let target = config.target(&sub.compute, &file)?;
        if target.kind != "docker" && !target.is_kubernetes() {
            return Err(Error::UnsupportedTarget(sub.compute.clone(), target.kind));
        }
        if target.host.is_some() {
            return Err(Error::RemoteHost(sub.compute.clone()));
        }
        crate::compute::config::limits(&sub.compute, &target, &sub.resources)?;
        let snapshots = [
            sub.code_snapshot.clone(),
            match &sub.environment {
                ResolvedEnvironment::Build {
                    context_snapshot, ..
                } => Some(context_snapshot.clone()),
                _ => None,
            },
        ];
        for s in snapshots
            .into_iter()
            .flatten()
            .filter(|_| snapshots_uploaded)
        {
            if !self.snapshot_path(&s).exists() {
                return Err(Error::MissingSnapshot(s));
            }
        }
        for (name, input) in &sub.inputs {
            // A pipeline step's input bound to another step's output has no path until
            // that step has run; only a draft may hold its placeholder.
            let placeholder = !snapshots_uploaded && host_path_is_step_output(input);
            if let InputBinding::Data { host_path, .. } = input
                && !placeholder
                && !std::path::Path::new(host_path).exists()
            {
                return Err(Error::MissingInput {
                    name: name.clone(),
                    path: host_path.clone(),
                });
            }
        }
        Ok(())
    }

    /// The target a run's `compute:` names, as the workspace config says now.
    async fn target_of(&self, compute: &str) -> Result<Target, Error> {
        let config = self.config()?;
        let file = self.ws.config_path().display().to_string();
        let cfg = config.target(compute, &file)?;
        Ok(self.targets.get(compute, &cfg).await?)
    }

    /// Every target runs of this workspace may have objects on: the engine, and each
    /// configured cluster that can be reached.
    async fn all_targets(&self) -> Vec<(String, Target)> {
        let mut all = vec![(
            "local".to_string(),
            Target::Docker(self.targets.docker().clone()),
        )];
        if let Ok(config) = self.config() {
            for (name, cfg) in &config.compute {
                if cfg.is_kubernetes() {
                    match self.targets.get(name, cfg).await {
                        Ok(t) => all.push((name.clone(), t)),
                        Err(e) => {
                            tracing::warn!(compute = %name, error = %e, "cannot use this compute target")
                        }
                    }
                }
            }
        }
        all
    }

    fn snapshot_path(&self, sha: &str) -> std::path::PathBuf {
        self.ws.snapshots().join(format!("{sha}.tar"))
    }

    /// Stores a new run and starts driving it.
    pub fn submit(self: &Arc<Self>, sub: JobSubmission) -> Result<RunRecord, Error> {
        self.validate(&sub)?;
        let id = sub.name.clone().unwrap_or_else(new_run_id);
        let nonce = crate::workspace::random_hex(12);
        self.store.insert_run(&id, &sub, &nonce)?;
        self.spawn(id.clone());
        Ok(self.store.run(&id)?)
    }

    /// Asks a run to stop. Returns its record.
    pub fn cancel(&self, id: &str) -> Result<RunRecord, Error> {
        let rec = self.store.request_cancel(id)?;
        if let Some(tx) = self.cancels.lock().unwrap().get(id) {
            let _ = tx.send(true);
        }
        Ok(rec)
    }

    /// Drives `id` in the background until it ends.
    pub fn spawn(self: &Arc<Self>, id: String) {
        let (tx, rx) = watch::channel(false);
        self.cancels.lock().unwrap().insert(id.clone(), tx);
        self.active.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            let _guard = ActiveGuard(&me.active);
            if let Err(e) = me.drive(&id, rx).await {
                tracing::error!(run = %id, error = %e, "run failed in tug itself");
                let _ = me.store.transition(
                    &id,
                    RunStatus::Failed,
                    Transition {
                        error: Some(format!("tug could not run this job: {e}")),
                        ..Default::default()
                    },
                );
                if let Ok(run) = me.store.run(&id)
                    && let Ok(target) = me.target_of(&run.submission.compute).await
                {
                    let _ = target.remove(&id).await;
                }
            }
            me.cancels.lock().unwrap().remove(&id);
        });
    }

    /// Picks up every run the store says is live (after a restart).
    pub async fn reconcile(self: &Arc<Self>) -> Result<usize, Error> {
        let live = self.store.live_runs()?;
        let n = live.len();
        // Containers whose run has ended (or that no run knows): a removal that failed
        // earlier, or a crash between collecting and removing.
        for (name, target) in self.all_targets().await {
            match target.list().await {
                Ok(ids) => {
                    for rid in ids {
                        if !live.iter().any(|r| r.id == rid) {
                            tracing::info!(run = %rid, compute = %name, "removing the container of an ended run");
                            if let Err(e) = target.remove(&rid).await {
                                tracing::warn!(run = %rid, error = %e, "could not remove container");
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(compute = %name, error = %e, "could not list this workspace's containers")
                }
            }
        }
        for run in live {
            tracing::info!(run = %run.id, status = %run.status, "resuming run");
            self.spawn(run.id);
        }
        Ok(n)
    }

    async fn drive(&self, id: &str, mut cancel: watch::Receiver<bool>) -> Result<(), Error> {
        loop {
            let run = self.store.run(id)?;
            let canceled = run.cancel_requested || *cancel.borrow();
            let needs_target = matches!(
                run.status,
                RunStatus::Starting | RunStatus::Running | RunStatus::Finalizing
            );
            let target = if needs_target {
                match self.target_of(&run.submission.compute).await {
                    Ok(t) => Some(t),
                    Err(e) => {
                        self.fail(id, format!("compute `{}`: {e}", run.submission.compute))?;
                        continue;
                    }
                }
            } else {
                None
            };
            let target = target.as_ref();
            match run.status {
                s if s.is_terminal() => return Ok(()),
                RunStatus::Queued => {
                    if canceled {
                        self.finish_without_container(id, RunStatus::Canceled)?;
                        continue;
                    }
                    self.store
                        .transition(id, RunStatus::Preparing, Transition::default())?;
                }
                RunStatus::Preparing => {
                    if canceled {
                        self.finish_without_container(id, RunStatus::Canceled)?;
                        continue;
                    }
                    let prepared = tokio::select! {
                        p = self.prepare(&run) => p,
                        // Dropping the build request makes the engine stop the build.
                        _ = wait_for_cancel(&mut cancel) => {
                            self.finish_without_container(id, RunStatus::Canceled)?;
                            continue;
                        }
                    };
                    match prepared {
                        Ok((hash, tag)) => {
                            self.store.transition(
                                id,
                                RunStatus::Starting,
                                Transition {
                                    env_hash: Some(hash),
                                    image: Some(tag),
                                    ..Default::default()
                                },
                            )?;
                        }
                        Err(message) => {
                            self.fail(id, message)?;
                        }
                    }
                }
                RunStatus::Starting => {
                    let target = target.expect("resolved for this state");
                    if canceled {
                        target.remove(id).await.ok();
                        self.finish_without_container(id, RunStatus::Canceled)?;
                        continue;
                    }
                    // Whatever stops the container from being prepared (a secret deleted
                    // since submission, a missing snapshot) fails the run with the reason.
                    let spec = match self.container_spec(&run) {
                        Ok(spec) => spec,
                        Err(e) => {
                            self.fail(id, format!("could not prepare the container: {e}"))?;
                            continue;
                        }
                    };
                    // A start can wait long (an unschedulable pod): a cancel ends it.
                    let started = tokio::select! {
                        r = target.start(&spec) => r,
                        _ = wait_for_cancel(&mut cancel) => {
                            target.remove(id).await.ok();
                            self.finish_without_container(id, RunStatus::Canceled)?;
                            continue;
                        }
                    };
                    match started {
                        Ok(()) => {
                            self.store.transition(
                                id,
                                RunStatus::Running,
                                Transition {
                                    container: Some(target.container_name(id)),
                                    ..Default::default()
                                },
                            )?;
                        }
                        // The target stopped answering mid-start: starting is idempotent,
                        // so once it is back, start again.
                        Err(e)
                            if e.is_unreachable()
                                && target.reachable(crate::compute::BACK_WITHIN).await =>
                        {
                            tracing::warn!(run = %id, error = %e, "the target is back; starting again");
                        }
                        Err(e) => {
                            target.remove(id).await.ok();
                            self.fail(id, format!("could not start the container: {e}"))?;
                        }
                    }
                }
                RunStatus::Running => {
                    let target = target.expect("resolved for this state");
                    let state = target.state(id).await.ok();
                    if state == Some(ContainerState::Missing) {
                        self.fail(id, "the run's container disappeared (removed while tug was not watching); its outputs are lost")?;
                        continue;
                    }
                    let exited = matches!(state, Some(ContainerState::Exited(_)));
                    let ending = match self.watch(target, &run, &mut cancel, exited).await {
                        Ok(ending) => ending,
                        // The engine stopped answering mid-run (restarted): once it is
                        // back, look at the container again and re-attach or judge it.
                        Err(Error::Compute(e))
                            if e.is_unreachable()
                                && target.reachable(crate::compute::BACK_WITHIN).await =>
                        {
                            tracing::warn!(run = %id, error = %e, "the engine is back; re-attaching");
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let last = plan::tail_lines(
                        &std::fs::read_to_string(self.std_log(id)).unwrap_or_default(),
                        FAILURE_TAIL_LINES,
                    );
                    let (status, error) = plan::outcome(ending, &last);
                    let exit_code = match ending {
                        Ending::Exited(c) => Some(c),
                        _ => None,
                    };
                    self.store.transition(
                        id,
                        RunStatus::Finalizing,
                        Transition {
                            exit_code,
                            error,
                            outcome: Some(status),
                            ..Default::default()
                        },
                    )?;
                }
                RunStatus::Finalizing => {
                    let target = target.expect("resolved for this state");
                    let spec_collect = plan::collect_list(&run.submission);
                    let collected = target
                        .collect(id, &spec_collect, &self.ws.run_dir(id))
                        .await;
                    let mut status = run.outcome.unwrap_or(RunStatus::Failed);
                    let mut t = Transition::default();
                    if let Err(e) = collected {
                        status = RunStatus::Failed;
                        t.error = Some(format!("collecting outputs failed: {e}"));
                    } else if status == RunStatus::Completed
                        && let Err(e) = super::publish::publish(
                            &crate::datastore::upload::workspace_datastore(&self.ws),
                            &self.ws.run_dir(id),
                            id,
                            &run.submission,
                        )
                    {
                        status = RunStatus::Failed;
                        t.error = Some(format!("writing outputs to the datastore failed: {e}"));
                    }
                    // Removed before the run is marked ended, so an ended run never
                    // leaves a container behind; a crash in between is harmless (the
                    // next attempt finds nothing more to collect).
                    target.remove(id).await.ok();
                    self.store.transition(id, status, t)?;
                }
                _ => unreachable!("all states handled"),
            }
        }
    }

    /// Ends `id` as Failed with `error`, the reason a user reads in `job show`.
    fn fail(&self, id: &str, error: impl Into<String>) -> Result<(), Error> {
        self.store.transition(
            id,
            RunStatus::Failed,
            Transition {
                error: Some(error.into()),
                ..Default::default()
            },
        )?;
        Ok(())
    }

    fn finish_without_container(&self, id: &str, status: RunStatus) -> Result<(), Error> {
        self.store.transition(
            id,
            status,
            Transition {
                error: Some("canceled by request before it started".into()),
                ..Default::default()
            },
        )?;
        Ok(())
    }

    fn secrets(&self) -> crate::secrets::SecretStore {
        crate::secrets::SecretStore::new(&self.ws.dir)
    }

    fn std_log(&self, id: &str) -> std::path::PathBuf {
        self.ws.run_dir(id).join("user_logs/std_log.txt")
    }

    pub fn build_log(&self, id: &str) -> std::path::PathBuf {
        self.ws.run_dir(id).join("system_logs/build.log")
    }

    /// Builds (or finds) the environment image. Errors come back as the run's message.
    async fn prepare(&self, run: &RunRecord) -> Result<(String, String), String> {
        let env = &run.submission.environment;
        let context = match env {
            ResolvedEnvironment::Build {
                context_snapshot, ..
            } => Some(
                std::fs::read(self.snapshot_path(context_snapshot))
                    .map_err(|e| format!("reading the build context snapshot: {e}"))?,
            ),
            _ => None,
        };
        let log_path = self.build_log(&run.id);
        std::fs::create_dir_all(log_path.parent().unwrap()).map_err(|e| e.to_string())?;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
        let source = run.submission.source.clone().unwrap_or_default();
        let mut progress = |line: &str| {
            let _ = writeln!(log, "{line}");
        };
        let ensured = self
            .builder
            .ensure(env, context.as_deref(), &source, &mut progress)
            .await
            .map_err(|e| e.to_string())?;
        let _ = writeln!(
            log,
            "{} {}",
            if ensured.built { "built" } else { "reused" },
            ensured.tag
        );
        Ok((ensured.hash, ensured.tag))
    }

    /// The content hash of `env`'s image, built or not (see `Builder::env_hash`).
    /// The content hash of `env`'s image; `pull`: fetch a base image the engine lacks (a
    /// plan, which changes nothing, does not).
    pub async fn environment_hash(
        &self,
        env: &ResolvedEnvironment,
        pull: bool,
    ) -> Result<String, String> {
        let context = match env {
            ResolvedEnvironment::Build {
                context_snapshot, ..
            } => Some(
                std::fs::read(self.snapshot_path(context_snapshot))
                    .map_err(|e| format!("reading the build context snapshot: {e}"))?,
            ),
            _ => None,
        };
        self.builder
            .env_hash(env, context.as_deref(), pull)
            .await
            .map_err(|e| e.to_string())
    }

    /// The code snapshot `sha` as uploaded.
    pub fn snapshot_bytes(&self, sha: &str) -> Result<Vec<u8>, Error> {
        std::fs::read(self.snapshot_path(sha)).map_err(|_| Error::MissingSnapshot(sha.to_string()))
    }

    fn container_spec(&self, run: &RunRecord) -> Result<crate::compute::RunSpec, Error> {
        // Secrets are decrypted here, into the container's environment only; the store
        // keeps the `${{secrets.X}}` references.
        let (env, _) = self
            .secrets()
            .resolve(&run.submission.environment_variables)?;
        let resolved = JobSubmission {
            environment_variables: env,
            ..run.submission.clone()
        };
        let sub = &resolved;
        let config = self.config()?;
        let file = self.ws.config_path().display().to_string();
        let target = config.target(&sub.compute, &file)?;
        let limits = crate::compute::config::limits(&sub.compute, &target, &sub.resources)?;
        let code = match &sub.code_snapshot {
            Some(sha) => {
                let bytes = std::fs::read(self.snapshot_path(sha))
                    .map_err(|_| Error::MissingSnapshot(sha.clone()))?;
                crate::snapshot::entries_from_tar(&bytes).map_err(|source| {
                    Error::CorruptSnapshot {
                        sha: sha.clone(),
                        source,
                    }
                })?
            }
            None => vec![],
        };
        let mut downloads = BTreeMap::new();
        for (name, input) in &sub.inputs {
            if let InputBinding::Data {
                host_path,
                is_file,
                mode: InputMode::Download,
                container_path,
            } = input
            {
                let entries = if *is_file {
                    let data = std::fs::read(host_path).map_err(|e| Error::ReadInput {
                        name: name.clone(),
                        path: host_path.clone(),
                        source: e,
                    })?;
                    let file_name = container_path.rsplit('/').next().unwrap_or(name);
                    vec![crate::snapshot::Entry {
                        path: file_name.to_string(),
                        data: Some(data),
                        executable: false,
                    }]
                } else {
                    crate::snapshot::read_tree(std::path::Path::new(host_path)).map_err(|e| {
                        Error::ReadInput {
                            name: name.clone(),
                            path: host_path.clone(),
                            source: std::io::Error::other(e),
                        }
                    })?
                };
                downloads.insert(name.clone(), entries);
            }
        }
        let tracking = match self.tracking.get() {
            Some(t) => Some(plan::TrackingAccess {
                uri: t.uri.clone(),
                token: crate::tracking::token::run_token(&t.workspace_token, &run.id),
                experiment_id: self
                    .store
                    .experiment_named(&run.experiment)?
                    .map(|e| e.id)
                    .unwrap_or(0),
            }),
            None => None,
        };
        Ok(plan::container_spec(
            sub,
            SpecInputs {
                workspace_id: &self.workspace_id,
                run_id: &run.id,
                experiment: &run.experiment,
                image: run.image.as_deref().unwrap_or_default(),
                log_nonce: &run.log_nonce,
                code,
                downloads,
                limits,
                secret_env: crate::secrets::references(&run.submission.environment_variables)
                    .into_iter()
                    .map(|(var, _)| var.to_string())
                    .collect(),
                tracking,
            },
        ))
    }

    /// Follows a running container to its end: logs and metrics, cancel, timeout.
    async fn watch(
        &self,
        target: &Target,
        run: &RunRecord,
        cancel: &mut watch::Receiver<bool>,
        already_exited: bool,
    ) -> Result<Ending, Error> {
        let id = run.id.clone();
        let log_task = {
            let stream = target.logs(&id, run.log_cursor.as_deref());
            let store = self.store.clone();
            let path = self.std_log(&id);
            let nonce = run.log_nonce.clone();
            let id = id.clone();
            let committed = run.log_bytes;
            let masker = self.secrets().masker(&run.submission.environment_variables);
            tokio::spawn(async move {
                super::logs::follow(stream, store, &id, &nonce, &path, committed, &masker).await
            })
        };
        let deadline = run.submission.timeout_seconds.map(|limit| {
            let started = run
                .started_at
                .as_deref()
                .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                .unwrap_or_else(SystemTime::now);
            let elapsed = SystemTime::now()
                .duration_since(started)
                .unwrap_or_default();
            (
                Instant::now() + Duration::from_secs(limit).saturating_sub(elapsed),
                limit,
            )
        });
        let mut ending = None;
        // A container that ended while nobody watched ended by itself: judge it by its
        // exit code, not by a deadline that passed while the server was down.
        let deadline = if already_exited { None } else { deadline };
        if run.cancel_requested || *cancel.borrow() {
            target.stop(&id).await.ok();
            ending = Some(Ending::Canceled);
        }
        let wait = target.wait(&id);
        tokio::pin!(wait);
        let code = loop {
            let sleep = async {
                match deadline {
                    Some((at, _)) if ending.is_none() => tokio::time::sleep_until(at.into()).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                code = &mut wait => break code,
                changed = cancel.changed(), if ending.is_none() => {
                    if changed.is_ok() && *cancel.borrow() {
                        ending = Some(Ending::Canceled);
                        target.stop(&id).await.ok();
                    }
                }
                _ = sleep => {
                    ending = Some(Ending::TimedOut { limit_seconds: deadline.map(|d| d.1).unwrap_or(0) });
                    tracing::info!(run = %id, "timeout reached, stopping");
                    target.stop(&id).await.ok();
                }
            }
        };
        // The log stream ends with the container; give it a moment to drain.
        let abort = log_task.abort_handle();
        match tokio::time::timeout(Duration::from_secs(10), log_task).await {
            Ok(Ok(Err(e))) => {
                tracing::warn!(run = %id, error = %e, "log stream ended with an error")
            }
            Err(_) => {
                // Never let a stray task write to a run that has ended.
                abort.abort();
                tracing::warn!(run = %id, "log stream did not end after the container");
            }
            _ => {}
        }
        let code = code?;
        Ok(ending.unwrap_or(Ending::Exited(code)))
    }
}

/// Resolves once a cancel has been requested.
async fn wait_for_cancel(cancel: &mut watch::Receiver<bool>) {
    while !*cancel.borrow() {
        if cancel.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
