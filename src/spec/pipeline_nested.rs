//! A pipeline's nested pipeline steps (`type: pipeline` with `component:` naming a pipeline
//! component file): the component's inputs and outputs are its interface, checked like a
//! command component's; its `jobs:` are read as a pipeline whose `${{parent.inputs.x}}` are
//! the step's values; and its steps are flattened into the outer pipeline as
//! `<step>.<inner step>`, each binding rewritten to what it stands for outside (an outer
//! input, an outer step's output, or the outer pipeline's output).
//!
//! Flattening keeps one controller, one DAG and one reuse rule: a nested step is a step.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::component::{
    CommandComponent, ComponentOutput, RawComponentInput, RawComponentOutput, finish_input,
};
use super::document::Document;
use super::environment::{AssetVersion, EnvironmentRef};
use super::error::SpecError;
use super::fields::{SourcePath, null_default, scalar_map};
use super::index::join;
use super::io::{Input, Output, check_name};
use super::job::CommandJob;
use super::pipeline::{
    ComponentResolver, ComponentSource, PipelineSettings, PipelineStep, RawStep, bind_values,
    precheck, read_jobs, step_output_uri,
};
use super::pipeline_component::{ComponentUse, component_job, component_source};
use crate::pipeline::binding::{InputBinding, OutputBinding};
use crate::pipeline::graph::StepIo;

/// Pipeline components within pipeline components, at most: deeper is a file naming
/// itself, or one no one can read.
const MAX_DEPTH: usize = 8;

/// A nested pipeline step, read: its steps (named as in the component) and which of them
/// writes each of the component's outputs.
#[derive(Debug)]
pub(super) struct Nested {
    /// `name:version` of the pipeline component.
    pub reference: String,
    pub steps: BTreeMap<String, PipelineStep>,
    /// Component output → (its step, that step's output).
    pub outputs: BTreeMap<String, (String, String)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipelineComponent {
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(rename = "type")]
    _kind: String,
    name: String,
    #[serde(default)]
    version: Option<serde_yaml::Value>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, rename = "tags", deserialize_with = "scalar_map")]
    _tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    inputs: BTreeMap<String, RawComponentInput>,
    #[serde(default, deserialize_with = "null_default")]
    outputs: BTreeMap<String, RawComponentOutput>,
    jobs: BTreeMap<String, RawStep>,
}

/// Reads the step `view` (`type: pipeline`): the step's values for the component's inputs
/// (as a job whose inputs are those values and whose outputs are the component's) and
/// the component's steps.
#[allow(clippy::too_many_arguments)]
pub(super) fn nested_step(
    view: &Document,
    step: &RawStep,
    outputs: BTreeMap<String, Output>,
    bindings: &mut StepIo,
    pipeline_inputs: &BTreeMap<String, Input>,
    settings: &PipelineSettings,
    compute: String,
    resolve: &mut ComponentResolver<'_>,
    depth: usize,
) -> Result<(CommandJob, Nested), SpecError> {
    super::pipeline_sweep::refuse_sweep_keys(view, step)?;
    let Some(reference) = &step.component else {
        return Err(view.missing(
            "component",
            "type",
            "a `type: pipeline` step needs `component:`, the pipeline component it runs".into(),
            "name the pipeline component's file: `component: ./train_pipeline.yml`",
        ));
    };
    if depth >= MAX_DEPTH {
        return Err(view.invalid(
            "component",
            false,
            format!("pipeline components nest more than {MAX_DEPTH} deep here"),
            "a pipeline component cannot use itself, directly or through another",
        ));
    }
    let source = component_source(view, "component", reference)?;
    if let ComponentSource::Registered { name, .. } = &source {
        return Err(view.unsupported(
            "component",
            false,
            format!(
                "`{reference}`: registered pipeline components are not supported yet (`{name}`)"
            ),
            "name the pipeline component's file (`component: ./train_pipeline.yml`)",
        ));
    }
    let (path, text) = resolve(&source).map_err(|why| {
        view.invalid(
            "component",
            false,
            format!("pipeline component `{reference}` cannot be read: {why}"),
            "give the component file's path relative to this pipeline file",
        )
    })?;
    let inner = Document::load(&path, &text, &[], "pipeline component")?;
    let kind = inner
        .value
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("command")
        .to_string();
    if kind != "pipeline" {
        return Err(view.invalid(
            "type",
            false,
            format!(
                "`{reference}` is a `type: {kind}` component, and this step is `type: pipeline`"
            ),
            format!("write `type: {kind}` on the step, or name a pipeline component"),
        ));
    }
    precheck(&inner)?;
    let raw: RawPipelineComponent = inner.deserialize()?;
    let interface = interface(&inner, raw.name, raw.version, raw.inputs, raw.outputs)?;
    let mut job = component_job(
        view,
        step,
        &interface,
        ComponentUse {
            outputs,
            compute: compute.clone(),
            limits: None,
            sampled: &[],
            parent_inputs: pipeline_inputs,
        },
        bindings,
    )?;
    job.display_name = step
        .display_name
        .clone()
        .or(raw.display_name)
        .or(raw.description);
    bind_values(&mut job, bindings, pipeline_inputs, true);
    let declared = interface.outputs_as_declared();
    let inner_settings = PipelineSettings {
        default_compute: Some(compute),
        ..settings.clone()
    };
    let (steps, _) = read_jobs(
        &inner,
        raw.jobs,
        &job.inputs,
        &declared,
        &inner_settings,
        resolve,
        depth + 1,
    )?;
    let mut written = BTreeMap::new();
    for (name, s) in &steps {
        for (output, b) in &s.bindings.outputs {
            if let OutputBinding::ParentOutput(z) = b {
                written.insert(z.clone(), (name.clone(), output.clone()));
            }
        }
    }
    if let Some(missing) = declared.keys().find(|z| !written.contains_key(*z)) {
        return Err(inner.invalid(
            &join("outputs", missing),
            true,
            format!("no step of this pipeline component writes its output `{missing}`"),
            format!("bind a step's output to it (`<output>: ${{{{parent.outputs.{missing}}}}}`), or remove it"),
        ));
    }
    Ok((
        job,
        Nested {
            reference: interface.reference(),
            steps,
            outputs: written,
        },
    ))
}

/// The component's inputs and outputs, as a command component without a command: how
/// a step's values are checked is the same.
fn interface(
    doc: &Document,
    name: String,
    version: Option<serde_yaml::Value>,
    raw_inputs: BTreeMap<String, RawComponentInput>,
    raw_outputs: BTreeMap<String, RawComponentOutput>,
) -> Result<CommandComponent, SpecError> {
    let mut inputs = BTreeMap::new();
    for (input, raw) in raw_inputs {
        check_name(doc, "inputs", "input", &input, "the steps")?;
        let field = join("inputs", &input);
        inputs.insert(input, finish_input(doc, &field, raw)?);
    }
    let mut outputs = BTreeMap::new();
    for (output, raw) in raw_outputs {
        check_name(doc, "outputs", "output", &output, "the steps")?;
        outputs.insert(
            output,
            ComponentOutput {
                output_type: raw.output_type,
                description: raw.description,
                mode: raw.mode,
            },
        );
    }
    Ok(CommandComponent {
        name,
        version: doc.version_text("version", version),
        display_name: None,
        description: None,
        tags: BTreeMap::new(),
        is_deterministic: true,
        command: String::new(),
        code: None,
        environment: EnvironmentRef::Registered {
            name: "pipeline".into(),
            version: AssetVersion::Latest,
        },
        distribution: None,
        resources: None,
        additional_includes: Vec::new(),
        inputs,
        outputs,
    })
}

/// Every step as the outer pipeline runs it: a nested pipeline's steps named
/// `<step>.<inner>`, and each binding to or from one rewritten to the step that stands
/// for it. Pure.
pub(super) fn flatten(
    parsed: BTreeMap<String, (PipelineStep, Option<Nested>)>,
) -> BTreeMap<String, PipelineStep> {
    let flat_name = |outer: &str, inner: &str| format!("{outer}.{inner}");
    // A nested step's output → the inner step (flattened) that writes it.
    let writers: BTreeMap<(String, String), (String, String)> = parsed
        .iter()
        .filter_map(|(name, (_, nested))| nested.as_ref().map(|n| (name, n)))
        .flat_map(|(name, n)| {
            n.outputs.iter().map(move |(z, (step, output))| {
                (
                    (name.clone(), z.clone()),
                    (flat_name(name, step), output.clone()),
                )
            })
        })
        .collect();
    let follow = |step: &str, output: &str| {
        writers
            .get(&(step.to_string(), output.to_string()))
            .cloned()
            .unwrap_or_else(|| (step.to_string(), output.to_string()))
    };
    let mut out = BTreeMap::new();
    for (name, (step, nested)) in parsed {
        let Some(nested) = nested else {
            let mut step = step;
            for b in step.bindings.inputs.values_mut() {
                if let InputBinding::StepOutput { step: from, output } = b {
                    let (s, o) = follow(from, output);
                    *b = InputBinding::StepOutput { step: s, output: o };
                }
            }
            out.insert(name, repoint(step));
            continue;
        };
        let outer = step.bindings;
        for (inner_name, mut inner) in nested.steps {
            for b in inner.bindings.inputs.values_mut() {
                *b = match b.clone() {
                    InputBinding::ParentInput(x) => match outer.inputs.get(&x) {
                        Some(InputBinding::ParentInput(p)) => InputBinding::ParentInput(p.clone()),
                        Some(InputBinding::StepOutput { step: s, output: o }) => {
                            let (s, o) = follow(s, o);
                            InputBinding::StepOutput { step: s, output: o }
                        }
                        // A value the step gave, or the component's default.
                        _ => InputBinding::Value,
                    },
                    InputBinding::StepOutput { step: s, output } => InputBinding::StepOutput {
                        step: flat_name(&name, &s),
                        output,
                    },
                    InputBinding::Value => InputBinding::Value,
                };
            }
            for b in inner.bindings.outputs.values_mut() {
                if let OutputBinding::ParentOutput(z) = b {
                    *b = match outer.outputs.get(z.as_str()) {
                        Some(OutputBinding::ParentOutput(p)) => {
                            OutputBinding::ParentOutput(p.clone())
                        }
                        _ => OutputBinding::Own,
                    };
                }
            }
            out.insert(flat_name(&name, &inner_name), repoint(inner));
        }
    }
    out
}

/// Each input bound to a step's output points at that step's placeholder.
fn repoint(mut step: PipelineStep) -> PipelineStep {
    for (input, b) in &step.bindings.inputs {
        if let InputBinding::StepOutput { step: from, output } = b
            && let Some(Input::Data(d)) = step.job.inputs.get_mut(input)
        {
            d.path = Some(SourcePath::parse(&step_output_uri(from, output)));
        }
    }
    step
}
