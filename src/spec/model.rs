//! Models: the model file (`az ml model create -f`) and a deployment's `model:` (a reference
//! to a registered model, or one written inline). Where the files are: `model_path.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::document::{Document, top_keys};
use super::enums::ModelType;
use super::environment::AssetVersion;
use super::error::{Marked, SpecError};
use super::fields::{fix_scalar_map, null_default, scalar_map};
use super::index::join;
use super::literal::ScalarString;
use super::model_path::{ModelPath, PATH_FORMS};

/// `^[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}$`: the name of a registered model.
pub fn valid_model_name(name: &str) -> bool {
    name.len() <= 255
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// `name` with every character a model name cannot have turned into `-`.
fn suggest_model_name(name: &str) -> String {
    let fixed: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let fixed = fixed.trim_start_matches(['-', '_']);
    if fixed.is_empty() {
        "my-model".into()
    } else {
        fixed.chars().take(255).collect()
    }
}

const NAME_RULE: &str = "model names are 1 to 255 characters: letters, digits, `-` and `_`, starting with a letter or digit";

/// Why `version` is not a model version tug accepts (a whole number from 1 up), if it is not.
fn version_problem(version: &str) -> Option<String> {
    let digits = !version.is_empty() && version.chars().all(|c| c.is_ascii_digit());
    if digits && !version.starts_with('0') && version.len() <= 9 {
        return None;
    }
    Some(if digits && version.trim_start_matches('0').is_empty() {
        "versions start at 1".to_string()
    } else if digits && version.starts_with('0') {
        "write the number without leading zeros".to_string()
    } else if digits {
        "the number is too large".to_string()
    } else {
        "tug numbers model versions 1, 2, 3... (Azure also allows text labels; tug does not)"
            .to_string()
    })
}

/// A model file, registered under `name` (and `version`, or the next free one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawModel")]
pub struct ModelSpec {
    pub name: String,
    /// A whole number from 1 up, as text; `None` = the next free version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub path: ModelPath,
    #[serde(rename = "type")]
    pub model_type: ModelType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// MLflow flavors (`python_function: {loader_module: ...}`), kept as written.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub flavors: BTreeMap<String, serde_json::Value>,
    /// Free text such as `Development` or `Production`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The run that produced the model (informational; `az ml model show` writes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
}

/// A deployment's inline `model:`: a model file's fields, the name optional (Azure registers
/// an inline model anonymously).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawModel")]
pub struct InlineModel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub path: ModelPath,
    #[serde(rename = "type")]
    pub model_type: ModelType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub flavors: BTreeMap<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
}

impl InlineModel {
    /// As a model of its own, named `default_name` when the file gives no name.
    pub fn into_spec(self, default_name: &str) -> ModelSpec {
        ModelSpec {
            name: self.name.unwrap_or_else(|| default_name.to_string()),
            version: self.version,
            path: self.path,
            model_type: self.model_type,
            description: self.description,
            tags: self.tags,
            properties: self.properties,
            flavors: self.flavors,
            stage: self.stage,
            job_name: self.job_name,
        }
    }
}

/// The model schema as written; [`ModelSpec`] and [`InlineModel`] are this, checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<ScalarString>,
    #[serde(default)]
    path: Option<ModelPath>,
    #[serde(rename = "type", default)]
    model_type: Option<ModelType>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_map")]
    properties: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    flavors: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    job_name: Option<String>,
}

impl TryFrom<RawModel> for InlineModel {
    type Error = Marked;

    fn try_from(raw: RawModel) -> Result<Self, Marked> {
        let Some(path) = raw.path else {
            return Err(Marked::missing(
                "path",
                format!("add `path:` saying where the model's files are: {PATH_FORMS}"),
            ));
        };
        if let Some(name) = &raw.name
            && !valid_model_name(name)
        {
            return Err(Marked::invalid(
                format!("`{name}` is not a valid model name for `{{field}}`: {NAME_RULE}"),
                format!("rename it, e.g. `name: {}`", suggest_model_name(name)),
            )
            .at("name"));
        }
        Ok(InlineModel {
            name: raw.name,
            version: raw.version.map(|v| v.0),
            path,
            model_type: raw.model_type.unwrap_or_default(),
            description: raw.description,
            tags: raw.tags,
            properties: raw.properties,
            flavors: raw.flavors,
            stage: raw.stage,
            job_name: raw.job_name,
        })
    }
}

impl TryFrom<RawModel> for ModelSpec {
    type Error = Marked;

    fn try_from(raw: RawModel) -> Result<Self, Marked> {
        if raw.name.is_none() {
            return Err(Marked::missing(
                "name",
                "add `name:` to register the model under, e.g. `name: my-model` (letters, digits, `-` and `_`)",
            ));
        }
        let inline = InlineModel::try_from(raw)?;
        let name = inline.name.clone().unwrap_or_default();
        Ok(inline.into_spec(&name))
    }
}

/// After parsing: YAML 1.1 text of tags and version, the version rule, local paths joined.
fn finish_parts(
    doc: &Document,
    prefix: &str,
    version: &mut Option<String>,
    tags: &mut BTreeMap<String, String>,
    properties: &mut BTreeMap<String, String>,
    path: &mut ModelPath,
) -> Result<(), SpecError> {
    fix_scalar_map(doc, &join(prefix, "tags"), tags);
    fix_scalar_map(doc, &join(prefix, "properties"), properties);
    if let Some(v) = version.take() {
        let field = join(prefix, "version");
        let text = doc.scalar_text(&field, v);
        if let Some(why) = version_problem(&text) {
            return Err(doc.invalid(
                &field,
                false,
                format!("`{field}: {text}` is not a model version tug can use: {why}"),
                "write a whole number such as `version: 1`, or leave `version` out to take the next free number",
            ));
        }
        *version = Some(text);
    }
    path.resolve(doc.path.parent().unwrap_or(Path::new("")));
    Ok(())
}

impl ModelSpec {
    pub(crate) fn finish(&mut self, doc: &Document) -> Result<(), SpecError> {
        finish_parts(
            doc,
            "",
            &mut self.version,
            &mut self.tags,
            &mut self.properties,
            &mut self.path,
        )
    }
}

impl InlineModel {
    pub(crate) fn finish(&mut self, doc: &Document, prefix: &str) -> Result<(), SpecError> {
        finish_parts(
            doc,
            prefix,
            &mut self.version,
            &mut self.tags,
            &mut self.properties,
            &mut self.path,
        )
    }
}

/// Keys of the preview CLI's model schema, and what replaced them.
const LEGACY_KEYS: &[(&str, &str)] = &[
    ("local_path", "`path:`"),
    ("model_uri", "`path:`"),
    (
        "model_format",
        "`type:` (`custom_model`, `mlflow_model` or `triton_model`)",
    ),
    (
        "datastore",
        "a full `azureml://datastores/<datastore>/paths/<path>` in `path:`",
    ),
];

/// An error for a key of the old (preview) model schema in the mapping at `prefix`, if any.
pub(crate) fn check_legacy_keys(
    doc: &Document,
    map: &serde_yaml::Mapping,
    prefix: &str,
) -> Result<(), SpecError> {
    for key in top_keys(map) {
        if let Some((old, new)) = LEGACY_KEYS.iter().find(|(k, _)| *k == key) {
            let field = join(prefix, old);
            return Err(doc.invalid(
                &field,
                true,
                format!("`{field}` is from the preview CLI's model schema, which Azure ML no longer reads"),
                format!("write {new} instead"),
            ));
        }
    }
    Ok(())
}

const MODEL_EXAMPLE: &str = "      name: my-model\n      path: ./model\n      type: mlflow_model";

/// Checks on a model file's top level before the typed reading.
pub(crate) fn precheck(doc: &Document) -> Result<(), SpecError> {
    let root = doc.root_mapping(MODEL_EXAMPLE)?;
    for key in top_keys(root) {
        let looks_like = match key {
            "command" => Some("a command job"),
            "image" | "build" => Some("an environment"),
            "endpoint_name" | "code_configuration" => Some("an online deployment"),
            "auth_mode" | "traffic" => Some("an online endpoint"),
            _ => None,
        };
        if let Some(other) = looks_like {
            return Err(doc.invalid(
                key,
                true,
                format!("`{key}` at the top level: this looks like {other}, not a model"),
                format!("read it as {other}; a model file looks like:\n{MODEL_EXAMPLE}"),
            ));
        }
    }
    check_legacy_keys(doc, root, "")
}

/// A deployment's `model:`: a registered model, or one written inline.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelRef {
    /// `azureml:<name>:<version>`, `azureml:<name>@latest`, `azureml:<name>` (= latest), or an
    /// ARM id: a model in tug's own registry.
    Registered { name: String, version: AssetVersion },
    /// `azureml://registries/<registry>/models/<name>/versions/<v>` (or `/labels/latest`).
    Registry {
        registry: String,
        name: String,
        version: AssetVersion,
    },
    /// An inline model (`path:` and more), registered anonymously.
    Inline(Box<InlineModel>),
}

impl ModelRef {
    /// Parse a reference string on its own (e.g. from a command line).
    pub fn parse(text: &str) -> Result<ModelRef, SpecError> {
        parse_model_ref(text).map_err(|m| m.into_inline("model"))
    }
}

/// Parse a model reference string (`azureml:name:1`, `azureml:name@latest`, ...).
pub(crate) fn parse_model_ref(text: &str) -> Result<ModelRef, Marked> {
    let text = text.trim();
    let bad = |why: &str| {
        Marked::invalid(
            format!("`{text}` is not a valid model reference for `{{field}}`: {why}"),
            "write `azureml:<name>:<version>`, `azureml:<name>@latest`, or the model inline with `path:`",
        )
    };
    let version_of = |v: &str| match version_problem(v) {
        None => Ok(AssetVersion::Version(v.to_string())),
        Some(_) if v == "latest" => Err(bad(
            "`:latest` is not a version; the newest version is written `@latest`",
        )),
        Some(why) => Err(bad(&format!("version `{v}`: {why}"))),
    };
    if let Some(rest) = text.strip_prefix("azureml://registries/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [registry, "models", name, "versions", v]
                if !registry.is_empty() && valid_model_name(name) && !v.is_empty() =>
            {
                Ok(ModelRef::Registry {
                    registry: registry.to_string(),
                    name: name.to_string(),
                    version: AssetVersion::Version(v.to_string()),
                })
            }
            [registry, "models", name, "labels", "latest"]
                if !registry.is_empty() && valid_model_name(name) =>
            {
                Ok(ModelRef::Registry {
                    registry: registry.to_string(),
                    name: name.to_string(),
                    version: AssetVersion::Latest,
                })
            }
            _ => Err(bad(
                "expected `azureml://registries/<registry>/models/<name>/versions/<version>` or `.../labels/latest`",
            )),
        };
    }
    let Some(rest) = text.strip_prefix("azureml:") else {
        let looks_like_path = text.contains(['/', '\\', '.']) || text.starts_with("runs:");
        return Err(Marked::invalid(
            format!("`{{field}}: {text}` is neither an `azureml:` reference nor an inline model"),
            if looks_like_path {
                format!(
                    "to deploy the files at that path, write the model inline:\n      model:\n        path: {text}"
                )
            } else {
                format!(
                    "to use a registered model write `azureml:{text}:<version>` or `azureml:{text}@latest`"
                )
            },
        ));
    };
    if rest.starts_with('/') {
        // ARM id: azureml:/subscriptions/.../models/<name>/versions/<version>
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.iter().position(|p| *p == "models") {
            Some(i)
                if parts.len() == i + 4
                    && parts[i + 2] == "versions"
                    && valid_model_name(parts[i + 1]) =>
            {
                Ok(ModelRef::Registered {
                    name: parts[i + 1].to_string(),
                    version: version_of(parts[i + 3])?,
                })
            }
            _ => Err(bad(
                "an ARM id must end in `/models/<name>/versions/<version>`",
            )),
        };
    }
    let (name, version) = if let Some((name, label)) = rest.split_once('@') {
        if label != "latest" {
            return Err(bad(&format!(
                "unknown label `@{label}`; only `@latest` exists"
            )));
        }
        (name, AssetVersion::Latest)
    } else {
        match rest.split(':').collect::<Vec<_>>().as_slice() {
            [name] => (*name, AssetVersion::Latest),
            [_, ""] => return Err(bad("the version after `:` is empty")),
            [name, version] => (*name, version_of(version)?),
            _ => return Err(bad("too many `:`; expected `azureml:<name>:<version>`")),
        }
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if !valid_model_name(name) {
        return Err(bad(NAME_RULE));
    }
    Ok(ModelRef::Registered {
        name: name.to_string(),
        version,
    })
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelRef::Registered {
                name,
                version: AssetVersion::Version(v),
            } => write!(f, "azureml:{name}:{v}"),
            ModelRef::Registered {
                name,
                version: AssetVersion::Latest,
            } => write!(f, "azureml:{name}@latest"),
            ModelRef::Registry {
                registry,
                name,
                version: AssetVersion::Version(v),
            } => write!(
                f,
                "azureml://registries/{registry}/models/{name}/versions/{v}"
            ),
            ModelRef::Registry {
                registry,
                name,
                version: AssetVersion::Latest,
            } => write!(
                f,
                "azureml://registries/{registry}/models/{name}/labels/latest"
            ),
            ModelRef::Inline(_) => f.write_str("(inline model)"),
        }
    }
}

impl Serialize for ModelRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ModelRef::Inline(model) => model.serialize(s),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for ModelRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ModelRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an `azureml:<name>:<version>` reference or an inline model mapping")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ModelRef, E> {
                parse_model_ref(v).map_err(Marked::into_de)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ModelRef, A::Error> {
                InlineModel::deserialize(MapAccessDeserializer::new(map))
                    .map(|m| ModelRef::Inline(Box::new(m)))
            }
        }
        d.deserialize_any(V)
    }
}
