//! Environments: the environment file / inline `environment:` mapping, and `azureml:` references.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Serialize, Serializer};

use super::conda::CondaSpec;
use super::document::Document;
use super::enums::OsType;
use super::error::{Marked, SpecError};
use super::fields::{SourcePath, fix_scalar_map, scalar_map};
use super::index::join;
use super::literal::ScalarString;

/// A version of a registered asset: a fixed one, or the most recently created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetVersion {
    Version(String),
    Latest,
}

/// A job's `environment:`: a reference to a registered environment, or one written inline.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvironmentRef {
    /// `azureml:<name>:<version>`, `azureml:<name>@latest`, `azureml:<name>` (= latest), or an
    /// ARM id: an environment registered in tug's own registry.
    Registered { name: String, version: AssetVersion },
    /// `azureml://registries/<registry>/environments/<name>/versions/<v>` (or `/labels/latest`):
    /// an Azure ML registry asset, which tug can only use if it has a copy under that name.
    Registry {
        registry: String,
        name: String,
        version: AssetVersion,
    },
    /// An inline environment (its `name`/`version`, if given, are ignored by Azure).
    Inline(Box<EnvironmentSpec>),
}

/// An environment: a base image (plus optional conda file) or a Docker build context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawEnvironment")]
pub struct EnvironmentSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    #[serde(flatten)]
    pub source: EnvironmentSource,
    /// Always Linux once parsed (`windows` is rejected).
    pub os_type: OsType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_config: Option<InferenceConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
}

/// Where an environment's image comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EnvironmentSource {
    /// `image:`, optionally with packages from `conda_file:` installed on top.
    Image {
        image: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        conda_file: Option<CondaFile>,
    },
    /// `build: {path, dockerfile_path}`.
    Build { build: BuildContext },
}

/// `build:` of an environment: a Docker build context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildContext {
    /// The context folder (relative to the YAML file) or a URL.
    pub path: SourcePath,
    /// Relative to the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile_path: String,
}

fn default_dockerfile() -> String {
    "Dockerfile".into()
}

/// `conda_file:`: a path relative to the YAML file, or the conda spec written inline.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CondaFile {
    Path(SourcePath),
    Inline(CondaSpec),
}

/// `inference_config:` (bring-your-own-container serving routes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferenceConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_route: Option<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_route: Option<Route>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring_route: Option<Route>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub port: u16,
    pub path: String,
}

/// The environment schema as written; [`EnvironmentSpec`] is this, checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<ScalarString>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_map")]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    build: Option<BuildContext>,
    #[serde(default)]
    conda_file: Option<CondaFile>,
    #[serde(default)]
    os_type: Option<OsType>,
    #[serde(default)]
    inference_config: Option<InferenceConfig>,
    #[serde(default)]
    datastore: Option<String>,
}

impl TryFrom<RawEnvironment> for EnvironmentSpec {
    type Error = Marked;

    fn try_from(raw: RawEnvironment) -> Result<Self, Marked> {
        let source = match (raw.image, raw.build) {
            (Some(_), Some(_)) => {
                return Err(Marked::invalid(
                    "`{field}`: an environment has either `image` or `build`, and this one has both",
                    "keep `image:` to start from an existing image (add packages with `conda_file:`), or `build:` to build from your own Dockerfile",
                )
                .at_key("build"));
            }
            (None, None) => {
                return Err(Marked::missing(
                    "image",
                    "an environment needs `image:` (e.g. `image: python:3.11-slim`) or `build:` with a Docker build context `path:`",
                ));
            }
            (Some(image), None) if image.trim().is_empty() => {
                return Err(Marked::invalid(
                    "`{field}` is empty",
                    "name a Docker image, e.g. `image: python:3.11-slim`",
                )
                .at("image"));
            }
            (Some(image), None) => EnvironmentSource::Image {
                image,
                conda_file: raw.conda_file,
            },
            (None, Some(build)) => {
                if raw.conda_file.is_some() {
                    return Err(Marked::invalid(
                        "`{field}` only works together with `image:`; this environment uses `build:`",
                        "install the packages in your Dockerfile instead, or switch to `image:` + `conda_file:`",
                    )
                    .at_key("conda_file"));
                }
                EnvironmentSource::Build { build }
            }
        };
        if raw.os_type == Some(OsType::Windows) {
            return Err(Marked::unsupported(
                "`{field}: windows` is not supported: tug runs Linux containers only",
                "remove `os_type` (or set `os_type: linux`) and use a Linux base image",
            )
            .at("os_type"));
        }
        Ok(EnvironmentSpec {
            name: raw.name,
            version: raw.version.map(|v| v.0),
            description: raw.description,
            tags: raw.tags,
            properties: raw.properties,
            source,
            os_type: OsType::Linux,
            inference_config: raw.inference_config,
            datastore: raw.datastore,
        })
    }
}

impl EnvironmentSpec {
    /// After parsing: YAML 1.1 text of scalars and paths joined to the YAML file's directory.
    pub(crate) fn finish(&mut self, doc: &Document, prefix: &str) {
        fix_scalar_map(doc, &join(prefix, "tags"), &mut self.tags);
        fix_scalar_map(doc, &join(prefix, "properties"), &mut self.properties);
        if let Some(v) = self.version.take() {
            self.version = Some(doc.scalar_text(&join(prefix, "version"), v));
        }
        let base = doc.path.parent().unwrap_or(Path::new(""));
        match &mut self.source {
            EnvironmentSource::Image {
                conda_file: Some(CondaFile::Path(p)),
                ..
            } => p.resolve(base),
            EnvironmentSource::Build { build } => build.path.resolve(base),
            EnvironmentSource::Image { .. } => {}
        }
    }

    /// The base image, when the environment is `image:` based.
    pub fn image(&self) -> Option<&str> {
        match &self.source {
            EnvironmentSource::Image { image, .. } => Some(image),
            EnvironmentSource::Build { .. } => None,
        }
    }
}

impl<'de> Deserialize<'de> for CondaFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CondaFile;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path to a conda file, or a conda spec mapping")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<CondaFile, E> {
                SourcePath::deserialize(de::value::StrDeserializer::<E>::new(v))
                    .map(CondaFile::Path)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<CondaFile, A::Error> {
                CondaSpec::deserialize(MapAccessDeserializer::new(map)).map(CondaFile::Inline)
            }
        }
        d.deserialize_any(V)
    }
}

impl EnvironmentRef {
    /// Parse a reference string on its own (e.g. from a command line): `azureml:name:1`,
    /// `azureml:name@latest`, `azureml:name`, an ARM id or an `azureml://registries/...` URI.
    pub fn parse(text: &str) -> Result<EnvironmentRef, SpecError> {
        parse_environment_ref(text).map_err(|m| m.into_inline("environment"))
    }
}

/// Parse an environment reference string (`azureml:name:1`, `azureml:name@latest`, ...).
pub(crate) fn parse_environment_ref(text: &str) -> Result<EnvironmentRef, Marked> {
    let text = text.trim();
    let bad = |why: &str| {
        Marked::invalid(
            format!("`{text}` is not a valid environment reference for `{{field}}`: {why}"),
            "write `azureml:<name>:<version>`, `azureml:<name>@latest`, or an inline environment with `image:`",
        )
    };
    if let Some(rest) = text.strip_prefix("azureml://registries/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.as_slice() {
            [registry, "environments", name, kind, version]
                if !registry.is_empty() && valid_name(name) =>
            {
                let version = match (*kind, *version) {
                    ("versions", v) if valid_name(v) => AssetVersion::Version(v.to_string()),
                    ("labels", "latest") => AssetVersion::Latest,
                    ("labels", _) => return Err(bad("only the `latest` label is supported")),
                    _ => {
                        return Err(bad(
                            "expected `.../versions/<version>` or `.../labels/latest`",
                        ));
                    }
                };
                Ok(EnvironmentRef::Registry {
                    registry: registry.to_string(),
                    name: name.to_string(),
                    version,
                })
            }
            _ => Err(bad(
                "expected `azureml://registries/<registry>/environments/<name>/versions/<version>`",
            )),
        };
    }
    let Some(rest) = text.strip_prefix("azureml:") else {
        let looks_like_image = text.contains('/') || text.contains(':');
        return Err(Marked::invalid(
            format!(
                "`{{field}}: {text}` is neither an `azureml:` reference nor an inline environment"
            ),
            if looks_like_image {
                format!(
                    "to run a Docker image directly, write it inline:\n      environment:\n        image: {text}"
                )
            } else {
                format!(
                    "to use a registered environment write `azureml:{text}:<version>` or `azureml:{text}@latest`"
                )
            },
        ));
    };
    if rest.starts_with('/') {
        // ARM id: azureml:/subscriptions/.../environments/<name>/versions/<version>
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts.iter().position(|p| *p == "environments") {
            Some(i)
                if parts.len() == i + 4
                    && parts[i + 2] == "versions"
                    && valid_name(parts[i + 1]) =>
            {
                Ok(EnvironmentRef::Registered {
                    name: parts[i + 1].to_string(),
                    version: AssetVersion::Version(parts[i + 3].to_string()),
                })
            }
            _ => Err(bad(
                "an ARM id must end in `/environments/<name>/versions/<version>`",
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
            [name, version] if valid_name(version) => {
                (*name, AssetVersion::Version(version.to_string()))
            }
            [_, ""] => return Err(bad("the version after `:` is empty")),
            [_, _] => {
                return Err(bad(
                    "a version may contain letters, digits, `.`, `-` and `_`",
                ));
            }
            _ => return Err(bad("too many `:`; expected `azureml:<name>:<version>`")),
        }
    };
    if name.is_empty() {
        return Err(bad("the name is empty"));
    }
    if !valid_name(name) {
        return Err(bad(
            "a name starts with a letter or digit and contains only letters, digits, `.`, `-` and `_`",
        ));
    }
    Ok(EnvironmentRef::Registered {
        name: name.to_string(),
        version,
    })
}

fn valid_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

impl fmt::Display for EnvironmentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvironmentRef::Registered {
                name,
                version: AssetVersion::Version(v),
            } => write!(f, "azureml:{name}:{v}"),
            EnvironmentRef::Registered {
                name,
                version: AssetVersion::Latest,
            } => write!(f, "azureml:{name}@latest"),
            EnvironmentRef::Registry {
                registry,
                name,
                version: AssetVersion::Version(v),
            } => {
                write!(
                    f,
                    "azureml://registries/{registry}/environments/{name}/versions/{v}"
                )
            }
            EnvironmentRef::Registry {
                registry,
                name,
                version: AssetVersion::Latest,
            } => {
                write!(
                    f,
                    "azureml://registries/{registry}/environments/{name}/labels/latest"
                )
            }
            EnvironmentRef::Inline(_) => f.write_str("(inline environment)"),
        }
    }
}

impl Serialize for EnvironmentRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            EnvironmentRef::Inline(spec) => spec.serialize(s),
            other => s.collect_str(other),
        }
    }
}

impl<'de> Deserialize<'de> for EnvironmentRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EnvironmentRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "an `azureml:<name>:<version>` reference or an inline environment mapping",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<EnvironmentRef, E> {
                parse_environment_ref(v).map_err(Marked::into_de)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EnvironmentRef, A::Error> {
                EnvironmentSpec::deserialize(MapAccessDeserializer::new(map))
                    .map(|e| EnvironmentRef::Inline(Box::new(e)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Checks on an environment file's top level that come before the typed reading.
pub(crate) fn precheck(doc: &Document) -> Result<(), SpecError> {
    let root = doc.root_mapping("      image: python:3.11-slim\n      conda_file: conda.yml")?;
    for key in super::document::top_keys(root) {
        if key == "channels" || key == "dependencies" {
            return Err(doc.invalid(
                key,
                true,
                format!("`{key}` at the top level: this looks like a conda file, not an environment"),
                "reference it with conda_file: from an environment file (`image: ...` + `conda_file: conda.yml`), or nest it under `conda_file:`",
            ));
        }
        if key == "command" {
            return Err(doc.invalid(
                key,
                true,
                "`command` at the top level: this looks like a command job, not an environment"
                    .into(),
                "read this file as a job; an environment file has `image:` or `build:`",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(name: &str, version: AssetVersion) -> EnvironmentRef {
        EnvironmentRef::Registered {
            name: name.into(),
            version,
        }
    }

    #[test]
    fn parses_workspace_references() {
        let v = |s: &str| AssetVersion::Version(s.into());
        assert_eq!(
            parse_environment_ref("azureml:sklearn:1").unwrap(),
            registered("sklearn", v("1"))
        );
        assert_eq!(
            parse_environment_ref("azureml:sk-learn.env@latest").unwrap(),
            registered("sk-learn.env", AssetVersion::Latest)
        );
        assert_eq!(
            parse_environment_ref("azureml:AzureML-sklearn-1.5").unwrap(),
            registered("AzureML-sklearn-1.5", AssetVersion::Latest)
        );
        assert_eq!(
            parse_environment_ref("azureml:/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w/environments/env/versions/3").unwrap(),
            registered("env", v("3"))
        );
    }

    #[test]
    fn parses_registry_references() {
        assert_eq!(
            parse_environment_ref(
                "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"
            )
            .unwrap(),
            EnvironmentRef::Registry {
                registry: "azureml".into(),
                name: "sklearn-1.5".into(),
                version: AssetVersion::Latest
            }
        );
        let r = parse_environment_ref("azureml://registries/azureml/environments/x/versions/7")
            .unwrap();
        assert_eq!(
            r.to_string(),
            "azureml://registries/azureml/environments/x/versions/7"
        );
    }

    #[test]
    fn rejects_bad_references_with_help() {
        for bad in [
            "azureml:",
            "azureml:a:b:c",
            "azureml:x@stable",
            "azureml:x:",
            "azureml:bad name:1",
            "azureml://registries/r/models/m/versions/1",
        ] {
            assert!(parse_environment_ref(bad).is_err(), "{bad}");
        }
        let e = parse_environment_ref("python:3.11").unwrap_err();
        assert!(e.help.contains("image: python:3.11"), "{}", e.help);
    }
}
