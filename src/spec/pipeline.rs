//! The pipeline job file (`type: pipeline`): settings, the pipeline's inputs and outputs,
//! and `jobs:`, each step an inline command job or a use of a command component. Every
//! step is resolved into the [`CommandJob`] it runs (component + the step's values and
//! overrides), its bindings are read and checked as a DAG (`crate::pipeline::graph`), and
//! every error is located in the file it is in (the pipeline's or a component's).
//!
//! Pure: component files and registered components are read by the caller's resolver.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use super::document::{Document, top_keys};
use super::environment::EnvironmentRef;
use super::error::{SpecError, nearest};
use super::fields::{
    SourcePath, compute, fix_scalar_map, null_default, scalar_map, yaml11_opt_bool,
};
use super::index::join;
use super::io::{DataInput, Input, Output, finish_inputs, finish_outputs};
use super::job::{CommandJob, Distribution, Limits, Resources};
use super::literal::Literal;
use super::pipeline_component::{ComponentUse, component_job, load_component};
use super::pipeline_nested::Nested;
use super::sweep::{Objective, SweepSettings};
use super::sweep_settings::{RawLimits, RawPolicy, RawSampling};
use super::sweep_space::RawDimension;
use super::{InputMode, InputType, JobKind};
use crate::pipeline::binding::{self, InputBinding, OutputBinding};
use crate::pipeline::graph::{Graph, PipelineIo, StepIo};

/// A pipeline job, resolved: every step's command job and the checked DAG.
#[derive(Debug, Clone)]
pub struct PipelineJob {
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub experiment_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub settings: PipelineSettings,
    pub inputs: BTreeMap<String, Input>,
    pub outputs: BTreeMap<String, Output>,
    pub steps: BTreeMap<String, PipelineStep>,
    pub graph: Graph,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineSettings {
    /// The bare target name steps without `compute:` run on.
    pub default_compute: Option<String>,
    pub default_datastore: Option<String>,
    /// `false` (Azure's default): a failed step cancels the running ones and nothing more
    /// starts. `true`: steps that do not read the failed one go on.
    pub continue_on_step_failure: bool,
    /// `true`: no step is reused.
    pub force_rerun: bool,
}

/// One step: the command job it runs and where its inputs come from.
#[derive(Debug, Clone)]
pub struct PipelineStep {
    /// Inputs bound to another step's output are data inputs whose path is
    /// [`step_output_uri`]; the controller puts the real folder there.
    pub job: CommandJob,
    pub bindings: StepIo,
    pub is_deterministic: bool,
    /// `name:version` of the component it uses, if it uses one.
    pub component: Option<String>,
    /// A sweep step (`type: sweep`): `job` is its trial, whose command holds
    /// `${{search_space.x}}` for the values each trial is given.
    pub sweep: Option<SweepSettings>,
}

/// Where a component comes from, for the caller to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// A component file, joined to the pipeline file's folder.
    File(PathBuf),
    /// `azureml:<name>:<version>`, `azureml:<name>@latest` or `azureml:<name>` (latest).
    Registered {
        name: String,
        version: Option<String>,
    },
}

/// Reads a component for a step: the file name to report errors against and its text, or
/// why it cannot be had (located at the step's `component:`).
pub type ComponentResolver<'r> =
    dyn FnMut(&ComponentSource) -> Result<(PathBuf, String), String> + 'r;

/// The placeholder path of a data input bound to `step`'s output `output`.
pub fn step_output_uri(step: &str, output: &str) -> String {
    format!("{STEP_OUTPUT_SCHEME}{step}/outputs/{output}")
}

/// The scheme of [`step_output_uri`]; the controller substitutes the output's folder.
pub const STEP_OUTPUT_SCHEME: &str = "tug-step://";

/// Step types Azure ML has that tug does not run (yet, for `pipeline`).
const OTHER_STEP_TYPES: &[&str] = &[
    "parallel",
    "spark",
    "automl",
    "import",
    "data_transfer",
    "flow",
];

pub(crate) const PIPELINE_EXAMPLE: &str = "      type: pipeline\n      jobs:\n        hello:\n          command: echo hello\n          environment:\n            image: python:3.11-slim";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(rename = "type")]
    _kind: JobKind,
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
    _properties: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "opt_compute")]
    compute: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    settings: RawSettings,
    #[serde(default, deserialize_with = "null_default")]
    inputs: BTreeMap<String, Input>,
    #[serde(default, deserialize_with = "null_default")]
    outputs: BTreeMap<String, Output>,
    jobs: BTreeMap<String, RawStep>,
    #[serde(default)]
    _identity: Option<serde_yaml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default, deserialize_with = "opt_compute")]
    default_compute: Option<String>,
    #[serde(default)]
    default_datastore: Option<String>,
    #[serde(default, deserialize_with = "yaml11_opt_bool")]
    continue_on_step_failure: Option<bool>,
    #[serde(default, deserialize_with = "yaml11_opt_bool")]
    force_rerun: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub code: Option<SourcePath>,
    #[serde(default)]
    pub environment: Option<EnvironmentRef>,
    #[serde(default, deserialize_with = "scalar_map")]
    pub environment_variables: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "step_compute")]
    pub compute: Option<String>,
    #[serde(default)]
    pub resources: Option<Resources>,
    #[serde(default)]
    pub distribution: Option<Distribution>,
    /// A command step's `{timeout}`, or a sweep step's trial limits.
    #[serde(default)]
    pub limits: Option<RawLimits>,
    #[serde(default, deserialize_with = "null_default")]
    pub inputs: BTreeMap<String, Input>,
    #[serde(default, deserialize_with = "null_default")]
    pub outputs: BTreeMap<String, serde_yaml::Value>,
    // A sweep step's own keys.
    #[serde(default)]
    pub trial: Option<serde_yaml::Value>,
    #[serde(default)]
    pub sampling_algorithm: Option<RawSampling>,
    #[serde(default)]
    pub search_space: Option<BTreeMap<String, RawDimension>>,
    #[serde(default)]
    pub objective: Option<Objective>,
    #[serde(default)]
    pub early_termination: Option<RawPolicy>,
}

/// A step's `compute:`: a target's name, or `${{parent.inputs.x}}` kept as written for
/// [`bound_compute`] to follow.
fn step_compute<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    match text {
        Some(t) if t.contains("${{") => Ok(Some(t)),
        Some(t) => super::fields::normalize_compute(&t)
            .map(Some)
            .map_err(super::error::Marked::into_de),
        None => Ok(None),
    }
}

fn opt_compute<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    compute(d).map(Some)
}

/// The step types this reader takes, checked before the typed reading so that a sweep
/// or nested pipeline step gets its own message rather than a list of unknown keys.
pub(super) fn precheck(doc: &Document) -> Result<(), SpecError> {
    let root = doc.root_mapping(PIPELINE_EXAMPLE)?;
    if top_keys(root).any(|k| k == "component") && !top_keys(root).any(|k| k == "jobs") {
        return Err(doc.unsupported(
            "component",
            true,
            "a pipeline job that runs a pipeline component is not supported yet".into(),
            "write the component's steps under `jobs:` in this file",
        ));
    }
    let Some(serde_yaml::Value::Mapping(jobs)) = root.get("jobs") else {
        return Ok(());
    };
    if jobs.is_empty() {
        return Err(doc.invalid(
            "jobs",
            true,
            "`jobs` is empty: a pipeline needs at least one step".into(),
            format!("add a step:\n{PIPELINE_EXAMPLE}"),
        ));
    }
    for (name, step) in jobs {
        let Some(name) = name.as_str() else { continue };
        let field = join("jobs", name);
        if !valid_step_name(name) {
            return Err(doc.invalid(
                &field,
                true,
                format!("`{name}` is not a valid step name"),
                "a step name has letters, digits, `_` and `-`, and starts with a letter or `_` (it is used in `${{parent.jobs.<step>.outputs.x}}`)",
            ));
        }
        let kind = step
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("command");
        match kind {
            "command" | "sweep" | "pipeline" => {}
            other if OTHER_STEP_TYPES.contains(&other) => {
                return Err(doc.unsupported(
                    &join(&field, "type"),
                    false,
                    format!("`type: {other}` steps are not supported by tug"),
                    "write the step as a command step (`command:` + `environment:`, or `component:`)",
                ));
            }
            other => {
                let mut all = vec!["command", "sweep", "pipeline"];
                all.extend_from_slice(OTHER_STEP_TYPES);
                let hint = nearest(other, all.iter().copied())
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err(doc.invalid(
                    &join(&field, "type"),
                    false,
                    format!("unknown step type `{other}`{hint}"),
                    "a step is `type: command` (the default) or `type: sweep`",
                ));
            }
        }
    }
    Ok(())
}

fn valid_step_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name.len() <= 255
}

pub(crate) fn read(
    doc: &Document,
    resolve: &mut ComponentResolver<'_>,
) -> Result<PipelineJob, SpecError> {
    precheck(doc)?;
    let raw: RawPipeline = doc.deserialize()?;
    let mut inputs = raw.inputs;
    finish_inputs(doc, &mut inputs)?;
    finish_outputs(doc, &raw.outputs)?;
    let mut tags = raw.tags;
    fix_scalar_map(doc, "tags", &mut tags);
    let settings = PipelineSettings {
        default_compute: raw.settings.default_compute.or(raw.compute),
        default_datastore: raw.settings.default_datastore,
        continue_on_step_failure: raw.settings.continue_on_step_failure.unwrap_or(false),
        force_rerun: raw.settings.force_rerun.unwrap_or(false),
    };
    let (steps, graph) = read_jobs(doc, raw.jobs, &inputs, &raw.outputs, &settings, resolve, 0)?;
    Ok(PipelineJob {
        name: raw.name,
        display_name: raw.display_name,
        experiment_name: raw.experiment_name,
        description: raw.description,
        tags,
        settings,
        inputs,
        outputs: raw.outputs,
        steps,
        graph,
    })
}

/// The steps of a pipeline (a job, or a pipeline component `depth` levels down), each
/// resolved, nested pipeline components flattened into their steps (`<step>.<inner>`),
/// and the DAG checked; `inputs` are the values its `${{parent.inputs.x}}` read.
pub(super) fn read_jobs(
    doc: &Document,
    jobs: BTreeMap<String, RawStep>,
    inputs: &BTreeMap<String, Input>,
    outputs: &BTreeMap<String, Output>,
    settings: &PipelineSettings,
    resolve: &mut ComponentResolver<'_>,
    depth: usize,
) -> Result<(BTreeMap<String, PipelineStep>, Graph), SpecError> {
    let mut parsed = BTreeMap::new();
    for (name, step) in jobs {
        let view = doc.under(&join("jobs", &name), "pipeline step");
        let resolved = read_step(&view, &name, step, inputs, settings, resolve, depth)?;
        parsed.insert(name, resolved);
    }
    let io = PipelineIo {
        inputs: inputs.keys().cloned().collect(),
        outputs: outputs.keys().cloned().collect(),
    };
    let located = |errors: Vec<crate::pipeline::graph::GraphError>| {
        let e = &errors[0];
        doc.invalid(&e.field(), true, e.to_string(), e.help())
    };
    // Checked as written first (a nested pipeline one node), so errors name the file's steps.
    let written: BTreeMap<String, StepIo> = parsed
        .iter()
        .map(|(n, (s, _)): (&String, &(PipelineStep, _))| (n.clone(), s.bindings.clone()))
        .collect();
    Graph::build(&written, &io).map_err(located)?;
    let mut steps = super::pipeline_nested::flatten(parsed);
    let bindings: BTreeMap<String, StepIo> = steps
        .iter()
        .map(|(n, s): (&String, &PipelineStep)| (n.clone(), s.bindings.clone()))
        .collect();
    let graph = Graph::build(&bindings, &io).map_err(located)?;
    // An inline step's output promoted to a pipeline output, with nothing of its own
    // declared, is of the pipeline output's type (Azure's hello-pipeline-customize-output-file).
    for step in steps.values_mut().filter(|s| s.component.is_none()) {
        for (output, b) in &step.bindings.outputs {
            if let OutputBinding::ParentOutput(p) = b
                && let Some(parent) = outputs.get(p)
                && let Some(out) = step.job.outputs.get_mut(output)
                && out.output_type == InputType::UriFolder
            {
                out.output_type = parent.output_type;
            }
        }
    }
    // A step output promoted to a pipeline output that gives a `path:` is written there.
    for step in steps.values_mut() {
        for (output, b) in &step.bindings.outputs {
            if let OutputBinding::ParentOutput(p) = b
                && let Some(parent) = outputs.get(p)
                && let Some(out) = step.job.outputs.get_mut(output)
                && out.path.is_none()
            {
                out.path = parent.path.clone();
            }
        }
    }
    // An inline step's input bound to another step's output is data of that output's type.
    let types: BTreeMap<(String, String), InputType> = steps
        .iter()
        .flat_map(|(n, s)| {
            s.job
                .outputs
                .iter()
                .map(move |(o, out)| ((n.clone(), o.clone()), out.output_type))
        })
        .collect();
    for (name, step) in steps.iter_mut() {
        let declared = step.component.is_some();
        for (input, b) in &step.bindings.inputs {
            if let InputBinding::StepOutput { step: from, output } = b
                && let Some(Input::Data(d)) = step.job.inputs.get_mut(input)
                && let Some(ty) = types.get(&(from.clone(), output.clone()))
            {
                if !declared {
                    d.input_type = *ty;
                } else if (d.input_type == InputType::UriFile) != (*ty == InputType::UriFile) {
                    // A component declares its input's type: a file is not a folder.
                    return Err(doc.invalid(
                        &format!("jobs.{name}.inputs.{input}"),
                        false,
                        format!(
                            "input `{input}` of step `{name}` is `{}`, but `{from}.outputs.{output}` is `{}`",
                            d.input_type.as_str(),
                            ty.as_str()
                        ),
                        format!(
                            "bind an output of type `{}`, or declare `{from}`'s output `{output}` as `type: {}`",
                            d.input_type.as_str(),
                            d.input_type.as_str()
                        ),
                    ));
                }
            }
        }
    }
    Ok((steps, graph))
}

fn read_step(
    view: &Document,
    name: &str,
    mut step: RawStep,
    pipeline_inputs: &BTreeMap<String, Input>,
    settings: &PipelineSettings,
    resolve: &mut ComponentResolver<'_>,
    depth: usize,
) -> Result<(PipelineStep, Option<Nested>), SpecError> {
    // Bindings first: their values are not literals to check.
    let mut bindings = StepIo::default();
    for (input, value) in &step.inputs {
        let path = match value {
            Input::Data(d) => d.path.as_ref().map(|p| p.given.as_str()),
            Input::Literal(l) => match &l.value {
                Some(Literal::Str(s)) => Some(s.as_str()),
                _ => None,
            },
        };
        if path.is_some_and(|p| p.starts_with(STEP_OUTPUT_SCHEME)) {
            return Err(view.invalid(
                &join("inputs", input),
                false,
                format!("`{STEP_OUTPUT_SCHEME}` paths are tug's own"),
                "bind another step's output as `${{parent.jobs.<step>.outputs.<name>}}`, so the steps run in order",
            ));
        }
        // A binding is the value itself, or the `path:` of a data mapping that also sets
        // its `mode:` (`{path: ${{parent.jobs.a.outputs.b}}, mode: download}`).
        let (written, field) = match value {
            Input::Literal(l) => match &l.value {
                Some(Literal::Str(s)) => (Some(s.as_str()), join("inputs", input)),
                _ => (None, String::new()),
            },
            Input::Data(d) => match &d.path {
                Some(p) if p.given.contains("${{") => {
                    (Some(p.given.as_str()), join(&join("inputs", input), "path"))
                }
                _ => (None, String::new()),
            },
        };
        let b = match written {
            Some(text) => binding::input_binding(text)
                .map_err(|e| view.invalid(&field, false, e.to_string(), e.help))?,
            None => InputBinding::Value,
        };
        bindings.inputs.insert(input.clone(), b);
    }
    let mut outputs: BTreeMap<String, Output> = BTreeMap::new();
    for (output, value) in &step.outputs {
        let field = join("outputs", output);
        let (out, b) = match value {
            serde_yaml::Value::Null => (None, OutputBinding::Own),
            serde_yaml::Value::String(s) => {
                let b = binding::output_binding(Some(s))
                    .map_err(|e| view.invalid(&field, false, e.to_string(), e.help))?;
                if b == OutputBinding::Own {
                    return Err(view.invalid(
                        &field,
                        false,
                        format!("`{s}` is text; a step's output is empty, a mapping, or `${{{{parent.outputs.<name>}}}}`"),
                        format!("write `path: {s}` under it to choose where it goes"),
                    ));
                }
                (None, b)
            }
            other => {
                let out: Output = serde_yaml::from_value(other.clone()).map_err(|e| {
                    view.invalid(
                        &field,
                        false,
                        format!("`{}` is not an output: {e}", view.full(&field)),
                        "an output is empty, or a mapping of `type`, `mode` and `path`",
                    )
                })?;
                (Some(out), OutputBinding::Own)
            }
        };
        bindings.outputs.insert(output.clone(), b);
        if let Some(out) = out {
            outputs.insert(output.clone(), out);
        }
    }
    let compute = match step.compute.as_deref() {
        Some(c) if c.contains("${{") => bound_compute(view, c, pipeline_inputs)?,
        Some(c) => c.to_string(),
        None => settings
            .default_compute
            .clone()
            .unwrap_or_else(|| "local".into()),
    };
    let mut nested = None;
    let (mut job, is_deterministic, component, sweep) = if step.kind.as_deref() == Some("pipeline")
    {
        let (job, inner) = super::pipeline_nested::nested_step(
            view,
            &step,
            outputs,
            &mut bindings,
            pipeline_inputs,
            settings,
            compute,
            resolve,
            depth,
        )?;
        let reference = inner.reference.clone();
        nested = Some(inner);
        (job, true, Some(reference), None)
    } else if step.kind.as_deref() == Some("sweep") {
        let (job, settings, component) = super::pipeline_sweep::sweep_step(
            view,
            step,
            outputs,
            compute,
            &mut bindings,
            pipeline_inputs,
            resolve,
        )?;
        let reference = component.reference();
        (
            job,
            component.is_deterministic,
            Some(reference),
            Some(settings),
        )
    } else {
        super::pipeline_sweep::refuse_sweep_keys(view, &step)?;
        let limits = command_limits(view, step.limits.take())?;
        match &step.component {
            Some(reference) => {
                let component = load_component(view, "component", reference, resolve)?;
                let job = component_job(
                    view,
                    &step,
                    &component,
                    ComponentUse {
                        outputs,
                        compute,
                        limits,
                        sampled: &[],
                        parent_inputs: pipeline_inputs,
                    },
                    &mut bindings,
                )?;
                let reference = component.reference();
                (job, component.is_deterministic, Some(reference), None)
            }
            None => (
                inline_job(view, name, step, outputs, compute, limits)?,
                true,
                None,
                None,
            ),
        }
    };
    bind_values(&mut job, &bindings, pipeline_inputs, component.is_some());
    Ok((
        PipelineStep {
            job,
            bindings,
            is_deterministic,
            component,
            sweep,
        },
        nested,
    ))
}

/// `compute: ${{parent.inputs.x}}`: the target named by the pipeline's input `x`.
fn bound_compute(
    view: &Document,
    written: &str,
    pipeline_inputs: &BTreeMap<String, Input>,
) -> Result<String, SpecError> {
    let fail = |message: String| {
        view.invalid(
            "compute",
            false,
            message,
            "write a target's name (`compute: azureml:cpu-cluster`), or `${{parent.inputs.<x>}}` naming a string input that holds one",
        )
    };
    let p = match binding::input_binding(written) {
        Ok(InputBinding::ParentInput(p)) => p,
        _ => {
            return Err(fail(format!(
                "`{written}` is not a binding tug can follow here"
            )));
        }
    };
    match pipeline_inputs.get(&p) {
        Some(Input::Literal(l)) => match l.rendered() {
            Some(name) => super::fields::normalize_compute(&name).map_err(|_| {
                fail(format!(
                    "the pipeline's input `{p}` is `{name}`, which is not a target's name"
                ))
            }),
            None => Err(fail(format!("the pipeline's input `{p}` has no value"))),
        },
        Some(Input::Data(_)) => Err(fail(format!(
            "the pipeline's input `{p}` is data, not a target's name"
        ))),
        None => Err(fail(format!("the pipeline has no input `{p}`"))),
    }
}

/// Bound inputs take their values now: the pipeline's input, or the upstream output (a
/// placeholder the controller fills in).
pub(super) fn bind_values(
    job: &mut CommandJob,
    bindings: &StepIo,
    pipeline_inputs: &BTreeMap<String, Input>,
    declared: bool,
) {
    for (input, b) in &bindings.inputs {
        let value = match b {
            InputBinding::Value => continue,
            // A component's input took the value already, checked against its declaration.
            InputBinding::ParentInput(_) if declared => continue,
            InputBinding::ParentInput(p) => match pipeline_inputs.get(p) {
                Some(v) => v.clone(),
                // Reported with the graph's errors, which list the pipeline's inputs.
                None => continue,
            },
            InputBinding::StepOutput { step, output } => {
                let declared = job.inputs.get(input);
                Input::Data(DataInput {
                    input_type: match declared {
                        Some(Input::Data(d)) => d.input_type,
                        _ => InputType::UriFolder,
                    },
                    path: Some(SourcePath::parse(&step_output_uri(step, output))),
                    mode: match declared {
                        Some(Input::Data(d)) => d.mode,
                        _ => InputMode::RoMount,
                    },
                    path_on_compute: None,
                    datastore: None,
                    optional: false,
                    description: None,
                })
            }
        };
        job.inputs.insert(input.clone(), value);
    }
}

/// A command step's `limits:` (`timeout` only; the rest are a sweep step's).
fn command_limits(view: &Document, raw: Option<RawLimits>) -> Result<Option<Limits>, SpecError> {
    let Some(raw) = raw else { return Ok(None) };
    for (key, given) in [
        ("max_total_trials", raw.max_total_trials.is_some()),
        ("max_concurrent_trials", raw.max_concurrent_trials.is_some()),
        ("trial_timeout", raw.trial_timeout.is_some()),
    ] {
        if given {
            return Err(view.invalid(
                &join("limits", key),
                true,
                format!("`limits.{key}` is a sweep step's limit; this is a command step"),
                "add `type: sweep` (with `trial:`, `search_space:` and `objective:`), or keep only `limits.timeout`",
            ));
        }
    }
    match raw.timeout {
        None => Ok(Some(Limits { timeout: None })),
        Some(t) if t >= 1 => Ok(Some(Limits {
            timeout: Some(t as u64),
        })),
        Some(t) => Err(view.invalid(
            "limits.timeout",
            false,
            format!("`limits.timeout` is {t}; a timeout is a number of seconds ≥ 1"),
            "give whole seconds, e.g. `timeout: 3600`, or remove it",
        )),
    }
}

/// A step written as a command job under `jobs.<name>`.
fn inline_job(
    view: &Document,
    name: &str,
    step: RawStep,
    outputs: BTreeMap<String, Output>,
    compute: String,
    limits: Option<Limits>,
) -> Result<CommandJob, SpecError> {
    let Some(command) = step.command else {
        return Err(view.missing(
            "command",
            "",
            format!("step `{name}` has neither `command:` nor `component:`"),
            "give the step a `command:` and an `environment:`, or `component: ./file.yml`",
        ));
    };
    let Some(environment) = step.environment else {
        return Err(view.missing(
            "environment",
            "",
            format!("step `{name}` has a `command:` but no `environment:`"),
            "add `environment: azureml:<name>@latest` or an inline `environment: {image: ...}`",
        ));
    };
    let mut all_outputs = outputs;
    for (output, value) in &step.outputs {
        if !all_outputs.contains_key(output) && !value.is_mapping() {
            all_outputs.insert(output.clone(), Output::default());
        }
    }
    let mut job = CommandJob {
        schema: None,
        kind: JobKind::Command,
        name: None,
        display_name: step.display_name,
        experiment_name: None,
        description: step.description,
        tags: step.tags,
        properties: BTreeMap::new(),
        command,
        code: step.code,
        environment,
        environment_variables: step.environment_variables,
        compute,
        resources: step.resources.unwrap_or_default(),
        distribution: step.distribution,
        limits,
        inputs: step.inputs,
        outputs: all_outputs,
        services: BTreeMap::new(),
        identity: None,
        queue_settings: None,
    };
    job.finish(view)?;
    Ok(job)
}
