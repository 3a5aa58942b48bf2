//! The sweep job file (`type: sweep`): its types, the checks that need the whole file, and
//! how a trial's command is rendered with its sampled values.
//!
//! The file is read in two steps: a private raw form with `deny_unknown_fields` (serde gives
//! the unknown-key, wrong-type and missing-key errors) and a finishing pass that turns the
//! search space, sampler and policy into the shared vocabulary of [`crate::sweep`], re-reading
//! every number with Azure's YAML 1.1 rules (`1e-3` without a dot is text there) and locating
//! every error at its key or value.
//!
//! The finishing pass of the search space lives in `sweep_space.rs` and that of the sampler,
//! limits and early-termination policy in `sweep_settings.rs`; this file keeps the public types,
//! the trial command and the steps that tie the file together.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::document::Document;
use super::enums::JobKind;
use super::environment::EnvironmentRef;
use super::error::{Origin, SpecError, backticked};
use super::fields::{
    SourcePath, compute, default_compute, fix_scalar_map, null_default, scalar_map,
};
use super::index::join;
use super::io::{Input, Output, finish_inputs, finish_outputs};
use super::job::{
    CommandJob, Distribution as ProcessDistribution, Identity, Limits, QueueSettings, Resources,
    Service,
};
use super::literal::python_float_repr;
use super::sweep_settings::{
    RawLimits, RawPolicy, RawSampling, limits, policy, sampling_algorithm,
};
use super::sweep_space::{RawDimension, search_space};
use crate::sweep::{EarlyTermination, Goal, ParamValue, Params, SamplingAlgorithm, SearchSpace};

/// What tug does with `sampling_algorithm: bayesian` and distributions Azure does not allow
/// with it, in words the README can quote.
pub const BAYESIAN_DISTRIBUTIONS_NOTE: &str = "Azure ML's Bayesian sampling accepts only `choice`, `uniform` and `quniform` search-space entries; tug accepts every distribution with `sampling_algorithm: bayesian`, so a sweep file tug runs may be refused by Azure (keep to those three for files meant for both). Early termination with `bayesian` is refused, as Azure does.";

/// Azure's range for `limits.max_total_trials` (its documented default is the maximum).
pub const MAX_TOTAL_TRIALS: u32 = 1000;
/// Azure's upper bound for `limits.max_concurrent_trials`.
pub const MAX_CONCURRENT_TRIALS: u32 = 100;
/// Azure's default `limits.timeout` of a sweep, in seconds (60 days).
pub const DEFAULT_SWEEP_TIMEOUT: u64 = 5_184_000;

/// A sweep job (`type: sweep`): many trials of one command, each with values drawn from
/// `search_space` by `sampling_algorithm`, judged by `objective`, within `limits`, optionally
/// cut short by `early_termination`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepJob {
    /// `$schema`: informational only.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Always [`JobKind::Sweep`].
    #[serde(rename = "type")]
    pub kind: JobKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// The target's bare name (`azureml:gpu` → `gpu`); `local` when absent.
    pub compute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    /// The sweep's inputs, which the trial command reads as `${{inputs.x}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Input>,
    /// The sweep's outputs (Azure: the best trial's outputs become the sweep's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Output>,
    /// The sweep-level `resources:`; see [`SweepJob::trial_resources`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Interactive services (cloud only; kept so Azure files load).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Service>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_settings: Option<QueueSettings>,
    /// What each trial runs.
    pub trial: SweepTrial,
    pub sampling_algorithm: SamplingAlgorithm,
    /// Name → distribution, names `^[a-zA-Z_][a-zA-Z0-9_]*$`.
    pub search_space: SearchSpace,
    pub objective: Objective,
    /// With Azure's defaults filled in.
    pub limits: SweepLimits,
    /// `None`: every trial runs to completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early_termination: Option<EarlyTermination>,
}

/// `trial:` of a sweep job: the command-job fields a trial has (same types as
/// [`super::CommandJob`]'s).
///
/// Only the inline form is read. Azure's pipeline sweep nodes may instead name a component
/// file (`trial: ./train.yml`); a standalone sweep job cannot, and tug refuses the string form
/// with a message that says to inline the component's `command`, `code` and `environment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepTrial {
    /// The shell command; may use `${{search_space.x}}`, `${{inputs.x}}` and `${{outputs.x}}`.
    pub command: String,
    /// The code snapshot (working directory); a local path is joined to the YAML file's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<SourcePath>,
    pub environment: EnvironmentRef,
    /// Values are Python `str()` of the YAML 1.1 scalar (`yes` → `True`).
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment_variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<ProcessDistribution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// tug's extension: where the trials run when not where the sweep says (`compute:`),
    /// say the sweep's bookkeeping here and its trials on a cluster.
    #[serde(
        default,
        deserialize_with = "optional_compute",
        skip_serializing_if = "Option::is_none"
    )]
    pub compute: Option<String>,
}

fn optional_compute<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    compute(d).map(Some)
}

/// `objective:`: the metric each trial logs (with `mlflow.log_metric`) and which way is better.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// `maximize` or `minimize`, case-insensitive.
    pub goal: Goal,
    /// The metric name, as logged (may contain `-`, `.`, spaces).
    pub primary_metric: String,
}

/// `limits:` of a sweep job, with Azure's defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepLimits {
    /// `1..=1000`; default 1000 (Azure's documented default; the SDK requires the key).
    pub max_total_trials: u32,
    /// `1..=100`. Azure documents "default: `max_total_trials`"; tug resolves an absent value
    /// to `min(max_total_trials, 100)` so it stays in Azure's range. A value above
    /// `max_total_trials` is accepted and lowered to it (only that many trials can ever
    /// run at once; Azure's schema does not relate the two).
    pub max_concurrent_trials: u32,
    /// Seconds for the whole sweep (trials included); default 5184000 (60 days).
    pub timeout: u64,
    /// Seconds for each trial; none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_timeout: Option<u64>,
}

impl Default for SweepLimits {
    fn default() -> Self {
        SweepLimits {
            max_total_trials: MAX_TOTAL_TRIALS,
            max_concurrent_trials: MAX_CONCURRENT_TRIALS,
            timeout: DEFAULT_SWEEP_TIMEOUT,
            trial_timeout: None,
        }
    }
}

impl SweepJob {
    /// The resources each trial runs with: the trial's own `resources:` if given, else the
    /// sweep's, else the defaults (Azure documents both keys, not which one wins [INF]).
    pub fn trial_resources(&self) -> Resources {
        self.trial
            .resources
            .clone()
            .or_else(|| self.resources.clone())
            .unwrap_or_default()
    }

    /// One trial as a command job, for the command-job submission path: the trial's fields,
    /// the sweep's metadata, inputs and outputs, [`SweepJob::trial_resources`], `limits.timeout`
    /// = the sweep's `trial_timeout`, and the command with its search-space references replaced
    /// by `params` as Azure writes them ([`render_param`]); `${{inputs.x}}` / `${{outputs.x}}`
    /// stay for the command-job rendering. Errors as [`render_trial_command`]'s.
    pub fn trial_job(&self, params: &Params) -> Result<CommandJob, SpecError> {
        let values = self.param_texts(params)?;
        let names: Vec<&str> = self.search_space.keys().map(String::as_str).collect();
        let command = super::expr::substitute_search_space(&self.trial.command, &names, &values)?;
        Ok(CommandJob {
            schema: None,
            kind: JobKind::Command,
            name: None,
            display_name: self.display_name.clone(),
            experiment_name: self.experiment_name.clone(),
            description: self.description.clone(),
            tags: self.tags.clone(),
            properties: self.properties.clone(),
            command,
            code: self.trial.code.clone(),
            environment: self.trial.environment.clone(),
            environment_variables: self.trial.environment_variables.clone(),
            compute: self
                .trial
                .compute
                .clone()
                .unwrap_or_else(|| self.compute.clone()),
            resources: self.trial_resources(),
            distribution: self.trial.distribution.clone(),
            limits: self
                .limits
                .trial_timeout
                .map(|t| Limits { timeout: Some(t) }),
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            services: self.services.clone(),
            identity: self.identity.clone(),
            queue_settings: self.queue_settings.clone(),
        })
    }

    /// A sweep of `trial` (a resolved command job: a pipeline's sweep step) with
    /// `settings`; the trial's limits are the sweep's `trial_timeout`.
    pub fn from_trial(trial: CommandJob, settings: SweepSettings) -> SweepJob {
        SweepJob {
            schema: None,
            kind: JobKind::Sweep,
            name: trial.name,
            display_name: trial.display_name,
            experiment_name: trial.experiment_name,
            description: trial.description,
            tags: trial.tags,
            properties: trial.properties,
            compute: trial.compute,
            identity: trial.identity,
            inputs: trial.inputs,
            outputs: trial.outputs,
            resources: None,
            services: trial.services,
            queue_settings: trial.queue_settings,
            trial: SweepTrial {
                command: trial.command,
                code: trial.code,
                environment: trial.environment,
                environment_variables: trial.environment_variables,
                distribution: trial.distribution,
                resources: Some(trial.resources),
                compute: None,
            },
            sampling_algorithm: settings.sampling_algorithm,
            search_space: settings.search_space,
            objective: settings.objective,
            limits: settings.limits,
            early_termination: settings.early_termination,
        }
    }

    /// Each search-space value as the reference itself (strings render bare), so a trial
    /// command rendered with them keeps `${{search_space.x}}` (also where `${{inputs.x}}`
    /// named a search-space entry) for the controller to fill in per trial.
    pub fn placeholder_params(&self) -> Params {
        self.search_space
            .keys()
            .map(|k| (k.clone(), format!("${{{{search_space.{k}}}}}").into()))
            .collect()
    }

    /// `params` as command text by name, refusing names the search space does not have.
    fn param_texts(&self, params: &Params) -> Result<BTreeMap<String, String>, SpecError> {
        if let Some(extra) = params.keys().find(|k| !self.search_space.contains_key(*k)) {
            return Err(SpecError::InvalidValue {
                origin: Origin::Inline,
                field: join("search_space", extra),
                message: format!(
                    "the trial's parameters name `{extra}`, which is not in the search space"
                ),
                help: format!(
                    "parameters must come from the search space ({})",
                    backticked(&self.search_space.keys().collect::<Vec<_>>())
                ),
            });
        }
        Ok(params
            .iter()
            .map(|(k, v)| (k.clone(), render_param(v)))
            .collect())
    }

    /// Search-space names the trial command never uses (neither `${{search_space.x}}` nor a
    /// shadowing `${{inputs.x}}`). Azure accepts these (v2 passes only what the command
    /// names), so they are not an error; a caller may warn about them.
    pub fn unused_dimensions(&self) -> Vec<&str> {
        let command = &self.trial.command;
        self.search_space
            .keys()
            .map(String::as_str)
            .filter(|name| {
                !super::expr::mentions(command, "search_space", name)
                    && !super::expr::mentions(command, "inputs", name)
            })
            .collect()
    }
}

/// How Azure writes a sampled value into a command: Python `str()` of it — strings bare,
/// integers as integers, floats in Python `repr` (`0.001`, `1e-05`, `1.0`), booleans `True` /
/// `False`.
pub fn render_param(value: &ParamValue) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.to_string()
            } else if let Some(u) = n.as_u64() {
                u.to_string()
            } else {
                python_float_repr(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// The trial command of `job` for one trial: `${{search_space.x}}` (and `${{inputs.x}}` where
/// `x` is a search-space name, which the SDK rewrites to it) become the sampled value as Azure
/// writes it ([`render_param`]); `inputs` and `outputs` are what [`super::render_command`]
/// takes (container paths, rendered literals). Errors name no file (origin `Inline`): a value
/// missing from `params`, or a name in `params` the search space does not have.
pub fn render_trial_command(
    job: &SweepJob,
    params: &Params,
    inputs: &BTreeMap<String, String>,
    outputs: &BTreeMap<String, String>,
) -> Result<String, SpecError> {
    let values = job.param_texts(params)?;
    let mut inputs = inputs.clone();
    inputs.extend(values.iter().map(|(k, v)| (k.clone(), v.clone())));
    super::expr::render_template(&job.trial.command, &inputs, outputs, Some(&values))
}

// ---------------------------------------------------------------------------------------------
// Reading.

const SWEEP_EXAMPLE: &str = "      type: sweep\n      trial:\n        command: python train.py --lr ${{search_space.lr}}\n        environment:\n          image: python:3.11-slim\n      sampling_algorithm: random\n      search_space:\n        lr: {type: uniform, min_value: 0.001, max_value: 0.1}\n      objective: {goal: maximize, primary_metric: accuracy}\n      limits: {max_total_trials: 20}";

/// The file as written; validated and converted by [`RawSweep::finish`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSweep {
    #[serde(rename = "$schema", default)]
    schema: Option<String>,
    #[serde(rename = "type")]
    kind: JobKind,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    experiment_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_map")]
    properties: BTreeMap<String, String>,
    #[serde(default = "default_compute", deserialize_with = "compute")]
    compute: String,
    #[serde(default)]
    identity: Option<Identity>,
    #[serde(default, deserialize_with = "null_default")]
    inputs: BTreeMap<String, Input>,
    #[serde(default, deserialize_with = "null_default")]
    outputs: BTreeMap<String, Output>,
    #[serde(default)]
    resources: Option<Resources>,
    #[serde(default, deserialize_with = "null_default")]
    services: BTreeMap<String, Service>,
    #[serde(default)]
    queue_settings: Option<QueueSettings>,
    #[serde(default)]
    trial: Option<SweepTrial>,
    #[serde(default)]
    sampling_algorithm: Option<RawSampling>,
    #[serde(default)]
    search_space: Option<BTreeMap<String, RawDimension>>,
    #[serde(default)]
    objective: Option<Objective>,
    #[serde(default)]
    limits: Option<RawLimits>,
    #[serde(default)]
    early_termination: Option<RawPolicy>,
}

/// Checks on the raw document before the typed reading.
pub(crate) fn precheck(doc: &Document) -> Result<(), SpecError> {
    let root = doc.root_mapping(SWEEP_EXAMPLE)?;
    match super::job::job_kind(doc)? {
        JobKind::Sweep => {}
        JobKind::Pipeline => {
            return Err(doc.invalid(
                "type",
                false,
                "this is a pipeline job (`type: pipeline`), not a sweep job".into(),
                "read it as a pipeline job",
            ));
        }
        JobKind::Command => {
            let stated = root.get("type").is_some();
            let message = if stated {
                "this is a command job (`type: command`), not a sweep job".to_string()
            } else {
                "this file has no `type: sweep`, so it is a command job, not a sweep job".into()
            };
            let field = if stated { "type" } else { "" };
            return Err(doc.invalid(
                field,
                false,
                message,
                "read it as a command job, or add `type: sweep` with `trial:`, `search_space:`, `sampling_algorithm:` and `objective:`",
            ));
        }
    }
    if let Some(serde_yaml::Value::String(path)) = root.get("trial") {
        return Err(doc.unsupported(
            "trial",
            false,
            format!("`trial: {path}`: a trial given as a component file is not supported by tug (Azure allows it only in pipeline sweep nodes)"),
            "write the trial inline: `trial:` with `command:`, `code:` and `environment:` copied from the component",
        ));
    }
    Ok(())
}

impl RawSweep {
    pub(crate) fn finish(self, doc: &Document) -> Result<SweepJob, SpecError> {
        let mut tags = self.tags;
        let mut properties = self.properties;
        fix_scalar_map(doc, "tags", &mut tags);
        fix_scalar_map(doc, "properties", &mut properties);
        let required = |field: &str, what: &str| {
            doc.missing(
                field,
                "type",
                format!("missing required field `{field}`: a sweep job needs {what}"),
                format!("add it; a minimal sweep job looks like:\n{SWEEP_EXAMPLE}"),
            )
        };
        let mut trial = self
            .trial
            .ok_or_else(|| required("trial", "the command each trial runs"))?;
        let sampling = self.sampling_algorithm.ok_or_else(|| {
            required(
                "sampling_algorithm",
                "a sampler (`random`, `grid` or `bayesian`)",
            )
        })?;
        let raw_space = self
            .search_space
            .ok_or_else(|| required("search_space", "the values to try"))?;
        let objective = self
            .objective
            .ok_or_else(|| required("objective", "the metric to optimize"))?;

        let settings = SweepSettings::read(
            doc,
            sampling,
            raw_space,
            objective,
            self.limits,
            self.early_termination,
        )?;
        let SweepSettings {
            sampling_algorithm,
            search_space,
            objective,
            limits,
            early_termination,
        } = settings;

        let mut inputs = self.inputs;
        finish_inputs(doc, &mut inputs)?;
        finish_outputs(doc, &self.outputs)?;
        finish_trial(doc, &mut trial)?;
        let names: Vec<&str> = search_space.keys().map(String::as_str).collect();
        super::expr::validate_command(
            doc,
            "trial.command",
            &trial.command,
            &inputs,
            &self.outputs,
            Some(&names),
        )?;
        Ok(SweepJob {
            schema: self.schema,
            kind: self.kind,
            name: self.name,
            display_name: self.display_name,
            experiment_name: self.experiment_name,
            description: self.description,
            tags,
            properties,
            compute: self.compute,
            identity: self.identity,
            inputs,
            outputs: self.outputs,
            resources: self.resources,
            services: self.services,
            queue_settings: self.queue_settings,
            trial,
            sampling_algorithm,
            search_space,
            objective,
            limits,
            early_termination,
        })
    }
}

/// The settings a sweep job and a pipeline's sweep step share, read and checked alike.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSettings {
    pub sampling_algorithm: SamplingAlgorithm,
    pub search_space: SearchSpace,
    pub objective: Objective,
    pub limits: SweepLimits,
    pub early_termination: Option<EarlyTermination>,
}

impl SweepSettings {
    /// Reads the settings with every error located at its field of `doc` (a file, or a
    /// step's view of one).
    pub(super) fn read(
        doc: &Document,
        sampling: RawSampling,
        raw_space: BTreeMap<String, RawDimension>,
        objective: Objective,
        raw_limits: Option<RawLimits>,
        raw_policy: Option<RawPolicy>,
    ) -> Result<SweepSettings, SpecError> {
        let sampling_algorithm = sampling_algorithm(doc, sampling)?;
        let search_space = search_space(doc, raw_space, &sampling_algorithm)?;
        if objective.primary_metric.trim().is_empty() {
            return Err(doc.invalid(
                "objective.primary_metric",
                false,
                "`objective.primary_metric` is empty".into(),
                "name the metric each trial logs with `mlflow.log_metric`, e.g. `primary_metric: accuracy`",
            ));
        }
        let limits = limits(doc, raw_limits)?;
        let early_termination = match raw_policy {
            None => None,
            Some(raw) => Some(policy(doc, raw)?),
        };
        if early_termination.is_some() && sampling_algorithm == SamplingAlgorithm::Bayesian {
            return Err(doc.invalid(
                "early_termination",
                true,
                "`early_termination` cannot be used with `sampling_algorithm: bayesian` (Azure refuses it: the Bayesian sampler learns from every trial's final value)".into(),
                "remove `early_termination:`, or use `sampling_algorithm: random`",
            ));
        }
        Ok(SweepSettings {
            sampling_algorithm,
            search_space,
            objective,
            limits,
            early_termination,
        })
    }
}

/// Read the file: see [`super::parse_sweep_job`].
pub(crate) fn read(doc: &Document) -> Result<SweepJob, SpecError> {
    precheck(doc)?;
    let raw: RawSweep = doc.deserialize()?;
    raw.finish(doc)
}

fn finish_trial(doc: &Document, trial: &mut SweepTrial) -> Result<(), SpecError> {
    fix_scalar_map(
        doc,
        "trial.environment_variables",
        &mut trial.environment_variables,
    );
    if trial.command.trim().is_empty() {
        return Err(doc.invalid(
            "trial.command",
            false,
            "`trial.command` is empty".into(),
            "give the shell command each trial runs, e.g. `command: python train.py --lr ${{search_space.lr}}`",
        ));
    }
    if let Some(r) = &trial.resources
        && r.instance_count == 0
    {
        return Err(doc.invalid(
            "trial.resources.instance_count",
            false,
            "`trial.resources.instance_count` is 0; a trial needs at least one instance".into(),
            "set `instance_count: 1` (or leave it out; 1 is the default)",
        ));
    }
    if let EnvironmentRef::Inline(env) = &mut trial.environment {
        env.finish(doc, "trial.environment");
    }
    if let Some(code) = &mut trial.code {
        code.resolve(doc.path.parent().unwrap_or(Path::new("")));
    }
    Ok(())
}
