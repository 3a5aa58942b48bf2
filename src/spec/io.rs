//! Job inputs (literal values or data) and outputs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Serialize};

use super::document::Document;
use super::enums::{InputMode, InputType, OutputMode};
use super::error::{Marked, SpecError};
use super::fields::SourcePath;
use super::index::{Style, join};
use super::literal::{Literal, ScalarString};

/// One entry of `inputs:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Input {
    /// `lr: 0.01`, `{value: 0.01}`, `{type: number, default: 0.01, optional: true}`.
    Literal(LiteralInput),
    /// `{type: uri_folder, path: ./data, mode: download}`.
    Data(DataInput),
}

/// A value substituted as text into the command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LiteralInput {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub input_type: Option<InputType>,
    /// The value as PyYAML reads it (YAML 1.1): `1e-3` is the string "1e-3", `yes` is `True`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Literal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Literal>,
    pub optional: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Data mounted or downloaded into the container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataInput {
    #[serde(rename = "type")]
    pub input_type: InputType,
    /// `None` only for an optional input left unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<SourcePath>,
    pub mode: InputMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_on_compute: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    pub optional: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl LiteralInput {
    /// The value used: `value`, else `default` (null counts as none).
    pub fn effective(&self) -> Option<&Literal> {
        [&self.value, &self.default]
            .into_iter()
            .flatten()
            .find(|l| **l != Literal::Null)
    }

    /// Python `str()` of the effective value: what `${{inputs.x}}` becomes.
    pub fn rendered(&self) -> Option<String> {
        self.effective().map(Literal::render)
    }
}

impl Input {
    pub fn is_optional(&self) -> bool {
        match self {
            Input::Literal(l) => l.optional,
            Input::Data(d) => d.optional,
        }
    }

    /// Whether the input has a value (a literal or a data path) to substitute.
    pub fn has_value(&self) -> bool {
        match self {
            Input::Literal(l) => l.effective().is_some(),
            Input::Data(d) => d.path.is_some(),
        }
    }
}

/// The mapping form of an input, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    #[serde(rename = "type", default)]
    input_type: Option<InputType>,
    #[serde(default)]
    value: Option<Literal>,
    #[serde(default)]
    default: Option<Literal>,
    #[serde(default)]
    path: Option<SourcePath>,
    #[serde(default)]
    mode: Option<InputMode>,
    #[serde(default)]
    path_on_compute: Option<String>,
    #[serde(default)]
    datastore: Option<String>,
    #[serde(default)]
    optional: Option<bool>,
    #[serde(default)]
    description: Option<String>,
}

fn classify(raw: RawInput) -> Result<Input, Marked> {
    let literal = match raw.input_type {
        Some(t) => t.is_literal(),
        None => raw.path.is_none() && (raw.value.is_some() || raw.default.is_some()),
    };
    let optional = raw.optional.unwrap_or(false);
    if literal {
        let data_keys = [
            ("path", raw.path.is_some()),
            ("mode", raw.mode.is_some()),
            ("path_on_compute", raw.path_on_compute.is_some()),
            ("datastore", raw.datastore.is_some()),
        ];
        if let Some((key, _)) = data_keys.iter().find(|(_, set)| *set) {
            return Err(Marked::invalid(
                "`{field}` only applies to data inputs, and this input is a literal value",
                format!("remove `{key}`, or for data set `type: uri_file` or `type: uri_folder` and give `path:`"),
            )
            .at_key(key));
        }
        return Ok(Input::Literal(LiteralInput {
            input_type: raw.input_type,
            value: raw.value,
            default: raw.default,
            optional,
            description: raw.description,
        }));
    }
    let input_type = raw.input_type.unwrap_or(InputType::UriFolder);
    if raw.value.is_some() {
        return Err(Marked::invalid(
            format!("`{{field}}`: a `{input_type}` input is data, and data takes `path:` rather than `value:`"),
            "write `path: <local path relative to this file, or URI>`, or for a plain value set `type: string` (or integer, number, boolean)",
        )
        .at_key("value"));
    }
    let path = match (raw.path, raw.default) {
        (Some(p), _) => Some(p),
        (None, Some(Literal::Str(s))) => Some(SourcePath::parse(&s)),
        (None, Some(other)) => {
            return Err(Marked::invalid(
                format!(
                    "`{{field}}` of a data input must be a path, not {}",
                    other.describe()
                ),
                "give the data location as `path:`",
            )
            .at("default"));
        }
        (None, None) => None,
    };
    if path.is_none() && !optional {
        return Err(Marked::missing(
            "path",
            format!(
                "a `{input_type}` input needs `path:` (a local path relative to this file, or a URI), or `optional: true`"
            ),
        ));
    }
    let mode = raw.mode.unwrap_or(InputMode::RoMount);
    if matches!(mode, InputMode::EvalMount | InputMode::EvalDownload)
        && input_type != InputType::Mltable
    {
        return Err(Marked::invalid(
            format!("`{{field}}: {mode}` only applies to `mltable` inputs, and this one is `{input_type}`"),
            "use `ro_mount`, `download` or `direct`",
        )
        .at("mode"));
    }
    Ok(Input::Data(DataInput {
        input_type,
        path,
        mode,
        path_on_compute: raw.path_on_compute,
        datastore: raw.datastore,
        optional,
        description: raw.description,
    }))
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl V {
            fn literal(value: Literal) -> Input {
                Input::Literal(LiteralInput {
                    input_type: None,
                    value: Some(value),
                    default: None,
                    optional: false,
                    description: None,
                })
            }
        }
        impl<'de> Visitor<'de> for V {
            type Value = Input;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a value (string, number, boolean) or a mapping with `type`/`path` or `value`",
                )
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Input, E> {
                Ok(V::literal(Literal::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Input, E> {
                Ok(V::literal(Literal::Int(v.into())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Input, E> {
                Ok(V::literal(Literal::Int(v.into())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Input, E> {
                Ok(V::literal(Literal::Float(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Input, E> {
                Ok(V::literal(Literal::Str(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Input, E> {
                Ok(Input::Literal(LiteralInput {
                    input_type: None,
                    value: None,
                    default: None,
                    optional: false,
                    description: None,
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Input, A::Error> {
                let raw = RawInput::deserialize(MapAccessDeserializer::new(map))?;
                classify(raw).map_err(Marked::into_de)
            }
        }
        d.deserialize_any(V)
    }
}

/// One entry of `outputs:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    #[serde(rename = "type")]
    pub output_type: InputType,
    pub mode: OutputMode,
    /// Destination (a datastore URI; may contain `${{name}}`-style macros, kept as written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Register the result as an asset of this name (and `version`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Default for Output {
    /// An empty output: a folder, mounted read-write.
    fn default() -> Self {
        Output {
            output_type: InputType::UriFolder,
            mode: OutputMode::RwMount,
            path: None,
            name: None,
            version: None,
            description: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    #[serde(rename = "type", default)]
    output_type: Option<InputType>,
    #[serde(default)]
    mode: Option<OutputMode>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<ScalarString>,
    #[serde(default)]
    description: Option<String>,
}

impl<'de> Deserialize<'de> for Output {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Output;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "nothing (a default folder output) or a mapping with `type`, `mode`, `path`",
                )
            }
            fn visit_unit<E: de::Error>(self) -> Result<Output, E> {
                Ok(Output::default())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Output, E> {
                Err(Marked::invalid(
                    format!("`{{field}}` is the text `{v}`; an output is either empty or a mapping"),
                    format!("leave it empty for a folder output, or write `path: {v}` under it to choose where it goes"),
                )
                .into_de())
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Output, A::Error> {
                let raw = RawOutput::deserialize(MapAccessDeserializer::new(map))?;
                let output_type = raw.output_type.unwrap_or(InputType::UriFolder);
                if output_type.is_literal() {
                    return Err(Marked::invalid(
                        format!("`{{field}}: {output_type}`: outputs are data, not values"),
                        "use `uri_folder` (default), `uri_file`, `mltable`, `custom_model`, `mlflow_model` or `triton_model`; log values as metrics instead",
                    )
                    .at("type")
                    .into_de());
                }
                Ok(Output {
                    output_type,
                    mode: raw.mode.unwrap_or(OutputMode::RwMount),
                    path: raw.path,
                    name: raw.name,
                    version: raw.version.map(|v| v.0),
                    description: raw.description,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `^[a-zA-Z_][a-zA-Z0-9_]*$`
pub fn valid_io_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a key of `section` that commands refer to as `${{section.name}}` (an input, output
/// or search-space name); the fix names a valid spelling and the reference to update in
/// `used_in`.
pub(crate) fn check_name(
    doc: &Document,
    section: &str,
    what: &str,
    name: &str,
    used_in: &str,
) -> Result<(), SpecError> {
    if valid_io_name(name) {
        return Ok(());
    }
    let fixed: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let fixed = if fixed.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{fixed}")
    } else {
        fixed
    };
    Err(doc.invalid(
        &join(section, name),
        true,
        format!("`{name}` is not a valid {what} name: names start with a letter or `_` and contain only letters, digits and `_`"),
        format!("rename it, e.g. to `{fixed}` (and update `${{{{{section}.{name}}}}}` in {used_in})"),
    ))
}

/// After parsing: check names, re-read literals with YAML 1.1 rules, check literal types,
/// and join local data paths to the YAML file's directory.
pub(crate) fn finish_inputs(
    doc: &Document,
    inputs: &mut BTreeMap<String, Input>,
) -> Result<(), SpecError> {
    let base = doc.path.parent().unwrap_or(Path::new(""));
    for (name, input) in inputs.iter_mut() {
        check_name(doc, "inputs", "input", name, "the command")?;
        let field = join("inputs", name);
        match input {
            Input::Literal(lit) => {
                // `lr: 0.1` (a scalar in the file) or `lr: {value: 0.1}` / a block mapping.
                let bare = doc.raw(&field).is_some_and(|r| r.style != Style::Flow);
                if bare {
                    lit.value = lit.value.take().map(|v| doc.literal(&field, v));
                } else {
                    lit.value = lit
                        .value
                        .take()
                        .map(|v| doc.literal(&join(&field, "value"), v));
                }
                lit.default = lit
                    .default
                    .take()
                    .map(|v| doc.literal(&join(&field, "default"), v));
                check_literal_type(doc, &field, lit)?;
            }
            Input::Data(data) => {
                if let Some(p) = &mut data.path {
                    p.resolve(base);
                }
            }
        }
    }
    Ok(())
}

fn check_literal_type(doc: &Document, field: &str, lit: &LiteralInput) -> Result<(), SpecError> {
    let Some(ty) = lit.input_type else {
        return Ok(());
    };
    for (key, value) in [("value", &lit.value), ("default", &lit.default)] {
        let Some(value) = value else { continue };
        let fits = match ty {
            InputType::Integer => matches!(value, Literal::Int(_)),
            InputType::Number => matches!(value, Literal::Int(_) | Literal::Float(_)),
            InputType::Boolean => matches!(value, Literal::Bool(_)),
            _ => true,
        } || *value == Literal::Null;
        if !fits {
            let hint = match (ty, value) {
                (InputType::Number, Literal::Str(s))
                    if s.contains(['e', 'E']) && !s.contains('.') =>
                {
                    format!(
                        "YAML 1.1 (which Azure uses) reads `{s}` as text; write it with a dot, e.g. `1.0e-3`"
                    )
                }
                _ => format!("give a {} value, or change `type`", ty.as_str()),
            };
            return Err(doc.invalid(
                &join(field, key),
                false,
                format!(
                    "`{field}` has `type: {ty}` but its {key} is {}",
                    value.describe()
                ),
                hint,
            ));
        }
    }
    Ok(())
}

/// After parsing: check output names.
pub(crate) fn finish_outputs(
    doc: &Document,
    outputs: &BTreeMap<String, Output>,
) -> Result<(), SpecError> {
    outputs
        .keys()
        .try_for_each(|name| check_name(doc, "outputs", "output", name, "the command"))
}
