//! Azure ML CLI v2 file formats (command job, sweep job, environment, conda file, model, online
//! endpoint, online deployment): typed, validated, located errors.
//!
//! Pure code: callers read files and pass `(path, text)`; `path` is used for messages and to
//! join relative paths (`code:`, data and model `path:`, `conda_file:`, `build.path`) to the
//! YAML file's directory, never opened.
//!
//! Reading a file goes: YAML text → `serde_yaml::Value` (syntax and duplicate-key errors) →
//! `--set` overrides applied → typed reading with `deny_unknown_fields` (serde errors turned
//! into [`SpecError`]s with position, field path, did-you-mean and a fix) → a finishing pass
//! that re-reads literals with Azure's YAML 1.1 rules (see `literal.rs`), joins paths and
//! checks what involves several fields (command expressions against declared inputs...).
//! Positions for errors found after deserialization come from a small source index
//! (`index.rs`) that maps dotted field paths to lines and columns.

mod component;
mod conda;
pub mod curated;
mod data_asset;
mod deployment;
mod deployment_settings;
mod diagnose;
mod document;
mod endpoint;
mod enums;
mod environment;
mod error;
pub(crate) mod expr;
mod fields;
pub mod image_map;
mod index;
mod io;
mod job;
pub mod limits;
mod literal;
mod model;
mod model_path;
mod overrides;
mod pipeline;
mod pipeline_component;
mod pipeline_nested;
mod pipeline_sweep;
mod scan;
mod schedule;
mod sweep;
mod sweep_settings;
mod sweep_space;

#[cfg(test)]
mod tests_component;
#[cfg(test)]
mod tests_corpus;
#[cfg(test)]
mod tests_hostile;
#[cfg(test)]
mod tests_parse;
#[cfg(test)]
mod tests_pipeline;
#[cfg(test)]
mod tests_serving;
#[cfg(test)]
mod tests_sweep;

use std::path::Path;

pub use component::{
    CommandComponent, ComponentInput, ComponentOutput, Given, coerce_literal, valid_component_name,
};
pub use conda::{CondaDependency, CondaSpec, PipPlan};
pub use data_asset::DataAsset;
pub use deployment::{CodeConfiguration, OnlineDeploymentSpec};
pub use deployment_settings::{
    DataCollector, ProbeSettings, RequestSettings, ResourceRequirements, ResourceSettings,
    ScaleSettings, max_request_timeout_ms,
};
pub use endpoint::{EndpointIdentity, OnlineEndpointSpec, UserAssignedIdentity, valid_online_name};
pub use enums::{
    AuthMode, DistributionType, EndpointComputeType, EndpointIdentityType, IdentityType, InputMode,
    InputType, JobKind, JobTier, ModelType, OsType, OutputMode, Priority, PublicNetworkAccess,
    RollingRate, ScaleType, ServiceType,
};
pub use environment::{
    AssetVersion, BuildContext, CondaFile, EnvironmentRef, EnvironmentSource, EnvironmentSpec,
    InferenceConfig, Route,
};
pub use error::{Origin, SpecError, edit_distance, levenshtein, nearest};
pub use expr::render_command;
pub use fields::SourcePath;
pub use io::{DataInput, Input, LiteralInput, Output, valid_io_name};
pub use job::{
    CommandJob, Distribution, DockerArgs, Identity, Limits, QueueSettings, Resources, Service,
};
pub use literal::{Literal, ScalarString, python_float_repr, resolve_plain};
pub use model::{InlineModel, ModelRef, ModelSpec, valid_model_name};
pub use model_path::{ModelPath, parse_model_path};
pub use overrides::apply_overrides;
pub use pipeline::{
    ComponentResolver, ComponentSource, PipelineJob, PipelineSettings, PipelineStep,
    STEP_OUTPUT_SCHEME, step_output_uri,
};
pub use pipeline_component::registered_component;
pub use schedule::{CreateJob, ScheduleFile};
pub use sweep::{
    BAYESIAN_DISTRIBUTIONS_NOTE, DEFAULT_SWEEP_TIMEOUT, MAX_CONCURRENT_TRIALS, MAX_TOTAL_TRIALS,
    Objective, SweepJob, SweepLimits, SweepSettings, SweepTrial, render_param,
    render_trial_command,
};

use document::Document;

/// Read a command job file.
///
/// `path` names the file in errors and is the base for relative paths; `text` is its content;
/// `overrides` are `--set key=value` pairs (`("inputs.lr", "0.1")`) applied before validation.
/// A `type` other than `command` is an error (sweep and pipeline jobs are not read here).
pub fn parse_command_job(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<CommandJob, SpecError> {
    let doc = Document::load(path, text, overrides, "command job")?;
    job::precheck(&doc)?;
    let mut job: CommandJob = doc.deserialize()?;
    job.finish(&doc)?;
    Ok(job)
}

/// The job type a job file declares, to choose its reader: [`JobKind::Command`] (no `type`,
/// or `type: command`) → [`parse_command_job`], [`JobKind::Sweep`] → [`parse_sweep_job`].
///
/// Other Azure ML job types (pipeline, parallel, spark...) and misspelled types are errors
/// located at `type:`, as are YAML syntax errors and files that are not a mapping.
pub fn job_file_kind(path: &Path, text: &str) -> Result<JobKind, SpecError> {
    let doc = Document::load(path, text, &[], "job")?;
    job::job_kind(&doc)
}

/// Read a sweep job file (`type: sweep`).
///
/// Same arguments as [`parse_command_job`]. The result has Azure's defaults filled in
/// ([`SweepLimits`]), every number read with YAML 1.1 rules, local paths joined to the file's
/// directory, and the trial command checked: each `${{search_space.x}}` names a declared
/// entry, each `${{inputs.x}}` a sweep input (or a search-space entry, which the SDK
/// substitutes). Rules enforced as Azure does: `grid` takes only `choice` entries, `bayesian`
/// takes no `early_termination`; see [`BAYESIAN_DISTRIBUTIONS_NOTE`] for where tug is more
/// permissive. A search-space entry the command never uses is not an error (Azure accepts it);
/// [`SweepJob::unused_dimensions`] lists them.
pub fn parse_sweep_job(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<SweepJob, SpecError> {
    let doc = Document::load(path, text, overrides, "sweep job")?;
    sweep::read(&doc)
}

/// Read a command component file (`name`, typed `inputs`/`outputs`, `command`,
/// `environment`; `az ml component create -f`). Local paths (`code`,
/// `additional_includes`) are joined to the file's directory.
pub fn parse_component(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<CommandComponent, SpecError> {
    let doc = Document::load(path, text, overrides, "command component")?;
    component::read(&doc)
}

/// Read a pipeline job file (`type: pipeline`): every step resolved into the command job
/// it runs, its bindings checked as a DAG. `resolve` reads the components steps name
/// (a file joined to this file's folder, or a registered one).
pub fn parse_pipeline_job(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
    resolve: &mut ComponentResolver<'_>,
) -> Result<PipelineJob, SpecError> {
    let doc = Document::load(path, text, overrides, "pipeline job")?;
    pipeline::read(&doc, resolve)
}

/// Read a schedule file (`name`, `trigger`, `create_job`; `az ml schedule create -f`).
/// `now` stands for an omitted `start_time` and decides whether the schedule would ever
/// fire; the job file `create_job` names is joined to this file's folder, not read.
pub fn parse_schedule(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
    now: jiff::Timestamp,
) -> Result<ScheduleFile, SpecError> {
    let doc = Document::load(path, text, overrides, "schedule")?;
    schedule::read(&doc, now)
}

/// Read a data asset file (`name`, `type`, `path`; `az ml data create -f`). A local
/// `path` is joined to the file's folder, not read.
pub fn parse_data_asset(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<DataAsset, SpecError> {
    let doc = Document::load(path, text, overrides, "data asset")?;
    data_asset::read(&doc)
}

/// Read an environment file (`image:` or `build:`, optional `conda_file:`).
///
/// A file with top-level `channels:`/`dependencies:` is a conda file and is rejected with a
/// hint to reference it through `conda_file:`.
pub fn parse_environment(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<EnvironmentSpec, SpecError> {
    let doc = Document::load(path, text, overrides, "environment")?;
    environment::precheck(&doc)?;
    let mut env: EnvironmentSpec = doc.deserialize()?;
    env.finish(&doc, "");
    Ok(env)
}

/// Read a conda environment file (`channels`, `dependencies`).
pub fn parse_conda(path: &Path, text: &str) -> Result<CondaSpec, SpecError> {
    let doc = Document::load(path, text, &[], "conda file")?;
    doc.root_mapping("      channels: [conda-forge]\n      dependencies:\n      - python=3.11\n      - pip:\n        - numpy")?;
    doc.deserialize()
}

/// Read a conda file and plan installing it with pip: see [`PipPlan`] and [`CondaSpec::pip_plan`].
pub fn conda_pip_plan(path: &Path, text: &str) -> Result<PipPlan, SpecError> {
    parse_conda(path, text).map(|spec| spec.pip_plan())
}

/// Read a model file (`name`, `path`, `type`...; `az ml model create -f`).
///
/// A local `path` is joined to the YAML file's directory; datastore URIs and URLs are read
/// but [`ModelPath::is_available_locally`] is false for them.
pub fn parse_model(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<ModelSpec, SpecError> {
    let doc = Document::load(path, text, overrides, "model")?;
    model::precheck(&doc)?;
    let mut model: ModelSpec = doc.deserialize()?;
    model.finish(&doc)?;
    Ok(model)
}

/// Read an online endpoint file (`name`, `auth_mode`, `traffic`...).
pub fn parse_online_endpoint(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<OnlineEndpointSpec, SpecError> {
    let doc = Document::load(path, text, overrides, "online endpoint")?;
    endpoint::precheck(&doc)?;
    let mut endpoint: OnlineEndpointSpec = doc.deserialize()?;
    endpoint.finish(&doc)?;
    Ok(endpoint)
}

/// Read an online deployment file (`name`, `endpoint_name`, `model`, `code_configuration`,
/// `environment`...). Checks that need the endpoint (does it exist, is its type the
/// deployment's) are the caller's.
pub fn parse_online_deployment(
    path: &Path,
    text: &str,
    overrides: &[(&str, &str)],
) -> Result<OnlineDeploymentSpec, SpecError> {
    let doc = Document::load(path, text, overrides, "online deployment")?;
    deployment::precheck(&doc)?;
    let mut deployment: OnlineDeploymentSpec = doc.deserialize()?;
    deployment.finish(&doc)?;
    Ok(deployment)
}
