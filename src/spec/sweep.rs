//! The sweep job file (`type: sweep`): its types, the checks that need the whole file, and
//! how a trial's command is rendered with its sampled values.
//!
//! The file is read in two steps: a private raw form with `deny_unknown_fields` (serde gives
//! the unknown-key, wrong-type and missing-key errors) and a finishing pass that turns the
//! search space, sampler and policy into the shared vocabulary of [`crate::sweep`], re-reading
//! every number with Azure's YAML 1.1 rules (`1e-3` without a dot is text there) and locating
//! every error at its key or value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::document::Document;
use super::enums::{JobKind, parse_choice};
use super::environment::EnvironmentRef;
use super::error::{Marked, MarkedKind, Origin, SpecError, backticked};
use super::fields::{
    SourcePath, compute, default_compute, fix_scalar_map, null_default, scalar_map,
};
use super::index::join;
use super::io::{Input, Output, finish_inputs, finish_outputs, valid_io_name};
use super::job::{
    CommandJob, Distribution as ProcessDistribution, Identity, Limits, QueueSettings, Resources,
    Service,
};
use super::literal::{Literal, python_float_repr};
use crate::sweep::{
    Distribution, EarlyTermination, Goal, ParamValue, Params, RandomRule, SamplingAlgorithm,
    SearchSpace, Slack,
};

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
            compute: self.compute.clone(),
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

/// `sampling_algorithm:` as written: a name, or a mapping with `type`.
enum RawSampling {
    Name(String),
    Map(RawSamplingMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSamplingMap {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    logbase: Option<serde_yaml::Value>,
}

impl<'de> Deserialize<'de> for RawSampling {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSampling;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`random`, `grid` or `bayesian`, or a mapping with `type`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSampling, E> {
                Ok(RawSampling::Name(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawSampling, A::Error> {
                RawSamplingMap::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawSampling::Map)
            }
        }
        d.deserialize_any(V)
    }
}

/// One `search_space:` entry as written: every parameter of every distribution, checked
/// against its `type` in [`dimension`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDimension {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    values: Option<Vec<ChoiceValue>>,
    #[serde(default)]
    upper: Option<Literal>,
    #[serde(default)]
    min_value: Option<Literal>,
    #[serde(default)]
    max_value: Option<Literal>,
    #[serde(default)]
    q: Option<Literal>,
    #[serde(default)]
    mu: Option<Literal>,
    #[serde(default)]
    sigma: Option<Literal>,
}

/// One element of `values:` of a `choice`: a scalar. Mappings (Azure's nested search
/// spaces) and lists are refused with their position.
struct ChoiceValue(Literal);

impl<'de> Deserialize<'de> for ChoiceValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ChoiceValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a single value (string, number or boolean)")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Int(v.into())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Int(v.into())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Str(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ChoiceValue, E> {
                Ok(ChoiceValue(Literal::Null))
            }
            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<ChoiceValue, A::Error> {
                Err(Marked::unsupported(
                    "`{field}` is a mapping: choices of nested search spaces are not supported by tug",
                    "make each choice a single value (text, number or boolean); to sweep several settings together, encode them in one string and split it in the script",
                )
                .into_de())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<ChoiceValue, A::Error> {
                Err(Marked::invalid(
                    "`{field}` is a list: each choice must be a single value",
                    "make each choice a single value (text, number or boolean), e.g. `values: [16, 32, 64]`",
                )
                .into_de())
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(default)]
    max_total_trials: Option<i64>,
    #[serde(default)]
    max_concurrent_trials: Option<i64>,
    #[serde(default)]
    timeout: Option<i64>,
    #[serde(default)]
    trial_timeout: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    evaluation_interval: Option<i64>,
    #[serde(default)]
    delay_evaluation: Option<i64>,
    #[serde(default)]
    slack_factor: Option<Literal>,
    #[serde(default)]
    slack_amount: Option<Literal>,
    #[serde(default)]
    truncation_percentage: Option<i64>,
    /// In one Azure doc example only (not in the SDK or REST schema); refused with a reason.
    #[serde(default)]
    exclude_finished_jobs: Option<serde_yaml::Value>,
}

/// Checks on the raw document before the typed reading.
pub(crate) fn precheck(doc: &Document) -> Result<(), SpecError> {
    let root = doc.root_mapping(SWEEP_EXAMPLE)?;
    match super::job::job_kind(doc)? {
        JobKind::Sweep => {}
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

/// A [`Marked`] error (from [`parse_choice`]) about `field`, located in `doc`.
fn located(doc: &Document, field: &str, m: Marked) -> SpecError {
    let message = m.message.replace("{field}", field);
    match m.kind {
        MarkedKind::Unsupported => doc.unsupported(field, false, message, m.help),
        _ => doc.invalid(field, false, message, m.help),
    }
}

const SAMPLERS: &[&str] = &["random", "grid", "bayesian"];
const POLICIES: &[&str] = &["bandit", "median_stopping", "truncation_selection"];
/// Each distribution and its parameters, in the order Azure's reference lists them.
const DISTRIBUTIONS: &[(&str, &[&str])] = &[
    ("choice", &["values"]),
    ("randint", &["upper"]),
    ("uniform", &["min_value", "max_value"]),
    ("quniform", &["min_value", "max_value", "q"]),
    ("loguniform", &["min_value", "max_value"]),
    ("qloguniform", &["min_value", "max_value", "q"]),
    ("normal", &["mu", "sigma"]),
    ("qnormal", &["mu", "sigma", "q"]),
    ("lognormal", &["mu", "sigma"]),
    ("qlognormal", &["mu", "sigma", "q"]),
];

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
        let limits = limits(doc, self.limits)?;
        let early_termination = match self.early_termination {
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

fn sampling_algorithm(doc: &Document, raw: RawSampling) -> Result<SamplingAlgorithm, SpecError> {
    let field = "sampling_algorithm";
    let (name, name_field, map) = match raw {
        RawSampling::Name(name) => (name, field.to_string(), None),
        RawSampling::Map(map) => {
            let Some(name) = map.kind.clone() else {
                return Err(doc.missing(
                    "sampling_algorithm.type",
                    field,
                    "missing required field `sampling_algorithm.type`".into(),
                    "add `type: random` (or `grid`, `bayesian`)",
                ));
            };
            (name, join(field, "type"), Some(map))
        }
    };
    let which = parse_choice("sampling algorithm", &name, SAMPLERS)
        .map_err(|m| located(doc, &name_field, m))?;
    let Some(map) = map else {
        return Ok(match which {
            0 => SamplingAlgorithm::Random {
                seed: None,
                rule: RandomRule::Random,
            },
            1 => SamplingAlgorithm::Grid,
            _ => SamplingAlgorithm::Bayesian,
        });
    };
    if which != 0 {
        let extra = [
            ("seed", map.seed.is_some()),
            ("rule", map.rule.is_some()),
            ("logbase", map.logbase.is_some()),
        ];
        if let Some((key, _)) = extra.iter().find(|(_, set)| *set) {
            return Err(doc.invalid(
                &join(field, key),
                true,
                format!(
                    "`sampling_algorithm.{key}` belongs to random sampling, but this one is `{}`",
                    SAMPLERS[which]
                ),
                format!("remove `{key}`, or use `type: random`"),
            ));
        }
        return Ok(if which == 1 {
            SamplingAlgorithm::Grid
        } else {
            SamplingAlgorithm::Bayesian
        });
    }
    if map.logbase.is_some() {
        return Err(doc.unsupported(
            "sampling_algorithm.logbase",
            true,
            "`sampling_algorithm.logbase` (an undocumented SDK option) is not supported by tug"
                .into(),
            "remove `logbase`; log distributions use natural-log exponents (`loguniform`, `lognormal`)",
        ));
    }
    let seed = match map.seed {
        None => None,
        Some(s) => Some(u64::try_from(s).map_err(|_| {
            doc.invalid(
                "sampling_algorithm.seed",
                false,
                format!("`sampling_algorithm.seed` is {s}; a seed is a whole number ≥ 0"),
                "use a non-negative seed, e.g. `seed: 42`",
            )
        })?),
    };
    let rule = match &map.rule {
        None => RandomRule::Random,
        Some(rule) => {
            match parse_choice("random rule", rule, &["random", "sobol"])
                .map_err(|m| located(doc, "sampling_algorithm.rule", m))?
            {
                0 => RandomRule::Random,
                _ => RandomRule::Sobol,
            }
        }
    };
    Ok(SamplingAlgorithm::Random { seed, rule })
}

fn search_space(
    doc: &Document,
    raw: BTreeMap<String, RawDimension>,
    sampler: &SamplingAlgorithm,
) -> Result<SearchSpace, SpecError> {
    if raw.is_empty() {
        return Err(doc.invalid(
            "search_space",
            true,
            "`search_space` is empty: a sweep needs at least one value to vary".into(),
            "add an entry, e.g. `lr: {type: uniform, min_value: 0.001, max_value: 0.1}`",
        ));
    }
    let mut out = SearchSpace::new();
    for (name, dim) in raw {
        let field = join("search_space", &name);
        if !valid_io_name(&name) {
            let fixed: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let fixed = if fixed.starts_with(|c: char| c.is_ascii_digit()) {
                format!("_{fixed}")
            } else {
                fixed
            };
            return Err(doc.invalid(
                &field,
                true,
                format!("`{name}` is not a valid search-space name: names start with a letter or `_` and contain only letters, digits and `_`"),
                format!("rename it, e.g. to `{fixed}` (and update `${{{{search_space.{name}}}}}` in the trial command)"),
            ));
        }
        let d = dimension(doc, &field, dim)?;
        if *sampler == SamplingAlgorithm::Grid && !matches!(d, Distribution::Choice { .. }) {
            return Err(doc.invalid(
                &join(&field, "type"),
                false,
                format!(
                    "grid sampling only takes `choice` entries, and `{field}` is `{}`",
                    d.type_name()
                ),
                "list the values to try (`type: choice` with `values: [...]`), or use `sampling_algorithm: random`",
            ));
        }
        out.insert(name, d);
    }
    Ok(out)
}

fn dimension(doc: &Document, field: &str, raw: RawDimension) -> Result<Distribution, SpecError> {
    let names: Vec<&str> = DISTRIBUTIONS.iter().map(|(n, _)| *n).collect();
    let Some(kind) = raw.kind.as_deref() else {
        return Err(doc.missing(
            &join(field, "type"),
            field,
            format!("missing required field `{field}.type`"),
            format!(
                "add the distribution's `type`: one of {}",
                backticked(&names)
            ),
        ));
    };
    let which = parse_choice("distribution", kind, &names)
        .map_err(|m| located(doc, &join(field, "type"), m))?;
    let (type_name, params) = DISTRIBUTIONS[which];
    let present = [
        ("values", raw.values.is_some()),
        ("upper", raw.upper.is_some()),
        ("min_value", raw.min_value.is_some()),
        ("max_value", raw.max_value.is_some()),
        ("q", raw.q.is_some()),
        ("mu", raw.mu.is_some()),
        ("sigma", raw.sigma.is_some()),
    ];
    for (key, set) in present {
        if set && !params.contains(&key) {
            return Err(doc.invalid(
                &join(field, key),
                true,
                format!(
                    "`{key}` is not a parameter of `{type_name}`, which takes {}",
                    backticked(params)
                ),
                format!("remove `{key}`, or change `type` to the distribution you meant"),
            ));
        }
    }
    for key in params {
        let set = present.iter().any(|(k, s)| k == key && *s);
        if !set {
            return Err(doc.missing(
                &join(field, key),
                field,
                format!(
                    "missing required field `{field}.{key}`: `{type_name}` takes {}",
                    backticked(params)
                ),
                format!("add `{key}:` under `{field}`"),
            ));
        }
    }
    let num = |key: &str, value: &Option<Literal>| -> Result<f64, SpecError> {
        number(
            doc,
            &join(field, key),
            value.clone().expect("checked present"),
        )
    };
    let d = match type_name {
        "choice" => {
            let values = choices(doc, field, raw.values.expect("checked present"))?;
            Distribution::Choice { values }
        }
        "randint" => Distribution::Randint {
            upper: randint_upper(doc, &join(field, "upper"), raw.upper.expect("checked"))?,
        },
        "uniform" | "quniform" | "loguniform" | "qloguniform" => {
            let min_value = num("min_value", &raw.min_value)?;
            let max_value = num("max_value", &raw.max_value)?;
            if min_value >= max_value {
                return Err(doc.invalid(
                    &join(field, "max_value"),
                    false,
                    format!(
                        "`{field}`: `min_value` ({}) must be below `max_value` ({})",
                        python_float_repr(min_value),
                        python_float_repr(max_value)
                    ),
                    if type_name.contains("log") {
                        "swap them or widen the range; for log distributions the bounds are natural-log exponents (`min_value: -9.2` is e^-9.2 ≈ 1e-4)"
                    } else {
                        "swap them or widen the range"
                    },
                ));
            }
            match type_name {
                "uniform" => Distribution::Uniform {
                    min_value,
                    max_value,
                },
                "loguniform" => Distribution::Loguniform {
                    min_value,
                    max_value,
                },
                _ => {
                    let q = positive(doc, &join(field, "q"), num("q", &raw.q)?, "q")?;
                    if type_name == "quniform" {
                        Distribution::Quniform {
                            min_value,
                            max_value,
                            q,
                        }
                    } else {
                        Distribution::Qloguniform {
                            min_value,
                            max_value,
                            q,
                        }
                    }
                }
            }
        }
        _ => {
            let mu = num("mu", &raw.mu)?;
            let sigma = positive(
                doc,
                &join(field, "sigma"),
                num("sigma", &raw.sigma)?,
                "sigma",
            )?;
            // `q` is present exactly for the q-variants (checked above against `params`).
            let q = match &raw.q {
                Some(_) => positive(doc, &join(field, "q"), num("q", &raw.q)?, "q")?,
                None => 0.0,
            };
            match type_name {
                "normal" => Distribution::Normal { mu, sigma },
                "lognormal" => Distribution::Lognormal { mu, sigma },
                "qnormal" => Distribution::Qnormal { mu, sigma, q },
                _ => Distribution::Qlognormal { mu, sigma, q },
            }
        }
    };
    Ok(d)
}

/// Re-read `value` with YAML 1.1 rules and require a finite number.
fn number(doc: &Document, field: &str, value: Literal) -> Result<f64, SpecError> {
    match doc.literal(field, value) {
        Literal::Int(i) => Ok(i as f64),
        Literal::Float(f) if f.is_finite() => Ok(f),
        Literal::Str(s)
            if s.contains(['e', 'E']) && !s.contains('.') && s.parse::<f64>().is_ok() =>
        {
            let fixed = match s.split_once(['e', 'E']) {
                Some((m, e)) => format!(
                    "{m}.0e{}",
                    if e.starts_with(['-', '+']) {
                        e.to_string()
                    } else {
                        format!("+{e}")
                    }
                ),
                None => s.clone(),
            };
            Err(doc.invalid(
                field,
                false,
                format!("`{field}` must be a number, but Azure reads `{s}` as text (YAML 1.1 needs a dot in a number with an exponent)"),
                format!("write it with a dot and a signed exponent, e.g. `{fixed}`"),
            ))
        }
        other => Err(doc.invalid(
            field,
            false,
            format!(
                "`{field}` must be a finite number, found {}",
                other.describe()
            ),
            "write a number without quotes, e.g. `0.01`",
        )),
    }
}

fn positive(doc: &Document, field: &str, value: f64, key: &str) -> Result<f64, SpecError> {
    if value > 0.0 {
        return Ok(value);
    }
    Err(doc.invalid(
        field,
        false,
        format!(
            "`{field}` is {}; `{key}` must be greater than 0",
            python_float_repr(value)
        ),
        if key == "q" {
            "give the step to round to, e.g. `q: 1` for whole numbers"
        } else {
            "give a positive standard deviation, e.g. `sigma: 1.0`"
        },
    ))
}

fn randint_upper(doc: &Document, field: &str, value: Literal) -> Result<i64, SpecError> {
    match doc.literal(field, value) {
        Literal::Int(i) if i >= 1 => Ok(i64::try_from(i).unwrap_or(i64::MAX)),
        Literal::Int(i) => Err(doc.invalid(
            field,
            false,
            format!("`{field}` is {i}: `randint` draws from 0 to `upper` - 1, so `upper` must be at least 1"),
            "set `upper` to the number of values to draw from, e.g. `upper: 10` for 0..9",
        )),
        other => Err(doc.invalid(
            field,
            false,
            format!("`{field}` must be a whole number, found {}", other.describe()),
            "write a whole number without quotes, e.g. `upper: 10`",
        )),
    }
}

fn choices(
    doc: &Document,
    field: &str,
    raw: Vec<ChoiceValue>,
) -> Result<Vec<ParamValue>, SpecError> {
    let values_field = join(field, "values");
    if raw.is_empty() {
        return Err(doc.invalid(
            &values_field,
            false,
            format!("`{values_field}` is empty: a choice needs at least one value"),
            "list the values to try, e.g. `values: [0.01, 0.1, 1.0]`",
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for (i, ChoiceValue(v)) in raw.into_iter().enumerate() {
        let item = format!("{values_field}[{i}]");
        let value = match doc.literal(&item, v) {
            Literal::Str(s) => ParamValue::String(s),
            Literal::Bool(b) => ParamValue::Bool(b),
            Literal::Int(n) => match i64::try_from(n) {
                Ok(n) => ParamValue::from(n),
                Err(_) => {
                    return Err(doc.invalid(
                        &item,
                        false,
                        format!("`{item}` ({n}) does not fit in 64 bits"),
                        "use a smaller number, or quote it to pass it as text",
                    ));
                }
            },
            Literal::Float(f) => match serde_json::Number::from_f64(f) {
                Some(n) => ParamValue::Number(n),
                None => {
                    return Err(doc.invalid(
                        &item,
                        false,
                        format!(
                            "`{item}` is {}, which a trial cannot receive as a value",
                            python_float_repr(f)
                        ),
                        "use a finite number, or quote it to pass it as text",
                    ));
                }
            },
            Literal::Null => {
                return Err(doc.invalid(
                    &item,
                    false,
                    format!("`{item}` is empty (null)"),
                    "give a value, or quote `'None'` to pass the text None",
                ));
            }
        };
        out.push(value);
    }
    Ok(out)
}

fn limits(doc: &Document, raw: Option<RawLimits>) -> Result<SweepLimits, SpecError> {
    let Some(raw) = raw else {
        return Ok(SweepLimits::default());
    };
    let ranged = |key: &str, value: i64, max: i64, help: &str| -> Result<u32, SpecError> {
        if (1..=max).contains(&value) {
            return Ok(value as u32);
        }
        let field = join("limits", key);
        Err(doc.invalid(
            &field,
            false,
            format!("`{field}` is {value}; Azure allows 1 to {max}"),
            help.to_string(),
        ))
    };
    let total = match raw.max_total_trials {
        None => MAX_TOTAL_TRIALS,
        Some(v) => ranged(
            "max_total_trials",
            v,
            MAX_TOTAL_TRIALS.into(),
            "set how many trials to run in all, e.g. `max_total_trials: 20`",
        )?,
    };
    let concurrent = match raw.max_concurrent_trials {
        None => total.min(MAX_CONCURRENT_TRIALS),
        Some(v) => ranged(
            "max_concurrent_trials",
            v,
            MAX_CONCURRENT_TRIALS.into(),
            "set how many trials may run at once, e.g. `max_concurrent_trials: 4`",
        )?
        .min(total),
    };
    let seconds = |key: &str, value: Option<i64>| -> Result<Option<u64>, SpecError> {
        match value {
            None => Ok(None),
            Some(v) if v >= 1 => Ok(Some(v as u64)),
            Some(v) => {
                let field = join("limits", key);
                Err(doc.invalid(
                    &field,
                    false,
                    format!("`{field}` is {v}; a timeout is a number of seconds ≥ 1"),
                    format!("give whole seconds, e.g. `{key}: 3600`, or remove it"),
                ))
            }
        }
    };
    Ok(SweepLimits {
        max_total_trials: total,
        max_concurrent_trials: concurrent,
        timeout: seconds("timeout", raw.timeout)?.unwrap_or(DEFAULT_SWEEP_TIMEOUT),
        trial_timeout: seconds("trial_timeout", raw.trial_timeout)?,
    })
}

fn policy(doc: &Document, raw: RawPolicy) -> Result<EarlyTermination, SpecError> {
    let field = "early_termination";
    let Some(kind) = raw.kind.as_deref() else {
        return Err(doc.missing(
            "early_termination.type",
            field,
            "missing required field `early_termination.type`".into(),
            format!("add `type:`: one of {}", backticked(POLICIES)),
        ));
    };
    let which = parse_choice("early termination policy", kind, POLICIES)
        .map_err(|m| located(doc, "early_termination.type", m))?;
    let count = |key: &str, value: Option<i64>| -> Result<u32, SpecError> {
        match value {
            None => Ok(0),
            Some(v) if (0..=i64::from(u32::MAX)).contains(&v) => Ok(v as u32),
            Some(v) => Err(doc.invalid(
                &join(field, key),
                false,
                format!("`{field}.{key}` is {v}; it counts metric reports, so it is ≥ 0"),
                format!("write a whole number ≥ 0, e.g. `{key}: 1`"),
            )),
        }
    };
    if raw.exclude_finished_jobs.is_some() {
        return Err(doc.unsupported(
            "early_termination.exclude_finished_jobs",
            true,
            "`exclude_finished_jobs` appears in one Azure doc example but in neither the SDK nor the REST schema, so Azure's CLI refuses it too".into(),
            "remove it; ended trials always take part in the comparison (they are never stopped)",
        ));
    }
    let evaluation_interval = count("evaluation_interval", raw.evaluation_interval)?;
    let delay_evaluation = count("delay_evaluation", raw.delay_evaluation)?;
    let name = POLICIES[which];
    let foreign = [
        ("slack_factor", raw.slack_factor.is_some(), 0),
        ("slack_amount", raw.slack_amount.is_some(), 0),
        (
            "truncation_percentage",
            raw.truncation_percentage.is_some(),
            2,
        ),
    ];
    for (key, set, owner) in foreign {
        if set && owner != which {
            return Err(doc.invalid(
                &join(field, key),
                true,
                format!(
                    "`{key}` belongs to the `{}` policy, but this one is `{name}`",
                    POLICIES[owner]
                ),
                format!("remove `{key}`, or change `type`"),
            ));
        }
    }
    match which {
        0 => {
            let slack = match (raw.slack_factor, raw.slack_amount) {
                (Some(_), Some(_)) => {
                    return Err(doc.invalid(
                        "early_termination.slack_amount",
                        true,
                        "`slack_factor` and `slack_amount` are both set; a bandit policy takes exactly one".into(),
                        "keep `slack_factor` (a ratio, e.g. 0.1) or `slack_amount` (a distance in metric units), not both",
                    ));
                }
                (None, None) => {
                    return Err(doc.missing(
                        "early_termination.slack_factor",
                        field,
                        "a bandit policy needs `slack_factor` or `slack_amount`".into(),
                        "add `slack_factor: 0.1` (stop trials more than 10% behind the best) or `slack_amount: 0.05`",
                    ));
                }
                (Some(f), None) => {
                    let key = "early_termination.slack_factor";
                    Slack::Factor(non_negative(doc, key, number(doc, key, f)?)?)
                }
                (None, Some(a)) => {
                    let key = "early_termination.slack_amount";
                    Slack::Amount(non_negative(doc, key, number(doc, key, a)?)?)
                }
            };
            Ok(EarlyTermination::Bandit {
                slack,
                evaluation_interval,
                delay_evaluation,
            })
        }
        1 => Ok(EarlyTermination::MedianStopping {
            evaluation_interval,
            delay_evaluation,
        }),
        _ => {
            let Some(pct) = raw.truncation_percentage else {
                return Err(doc.missing(
                    "early_termination.truncation_percentage",
                    field,
                    "missing required field `early_termination.truncation_percentage`".into(),
                    "add the percentage of trials to cut at each evaluation, 1 to 99, e.g. `truncation_percentage: 20`",
                ));
            };
            if !(1..=99).contains(&pct) {
                return Err(doc.invalid(
                    "early_termination.truncation_percentage",
                    false,
                    format!("`early_termination.truncation_percentage` is {pct}; Azure allows 1 to 99"),
                    "give the percentage of trials to cut at each evaluation, e.g. `truncation_percentage: 20`",
                ));
            }
            Ok(EarlyTermination::TruncationSelection {
                truncation_percentage: pct as u32,
                evaluation_interval,
                delay_evaluation,
            })
        }
    }
}

fn non_negative(doc: &Document, field: &str, value: f64) -> Result<f64, SpecError> {
    if value >= 0.0 {
        return Ok(value);
    }
    Err(doc.invalid(
        field,
        false,
        format!(
            "`{field}` is {}; a slack cannot be negative",
            python_float_repr(value)
        ),
        "give a slack ≥ 0, e.g. `slack_factor: 0.1`",
    ))
}
