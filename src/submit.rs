//! From a job or environment file to what the server runs (the client side of
//! submitting, shared by the CLI and programs that drive tug): local files read, folders
//! snapshotted, the command rendered. Everything that can be checked locally is checked
//! before the server is asked to create anything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::client::Client;
use crate::run::model::{
    InputBinding, InputMode, JobSubmission, OutputBinding, ResolvedEnvironment, Resources, paths,
};
use crate::spec::{self, CommandJob, EnvironmentRef, EnvironmentSource, EnvironmentSpec, SweepJob};
use crate::store::EnvironmentRecord;
use crate::sweep::SweepSubmission;

/// A job file of either kind tug runs.
pub enum LoadedJob {
    Command(Box<CommandJob>),
    Sweep(Box<SweepJob>),
    Pipeline(Box<spec::PipelineJob>),
}

/// Reads and validates a job file, choosing the reader by its `type:`. No I/O beyond
/// reading it (once).
pub fn load_any_job(
    cwd: &Path,
    file: &Path,
    overrides: &[(String, String)],
) -> anyhow::Result<LoadedJob> {
    load_any_job_with(cwd, file, overrides, &crate::components::Fetched::new())
}

/// The registered components `file` names (`azureml:<name>:<version>` steps), fetched
/// from the server and unpacked, for [`load_any_job_with`]. Asks the server only when the
/// file names some, so a file without them is checked before any server starts.
pub async fn fetch_components(
    ws: &crate::workspace::Workspace,
    cwd: &Path,
    file: &Path,
) -> anyhow::Result<crate::components::Fetched> {
    let Ok(text) = read_spec_file(cwd, file) else {
        return Ok(Default::default());
    };
    let wanted = crate::components::referenced(&text);
    if wanted.is_empty() {
        return Ok(Default::default());
    }
    let client = Client::connect(ws).await?;
    crate::components::fetch(&client, ws, &wanted).await
}

/// [`load_any_job`], with the registered components a pipeline names at hand.
pub fn load_any_job_with(
    cwd: &Path,
    file: &Path,
    overrides: &[(String, String)],
    components: &crate::components::Fetched,
) -> anyhow::Result<LoadedJob> {
    let text = read_spec_file(cwd, file)?;
    // A file whose type cannot be told gets the command-job reader's error.
    if matches!(spec::job_file_kind(file, &text), Ok(spec::JobKind::Sweep)) {
        let sweep = spec::parse_sweep_job(file, &text, &borrowed(overrides)).map_err(spec_error)?;
        check_supported(
            file,
            &sweep
                .trial_job(&sweep.placeholder_params())
                .map_err(spec_error)?,
        )?;
        for name in sweep.unused_dimensions() {
            tracing::warn!(
                "{}: `search_space.{name}` is never used in the trial's command, so every trial gets the same command for it",
                file.display()
            );
        }
        return Ok(LoadedJob::Sweep(Box::new(sweep)));
    }
    if matches!(
        spec::job_file_kind(file, &text),
        Ok(spec::JobKind::Pipeline)
    ) {
        let pipeline = load_pipeline(cwd, file, &text, overrides, components)?;
        return Ok(LoadedJob::Pipeline(Box::new(pipeline)));
    }
    let job = spec::parse_command_job(file, &text, &borrowed(overrides)).map_err(spec_error)?;
    check_supported(file, &job)?;
    Ok(LoadedJob::Command(Box::new(job)))
}

/// Reads a pipeline file and the component files its steps name (registered ones from
/// `components`, unpacked by [`fetch_components`]), each through the same bounded reader
/// as any spec file.
pub fn load_pipeline(
    cwd: &Path,
    file: &Path,
    text: &str,
    overrides: &[(String, String)],
    components: &crate::components::Fetched,
) -> anyhow::Result<spec::PipelineJob> {
    let mut resolve = |source: &spec::ComponentSource| match source {
        spec::ComponentSource::File(path) => read_spec_file(cwd, path)
            .map(|text| (path.clone(), text))
            .map_err(|e| format!("{e:#}")),
        spec::ComponentSource::Registered { name, version } => components
            .get(&(name.clone(), version.clone()))
            .cloned()
            .ok_or_else(|| match version {
                Some(v) => format!(
                    "no version `{v}` of component `{name}` is registered in this workspace"
                ),
                None => format!("no component `{name}` is registered in this workspace"),
            }),
    };
    let pipeline = spec::parse_pipeline_job(file, text, &borrowed(overrides), &mut resolve)
        .map_err(spec_error)?;
    for step in pipeline.steps.values() {
        check_supported(file, &step.job)?;
    }
    Ok(pipeline)
}

/// Turns a parsed sweep into what the server runs: the trial resolved like a command job
/// (code uploaded, environment resolved, inputs bound), its command rendered except for
/// `${{search_space.x}}`, which the controller fills in per trial.
pub async fn sweep_submission(
    client: &Client,
    cwd: &Path,
    sweep: SweepJob,
    file: &Path,
) -> anyhow::Result<SweepSubmission> {
    let f = file.display().to_string();
    let placeholders = sweep.placeholder_params();
    let render =
        |_: &str, inputs: &BTreeMap<String, String>, outputs: &BTreeMap<String, String>| {
            spec::render_trial_command(&sweep, &placeholders, inputs, outputs)
                .map_err(|e| anyhow::anyhow!("{f}: {e}"))
        };
    let mut job = sweep.trial_job(&placeholders).map_err(spec_error)?;
    job.name = sweep.name.clone();
    // The sweep's own limit is the controller's; each trial gets `trial_timeout`.
    job.limits = None;
    let trial = submission_with(client, cwd, job, file, &render).await?;
    let limits = &sweep.limits;
    Ok(SweepSubmission {
        trial,
        search_space: sweep.search_space.clone(),
        sampling_algorithm: sweep.sampling_algorithm.clone(),
        objective: sweep.objective.clone(),
        limits: crate::sweep::SweepLimits {
            max_total_trials: limits.max_total_trials.into(),
            max_concurrent_trials: limits.max_concurrent_trials.into(),
            timeout_seconds: Some(limits.timeout),
            trial_timeout_seconds: limits.trial_timeout,
        },
        early_termination: sweep.early_termination.clone(),
    })
}

/// Turns a parsed pipeline into what the server runs: each step resolved like a command
/// job (code uploaded, environment resolved, inputs bound), an input bound to another
/// step's output left as that output's placeholder.
pub async fn pipeline_submission(
    client: &Client,
    cwd: &Path,
    pipeline: spec::PipelineJob,
    file: &Path,
) -> anyhow::Result<crate::pipeline::PipelineSubmission> {
    use crate::pipeline::binding::{InputBinding as Bound, OutputBinding};
    let experiment_name = pipeline.experiment_name.clone().unwrap_or_else(|| {
        cwd.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "default".into())
    });
    if let Some(ds) = &pipeline.settings.default_datastore
        && ds.trim_start_matches("azureml:") != crate::datastore::upload::WORKSPACE_DATASTORE
    {
        tracing::warn!(
            "{}: `settings.default_datastore: {ds}` is ignored: step outputs go to `workspaceblobstore` (at azureml/<run>/<output>)",
            file.display()
        );
    }
    let mut steps = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    for (name, step) in pipeline.steps {
        let command_template = step.job.command.clone();
        let mut job = step.job;
        job.name = None;
        job.experiment_name = Some(experiment_name.clone());
        if job.display_name.is_none() {
            job.display_name = Some(name.clone());
        }
        let (sub, sweep) = match step.sweep {
            Some(settings) => {
                let sweep = SweepJob::from_trial(job, settings);
                let s = sweep_submission(client, cwd, sweep, file)
                    .await
                    .with_context(|| format!("step `{name}`"))?;
                let settings = s.settings();
                (s.trial, Some(settings))
            }
            None => {
                let sub = submission(client, cwd, job, file)
                    .await
                    .with_context(|| format!("step `{name}`"))?;
                (sub, None)
            }
        };
        let bound = step
            .bindings
            .inputs
            .iter()
            .filter_map(|(input, b)| match b {
                Bound::StepOutput { step, output } => {
                    Some((input.clone(), (step.clone(), output.clone())))
                }
                _ => None,
            })
            .collect();
        for (output, b) in &step.bindings.outputs {
            if let OutputBinding::ParentOutput(p) = b {
                outputs.insert(p.clone(), (name.clone(), output.clone()));
            }
        }
        steps.insert(
            name,
            crate::pipeline::StepSubmission {
                job: sub,
                command_template,
                bound,
                is_deterministic: step.is_deterministic,
                component: step.component,
                sweep,
            },
        );
    }
    Ok(crate::pipeline::PipelineSubmission {
        name: pipeline.name,
        display_name: pipeline.display_name,
        experiment_name,
        description: pipeline.description,
        tags: pipeline.tags,
        settings: crate::pipeline::Settings {
            continue_on_step_failure: pipeline.settings.continue_on_step_failure,
            force_rerun: pipeline.settings.force_rerun,
            max_concurrent_steps: 0,
        },
        steps,
        outputs,
        source: Some(file.display().to_string()),
    })
}

/// Reads and validates an environment file.
pub fn load_environment(
    cwd: &Path,
    file: &Path,
    overrides: &[(String, String)],
) -> anyhow::Result<EnvironmentSpec> {
    let text = read_spec_file(cwd, file)?;
    spec::parse_environment(file, &text, &borrowed(overrides)).map_err(spec_error)
}

pub(crate) fn borrowed(overrides: &[(String, String)]) -> Vec<(&str, &str)> {
    overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

pub(crate) fn read_spec_file(cwd: &Path, file: &Path) -> anyhow::Result<String> {
    match spec::limits::read_file(&cwd.join(file)) {
        Ok(text) => Ok(text),
        Err(spec::limits::ReadError::Io(e)) => {
            Err(anyhow::Error::new(e).context(format!("cannot read {}", file.display())))
        }
        Err(spec::limits::ReadError::Spec(e)) => Err(spec_error(*e)),
    }
}

/// Every `${{secrets.X}}` in `env` names a secret of the workspace: caught at submission,
/// not when the container is about to start.
pub(crate) fn check_secrets(
    cwd: &Path,
    file: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let refs = crate::secrets::references(env);
    if refs.is_empty() {
        return Ok(());
    }
    let ws = crate::workspace::Workspace::find(cwd).context("no workspace")?;
    let store = crate::secrets::SecretStore::new(&ws.dir);
    for (var, name) in refs {
        if !store.contains(name)? {
            anyhow::bail!(
                "{}: environment_variables.{var}: no secret `{name}` in this workspace\n  help: set it with `tug secret set {name}` (the value is read from stdin)",
                file.display()
            );
        }
    }
    Ok(())
}

/// A spec error is already a full message (file:line:col, field, help).
pub(crate) fn spec_error(e: spec::SpecError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

/// What tug cannot run yet, said up front rather than half-done.
fn check_supported(file: &Path, job: &CommandJob) -> anyhow::Result<()> {
    let f = file.display();
    if job.distribution.is_some() {
        bail!(
            "{f}: `distribution`: distributed (multi-process) jobs are not supported by tug yet\n  help: remove `distribution:` to run a single process"
        );
    }
    if job.resources.instance_count > 1 {
        bail!(
            "{f}: `resources.instance_count: {}`: the local Docker compute runs one instance\n  help: set it to 1",
            job.resources.instance_count
        );
    }
    if job.resources.docker_args.is_some() {
        bail!(
            "{f}: `resources.docker_args`: tug does not pass raw docker arguments\n  help: use `resources.shm_size`, or an instance type from the workspace config.yaml for cpu/memory/gpu"
        );
    }
    if !job.services.is_empty() {
        bail!(
            "{f}: `services`: interactive services (ssh, jupyter, ...) are not supported by tug yet\n  help: remove `services:`"
        );
    }
    for (name, input) in &job.inputs {
        if let spec::Input::Data(d) = input {
            if let Some(p) = &d.path
                && !p.is_local()
                && !p.given.starts_with(spec::STEP_OUTPUT_SCHEME)
                && !is_model_ref(d)
                && !is_data_ref(d)
                && !crate::datastore::is_remote(&p.given)
            {
                bail!(
                    "{f}: `inputs.{name}.path: {}`: not a local path, a registered model or data asset, or a URI tug fetches\n  help: use a local file or folder, `azureml:<data>:<version>`, https://, s3://, wasbs://, abfss:// or azureml://datastores/<name>/paths/<path>",
                    p.given
                );
            }
            if !matches!(d.mode, spec::InputMode::RoMount | spec::InputMode::Download) {
                bail!(
                    "{f}: `inputs.{name}.mode`: tug supports `ro_mount` and `download` for data inputs\n  help: use `mode: ro_mount` (the default) or `mode: download`"
                );
            }
        }
    }
    for (name, out) in &job.outputs {
        if out.mode == spec::OutputMode::Direct {
            bail!(
                "{f}: `outputs.{name}.mode: direct`: tug collects outputs into the workspace\n  help: use `rw_mount` (the default) or `upload`"
            );
        }
    }
    if job.identity.is_some() || job.queue_settings.is_some() {
        tracing::warn!("{f}: `identity` and `queue_settings` are Azure-only and ignored");
    }
    Ok(())
}

pub(crate) fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

/// Renders a command from the container paths of inputs and outputs.
type RenderCommand<'a> = dyn Fn(&str, &BTreeMap<String, String>, &BTreeMap<String, String>) -> anyhow::Result<String>
    + 'a;

/// Turns a parsed job into a submission: reads and uploads what it refers to.
pub async fn submission(
    client: &Client,
    cwd: &Path,
    job: CommandJob,
    file: &Path,
) -> anyhow::Result<JobSubmission> {
    let f = file.display().to_string();
    let render =
        |command: &str, inputs: &BTreeMap<String, String>, outputs: &BTreeMap<String, String>| {
            spec::render_command(command, inputs, outputs).map_err(|e| anyhow::anyhow!("{f}: {e}"))
        };
    submission_with(client, cwd, job, file, &render).await
}

async fn submission_with(
    client: &Client,
    cwd: &Path,
    job: CommandJob,
    file: &Path,
    render: &RenderCommand<'_>,
) -> anyhow::Result<JobSubmission> {
    let f = file.display().to_string();
    // Local reading and checks first; the server sees nothing until they pass.
    let code_tar = match &job.code {
        Some(code) => {
            let local = code.local.as_ref().with_context(|| {
                format!(
                    "{f}: `code: {}`: only a local folder can be the code so far",
                    code.given
                )
            })?;
            let dir = absolute(cwd, local);
            if !dir.is_dir() {
                bail!(
                    "{f}: `code: {}`: {} is not a folder\n  help: `code:` is relative to the job file",
                    code.given,
                    dir.display()
                );
            }
            let entries = crate::snapshot::read_folder(&dir)?;
            Some(crate::snapshot::tar_bytes(&entries, "", 0, 0))
        }
        None => None,
    };
    let mut inputs = BTreeMap::new();
    let mut rendered_inputs = BTreeMap::new();
    for (name, input) in &job.inputs {
        match input {
            spec::Input::Literal(l) => {
                if let Some(text) = l.rendered() {
                    rendered_inputs.insert(name.clone(), text.clone());
                    inputs.insert(name.clone(), InputBinding::Literal { text });
                }
            }
            spec::Input::Data(d) if is_model_ref(d) => {
                let given = &d.path.as_ref().expect("is_model_ref checks").given;
                let host = registered_model_dir(client, cwd, given)
                    .await
                    .with_context(|| format!("{f}: `inputs.{name}.path`"))?;
                let container_path = paths::input(name);
                rendered_inputs.insert(name.clone(), container_path.clone());
                inputs.insert(
                    name.clone(),
                    InputBinding::Data {
                        host_path: host.display().to_string(),
                        container_path,
                        is_file: false,
                        mode: input_mode(d.mode),
                    },
                );
            }
            spec::Input::Data(d)
                if d.path
                    .as_ref()
                    .is_some_and(|p| p.given.starts_with(spec::STEP_OUTPUT_SCHEME)) =>
            {
                // Another step's output: the controller puts the real path in when the
                // step starts. A file output is the file named after the output.
                let given = &d.path.as_ref().expect("checked above").given;
                let is_file = d.input_type == spec::InputType::UriFile;
                let container_path = if is_file {
                    let output = given.rsplit('/').next().unwrap_or(name);
                    format!("{}/{output}", paths::input(name))
                } else {
                    paths::input(name)
                };
                rendered_inputs.insert(name.clone(), container_path.clone());
                inputs.insert(
                    name.clone(),
                    InputBinding::Data {
                        host_path: given.clone(),
                        container_path,
                        is_file,
                        mode: input_mode(d.mode),
                    },
                );
            }
            spec::Input::Data(d) => {
                let Some(given) = d.path.as_ref() else {
                    continue; // optional input left unset
                };
                let is_file = d.input_type == spec::InputType::UriFile;
                // A data asset stands for the data it was registered with.
                let (target, local) = if is_data_ref(d) {
                    let rec = data_asset(client, &given.given)
                        .await
                        .with_context(|| format!("{f}: `inputs.{name}.path`"))?;
                    if rec.data_type != d.input_type.as_str() {
                        bail!(
                            "{f}: `inputs.{name}`: data asset `{}` is `{}`, but the input is `type: {}`\n  help: make the input `type: {}`",
                            given.given,
                            rec.data_type,
                            d.input_type.as_str(),
                            rec.data_type
                        );
                    }
                    let local =
                        (!crate::datastore::is_remote(&rec.path)).then(|| PathBuf::from(&rec.path));
                    (rec.path, local)
                } else {
                    (given.given.clone(), given.local.clone())
                };
                // A datastore of this host is read in place.
                let local = match local {
                    Some(p) => Some(p),
                    None => local_datastore_path(cwd, &target)
                        .with_context(|| format!("{f}: `inputs.{name}.path`"))?,
                };
                let (host, file_name) = if local.is_none() && crate::datastore::is_remote(&target) {
                    remote_input(cwd, &f, name, &target, d.input_type).await?
                } else {
                    let Some(path) = local.as_ref() else {
                        continue;
                    };
                    local_input(cwd, &f, name, path, is_file)?
                };
                let container_path = if is_file {
                    format!("{}/{file_name}", paths::input(name))
                } else {
                    paths::input(name)
                };
                rendered_inputs.insert(name.clone(), container_path.clone());
                inputs.insert(
                    name.clone(),
                    InputBinding::Data {
                        host_path: host.display().to_string(),
                        container_path,
                        is_file,
                        mode: input_mode(d.mode),
                    },
                );
            }
        }
    }
    let mut outputs = BTreeMap::new();
    let mut rendered_outputs = BTreeMap::new();
    for (name, out) in &job.outputs {
        let is_file = out.output_type == spec::InputType::UriFile;
        let container_path = if is_file {
            format!("{}/{name}", paths::output(name))
        } else {
            paths::output(name)
        };
        rendered_outputs.insert(name.clone(), container_path.clone());
        outputs.insert(
            name.clone(),
            OutputBinding {
                container_path,
                is_file,
                datastore_path: match out.path.as_deref() {
                    None => None,
                    Some(path) => output_destination(cwd, &f, name, path)?,
                },
            },
        );
    }
    let command = render(&job.command, &rendered_inputs, &rendered_outputs)?;
    let (environment, env_uploads) = resolve_environment(client, cwd, &f, &job.environment).await?;

    let experiment_name = job.experiment_name.clone().unwrap_or_else(|| {
        cwd.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "default".into())
    });
    let mut sub = JobSubmission {
        name: job.name.clone(),
        display_name: job.display_name.clone(),
        experiment_name,
        description: job.description.clone(),
        tags: job.tags.clone(),
        command,
        code_snapshot: None,
        environment,
        environment_variables: {
            check_secrets(cwd, Path::new(&f), &job.environment_variables)?;
            job.environment_variables.clone()
        },
        compute: job.compute.clone(),
        inputs,
        outputs,
        resources: Resources {
            instance_count: Some(job.resources.instance_count),
            instance_type: job.resources.instance_type.clone(),
            shm_size: job.resources.shm_size.clone(),
        },
        timeout_seconds: job.limits.as_ref().and_then(|l| l.timeout),
        source: Some(absolute(cwd, file).display().to_string()),
    };
    // What only the server can check (compute target, sizes, names) before anything
    // is stored there; then the uploads, content-addressed so repeating one is free.
    let _: serde_json::Value = client.post("/api/jobs/validate", &sub).await?;
    if let Some(tar) = code_tar {
        sub.code_snapshot = Some(upload(client, tar).await?);
    }
    sub.environment = finish_environment(client, sub.environment, env_uploads).await?;
    Ok(sub)
}

/// A local input: its canonical path (checked to be a file or a folder as its type says)
/// and the file name the container sees.
fn local_input(
    cwd: &Path,
    f: &str,
    name: &str,
    path: &Path,
    is_file: bool,
) -> anyhow::Result<(PathBuf, String)> {
    let host = absolute(cwd, path);
    let host = host.canonicalize().with_context(|| {
        format!(
            "{f}: `inputs.{name}.path`: {} does not exist",
            host.display()
        )
    })?;
    if is_file != host.is_file() {
        let (actual, wanted) = if host.is_file() {
            ("file", "uri_file")
        } else {
            ("folder", "uri_folder")
        };
        bail!(
            "{f}: `inputs.{name}`: {} is a {actual}, but the input's type is {}\n  help: use `type: {wanted}`",
            host.display(),
            if is_file { "uri_file" } else { "uri_folder" },
        );
    }
    let file_name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| name.to_string());
    Ok((host, file_name))
}

/// A remote input fetched into the workspace's data cache (or answered from it): the local
/// copy and the file name the container sees.
async fn remote_input(
    cwd: &Path,
    f: &str,
    name: &str,
    given: &str,
    input_type: spec::InputType,
) -> anyhow::Result<(PathBuf, String)> {
    let ws = crate::workspace::Workspace::find(cwd).context("no workspace")?;
    let config = ws.read_config()?;
    let at = || format!("{f}: `inputs.{name}.path`");
    let uri = crate::datastore::uri::parse(given, &config.datastores).with_context(at)?;
    let kind = match input_type {
        spec::InputType::UriFile => crate::datastore::Kind::File,
        spec::InputType::UriFolder
        | spec::InputType::MlflowModel
        | spec::InputType::CustomModel => crate::datastore::Kind::Folder,
        other => bail!(
            "{}: a `{other}` input cannot come from a URI\n  help: use `type: uri_file` or `type: uri_folder`",
            at(),
        ),
    };
    let announce = |key: &str, size: u64| {
        eprintln!(
            "inputs.{name}: {}",
            crate::cli::data::download_line(key, size)
        );
    };
    let copy = crate::datastore::fetch(&ws.data_cache(), &uri, given, kind, &announce)
        .await
        .with_context(at)?;
    tracing::info!(
        "inputs.{name}: {given}: {} (sha256:{})",
        crate::cli::data::describe(copy.outcome),
        &copy.record.content_hash()[..12]
    );
    let file_name = uri.file_name().unwrap_or(name).to_string();
    Ok((copy.path, file_name))
}

/// How a local data input reaches the container (checked to be one of these two).
fn input_mode(mode: spec::InputMode) -> InputMode {
    if mode == spec::InputMode::Download {
        InputMode::Download
    } else {
        InputMode::RoMount
    }
}

/// A `custom_model`/`mlflow_model` input whose path names a registered model.
fn is_model_ref(d: &spec::DataInput) -> bool {
    matches!(
        d.input_type,
        spec::InputType::CustomModel | spec::InputType::MlflowModel
    ) && d
        .path
        .as_ref()
        .is_some_and(|p| p.given.starts_with("azureml:") && !p.given.starts_with("azureml://"))
}

/// The host path of `given` when it is an `azureml://datastores/<name>/paths/...` URI of a
/// datastore on this host (the workspace's own, or one the config gives a `path:`).
fn local_datastore_path(cwd: &Path, given: &str) -> anyhow::Result<Option<PathBuf>> {
    let Some(ws) = crate::workspace::Workspace::find(cwd) else {
        return Ok(None);
    };
    let config = ws.read_config()?;
    crate::datastore::uri::local_datastore(
        given,
        &config.datastores,
        &crate::datastore::upload::workspace_datastore(&ws),
    )
    .transpose()
    .map_err(|e| anyhow::anyhow!("`{given}`: {e}"))
}

/// Where output `name` with `path:` is copied once its run completes: a datastore folder
/// of this host (not into registered data's copies); `None`, with a warning, elsewhere.
fn output_destination(
    cwd: &Path,
    f: &str,
    name: &str,
    path: &str,
) -> anyhow::Result<Option<String>> {
    let found =
        local_datastore_path(cwd, path).with_context(|| format!("{f}: `outputs.{name}.path`"))?;
    let Some(dest) = found else {
        tracing::warn!(
            "{f}: `outputs.{name}.path: {path}` is ignored: tug writes outputs to datastores of this host only (`tug datastore list`); this one stays in the run's folder (`tug job download`)"
        );
        return Ok(None);
    };
    if path.contains("/paths/LocalUpload/") {
        bail!(
            "{f}: `outputs.{name}.path: {path}`: LocalUpload/ holds registered data, which does not change\n  help: write the output somewhere else in the datastore, e.g. azureml://datastores/workspaceblobstore/paths/results/${{{{name}}}}/"
        );
    }
    Ok(Some(dest.display().to_string()))
}

/// `azureml:<name>:<version>` or `@latest` on a `uri_file`/`uri_folder` input: a data asset.
fn is_data_ref(d: &spec::DataInput) -> bool {
    matches!(
        d.input_type,
        spec::InputType::UriFile | spec::InputType::UriFolder
    ) && d
        .path
        .as_ref()
        .is_some_and(|p| p.given.starts_with("azureml:") && !p.given.starts_with("azureml://"))
}

/// The data asset version `given` (`azureml:n:v`, `azureml:n@latest`, `azureml:n`) names.
async fn data_asset(client: &Client, given: &str) -> anyhow::Result<crate::store::DataRecord> {
    let Some((name, version)) = spec::registered_component(given) else {
        bail!(
            "`{given}`: tug knows the `latest` label only\n  help: write `azureml:<name>@latest` or `azureml:<name>:<version>`"
        );
    };
    let path = crate::client::asset_path("data", &name, version.as_deref());
    Ok(client.get(&path).await?)
}

/// The folder of the registered model version `given` (`azureml:n:v`, `azureml:n@latest`)
/// names: what a model input mounts, as Azure mounts a model's folder.
async fn registered_model_dir(client: &Client, cwd: &Path, given: &str) -> anyhow::Result<PathBuf> {
    let (name, version) = match spec::ModelRef::parse(given).map_err(spec_error)? {
        spec::ModelRef::Registered { name, version } => (name, version),
        _ => bail!("`{given}` is not a model in this workspace"),
    };
    let v = match &version {
        spec::AssetVersion::Version(v) => v.clone(),
        spec::AssetVersion::Latest => "latest".into(),
    };
    let rec: crate::store::ModelRecord = client
        .get(&format!(
            "/api/models/{}/{}",
            crate::client::urlencode(&name),
            crate::client::urlencode(&v)
        ))
        .await?;
    let ws = crate::workspace::Workspace::find(cwd).context("no workspace")?;
    Ok(crate::registry::version_dir(&ws, &rec.name, &rec.version))
}

/// An `environment:` value resolved: inline ones read from disk (a build context still to
/// upload), registered ones fetched from the server, Azure's curated names through the
/// workspace's curated map.
pub async fn resolve_environment(
    client: &Client,
    cwd: &Path,
    f: &str,
    env: &EnvironmentRef,
) -> anyhow::Result<(ResolvedEnvironment, Option<Vec<u8>>)> {
    if let Some(curated) = spec::curated::curated_name(env) {
        return resolve_curated(client, cwd, f, env, &curated).await;
    }
    let (mut resolved, context) = match env {
        EnvironmentRef::Inline(env) => local_environment(cwd, f, env)?,
        EnvironmentRef::Registered { name, version } => (
            registered_environment(client, f, name, version).await?,
            None,
        ),
        EnvironmentRef::Registry { registry, name, .. } => bail!(
            "{f}: `environment`: `{name}` lives in the Azure ML registry `{registry}`, which tug cannot reach\n  help: register a local equivalent with `tug environment create -f env.yml` and use `environment: azureml:{name}@latest`"
        ),
    };
    // Stand-ins apply when a job runs, not when an environment is registered: a registered
    // environment keeps the image it names, and a later `images:` change reaches it.
    if let ResolvedEnvironment::Image { image, .. } = &mut resolved {
        *image = image_stand_in(cwd, f, image)?;
    }
    Ok((resolved, context))
}

async fn registered_environment(
    client: &Client,
    f: &str,
    name: &str,
    version: &spec::AssetVersion,
) -> anyhow::Result<ResolvedEnvironment> {
    let path = match version {
        spec::AssetVersion::Version(v) => format!(
            "/api/environments/{}?version={}",
            crate::client::urlencode(name),
            crate::client::urlencode(v)
        ),
        spec::AssetVersion::Latest => {
            format!("/api/environments/{}", crate::client::urlencode(name))
        }
    };
    let rec: EnvironmentRecord = client
        .get(&path)
        .await
        .with_context(|| format!("{f}: `environment`"))?;
    Ok(rec.environment)
}

/// A curated name (`AzureML-sklearn-1.5`, `azureml://registries/azureml/...`) through the
/// workspace's `curated:` map and the built-in stand-ins.
async fn resolve_curated(
    client: &Client,
    cwd: &Path,
    f: &str,
    env: &EnvironmentRef,
    curated: &str,
) -> anyhow::Result<(ResolvedEnvironment, Option<Vec<u8>>)> {
    let given = env.to_string();
    let config = match crate::workspace::Workspace::find(cwd) {
        Some(ws) => ws.read_config()?,
        None => Default::default(),
    };
    let entries = spec::curated::entries(&config.curated).with_context(|| "workspace config")?;
    let Some(entry) = spec::curated::lookup(&entries, curated) else {
        bail!(
            "{f}: `environment: {given}` is an Azure ML curated environment\n  help: {}",
            spec::curated::missing_help(curated)
        );
    };
    tracing::info!(
        "{f}: curated environment `{given}` runs as {} ({:?} entry `{}`)",
        entry.stand_in,
        entry.source,
        entry.key
    );
    Ok(match spec::curated::stand_in(entry) {
        spec::curated::StandIn::Image(image) => (
            ResolvedEnvironment::Image {
                image,
                conda_file: None,
                pip_requirements: vec![],
            },
            None,
        ),
        spec::curated::StandIn::Registered { name, version } => (
            registered_environment(client, f, &name, &version)
                .await
                .with_context(|| {
                    format!(
                        "`{given}` is mapped to `azureml:{name}` by the workspace's `curated:` map"
                    )
                })?,
            None,
        ),
    })
}

/// The image an environment's `image:` runs as: the workspace's `images:` stand-in, if one
/// matches, else the image itself.
fn image_stand_in(cwd: &Path, f: &str, image: &str) -> anyhow::Result<String> {
    let Some(ws) = crate::workspace::Workspace::find(cwd) else {
        return Ok(image.to_string());
    };
    let config = ws.read_config()?;
    Ok(match spec::image_map::lookup(&config.images, image) {
        Some((key, local)) => {
            tracing::info!(
                "{f}: image `{image}` runs as `{local}` (workspace `images:` entry `{key}`)"
            );
            local.to_string()
        }
        None => image.to_string(),
    })
}

/// An environment file's environment as a job would run it, from the files alone (no
/// server): the workspace's `images:` stand-in applied, a build context as its tar, named
/// by the hash an upload would give it.
pub fn environment_from_files(
    cwd: &Path,
    file: &Path,
    env: &EnvironmentSpec,
) -> anyhow::Result<(ResolvedEnvironment, Option<Vec<u8>>)> {
    let f = file.display().to_string();
    let (mut resolved, context) = local_environment(cwd, &f, env)?;
    match &mut resolved {
        ResolvedEnvironment::Image { image, .. } => *image = image_stand_in(cwd, &f, image)?,
        ResolvedEnvironment::Build {
            context_snapshot, ..
        } => {
            if let Some(tar) = &context {
                *context_snapshot = crate::snapshot::sha256_hex(tar);
            }
        }
    }
    Ok((resolved, context))
}

/// An environment with its local files read; a build context still to upload.
fn local_environment(
    cwd: &Path,
    f: &str,
    env: &EnvironmentSpec,
) -> anyhow::Result<(ResolvedEnvironment, Option<Vec<u8>>)> {
    match &env.source {
        EnvironmentSource::Image { image, conda_file } => {
            let (conda_text, reqs) = match conda_file {
                None => (None, vec![]),
                Some(spec::CondaFile::Inline(c)) => {
                    let text = serde_yaml::to_string(c)?;
                    (Some(text), c.pip_plan().pip_requirements)
                }
                Some(spec::CondaFile::Path(p)) => {
                    let local = p.local.as_ref().with_context(|| {
                        format!("{f}: `conda_file: {}`: must be a local file", p.given)
                    })?;
                    let path = absolute(cwd, local);
                    let text = match spec::limits::read_file(&path) {
                        Ok(text) => text,
                        Err(spec::limits::ReadError::Spec(e)) => return Err(spec_error(*e)),
                        Err(spec::limits::ReadError::Io(e)) => {
                            return Err(anyhow::Error::new(e).context(format!(
                                "{f}: `conda_file: {}`: cannot read {}\n  help: `conda_file:` is relative to the YAML file",
                                p.given,
                                path.display()
                            )));
                        }
                    };
                    let plan = spec::conda_pip_plan(&path, &text).map_err(spec_error)?;
                    for pkg in &plan.conda_only {
                        tracing::warn!(
                            "{}: `{pkg}` exists only as a conda package; the base image has no conda, so it is not installed",
                            path.display()
                        );
                    }
                    (Some(text), plan.pip_requirements)
                }
            };
            Ok((
                ResolvedEnvironment::Image {
                    image: image.clone(),
                    conda_file: conda_text,
                    pip_requirements: reqs,
                },
                None,
            ))
        }
        EnvironmentSource::Build { build } => {
            let local = build.path.local.as_ref().with_context(|| {
                format!(
                    "{f}: `build.path: {}`: only a local folder can be a build context so far",
                    build.path.given
                )
            })?;
            let dir = absolute(cwd, local);
            if !dir.join(&build.dockerfile_path).is_file() {
                bail!(
                    "{f}: `build`: {} has no {}\n  help: set `build.dockerfile_path` to the Dockerfile's path inside the context",
                    dir.display(),
                    build.dockerfile_path
                );
            }
            let entries = crate::snapshot::read_folder(&dir)?;
            Ok((
                ResolvedEnvironment::Build {
                    context_snapshot: String::new(),
                    dockerfile_path: build.dockerfile_path.clone(),
                },
                Some(crate::snapshot::tar_bytes(&entries, "", 0, 0)),
            ))
        }
    }
}

pub async fn finish_environment(
    client: &Client,
    env: ResolvedEnvironment,
    context: Option<Vec<u8>>,
) -> anyhow::Result<ResolvedEnvironment> {
    Ok(match (env, context) {
        (
            ResolvedEnvironment::Build {
                dockerfile_path, ..
            },
            Some(tar),
        ) => ResolvedEnvironment::Build {
            context_snapshot: upload(client, tar).await?,
            dockerfile_path,
        },
        (env, _) => env,
    })
}

pub async fn upload(client: &Client, tar: Vec<u8>) -> anyhow::Result<String> {
    #[derive(serde::Deserialize)]
    struct Created {
        sha256: String,
    }
    let c: Created = client.post_bytes("/api/snapshots", tar).await?;
    Ok(c.sha256)
}

/// Resolves an environment file for registration.
pub async fn environment_record(
    client: &Client,
    cwd: &Path,
    file: &Path,
    env: &EnvironmentSpec,
    name: Option<String>,
    version: Option<String>,
) -> anyhow::Result<EnvironmentRecord> {
    let f = file.display().to_string();
    let name = name.or_else(|| env.name.clone()).with_context(|| {
        format!("{f}: a registered environment needs `name:`\n  help: add `name: my-env` to the file or pass --name")
    })?;
    let (resolved, context) = local_environment(cwd, &f, env)?;
    let environment = finish_environment(client, resolved, context).await?;
    Ok(EnvironmentRecord {
        name,
        version: version.or_else(|| env.version.clone()).unwrap_or_default(),
        description: env.description.clone(),
        environment,
        created_at: String::new(),
    })
}
