//! The steps of a pipeline that use a command component (`component: ./train.yml`, or
//! `azureml:<name>:<version>`): where the component comes from, and the step's values for
//! its inputs checked against its declarations (type, `min`/`max`, `enum`, required).

use std::path::Path;

use super::JobKind;
use super::component::{CommandComponent, Given, coerce};
use super::document::Document;
use super::error::{SpecError, backticked, nearest};
use super::fields::{SourcePath, fix_scalar_map};
use super::index::join;
use super::io::{Input, Output};
use super::job::{CommandJob, Limits};
use super::literal::Literal;
use super::pipeline::{ComponentResolver, ComponentSource, RawStep};
use crate::pipeline::binding::{InputBinding, OutputBinding};
use crate::pipeline::graph::StepIo;
use std::collections::BTreeMap;

pub(super) fn load_component(
    view: &Document,
    field: &str,
    reference: &str,
    resolve: &mut ComponentResolver<'_>,
) -> Result<CommandComponent, SpecError> {
    let source = component_source(view, field, reference)?;
    let (path, text) = resolve(&source).map_err(|why| {
        view.invalid(
            field,
            false,
            format!("component `{reference}` cannot be read: {why}"),
            match &source {
                ComponentSource::File(_) => "give the component file's path relative to this pipeline file".to_string(),
                ComponentSource::Registered { name, .. } => format!(
                    "register it first (`tug component create -f <file>`), or see `tug component list` for `{name}`"
                ),
            },
        )
    })?;
    super::parse_component(&path, &text, &[])
}

/// `azureml:<name>:<version>`, `azureml:<name>@latest` or `azureml:<name>` as
/// `(name, version)` (`None`: the latest); `None` for anything else (files, registries,
/// other labels).
pub fn registered_component(reference: &str) -> Option<(String, Option<String>)> {
    let rest = reference.strip_prefix("azureml:")?;
    if rest.starts_with("//") {
        return None;
    }
    let (name, version) = match rest.split_once('@') {
        Some((n, "latest")) => (n, None),
        Some(_) => return None,
        None => match rest.split_once(':') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (rest, None),
        },
    };
    Some((name.to_string(), version))
}

pub(super) fn component_source(
    view: &Document,
    field: &str,
    reference: &str,
) -> Result<ComponentSource, SpecError> {
    if let Some(rest) = reference.strip_prefix("azureml:") {
        if rest.starts_with("//") {
            return Err(view.unsupported(
                field,
                false,
                format!("`{reference}`: components from Azure ML registries are not available offline"),
                "copy the component's file next to the pipeline and name it by path (`component: ./train.yml`)",
            ));
        }
        let Some((name, version)) = registered_component(reference) else {
            let label = rest.split_once('@').map(|(_, l)| l).unwrap_or_default();
            return Err(view.unsupported(
                field,
                false,
                format!("label `@{label}`: tug knows the `latest` label only"),
                "write `azureml:<name>@latest` or `azureml:<name>:<version>`",
            ));
        };
        return Ok(ComponentSource::Registered { name, version });
    }
    let path = SourcePath::parse(reference);
    let Some(local) = path.local else {
        return Err(view.invalid(
            field,
            false,
            format!("`{reference}` is neither a component file nor `azureml:<name>:<version>`"),
            "name a local file (`./train.yml`) or a registered component",
        ));
    };
    Ok(ComponentSource::File(
        view.path.parent().unwrap_or(Path::new("")).join(local),
    ))
}

/// What a step gives the component it uses beyond its inputs.
pub(super) struct ComponentUse<'s> {
    /// The step's own output settings.
    pub outputs: BTreeMap<String, Output>,
    pub compute: String,
    pub limits: Option<Limits>,
    /// Inputs a sweep samples per trial: the step gives them no value.
    pub sampled: &'s [&'s str],
    /// The values `${{parent.inputs.x}}` bindings read, checked against the component.
    pub parent_inputs: &'s BTreeMap<String, Input>,
}

/// A step that uses `component`: its command, code and environment, with the step's
/// values for the component's inputs and its overrides.
pub(super) fn component_job(
    view: &Document,
    step: &RawStep,
    component: &CommandComponent,
    using: ComponentUse<'_>,
    bindings: &mut StepIo,
) -> Result<CommandJob, SpecError> {
    let ComponentUse {
        mut outputs,
        compute,
        limits,
        sampled,
        parent_inputs,
    } = using;
    for (key, present) in [
        ("command", step.command.is_some()),
        ("code", step.code.is_some()),
        ("environment", step.environment.is_some()),
    ] {
        if present {
            return Err(view.invalid(
                key,
                true,
                format!("`{key}` comes from the component `{}`; a step that uses a component does not set it", component.reference()),
                format!("remove `{key}` from the step, or change it in the component's file"),
            ));
        }
    }
    let declared: Vec<&str> = component.inputs.keys().map(String::as_str).collect();
    let mut inputs = BTreeMap::new();
    for (name, value) in &step.inputs {
        let field = join("inputs", name);
        let Some(decl) = component.inputs.get(name) else {
            let hint = nearest(name, declared.iter().copied())
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            return Err(view.invalid(
                &field,
                true,
                format!(
                    "component `{}` has no input `{name}`",
                    component.reference()
                ),
                format!("{hint}its inputs are {}", backticked(&declared)),
            ));
        };
        let given = match (&bindings.inputs[name], value) {
            // Re-read as written with YAML 1.1's rules (`yes` is true, `1e-3` a number), as
            // an inline step's values are.
            (InputBinding::Value, Input::Literal(l)) => match l.effective().cloned() {
                None => None,
                Some(v) if decl.input_type.is_literal() => {
                    let v = coerce(view, &field, decl.input_type, view.literal(&field, v))?;
                    decl.check_value(&v)
                        .map_err(|(m, h)| view.invalid(&field, false, m, h))?;
                    Some(Given::Literal(v))
                }
                Some(Literal::Str(s)) => {
                    let mut path = SourcePath::parse(&s);
                    path.resolve(view.path.parent().unwrap_or(Path::new("")));
                    Some(Given::Data {
                        path,
                        mode: None,
                        stated: None,
                    })
                }
                Some(other) => {
                    return Err(view.invalid(
                        &field,
                        false,
                        format!(
                            "input `{name}` is `{}` data, not {}",
                            decl.input_type,
                            other.describe()
                        ),
                        "give a path (`path: ./data`) or bind it to a step's output",
                    ));
                }
            },
            (InputBinding::Value, Input::Data(d)) => {
                if decl.input_type.is_literal() {
                    return Err(view.invalid(
                        &field,
                        false,
                        format!("input `{name}` is a `{}` value, not data", decl.input_type),
                        "give a value (`lr: 0.1`), or change the input's type in the component",
                    ));
                }
                let mut path = d.path.clone();
                if let Some(p) = &mut path {
                    p.resolve(view.path.parent().unwrap_or(Path::new("")));
                }
                let stated = view
                    .raw(&join(&field, "type"))
                    .is_some()
                    .then_some(d.input_type);
                path.map(|path| Given::Data {
                    path,
                    mode: Some(d.mode),
                    stated,
                })
            }
            (InputBinding::ParentInput(p), _) if parent_inputs.contains_key(p) => {
                parent_value(view, &field, decl, p, &parent_inputs[p])?
            }
            // Bound: filled in once the binding is followed (keeping a mapping's `mode:`).
            (_, value) => Some(match decl.input_type.is_literal() {
                true => Given::Literal(Literal::Str(String::new())),
                false => Given::Data {
                    path: SourcePath::parse(""),
                    mode: match value {
                        Input::Data(d) => Some(d.mode),
                        Input::Literal(_) => None,
                    },
                    stated: None,
                },
            }),
        };
        if given.is_none() && !decl.optional && decl.default.is_none() {
            return Err(view.invalid(
                &field,
                false,
                format!(
                    "input `{name}` of component `{}` is required, and the step gives it no value",
                    component.reference()
                ),
                if decl.input_type.is_literal() {
                    format!("give a {} value", decl.input_type)
                } else {
                    "give `path:` (or a path), or bind it to a step's output".to_string()
                },
            ));
        }
        inputs.insert(name.clone(), decl.given(given));
    }
    for (name, decl) in &component.inputs {
        if inputs.contains_key(name) || sampled.contains(&name.as_str()) {
            continue;
        }
        if !decl.optional && decl.default.is_none() {
            return Err(view.missing(
                &join("inputs", name),
                "",
                format!("component `{}` needs input `{name}`, and the step does not give it", component.reference()),
                format!("add it under the step's `inputs:` (`{name}: ...`, or a binding such as `${{{{parent.inputs.{name}}}}}`)"),
            ));
        }
        inputs.insert(name.clone(), decl.given(None));
        bindings.inputs.insert(name.clone(), InputBinding::Value);
    }
    let declared_outputs = component.outputs_as_declared();
    let names: Vec<&str> = declared_outputs.keys().map(String::as_str).collect();
    for name in step.outputs.keys() {
        if !declared_outputs.contains_key(name) {
            return Err(view.invalid(
                &join("outputs", name),
                true,
                format!(
                    "component `{}` has no output `{name}`",
                    component.reference()
                ),
                format!("its outputs are {}", backticked(&names)),
            ));
        }
    }
    for (name, declared) in declared_outputs {
        let out = outputs.remove(&name).unwrap_or(declared.clone());
        outputs.insert(
            name.clone(),
            Output {
                output_type: declared.output_type,
                ..out
            },
        );
        bindings.outputs.entry(name).or_insert(OutputBinding::Own);
    }
    let mut environment_variables = step.environment_variables.clone();
    fix_scalar_map(view, "environment_variables", &mut environment_variables);
    super::job::check_secret_references(view, "environment_variables", &environment_variables)?;
    let job = CommandJob {
        schema: None,
        kind: JobKind::Command,
        name: None,
        display_name: step
            .display_name
            .clone()
            .or_else(|| component.display_name.clone()),
        experiment_name: None,
        description: step.description.clone(),
        tags: step.tags.clone(),
        properties: BTreeMap::new(),
        command: component.command.clone(),
        code: component.code.clone(),
        environment: component.environment.clone(),
        environment_variables,
        compute,
        resources: step
            .resources
            .clone()
            .or_else(|| component.resources.clone())
            .unwrap_or_default(),
        distribution: step
            .distribution
            .clone()
            .or_else(|| component.distribution.clone()),
        limits,
        inputs,
        outputs,
        services: BTreeMap::new(),
        identity: None,
        queue_settings: None,
    };
    // What the step overrides is checked as an inline step's is.
    job.check_resources(view)?;
    job.check_distribution(view)?;
    Ok(job)
}

/// The value `${{parent.inputs.<p>}}` gives a component input, coerced to its declared type
/// and checked against its `min`/`max`/`enum`, as a value written in the step would be.
fn parent_value(
    view: &Document,
    field: &str,
    decl: &super::component::ComponentInput,
    p: &str,
    value: &Input,
) -> Result<Option<Given>, SpecError> {
    let through = |(m, h): (String, String)| {
        view.invalid(
            field,
            false,
            format!("through `${{{{parent.inputs.{p}}}}}`: {m}"),
            h,
        )
    };
    match value {
        Input::Literal(l) => match l.effective().cloned() {
            None => Ok(None),
            Some(v) if decl.input_type.is_literal() => {
                let v = coerce(view, field, decl.input_type, v)?;
                decl.check_value(&v).map_err(through)?;
                Ok(Some(Given::Literal(v)))
            }
            Some(Literal::Str(s)) => Ok(Some(Given::Data {
                path: SourcePath::parse(&s),
                mode: None,
                stated: None,
            })),
            Some(other) => Err(through((
                format!(
                    "a `{}` input takes data, not {}",
                    decl.input_type,
                    other.describe()
                ),
                format!(
                    "give the pipeline's input `{p}` a path (`{{type: uri_folder, path: ./data}}`)"
                ),
            ))),
        },
        Input::Data(d) if decl.input_type.is_literal() => Err(through((
            format!(
                "a `{}` input takes a value, and the pipeline's input `{p}` is data",
                decl.input_type
            ),
            format!("bind a value input, or give `{p}` a value (`{p}: 0.1`)"),
        ))),
        Input::Data(d) => Ok(d.path.clone().map(|path| Given::Data {
            path,
            mode: Some(d.mode),
            stated: Some(d.input_type),
        })),
    }
}
