//! The online deployment file: a model, scoring code and environment served behind an endpoint.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::deployment_settings::{
    DataCollector, ProbeSettings, RequestSettings, ResourceRequirements, ScaleSettings,
    check_data_collector, check_probe, check_request_settings,
};
use super::document::{Document, top_keys};
use super::endpoint::check_online_name;
use super::enums::{EndpointComputeType, ModelType, PublicNetworkAccess};
use super::environment::EnvironmentRef;
use super::error::SpecError;
use super::fields::{
    SourcePath, fix_scalar_map, null_default, scalar_map, yaml11_bool, yaml11_opt_bool,
};
use super::model::{ModelRef, check_legacy_keys};

/// An online deployment: what one deployment behind an endpoint serves, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnlineDeploymentSpec {
    /// `$schema`: informational only.
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// 3 to 32 characters, `^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`.
    pub name: String,
    /// The endpoint this deployment belongs to (same naming rule).
    pub endpoint_name: String,
    /// `managed` when absent.
    #[serde(rename = "type", default)]
    pub deployment_type: EndpointComputeType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tags: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    /// Where the model appears in a custom container (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_mount_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_configuration: Option<CodeConfiguration>,
    /// Absent only for a no-code deployment (an MLflow or Triton model without
    /// `code_configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<EnvironmentRef>,
    /// Values are Python `str()` of the YAML 1.1 scalar (`yes` → `True`).
    #[serde(
        default,
        deserialize_with = "scalar_map",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub environment_variables: BTreeMap<String, String>,
    /// The VM size (managed) or instance type (kubernetes); meaningless locally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(default = "one")]
    pub instance_count: u32,
    #[serde(default, deserialize_with = "yaml11_bool")]
    pub app_insights_enabled: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub scale_settings: ScaleSettings,
    #[serde(default, deserialize_with = "null_default")]
    pub request_settings: RequestSettings,
    #[serde(default, deserialize_with = "null_default")]
    pub liveness_probe: ProbeSettings,
    #[serde(default, deserialize_with = "null_default")]
    pub readiness_probe: ProbeSettings,
    /// Kubernetes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_collector: Option<DataCollector>,
    /// Managed only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_public_network_access: Option<PublicNetworkAccess>,
    /// Managed only (Azure marks it experimental).
    #[serde(
        default,
        deserialize_with = "yaml11_opt_bool",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_network_connection: Option<bool>,
}

fn one() -> u32 {
    1
}

/// `code_configuration`: the scoring script and the folder it lives in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeConfiguration {
    /// The code folder; a local path is joined to the YAML file's folder.
    pub code: SourcePath,
    /// Relative to `code`, inside it (`score.py`, `src/score.py`).
    pub scoring_script: String,
}

impl CodeConfiguration {
    /// The scoring script on this machine (`code` joined with `scoring_script`), when `code`
    /// is local.
    pub fn script_path(&self) -> Option<PathBuf> {
        self.code
            .local
            .as_ref()
            .map(|code| code.join(&self.scoring_script))
    }
}

/// Why `script` is not a path inside the code folder, if it is not.
fn script_problem(script: &str) -> Option<&'static str> {
    if script.trim().is_empty() {
        return Some("it is empty");
    }
    let drive = script.len() >= 2 && script.as_bytes()[1] == b':';
    if script.starts_with(['/', '\\']) || drive {
        return Some("it is an absolute path");
    }
    let mut depth: i32 = 0;
    for part in Path::new(script).components() {
        match part {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Some("it leads out of the `code` folder");
        }
    }
    if depth == 0 {
        return Some("it names the `code` folder itself, not a file in it");
    }
    None
}

impl OnlineDeploymentSpec {
    /// Whether the deployment names no scoring script: an MLflow or Triton model served by a
    /// generated server.
    pub fn is_no_code(&self) -> bool {
        self.code_configuration.is_none()
    }

    /// After the typed reading: YAML 1.1 text of scalars, names, local paths, and the checks
    /// that involve several fields.
    pub(crate) fn finish(&mut self, doc: &Document) -> Result<(), SpecError> {
        fix_scalar_map(doc, "tags", &mut self.tags);
        fix_scalar_map(doc, "properties", &mut self.properties);
        fix_scalar_map(
            doc,
            "environment_variables",
            &mut self.environment_variables,
        );
        super::job::check_secret_references(
            doc,
            "environment_variables",
            &self.environment_variables,
        )?;
        check_online_name(doc, "name", false, &self.name, "deployment")?;
        check_online_name(doc, "endpoint_name", false, &self.endpoint_name, "endpoint")?;
        if self.instance_count == 0 {
            return Err(doc.invalid(
                "instance_count",
                false,
                "`instance_count` is 0; a deployment needs at least one instance".into(),
                "set `instance_count: 1` (or leave it out; 1 is the default)",
            ));
        }
        if let Some(ModelRef::Inline(model)) = &mut self.model {
            model.finish(doc, "model")?;
        }
        if let Some(EnvironmentRef::Inline(env)) = &mut self.environment {
            env.finish(doc, "environment");
        }
        let base = doc.path.parent().unwrap_or(Path::new("")).to_path_buf();
        if let Some(code) = &mut self.code_configuration {
            code.code.resolve(&base);
            if let Some(why) = script_problem(&code.scoring_script) {
                return Err(doc.invalid(
                    "code_configuration.scoring_script",
                    false,
                    format!(
                        "`code_configuration.scoring_script: {}` is not a file inside `code` ({why})",
                        code.scoring_script
                    ),
                    "give the script's path relative to the `code` folder, e.g. `scoring_script: score.py`, and make `code` the folder that contains it",
                ));
            }
        }
        self.check_parts(doc)?;
        self.check_type_specific(doc)?;
        check_request_settings(doc, &self.request_settings, self.deployment_type)?;
        check_probe(doc, "liveness_probe", &self.liveness_probe)?;
        check_probe(doc, "readiness_probe", &self.readiness_probe)?;
        if let Some(resources) = &self.resources {
            resources.check(doc, "resources")?;
        }
        if let Some(dc) = &self.data_collector {
            check_data_collector(doc, dc)?;
        }
        Ok(())
    }

    /// Model, code and environment together.
    fn check_parts(&self, doc: &Document) -> Result<(), SpecError> {
        let env_help = "add `environment:` with `image:` (and `conda_file:` for the packages score.py needs), or a registered `azureml:<name>:<version>`";
        if self.environment.is_none() {
            if self.code_configuration.is_some() {
                return Err(doc.missing(
                    "environment",
                    "code_configuration",
                    "missing required field `environment`: the scoring script in `code_configuration` needs an environment to run in".into(),
                    env_help,
                ));
            }
            let no_code_model = match &self.model {
                Some(ModelRef::Inline(m)) => m.model_type != ModelType::CustomModel,
                // A registered model's type is only known once it is looked up.
                Some(_) => true,
                None => false,
            };
            if !no_code_model {
                let why = if self.model.is_some() {
                    "only `mlflow_model` and `triton_model` models can be deployed without a scoring script and environment, and this one is a `custom_model`"
                } else {
                    "a deployment without a model or scoring code has nothing to serve"
                };
                return Err(doc.missing(
                    "environment",
                    if self.model.is_some() { "model" } else { "" },
                    format!("missing required field `environment`: {why}"),
                    format!(
                        "{env_help}, together with `code_configuration: {{code: ./src, scoring_script: score.py}}`"
                    ),
                ));
            }
        }
        if self.model.is_none() && self.code_configuration.is_none() {
            let byoc = matches!(&self.environment, Some(EnvironmentRef::Inline(env)) if env.inference_config.is_some());
            if !byoc {
                return Err(doc.missing(
                    "model",
                    "environment",
                    "missing required field `model`: without a model or `code_configuration` the deployment has nothing to serve".into(),
                    "add `model:` (inline with `path: ./model`, or `azureml:<name>:<version>`) and `code_configuration` with the scoring script",
                ));
            }
        }
        if let Some(mount) = &self.model_mount_path {
            if self.model.is_none() {
                return Err(doc.invalid(
                    "model_mount_path",
                    true,
                    "`model_mount_path` says where to mount the model, but the deployment has no `model`".into(),
                    "add `model:`, or remove `model_mount_path`",
                ));
            }
            if !mount.starts_with('/') {
                return Err(doc.invalid(
                    "model_mount_path",
                    false,
                    format!("`model_mount_path: {mount}` is not an absolute path in the container"),
                    "write an absolute path, e.g. `model_mount_path: /var/azureml-app/azureml-models/model`",
                ));
            }
        }
        Ok(())
    }

    /// Keys that belong to one deployment type only.
    fn check_type_specific(&self, doc: &Document) -> Result<(), SpecError> {
        let kind = self.deployment_type;
        let (wrong, owner): (Vec<&str>, &str) = match kind {
            EndpointComputeType::Managed => {
                let mut keys = Vec::new();
                if self.resources.is_some() {
                    keys.push("resources");
                }
                (keys, "kubernetes")
            }
            EndpointComputeType::Kubernetes => {
                let mut keys = Vec::new();
                if self.egress_public_network_access.is_some() {
                    keys.push("egress_public_network_access");
                }
                if self.private_network_connection.is_some() {
                    keys.push("private_network_connection");
                }
                (keys, "managed")
            }
        };
        if let Some(key) = wrong.first() {
            let (this, fix) = match kind {
                EndpointComputeType::Managed => (
                    "`managed` (the default `type`)",
                    "remove it (a managed deployment is sized by `instance_type`), or set `type: kubernetes`",
                ),
                EndpointComputeType::Kubernetes => {
                    ("`kubernetes`", "remove it, or set `type: managed`")
                }
            };
            return Err(doc.invalid(
                key,
                true,
                format!("`{key}` applies to {owner} deployments, and this deployment is {this}"),
                fix,
            ));
        }
        if kind == EndpointComputeType::Managed
            && matches!(self.scale_settings, ScaleSettings::TargetUtilization { .. })
        {
            return Err(doc.invalid(
                "scale_settings.type",
                false,
                "`scale_settings.type: target_utilization` applies to kubernetes deployments; a managed deployment runs a fixed `instance_count`".into(),
                "write `scale_settings: {type: default}` (or remove `scale_settings`), or set `type: kubernetes`",
            ));
        }
        if kind == EndpointComputeType::Kubernetes {
            let registry = [
                (
                    "model",
                    matches!(self.model, Some(ModelRef::Registry { .. })),
                ),
                (
                    "environment",
                    matches!(self.environment, Some(EnvironmentRef::Registry { .. })),
                ),
            ];
            if let Some((key, _)) = registry.iter().find(|(_, r)| *r) {
                return Err(doc.invalid(
                    key,
                    false,
                    format!("`{key}` refers to an `azureml://registries/...` asset, which kubernetes deployments cannot use"),
                    format!("register the {key} in the workspace and refer to it as `azureml:<name>:<version>`, or write it inline"),
                ));
            }
        }
        Ok(())
    }
}

const DEPLOYMENT_EXAMPLE: &str = "      name: blue\n      endpoint_name: my-endpoint\n      model:\n        path: ./model\n      code_configuration:\n        code: ./onlinescoring\n        scoring_script: score.py\n      environment:\n        image: python:3.11-slim\n        conda_file: conda.yml";

/// Checks on a deployment file's top level before the typed reading.
pub(crate) fn precheck(doc: &Document) -> Result<(), SpecError> {
    let root = doc.root_mapping(DEPLOYMENT_EXAMPLE)?;
    let keys: Vec<&str> = top_keys(root).collect();
    for key in &keys {
        let batch = matches!(
            *key,
            "mini_batch_size"
                | "output_action"
                | "output_file_name"
                | "retry_settings"
                | "max_concurrency_per_instance"
                | "error_threshold"
                | "logging_level"
        );
        if batch {
            return Err(doc.unsupported(
                key,
                true,
                format!("`{key}` at the top level: this looks like a batch deployment; tug serves online deployments only"),
                "write an online deployment (`model`, `code_configuration`, `environment`, `instance_count`), or run the batch scoring as a command job",
            ));
        }
        let looks_like = match *key {
            "command" => "a command job",
            "auth_mode" | "traffic" | "mirror_traffic" if !keys.contains(&"endpoint_name") => {
                "an online endpoint"
            }
            "path" if !keys.contains(&"model") => "a model",
            _ => continue,
        };
        return Err(doc.invalid(
            key,
            true,
            format!("`{key}` at the top level: this looks like {looks_like}, not an online deployment"),
            format!("read it as {looks_like}; an online deployment file looks like:\n{DEPLOYMENT_EXAMPLE}"),
        ));
    }
    if let Some(serde_yaml::Value::Mapping(model)) = root.get("model") {
        check_legacy_keys(doc, model, "model")?;
    }
    Ok(())
}
