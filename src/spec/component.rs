//! The command component file (`type: command` with `name:`, typed `inputs:` and `outputs:`):
//! what a pipeline step runs, registered with `tug component create` or named by path.
//!
//! Read like every spec file (typed reading with `deny_unknown_fields`, then a finishing
//! pass with YAML 1.1 re-reading and located errors). A component declares its inputs by
//! type, with `default`, `optional`, `min`/`max` (numbers) and `enum` (strings); its command
//! is checked as if every required input were given, since values come with each use.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::document::{Document, top_keys};
use super::enums::{InputMode, InputType, OutputMode};
use super::environment::EnvironmentRef;
use super::error::{SpecError, backticked};
use super::fields::{SourcePath, fix_scalar_map, null_default, scalar_map, yaml11_opt_bool};
use super::index::join;
use super::io::{DataInput, Input, LiteralInput, Output, check_name};
use super::job::{Distribution, Resources};
use super::literal::Literal;

/// A command component.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandComponent {
    pub name: String,
    /// As written (`version: 1` is `"1"`); `None` until registered.
    pub version: Option<String>,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// `false` for steps that read mutable sources: never reused.
    pub is_deterministic: bool,
    pub command: String,
    pub code: Option<SourcePath>,
    pub environment: EnvironmentRef,
    pub distribution: Option<Distribution>,
    pub resources: Option<Resources>,
    /// Extra files and folders copied into the code snapshot, joined to the file's folder.
    pub additional_includes: Vec<SourcePath>,
    pub inputs: BTreeMap<String, ComponentInput>,
    pub outputs: BTreeMap<String, ComponentOutput>,
}

/// A declared input: its type and what values it takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentInput {
    #[serde(rename = "type")]
    pub input_type: InputType,
    pub description: Option<String>,
    pub default: Option<Literal>,
    pub optional: bool,
    pub min: Option<f64>,
    pub max: Option<f64>,
    #[serde(rename = "enum")]
    pub allowed: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComponentOutput {
    #[serde(rename = "type")]
    pub output_type: InputType,
    pub description: Option<String>,
    pub mode: Option<OutputMode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    name: String,
    #[serde(default)]
    version: Option<serde_yaml::Value>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "yaml11_opt_bool")]
    is_deterministic: Option<bool>,
    command: String,
    #[serde(default)]
    code: Option<SourcePath>,
    environment: EnvironmentRef,
    #[serde(default)]
    distribution: Option<Distribution>,
    #[serde(default)]
    resources: Option<Resources>,
    #[serde(default, deserialize_with = "null_default")]
    additional_includes: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    inputs: BTreeMap<String, RawComponentInput>,
    #[serde(default, deserialize_with = "null_default")]
    outputs: BTreeMap<String, RawComponentOutput>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawComponentInput {
    #[serde(rename = "type", default)]
    input_type: Option<InputType>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    default: Option<Literal>,
    #[serde(default, deserialize_with = "yaml11_opt_bool")]
    optional: Option<bool>,
    #[serde(default)]
    min: Option<Literal>,
    #[serde(default)]
    max: Option<Literal>,
    #[serde(rename = "enum", default)]
    allowed: Option<Vec<Literal>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawComponentOutput {
    #[serde(rename = "type")]
    pub output_type: InputType,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mode: Option<OutputMode>,
}

pub(crate) const COMPONENT_EXAMPLE: &str = "      name: train\n      type: command\n      inputs:\n        data: {type: uri_folder}\n      command: python train.py --data ${{inputs.data}}\n      environment: azureml:AzureML-sklearn-1.5@latest";

/// Azure's component names: a lowercase letter first, then lowercase letters, digits and
/// `_`, at most 255 characters.
pub fn valid_component_name(name: &str) -> bool {
    name.len() <= 255
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

pub(crate) fn read(doc: &Document) -> Result<CommandComponent, SpecError> {
    let root = doc.root_mapping(COMPONENT_EXAMPLE)?;
    let keys: Vec<&str> = top_keys(root).collect();
    if keys.contains(&"jobs") {
        return Err(doc.unsupported(
            "jobs",
            true,
            "`jobs:` makes this a pipeline component, and tug reads command components here"
                .into(),
            "write the steps in a pipeline job (`type: pipeline`), or make this a command component (`command:` + `environment:`)",
        ));
    }
    let raw: RawComponent = doc.deserialize()?;
    match raw.kind.as_deref() {
        None | Some("command") => {}
        Some(other) => {
            return Err(doc.unsupported(
                "type",
                false,
                format!(
                    "`type: {other}` components are not supported; tug runs command components"
                ),
                "write `type: command` (or leave `type` out)",
            ));
        }
    }
    if !valid_component_name(&raw.name) {
        let fixed: String = raw
            .name
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        return Err(doc.invalid(
            "name",
            false,
            format!("`{}` is not a valid component name", raw.name),
            format!(
                "a component name starts with a lowercase letter and has only lowercase letters, digits and `_` (at most 255), e.g. `{}`",
                fixed.trim_start_matches(|c: char| !c.is_ascii_lowercase())
            ),
        ));
    }
    if raw.command.trim().is_empty() {
        return Err(doc.invalid(
            "command",
            false,
            "`command` is empty".into(),
            "give the shell command to run, e.g. `command: python train.py`",
        ));
    }
    let base = doc.path.parent().unwrap_or(Path::new(""));
    let mut tags = raw.tags;
    fix_scalar_map(doc, "tags", &mut tags);
    let mut inputs = BTreeMap::new();
    for (name, input) in raw.inputs {
        check_name(doc, "inputs", "input", &name, "the command")?;
        let field = join("inputs", &name);
        inputs.insert(name, finish_input(doc, &field, input)?);
    }
    let mut outputs = BTreeMap::new();
    for (name, out) in raw.outputs {
        check_name(doc, "outputs", "output", &name, "the command")?;
        if out.output_type.is_literal() {
            return Err(doc.invalid(
                &join(&join("outputs", &name), "type"),
                false,
                format!(
                    "output `{name}` has `type: {}`; outputs are data",
                    out.output_type
                ),
                "use `uri_folder` (the default), `uri_file`, `mlflow_model`, `custom_model` or `mltable`; a value is logged as a metric instead",
            ));
        }
        outputs.insert(
            name,
            ComponentOutput {
                output_type: out.output_type,
                description: out.description,
                mode: out.mode,
            },
        );
    }
    let mut environment = raw.environment;
    if let EnvironmentRef::Inline(env) = &mut environment {
        env.finish(doc, "environment");
    }
    let mut code = raw.code;
    if let Some(code) = &mut code {
        code.resolve(base);
    }
    let additional_includes = raw
        .additional_includes
        .iter()
        .map(|p| {
            let mut p = SourcePath::parse(p);
            p.resolve(base);
            p
        })
        .collect();
    let version = doc.version_text("version", raw.version);
    let component = CommandComponent {
        name: raw.name,
        version,
        display_name: raw.display_name,
        description: raw.description,
        tags,
        is_deterministic: raw.is_deterministic.unwrap_or(true),
        command: raw.command,
        code,
        environment,
        distribution: raw.distribution,
        resources: raw.resources,
        additional_includes,
        inputs,
        outputs,
    };
    super::expr::validate_command(
        doc,
        "command",
        &component.command,
        &component.inputs_as_given(),
        &component.outputs_as_declared(),
        None,
    )?;
    Ok(component)
}

/// Re-reads the values with YAML 1.1 rules and checks them against the declared type.
pub(super) fn finish_input(
    doc: &Document,
    field: &str,
    raw: RawComponentInput,
) -> Result<ComponentInput, SpecError> {
    let Some(ty) = raw.input_type else {
        return Err(doc.missing(
            &join(field, "type"),
            field,
            format!("`{field}` has no `type`; a component declares each input's type"),
            "add `type:`: `uri_folder`, `uri_file`, `mlflow_model`, `custom_model`, `mltable` for data, `string`, `integer`, `number` or `boolean` for a value",
        ));
    };
    let reread = |key: &str, v: Literal| doc.literal(&join(field, key), v);
    let default = match raw.default.map(|v| reread("default", v)) {
        Some(Literal::Null) | None => None,
        Some(v) if ty.is_literal() => Some(coerce(doc, &join(field, "default"), ty, v)?),
        // A local path is the component's, wherever it is used from.
        Some(Literal::Str(s)) => {
            let mut path = SourcePath::parse(&s);
            path.resolve(doc.path.parent().unwrap_or(Path::new("")));
            Some(Literal::Str(match path.local {
                Some(local) => local.display().to_string(),
                None => s,
            }))
        }
        Some(other) => {
            return Err(doc.invalid(
                &join(field, "default"),
                false,
                format!(
                    "the default of a `{ty}` input must be a path, not {}",
                    other.describe()
                ),
                "give a local path (relative to this file) or a URI",
            ));
        }
    };
    let bound = |key: &str, v: Option<Literal>| -> Result<Option<f64>, SpecError> {
        let Some(v) = v.map(|v| reread(key, v)) else {
            return Ok(None);
        };
        if !matches!(ty, InputType::Integer | InputType::Number) {
            return Err(doc.invalid(
                &join(field, key),
                true,
                format!(
                    "`{key}` only applies to `integer` and `number` inputs, and this one is `{ty}`"
                ),
                format!("remove `{key}`, or change `type`"),
            ));
        }
        match coerce(doc, &join(field, key), InputType::Number, v)? {
            Literal::Int(i) => Ok(Some(i as f64)),
            Literal::Float(f) => Ok(Some(f)),
            _ => unreachable!("coerced to a number"),
        }
    };
    let min = bound("min", raw.min)?;
    let max = bound("max", raw.max)?;
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        return Err(doc.invalid(
            &join(field, "min"),
            false,
            format!("`min` ({lo}) is above `max` ({hi})"),
            "swap them",
        ));
    }
    let allowed = match raw.allowed {
        None => None,
        Some(_) if ty != InputType::String => {
            return Err(doc.invalid(
                &join(field, "enum"),
                true,
                format!("`enum` only applies to `string` inputs, and this one is `{ty}`"),
                "remove `enum`, or make the input `type: string`",
            ));
        }
        Some(list) if list.is_empty() => {
            return Err(doc.invalid(
                &join(field, "enum"),
                false,
                "`enum` is empty: no value would be accepted".into(),
                "list the values the input accepts, or remove `enum`",
            ));
        }
        Some(list) => Some(list.iter().map(Literal::render).collect()),
    };
    let input = ComponentInput {
        input_type: ty,
        description: raw.description,
        default,
        optional: raw.optional.unwrap_or(false),
        min,
        max,
        allowed,
    };
    if let Some(d) = &input.default {
        input.check_value(d).map_err(|(message, help)| {
            doc.invalid(&join(field, "default"), false, message, help)
        })?;
    }
    Ok(input)
}

/// `value` as a value of `ty`. Text that reads as one is accepted, as Azure's SDK does
/// (its YAML 1.1 reads `1e-3` as text, and its schema then takes it as a number).
pub(crate) fn coerce(
    doc: &Document,
    field: &str,
    ty: InputType,
    value: Literal,
) -> Result<Literal, SpecError> {
    coerce_literal(ty, value).map_err(|(message, help)| doc.invalid(field, false, message, help))
}

/// [`coerce`] without a file to point into: the message and the fix.
pub fn coerce_literal(ty: InputType, value: Literal) -> Result<Literal, (String, String)> {
    let fail = |v: &Literal| {
        (
            format!("{} is not a `{ty}` value", v.describe()),
            format!("give a {ty} value, or change the input's `type`"),
        )
    };
    Ok(match (ty, value) {
        (InputType::String, v) => Literal::Str(v.render()),
        (InputType::Integer, Literal::Int(i)) => Literal::Int(i),
        (InputType::Integer, Literal::Str(s)) => Literal::Int(
            s.trim()
                .parse()
                .map_err(|_| fail(&Literal::Str(s.clone())))?,
        ),
        (InputType::Number, Literal::Int(i)) => Literal::Int(i),
        (InputType::Number, Literal::Float(f)) => Literal::Float(f),
        (InputType::Number, Literal::Str(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => Literal::Float(f),
            _ => return Err(fail(&Literal::Str(s))),
        },
        (InputType::Boolean, Literal::Bool(b)) => Literal::Bool(b),
        (InputType::Boolean, Literal::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Literal::Bool(true),
            "false" => Literal::Bool(false),
            _ => return Err(fail(&Literal::Str(s))),
        },
        (_, v) => return Err(fail(&v)),
    })
}

impl ComponentInput {
    /// Whether `value` (already of the input's type) is within `min`/`max` and `enum`.
    pub fn check_value(&self, value: &Literal) -> Result<(), (String, String)> {
        let number = match value {
            Literal::Int(i) => Some(*i as f64),
            Literal::Float(f) => Some(*f),
            _ => None,
        };
        if let Some(n) = number {
            if let Some(lo) = self.min.filter(|lo| n < *lo) {
                return Err((
                    format!("{} is below the input's `min` ({lo})", value.render()),
                    format!("give a value of at least {lo}"),
                ));
            }
            if let Some(hi) = self.max.filter(|hi| n > *hi) {
                return Err((
                    format!("{} is above the input's `max` ({hi})", value.render()),
                    format!("give a value of at most {hi}"),
                ));
            }
        }
        if let Some(allowed) = &self.allowed {
            let v = value.render();
            if !allowed.contains(&v) {
                let names: Vec<&str> = allowed.iter().map(String::as_str).collect();
                return Err((
                    format!("`{v}` is not one of the input's `enum` values"),
                    format!("use one of {}", backticked(&names)),
                ));
            }
        }
        Ok(())
    }

    /// The input as a job's input with `value` (a literal, or data at a path), or with
    /// its default when `value` is `None`.
    pub fn given(&self, value: Option<Given>) -> Input {
        if self.input_type.is_literal() {
            let value = match value {
                Some(Given::Literal(l)) => Some(l),
                _ => None,
            };
            return Input::Literal(LiteralInput {
                input_type: Some(self.input_type),
                value,
                default: self.default.clone(),
                optional: self.optional,
                description: self.description.clone(),
            });
        }
        let (path, mode) = match value {
            Some(Given::Data { path, mode, stated }) => (Some(path), (mode, stated)),
            Some(Given::Literal(l)) => (Some(SourcePath::parse(&l.render())), (None, None)),
            None => (
                self.default
                    .as_ref()
                    .map(|d| SourcePath::parse(&d.render())),
                (None, None),
            ),
        };
        let (mode, stated) = mode;
        Input::Data(DataInput {
            input_type: stated
                .filter(|t| !t.is_literal())
                .unwrap_or(self.input_type),
            path,
            mode: mode.unwrap_or(InputMode::RoMount),
            path_on_compute: None,
            datastore: None,
            optional: self.optional,
            description: self.description.clone(),
        })
    }
}

/// A value a use of the component gives one of its inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Given {
    Literal(Literal),
    Data {
        path: SourcePath,
        mode: Option<InputMode>,
        /// The type the use states for its data (`type: uri_file` for a file given to a
        /// `uri_folder` input, as Azure's samples do): the data's type, not the declaration's.
        stated: Option<InputType>,
    },
}

impl CommandComponent {
    /// Inputs as a use that gives every required one would: required inputs have a
    /// value, optional ones only their default. What the command is checked against.
    fn inputs_as_given(&self) -> BTreeMap<String, Input> {
        self.inputs
            .iter()
            .map(|(name, input)| {
                let placeholder = (!input.optional && input.default.is_none()).then(|| {
                    if input.input_type.is_literal() {
                        Given::Literal(Literal::Str(String::new()))
                    } else {
                        Given::Data {
                            path: SourcePath::parse(name),
                            mode: None,
                            stated: None,
                        }
                    }
                });
                (name.clone(), input.given(placeholder))
            })
            .collect()
    }

    /// The outputs as a job declares them (type and mode).
    pub fn outputs_as_declared(&self) -> BTreeMap<String, Output> {
        self.outputs
            .iter()
            .map(|(name, o)| {
                (
                    name.clone(),
                    Output {
                        output_type: o.output_type,
                        mode: o.mode.unwrap_or(OutputMode::RwMount),
                        description: o.description.clone(),
                        ..Default::default()
                    },
                )
            })
            .collect()
    }

    /// `name:version`, or the name alone before registration.
    pub fn reference(&self) -> String {
        match &self.version {
            Some(v) => format!("{}:{v}", self.name),
            None => self.name.clone(),
        }
    }
}
